"""The runtime needs numpy only: the board has no onnx, onnxruntime or scikit-learn."""

import json
import subprocess
import sys

RUNTIME_MODULES = [
    "kcnn",
    "kcnn.kfile",
    "kcnn.graph",
    "kcnn.codes",
    "kcnn.counts",
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
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
