"""The test environments of tools/test.sh, and what a skip means in each.

tools/test.sh runs the suite twice and names the environment in ``KCNN_TEST_ENV``:

``main``
    Python 3.11 with the ``quantize``, ``csim`` and ``test`` extras, ``g++`` and ``tclsh``.
``board``
    The board image's Python: 3.10, numpy 1.21.5 and pynq 3, with the ``board``, ``csim``
    and ``test`` extras (no onnx, onnxruntime or scikit-learn).

A test runs in the environments its markers name (``main_env``, ``board_env``); one with
neither runs in ``main``. tools/test.sh selects each run's tests with ``-m``. In CI
(``CI=true``) a skip fails the run unless the skipped test or module runs in another
environment (tests/conftest.py), so a missing dependency cannot pass as a green run.
"""

from __future__ import annotations

import importlib
import os
import sys

import pytest

MARKERS = {"main": "main_env", "board": "board_env"}
DEFAULT = "main"
HERE = os.environ.get("KCNN_TEST_ENV", DEFAULT)
STRICT = os.environ.get("CI", "").lower() in ("true", "1")
#: Files of test modules skipped at import in an environment that does not run them.
ELSEWHERE: set[str] = set()


def runs_in(marks) -> set[str]:
    """The environments that run a test or module with these marks."""
    names = {env for env, marker in MARKERS.items() if any(m.name == marker for m in marks)}
    return names or {DEFAULT}


def _skip_module(module: dict, reason: str):
    marks = module.get("pytestmark", [])
    envs = runs_in(marks if isinstance(marks, list) else [marks])
    if HERE not in envs:
        ELSEWHERE.add(module["__file__"])
        reason = f"{reason} (it runs in the {' and '.join(sorted(envs))} environment)"
    pytest.skip(f"{os.path.basename(module['__file__'])}: {reason}", allow_module_level=True)


def skip_module(reason: str):
    """Skip the calling test module at import (call it at module level, after
    ``pytestmark``). In CI this is a failure where the module's markers say it runs."""
    _skip_module(sys._getframe(1).f_globals, reason)


def importorskip(name: str):
    """``pytest.importorskip`` for a module-level import: imports ``name`` or skips the
    calling module as :func:`skip_module` does."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        _skip_module(sys._getframe(1).f_globals, f"cannot import {name}: {exc}")
