"""The simulator against direct loops over every output, tap and code."""

import numpy as np
import pytest

from kcnn import hostops
from kcnn.model import Codebook, Layer, Model
from kcnn.sim.engine import NumpyFabric

# The tests that need no quantizer also run on the board's Python and numpy.
pytestmark = pytest.mark.main_env


def fabric_layer(layer, codes, book):
    """The layer's ``acc`` on ``codes`` (it emits acc: no thresholds)."""
    layer.in_map = "m"
    model = Model("t", layer.in_shape, [layer], {"m": book})
    return NumpyFabric(model).acc(layer, codes)


def direct_conv(layer, codes, book):
    n, c_in, h, w = codes.shape
    c_out, c_in_g, kh, kw = layer.codes.shape
    a = layer.attrs
    top, left, bottom, right = a["pads"]
    (sh, sw), (dh, dw) = a["strides"], a["dilations"]
    oh = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    ow = (w + left + right - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, c_out, oh, ow), np.int64)
    for b in range(n):
        for co in range(c_out):
            g = co // (c_out // a["groups"])
            for y in range(oh):
                for x in range(ow):
                    acc = int(layer.bias[co])
                    for ci in range(c_in_g):
                        for i in range(kh):
                            for j in range(kw):
                                yy, xx = y * sh - top + i * dh, x * sw - left + j * dw
                                if not (0 <= yy < h and 0 <= xx < w):
                                    continue
                                wc = layer.codes[co, ci, i, j]
                                ac = codes[b, g * c_in_g + ci, yy, xx]
                                if wc and ac:  # the product table: P[0][*] = P[*][0] = 0
                                    acc += int(layer.wq[wc - 1]) * int(book.aq[ac - 1])
                    out[b, co, y, x] = acc
    return out


@pytest.mark.board_env
@pytest.mark.parametrize(
    "groups,strides,pads,dilations",
    [
        (1, [1, 1], [1, 1, 1, 1], [1, 1]),
        (2, [2, 1], [0, 1, 2, 0], [1, 2]),
        (4, [1, 1], [0, 0, 0, 0], [1, 1]),
    ],
)
def test_conv_matches_product_table_loops(groups, strides, pads, dilations):
    rng = np.random.default_rng(groups)
    c_out, c_in = 8, 4
    layer = Layer(
        "c",
        "conv",
        (c_in, 6, 5),
        (c_out, 0, 0),
        attrs={
            "groups": groups,
            "strides": strides,
            "pads": pads,
            "dilations": dilations,
            "kernel": [3, 2],
        },
        codes=rng.integers(0, 6, (c_out, c_in // groups, 3, 2)).astype(np.uint8),
        wq=np.array([-90, -7, 3, 50, 127]),
        bias=rng.integers(-500, 500, c_out),
    )
    book = Codebook("m", np.array([1, 9, 40, 255]), 0.1, False)
    codes = rng.integers(0, 5, (2, c_in, 6, 5)).astype(np.uint8)
    acc = fabric_layer(layer, codes, book)
    assert np.array_equal(acc.astype(np.int64), direct_conv(layer, codes, book))


@pytest.mark.board_env
def test_fc_matches_product_table_loops():
    rng = np.random.default_rng(9)
    layer = Layer(
        "f",
        "fc",
        (12,),
        (5,),
        codes=rng.integers(0, 4, (5, 12)).astype(np.uint8),
        wq=np.array([-3, 2, 100]),
        bias=rng.integers(-50, 50, 5),
    )
    book = Codebook("m", np.array([-20, 5, 6]), 0.5, True)
    codes = rng.integers(0, 4, (3, 12)).astype(np.uint8)
    expected = np.array(
        [
            [
                layer.bias[o]
                + sum(
                    int(layer.wq[layer.codes[o, i] - 1]) * int(book.aq[codes[b, i] - 1])
                    for i in range(12)
                    if layer.codes[o, i] and codes[b, i]
                )
                for o in range(5)
            ]
            for b in range(3)
        ]
    )
    assert np.array_equal(fabric_layer(layer, codes, book).astype(np.int64), expected)


@pytest.mark.board_env
def test_maxpool_on_codes_pads_with_code_zero():
    codes = np.arange(1, 17, dtype=np.uint8).reshape(1, 1, 4, 4)
    layer = Layer(
        "p",
        "maxpool",
        (1, 4, 4),
        (1, 2, 2),
        attrs={"kernel": [3, 3], "strides": [2, 2], "pads": [0, 0, 1, 1]},
    )
    assert layer.kind.simulate(None, layer, [codes]).tolist() == [[[[11, 12], [15, 16]]]]


@pytest.mark.board_env
def test_lrn_matches_the_onnx_definition():
    x = np.random.default_rng(2).random((2, 7, 3, 3)) * 40
    size, alpha, beta, bias = 5, 1e-2, 0.75, 2.0
    direct = np.empty_like(x)
    for c in range(7):
        lo, hi = max(0, c - 2), min(6, c + 2)
        s = (x[:, lo : hi + 1] ** 2).sum(axis=1)
        direct[:, c] = x[:, c] / (bias + alpha / size * s) ** beta
    np.testing.assert_allclose(hostops.lrn(x, size, alpha, beta, bias), direct, rtol=1e-13)


@pytest.mark.parametrize(
    "case",
    [
        "everything_op13",
        "conv_groups_op9",
        "avgpool_op18",
        "lrn_op13",
        "gemm_variants_op13",
        "residual_identity_op13",
        "residual_projection_op9",
        "add_of_activations_op18",
        "fire_concat_op13",
        "linear_bottleneck_op13",
        "monotone_activations_op9",
        "avgpool_exclude_pad_op13",
        "preactivation_bn_op18",
    ],
)
def test_simulator_equals_the_independent_reference(case, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnx_cases
    from reference_model import run_reference

    from kcnn.kfile import load
    from kcnn.quantizer import quantize
    from kcnn.sim.engine import run

    model, x = onnx_cases.SUPPORTED[case]()
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((64, *x.shape[1:])).astype(np.float32)
    path = quantize(model, calib, log=None, density=0.6).save(tmp_path / "m.kcnn")
    loaded = load(path)
    test = rng.standard_normal((4, *x.shape[1:])).astype(np.float32)
    expected, pairs = run_reference(loaded, test)
    _, _, got = run(loaded, test, trace=True)
    assert list(got) == list(expected)
    for name, codes in expected.items():
        assert np.array_equal(got[name].astype(np.int64), codes), name
    for layer in loaded.layers:
        if layer.is_fabric:
            active = (got[layer.inputs[0]] != 0).reshape(len(test), *layer.in_shape)
            count = layer.kind.effective_pairs(layer.attrs, layer.codes != 0, active)
            assert count == pairs[layer.name]


@pytest.mark.board_env
def test_fc_at_the_accumulator_bound_equals_the_reference():
    from reference_model import fc as reference_fc

    n_in = 66_000  # 66,000 * 127 * 255 = 2,137,410,000, just under 2^31 - 1
    layer = Layer(
        "f",
        "fc",
        (n_in,),
        (2,),
        codes=np.array([[2] * n_in, [1] * n_in], np.uint8),
        wq=np.array([-127, 127]),
        bias=np.zeros(2, np.int64),
    )
    top = 2**31 - 1
    layer.bias = np.array([top - n_in * 127 * 255, -(top - n_in * 127 * 255)])
    book = Codebook("m", np.array([255]), 1.0, False)
    codes = np.ones((1, n_in), np.uint8)
    expected, _ = reference_fc(layer, codes, book)
    got = fabric_layer(layer, codes, book).astype(np.int64)
    assert np.array_equal(got, expected) and got.tolist() == [[top, -top]]


@pytest.mark.slow
@pytest.mark.parametrize("name,count", [("lenet5", 3), ("alexnet_mnist", 1)])
def test_reference_models_equal_the_independent_reference(name, count, tmp_path):
    pytest.importorskip("onnxruntime")
    from reference_model import run_reference

    from kcnn import models
    from kcnn.kfile import load
    from kcnn.quantizer import quantize
    from kcnn.sim.counts import measure
    from kcnn.sim.engine import run

    model = quantize(models.model_path(name), models.calibration_digits(256), log=None)
    loaded = load(model.save(tmp_path / f"{name}.kcnn"))
    x = models.digits("val")[0][:count]
    expected, pairs = run_reference(loaded, x)
    _, _, got = run(loaded, x, trace=True)
    for layer_name, codes in expected.items():
        assert np.array_equal(got[layer_name].astype(np.int64), codes), layer_name
    counted = measure(loaded, x)["layers"]
    assert {k: v["effective_pairs"] for k, v in counted.items()} == pairs


def test_lrn_window_wider_than_the_map_sums_every_channel():
    from kcnn.hostops import lrn

    x = np.arange(1.0, 9.0).reshape(1, 2, 2, 2)
    wide, exact = lrn(x, 9, 1.0, 1.0, 1.0), lrn(x, 3, 1.0, 1.0, 1.0)
    # Two channels: a window of 3 or of 9 covers both, only the 1/size scale differs.
    squares = (x * x).sum(axis=1, keepdims=True)
    assert np.allclose(wide, x / (1.0 + squares / 9))
    assert np.allclose(exact, x / (1.0 + squares / 3))
