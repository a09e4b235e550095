"""Concat of maps along the channels: layout only (DESIGN section 1).

Every map joined by a Concat shares one codebook (the quantizer calibrates it on all of
them), so the output's codes are the inputs' codes side by side.
"""

from __future__ import annotations

import numpy as np

from kcnn.ops.base import Op, register


@register
class Concat(Op):
    name = "concat"
    acts_on_codes = True
    joins_maps = True
    keeps_sign = True
    onnx_types = ("Concat",)

    def import_node(self, imp, node) -> None:
        tensors = [imp.activation(node, i) for i in range(len(node.input))]
        rank = len(tensors[0].shape) + 1
        axis = imp.attr(node, "axis", None, int)
        if axis not in (1, 1 - rank):
            raise imp.error(node, f"Concat axis={axis} is not supported; only the channels (1)")
        if any(len(t.shape) != rank - 1 or t.shape[1:] != tensors[0].shape[1:] for t in tensors):
            raise imp.error(
                node,
                f"joins maps of shapes {[list(t.shape) for t in tensors]}: all but the "
                "channels must agree",
            )
        channels = sum(t.shape[0] for t in tensors)
        imp.push(node, "concat", (channels, *tensors[0].shape[1:]), attrs={"axis": 1})

    def input_counts(self) -> tuple[int, ...]:
        return tuple(range(2, 257))

    def output_shape(self, layer, shapes, fail) -> tuple:
        if any(len(s) != len(shapes[0]) or tuple(s[1:]) != tuple(shapes[0][1:]) for s in shapes):
            raise fail(
                f"joins maps of shapes {[list(s) for s in shapes]}: all but the channels must "
                "agree",
                layer.name,
                "inputs",
            )
        return (sum(int(s[0]) for s in shapes), *shapes[0][1:])

    def simulate(self, sim, layer, inputs):
        return np.concatenate(inputs, axis=1)

    def onnx_node(self, layer):
        return "Concat", {"axis": 1}
