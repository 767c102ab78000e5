#!/usr/bin/env bash
# The C scanner under AddressSanitizer and UBSan (gcc).
# Builds _scan.c with -fsanitize=address,undefined -fno-sanitize-recover=all
# (.ci/build_scan_sanitized.sh) into a copy of the package, then runs
# tests/test_scan.py, tests/test_scan_safety.py and
# a replay of the fuzz corpus (tests/fuzz/corpus) through the json.loads reference
# against that build. Any sanitizer report aborts the run and fails the job.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d /tmp/robotmia-sanitize.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r robotmia_frames tests pyproject.toml setup.py README.md "$work"/
find "$work/robotmia_frames" -name '_scan*.so' -delete
cd "$work"
so=robotmia_frames/parse/_scan.abi3.so
"$root/.ci/build_scan_sanitized.sh" "$work/$so" asan
nm -D "$so" | grep -q __asan_ || { echo "$so is not built with ASan"; exit 1; }
export LD_PRELOAD="$(${SAN_CC:-gcc} -print-file-name=libasan.so):$(${SAN_CC:-gcc} -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
export PYTHONMALLOC=malloc PYTHONPATH="$work"
log=$work/sanitize.log
status=0
{
    echo "== sanitized build: $so"
    python3 -c "import robotmia_frames.parse as p; print('parse engine:', p.scanner_status())"
    python3 -m pytest -q -p no:cacheprovider -p no:benchmark -p no:randomly \
        tests/test_scan.py tests/test_scan_safety.py
    python3 tests/fuzz/fuzz_scan.py --replay tests/fuzz/corpus
} 2>&1 | tee "$log" || status=$?
if grep -E "ERROR: AddressSanitizer|runtime error:|SUMMARY: (Address|UndefinedBehavior)Sanitizer" "$log"; then
    echo "== sanitizer reports found"
    exit 1
fi
[ "$status" = 0 ] || { echo "== sanitizer job failed ($status)"; exit "$status"; }
echo "== sanitizer job: no reports"
