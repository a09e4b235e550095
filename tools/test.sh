#!/usr/bin/env bash
# Installs the test environments from the project's own files and runs the whole suite in
# each (what CI runs). Extra arguments go to the main environment's pytest.
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

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
stage "virtual environment ($venv)"

# A regular (non-editable) install, so the tests see exactly what a user gets, package
# data included.
"$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps .
"$venv/bin/python" -m pip install --quiet ".[quantize,csim,test]"
stage "install kcnn[quantize,csim,test]"

"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
stage "ruff"

# The console script, not `python -m pytest`: the repository root must not shadow the
# installed package on sys.path.
"$venv/bin/pytest" -p no:cacheprovider "$@"
stage "pytest in the main environment"

# The board's Python: 3.10 with the lowest numpy the project admits, pynq 3.x (the board
# images' version) and the C-sim, never `quantize` or `train`. It must reproduce the main
# environment's simulator codes bit for bit, also through the board back-end on a fake
# pynq device whose kernel is the C-sim.
golden="$PWD/build/golden"
"$venv/bin/python" tools/golden.py "$golden" >/dev/null
stage "golden codes (main environment)"
board_venv=${KCNN_BOARD_VENV:-.venv-board}
if [ ! -x "$board_venv/bin/python" ]; then
    PYENV_VERSION=${KCNN_BOARD_PYENV:-3.10.13} python3.10 -m venv "$board_venv"
fi
"$board_venv/bin/python" -m pip install --quiet --upgrade pip
"$board_venv/bin/python" -m pip install --quiet --force-reinstall --no-deps .
"$board_venv/bin/python" -m pip install --quiet ".[board,csim,test]" "numpy==1.21.5"
stage "board environment (Python 3.10, numpy 1.21.5, pynq 3)"
# The C-sim cache is keyed by source and header contents, so this environment reuses the
# main one's builds.
KCNN_BOARD_ENV=1 KCNN_GOLDEN_DIR="$golden" \
    "$board_venv/bin/pytest" -p no:cacheprovider tests/test_golden.py tests/test_board.py \
    tests/test_hwh.py tests/test_overlay_files.py tests/test_runtime_imports.py \
    tests/test_bundled_tables.py tests/test_sim.py tests/test_tiler.py tests/test_counts.py \
    tests/test_notebooks.py tests/test_tcl.py tests/test_readme.py
stage "pytest in the board environment"
