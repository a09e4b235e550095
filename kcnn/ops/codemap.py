"""An element-wise op on one map as a per-channel code-to-code table (DESIGN section 1).

A BatchNormalization (or Caffe Scale) that no weighted layer can take, e.g. the
pre-activation BN + ReLU of a DenseNet block on a map that others read too, becomes this
layer: each channel maps each input code to an output code through a table of at most
J_MAX entries computed at quantize time from the exact op (``y = gain * x + shift``, then
the folded activation and the output map's threshold bank), so it is exact by
construction. Before BuildTables it carries ``weight`` (the gain) and ``float_bias`` (the
shift) per channel; after it, ``code_table`` ``(C, J_in)``.
"""

from __future__ import annotations

import numpy as np

from kcnn.ops.base import Op, register


@register
class CodeMap(Op):
    name = "codemap"
    rank = 3
    emits_codes = True
    is_code_table = True

    @property
    def reads_codebook(self) -> bool:
        return True

    @property
    def folds_activation(self) -> bool:
        return True

    def table_arrays(self, layer) -> dict:
        if layer.code_table is None:
            return {}
        return {f"{layer.name}.code_table": layer.code_table.astype(np.uint8).reshape(-1)}

    def read_tables(self, reader, layer, j_max: int) -> None:
        name = layer.name
        if layer.in_map is None or layer.out_map is None:
            raise reader.fail(
                "a code table maps one codebook to another", layer=name, field="in_map"
            )
        rows, columns = layer.in_shape[0], reader.maps[layer.in_map].J
        table = reader.array(f"{name}.code_table", np.uint8, name, shape=rows * columns)
        if table.max() >= reader.maps[layer.out_map].J:
            raise reader.fail(
                f"code_table holds codes beyond J'={reader.maps[layer.out_map].J}",
                layer=name,
                field="code_table",
            )
        layer.code_table = table.reshape(rows, columns)

    def output_shape(self, layer, shapes, fail) -> tuple:
        table = layer.code_table
        if table is None or table.ndim != 2 or table.shape[0] != layer.in_shape[0]:
            raise fail(
                f"code_table must have one row per input channel ({layer.in_shape[0]})",
                layer.name,
                "code_table",
            )
        return tuple(layer.in_shape)

    def simulate(self, sim, layer, inputs):
        codes = inputs[0]
        channels = np.arange(codes.shape[1]).reshape(1, -1, *([1] * (codes.ndim - 2)))
        return layer.code_table[channels, codes]

    def onnx_nodes(self, layer, helper, numpy_helper, inputs, y, inits) -> list:
        """``y = gain * x + shift`` per channel, as ONNX Mul and Add."""
        shape = (-1,) + (1,) * (len(layer.in_shape) - 1)
        gain, shift = f"{layer.name}.gain", f"{layer.name}.shift"
        inits.append(numpy_helper.from_array(layer.weight.reshape(shape).astype(np.float32), gain))
        inits.append(
            numpy_helper.from_array(layer.float_bias.reshape(shape).astype(np.float32), shift)
        )
        scaled = f"{y}.scaled"
        return [
            helper.make_node("Mul", [inputs[0], gain], [scaled], name=layer.name),
            helper.make_node("Add", [scaled, shift], [y], name=f"{layer.name}.shift"),
        ]
