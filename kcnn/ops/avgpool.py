"""Average pooling that excludes padding from its count (ONNX AveragePool with pads and
``count_include_pad=0``): a host op between two maps (DESIGN section 1).

Border windows divide by fewer taps, so this is not a constant-weight layer; the host
decodes the map, sums each window as explicit shifted additions in a fixed order, divides
by the window's count of real taps (IEEE-exact operations only, the same codes on the
board's ARM and on x86) and re-encodes with the next map's thresholds.
``attrs``: ``kernel, strides, pads``. Average pooling without excluded padding is a
constant-weight depthwise conv (:mod:`kcnn.ops.conv`).
"""

from __future__ import annotations

import numpy as np

from kcnn.codes import encode_thresholds
from kcnn.ops.base import Op, conv_output_hw, pool_output_shape, register


def window_sums(x: np.ndarray, kernel, strides, pads) -> np.ndarray:
    """Sums over pooling windows of ``(N, C, H, W)``, padding 0, as shifted additions in
    row-major tap order (no reductions, whose order varies between numpy builds)."""
    top, left, bottom, right = pads
    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    (kh, kw), (sh, sw) = kernel, strides
    oh, ow = conv_output_hw(x.shape[2:], kernel, strides, pads, [1, 1])
    total = np.zeros((*x.shape[:2], oh, ow), x.dtype)
    for i in range(kh):
        for j in range(kw):
            total = (
                total + padded[:, :, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw]
            )
    return total


@register
class AvgPoolExcludingPad(Op):
    name = "avgpool"
    host = True
    rank = 3
    keeps_sign = True

    def output_shape(self, layer, shapes, fail) -> tuple:
        return pool_output_shape(self, layer, fail)

    def simulate(self, sim, layer, inputs):
        a = layer.attrs
        book = sim.model.maps[layer.in_map]
        values = book.decode(inputs[0])
        sums = window_sums(values, a["kernel"], a["strides"], a["pads"])
        counts = window_sums(
            np.ones((1, 1, *values.shape[2:])), a["kernel"], a["strides"], a["pads"]
        )
        return encode_thresholds(sums / counts, sim.model.maps[layer.out_map].boundaries)

    def onnx_node(self, layer):
        a = layer.attrs
        return "AveragePool", {
            "kernel_shape": a["kernel"],
            "strides": a["strides"],
            "pads": a["pads"],
            "count_include_pad": 0,
        }
