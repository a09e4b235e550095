"""The runtime needs numpy only: the board has no onnx, onnxruntime or scikit-learn."""

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.main_env, pytest.mark.board_env]

RUNTIME_MODULES = [
    "kcnn",
    "kcnn.kfile",
    "kcnn.model",
    "kcnn.ops",
    "kcnn.codes",
    "kcnn.report",
    "kcnn.cli",
    "kcnn.models",
]
HEAVY = ["onnx", "onnxruntime", "sklearn", "scipy", "hls4ml", "torch", "matplotlib"]


def test_runtime_imports_no_heavy_package(tmp_path):
    code = (
        "import importlib, json, sys\n"
        f"for name in {RUNTIME_MODULES!r}: importlib.import_module(name)\n"
        "from kcnn.cli import build_parser; build_parser()\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    # A fresh interpreter outside the repository, so the installed package is imported.
    assert printed_in_fresh_interpreter(code, tmp_path) == []


BOARD_MODULES = [
    "kcnn",
    "kcnn.kfile",
    "kcnn.sim",
    "kcnn.sim.engine",
    "kcnn.protocol",
    "kcnn.plan",
    "kcnn.runner",
    "kcnn.estimate",
    "kcnn.host",
    "kcnn.host.hwh",
    "kcnn.host.board",
    "kcnn.overlay",
    "kcnn.accelerator",
]


def test_board_runtime_imports_only_stdlib_numpy_tqdm_and_pynq(tmp_path):
    """What the board imports: nothing outside the standard library, numpy, tqdm and pynq
    (pynq itself is imported lazily, when the board back-end starts)."""
    code = (
        "import importlib, json, sys\n"
        "before = set(sys.modules)\n"
        f"for name in {BOARD_MODULES!r}: importlib.import_module(name)\n"
        "tops = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        # numpy 1.x's Cython extensions register a ``cython_runtime`` module.
        "allowed = set(sys.stdlib_module_names)\n"
        "allowed |= {'kcnn', 'numpy', 'tqdm', 'pynq', 'cython_runtime'}\n"
        "print(json.dumps(sorted(t for t in tops if t not in allowed and not t.startswith('_'))))\n"
    )
    assert printed_in_fresh_interpreter(code, tmp_path) == []


def test_board_path_imports_neither_the_simulator_nor_the_quantizer(tmp_path):
    """The board driver composes with the one graph runner; it does not reach the numpy
    simulator or the quantizer (back-ends compose, none inherits from another)."""
    code = (
        "import json, sys\n"
        "import kcnn.host.board, kcnn.overlay\n"
        "print(json.dumps(sorted(m for m in sys.modules\n"
        "    if m.startswith(('kcnn.sim', 'kcnn.quantizer')))))\n"
    )
    assert printed_in_fresh_interpreter(code, tmp_path) == []


def printed_in_fresh_interpreter(code: str, folder):
    """What ``code`` prints as JSON, run in a fresh interpreter outside the repository (so
    the installed package is imported)."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=folder
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
