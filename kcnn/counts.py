"""Operation and storage counts of DESIGN section 2 (numpy only).

``effective_pairs`` counts window pairs where both the weight code and the activation
code are non-zero: the additions the cluster PEs perform.
"""

from __future__ import annotations

import numpy as np


def effective_pairs(op: str, attrs: dict, weight_nz: np.ndarray, act_nz: np.ndarray) -> float:
    """Average effective pairs per image.

    Parameters
    ----------
    weight_nz
        Boolean weight mask, ``(C_out, C_in/groups, kh, kw)`` or ``(out, in)``.
    act_nz
        Boolean mask of non-zero input codes, ``(N, C, H, W)`` or ``(N, in)``.
    """
    n = act_nz.shape[0]
    if n == 0:
        return 0.0
    if op == "fc":
        per_input = act_nz.sum(axis=0, dtype=np.int64)
        return float(per_input @ weight_nz.sum(axis=0, dtype=np.int64)) / n
    c_out, c_in_g, kh, kw = weight_nz.shape
    groups = attrs["groups"]
    top, left, bottom, right = attrs["pads"]
    sh, sw = attrs["strides"]
    dh, dw = attrs["dilations"]
    _, c_in, h, w = act_nz.shape
    # Weight taps summed over each group's output channels, indexed by global input channel.
    taps = weight_nz.reshape(groups, c_out // groups, c_in_g, kh, kw).sum(axis=1, dtype=np.int64)
    taps = taps.reshape(c_in, kh, kw)
    padded = np.zeros((c_in, h + top + bottom, w + left + right), np.int64)
    padded[:, top : top + h, left : left + w] = act_nz.sum(axis=0, dtype=np.int64)
    oh = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    ow = (w + left + right - dw * (kw - 1) - 1) // sw + 1
    total = 0
    for i in range(kh):
        for j in range(kw):
            window = padded[
                :,
                i * dh : i * dh + sh * (oh - 1) + 1 : sh,
                j * dw : j * dw + sw * (ow - 1) + 1 : sw,
            ]
            total += int(window.sum(axis=(1, 2)) @ taps[:, i, j])
    return total / n
