"""Effective pairs against a direct count over every window tap."""

import numpy as np
import pytest

from kcnn.ops import op_named

pytestmark = [pytest.mark.main_env, pytest.mark.board_env]


def brute_force_conv(weight_nz, act_nz, attrs):
    n, c_in, h, w = act_nz.shape
    c_out, c_in_g, kh, kw = weight_nz.shape
    groups = attrs["groups"]
    top, left, bottom, right = attrs["pads"]
    sh, sw = attrs["strides"]
    dh, dw = attrs["dilations"]
    oh = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    ow = (w + left + right - dw * (kw - 1) - 1) // sw + 1
    total = 0
    for b in range(n):
        for co in range(c_out):
            g = co // (c_out // groups)
            for y in range(oh):
                for x in range(ow):
                    for ci in range(c_in_g):
                        for i in range(kh):
                            for j in range(kw):
                                yy, xx = y * sh - top + i * dh, x * sw - left + j * dw
                                if 0 <= yy < h and 0 <= xx < w:
                                    total += int(weight_nz[co, ci, i, j]) * int(
                                        act_nz[b, g * c_in_g + ci, yy, xx]
                                    )
    return total / n


@pytest.mark.parametrize(
    "groups,strides,pads,dilations",
    [
        (1, [1, 1], [0, 0, 0, 0], [1, 1]),
        (2, [2, 1], [1, 0, 2, 1], [1, 2]),
        (4, [1, 2], [1, 1, 1, 1], [2, 1]),
    ],
)
def test_conv_pairs_match_direct_count(groups, strides, pads, dilations):
    rng = np.random.default_rng(groups)
    weight_nz = rng.random((4, 4 // groups, 3, 2)) < 0.6
    act_nz = rng.random((2, 4, 7, 6)) < 0.5
    attrs = {"groups": groups, "strides": strides, "pads": pads, "dilations": dilations}
    assert op_named("conv").effective_pairs(attrs, weight_nz, act_nz) == brute_force_conv(
        weight_nz, act_nz, attrs
    )


def test_fc_pairs_match_direct_count():
    rng = np.random.default_rng(5)
    weight_nz = rng.random((7, 11)) < 0.4
    act_nz = rng.random((3, 11)) < 0.5
    direct = sum(
        int(weight_nz[o, i] and act_nz[b, i]) for b in range(3) for o in range(7) for i in range(11)
    )
    assert op_named("fc").effective_pairs({}, weight_nz, act_nz) == direct / 3
