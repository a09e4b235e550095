"""Property-based faults (issue 13, point 7): `.kcnn` files mutated, truncated and
bit-flipped, ONNX graphs with mutated attributes and initializers. Every case ends in a
:class:`KcnnError` or in a file that loads and runs identically (every map's codes and the
last acc) on the simulator and the C-sim.

Seeds are fixed (``derandomize``) and no example database is written; the budget is
``max_examples`` per property, ten times larger with ``KCNN_FUZZ=full``.
"""

import itertools
import json
import os
import zipfile

import environments
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from mutate import npy_bytes, read_members, write_members

from kcnn.config import BuildParams
from kcnn.errors import KcnnError
from kcnn.kfile import load
from kcnn.sim.engine import simulator

environments.importorskip("onnxruntime")

import onnx  # noqa: E402
import onnx_cases  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402

SCALE = 10 if os.environ.get("KCNN_FUZZ") == "full" else 1
#: Small caches, so that the C-sim splits layers into many jobs.
#: Small memories so that layers split into many jobs.
SMALL = BuildParams(
    P=8, IN_DEPTH=16384, W_DEPTH=256, OUT_DEPTH=4096, STREAMS=1, LRN_LANES=2, CH_MAX=256
)
_COUNTER = itertools.count()


def budget(examples: int):
    return settings(
        max_examples=examples * SCALE,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )


@pytest.fixture(scope="module")
def check(csim):
    """``check(path)``: see :func:`outcome`."""
    return lambda path: outcome(path, csim)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def base(folder):
    """A small `.kcnn` with conv (one sparse), LRN, max-pools, fc and Softmax."""
    from kcnn.quantizer import quantize

    model, x = onnx_cases.SUPPORTED["everything_op13"]()
    calib = np.random.default_rng(0).standard_normal((16, *x.shape[1:])).astype(np.float32)
    q = quantize(model, calib, log=None, density=0.5, weight_clusters=6, act_clusters=5)
    next(layer for layer in q.layers if layer.is_fabric).weight_form = "sparse"
    return q.save(folder / "base.kcnn")


def inputs_for(model) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.standard_normal((2, *model.input_shape)).astype(np.float32)


_KERNELS = {}


def small_kernel(csim):
    """One C-sim instance of the small build for every example."""
    if "small" not in _KERNELS:
        _KERNELS["small"] = csim.CsimKernel(SMALL)
    return _KERNELS["small"]


def outcome(path, csim) -> str:
    """ "error" (a KcnnError) or "same" (loads; sim and csim agree bit for bit)."""
    try:
        model = load(path)
    except KcnnError as exc:
        event(f"refused: {exc.field}")
        return "error"
    event("loaded")
    x = inputs_for(model)
    _, _, want = simulator(model).run(x, trace=True)
    try:
        engine = csim.CsimEngine(model, kernel=small_kernel(csim))
    except KcnnError:
        return "error"  # a model the kernel's caches or job fields cannot take: refused
    _, _, got = engine.run(x, trace=True)
    assert list(got) == list(want)
    for name in want:
        assert got[name].dtype == want[name].dtype, name
        assert np.array_equal(got[name], want[name]), f"sim and csim differ at {name}"
    return "same"


def fresh(folder, suffix=".kcnn"):
    return folder / f"case{next(_COUNTER)}{suffix}"


# ---- `.kcnn` files --------------------------------------------------------------------


@budget(200)
@given(data=st.data())
def test_truncated_and_bit_flipped_files(base, folder, check, data):
    raw = bytearray(base.read_bytes())
    how = data.draw(st.sampled_from(["truncate", "flip", "overwrite"]))
    if how == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif how == "flip":
        for position in data.draw(st.lists(st.integers(0, 8 * len(raw) - 1), min_size=1)):
            raw[position // 8] ^= 1 << (position % 8)
    else:
        start = data.draw(st.integers(0, len(raw) - 1))
        raw[start : start + 8] = data.draw(st.binary(min_size=1, max_size=8))
    path = fresh(folder)
    path.write_bytes(bytes(raw))
    check(path)


def _paths(value, prefix=()):
    """Every (path, value) in a parsed JSON tree, containers included."""
    yield prefix, value
    if isinstance(value, (dict, list)):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in items:
            yield from _paths(child, (*prefix, key))


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)


def _nudged(value, data):
    """A value near ``value``: numbers moved a little, lists and strings edited."""
    if isinstance(value, bool) or value is None:
        return not value
    if isinstance(value, (int, float)):
        return data.draw(
            st.sampled_from(
                [
                    value + 1,
                    value - 1,
                    0,
                    -value,
                    value * 2,
                    value // 2 if isinstance(value, int) else value / 2,
                ]
            )
        )
    if isinstance(value, list) and value:
        edited = list(value)
        index = data.draw(st.integers(0, len(value) - 1))
        if data.draw(st.booleans()):
            del edited[index]
        else:
            edited[index] = _nudged(edited[index], data)
        return edited
    if isinstance(value, str):
        return value + "x"
    return data.draw(JSON_VALUES)


@budget(300)
@given(data=st.data())
def test_mutated_manifests(base, folder, check, data):
    members = read_members(base)
    meta = json.loads(members["manifest.json"])
    paths = [p for p, _ in _paths(meta) if p and p[0] != "sha256"]
    path = data.draw(st.sampled_from(paths))
    parent = meta
    for key in path[:-1]:
        parent = parent[key]
    how = data.draw(st.sampled_from(["nudge", "replace", "delete"]))
    if how == "delete":
        del parent[path[-1]]
    elif how == "replace":
        parent[path[-1]] = data.draw(JSON_VALUES)
    else:
        parent[path[-1]] = _nudged(parent[path[-1]], data)
    members["manifest.json"] = json.dumps(meta).encode()
    check(write_members(fresh(folder), members))


@budget(200)
@given(data=st.data())
def test_mutated_arrays_with_matching_checksums(base, folder, check, data):
    """Arrays edited and their checksums updated, so that the values reach validation."""
    import hashlib

    members = read_members(base)
    meta = json.loads(members["manifest.json"])
    name = data.draw(st.sampled_from(sorted(n for n in members if n.endswith(".npy"))))
    array = np.load(zipfile.ZipFile(base).open(name)).copy()
    how = data.draw(st.sampled_from(["value", "grow", "shrink", "dtype"]))
    if how == "value" and array.size:
        info = np.finfo(array.dtype) if array.dtype.kind == "f" else np.iinfo(array.dtype)
        index = data.draw(st.integers(0, array.size - 1))
        value = data.draw(
            st.sampled_from([0, 1, -1, 2, info.max, info.min])
            | st.integers(int(max(info.min, -(2**62))), int(min(info.max, 2**62)))
        )
        array.reshape(-1)[index] = min(max(value, info.min), info.max)
    elif how == "grow":
        array = np.concatenate([array, array[-1:] if array.size else np.zeros(1, array.dtype)])
    elif how == "shrink":
        array = array[:-1]
    else:
        array = array.astype(data.draw(st.sampled_from([np.int32, np.uint8, np.float64, np.int64])))
    members[name] = npy_bytes(array)
    meta["sha256"][name] = hashlib.sha256(members[name]).hexdigest()
    members["manifest.json"] = json.dumps(meta).encode()
    check(write_members(fresh(folder), members))


# ---- ONNX graphs ----------------------------------------------------------------------

ATTRIBUTES = {
    "Conv": ["strides", "pads", "dilations", "kernel_shape", "group", "auto_pad"],
    "MaxPool": ["strides", "pads", "kernel_shape", "ceil_mode", "dilations", "auto_pad"],
    "LRN": ["size", "alpha", "beta", "bias"],
    "BatchNormalization": ["epsilon"],
    "Gemm": ["alpha", "beta", "transA", "transB"],
    "Softmax": ["axis"],
    "Reshape": [],
    "Dropout": ["ratio"],
}
INTS = st.lists(st.integers(-2, 40), min_size=0, max_size=5)
FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=32)
ATTRIBUTE_VALUES = (
    INTS
    | st.integers(-2, 40)
    | FLOATS
    | st.sampled_from([b"SAME_UPPER", b"VALID", b"NOTSET", b"X"])
)


@pytest.fixture(scope="module")
def graph():
    model, x = onnx_cases.SUPPORTED["everything_op13"]()
    calib = np.random.default_rng(2).standard_normal((8, *x.shape[1:])).astype(np.float32)
    return model, calib


def quantized(model, calib, folder, check) -> str:
    from kcnn.quantizer import quantize

    try:
        q = quantize(model, calib, log=None, density=0.6, weight_clusters=5, act_clusters=5)
    except KcnnError as exc:
        event(f"quantizer refused: {str(exc)[:60]}")
        return "error"
    return check(q.save(fresh(folder)))


@budget(50)
@given(data=st.data())
def test_mutated_onnx_attributes(graph, folder, check, data):
    model, calib = graph
    model = onnx.ModelProto.FromString(model.SerializeToString())
    nodes = [n for n in model.graph.node if n.op_type in ATTRIBUTES and ATTRIBUTES[n.op_type]]
    node = data.draw(st.sampled_from(nodes))
    key = data.draw(st.sampled_from(ATTRIBUTES[node.op_type]))
    kept = [a for a in node.attribute if a.name != key]
    del node.attribute[:]
    node.attribute.extend(kept)
    if data.draw(st.booleans()):
        value = data.draw(ATTRIBUTE_VALUES)
        kind = onnx.AttributeProto.INTS if value == [] else None  # not inferable from []
        node.attribute.append(helper.make_attribute(key, value, attr_type=kind))
    quantized(model, calib, folder, check)


@budget(50)
@given(data=st.data())
def test_mutated_onnx_initializers(graph, folder, check, data):
    model, calib = graph
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = list(model.graph.initializer)
    init = data.draw(st.sampled_from(inits))
    value = numpy_helper.to_array(init).copy()
    how = data.draw(st.sampled_from(["value", "scale", "dims", "dtype", "empty"]))
    if how == "dims":
        if init.dims:
            init.dims[data.draw(st.integers(0, len(init.dims) - 1))] += data.draw(
                st.sampled_from([-1, 1, 7])
            )
        quantized(model, calib, folder, check)
        return
    if how == "value" and value.size:
        special = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1e30, -1e30, 3.0])
        value.reshape(-1)[data.draw(st.integers(0, value.size - 1))] = (
            data.draw(special) if value.dtype.kind == "f" else data.draw(st.integers(-5, 5))
        )
    elif how == "scale" and value.dtype.kind == "f":
        value = value * data.draw(st.sampled_from([0.0, -1.0, 1e-30, 1e30]))
    elif how == "dtype":
        value = value.astype(data.draw(st.sampled_from([np.float64, np.int64, np.float16])))
    elif how == "empty":
        value = value.reshape(-1)[:0]
    init.CopyFrom(numpy_helper.from_array(np.asarray(value), init.name))
    quantized(model, calib, folder, check)
