"""Ops that exist only between import and lowering: the lowering pass
(:func:`kcnn.quantizer.lowering.fold_into_weighted`) folds each into the weighted layer
before it with the op's :meth:`FoldedOp.fold`.

``batchnorm`` and ``scale`` scale its weights and shift its bias (``weight`` holds the
per-channel gain, ``float_bias`` the shift); ``bias_add`` adds a constant to its bias
(``float_bias``). The activations (:mod:`kcnn.ops.activations`) fold the same way.
"""

from __future__ import annotations

import numpy as np

from kcnn.errors import KcnnError
from kcnn.ops.base import Op, register


class FoldedOp(Op):
    """An op the lowering folds into the weighted layer before it."""

    folded = True
    #: It changes weights and biases, so only a weighted layer can take it.
    needs_weights = True
    #: It may fold past an op that commutes with it (an activation past a max-pool).
    folds_past_commuting = False
    #: It changes nothing on a map that is already non-negative (a ReLU), so it vanishes
    #: there when no layer can take it.
    vanishes_on_non_negative = False
    #: Where no weighted layer can take it, it becomes a per-channel code table
    #: (:mod:`kcnn.ops.codemap`).
    becomes_code_table = False

    def fold(self, target, layer) -> None:
        """Fold ``layer`` into the weighted layer ``target`` (which has no activation yet)."""
        raise NotImplementedError(self.name)

    def refusal(self, layer) -> str:
        """Why ``layer`` cannot fold where it is, and where it can."""
        return (
            f"{layer.nodes[-1]!r} must directly follow a Conv, Gemm or MatMul to be folded into it"
        )


def _refuse(layer, message: str) -> KcnnError:
    node = layer.nodes[-1] if layer.nodes else layer.name
    return KcnnError(f"{message} (node {node!r})", layer=node)


@register
class BatchNorm(FoldedOp):
    name = "batchnorm"
    onnx_types = ("BatchNormalization",)
    becomes_code_table = True

    def import_node(self, imp, node) -> None:
        act = imp.activation(node)
        imp.only_first_output_used(node)
        channels = act.shape[0]
        params = [
            imp.floats(node, i, what, (channels,))
            for i, what in enumerate(("", "scale", "B", "mean", "var"))
            if i
        ]
        eps = imp.attr(node, "epsilon", 1e-5, float)
        if not np.isfinite(eps) or np.any(params[3] + eps <= 0):
            raise imp.error(node, "var + epsilon must be positive: a variance is negative")
        gain = params[0] / np.sqrt(params[3] + eps)
        shift = params[1] - params[2] * gain
        imp.push(node, "batchnorm", act.shape, weight=gain, float_bias=shift)

    def fold(self, target, layer) -> None:
        gain = layer.weight
        target.weight = target.weight * gain.reshape((-1,) + (1,) * (target.weight.ndim - 1))
        target.float_bias = target.float_bias * gain + layer.float_bias


@register
class BiasAdd(FoldedOp):
    """A constant added to a map (ONNX Add with one constant, imported by
    :class:`kcnn.ops.add.Add`)."""

    name = "bias_add"
    becomes_code_table = True

    def fold(self, target, layer) -> None:
        channels = target.out_shape[0]
        term = layer.float_bias
        if len(target.out_shape) == 3:
            if term.size not in (1, channels) or (term.ndim >= 3 and term.shape[-2:] != (1, 1)):
                raise _refuse(layer, f"the Add after {target.name!r} is not a per-channel bias")
        elif term.size not in (1, channels):
            raise _refuse(layer, f"the Add after {target.name!r} is not a per-output bias")
        target.float_bias = target.float_bias + np.broadcast_to(term.reshape(-1), (channels,))


@register
class Scale(BatchNorm):
    """Mul of a map by a per-channel constant (Caffe's Scale), folded like a BatchNorm."""

    name = "scale"
    onnx_types = ("Mul",)

    def import_node(self, imp, node) -> None:
        names = [imp.alias.get(n, n) for n in node.input if n]
        constant = [i for i, n in enumerate(names) if n in imp.consts]
        if len(names) != 2 or len(constant) != 1:
            raise imp.error(
                node,
                "multiplies two maps (x * Sigmoid(x) is SiLU, a map times a gate is "
                "squeeze-excitation): neither is monotone in one map, so it has no exact "
                "form on codes; a Mul is supported only by a per-channel constant (folded "
                "into the Conv/Gemm before it)",
            )
        act = imp.activation(node, 1 - constant[0])
        gain = imp.floats(node, constant[0], "gain")
        channels = act.shape[0]
        if gain.size not in (1, channels) or (gain.ndim >= 3 and gain.shape[-2:] != (1, 1)):
            raise imp.error(node, f"the gain of shape {list(gain.shape)} is not per channel")
        gain = np.broadcast_to(gain.reshape(-1), (channels,)).astype(np.float64)
        imp.push(node, "scale", act.shape, weight=gain, float_bias=np.zeros(channels))
