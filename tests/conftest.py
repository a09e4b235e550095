"""Fixtures shared by test modules."""

import pytest

# ---- the AlexNet-sized model, built and quantized once per session (about a minute) ------


@pytest.fixture(scope="session")
def bvlc_onnx(tmp_path_factory):
    """The BVLC AlexNet graph (244 MB) with the streaming report's seed."""
    from kcnn.models.bvlc import build_bvlc_alexnet
    from kcnn.notebooks.streaming_report import SEED

    path = build_bvlc_alexnet(tmp_path_factory.mktemp("bvlc") / "bvlc_alexnet.onnx", seed=SEED)
    yield path
    path.unlink()  # pytest keeps the folders of the last sessions


@pytest.fixture(scope="session")
def bvlc_model(bvlc_onnx):
    """The graph quantized as ``python -m kcnn.notebooks.streaming_report`` does."""
    from kcnn.notebooks.streaming_report import IMAGES, quantize_bvlc

    return quantize_bvlc(bvlc_onnx, IMAGES, log=None)
