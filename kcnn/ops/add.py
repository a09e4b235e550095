"""Add of two maps (DESIGN section 1, residual Add).

ONNX ``Add`` / ``Sum`` of two activations imports as an ``add`` layer; the lowering folds it
into the weighted layer in front of it where it can (that layer then adds the other map
through ``residual_table``). An add that stays is the fabric add layer: ``acc = R1[c1] +
R2[c2]`` with two tables of at most J_MAX integers in one unit (``attrs["unit"]``), then the
threshold bank. An ``Add`` of a constant is a bias, folded into the layer before it.
"""

from __future__ import annotations

import numpy as np

from kcnn.ops.base import Op, register


@register
class Add(Op):
    name = "add"
    thresholded = True
    onnx_types = ("Add", "Sum")

    def import_node(self, imp, node) -> None:
        names = [imp.alias.get(n, n) for n in node.input if n]
        constant = [i for i, n in enumerate(names) if n in imp.consts]
        if node.op_type == "Add" and len(names) == 2 and len(constant) == 1:
            act = imp.activation(node, 1 - constant[0])
            addend = imp.floats(node, constant[0], "addend")
            imp.push(node, "bias_add", act.shape, float_bias=addend)
            return
        if len(names) != 2 or constant:
            raise imp.error(
                node,
                f"adds {len(names)} inputs ({len(constant)} constant): an Add is supported "
                "as the bias of the Conv/Gemm before it (one constant) or as the sum of two "
                "maps of one shape",
            )
        a, b = imp.activation(node, 0), imp.activation(node, 1)
        if a.shape != b.shape:
            raise imp.error(
                node,
                f"adds maps of shapes {list(a.shape)} and {list(b.shape)}: broadcasting "
                "between maps is not supported",
            )
        imp.push(node, "add", a.shape)

    def input_counts(self) -> tuple[int, ...]:
        return (2,)

    def output_shape(self, layer, shapes, fail) -> tuple:
        if len(set(map(tuple, shapes))) != 1:
            raise fail(f"adds maps of shapes {[list(s) for s in shapes]}", layer.name, "inputs")
        return tuple(shapes[0])

    def simulate(self, sim, layer, inputs):
        first, second = (np.asarray(t, np.float64) for t in layer.add_tables)
        return sim.emit(layer, first[inputs[0]] + second[inputs[1]])

    def onnx_node(self, layer):
        return "Add", {}
