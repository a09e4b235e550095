"""Lowering passes: fold the raw ops of the import into the layer chain and check it.

Each pass is a small function ``graph -> graph`` named as a verb; ``lower`` applies them
in order. After lowering, the chain holds no folded op of :mod:`kcnn.ops`.
"""

from __future__ import annotations

from kcnn.errors import KcnnError
from kcnn.model import Layer, Model


def _error(layer: Layer, message: str) -> KcnnError:
    node = layer.nodes[-1] if layer.nodes else layer.name
    return KcnnError(f"{message} (node {node!r})", layer=node)


def _non_negative(layers: list[Layer]) -> bool:
    """Whether the map at the end of ``layers`` is known to be >= 0."""
    for layer in reversed(layers):
        if layer.is_fabric:
            return layer.relu
        if layer.kind.on_logits:
            return True  # probabilities
        if not layer.kind.keeps_sign:
            return False
    return False  # the network input may be signed


def _fold_target(layers: list[Layer], op) -> Layer | None:
    """The weighted layer a folded op goes into: the layer before it, or for an
    activation the one before a max-pool (they commute), if it has no activation yet."""
    candidates = layers[-1:]
    if op.folds_past_commuting and len(layers) >= 2 and layers[-1].kind.commutes_with_activation:
        candidates = layers[-2:-1]
    if candidates and candidates[0].is_fabric and not candidates[0].relu:
        return candidates[0]
    return None


def fold_into_weighted(graph: Model) -> Model:
    """FoldIntoWeighted: every folded op (BatchNormalization, a bias Add, Relu) goes into
    the weighted layer before it, in graph order (:mod:`kcnn.ops.folded`). Conv -> MaxPool
    -> Relu becomes Conv(+ReLU) -> MaxPool; a Relu on a map that is already non-negative
    changes nothing and is dropped."""
    layers: list[Layer] = []
    for layer in graph.layers:
        op = layer.kind
        if not op.folded:
            layers.append(layer)
            continue
        target = _fold_target(layers, op)
        if target is not None:
            op.fold(target, layer)
            target.nodes.extend(layer.nodes)
        elif not (op.vanishes_on_non_negative and _non_negative(layers)):
            raise _error(layer, op.refusal(layer))
    return Model(graph.name, graph.input_shape, layers)


def check_patterns(graph: Model) -> Model:
    """CheckPatterns: refuse every chain the fabric and host cannot run exactly."""
    layers = graph.layers
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
        if layer.kind.needs_ordered_codes and not _non_negative(layers[:i]):
            raise _error(
                layer,
                f"{layer.op} of a signed map is not supported: codes of a signed "
                "map are not ordered by value; it must follow a Relu",
            )
        if layer.kind.host and not layer.kind.on_logits and not _non_negative(layers[:i]):
            raise _error(
                layer, f"{layer.op} on a signed map is not supported; it must follow a Relu"
            )
        if i > last and not layer.kind.on_logits:
            raise _error(layer, f"only Softmax may follow the last Conv/Gemm, found {layer.op}")
    return graph


LOWERING_PASSES = (fold_into_weighted, check_patterns)


def lower(graph: Model) -> Model:
    """Apply the lowering passes in order."""
    for step in LOWERING_PASSES:
        graph = step(graph)
    return graph
