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
from kcnn.protocol import FLAGS, FORMATS, format_words, pack_residual_table
from kcnn.tiling import Step, WindowTooLarge, bank_constants, base_fields


@register
class Add(Op):
    name = "add"
    thresholded = True
    fabric_step = True
    adds_maps = True
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

    def table_arrays(self, layer) -> dict:
        return {
            f"{layer.name}.add_table{k}": table.astype(np.int64)
            for k, table in enumerate(layer.add_tables or [])
        }

    def read_tables(self, reader, layer, j_max: int) -> None:
        layer.add_tables = [
            reader.array(f"{layer.name}.add_table{k}", np.int64, layer.name, max_len=j_max)
            for k in (0, 1)
        ]

    def output_shape(self, layer, shapes, fail) -> tuple:
        if len(set(map(tuple, shapes))) != 1:
            raise fail(f"adds maps of shapes {[list(s) for s in shapes]}", layer.name, "inputs")
        return tuple(shapes[0])

    def simulate(self, sim, layer, inputs):
        first, second = (np.asarray(t, np.float64) for t in layer.add_tables)
        return sim.emit(layer, first[inputs[0]] + second[inputs[1]])

    def onnx_node(self, layer):
        return "Add", {}

    def tile(self, model, layer, index, in_format, out_format, params):
        """ADD steps (docs/job-format.md): map A in the map section, held whole in the
        tile, map B in the shortcut section; bands of 4-row multiples when map A does not
        fit ``IN_DEPTH`` codes."""
        c, h, w = (*layer.in_shape, 1, 1)[:3] if len(layer.in_shape) == 1 else layer.in_shape
        constants = np.concatenate(
            [*(pack_residual_table(t) for t in layer.add_tables), *bank_constants(layer)]
        ).astype(np.uint64)

        def fits(rows: int) -> bool:
            held = 16 * format_words(in_format, c, rows, w) <= params.IN_DEPTH
            reordered = in_format == "BLOCKED" and out_format == "FLAT"
            return held and (not reordered or c * rows * w <= params.OUT_DEPTH)

        rows = h
        while not fits(rows) and rows > 4:
            rows = (rows - 1) // 4 * 4
        if not fits(rows) or (rows < h and in_format != "BLOCKED"):
            raise WindowTooLarge(
                f"a map of {c} x {rows} x {w} codes does not fit the tile "
                f"(IN_DEPTH={params.IN_DEPTH}) or the output memory (OUT_DEPTH="
                f"{params.OUT_DEPTH})",
                layer=layer.name,
                field="IN_DEPTH",
            )
        steps = []
        for n, r0 in enumerate(range(0, h, rows)):
            r1 = min(h, r0 + rows)
            fields = {
                **base_fields("ADD", index + n),
                "flags": FLAGS["OUT_TABLE"] if layer.out_table is not None else 0,
                "jo1": len(layer.thresholds),
                "in_c": c,
                "in_h": r1 - r0,
                "in_w": w,
                "out_c": c,
                "out_h": r1 - r0,
                "out_w": w,
                "in_format": FORMATS[in_format],
                "out_format": FORMATS[out_format],
                "const_words": constants.size,
                "map_words": format_words(in_format, c, r1 - r0, w),
                "out_words": format_words(out_format, c, r1 - r0, w),
            }
            shape = (c, r1 - r0, w)
            steps.append(
                Step(
                    index + n,
                    "ADD",
                    layer,
                    fields,
                    constants,
                    [],
                    in_format,
                    out_format,
                    in_shape=shape,
                    out_shape=shape,
                    params=params,
                    band=None if rows >= h else (r0, r1, r0, r1),
                )
            )
        return steps
