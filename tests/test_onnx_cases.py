"""Sanity checks of the test-model generators (not of the importer).

Every supported case must be a valid ONNX model that onnxruntime runs on its ``x``;
every unsupported case must still be a valid model, so the importer (not the ONNX
checker) is what refuses it. The BVLC AlexNet build is checked under ``slow``.
"""

from __future__ import annotations

import environments
import numpy as np
import pytest

onnx = environments.importorskip("onnx")
ort = environments.importorskip("onnxruntime")

import onnx_cases  # noqa: E402
from onnx import numpy_helper  # noqa: E402


def _session(model):
    options = ort.SessionOptions()
    # Zoo-style models list initializers as inputs, which makes onnxruntime warn per tensor.
    options.log_severity_level = 3
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def _dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def _run(model, x):
    """Run ``x`` through ``model``, one row at a time if its batch is fixed to 1."""
    sess = _session(model)
    name = sess.get_inputs()[0].name
    if _dims(model.graph.input[0])[0] == 1:
        return np.concatenate([sess.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])
    return sess.run(None, {name: x})[0]


def _assert_named(model):
    names = [n.name for n in model.graph.node]
    assert all(names), "every node needs a name for the error-message tests"
    assert len(set(names)) == len(names), "node names must be unique"


@pytest.mark.parametrize("name", sorted(onnx_cases.SUPPORTED))
def test_supported_case(name):
    model, x = onnx_cases.SUPPORTED[name]()
    onnx.checker.check_model(model, full_check=True)
    _assert_named(model)

    opset = int(name.rsplit("_op", 1)[1])
    assert [(o.domain, o.version) for o in model.opset_import] == [("", opset)]
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    assert len(inputs) == 1
    dims = _dims(inputs[0])
    listed = {i.name for i in model.graph.input} & inits
    if onnx_cases.is_zoo_style(opset):
        assert dims[0] == 1
        assert listed == inits
    else:
        assert dims[0] == "N"
        assert not listed

    assert x.dtype == np.float32
    assert x.shape == (onnx_cases.BATCH, *dims[1:])
    y = _run(model, x)
    assert y.shape[0] == onnx_cases.BATCH
    assert np.all(np.isfinite(y))


@pytest.mark.parametrize("name", sorted(onnx_cases.SUPPORTED))
def test_supported_case_is_deterministic(name):
    model_a, x_a = onnx_cases.SUPPORTED[name]()
    model_b, x_b = onnx_cases.SUPPORTED[name]()
    assert model_a.SerializeToString() == model_b.SerializeToString()
    np.testing.assert_array_equal(x_a, x_b)


@pytest.mark.parametrize("name", sorted(onnx_cases.UNSUPPORTED))
def test_unsupported_case_is_valid_onnx(name):
    builder, expected = onnx_cases.UNSUPPORTED[name]
    model = builder()
    onnx.checker.check_model(model, full_check=True)
    _assert_named(model)
    assert expected and all(isinstance(s, str) and s for s in expected)
    culprits = {n.name for n in model.graph.node} | {i.name for i in model.graph.input}
    assert expected[0] in culprits


def test_case_tables_are_complete():
    bases = {name.rsplit("_op", 1)[0] for name in onnx_cases.SUPPORTED}
    for base in bases - {"reshape_1_n"}:
        for opset in onnx_cases.OPSETS:
            assert f"{base}_op{opset}" in onnx_cases.SUPPORTED
    ops = set()
    for builder in onnx_cases.SUPPORTED.values():
        ops |= {n.op_type for n in builder()[0].graph.node}
    assert ops >= {
        "Conv", "Relu", "Gemm", "MatMul", "Add", "Flatten", "BatchNormalization", "MaxPool",
        "AveragePool", "GlobalAveragePool", "Dropout", "Identity", "Reshape", "LRN",
        "Softmax", "ConstantOfShape", "Constant", "Concat", "Clip", "LeakyRelu", "Sigmoid",
        "Tanh", "HardSigmoid",
    }  # fmt: skip


@pytest.mark.slow
def test_build_bvlc_alexnet(bvlc_onnx, tmp_path):
    from kcnn.models import bvlc
    from kcnn.notebooks.streaming_report import SEED

    path = bvlc_onnx  # built once per session by tests/conftest.py
    assert sorted(path.parent.iterdir()) == [path], "the temporary file must be gone"
    assert path.stat().st_size > 200e6

    model = onnx.load(str(path))
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 9)]
    inits = {t.name: t for t in model.graph.initializer}
    input_names = [i.name for i in model.graph.input]
    assert set(inits) <= set(input_names)
    assert [n for n in input_names if n not in inits] == ["data_0"]
    assert _dims(model.graph.input[0]) == [1, 3, 224, 224]
    ops = [n.op_type for n in model.graph.node]
    assert "ConstantOfShape" not in ops
    assert ops.count("Reshape") == 1 and ops.count("LRN") == 2

    assert {name.split("_")[0] for name in inits if name.endswith("_w_0")} == set(bvlc.DC_DENSITIES)
    for layer, density in bvlc.DC_DENSITIES.items():
        w = numpy_helper.to_array(inits[f"{layer}_w_0"])
        kept = np.count_nonzero(w)
        assert kept == bvlc.kept_count(density, w.size), layer
        # Exactly round(density * size) weights are kept, so the achieved density can
        # only be as close to the target as one weight in the layer allows.
        assert abs(kept / w.size - density) <= max(1e-6, 0.5 / w.size), layer
        assert np.count_nonzero(numpy_helper.to_array(inits[f"{layer}_b_0"])) > 0, layer

    again = bvlc.build_bvlc_alexnet(tmp_path / "again.onnx", seed=SEED)
    assert again == tmp_path / "again.onnx"
    assert again.read_bytes() == path.read_bytes()
    again.unlink()  # 244 MB


def test_prune_to_density_breaks_ties_by_index():
    from kcnn.models import bvlc

    w = np.array([3.0, -1.0, 1.0, 2.0, -1.0, 1.0], dtype=np.float32)
    # Four weights tie at |1|; the lowest flat indices win.
    pruned = bvlc.prune_to_density(w, 0.5)
    np.testing.assert_array_equal(pruned, [3.0, -1.0, 0.0, 2.0, 0.0, 0.0])
    pruned = bvlc.prune_to_density(w, 4 / 6)
    np.testing.assert_array_equal(pruned, [3.0, -1.0, 1.0, 2.0, 0.0, 0.0])
    assert bvlc.prune_to_density(w, 0.0).tolist() == [0.0] * 6
    np.testing.assert_array_equal(bvlc.prune_to_density(w, 1.0), w)
    assert bvlc.kept_count(0.5, 5) == 3
