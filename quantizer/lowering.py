"""Lowering passes: fold the raw ops of the import into the layer chain and check it.

Each pass is a small function ``graph -> graph`` named as a verb; ``lower`` applies them
in order. After lowering, the chain holds only the ops of :mod:`kcnn.graph`.
"""

from __future__ import annotations

import numpy as np

from kcnn.errors import KcnnError
from kcnn.graph import Graph, Layer


def _error(layer: Layer, message: str) -> KcnnError:
    node = layer.nodes[-1] if layer.nodes else layer.name
    return KcnnError(f"{message} (node {node!r})", layer=node)


def _channel_shape(weight: np.ndarray) -> tuple[int, ...]:
    return (-1,) + (1,) * (weight.ndim - 1)


def _fold_into_previous(graph: Graph, op: str, fold) -> Graph:
    layers: list[Layer] = []
    for layer in graph.layers:
        if layer.op != op:
            layers.append(layer)
            continue
        previous = layers[-1] if layers else None
        if previous is None or not previous.is_fabric or previous.relu:
            raise _error(
                layer,
                f"{layer.nodes[-1]!r} must directly follow a Conv, Gemm or "
                "MatMul to be folded into it",
            )
        fold(previous, layer)
        previous.nodes.extend(layer.nodes)
    return Graph(graph.name, graph.input_name, graph.input_shape, layers)


def fold_batch_norm(graph: Graph) -> Graph:
    """FoldBatchNorm: scale the preceding layer's weights and shift its bias."""

    def fold(prev: Layer, bn: Layer):
        gain = bn.weight
        prev.weight = prev.weight * gain.reshape(_channel_shape(prev.weight))
        prev.bias = prev.bias * gain + bn.bias

    return _fold_into_previous(graph, "batchnorm", fold)


def fold_bias_add(graph: Graph) -> Graph:
    """FoldBiasAdd: an Add of a constant after MatMul or Conv becomes the bias."""

    def fold(prev: Layer, add: Layer):
        channels = prev.out_shape[0]
        term = add.bias
        if prev.op == "conv":
            if term.size not in (1, channels) or (term.ndim >= 3 and term.shape[-2:] != (1, 1)):
                raise _error(add, f"the Add after {prev.name!r} is not a per-channel bias")
            term = np.broadcast_to(term.reshape(-1), (channels,))
        else:
            if term.size not in (1, channels):
                raise _error(add, f"the Add after {prev.name!r} is not a per-output bias")
            term = np.broadcast_to(term.reshape(-1), (channels,))
        prev.bias = prev.bias + term

    return _fold_into_previous(graph, "bias_add", fold)


def _non_negative(layers: list[Layer]) -> bool:
    """Whether the map at the end of ``layers`` is known to be >= 0."""
    for layer in reversed(layers):
        if layer.is_fabric:
            return layer.relu
        if layer.op == "lrn":
            continue  # LRN keeps the sign of its input
        if layer.op in ("softmax",):
            return True
    return False  # the network input may be signed


def fuse_relu(graph: Graph) -> Graph:
    """FuseRelu: mark the fabric layer before each Relu.

    MaxPool and ReLU commute, so Conv -> MaxPool -> Relu becomes Conv(+ReLU) -> MaxPool.
    A Relu on a map that is already non-negative changes nothing and is dropped.
    """
    layers: list[Layer] = []
    for layer in graph.layers:
        if layer.op != "relu":
            layers.append(layer)
            continue
        target = None
        if layers and layers[-1].is_fabric and not layers[-1].relu:
            target = layers[-1]
        elif (
            len(layers) >= 2
            and layers[-1].op == "maxpool"
            and layers[-2].is_fabric
            and not layers[-2].relu
        ):
            target = layers[-2]
        if target is not None:
            target.relu = True
            target.nodes.extend(layer.nodes)
        elif not _non_negative(layers):
            raise _error(
                layer,
                "Relu is supported only after a Conv or Gemm (optionally "
                "after its MaxPool) or on a map that is already non-negative",
            )
    return Graph(graph.name, graph.input_name, graph.input_shape, layers)


def check_patterns(graph: Graph) -> Graph:
    """CheckPatterns: refuse every chain the fabric and host cannot run exactly."""
    layers = graph.layers
    fabric = [i for i, layer in enumerate(layers) if layer.is_fabric]
    if not fabric:
        raise KcnnError("the model has no Conv, Gemm or MatMul layer", field="graph")
    last = fabric[-1]
    for i, layer in enumerate(layers):
        if layer.op == "softmax" and i < last:
            raise _error(layer, "Softmax is supported only as the last op (on the logits)")
    for i, layer in enumerate(layers):
        if layer.op in ("relu", "batchnorm", "bias_add"):
            raise _error(layer, f"unfolded {layer.op}")  # lowering passes must remove these
        if layer.is_fabric and i != last and not layer.relu:
            raise _error(
                layer,
                f"{layer.nodes[0]!r} is not followed by a Relu: every Conv or "
                "Gemm but the last must be (Conv -> [BatchNormalization] -> "
                "[MaxPool] -> Relu)",
            )
        if layer.is_fabric and i == last and layer.relu and not layer.attrs.get("average_pool"):
            raise _error(
                layer, f"the last layer {layer.nodes[0]!r} must emit logits: no Relu after it"
            )
        if layer.attrs.get("average_pool") and not _non_negative(layers[:i]):
            raise _error(
                layer, "average pooling of a signed map is not supported: it must follow a Relu"
            )
        if layer.op == "maxpool" and not _non_negative(layers[:i]):
            raise _error(
                layer,
                "max-pooling a signed map is not supported: codes of a signed "
                "map are not ordered by value; pool after a Relu",
            )
        if layer.op == "lrn" and not _non_negative(layers[:i]):
            raise _error(layer, "LRN on a signed map is not supported; it must follow a Relu")
        if i > last and layer.op != "softmax":
            raise _error(layer, f"only Softmax may follow the last Conv/Gemm, found {layer.op}")
    return graph


LOWERING_PASSES = (fold_batch_norm, fold_bias_add, fuse_relu, check_patterns)


def lower(graph: Graph) -> Graph:
    """Apply the lowering passes in order."""
    for step in LOWERING_PASSES:
        graph = step(graph)
    return graph
