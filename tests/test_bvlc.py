"""The AlexNet-sized model: the BVLC graph (opset 9, grouped conv, two LRNs, batch 1) with
seeded weights pruned to Deep Compression's densities, quantized end to end, and the
layer-streaming report the notebooks read. The model is built and quantized once per
session (tests/conftest.py), exactly as the report's command does."""

import json
import re
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
#: compared within DENSITY_RTOL. The paths name a value wherever it sits in a list (``[]``).
#: Everything else must be equal: the planner's steps, jobs, words, loop trips and cycles,
#: the estimate's times, host parts, resources and dense baseline (all from integers of the
#: plan and the model), K, J, weight densities and storage.
DENSITY_DERIVED = {
    "report.layers[].act_density",
    "report.layers[].effective_pairs",
    "report.layers[].adds",
    "report.totals.effective_pairs",
    "report.totals.adds",
    "report.totals.compute_reduction",
    # the physical limit counts effective pairs against the lanes
    "estimate.baselines.limit.effective_pairs",
    "estimate.baselines.limit.fabric_s",
    "estimate.baselines.limit.fps",
    "estimate.share_of_limit",
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
    assert [h["op"] for h in report["host_ops"]] == ["softmax"]  # LRNs run on the fabric
    assert saved.maps["input"].signed
    # the storage of the pruned + clustered + sparse format beats Deep Compression's P+Q 27x
    assert report["totals"]["storage_reduction_fp32"] > 1 - 1 / 27
    assert np.isfinite(report["totals"]["compute_reduction"])


def _by_field(report: dict) -> dict:
    """Job and loop-log rows as dicts keyed by the report's fields, so each column has a
    name in a failure."""
    for step in report["steps"]:
        step["jobs"] = [dict(zip(report["job_fields"], job, strict=True)) for job in step["jobs"]]
        step["loop_log"] = [
            dict(zip(report["loop_fields"], run, strict=True)) for run in step["loop_log"]
        ]
    return report


def _compare(made, committed, where=""):
    if isinstance(committed, dict):
        assert made.keys() == committed.keys(), where
        for key in committed:
            _compare(made[key], committed[key], f"{where}.{key}" if where else key)
    elif isinstance(committed, list):
        assert len(made) == len(committed), where
        for index, (a, b) in enumerate(zip(made, committed, strict=True)):
            _compare(a, b, f"{where}[{index}]")
    elif re.sub(r"\[\d+\]", "[]", where) in DENSITY_DERIVED:
        assert made == pytest.approx(committed, rel=DENSITY_RTOL), where
    else:
        assert made == committed, where


@pytest.mark.slow
def test_streaming_report_is_what_its_command_makes(bvlc_model):
    made = json.loads(to_json(streaming_report(bvlc_model, seed=SEED, images=IMAGES)))
    committed = json.loads(STREAMING_JSON.read_text())
    # A stale file fails here: remake it with
    #   python notebooks/streaming_report.py notebooks/alexnet_streaming.json
    _compare(_by_field(made), _by_field(committed))
