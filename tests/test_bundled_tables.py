"""The `.kcnn` tables the wheel ships for the board (made by kcnn.models.build_tables)."""

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from kcnn import Accelerator, models
from kcnn.kfile import load

pytestmark = [pytest.mark.main_env, pytest.mark.board_env]

README = Path(models.__file__).with_name("README.md")


def readme_kcnn_top1(name):
    """KCNN top-1 of ``name`` from the acceptance table of models/README.md (9 columns)."""
    for line in README.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 9 and cells[0] == f"`{name}`":
            return float(re.match(r"([\d.]+) %", cells[2]).group(1)) / 100
    raise AssertionError(f"no acceptance row for {name} in {README}")


@pytest.mark.parametrize("name", models.MODELS)
def test_bundled_table_matches_its_onnx_and_the_readme(name):
    check_table(name)


def check_table(name):
    """The table was made from the bundled ONNX file, and its top-1 on the test digits is
    the one models/README.md tables."""
    table = load(models.table_path(name))
    digest = hashlib.sha256(models.model_path(name).read_bytes()).hexdigest()
    assert table.meta["source_sha256"] == digest
    x, y = models.digits("test")
    with Accelerator(models.table_path(name), backend="sim") as acc:
        top1 = float(np.mean(acc.predict(x) == y))
    assert top1 == pytest.approx(readme_kcnn_top1(name), abs=5e-4)
