"""Bit equality across environments: the board's Python 3.10 + numpy 1.x against files the
main environment (Python 3.11 + numpy 2.x) wrote with tools/golden.py.

Runs in the board environment, where tools/test.sh sets ``KCNN_GOLDEN_DIR``; missing files
fail the test.
"""

import os
from pathlib import Path

import numpy as np
import pytest

from kcnn import Accelerator, models

GOLDEN = os.environ.get("KCNN_GOLDEN_DIR")
pytestmark = [
    pytest.mark.board_env,
    pytest.mark.skipif(GOLDEN is None, reason="KCNN_GOLDEN_DIR is not set"),
]


@pytest.mark.parametrize("name", models.MODELS + models.GRAPH_MODELS)
def test_simulator_reproduces_the_main_environment(name):
    path = Path(GOLDEN) / f"{name}.npz"
    assert path.is_file(), f"{path} is missing: run tools/golden.py in the main environment"
    with np.load(path) as golden:
        stored = {key[4:]: golden[key] for key in golden.files if key.startswith("map:")}
        x = golden["x"]
    with Accelerator(models.table_path(name), backend="sim") as acc:
        maps = acc.trace(x)
        maps["logits"] = acc.run(x, logits=True)
    assert list(maps) == list(stored)
    for key, value in stored.items():
        assert maps[key].dtype == value.dtype and np.array_equal(maps[key], value), key
