#!/usr/bin/env bash
# Installs the test environment from the project's own files and runs the whole suite.
#   tools/test.sh          default tier + the slow tier in reduced form (what CI runs)
#   tools/test.sh --full   the slow tier at full size as well
# Extra arguments after the flag go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

export KCNN_SLOW=reduced
if [ "${1:-}" = "--full" ]; then
    export KCNN_SLOW=full
    shift
fi
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
stage "pytest (KCNN_SLOW=$KCNN_SLOW)"

# The README's main job on the embedded default; its duration is the stage time.
(cd "${TMPDIR:-/tmp}" && "$OLDPWD/$venv/bin/kcnn" demo >/dev/null)
stage "kcnn demo"
