#!/usr/bin/env bash
# Packaging jobs (called by .ci/run):
#  1. python -m build: the sdist and an abi3 wheel (cp311-abi3, see setup.py).
#  2. The wheel in a fresh venv: the installed scanner's tag is abi3, the engine
#     says "C scanner", and the venv test subset passes against the installed copy.
#  3. The sdist in a fresh venv with no C compiler (CC=/bin/false, no gcc/cc on
#     PATH): the pure-Python fallback installs, says so, and passes the subset.
# The venvs run a subset (VENV_TESTS below) to keep CI under 20 minutes on 2
# cores; the whole suite runs once in .ci/run against the development install.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
. .ci/venv-tests.sh  # VENV_TESTS, run_venv_tests
work=$(mktemp -d /tmp/robotmia-packaging.XXXXXX)
# installed PYTHON CODE: run CODE from /, so the checkout cannot shadow the install.
installed() { (cd / && "$1" -c "$2"); }
trap 'rm -rf "$work"' EXIT

echo "== python -m build (sdist + wheel)"
python3 -m build --outdir "$work/dist" . > "$work/build.log" 2>&1 || { tail -40 "$work/build.log"; exit 1; }
ls -l "$work/dist"
wheel=$(ls "$work"/dist/*.whl)
sdist=$(ls "$work"/dist/*.tar.gz)
case "$wheel" in
    *-cp311-abi3-*.whl) echo "wheel tag: abi3 ($(basename "$wheel"))" ;;
    *) echo "the wheel is not abi3: $(basename "$wheel")"; exit 1 ;;
esac

echo "== the wheel in a fresh venv"
python3 -m venv "$work/wheel-venv"
"$work/wheel-venv/bin/python" -m pip install --quiet "$wheel" "${VENV_TEST_TOOLS[@]}"
so=$(installed "$work/wheel-venv/bin/python" 'import robotmia_frames.parse._native as n; print(n._scan.__file__)')
case "$so" in
    *.abi3.so|*.pyd) echo "installed scanner: $so" ;;
    *) echo "installed scanner is not abi3: $so"; exit 1 ;;
esac
installed "$work/wheel-venv/bin/python" 'import robotmia_frames.parse as p; s = p.scanner_status(); print("parse engine:", s); assert s == "C scanner", s'
run_venv_tests "$work/wheel-venv/bin/python"

echo "== the sdist in a fresh venv, no C compiler"
python3 -m venv "$work/sdist-venv"
nocc=$work/nocc-bin
mkdir -p "$nocc"
for tool in python3 python; do ln -sf "$work/sdist-venv/bin/$tool" "$nocc/$tool"; done
# Dependencies are installed first (as wheels); then the sdist itself is built
# with no compiler at all: an empty environment whose PATH holds only python.
"$work/sdist-venv/bin/python" -m pip install --quiet "setuptools>=77" wheel
python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
    > "$work/deps.txt"
"$work/sdist-venv/bin/python" -m pip install --quiet -r "$work/deps.txt" "${VENV_TEST_TOOLS[@]}"
if env -i PATH="$nocc" /bin/sh -c 'command -v gcc || command -v cc || command -v clang'; then
    echo "a C compiler is still on PATH"; exit 1
fi
env -i HOME="$HOME" PATH="$nocc" CC=/bin/false CXX=/bin/false \
    PIP_CONFIG_FILE="${PIP_CONFIG_FILE:-/dev/null}" \
    "$work/sdist-venv/bin/python" -m pip install --no-build-isolation --no-deps "$sdist" \
    > "$work/sdist-install.log" 2>&1 || { tail -40 "$work/sdist-install.log"; exit 1; }
grep -q "error: command '/bin/false' failed\|building '.*_scan' extension" "$work/sdist-install.log" \
    && echo "(the C build failed as intended; installation went on)"
installed "$work/sdist-venv/bin/python" 'import robotmia_frames.parse as p; s = p.scanner_status(); print("parse engine:", s); assert s.startswith("pure Python (the C scanner is not built"), s'
# The first parse warns once (RobotmiaWarning); the suite runs warnings-as-errors,
# so this job ignores exactly that warning (see docs/engine.md, "Safety").
run_venv_tests "$work/sdist-venv/bin/python" \
    -W "ignore:The C scanner of robotmia-frames is not built:robotmia_frames.errors.RobotmiaWarning"
echo "== packaging jobs passed"
