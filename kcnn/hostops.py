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
    channels = x.shape[1]
    square = x * x
    total = np.zeros_like(x)
    low, high = (size - 1) // 2, size - 1 - (size - 1) // 2
    # Offsets past the last channel reach no channel (a window wider than the map).
    for offset in range(max(-low, 1 - channels), min(high, channels - 1) + 1):
        # total[:, c] += square[:, c + offset] wherever c + offset is a channel
        dst = slice(max(0, -offset), min(channels, channels - offset))
        src = slice(max(0, offset), min(channels, channels + offset))
        total[:, dst] = total[:, dst] + square[:, src]
    scale = alpha / size
    return x * _inverse_power(bias + scale * total, beta)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the class axis (trailing op on logits; never re-encoded)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def apply(op: str, attrs: dict, x: np.ndarray) -> np.ndarray:
    if op == "lrn":
        return lrn(x, attrs["size"], attrs["alpha"], attrs["beta"], attrs["bias"])
    if op == "softmax":
        return softmax(x)
    raise ValueError(f"no host implementation of {op!r}")
