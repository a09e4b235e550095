"""Host-side encoders from float64 values to codes (DESIGN section 1), numpy only."""

from __future__ import annotations

import numpy as np


def encode_input(x: np.ndarray, boundaries: np.ndarray) -> np.ndarray:
    """Network input: nearest decoded centroid; a value on a midpoint takes the lower code.

    Exact zeros take code 0. ``boundaries`` are the midpoints of the sorted centroids.
    """
    x = np.asarray(x, dtype=np.float64)
    codes = 1 + np.searchsorted(boundaries, x, side="left")
    return np.where(x == 0, 0, codes).astype(np.uint8)


def encode_thresholds(y: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Host-op output: ``code = #{j : y >= t[j]}``."""
    return np.searchsorted(thresholds, np.asarray(y, dtype=np.float64), side="right").astype(
        np.uint8
    )
