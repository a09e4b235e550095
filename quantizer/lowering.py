"""Lowering passes: fold the raw ops of the import into the layer graph and check it.

Each pass is a small function ``graph -> graph`` named as a verb; ``lower`` applies them
in order. After lowering, the graph holds no folded op of :mod:`kcnn.ops`.
"""

from __future__ import annotations

import numpy as np

from kcnn.errors import KcnnError
from kcnn.model import Layer, Model
from kcnn.ops.activations import activation_of
from kcnn.ops.codemap import CodeMap


def _error(layer: Layer, message: str) -> KcnnError:
    node = layer.nodes[-1] if layer.nodes else layer.name
    op = f", op {layer.node_ops[-1]}" if layer.node_ops else ""
    return KcnnError(f"{message} (node {node!r}{op})", layer=node)


class _Graph:
    """The layers being lowered, by name, with the number of readers of each tensor."""

    def __init__(self, graph: Model):
        self.by_name = {layer.name: layer for layer in graph.layers}
        self.readers = {name: 0 for name in ("input", *self.by_name)}
        for layer in graph.layers:
            for tensor in layer.inputs:
                self.readers[tensor] += 1
        self.order = {name: i for i, name in enumerate(self.by_name)}

    def sole_reader(self, tensor: str) -> Layer | None:
        """The producer of ``tensor`` when this tensor has exactly one reader."""
        if tensor == "input" or self.readers[tensor] != 1:
            return None
        return self.by_name[tensor]

    def replace(self, old: str, new: str) -> None:
        """Readers of tensor ``old`` read ``new`` from now on (``old`` is folded away)."""
        self.readers[new] += self.readers[old] - 1


def _non_negative(graph: _Graph, tensor: str) -> bool:
    """Whether tensor ``tensor`` is known to be >= 0."""
    if tensor == "input":
        return False  # the network input may be signed
    layer = graph.by_name[tensor]
    if layer.kind.on_logits:
        return True  # probabilities
    if layer.thresholded or layer.is_fabric:
        act = activation_of(layer)
        return act is not None and act.non_negative(layer.activation)
    if layer.kind.keeps_sign:
        return all(_non_negative(graph, t) for t in layer.inputs)
    return False


def _fold_targets(graph: _Graph, layer: Layer) -> list[Layer]:
    """The layers a folded op goes into: the producer of its input when the op is its
    only reader and it has no activation yet; for an activation also the producer before
    a max-pool (they commute), or every producer joined by a Concat (an activation of the
    joined map is the joined activations). BatchNorm, Scale and bias Adds need a weighted
    layer or a code table. Empty when there is none."""
    op = layer.kind
    target = graph.sole_reader(layer.inputs[0])
    if target is not None and op.folds_past_commuting and target.kind.commutes_with_activation:
        target = graph.sole_reader(target.inputs[0])
    if target is not None and op.folds_past_commuting and target.kind.joins_maps:
        # A branch that cannot take the activation may already be non-negative, where a
        # ReLU changes nothing.
        takers = []
        for tensor in target.inputs:
            taker = _taker(graph, graph.sole_reader(tensor), op)
            if taker is not None:
                takers.append(taker)
            elif not (op.vanishes_on_non_negative and _non_negative(graph, tensor)):
                return []
        return takers
    taker = _taker(graph, target, op)
    return [taker] if taker is not None else []


def _taker(graph: _Graph, target: Layer | None, op) -> Layer | None:
    if target is None or target.activation is not None or not target.kind.folds_activation:
        return None
    takes_affine = target.is_fabric and target.residual is None or target.kind.is_code_table
    if op.needs_weights and not takes_affine:
        return None
    return target


def _fuse_residual(graph: _Graph, add: Layer) -> Layer | None:
    """The weighted layer in front of an Add that takes the Add into its accumulator: a
    producer of one operand that the Add alone reads, with no activation and no residual
    yet, whose other operand is made before it (the later such producer)."""
    candidates = []
    for k, tensor in enumerate(add.inputs):
        producer = graph.sole_reader(tensor)
        other = add.inputs[1 - k]
        if (
            producer is not None
            and producer.is_fabric
            and producer.activation is None
            and producer.residual is None
            and (other == "input" or graph.order[other] < graph.order[producer.name])
        ):
            candidates.append((graph.order[producer.name], producer, other))
    if not candidates:
        return None
    _, producer, other = max(candidates, key=lambda c: c[0])
    producer.inputs.append(other)
    return producer


def fold_into_weighted(graph: Model) -> Model:
    """FoldIntoWeighted, in graph order: every folded op (BatchNormalization, Scale, a bias
    Add, a monotone activation) goes into the layer before it by its op's ``fold``
    (:mod:`kcnn.ops.folded`, :mod:`kcnn.ops.activations`); an Add of two maps goes into the
    accumulator of the weighted layer in front of it where there is one (DESIGN section 1,
    residual Add), else it stays a fabric add layer. Conv -> MaxPool -> Relu becomes
    Conv(+ReLU) -> MaxPool; a Relu on a map that is already non-negative is dropped."""
    lowered = _Graph(graph)
    alias: dict[str, str] = {}
    layers: list[Layer] = []
    for layer in graph.layers:
        layer.inputs = [alias.get(t, t) for t in layer.inputs]
        op = layer.kind
        if op.adds_maps:
            producer = _fuse_residual(lowered, layer)
            if producer is not None:
                alias[layer.name] = producer.name
                lowered.replace(layer.name, producer.name)
                producer.nodes.extend(layer.nodes)
                producer.node_ops.extend(layer.node_ops)
                continue
        if not op.folded:
            layers.append(layer)
            continue
        targets = _fold_targets(lowered, layer)
        if targets:
            for target in targets:
                op.fold(target, layer)
                target.nodes.extend(layer.nodes)
                target.node_ops.extend(layer.node_ops)
            alias[layer.name] = layer.inputs[0]
            lowered.replace(layer.name, layer.inputs[0])
        elif op.vanishes_on_non_negative and _non_negative(lowered, layer.inputs[0]):
            alias[layer.name] = layer.inputs[0]
            lowered.replace(layer.name, layer.inputs[0])
        elif op.becomes_code_table and len(layer.in_shape) == 3:
            # e.g. a pre-activation BatchNorm on a map others read too
            channels = layer.in_shape[0]
            if layer.weight is None:
                layer.weight = np.ones(channels)
            if layer.float_bias.size not in (1, channels):
                raise _error(layer, f"adds a constant of {layer.float_bias.size} values per map")
            layer.float_bias = np.broadcast_to(layer.float_bias.reshape(-1), (channels,)).copy()
            layer.op = CodeMap.name
            layers.append(layer)
        else:
            raise _error(layer, op.refusal(layer))
    return Model(graph.name, graph.input_shape, layers)


def settle_average_pools(graph: Model) -> Model:
    """SettleAveragePools: an average pooling keeps its input's sign, so it emits through
    a ReLU bank (exact) after a non-negative map and a signed map otherwise."""
    lowered = _Graph(graph)
    for layer in graph.layers:
        if layer.attrs.get("average_pool"):
            layer.activation = {"op": "relu"} if _non_negative(lowered, layer.inputs[0]) else None
    return graph


def check_patterns(graph: Model) -> Model:
    """CheckPatterns: refuse every graph the fabric and host cannot run exactly."""
    layers = graph.layers
    lowered = _Graph(graph)
    fabric = [i for i, layer in enumerate(layers) if layer.is_fabric]
    if not fabric:
        raise KcnnError("the model has no Conv, Gemm or MatMul layer", field="graph")
    last = fabric[-1]
    for i, layer in enumerate(layers):
        if layer.kind.on_logits and i < last:
            what = layer.kind.onnx_types[0]
            raise _error(layer, f"{what} is supported only as the last op (on the logits)")
    for i, layer in enumerate(layers):
        if layer.kind.folded:
            raise _error(layer, f"unfolded {layer.op}")  # lowering passes must remove these
        signed_input = layer.inputs and not _non_negative(lowered, layer.inputs[0])
        if i == last:
            # The logits layer emits acc: an activation after it would be lost.
            if layer.activation is not None and not layer.attrs.get("average_pool"):
                raise _error(
                    layer, f"the last layer {layer.nodes[0]!r} must emit logits: no activation"
                )
            layer.activation = None
        if layer.kind.needs_ordered_codes and signed_input:
            raise _error(
                layer,
                f"{layer.op} of a signed map is not supported: codes of a signed "
                "map are not ordered by value; it must follow a non-negative activation",
            )
        if layer.kind.host and not layer.kind.on_logits and signed_input:
            raise _error(
                layer,
                f"{layer.op} on a signed map is not supported; it must follow a non-negative "
                "activation",
            )
        if i > last and not (layer.kind.on_logits or layer.kind.shape_only):
            raise _error(layer, f"only Softmax may follow the last Conv/Gemm, found {layer.op}")
        if i < last and not lowered.readers[layer.name]:
            raise _error(layer, "its output is read by no layer and is not the model's output")
        if layer.residual is not None and i == last:
            raise _error(layer, "a residual Add into the logits layer is not supported")
    return graph


LOWERING_PASSES = (fold_into_weighted, settle_average_pools, check_patterns)


def lower(graph: Model) -> Model:
    """Apply the lowering passes in order."""
    for step in LOWERING_PASSES:
        graph = step(graph)
    return graph
