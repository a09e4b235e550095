"""Softmax over the classes: a trailing host op on the logits (never re-encoded)."""

from __future__ import annotations

from kcnn import hostops
from kcnn.ops.base import Op, check_rank, register


@register
class Softmax(Op):
    name = "softmax"
    host = True
    on_logits = True
    rank = 1
    onnx_types = ("Softmax",)

    def import_node(self, imp, node) -> None:
        act = imp.activation(node)
        if len(act.shape) != 1:
            raise imp.error(node, "Softmax is supported only on the 2-D logits")
        axis = imp.attr(node, "axis", 1 if imp.opset < 13 else -1, int)
        if axis not in (1, -1):
            raise imp.error(node, f"Softmax axis={axis} is not supported; use the class axis")
        imp.push(node, "softmax", act.shape)

    def output_shape(self, layer, fail) -> tuple:
        check_rank(self, layer, fail)
        return tuple(layer.in_shape)

    def simulate(self, sim, layer, value):
        return hostops.softmax(value)

    def onnx_node(self, layer):
        return "Softmax", {"axis": -1}
