"""Channel shuffle (ShuffleNet): an exact permutation of the channels, layout only.

Exporters write it as Reshape to ``(N, g, C/g, H, W)``, Transpose ``(0, 2, 1, 3, 4)`` and
Reshape back to ``(N, C, H, W)``; the importer follows the three nodes as views of one
map and makes one ``shuffle`` layer (``attrs["groups"]`` = g): output channel ``o`` is
input channel ``(o mod g) * C/g + o div g``.
"""

from __future__ import annotations

import numpy as np

from kcnn.ops.base import Op, check_rank, is_int, register


def permutation(channels: int, groups: int) -> np.ndarray:
    """The input channel of each output channel."""
    out = np.arange(channels)
    return (out % groups) * (channels // groups) + out // groups


@register
class Shuffle(Op):
    name = "shuffle"
    acts_on_codes = True
    keeps_sign = True
    rank = 3
    onnx_types = ("Transpose",)

    def import_node(self, imp, node) -> None:
        source = imp.alias.get(node.input[0], node.input[0])
        view = imp.views.get(source)
        perm = imp.attr(node, "perm", None, list)
        if view is None or view[0] != "split" or perm != [0, 2, 1, 3, 4]:
            raise imp.error(
                node,
                f"Transpose {perm} is supported only as the middle of a channel shuffle "
                "(Reshape to (N, g, C/g, H, W), Transpose (0, 2, 1, 3, 4), Reshape back)",
            )
        imp.views[node.output[0]] = ("swapped", view[1], view[2])

    def output_shape(self, layer, shapes, fail) -> tuple:
        check_rank(self, layer, fail)
        groups = layer.attrs.get("groups")
        if not is_int(groups) or groups < 1 or layer.in_shape[0] % groups:
            raise fail(f"attrs.groups = {groups!r} must divide the channels", layer.name, "attrs")
        return tuple(layer.in_shape)

    def simulate(self, sim, layer, inputs):
        return inputs[0][:, permutation(inputs[0].shape[1], layer.attrs["groups"])]

    def onnx_nodes(self, layer, helper, numpy_helper, inputs, y, inits) -> list:
        c, h, w = layer.in_shape
        g = layer.attrs["groups"]
        split, back = f"{layer.name}.split", f"{layer.name}.back"
        inits.append(numpy_helper.from_array(np.array([0, g, c // g, h, w], np.int64), split))
        inits.append(numpy_helper.from_array(np.array([0, c, h, w], np.int64), back))
        grouped, swapped = f"{y}.grouped", f"{y}.swapped"
        return [
            helper.make_node("Reshape", [inputs[0], split], [grouped], name=layer.name),
            helper.make_node(
                "Transpose", [grouped], [swapped], name=f"{layer.name}.t", perm=[0, 2, 1, 3, 4]
            ),
            helper.make_node("Reshape", [swapped, back], [y], name=f"{layer.name}.r"),
        ]


def import_reshape_view(imp, node, act, shape) -> bool:
    """A Reshape that is part of a channel shuffle: to ``(N, g, C/g, H, W)`` (a view) or,
    from a transposed view, back to ``(N, C, H, W)`` (the shuffle layer). True when it was
    one."""
    source = imp.alias.get(node.input[0], node.input[0])
    view = imp.views.get(source)
    if view is not None and view[0] == "swapped":
        tensor, groups = view[1], view[2]
        c, h, w = tensor.shape
        if len(shape) != 4 or shape[1:] != [c, h, w]:
            raise imp.error(node, f"a channel shuffle must reshape back to (N, {c}, {h}, {w})")
        imp.reads = [tensor.layer]
        imp.push(node, "shuffle", tensor.shape, attrs={"groups": int(groups)})
        return True
    if act is None or len(shape) != 5 or len(act.shape) != 3:
        return False
    c, h, w = act.shape
    groups = shape[1]
    if groups < 1 or c % groups or shape[2:] != [c // groups, h, w]:
        return False
    imp.views[node.output[0]] = ("split", act, groups)
    return True
