"""Small hand-built models with random integer tables, and their runs compared with the
simulator, for the C-sim and board tests."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from kcnn.config import ARITHMETIC_CONTRACT
from kcnn.kfile import check_graph, check_layer_tables
from kcnn.model import Codebook, Layer, Model


def codebook(rng, n, signed, low=1, high=255):
    """``n`` distinct non-zero ascending integers (signed: within +-127)."""
    pool = np.arange(-127, 128) if signed else np.arange(low, high + 1)
    pool = pool[pool != 0]
    return np.sort(rng.choice(pool, n, replace=False)).astype(np.int64)


def conv_out(hw, kernel, strides, pads, dilations):
    (h, w), (kh, kw), (sh, sw), (dh, dw) = hw, kernel, strides, dilations
    top, left, bottom, right = pads
    return (
        (h + top + bottom - dh * (kh - 1) - 1) // sh + 1,
        (w + left + right - dw * (kw - 1) - 1) // sw + 1,
    )


def check_tables(model) -> None:
    """The loader's table checks, failing the test that built a bad case."""

    def fail(message, name, field):
        return AssertionError(f"{name}.{field}: {message}")

    check_layer_tables(model, ARITHMETIC_CONTRACT, fail)


def one_layer_model(
    rng,
    op="conv",
    *,
    c_in=4,
    c_out=6,
    hw=(6, 5),
    kernel=(3, 3),
    strides=(1, 1),
    pads=(1, 1, 1, 1),
    dilations=(1, 1),
    groups=1,
    taps=20,
    K=6,
    J=5,
    J_out=4,
    form="dense",
    weight_density=0.6,
    signed_in=False,
    last=False,
    bias_range=2000,
):
    """A model holding one fabric layer ``"L"`` reading the map ``"input"``; returns
    ``(model, layer)``. Thresholds are spread over the layer's accumulator range so that
    every output code occurs."""
    aq = codebook(rng, J - 1, signed_in)
    wq = codebook(rng, K - 1, True)
    if op == "fc":
        shape = (c_out, taps)
        in_shape, out_shape, attrs = (taps,), (c_out,), {}
    else:
        shape = (c_out, c_in // groups, *kernel)
        oh, ow = conv_out(hw, kernel, strides, pads, dilations)
        in_shape, out_shape = (c_in, *hw), (c_out, oh, ow)
        attrs = {
            "kernel": list(kernel),
            "strides": list(strides),
            "pads": list(pads),
            "dilations": list(dilations),
            "groups": groups,
        }
    codes = rng.integers(1, K, shape) if K > 1 else np.zeros(shape, np.int64)
    codes = np.where(rng.random(shape) < weight_density, codes, 0).astype(np.uint8)
    bias = rng.integers(-bias_range, bias_range + 1, c_out).astype(np.int64)
    layer = Layer(
        "L",
        op,
        in_shape,
        out_shape,
        attrs=attrs,
        activation=None if last else {"op": "relu"},
        in_map="input",
        out_map=None if last else "L",
        codes=codes,
        wq=wq,
        w_scale=0.01,
        bias=bias,
        weight_form=form,
    )
    maps = {"input": Codebook("input", aq, 0.05, signed_in, boundaries=np.zeros(max(0, J - 2)))}
    if not last:
        spread = max(1, int(np.abs(wq).max(initial=1) * np.abs(aq).max(initial=1) * 4))
        layer.thresholds = np.sort(rng.integers(1, spread + 1, J_out - 1)).astype(np.int64)
        maps["L"] = Codebook("L", codebook(rng, J_out - 1, False), 0.1, False)
    model = Model("one", in_shape, [layer], maps)
    check_tables(model)
    return model, layer


def chain_model(rng, first: dict, second: dict, taps: int | None = None):
    """Two fabric layers ``"L0"`` -> ``"L1"`` (conv -> conv, fc -> fc, or conv -> fc), the
    second reading the first's map; each spec as for :func:`one_layer_model` (the second's
    input size and codebook follow from the first; a second fc's ``taps`` may be given for
    a layer put between them). Returns ``(model, first layer)``."""
    model0, layer0 = one_layer_model(rng, **first)
    shape = layer0.out_shape
    joined = {"J": first.get("J_out", 4), "signed_in": False}
    if second.get("op", "conv") == "fc":
        joined["taps"] = int(np.prod(shape)) if taps is None else taps
    else:
        joined |= {"c_in": shape[0], "hw": shape[1:]}
    model1, layer1 = one_layer_model(rng, **second, **joined)
    layer0.name, layer0.out_map = "L0", "L0"
    layer1.name, layer1.in_map, layer1.inputs = "L1", "L0", ["L0"]
    layer1.out_map = None if layer1.thresholds is None else "L1"
    maps = {"input": model0.maps["input"], "L0": replace(model1.maps["input"], name="L0")}
    if layer1.out_map:
        maps["L1"] = replace(model1.maps["L"], name="L1")
    model = Model("chain", model0.input_shape, [layer0, layer1], maps)
    check_tables(model)
    return model, layer0


def pool_model(rng, kernel, strides, pads, hw, channels=4, conv_strides=(1, 1)):
    """A conv ``"L0"`` (3x3, padding 1, ReLU, strides ``conv_strides``), a max-pool ``"P"``
    with these attributes, and a last fc ``"L1"`` reading the pooled map. Returns
    ``(model, conv layer)``."""
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = kernel, strides, pads
    h, w = conv_out(hw, (3, 3), conv_strides, (1, 1, 1, 1), (1, 1))
    pooled = (channels, (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1)
    model, conv = chain_model(
        rng,
        {"c_in": 3, "c_out": channels, "hw": hw, "strides": conv_strides},
        {"op": "fc", "c_out": 5, "last": True},
        taps=int(np.prod(pooled)),
    )
    attrs = {"kernel": list(kernel), "strides": list(strides), "pads": list(pads)}
    model.layers.insert(
        1, Layer("P", "maxpool", conv.out_shape, pooled, attrs=attrs, inputs=["L0"])
    )
    model.layers[2].inputs = ["P"]
    return model, conv


def assert_same_maps(traced, expected) -> None:
    """The same maps, in the same order, each of the same dtype and values."""
    assert list(traced) == list(expected)
    for key, value in expected.items():
        assert traced[key].dtype == value.dtype and np.array_equal(traced[key], value), key


def assert_runs_as_the_simulator(engine, x) -> None:
    """Every map (traced) and the logits of ``x`` on ``engine`` equal the simulator's."""
    from kcnn.sim.engine import simulator

    _, logits, traced = engine.run(x, trace=True)
    _, want_logits, want = simulator(engine.model).run(x, trace=True)
    assert_same_maps(traced, want)
    assert np.array_equal(logits, want_logits)


def random_codes(rng, layer, n, J, zero_fraction=0.4):
    codes = rng.integers(1, J, (n, *layer.in_shape)) if J > 1 else np.zeros((n, *layer.in_shape))
    mask = rng.random(codes.shape) < zero_fraction
    return np.where(mask, 0, codes).astype(np.uint8)


def floats_for(model, codes: np.ndarray) -> np.ndarray:
    """Inputs that the host encoder maps to exactly ``codes`` (their decoded values). Sets
    the input codebook's boundaries to the midpoints between those values first: the
    cases are built with placeholder boundaries."""
    book = model.maps["input"]
    values = np.concatenate([[0.0], book.aq.astype(np.float64) * book.scale])
    book.boundaries = (values[2:] + values[1:-1]) / 2 if book.aq.size > 1 else np.zeros(0)
    return values[codes].astype(np.float32)


def spread_thresholds(model, layer, x) -> None:
    """Sets ``layer``'s thresholds at quantiles of its accumulators on the inputs ``x``,
    so that its output codes vary (thresholds drawn without the window's size in mind
    leave a wide layer's codes all at 0 or at the top)."""
    from kcnn.sim.engine import NumpyFabric, simulator

    traced = simulator(model).run(x, trace=True)[2]
    before = (
        model.layers[model.layers.index(layer) - 1].name if layer.in_map != "input" else "input"
    )
    acc = NumpyFabric(model).acc(layer, traced[before])
    count = len(layer.thresholds)
    cuts = np.quantile(acc, np.linspace(0, 1, count + 2)[1:-1]).astype(np.int64)
    layer.thresholds = cuts + np.arange(count)  # strictly increasing, still inside the range


def branch_model(rng, hw=(6, 5)):
    """A graph: conv ``"L0"`` read by two branch convs ``"B1"`` (1x1) and ``"B2"`` (3x3,
    padding 1) that emit one joint codebook ``"J"``, a Concat ``"C"`` of the branches, a
    max-pool ``"P"`` and a last fc ``"F"``. Returns the model."""
    model0, layer0 = one_layer_model(rng, c_in=3, c_out=4, hw=hw, J_out=6)
    layer0.name, layer0.out_map = "L0", "L0"
    branches = []
    for name, kernel, pads in (("B1", (1, 1), (0, 0, 0, 0)), ("B2", (3, 3), (1, 1, 1, 1))):
        spec = {"c_in": 4, "c_out": 3, "hw": hw, "kernel": kernel, "pads": pads, "J": 6}
        _, layer = one_layer_model(rng, **spec, J_out=5)
        layer.name, layer.in_map, layer.out_map, layer.inputs = name, "L0", "J", ["L0"]
        branches.append(layer)
    concat = Layer("C", "concat", (3, *hw), (6, *hw), attrs={"axis": 1}, inputs=["B1", "B2"])
    pooled = (6, hw[0] // 2, hw[1] // 2)
    attrs = {"kernel": [2, 2], "strides": [2, 2], "pads": [0, 0, 0, 0]}
    pool = Layer("P", "maxpool", (6, *hw), pooled, attrs=attrs, inputs=["C"])
    flat = Layer("flat", "flatten", pooled, (int(np.prod(pooled)),), inputs=["P"])
    _, last = one_layer_model(rng, "fc", taps=int(np.prod(pooled)), c_out=4, J=5, last=True)
    last.name, last.in_map, last.inputs = "F", "J", ["flat"]
    maps = {
        "input": model0.maps["input"],
        "L0": Codebook("L0", codebook(rng, 5, False), 0.1, False),
        "J": Codebook("J", codebook(rng, 4, False), 0.1, False),
    }
    layers = [layer0, *branches, concat, pool, flat, last]
    model = Model("branches", model0.input_shape, layers, maps)
    check_graph(model, lambda message, name, field: AssertionError(f"{name}.{field}: {message}"))
    check_tables(model)
    return model
