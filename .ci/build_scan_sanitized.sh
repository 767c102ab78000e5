#!/usr/bin/env bash
# Build the C scanner with sanitizers into a stand-alone .so (not the package's).
#   .ci/build_scan_sanitized.sh OUT.so asan     gcc or clang, -fsanitize=address,undefined
#   .ci/build_scan_sanitized.sh OUT.so fuzzer   clang, also -fsanitize=fuzzer-no-link (atheris)
# UBSan does not recover (-fno-sanitize-recover=all): any report aborts.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1
mode=${2:-asan}
src=robotmia_frames/parse/_scan.c
inc=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
flags=(-shared -fPIC -g -O1 -std=c99 -fno-omit-frame-pointer -fno-sanitize-recover=all
       -Wall -Wextra -Werror=implicit-function-declaration -I"$inc")
# the Limited API level setup.py builds with (its LIMITED_API), read from it
limited=$(sed -n 's/^LIMITED_API = \(0x[0-9A-Fa-f]*\)$/\1/p' setup.py)
[ -n "$limited" ] || { echo "LIMITED_API not found in setup.py"; exit 1; }
flags+=(-DPy_LIMITED_API="$limited")
if [ "$mode" = fuzzer ]; then
    cc=${FUZZ_CC:-clang}
    flags+=(-fsanitize=address,undefined,fuzzer-no-link)
else
    cc=${SAN_CC:-gcc}
    flags+=(-fsanitize=address,undefined)
fi
mkdir -p "$(dirname "$out")"
"$cc" "${flags[@]}" "$src" -o "$out"
echo "built $out with $cc ($mode)"
