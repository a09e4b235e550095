"""Flatten: a coded map as a vector (ONNX Flatten with axis 1, or a Reshape to (N, -1)).

On the fabric it is the ``FLAT`` format of the step before; it has no step of its own.
"""

from __future__ import annotations

import numpy as np

from kcnn.ops.base import Op, register
from kcnn.ops.shuffle import import_reshape_view


@register
class Flatten(Op):
    name = "flatten"
    acts_on_codes = True
    keeps_sign = True
    shape_only = True
    onnx_types = ("Flatten", "Reshape")

    def import_node(self, imp, node) -> None:
        source = imp.alias.get(node.input[0], node.input[0])
        if node.op_type == "Reshape" and source in imp.views:
            shape = [int(s) for s in imp.const(node, 1, "shape").reshape(-1)]
            if import_reshape_view(imp, node, None, shape):
                return
        act = imp.activation(node)
        if node.op_type == "Flatten":
            if imp.attr(node, "axis", 1, int) != 1:
                raise imp.error(node, "only Flatten with axis=1 is supported")
        else:
            target = imp.const(node, 1, "shape")
            if target.dtype.kind not in "iu":
                raise imp.error(node, f"the shape input has dtype {target.dtype}, not int64")
            shape = [int(s) for s in target.reshape(-1)]
            if import_reshape_view(imp, node, act, shape):
                imp.reads = []
                return
            n = int(np.prod(act.shape))
            if (
                len(shape) != 2
                or shape[0] not in (1, -1, 0)
                or shape[1] not in (n, -1)
                or (shape[0] == -1 and shape[1] == -1)
            ):
                raise imp.error(
                    node,
                    f"Reshape to {shape} is not supported: only a flatten to "
                    f"(1, {n}), (-1, {n}) or (0, {n}) right after a map",
                )
        if len(act.shape) == 1:
            imp.alias[node.output[0]] = act.name
            return
        imp.push(node, "flatten", (int(np.prod(act.shape)),))

    def output_shape(self, layer, shapes, fail) -> tuple:
        return (int(np.prod(layer.in_shape)),)

    def simulate(self, sim, layer, inputs):
        return inputs[0].reshape(inputs[0].shape[0], -1)

    def onnx_node(self, layer):
        return "Flatten", {"axis": 1}
