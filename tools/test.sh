#!/usr/bin/env bash
# Installs the test environments from the project's own files and runs the whole suite in
# each (what CI runs). Extra arguments go to the main environment's pytest. Each pytest run
# selects its tests by marker (main_env, board_env: tests/environments.py); with CI=true a
# skipped test fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${KCNN_TEST_VENV:-.venv-test}
python=${KCNN_PYTHON:-python3}

stage_start=$(date +%s)
stage() {
    local now
    now=$(date +%s)
    printf '[test.sh] %-40s %4ds\n' "$1" "$((now - stage_start))" >&2
    stage_start=$now
}

# System tools the suite needs: the Tcl dry runs of build.tcl and the C-sim. Without them
# their tests skip; in CI that fails, so say it here first.
for need in "tclsh:tcl" "g++:g++"; do
    if ! command -v "${need%%:*}" >/dev/null; then
        echo "[test.sh] ${need%%:*} not found (Debian/Ubuntu: apt-get install ${need#*:})" >&2
        case "${CI:-}" in true | TRUE | True | 1) exit 1 ;; esac
    fi
done

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
stage "virtual environment ($venv)"

# A regular (non-editable) install, so the tests see exactly what a user gets, package
# data included. setuptools builds through build/lib, which keeps files the tree no longer
# has: clear it so that a removed module cannot pass in a local run.
rm -rf build/lib build/bdist.*
"$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps .
"$venv/bin/python" -m pip install --quiet ".[quantize,csim,test]"
stage "install kcnn[quantize,csim,test]"

"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
stage "ruff"

# The board's Python: 3.10 with the lowest numpy the project admits, pynq 3.x (the board
# images' version) and the C-sim, never `quantize` or `train`. It must reproduce the main
# environment's simulator codes bit for bit, also through the board back-end on a fake
# pynq device whose kernel is the C-sim.
golden="$PWD/build/golden"
"$venv/bin/python" tools/golden.py "$golden" >/dev/null
stage "golden codes (main environment)"

# The two environments' suites are independent single-process runs, so they run side by
# side (one per core of a 2-core CI machine); the board run's output is shown after the
# main run's. The C-sim cache is keyed by source and header contents and its builds appear
# atomically, so the two share it safely.
board_venv=${KCNN_BOARD_VENV:-.venv-board}
board_log=$(mktemp)
(
    set -euo pipefail
    if [ ! -x "$board_venv/bin/python" ]; then
        PYENV_VERSION=${KCNN_BOARD_PYENV:-3.10.13} python3.10 -m venv "$board_venv"
    fi
    "$board_venv/bin/python" -m pip install --quiet --upgrade pip
    "$board_venv/bin/python" -m pip install --quiet --force-reinstall --no-deps .
    "$board_venv/bin/python" -m pip install --quiet ".[board,csim,test]" "numpy==1.21.5"
    stage "board environment (Python 3.10, numpy 1.21.5, pynq 3)"
    KCNN_TEST_ENV=board KCNN_GOLDEN_DIR="$golden" \
        "$board_venv/bin/pytest" -p no:cacheprovider -m board_env
    stage "pytest in the board environment"
) >"$board_log" 2>&1 &
board_pid=$!

# The console script, not `python -m pytest`: the repository root must not shadow the
# installed package on sys.path.
main_status=0
KCNN_TEST_ENV=main "$venv/bin/pytest" -p no:cacheprovider -m main_env "$@" || main_status=$?
stage "pytest in the main environment"

board_status=0
wait "$board_pid" || board_status=$?
echo "[test.sh] ---- board environment ----" >&2
cat "$board_log" >&2
rm -f "$board_log"
if [ "$main_status" -ne 0 ] || [ "$board_status" -ne 0 ]; then
    echo "[test.sh] failed: main environment $main_status, board environment $board_status" >&2
    exit 1
fi
