"""Acceptance on the 1,000 held-out test digits at the CLI's default settings.

The defaults were chosen on the train/validation split only; the same settings serve
every model. The figures are tabled in models/README.md.
"""

import environments
import numpy as np
import pytest

environments.importorskip("onnxruntime")

from kcnn import models  # noqa: E402
from kcnn.quantizer import quantize  # noqa: E402
from kcnn.quantizer.reference import run_onnx  # noqa: E402
from kcnn.report import build_report  # noqa: E402
from kcnn.sim.engine import simulator  # noqa: E402


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
def test_mobilenet_style_figures_are_the_readme_ones():
    """MobileNet-v2-style misses the targets (models/README.md says why); its figures
    must not get worse than the table's."""
    float_top1, kcnn_top1, totals = accuracy("mobilenet_mnist")
    assert float_top1 - kcnn_top1 <= 0.0105
    assert totals["storage_reduction_fp32"] >= 0.83
    assert totals["compute_reduction"] >= 0.47
