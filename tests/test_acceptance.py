"""Acceptance on the 1,000 held-out test digits at the CLI's default settings.

The defaults were chosen on the train/validation split only; the same settings serve
every model. The figures are tabled in models/README.md.
"""

import functools

import environments
import numpy as np
import pytest

environments.importorskip("onnxruntime")

from kcnn import models  # noqa: E402
from kcnn.quantizer import quantize  # noqa: E402
from kcnn.quantizer.reference import run_onnx  # noqa: E402
from kcnn.report import build_report  # noqa: E402
from kcnn.sim.engine import simulator  # noqa: E402


@functools.cache
def accuracy(name):
    path = models.model_path(name)
    model = quantize(path, models.calibration_digits(), log=None, name=name)
    x, y = models.digits("test")
    float_top1 = float(np.mean(run_onnx(path, x).argmax(axis=1) == y))
    kcnn_top1 = float(np.mean(simulator(model).run(x)[1].argmax(axis=1) == y))
    return float_top1, kcnn_top1, build_report(model)["totals"]


@pytest.mark.slow
def test_alexnet_style_accuracy_storage_and_compute_together():
    float_top1, kcnn_top1, totals = accuracy("alexnet_mnist")
    assert float_top1 - kcnn_top1 <= 0.005
    assert totals["storage_reduction_fp32"] >= 0.90
    assert totals["compute_reduction"] >= 0.70


@pytest.mark.slow
def test_lenet_style_accuracy():
    float_top1, kcnn_top1, _ = accuracy("lenet5")
    assert float_top1 - kcnn_top1 <= 0.005


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet_mnist", "squeezenet_mnist"])
def test_graph_models_accuracy_storage_and_compute(name):
    """Residual blocks and fire modules (Concats): within 0.5 points of float, storage
    >= 85 % and compute >= 60 % below dense, every op on the fabric."""
    float_top1, kcnn_top1, totals = accuracy(name)
    assert float_top1 - kcnn_top1 <= 0.005
    assert totals["storage_reduction_fp32"] >= 0.85
    assert totals["compute_reduction"] >= 0.60


@pytest.mark.slow
def test_mobilenet_style_storage_and_compute_meet_the_targets():
    """Inverted residual blocks (depthwise convs, ReLU6, linear bottlenecks): storage and
    compute are held to the other graph models' targets; the accuracy drop, which misses
    its target (models/README.md), must not get worse than the table's 1.3 points."""
    float_top1, kcnn_top1, totals = accuracy("mobilenet_mnist")
    assert totals["storage_reduction_fp32"] >= 0.85
    assert totals["compute_reduction"] >= 0.60
    assert float_top1 - kcnn_top1 <= 0.0135


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="mobilenet_mnist drops 1.3 points (models/README.md)")
def test_mobilenet_style_accuracy_within_half_a_point():
    """The target the others meet; strict, so meeting it fails until the mark goes."""
    float_top1, kcnn_top1, _ = accuracy("mobilenet_mnist")
    assert float_top1 - kcnn_top1 <= 0.005
