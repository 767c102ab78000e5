# Sourced by the venv jobs (.ci/packaging.sh, .ci/min-versions.sh).
# VENV_TESTS: the subset the extra venvs run, chosen to cover every parse path
# (the C scanner and its limits, the Python engine, the type policy, times, the
# public API over the loopback emulator) in a few minutes. The whole suite runs
# once in .ci/run, against the development install.
VENV_TESTS=(tests/test_scan.py tests/test_scan_safety.py tests/test_parse_properties.py
            tests/test_api.py tests/test_time.py)
# What the subset needs beyond the package's own dependencies.
VENV_TEST_TOOLS=("pytest>=7.4" "pytest-xdist>=3.5" "hypothesis>=6.90" "trustme>=1.0")

# run_venv_tests PYTHON [pytest args...]: the subset against the package installed
# in PYTHON's venv, from a copy of tests/ with no source tree beside it (so the
# checkout's robotmia_frames cannot shadow the installed one).
run_venv_tests() {
    local py=$1; shift
    local dir
    dir=$(mktemp -d /tmp/robotmia-venv-tests.XXXXXX)
    cp -r tests pyproject.toml "$dir"/
    (
        cd "$dir"
        where=$("$py" -c 'import robotmia_frames; print(robotmia_frames.__file__)')
        case "$where" in
            "$dir"*|"$OLDPWD"*) echo "robotmia_frames imported from the checkout: $where"; exit 1 ;;
        esac
        echo "testing the installed package: $where"
        "$py" -m pytest -q -n 2 -p no:cacheprovider -p no:benchmark -o testpaths=tests "$@" \
            "${VENV_TESTS[@]}"
    )
    local status=$?
    rm -rf "$dir"
    return $status
}
