"""Finding the overlay's files, reading ``kcnn.json`` and refusing a build that missed
timing; the README's first checks on the board (no pynq needed)."""

import json
import re
from pathlib import Path

import pytest

import kcnn.accelerator
from kcnn import Accelerator, models
from kcnn.cli import main
from kcnn.config import ARITHMETIC_CONTRACT, BuildParams
from kcnn.errors import KcnnError
from kcnn.overlay import (
    OVERLAY_ENV,
    check_timing,
    find_overlay,
    format_measured,
    read_overlay_config,
)

ROOT = Path(__file__).resolve().parents[1]
BUILD = BuildParams().as_dict()

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
    good = {"contract": dict(ARITHMETIC_CONTRACT), "build": dict(BUILD)}
    path.write_text(json.dumps(good))
    config = read_overlay_config(path)
    assert config["build"]["P"] == BUILD["P"] and config["params"] == BuildParams()
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


def test_every_build_parameter_is_required_and_validated(tmp_path):
    path = tmp_path / "kcnn.json"
    for key in ("STREAMS", "LRN_LANES", "CH_MAX"):
        build = {k: v for k, v in BUILD.items() if k != key}
        path.write_text(json.dumps({"contract": dict(ARITHMETIC_CONTRACT), "build": build}))
        with pytest.raises(KcnnError, match=f"build.{key} missing"):
            read_overlay_config(path)
    path.write_text(
        json.dumps({"contract": dict(ARITHMETIC_CONTRACT), "build": {**BUILD, "STREAMS": 3}})
    )
    with pytest.raises(KcnnError, match="3 is not a power of two in"):
        read_overlay_config(path)
    path.write_text(
        json.dumps({"contract": dict(ARITHMETIC_CONTRACT), "build": BUILD, "timing": "met"})
    )
    with pytest.raises(KcnnError, match="section 'timing' is not an object"):
        read_overlay_config(path)


def timing_config(**timing):
    return {"contract": dict(ARITHMETIC_CONTRACT), "build": dict(BUILD), "timing": timing}


def test_build_that_missed_timing_is_refused_unless_asked():
    failed = timing_config(wns_ns=-0.215, met=False, negative_slack_allowed=False)
    with pytest.raises(KcnnError, match=r"WNS -0.215 ns at 100.0 MHz.*\(refused\)") as err:
        check_timing(failed, "overlay/kcnn_timing_failed.json")
    assert err.value.field == "timing" and "allow_timing_failure=True" in str(err.value)
    with pytest.warns(RuntimeWarning, match="timing not met"):
        check_timing(failed, "x", allow=True)
    # Built on purpose with allow_negative_slack=1: loads, and says so.
    with pytest.warns(RuntimeWarning, match="WNS -0.215 ns"):
        check_timing(timing_config(wns_ns=-0.215, met=False, negative_slack_allowed=True), "x")
    # No figure at all is not a pass.
    with pytest.raises(KcnnError, match="WNS not reported at 100.0 MHz"):
        check_timing(timing_config(wns_ns=None, met=False, negative_slack_allowed=False), "x")
    check_timing(timing_config(wns_ns=0.1, met=True, negative_slack_allowed=False), "x")
    check_timing({"contract": {}, "build": dict(BUILD)}, "x")  # written by hand


def test_folder_with_only_a_timing_failed_build_says_so(tmp_path):
    folder = make_overlay(
        tmp_path / "o",
        files=("kcnn_timing_failed.bit", "kcnn_timing_failed.hwh", "kcnn_timing_failed.json"),
    )
    with pytest.raises(
        KcnnError, match="kcnn_timing_failed.bit is there: that build missed timing"
    ):
        find_overlay(folder)
    assert find_overlay(folder / "kcnn_timing_failed.bit").json.name == "kcnn_timing_failed.json"


def overlay_folder(tmp_path, **extra):
    folder = make_overlay(tmp_path / "overlay")
    config = {"contract": dict(ARITHMETIC_CONTRACT), "build": {**BUILD, "P": 8}, **extra}
    (folder / "kcnn.json").write_text(json.dumps(config))
    return folder


def test_report_prints_the_overlays_measured_figures_beside_the_estimate(tmp_path, capsys):
    folder = overlay_folder(
        tmp_path,
        timing={"wns_ns": 0.042, "met": True, "negative_slack_allowed": False},
        utilization={"lut": 26600, "ff": 21280, "bram36": 70.5, "dsp48": 110},
    )
    out = tmp_path / "report.json"
    argv = ["report", str(models.table_path("lenet5")), "--estimate", "--overlay", str(folder)]
    assert main([*argv, "--json-out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "P=8 (128 lanes)" in err  # the estimate takes the overlay's parameters
    line = next(s for s in err.splitlines() if s.startswith("overlay (measured"))
    assert "LUT 26600 (50%) vs estimated" in line and "BRAM36 70.5 (50%)" in line
    assert "WNS 0.042 ns (timing met)" in line
    report = json.loads(out.read_text())
    assert report["overlay"]["utilization"]["dsp48"] == 110


def test_measured_figures_missing_from_kcnn_json_print_as_unknown():
    line = format_measured({"utilization": {"lut": None}, "timing": {}})
    assert line.endswith("DSP48 ?; WNS ? (timing unknown)") and "LUT ?" in line


def test_readme_lists_the_first_checks_on_the_board_in_order():
    """Issue 14 point 3: after the first build, the probe answer, then ``status``, then a
    LeNet run equal to sim, then timing and utilization against the estimate."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## On the board", 1)[1].split("\n## ", 1)[0]
    checks = section.split("**First checks", 1)[1]
    items = re.findall(r"^\d+\. \*\*(.+?)\*\*", checks, flags=re.M)
    assert [i.split()[0].strip(".:").lower() for i in items[:4]] == [
        "probe",
        "status",
        "lenet",
        "timing",
    ]
    assert "kcnn report" in checks and "--estimate --overlay" in checks
    assert ".status()" in checks and "engine.info" in checks
