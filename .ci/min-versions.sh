#!/usr/bin/env bash
# Lowest versions: a fresh venv with every runtime dependency at its declared
# floor (.ci/constraints-min.txt), the package installed from this checkout (C
# scanner built), then the venv test subset (.ci/venv-tests.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/venv-tests.sh
work=$(mktemp -d /tmp/robotmia-minver.XXXXXX)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
py=$work/venv/bin/python
"$py" -m pip install --quiet -c .ci/constraints-min.txt . "${VENV_TEST_TOOLS[@]}"
"$py" -m pip list 2>/dev/null | grep -iE "^(pandas|pyarrow|numpy|requests|ijson|orjson|tqdm|isal) "
# Every pin must be what got installed.
"$py" - <<'PY'
from importlib.metadata import version
for line in open(".ci/constraints-min.txt"):
    line = line.split("#")[0].strip()
    if line:
        name, want = line.split("==")
        assert version(name) == want, f"{name} {version(name)} installed, {want} pinned"
print("all floors installed")
PY
run_venv_tests "$py"
