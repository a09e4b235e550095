"""MaxPool on codes (DESIGN section 1): the max of codes, padding = code 0, on a map whose
codebook ascends from code 0 = zero. ``attrs``: ``kernel, strides, pads``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from kcnn.config import BuildParams
from kcnn.errors import KcnnError
from kcnn.ops.base import (
    Op,
    conv_output_hw,
    pool_output_shape,
    register,
    sliding_windows,
    window_attrs,
)
from kcnn.protocol import FORMATS, format_words
from kcnn.tiling import (
    POOL_STRIDE_MAX,
    POOL_WINDOW_MAX,
    Step,
    base_fields,
    row_bands,
)

if TYPE_CHECKING:
    from kcnn.model import Layer


@register
class MaxPool(Op):
    name = "maxpool"
    acts_on_codes = True
    fabric_step = True
    rank = 3
    keeps_sign = True
    needs_ordered_codes = True
    commutes_with_activation = True
    onnx_types = ("MaxPool",)

    def import_node(self, imp, node) -> None:
        act = imp.activation(node)
        imp.require_4d(node, act)
        imp.only_first_output_used(node)
        kernel = imp.ints(node, "kernel_shape", None, 2, 1)
        attrs = window_attrs(imp, node, act.shape[1:], kernel)
        if attrs.pop("dilations") != [1, 1]:
            raise imp.error(node, "dilated max-pooling is not supported")
        oh, ow = conv_output_hw(
            act.shape[1:], attrs["kernel"], attrs["strides"], attrs["pads"], [1, 1]
        )
        imp.push(node, "maxpool", (act.shape[0], oh, ow), attrs=attrs)

    def output_shape(self, layer, shapes, fail) -> tuple:
        return pool_output_shape(self, layer, fail)

    def simulate(self, sim, layer, inputs):
        a = layer.attrs
        windows = sliding_windows(inputs[0], a["kernel"], a["strides"], a["pads"], [1, 1])
        return windows.max(axis=(2, 3))

    def onnx_node(self, layer):
        a = layer.attrs
        return "MaxPool", {"kernel_shape": a["kernel"], "strides": a["strides"], "pads": a["pads"]}

    def tile(self, model, layer, index, in_format, out_format, params):
        return _pool_steps(model, layer, index, in_format, out_format, params)


def _pool_steps(
    model, layer: Layer, index: int, in_format: str, out_format: str, params: BuildParams
) -> list[Step]:
    """A max-pool's steps: one pool, or a chain of pools whose windows (at most
    ``POOL_WINDOW_MAX``) add up to the layer's. Pools at stride 1 with windows ``a`` then
    ``b`` take the max over ``a + b - 1`` consecutive inputs, so a chain ending in the
    layer's stride is the layer exactly; its top padding is shared out so that no pool
    pads more than its window minus one, and every intermediate map is cut where the next
    pool's windows would see only padding (padding never wins)."""
    stages = _pool_chain(layer)
    steps: list[Step] = []
    for n, stage in enumerate(stages):
        last = n + 1 == len(stages)
        made = _pool_step(
            stage,
            index + len(steps),
            in_format if n == 0 else "BLOCKED",
            out_format if last else "BLOCKED",
            params,
        )
        for step in made:
            step.layer = layer if last else stage
        steps.extend(made)
    return steps


def _pool_chain(layer: Layer) -> list[Layer]:
    """The pools that make up ``layer``: one when the kernel takes its window."""
    a = layer.attrs
    (kh, kw), (sh, sw) = a["kernel"], a["strides"]
    c, h, w = layer.in_shape
    _, oh, ow = layer.out_shape
    # A single output's stride is never used: a global pool takes any.
    sh, sw = (1 if oh == 1 else sh), (1 if ow == 1 else sw)
    if max(sh, sw) > POOL_STRIDE_MAX:
        raise KcnnError(
            f"max-pool stride {sh}x{sw}: the kernel pools with strides up to "
            f"{POOL_STRIDE_MAX} (a global pool, one output, takes any)",
            layer=layer.name,
            field="strides",
        )
    if max(kh, kw) <= POOL_WINDOW_MAX:
        return [replace(layer, attrs={**a, "strides": [sh, sw]})]
    rows = _pool_axis(h, kh, sh, a["pads"][0], oh, layer)
    cols = _pool_axis(w, kw, sw, a["pads"][1], ow, layer)
    count = max(len(rows), len(cols))
    # The shorter axis starts with pools of window 1: they keep its map as it is.
    rows = [(1, 1, 0, h)] * (count - len(rows)) + rows
    cols = [(1, 1, 0, w)] * (count - len(cols)) + cols
    stages, size = [], (h, w)
    for (wh, th, ph, nh), (wc, tc, pc, nc) in zip(rows, cols, strict=True):
        stages.append(
            replace(
                layer,
                in_shape=(c, *size),
                out_shape=(c, nh, nc),
                attrs={**a, "kernel": [wh, wc], "strides": [th, tc], "pads": [ph, pc, 0, 0]},
            )
        )
        size = (nh, nc)
    return stages


def _pool_axis(n: int, k: int, s: int, pad: int, out: int, layer: Layer) -> list[tuple]:
    """One axis of a pool chain: ``(window, stride, top pad, output length)`` per pool,
    stride 1 but the last; the windows' extents add up to ``k``, the pads to ``pad``."""
    windows, left = [], k - 1
    while left > 0:
        step = min(POOL_WINDOW_MAX - 1, left)
        windows.append(step + 1)
        left -= step
    windows = windows or [1]
    pads, left = [], pad
    for window in windows:
        pads.append(min(window - 1, left))
        left -= pads[-1]
    if left:
        raise KcnnError(
            f"max-pool padding {pad} is not below its window {k}", layer=layer.name, field="pads"
        )
    # Backwards from the output: the length each pool's successor reads.
    need = [out]
    for j in range(len(windows) - 1, 0, -1):
        stride = s if j == len(windows) - 1 else 1
        need.append((need[-1] - 1) * stride - pads[j] + windows[j])
    need.reverse()
    axis, length = [], n
    for j, window in enumerate(windows):
        last = j + 1 == len(windows)
        # past length + pad a window would see only padding: the next pool pads instead
        length = out if last else min(need[j], length + pads[j])
        axis.append((window, s if last else 1, pads[j], length))
    return axis


def _pool_step(
    layer: Layer, index: int, in_format: str, out_format: str, params: BuildParams
) -> list[Step]:
    a = layer.attrs
    c, h, w = layer.in_shape
    _, oh, ow = layer.out_shape
    (kh, kw), (sh, sw) = a["kernel"], a["strides"]
    pt, pl, _, _ = a["pads"]
    flat = out_format == "FLAT"
    # A FLAT answer is gathered in the output memory and streamed at the step's end.
    out_fits = (lambda n: c * n * ow <= params.OUT_DEPTH) if flat else None
    bands = row_bands(
        h, w, oh, sh, pt, kh, 1, params, layer, out_fits=out_fits, align=1 if flat else 4
    )
    steps = []
    for n, (r0, r1, o0, o1) in enumerate(bands):
        rows, band_oh = r1 - r0, o1 - o0
        fields = {
            **base_fields("POOL", index + n),
            "in_c": c,
            "in_h": rows,
            "in_w": w,
            "out_c": c,
            "out_h": band_oh,
            "out_w": ow,
            "kh": kh,
            "kw": kw,
            "sh": sh,
            "sw": sw,
            "pad_t": max(0, pt - o0 * sh),
            "pad_l": pl,
            "in_format": FORMATS[in_format],
            "out_format": FORMATS[out_format],
            "map_words": format_words(in_format, c, rows, w),
            "out_words": format_words(out_format, c, band_oh, ow),
        }
        steps.append(
            Step(
                index + n,
                "POOL",
                layer,
                fields,
                np.zeros(0, np.uint64),
                [],
                in_format,
                out_format,
                (c, rows, w),
                (c, band_oh, ow),
                params=params,
                band=(r0, r1, o0, o1) if len(bands) > 1 else None,
            )
        )
    return steps
