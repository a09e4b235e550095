"""The AlexNet-sized model: the BVLC graph (opset 9, grouped conv, two LRNs, batch 1) with
seeded weights pruned to Deep Compression's densities, quantized end to end."""

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from kcnn.kfile import load  # noqa: E402
from kcnn.models.bvlc import DC_DENSITIES, build_bvlc_alexnet, calibration_images  # noqa: E402
from kcnn.quantizer import quantize  # noqa: E402
from kcnn.report import build_report  # noqa: E402


@pytest.mark.slow
def test_bvlc_alexnet_quantizes(tmp_path, slow_full):
    onnx_path = build_bvlc_alexnet(tmp_path / "bvlc_alexnet.onnx", seed=0)
    calib = calibration_images(8 if slow_full else 2)
    model = quantize(onnx_path, calib, log=None)
    onnx_path.unlink()  # 244 MB
    saved = load(model.save(tmp_path / "bvlc.kcnn"))
    report = build_report(saved)
    assert report["totals"]["dense_macs"] == 654_560_384  # docs/macs.md
    assert report["images"] == len(calib)
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
