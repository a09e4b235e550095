"""Every class of bad input and fault of the catalogue (tests/bad_inputs.py, listed in
docs/reliability.md) is handled: one error line and exit 1 (a KcnnError from the API), or
a run that succeeds and keeps what it must keep."""

import os

import environments
import pytest

environments.importorskip("onnxruntime")

from bad_inputs import CASES, run_case  # noqa: E402


def test_the_catalogue_has_the_classes_the_issue_asks_for():
    names = [case.name for case in CASES]
    assert len(names) == len(set(names)) and len(names) >= 60
    assert {case.point for case in CASES} == {1, 2, 3, 4, 5}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_handled(case, tmp_path):
    if case.root and os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    failure, _ = run_case(case, tmp_path)
    assert failure is None, failure


def test_docs_list_every_class():
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "reliability.md").read_text()
    missing = [case.name for case in CASES if f"`{case.name}`" not in doc]
    assert not missing, f"docs/reliability.md lacks {missing}"
