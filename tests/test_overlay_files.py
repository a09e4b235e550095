"""Finding the overlay's files and reading ``kcnn.json`` (no pynq needed)."""

import json

import pytest

import kcnn.accelerator
from kcnn import Accelerator, models
from kcnn.config import ARITHMETIC_CONTRACT, BUILD_DEFAULTS
from kcnn.errors import KcnnError
from kcnn.overlay import OVERLAY_ENV, find_overlay, read_overlay_config

pytestmark = [pytest.mark.main_env, pytest.mark.board_env]


def make_overlay(folder, files=("kcnn.bit", "kcnn.hwh", "kcnn.json")):
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        (folder / name).write_text("x")
    return folder


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv(OVERLAY_ENV, raising=False)


def test_lookup_order_explicit_then_environment(tmp_path, monkeypatch):
    explicit = make_overlay(tmp_path / "a")
    env = make_overlay(tmp_path / "b")
    monkeypatch.setenv(OVERLAY_ENV, str(env))
    found = find_overlay(explicit)
    assert found.bit == explicit / "kcnn.bit" and found.source == "explicit path"
    assert find_overlay(explicit / "kcnn.bit").hwh == explicit / "kcnn.hwh"
    found = find_overlay()
    assert found.json == env / "kcnn.json" and found.source == f"${OVERLAY_ENV}"


def test_missing_file_names_all_three_places(tmp_path, monkeypatch):
    partial = make_overlay(tmp_path / "a", files=("kcnn.bit", "kcnn.json"))
    monkeypatch.setenv(OVERLAY_ENV, str(make_overlay(tmp_path / "b")))
    with pytest.raises(KcnnError) as err:
        find_overlay(partial)  # given but incomplete: no silent fall-back to $KCNN_OVERLAY
    message = str(err.value)
    assert "missing kcnn.hwh" in message and str(partial) in message
    assert f"${OVERLAY_ENV}: not consulted" in message and "package folder" in message


def test_nothing_given_and_no_packaged_overlay(tmp_path):
    with pytest.raises(KcnnError) as err:
        find_overlay()
    message = str(err.value)
    assert "explicit path: not given" in message and f"${OVERLAY_ENV}: not given" in message
    assert "package folder" in message and "missing kcnn.bit" in message


def test_overlay_config_is_validated(tmp_path):
    path = tmp_path / "kcnn.json"
    good = {"contract": dict(ARITHMETIC_CONTRACT), "build": dict(BUILD_DEFAULTS)}
    path.write_text(json.dumps(good))
    assert read_overlay_config(path)["build"]["P"] == BUILD_DEFAULTS["P"]
    del good["build"]["W_DEPTH"]
    path.write_text(json.dumps(good))
    with pytest.raises(KcnnError, match="build.W_DEPTH missing") as err:
        read_overlay_config(path)
    assert err.value.file == str(path) and err.value.field == "W_DEPTH"
    path.write_text("{")
    with pytest.raises(KcnnError, match="cannot read the overlay configuration"):
        read_overlay_config(path)


def test_auto_with_a_board_but_no_overlay_falls_back_and_says_so(tmp_path, monkeypatch):
    # The board's presence is the one thing faked here (its FPGA manager file).
    monkeypatch.setattr(kcnn.accelerator, "board_present", lambda: True)
    table = models.table_path("lenet5")
    with pytest.warns(RuntimeWarning, match="falling back to the simulator"):
        acc = Accelerator(table, backend="auto", overlay=tmp_path / "none")
    assert acc.backend == "sim" and "board back-end failed" in acc.reason
    with pytest.raises(KcnnError):
        Accelerator(table, backend="board", overlay=tmp_path / "none")
