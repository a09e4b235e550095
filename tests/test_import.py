"""ONNX import and lowering, checked against onnxruntime on the original model."""

import environments
import numpy as np
import pytest

environments.importorskip("onnxruntime")

import onnx_cases  # noqa: E402

from kcnn.errors import KcnnError  # noqa: E402
from kcnn.quantizer.export_onnx import session, to_onnx  # noqa: E402
from kcnn.quantizer.lowering import lower  # noqa: E402
from kcnn.quantizer.onnx_import import import_onnx  # noqa: E402


def run_original(model, x):
    sess = session(model)
    name = sess.get_inputs()[0].name
    batch = sess.get_inputs()[0].shape[0]
    if batch == 1:  # zoo models fix the batch to 1
        return np.concatenate([sess.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])
    return sess.run(None, {name: x})[0]


@pytest.mark.parametrize("case", sorted(onnx_cases.SUPPORTED))
def test_lowered_graph_matches_original(case):
    model, x = onnx_cases.SUPPORTED[case]()
    reference = run_original(model, x)
    graph = lower(import_onnx(model))
    lowered = session(to_onnx(graph)).run(None, {"input": x})[0]
    assert lowered.shape == reference.shape
    np.testing.assert_allclose(
        lowered, reference, rtol=1e-4, atol=1e-5 * float(np.abs(reference).max())
    )
    assert not any(layer.kind.folded for layer in graph.layers)


@pytest.mark.parametrize("case", sorted(onnx_cases.UNSUPPORTED))
def test_unsupported_pattern_is_named(case):
    builder, fragments = onnx_cases.UNSUPPORTED[case]
    with pytest.raises(KcnnError) as info:
        lower(import_onnx(builder()))
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message


def test_conv_maxpool_relu_commutes():
    model, _ = onnx_cases.SUPPORTED["conv_maxpool_relu_op13"]()
    graph = lower(import_onnx(model))
    first_pool = next(i for i, layer in enumerate(graph.layers) if layer.op == "maxpool")
    before = graph.layers[first_pool - 1]
    assert before.is_fabric and before.activation == {"op": "relu"}


def test_bvlc_alexnet_dense_macs_equal_hand_count():
    """docs/macs.md: 654,560,384 MACs per 224x224 image (ConstantOfShape weights)."""
    import os

    import onnx

    path = os.path.join(
        os.path.dirname(onnx.__file__), "backend/test/data/light/light_bvlc_alexnet.onnx"
    )
    graph = lower(import_onnx(path))
    per_layer = [layer.kind.dense_macs(layer) for layer in graph.fabric_layers()]
    assert per_layer == [
        101_616_768,
        207_667_200,
        127_401_984,
        95_551_488,
        63_700_992,
        37_748_736,
        16_777_216,
        4_096_000,
    ]
    assert sum(per_layer) == 654_560_384
    assert [layer.op for layer in graph.layers if layer.kind.host] == ["lrn", "lrn", "softmax"]


def test_lenet_dense_macs_equal_hand_count():
    """docs/macs.md: 416,520 MACs per 28x28 image."""
    from kcnn.models import model_path

    graph = lower(import_onnx(model_path("lenet5")))
    per_layer = [layer.kind.dense_macs(layer) for layer in graph.fabric_layers()]
    assert per_layer == [117_600, 240_000, 48_000, 10_080, 840]
    assert sum(per_layer) == 416_520


def _structure(case):
    graph = lower(import_onnx(onnx_cases.SUPPORTED[case]()[0]))
    return {
        layer.name: (layer.op, layer.inputs, (layer.activation or {}).get("op"))
        for layer in graph.layers
    }


def test_residual_add_goes_into_the_weighted_layer_in_front():
    """Identity shortcut: conv_b2 (+BN) takes the Add and the Relu after it."""
    layers = _structure("residual_identity_op13")
    assert layers["conv_b2"] == ("conv", ["conv_b1", "conv_a"], "relu")
    assert "add_res" not in layers and not any(op == "add" for op, _, _ in layers.values())


def test_projection_shortcut_folds_into_the_later_linear_layer():
    """Both operands are linear: the later producer takes the Add; the other emits a
    signed map read through the residual table."""
    layers = _structure("residual_projection_op13")
    assert layers["conv_b"] == ("conv", ["conv_a"], None)
    assert layers["conv_p"] == ("conv", ["conv_a", "conv_b"], "relu")


def test_add_of_activated_maps_stays_an_add_layer():
    layers = _structure("add_of_activations_op13")
    assert layers["add_res"] == ("add", ["conv_a", "conv_b"], None)


def test_concat_and_clip_and_linear_bottleneck_lower():
    fire = _structure("fire_concat_op13")
    assert fire["concat"] == ("concat", ["expand1", "expand3"], None)
    mobile = _structure("linear_bottleneck_op13")
    assert mobile["expand"][2] == "clip" and mobile["depthwise"][2] == "clip"
    assert mobile["project"] == ("conv", ["depthwise", "stem"], None)


def test_batchnorm_no_layer_can_take_becomes_a_code_table():
    layers = _structure("preactivation_bn_op13")
    assert layers["bn_pre"] == ("codemap", ["concat"], "relu")


def test_the_calibration_session_loads_a_conv_read_by_an_add_and_as_an_output():
    """The calibration session makes every map an output. A projection shortcut's Conv
    that is both an output and an operand of the residual Add made onnxruntime 1.32 fuse
    it away and refuse the model (found on ResNet-50 at a reduced width); the session
    must load it and give both tensors."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def weight(name, *shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["shortcut_in", "ws", "bs"], ["shortcut"], name="shortcut"),
        helper.make_node("Conv", ["main_in", "wm", "bm"], ["main"], strides=[2, 2], name="main"),
        helper.make_node("Add", ["main", "shortcut"], ["sum"], name="residual"),
    ]
    inputs = [
        helper.make_tensor_value_info("main_in", TensorProto.FLOAT, ["N", 43, 4, 4]),
        helper.make_tensor_value_info("shortcut_in", TensorProto.FLOAT, ["N", 22, 2, 2]),
    ]
    outputs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("sum", "shortcut")
    ]
    inits = [
        weight("ws", 86, 22, 1, 1),
        weight("bs", 86),
        weight("wm", 86, 43, 1, 1),
        weight("bm", 86),
    ]
    graph = helper.make_graph(nodes, "residual", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feeds = {
        "main_in": rng.standard_normal((1, 43, 4, 4)).astype(np.float32),
        "shortcut_in": rng.standard_normal((1, 22, 2, 2)).astype(np.float32),
    }
    total, shortcut = session(model).run(None, feeds)
    w = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in inits}
    expected_shortcut = np.einsum("oc,nchw->nohw", w["ws"][:, :, 0, 0], feeds["shortcut_in"])
    expected_shortcut += w["bs"].reshape(1, -1, 1, 1)
    main = np.einsum("oc,nchw->nohw", w["wm"][:, :, 0, 0], feeds["main_in"][:, :, ::2, ::2])
    main += w["bm"].reshape(1, -1, 1, 1)
    np.testing.assert_allclose(shortcut, expected_shortcut, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(total, main + expected_shortcut, rtol=1e-4, atol=1e-4)
