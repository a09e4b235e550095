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
        axis = imp.attr(node, "axis", 1 if imp.opset < 13 else -1, int)
        rank = len(act.shape) + 1
        classes = act.shape[0]
        if rank == 4 and act.shape[1:] == (1, 1) and axis in (1, -3) + ((-1,) * (imp.opset < 13)):
            # Logits as (N, C, 1, 1) (a classifier conv before global pooling): over C.
            layer = imp.push(node, "flatten", (classes,))
            imp.reads = [layer.name]
        elif rank != 2 or axis not in (1, -1):
            raise imp.error(
                node,
                f"Softmax over axis {axis} of a {rank}-D map is not supported; only over the "
                "classes of (N, C) or (N, C, 1, 1) logits",
            )
        imp.push(node, "softmax", (classes,))

    def output_shape(self, layer, shapes, fail) -> tuple:
        check_rank(self, layer, fail)
        return tuple(layer.in_shape)

    def simulate(self, sim, layer, inputs):
        return hostops.softmax(inputs[0])

    def onnx_node(self, layer):
        return "Softmax", {"axis": -1}
