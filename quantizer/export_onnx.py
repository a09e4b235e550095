"""Write a lowered float graph back out as ONNX.

onnxruntime runs this graph for calibration and for the pruning sensitivity search, so
KCNN never interprets float models itself. Every layer output is a named tensor
(the layer's name), which makes each map capturable.
"""

from __future__ import annotations

import numpy as np

from kcnn.errors import require
from kcnn.model import Model
from kcnn.ops.activations import activation_of

OPSET = 13


def to_onnx(graph: Model, *, weights_as_inputs: bool = False, outputs=None):
    """Build an ONNX model of ``graph`` with a dynamic batch dimension.

    Parameters
    ----------
    weights_as_inputs
        Make every fabric layer's weight a graph input named ``<layer>.weight`` instead of an
        initializer, so one session can evaluate many weight variants.
    outputs
        Layer names whose outputs become graph outputs (default: the last layer's).
    """
    onnx = require("onnx", "quantize", "exporting the lowered graph")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    nodes, inits, inputs = [], [], []
    inputs.append(
        helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["N", *graph.input_shape])
    )
    for layer in graph.layers:
        out = layer.name
        # The layer's own op, then a residual Add, then its activation, each a node.
        stages = ["op"] + (["residual"] if layer.residual is not None else [])
        stages += ["activation"] if layer.activation is not None else []
        names = [f"{out}.{stage}" for stage in stages[:-1]] + [out]
        node_inputs = list(layer.inputs[:1] if layer.is_fabric else layer.inputs)
        if layer.is_fabric:
            weight_name, bias_name = f"{layer.name}.weight", f"{layer.name}.bias"
            weight = np.ascontiguousarray(layer.weight, dtype=np.float32)
            if weights_as_inputs:
                inputs.append(
                    helper.make_tensor_value_info(
                        weight_name, onnx.TensorProto.FLOAT, list(weight.shape)
                    )
                )
            else:
                inits.append(numpy_helper.from_array(weight, weight_name))
            inits.append(numpy_helper.from_array(layer.float_bias.astype(np.float32), bias_name))
            node_inputs += [weight_name, bias_name]
        nodes.extend(
            layer.kind.onnx_nodes(layer, helper, numpy_helper, node_inputs, names[0], inits)
        )
        at = 1
        if layer.residual is not None:
            nodes.append(
                helper.make_node(
                    "Add", [names[0], layer.residual], [names[at]], name=f"{out}.residual"
                )
            )
            at += 1
        if layer.activation is not None:
            act = activation_of(layer)
            nodes.append(
                act.onnx_activation(
                    layer.activation, helper, numpy_helper, names[at - 1], names[at], inits
                )
            )
    names = outputs if outputs is not None else [graph.layers[-1].name]
    by_name = {layer.name: layer for layer in graph.layers}
    outs = [
        helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, ["N", *by_name[n].out_shape])
        for n in names
    ]
    model = helper.make_model(
        helper.make_graph(nodes, graph.name, inputs, outs, inits),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="kcnn",
    )
    model.ir_version = 8
    return model


#: onnxruntime (1.32) fuses a Conv into the Add after it even when the Conv's output is
#: also a graph output, then fails to load the model ("Failed to find node output ...");
#: the calibration session makes every map an output, so residual graphs hit it.
DISABLED_OPTIMIZERS = ["ConvAddActivationFusion"]


def session(model):
    """An onnxruntime CPU session for an in-memory model."""
    ort = require("onnxruntime", "quantize", "running the float model")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(
        model.SerializeToString(),
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=DISABLED_OPTIMIZERS,
    )
