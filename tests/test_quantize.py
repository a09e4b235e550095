"""Quantizer passes: pruning, clustering, calibration, tables, determinism, errors."""

import environments
import numpy as np
import pytest

environments.importorskip("onnxruntime")

import onnx_cases  # noqa: E402
from onnx import numpy_helper  # noqa: E402

from kcnn.errors import KcnnError  # noqa: E402
from kcnn.kfile import load  # noqa: E402
from kcnn.quantizer import quantize  # noqa: E402
from kcnn.quantizer.lowering import lower  # noqa: E402
from kcnn.quantizer.onnx_import import import_onnx  # noqa: E402
from kcnn.quantizer.passes import channel_scores, cluster_layer_weights, prune  # noqa: E402
from kcnn.report import build_report  # noqa: E402


def case(name="everything_op13", n=32, seed=0):
    model, x = onnx_cases.SUPPORTED[name]()
    calib = np.random.default_rng(seed).standard_normal((n, *x.shape[1:])).astype(np.float32)
    return model, calib


def float_weights(model) -> dict:
    """Each fabric layer's float weights as the quantizer's passes receive them (BatchNorm
    folded)."""
    return {layer.name: layer.weight for layer in lower(import_onnx(model)).fabric_layers()}


def fabric(q) -> dict:
    return {layer.name: layer for layer in q.layers if layer.is_fabric}


def test_same_inputs_give_identical_bytes(tmp_path):
    model, calib = case()
    a = quantize(model, calib, log=None).save(tmp_path / "a.kcnn")
    b = quantize(model, calib, log=None).save(tmp_path / "b.kcnn")
    assert a.read_bytes() == b.read_bytes()


def test_cluster_counts_are_respected(tmp_path):
    model, calib = case()
    q = quantize(model, calib, log=None, weight_clusters="4,fc_a=8", act_clusters=5)
    for layer in q.layers:
        if layer.is_fabric:
            assert 2 <= layer.K <= (8 if layer.name == "fc_a" else 4)
            assert q.maps[layer.in_map].J <= 5
    report = build_report(q)
    assert {r["name"]: r["K"] for r in report["layers"]}["fc_a"] > 4


def test_fixed_density_and_never_unprune():
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((8, 4, 3, 3))
    weight[0] = 0.0  # an already pruned channel stays pruned
    pruned = prune(weight, 0.4)
    assert np.count_nonzero(pruned) == round(0.4 * weight.size)
    assert not np.any(pruned[0])
    assert np.all((pruned == 0) | (pruned == weight))
    # density 1.0 keeps exactly the existing non-zeros
    assert np.array_equal(prune(pruned, 1.0), pruned)


def test_channel_normalised_ranking_keeps_low_gain_channels():
    rng = np.random.default_rng(4)
    weight = rng.standard_normal((4, 64))
    weight[2] *= 1e-3  # a low-gain channel (e.g. after BN folding)
    pruned = prune(weight, 0.25)
    assert np.count_nonzero(pruned[2]) > 0
    scores = channel_scores(weight)
    assert np.allclose(np.sqrt(np.mean(scores**2, axis=1)), 1.0)


def test_weight_codebook_is_integer_and_zero_free():
    rng = np.random.default_rng(5)
    weight = rng.laplace(size=(16, 3, 3, 3)) * (rng.random((16, 3, 3, 3)) < 0.5)
    table = cluster_layer_weights(weight, 16, "dp", 0)
    assert table.wq.dtype == np.int64 and 0 not in table.wq and np.all(np.diff(table.wq) > 0)
    assert np.abs(table.wq).max() == 127
    assert not table.codes[weight == 0].any()
    # Every non-zero weight takes its nearest integer centroid, a tie going to the lower one
    # (as assign_nearest breaks it); 0 is a candidate only when a centroid rounded to it, and
    # a weight nearest to it is dropped (code 0). Found here by brute force over all
    # candidates, not by the midpoint search the quantizer uses.
    nonzero = weight != 0
    units = weight[nonzero] / table.scale
    dropped = table.codes[nonzero] == 0
    candidates = np.sort(np.concatenate([table.wq, [0] if dropped.any() else []]))
    nearest = candidates[np.argmin(np.abs(units[:, None] - candidates[None, :]), axis=1)]
    assert np.array_equal(np.concatenate([[0], table.wq])[table.codes[nonzero]], nearest)


def test_few_distinct_values_get_that_many_codes():
    weight = np.array([[0.5, -0.5, 0.0, 0.5], [0.25, 0.0, 0.0, -0.5]])
    table = cluster_layer_weights(weight, 16, "dp", 0)
    assert list(table.wq) == [-127, 64, 127]
    empty = cluster_layer_weights(np.zeros((2, 3)), 16, "dp", 0)
    assert empty.wq.size == 0 and not empty.codes.any()


def within_cluster_sse(weight: np.ndarray, layer) -> float:
    """Squared error of the non-zero float weights against the table's decoded centroids."""
    decoded = np.concatenate([[0.0], layer.wq * layer.w_scale])[layer.codes]
    return float(np.sum((weight - decoded)[weight != 0] ** 2))


def test_sklearn_reference_method_gives_close_tables():
    pytest.importorskip("sklearn")
    model, calib = case()
    ours = fabric(quantize(model, calib, log=None, density=1.0))
    ref = fabric(quantize(model, calib, log=None, density=1.0, kmeans="sklearn"))
    assert list(ours) == list(ref)
    for name, weight in float_weights(model).items():
        assert within_cluster_sse(weight, ours[name]) <= 1.01 * within_cluster_sse(
            weight, ref[name]
        ), name


def pruned_to(model, density: float):
    """A copy of ``model`` with every weight tensor (2-D or more) magnitude-pruned to
    ``density``."""
    model = type(model).FromString(model.SerializeToString())
    for tensor in model.graph.initializer:
        w = numpy_helper.to_array(tensor)
        if w.ndim >= 2:
            cut = np.sort(np.abs(w), axis=None)[::-1][round(density * w.size) - 1]
            tensor.CopyFrom(numpy_helper.from_array(np.where(np.abs(w) >= cut, w, 0), tensor.name))
    return model


def test_auto_density_never_above_existing_and_records_search():
    model, calib = case(n=48)
    model = pruned_to(model, 0.3)
    weights = float_weights(model)
    q = quantize(model, calib, log=None)
    search = q.meta["sensitivity"]
    for name, layer in fabric(q).items():
        existing = np.count_nonzero(weights[name]) / weights[name].size
        assert existing <= 0.31, name
        # Never a weight that was zero, so never above the existing density.
        assert not np.any((layer.codes != 0) & (weights[name] == 0)), name
        assert q.meta["densities"][name] <= existing
        assert search[name]["densities"][0] == existing
        assert max(search[name]["densities"]) <= existing
    assert search["joint_error"] <= q.meta["config"]["auto_joint_tolerance"]
    assert all(
        e <= q.meta["config"]["auto_tolerance"]
        for k, v in search.items()
        if k != "joint_error"
        for e in v["errors"]
    )


def test_thresholds_and_proof_hold(tmp_path):
    model, calib = case()
    q = load(quantize(model, calib, log=None).save(tmp_path / "q.kcnn"))
    for layer in q.layers:
        if layer.is_fabric and layer.thresholds is not None:
            assert layer.thresholds[0] >= 1 and np.all(np.diff(layer.thresholds) >= 0)
    assert q.maps["input"].signed  # the calibration data is signed


@pytest.mark.parametrize(
    "make,fragment",
    [
        (lambda s: np.zeros((4, s[0], s[1] - 1, s[2]), np.float32), "is not \\(N,"),
        (lambda s: np.zeros((0, *s), np.float32), "empty"),
        (lambda s: np.zeros((4, *s), np.int32), "dtype int32"),
        (lambda s: np.full((4, *s), np.nan, np.float32), "NaN"),
        (lambda s: [np.zeros(s, np.float32), np.zeros(3, np.float32)], "rectangular"),
        (lambda s: np.zeros((4, *s), np.float32), "zero everywhere"),
    ],
)
def test_bad_calibration_is_named(make, fragment):
    model, good = case()
    calib = make(good.shape[1:])
    with pytest.raises(KcnnError, match=fragment) as info:
        quantize(model, calib, log=None)
    assert info.value.field == "calibration"


@pytest.mark.parametrize(
    "options,field",
    [
        ({"weight_clusters": 17}, "weight_clusters"),
        ({"act_clusters": "4,nosuch=3"}, "act_clusters"),
        ({"density": "conv_a=1.5"}, "density"),
        ({"density": "x"}, "density"),
        ({"kmeans": "lloyd"}, "kmeans"),
        ({"colour": "red"}, "config"),
    ],
)
def test_bad_options_are_named(options, field):
    model, calib = case()
    with pytest.raises(KcnnError) as info:
        quantize(model, calib, log=None, **options)
    assert info.value.field == field


def test_activation_aware_scores_keep_weights_on_strong_inputs():
    weight = np.ones((3, 4, 2, 2))
    rms = np.tile(np.array([[0.1, 5.0, 0.2, 0.3]]), (3, 1))  # input channel 1 is loud
    pruned = prune(weight, 0.25, channel_scores(weight, rms))
    assert np.count_nonzero(pruned[:, 1]) == pruned.size * 0.25
    assert np.count_nonzero(pruned[:, [0, 2, 3]]) == 0


@pytest.mark.parametrize("name", ["lenet5", "alexnet_mnist"])
def test_outlier_clipping_stays_silent_on_the_bundled_models(name):
    import warnings

    from kcnn import models

    calib = models.calibration_digits()[:256]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clipping warning would fail the run
        q = quantize(models.model_path(name), calib, log=None, density=0.5)
    assert "clipped" not in q.meta["calibration"]


def test_outliers_are_clipped_to_the_robust_range():
    from kcnn.quantizer.passes import robust_range

    values = np.random.default_rng(0).standard_normal(100_000)
    assert robust_range(values, "map") is None
    values[7] = 1e30
    with pytest.warns(RuntimeWarning, match="outliers"):
        robust = robust_range(values, "map")
    assert robust == pytest.approx(np.percentile(np.abs(values), 99.99))


def test_a_dead_branch_quantizes_with_a_warning_and_stays_zero():
    """A map zero on every calibration input (a dead ReLU branch next to live ones) gets
    codes that stay 0, with a warning naming it; the rest of the model is unchanged."""
    from onnx_cases import _Net

    from kcnn.sim.engine import simulator

    net = _Net(13, (3, 6, 6), seed=3)
    live = net.relu("relu_live", net.conv("conv_live", "x", 4, 3, pads=[1, 1, 1, 1]))
    dead = net.conv("conv_dead", "x", 4, 3, pads=[1, 1, 1, 1])
    for init in net.inits:  # weights 0, bias -1: the ReLU after it is 0 for every input
        if init.name.startswith("conv_dead."):
            value = numpy_helper.to_array(init)
            fill = -1.0 if init.name.endswith(".b") else 0.0
            init.CopyFrom(numpy_helper.from_array(np.full_like(value, fill), init.name))
    dead = net.relu("relu_dead", dead)
    after = net.relu("relu_after", net.conv("conv_after", dead, 4, 1))
    y = net.op("Concat", "concat", [live, after], axis=1)
    model, x = net.finish(net.conv("conv_c", y, 5, 6))
    calib = np.random.default_rng(0).standard_normal((32, 3, 6, 6)).astype(np.float32)
    with pytest.warns(RuntimeWarning, match="'conv_dead' is zero on every calibration input"):
        quantized = quantize(model, calib, log=None)
    maps = simulator(quantized).run(x, trace=True)[2]
    assert not maps["conv_dead"].any() and maps["conv_live"].any()


def test_a_relu_map_joined_with_a_signed_map_stays_non_negative_and_loads(tmp_path):
    """DenseNet's stem: Conv + Relu -> MaxPool, concatenated with a dense layer's linear
    Conv (a signed map), so one codebook holds negative centroids. The Relu layer must
    still emit code 0 for every acc <= 0 (its thresholds for the negative boundaries are
    always reached), the max-pool must see only codes ordered like their values, and the
    file must load back."""
    from onnx_cases import _Net

    from kcnn.kfile import load
    from kcnn.sim.engine import simulator

    net = _Net(13, (3, 8, 8), seed=5)
    stem = net.relu("stem_relu", net.conv("stem", "x", 4, 3, pads=[1, 1, 1, 1]))
    pooled = net.op("MaxPool", "pool", [stem], kernel_shape=[2, 2], strides=[2, 2])
    linear = net.conv("dense_conv", pooled, 4, 3, pads=[1, 1, 1, 1])
    joined = net.op("Concat", "concat", [pooled, linear], axis=1)
    model, x = net.finish(net.conv("head", joined, 5, 4))
    calib = np.random.default_rng(1).standard_normal((16, 3, 8, 8)).astype(np.float32)
    quantized = load(quantize(model, calib, log=None).save(tmp_path / "joined.kcnn"))
    book = quantized.maps[quantized.codebook_of("stem")]
    assert np.any(book.aq < 0), "the case needs a signed shared codebook"
    values = np.concatenate([[0], book.aq])
    maps = simulator(quantized).run(calib, trace=True)[2]
    assert values[maps["stem"]].min() == 0 and values[maps["pool"]].min() == 0
    assert values[maps["dense_conv"]].min() < 0
