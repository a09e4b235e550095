"""Host ops on float64 maps (DESIGN section 1), numpy only.

Ops whose output is re-encoded to codes use only IEEE-exact operations (+ - * / sqrt) as
element-wise numpy operations on whole arrays, in a fixed order, so the board's ARM and an
x86 machine produce the same codes. Window sums are explicit shifted additions, never
reductions, ``dot`` or ``einsum`` (their order varies between numpy builds).
"""

from __future__ import annotations

import numpy as np

#: LRN exponents with an exact form in + - * / sqrt; the importer refuses others.
LRN_BETAS = (0.5, 0.75, 1.0)


def _inverse_power(d: np.ndarray, beta: float) -> np.ndarray:
    """``d ** -beta`` for the exponents with an exact form; the importer refuses others."""
    if beta == 0.75:
        return 1.0 / (np.sqrt(d) * np.sqrt(np.sqrt(d)))
    if beta == 0.5:
        return 1.0 / np.sqrt(d)
    if beta == 1.0:
        return 1.0 / d
    raise ValueError(f"LRN beta={beta} has no exact form")


def lrn(x: np.ndarray, size: int, alpha: float, beta: float, bias: float) -> np.ndarray:
    """ONNX LRN across channels of ``(N, C, H, W)``, in a fixed order of operations."""
    scale = alpha / size
    return x * _inverse_power(bias + scale * lrn_window_sum(x * x, size), beta)


def lrn_window_sum(squares: np.ndarray, size: int) -> np.ndarray:
    """Sum over the LRN channel window of ``(N, C, H, W)`` as explicit shifted additions in
    a fixed order (exact for integers, the same rounding everywhere for floats)."""
    channels = squares.shape[1]
    total = np.zeros_like(squares)
    low, high = (size - 1) // 2, size - 1 - (size - 1) // 2
    # Offsets past the last channel reach no channel (a window wider than the map).
    for offset in range(max(-low, 1 - channels), min(high, channels - 1) + 1):
        # total[:, c] += squares[:, c + offset] wherever c + offset is a channel
        dst = slice(max(0, -offset), min(channels, channels - offset))
        src = slice(max(0, offset), min(channels, channels + offset))
        total[:, dst] = total[:, dst] + squares[:, src]
    return total


def lrn_value(x, window_sum, scale: float, attrs: dict):
    """LRN of a coded map from the centre value ``x`` (float64) and the integer sum of
    squared codebook entries over the window: ``x * (bias + alpha/size * scale^2 * S)^-beta``
    in one fixed order of IEEE-exact operations. Depending on ``S`` alone (not on the
    individual squares) is what lets the fabric reproduce it with per-centre-code cut
    points on ``S`` (:func:`lrn_cut_points`)."""
    d = attrs["bias"] + (attrs["alpha"] / attrs["size"]) * ((scale * scale) * window_sum)
    return x * _inverse_power(d, attrs["beta"])


def lrn_codes(codes: np.ndarray, aq: np.ndarray, scale: float, attrs: dict) -> np.ndarray:
    """Float64 LRN output of a coded unsigned map ``(N, C, H, W)`` (code 0 is zero)."""
    entries = np.concatenate([[0], np.asarray(aq, np.int64)])
    squares = (entries * entries)[codes]
    x = entries[codes].astype(np.float64) * scale
    return lrn_value(x, lrn_window_sum(squares, attrs["size"]).astype(np.float64), scale, attrs)


def lrn_cut_points(aq: np.ndarray, scale: float, attrs: dict, thresholds) -> np.ndarray:
    """``cut[j-1][m]``: the largest window sum ``S`` at which the LRN of centre code ``j``
    still reaches output threshold ``t[m]`` (-1 if it never does), so that the output code
    ``#{m : y >= t[m]}`` equals ``#{m : S <= cut[j][m]}``.

    Exact by construction: every cut is found by evaluating :func:`lrn_value` itself, which
    is non-increasing in ``S`` for ``x > 0`` (each operation is a correctly rounded monotone
    function), so a binary search over the integers finds the last ``S`` that passes.
    """
    aq = np.asarray(aq, np.int64)
    if not (attrs["alpha"] > 0 and attrs["bias"] > 0) or np.any(aq <= 0):
        raise ValueError("fabric LRN needs alpha > 0, bias > 0 and a positive codebook")
    s_max = int(attrs["size"]) * int(aq.max()) ** 2
    cuts = np.full((len(aq), len(thresholds)), -1, np.int64)
    for j, a in enumerate(aq):
        x = float(a) * scale
        for m, t in enumerate(np.asarray(thresholds, np.float64)):
            if lrn_value(x, 0.0, scale, attrs) < t:
                continue
            low, high = 0, s_max  # invariant: value(low) >= t; answer in [low, high]
            while low < high:
                mid = (low + high + 1) // 2
                if lrn_value(x, float(mid), scale, attrs) >= t:
                    low = mid
                else:
                    high = mid - 1
            cuts[j, m] = low
    return cuts


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the class axis (trailing op on logits; never re-encoded)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)
