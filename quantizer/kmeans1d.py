"""Fast, deterministic 1-D k-means for a layer's weights or activation values.

Clustering scalars does not need the general k-means machinery: in one dimension every
optimal cluster is a contiguous run of the sorted values, so the optimum is found exactly
by dynamic programming over split points of the sorted data. :func:`cluster_1d` does that
on the sorted distinct values when there are few of them, or on a fine histogram of the
sorted data when there are many, and then polishes the result with exact Lloyd steps on
the full data. The answer is reproducible bit for bit (no random initialisation, no
threads) and in practice at least as good as scikit-learn's ``KMeans`` at a fraction of
its time; ``method="sklearn"`` keeps that library available as a reference.
"""

from __future__ import annotations

import math
import operator
from bisect import bisect_right

import numpy as np

__all__ = ["METHODS", "assign_nearest", "cluster_1d", "wcss"]

#: Accepted values of ``cluster_1d(method=...)``.
METHODS = ("dp", "sklearn")

# Size of the histogram the DP runs on when there are many distinct values; with at most
# this many values the DP runs on the distinct values themselves and is exact. The DP costs
# O(k * B log B) whatever n is. Half of the bins hold equal counts (no bin holds more than
# n/1024 values, which bounds the cost of a misplaced split in dense regions) and half have
# equal widths (sparse tails, where the outer clusters of a heavy-tailed layer live, are
# resolved to 1/1024 of the range). The Lloyd polish then moves each split to single-value
# precision. Against the exact optimum (54 layer-like cases, n = 35K and 100K, k = 3/7/15)
# the largest excess was 5.6e-4 with B = 256, 1.1e-4 with 1024, 2.8e-5 with 2048 and
# 2.1e-5 with 4096, for mean times of 5.7, 6.7, 8.6 and 13.3 ms: 2048 is the knee.
_BINS = 2048
# Below _BINS * _VALUES_PER_BIN values, one bin per this many values.
_VALUES_PER_BIN = 128
# Enough histogram bins per cluster that a coarse grid cannot force two splits together.
_BINS_PER_CLUSTER = 16
# Pivots per range and pass in the DP layer search, plus one: see `_dp_layer`.
_FAN = 8
# Lloyd steps after the DP, each O(k log n + k n / B). On flat cost landscapes the splits
# creep for tens of steps; what steps beyond 100 still gained was below 1e-7 in the bench
# cases, so the cap bounds the time without costing accuracy (and guards against cycling).
_MAX_LLOYD = 100
# Values per block in `wcss`: bounds its float64 temporaries on a 16.8M-value layer.
_CHUNK = 1 << 20


def cluster_1d(values, k, *, method="dp", seed=0):
    """Cluster a set of scalars into at most ``k`` centroids with 1-D k-means.

    Parameters
    ----------
    values : array_like
        Real values of any shape (float32 or float64; other real types are converted to
        float64); they are clustered as one flat set. NaN and infinity are rejected.
    k : int
        Maximum number of centroids, at least 1.
    method : {"dp", "sklearn"}, optional
        ``"dp"`` (default) is the exact dynamic programme with a Lloyd polish described in
        the module docstring. ``"sklearn"`` runs
        ``sklearn.cluster.KMeans(n_clusters=k, n_init=1, random_state=seed)`` as a
        reference; it needs the ``quantize`` extra.
    seed : int, optional
        Random state for ``method="sklearn"``; ``"dp"`` is deterministic and ignores it.

    Returns
    -------
    numpy.ndarray
        The centroids as a float64 1-D array, sorted ascending and unique. It has ``k``
        entries, or exactly the distinct values when there are at most ``k`` of them, or
        none for empty input.

    Raises
    ------
    ValueError
        If ``method`` is unknown, ``k < 1``, or the values are not finite.
    TypeError
        If ``k`` is not an integer or the values are not real numbers.
    kcnn.errors.MissingExtraError
        If ``method="sklearn"`` and scikit-learn is not installed.

    Examples
    --------
    >>> cluster_1d([0.0, 0.1, 0.2, 5.0, 5.2], 2)
    array([0.1, 5.1])
    """
    if method not in METHODS:
        accepted = ", ".join(repr(m) for m in METHODS)
        raise ValueError(f"unknown k-means method {method!r}; accepted: {accepted}")
    k = _check_k(k)
    x = _flat_real(values)
    if x.size == 0:
        return np.empty(0, dtype=np.float64)
    if method == "sklearn":
        return _cluster_sklearn(x, k, seed)
    return _cluster_dp(x, k)


def assign_nearest(values, centroids):
    """Index of the nearest centroid for each value.

    Parameters
    ----------
    values : array_like
        Real values of any shape.
    centroids : array_like
        1-D centroids sorted ascending (as returned by :func:`cluster_1d`).

    Returns
    -------
    numpy.ndarray
        Integer array (``numpy.intp``) of the same shape as ``values``. A value exactly
        half-way between two centroids goes to the lower index.

    Raises
    ------
    ValueError
        If ``centroids`` is empty, not 1-D, not finite or not sorted ascending.
    """
    c = _check_centroids(centroids)
    x = np.asarray(values)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"values must be real numbers, got dtype {x.dtype}")
    mids = 0.5 * (c[:-1] + c[1:])
    # A value equal to a midpoint counts the midpoints strictly below it, i.e. the lower
    # centroid; comparing in float64 keeps the answer independent of the input precision.
    return np.searchsorted(mids, x.astype(np.float64, copy=False), side="left")


def wcss(values, centroids):
    """Within-cluster sum of squares of ``values`` under nearest-centroid assignment.

    Parameters
    ----------
    values : array_like
        Real values of any shape.
    centroids : array_like
        1-D centroids sorted ascending.

    Returns
    -------
    float
        ``sum((x - centroids[assign_nearest(x, centroids)]) ** 2)`` in float64. Squares of
        the differences (not moments) are summed, pairwise within blocks and exactly across
        blocks, so the result has no cancellation and no dependence on the block size
        beyond rounding of the block sums.
    """
    c = _check_centroids(centroids)
    x = _flat_real(values)
    mids = 0.5 * (c[:-1] + c[1:])
    parts = []
    for start in range(0, x.size, _CHUNK):
        block = x[start : start + _CHUNK].astype(np.float64)
        block -= c[np.searchsorted(mids, block, side="left")]
        block *= block
        # numpy's own pairwise sum, not BLAS: its order never depends on threads or alignment.
        parts.append(float(np.sum(block)))
    return math.fsum(parts)


# -- the dynamic programme ---------------------------------------------------------------


def _cluster_dp(x, k, max_bins=None):
    """Optimal-split DP on the sorted values (or a histogram of them) plus Lloyd polish.

    ``max_bins`` overrides the histogram size; tests use a large value to force the exact
    path on inputs that would normally be binned.
    """
    # Sorting in the input precision is about twice as fast for float32 and gives the same
    # order; values are widened to float64 only inside sums.
    s = np.sort(x)
    if not (np.isfinite(s[0]) and np.isfinite(s[-1])):  # NaN sorts last, -inf first
        raise ValueError("values contain NaN or infinity")
    n = s.size
    if max_bins is None:
        # Small inputs get fewer bins: the DP's fixed cost would dominate, and the Lloyd
        # polish on every value recovers what the coarser grid loses.
        exact_limit = max(_BINS, _BINS_PER_CLUSTER * k)
        bins = max(_BINS_PER_CLUSTER * k, min(_BINS, n // _VALUES_PER_BIN))
    else:
        exact_limit = bins = int(max_bins)
    if n <= exact_limit:
        bounds, exact = _run_starts(s), True
    else:
        bounds = _histogram_bounds(s, bins)
        # Bins that each hold one distinct value are the distinct values: the DP is exact.
        exact = bool(np.all(s[bounds[:-1]] == s[bounds[1:] - 1]))
        if not exact and bounds.size - 1 <= k:
            # So few bins that there may be at most k distinct values: count them exactly.
            bounds, exact = _run_starts(s), True
    m = bounds.size - 1
    if exact and m <= k:
        return s[bounds[:-1]].astype(np.float64)

    counts = np.diff(bounds).astype(np.float64)
    if exact:
        first = s[bounds[:-1]].astype(np.float64)
        mu = math.fsum((counts * first).tolist()) / n
        # One value per bin: centre before multiplying so no large offset is carried along.
        centred = counts * (first - mu)
    else:
        sums = np.add.reduceat(s, bounds[:-1], dtype=np.float64)
        mu = math.fsum(sums.tolist()) / n
        centred = sums - counts * mu
    # Prefix sums over bins of the count and of the centred sum. Centring keeps the sums
    # O(n * spread) rather than O(n * |mean|), so the segment means below lose nothing.
    cw = np.concatenate(([0.0], np.cumsum(counts)))
    cp = np.concatenate(([0.0], np.cumsum(centred)))

    cuts = _optimal_cuts(cw, cp, k)
    splits = _lloyd(s, bounds, cp, mu, bounds[cuts])
    centroids = np.array(
        [s[a:b].mean(dtype=np.float64) for a, b in zip(splits[:-1], splits[1:], strict=True)]
    )
    # Non-empty runs of sorted distinct values have strictly increasing means; unique()
    # only guards against rounding making two neighbours equal.
    return np.unique(centroids)


def _run_starts(s):
    """Start index of each run of equal values in sorted ``s``, followed by ``len(s)``."""
    change = np.flatnonzero(s[1:] != s[:-1]) + 1
    return np.concatenate(([0], change, [s.size])).astype(np.intp)


def _histogram_bounds(s, bins):
    """Bin boundaries (indices into sorted ``s``) mixing equal-count and equal-width bins.

    Every boundary is the start of a run of equal values, so no bin splits a value and the
    later searchsorted-based Lloyd steps can reach every boundary the DP can produce.
    """
    n = s.size
    half = max(bins // 2, 1)
    quantile_idx = (np.arange(1, half, dtype=np.int64) * n) // half
    by_count = np.searchsorted(s, s[quantile_idx], side="left")
    edges = np.linspace(float(s[0]), float(s[-1]), half + 1)[1:-1].astype(s.dtype)
    # Keys in the array's own dtype: mixed dtypes would make searchsorted copy all of s.
    by_width = np.searchsorted(s, edges, side="left")
    return np.unique(np.concatenate(([0], by_count, by_width, [n])).astype(np.intp))


def _optimal_cuts(cw, cp, k):
    """Bin indices ``0 = c_0 < c_1 < ... < c_k = m`` of an optimal k-segmentation.

    ``cw`` and ``cp`` are prefix sums (length m + 1) of the counts and of the centred sums
    of m non-empty bins. The within-cluster sum of squares equals a constant minus the
    between-cluster term ``sum(S^2 / W)`` over segments, so the DP maximises the latter:
    it needs no sums of squares, hence no cancellation between large moments.
    """
    m = cw.size - 1
    if k == 1:
        return np.array([0, m])
    # best[j]: largest between-cluster term splitting bins [0, j) into c segments.
    with np.errstate(divide="ignore", invalid="ignore"):
        best = cp * cp / cw
    best[0] = -np.inf
    argbest = []
    for c in range(2, k):
        # Leave at least one bin for each of the k - c segments still to come.
        best, arg = _dp_layer(best, cw, cp, c, m - (k - c), c - 1)
        argbest.append(arg)
    i = np.arange(k - 1, m)
    ds = cp[m] - cp[i]
    last = int(i[np.argmax(best[i] + ds * ds / (cw[m] - cw[i]))])
    cuts = [m, last]
    for arg in reversed(argbest):
        cuts.append(int(arg[cuts[-1]]))
    cuts.append(0)
    return np.array(cuts[::-1])


def _dp_layer(prev, cw, cp, jlo, jhi, ilo):
    """One DP layer, ``new[j] = max_i prev[i] + (cp[j]-cp[i])**2 / (cw[j]-cw[i])``.

    Evaluated for ``jlo <= j <= jhi`` over ``ilo <= i < j``. The 1-D k-means cost satisfies
    the quadrangle inequality, so the leftmost best split is non-decreasing in j, and a
    divide-and-conquer search applies: solve a few pivot j of a range, then search each
    gap between pivots only between the pivots' splits. All ranges of one depth are solved
    together as one flat candidate array, so the Python loop runs O(log m / log fan) times
    and each pass is a few dozen vectorised numpy calls over O(fan * m) candidates; with
    many pivots per range the call overhead, which dominates at m ~ 2000, stays small.
    """
    new = np.full(prev.size, -np.inf)
    arg = np.zeros(prev.size, dtype=np.intp)
    # Pending j ranges [a, b] with their admissible split range [lo, hi].
    a = np.array([jlo])
    b = np.array([jhi])
    lo = np.array([ilo])
    hi = np.array([jhi - 1])
    while a.size:
        length = b - a + 1
        npiv = np.minimum(length, _FAN - 1)  # ranges this short are solved completely
        pend = npiv.cumsum()
        pstart = pend - npiv
        node = np.arange(a.size).repeat(npiv)
        rank = np.arange(pend[-1]) - pstart[node] + 1
        piv = a[node] + (rank * (length[node] + 1)) // (npiv[node] + 1) - 1
        plo = lo[node]
        count = np.minimum(hi[node], piv - 1) - plo + 1  # >= 1: lo <= a - 1 <= piv - 1
        ends = count.cumsum()
        starts = ends - count
        flat = np.arange(ends[-1])
        i = flat + (plo - starts).repeat(count)
        # score = prev[i] + (cp[j] - cp[i])**2 / (cw[j] - cw[i]) for j = piv, in place:
        # this loop is the whole cost of the DP, and repeat() is cheaper than gathering.
        score = cp[piv].repeat(count) - cp[i]
        score *= score
        score /= cw[piv].repeat(count) - cw[i]
        score += prev[i]
        top = np.maximum.reduceat(score, starts)
        # Leftmost maximiser of each range: ties resolved the same way every run.
        where = np.minimum.reduceat(np.where(score == top.repeat(count), flat, flat.size), starts)
        split = i[where]
        new[piv] = top
        arg[piv] = split
        # The gap before each pivot lies between the previous pivot (or the range start)
        # and this one; the gap after the last pivot runs to the range end.
        before = np.empty_like(piv)
        before[1:] = piv[:-1]
        before[pstart] = a - 1
        before_split = np.empty_like(split)
        before_split[1:] = split[:-1]
        before_split[pstart] = lo
        last = pend - 1
        a = np.concatenate((before + 1, piv[last] + 1))
        b = np.concatenate((piv - 1, b))
        lo = np.concatenate((before_split, split[last]))
        hi = np.concatenate((split, hi))
        keep = a <= b
        a, b, lo, hi = a[keep], b[keep], lo[keep], hi[keep]
    return new, arg


def _lloyd(s, bounds, cp, mu, splits):
    """Exact Lloyd steps on all of sorted ``s``, starting from the DP's split indices.

    Means come from prefix sums (bin prefix ``cp`` plus a partial sum inside one bin), and
    the new splits from searchsorted of the midpoints, so a step costs O(k log n) rather
    than O(n). Each step cannot increase the sum of squares (nearest assignment, then
    means); the loop stops when the splits stop moving, or before a step would empty a
    cluster, keeping the last valid partition.
    """
    n = s.size
    bound_list = bounds.tolist()
    cache = {}

    def centred_prefix(idx):
        out = []
        for e in idx.tolist():
            v = cache.get(e)
            if v is None:
                bi = bisect_right(bound_list, e) - 1
                a = bound_list[bi]
                v = float(cp[bi]) + (float(s[a:e].sum(dtype=np.float64)) - (e - a) * mu)
                cache[e] = v
            out.append(v)
        return np.array(out)

    for _ in range(_MAX_LLOYD):
        means = mu + np.diff(centred_prefix(splits)) / np.diff(splits)
        mids = _floor_to_dtype(0.5 * (means[:-1] + means[1:]), s.dtype)
        # Values equal to a midpoint go to the lower cluster, as in assign_nearest.
        inner = np.searchsorted(s, mids, side="right")
        new = np.concatenate(([0], inner, [n]))
        if np.array_equal(new, splits) or np.any(np.diff(new) <= 0):
            break
        splits = new
    return splits


def _floor_to_dtype(x, dtype):
    """Largest values of ``dtype`` not above float64 ``x`` (so ``v <= x`` is unchanged)."""
    if dtype == np.float64:
        return x
    y = x.astype(dtype)
    above = y.astype(np.float64) > x
    y[above] = np.nextafter(y[above], dtype.type(-np.inf))
    return y


# -- helpers -----------------------------------------------------------------------------


def _cluster_sklearn(x, k, seed):
    from kcnn.errors import require

    cluster = require("sklearn.cluster", "quantize", "k-means method 'sklearn'")
    if not np.all(np.isfinite(x)):
        raise ValueError("values contain NaN or infinity")
    distinct = np.unique(x)
    if distinct.size <= k:
        # KMeans needs at least k distinct points; the answer is known anyway.
        return distinct.astype(np.float64)
    km = cluster.KMeans(n_clusters=k, n_init=1, random_state=seed)
    km.fit(x.astype(np.float64).reshape(-1, 1))
    return np.unique(km.cluster_centers_.ravel().astype(np.float64))


def _check_k(k):
    if isinstance(k, bool):
        raise TypeError("k must be an integer, got bool")
    k = operator.index(k)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return k


def _flat_real(values):
    x = np.asarray(values)
    if x.dtype != np.float32 and x.dtype != np.float64:
        if x.dtype.kind not in "biuf":
            raise TypeError(f"values must be real numbers, got dtype {x.dtype}")
        x = x.astype(np.float64)
    return x.reshape(-1)


def _check_centroids(centroids):
    c = np.asarray(centroids, dtype=np.float64)
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"centroids must be a non-empty 1-D array, got shape {c.shape}")
    if not np.all(np.isfinite(c)):
        raise ValueError("centroids contain NaN or infinity")
    if np.any(c[1:] < c[:-1]):
        raise ValueError("centroids must be sorted ascending")
    return c
