#!/usr/bin/env bash
# Coverage-guided differential fuzzing of the C scanner (tests/fuzz/fuzz_scan.py).
#   .ci/fuzz.sh [SECONDS] [CORPUS_DIR]
# Builds _scan.c with clang -fsanitize=address,undefined,fuzzer-no-link, then runs
# atheris (libFuzzer) for SECONDS (default 60) from the seed corpus
# tests/fuzz/corpus. New inputs go to CORPUS_DIR (default: a temp folder). Any
# mismatch with the json.loads reference, sanitizer report, crash or hang fails.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
corpus=${2:-$(mktemp -d /tmp/robotmia-fuzz-corpus.XXXXXX)}
mkdir -p "$corpus"
so=build/sanitized/_scan_fuzz.so
.ci/build_scan_sanitized.sh "$so" fuzzer
atheris_dir=$(python3 -c 'import atheris; print(atheris.path())')
export LD_PRELOAD="$atheris_dir/asan_with_fuzzer.so"
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=0:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ROBOTMIA_SCAN_SO="$PWD/$so"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONMALLOC=malloc
artifacts=${FUZZ_ARTIFACTS:-build/fuzz-artifacts}
mkdir -p "$artifacts"
echo "== fuzzing the C scanner for ${seconds}s (new inputs: $corpus)"
python3 tests/fuzz/fuzz_scan.py -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 \
    -max_len=4096 -dict=tests/fuzz/json.dict -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$corpus" tests/fuzz/corpus
