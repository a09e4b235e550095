"""The AlexNet-sized model: the BVLC graph (opset 9, grouped conv, two LRNs, batch 1) with
seeded weights pruned to Deep Compression's densities, quantized end to end, and the
layer-streaming report the notebooks read. The model is built and quantized once per
session (tests/conftest.py), exactly as the report's command does."""

import json
from pathlib import Path

import environments
import numpy as np
import pytest

environments.importorskip("onnxruntime")

from kcnn.kfile import load  # noqa: E402
from kcnn.models.bvlc import DC_DENSITIES  # noqa: E402
from kcnn.notebooks.streaming_report import IMAGES, SEED, streaming_report, to_json  # noqa: E402
from kcnn.report import build_report  # noqa: E402

STREAMING_JSON = Path(__file__).resolve().parents[1] / "notebooks" / "alexnet_streaming.json"
#: What follows from the calibration's activation densities, which come from onnxruntime's
#: float32 results and may move in their last digits with another CPU or onnxruntime build:
#: compared within DENSITY_RTOL. Everything else (the tiler's jobs and words, stream_bits,
#: K, J, weight densities, storage, the other phases' cycles) must be equal.
DENSITY_DERIVED = {
    "act_density",
    "effective_pairs",
    "adds",
    "compute_reduction",
    "compute",
    "cycles",
    "fabric_s",
    "fps",
}
DENSITY_RTOL = 1e-3


@pytest.mark.slow
def test_bvlc_alexnet_quantizes(bvlc_model, tmp_path):
    saved = load(bvlc_model.save(tmp_path / "bvlc.kcnn"))
    report = build_report(saved)
    assert report["totals"]["dense_macs"] == 654_560_384  # docs/macs.md
    assert report["images"] == IMAGES
    fabric = [layer["name"] for layer in report["layers"]]
    assert len(fabric) == 8
    for row, existing in zip(report["layers"], DC_DENSITIES.values(), strict=True):
        # auto density never un-prunes, and the FC layers are stored sparse
        assert row["weight_density"] <= existing + 1e-6
        assert row["K"] <= 16 and row["J"] <= 16
        assert 0 < row["effective_pairs"] < row["dense_macs"]
    assert [r["weight_form"] for r in report["layers"][5:]] == ["sparse"] * 3
    assert [h["op"] for h in report["host_ops"]] == ["lrn", "lrn", "softmax"]
    assert saved.maps["input"].signed
    # the storage of the pruned + clustered + sparse format beats Deep Compression's P+Q 27x
    assert report["totals"]["storage_reduction_fp32"] > 1 - 1 / 27
    assert np.isfinite(report["totals"]["compute_reduction"])


def _by_field(report: dict) -> dict:
    """Job rows as dicts keyed by the report's job fields, so each column has a name."""
    for layer in report["layers"]:
        layer["jobs"] = [dict(zip(report["job_fields"], job, strict=True)) for job in layer["jobs"]]
    return report


def _compare(made, committed, where="report", inexact=False):
    if isinstance(committed, dict):
        assert made.keys() == committed.keys(), where
        for key in committed:
            _compare(made[key], committed[key], f"{where}.{key}", key in DENSITY_DERIVED)
    elif isinstance(committed, list):
        assert len(made) == len(committed), where
        for index, (a, b) in enumerate(zip(made, committed, strict=True)):
            _compare(a, b, f"{where}[{index}]", inexact)
    elif inexact:
        assert made == pytest.approx(committed, rel=DENSITY_RTOL), where
    else:
        assert made == committed, where


@pytest.mark.slow
def test_streaming_report_is_what_its_command_makes(bvlc_model):
    made = json.loads(to_json(streaming_report(bvlc_model, seed=SEED, images=IMAGES)))
    committed = json.loads(STREAMING_JSON.read_text())
    # A stale file fails here: remake it with
    #   python -m kcnn.notebooks.streaming_report notebooks/alexnet_streaming.json
    _compare(_by_field(made), _by_field(committed))
