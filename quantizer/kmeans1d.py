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

import functools
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
# Up to this many float32 values, Lloyd's midpoints are located in a float64 copy of the
# sorted values: the copy costs less than rounding the midpoints down at every step.
_WIDEN_LIMIT = 1 << 17
# Lloyd steps after the DP, each O(k log n), plus O(n / B) when a split first enters a bin.
# On flat cost landscapes the splits creep for tens of steps; what steps beyond 100 still
# gained was below 1e-7 in the bench cases, so the cap bounds the time without costing
# accuracy (and guards against cycling).
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

    # Prefix sums over bins of the count are the bounds themselves.
    cw = bounds.astype(np.float64)
    counts = cw[1:] - cw[:-1]
    if exact:
        first = s[bounds[:-1]].astype(np.float64)
        mu = math.fsum((counts * first).tolist()) / n
        # One value per bin: centre before multiplying so no large offset is carried along.
        centred = counts * (first - mu)
    else:
        sums = np.add.reduceat(s, bounds[:-1], dtype=np.float64)
        mu = math.fsum(sums.tolist()) / n
        centred = sums - counts * mu
    # Prefix sums over bins of the centred sum. Centring keeps the sums O(n * spread)
    # rather than O(n * |mean|), so the segment means below lose nothing.
    cp = np.concatenate(([0.0], np.cumsum(centred)))

    cuts = _optimal_cuts(cw, cp, k)
    if s.dtype == np.float64:
        s64 = s
    elif n <= _WIDEN_LIMIT:
        s64 = s.astype(np.float64)
    else:
        s64 = None
    splits = _lloyd(s, s64, bounds, cp, mu, bounds[cuts])
    # What ndarray.mean(dtype=np.float64) computes, to the bit, without its overhead.
    centroids = np.array(
        [
            np.add.reduce(s[a:b], dtype=np.float64) / (b - a)
            for a, b in zip(splits[:-1], splits[1:], strict=True)
        ]
    )
    # Non-empty runs of sorted distinct values have strictly increasing means; unique
    # only guards against rounding making two neighbours equal.
    return _sorted_unique(centroids)


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
    # One searchsorted for all boundaries: the values at evenly spaced ranks (equal
    # counts), evenly spaced values (equal widths, computed as np.linspace does), and an
    # infinite key for the end. Keys are in the array's own dtype: mixed dtypes would
    # make searchsorted copy all of s.
    keys = np.empty(2 * half + 1, dtype=s.dtype)
    np.take(s, np.arange(half) * n // half, out=keys[:half])
    lo, hi = float(s[0]), float(s[-1])
    keys[half:-1] = np.arange(half) * ((hi - lo) / half) + lo
    keys[-1] = np.inf
    return _sorted_unique(s.searchsorted(keys, side="left"))


def _optimal_cuts(cw, cp, k):
    """Bin indices ``0 = c_0 < c_1 < ... < c_k = m`` of an optimal k-segmentation.

    ``cw`` and ``cp`` are prefix sums (length m + 1) of the counts and of the centred sums
    of m non-empty bins. The within-cluster sum of squares equals a constant minus the
    between-cluster term ``sum(S^2 / W)`` over segments, so the DP minimises its negative,
    the cost: it needs no sums of squares, hence no cancellation between large moments.
    """
    m = cw.size - 1
    if k == 1:
        return np.array([0, m])
    # Meet in the middle: the best cf segments of every prefix of the bins and the best
    # cb segments of every suffix (the same DP on the bins in reverse) are computed side
    # by side, so the layers run about k/2 times rather than k times; one argmin over
    # the cut between the two halves then finishes the job.
    cf, cb = (k + 1) // 2, k // 2
    m1 = m + 1
    # Problem 0 holds the bins left to right, problem 1 right to left, at offsets 0 and
    # m + 1 of the same flat arrays.
    cws = np.concatenate((cw, cw[m] - cw[::-1]))
    cps = np.concatenate((cp, cp[m] - cp[::-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        one = -(cps * cps) / cws
    one[0] = one[m1] = np.inf  # no segment can be empty
    # With cb == 1 the suffixes need no layer, so problem 1 is left out of the loop; with
    # cb == cf - 1 it is left out of the last layer.
    nb = 2 if cb > 1 else 1
    last, before, opts = _dp_layers(
        cws[: nb * m1], cps[: nb * m1], one[: nb * m1], m, cf - 1, cb < cf and nb == 2
    )
    fwd = last[:m1]
    bwd = (one if cb == 1 else last if cb == cf else before)[m1:]
    # A middle cut at j leaves bins [0, j) to cf segments and the reversed prefix of
    # length m - j to cb segments.
    total = fwd[cf : m - cb + 1] + bwd[cb : m - cf + 1][::-1]
    cuts = [cf + int(np.argmin(total))]
    for opt in reversed(opts[: cf - 1]):
        cuts.append(int(opt[cuts[-1]]))
    cuts.reverse()
    t = m - cuts[-1]
    for opt in reversed(opts[: cb - 1]):
        t = int(opt[m1 + t]) - m1
        cuts.append(m - t)
    return np.array([0, *cuts, m])


def _dp_layers(cws, cps, cost, m, steps, first_only_last=False):
    """``steps`` DP layers on stacked problems: the last two costs and every layer's splits.

    The flat arrays hold one or more independent problems of m + 1 entries each (with
    ``first_only_last``, the last layer solves problem 0 only, leaving the rest inf). For
    layer c, ``cost[j]`` is the least cost of c segments on bins [0, j) (inf if there is
    no such split) and the layer computes, for every j,
    ``new[j] = min over i < j of cost[i] - (cps[j] - cps[i])**2 / (cws[j] - cws[i])``,
    and ``opt[j]``, the leftmost minimising (flat) i. The 1-D k-means cost satisfies the
    quadrangle inequality, so ``opt`` is non-decreasing in j: once the rows of a coarse
    grid of j are solved, each row between two of them need only search between their
    splits. The coarsest rows search every i with gains computed once for all layers;
    the finer levels search their narrow ranges as one flat candidate array each. Each
    level is a fixed, small number of vectorised numpy calls, which is what the time at
    m ~ 250 (the 35K-value layers) is made of.
    """
    m1 = m + 1
    nb = cost.size // m1
    opts = np.empty((steps, cost.size), dtype=np.intp)
    if steps == 0:
        return cost, None, opts
    pivots, pivot_rows, (pick, pick_base), levels = _layer_plan(m, nb)
    # Gains of the coarsest rows against every column (-inf where i >= j, no split): the
    # same for every layer, so these rows cost each layer one subtract and one argmin.
    cw2, cp2 = cws.reshape(nb, m1), cps.reshape(nb, m1)
    dw = cw2[:, pivots, None] - cw2[:, None, :m]
    dp = cp2[:, pivots, None] - cp2[:, None, :m]
    dp *= dp
    gain = np.full(dp.shape, -np.inf)
    np.divide(dp, dw, out=gain, where=dw > 0)
    scratch = np.empty_like(gain)
    levels = [(*plan, cws[plan[0]], cps[plan[0]]) for plan in levels]
    plans = [(nb, gain, scratch, pivot_rows, pick, pick_base, levels)]
    if first_only_last:

        def first(a):  # problem 0's part: every plan array lists its rows first
            return a[: a.size // nb]

        plans.append(
            (1, gain[:1], scratch[:1], first(pivot_rows), first(pick), first(pick_base))
            + ([tuple(map(first, level)) for level in levels],)
        )
    # Row 0 of each problem is never solved (its cost stays inf); its "split" 0 is the
    # lower bound of the rows left of the first coarse row.
    opts[:, ::m1] = np.arange(0, cost.size, m1)
    before = None
    for step, opt in enumerate(opts):
        plan = plans[1] if first_only_last and step == steps - 1 else plans[0]
        nbs, gain, scratch, pivot_rows, pick, pick_base, levels = plan
        new = np.full(cost.size, np.inf)
        np.subtract(cost[: nbs * m1].reshape(nbs, m1)[:, None, :m], gain, out=scratch)
        col = scratch.argmin(axis=2).ravel()
        col += pick
        new[pivot_rows] = scratch.ravel()[col]
        col -= pick_base
        opt[pivot_rows] = col
        for rows, left, right, below, w_rows, p_rows in levels:
            lo = opt[left]
            count = np.minimum(opt[right], below)
            count -= lo
            count += 1
            # Rounding could make neighbouring splits cross in a near tie; one candidate
            # (lo < j always) then keeps the ranges well formed.
            np.maximum(count, 1, out=count)
            ends = np.cumsum(count)
            starts = ends - count
            i = np.repeat(lo - starts, count)
            i += np.arange(i.size)
            score = cost[i]
            d = p_rows.repeat(count)
            d -= cps[i]
            d *= d
            w = w_rows.repeat(count)
            w -= cws[i]
            d /= w
            score -= d
            best = np.minimum.reduceat(score, starts)
            new[rows] = best
            # The first candidate of each row attaining its minimum: the leftmost split.
            hit = np.flatnonzero(score == best.repeat(count))
            opt[rows] = i[hit[hit.searchsorted(starts)]]
        before, cost = cost, new
    return cost, before, opts


@functools.lru_cache(maxsize=32)
def _layer_plan(m, nb):
    """Which rows `_dp_layers` solves at each level, for nb problems of m bins.

    Returns the coarse rows (j of one problem, and flat over the problems), the flat
    position in the coarse gain array of each coarse row's column 0, and for each finer
    level the flat rows, the flat solved rows left and right of each (a problem's row 0
    standing for "none to the left") and the rows minus one (the largest split allowed).
    Read-only arrays, cached: they depend on m and nb only.
    """
    strides = _row_strides(m)
    pivots = np.arange(strides[0], m + strides[0], strides[0])
    pivots[-1] = m  # the last row bounds every row before it
    base = np.arange(nb)[:, None] * (m + 1)
    pivot_rows = (base + pivots).ravel()
    # scratch.ravel()[pick + col] is the chosen entry of each coarse row; subtracting
    # pick_base then turns it into the flat split index.
    pick = np.arange(pivot_rows.size) * m
    levels = []
    coarse = strides[0]
    for stride in strides[1:]:
        j = np.arange(stride, m, stride)
        j = j[j % coarse != 0]
        left = j - j % coarse
        right = np.minimum(left + coarse, m)
        rows = (base + j).ravel()
        levels.append((rows, (base + left).ravel(), (base + right).ravel(), rows - 1))
        coarse = stride
    pick_base = pick - np.repeat(base.ravel(), pivots.size)
    out = [pivots, pivot_rows, pick, pick_base, *(a for level in levels for a in level)]
    for a in out:
        a.flags.writeable = False
    return pivots, pivot_rows, (pick, pick_base), tuple(levels)


def _row_strides(m):
    """Row strides of the levels of `_dp_layers`, coarsest first, each dividing the last.

    The coarse rows each search all m columns, so there are at most 24 of them; each
    finer level costs a fixed ~25 numpy calls plus (coarser stride / stride) * m
    candidates, so levels refine by 4 until a last step of up to 16. Tuned on m = 240 to
    1800 bins (other choices timed the same within noise, or slower).
    """
    stride = 1
    while stride * 24 < m:
        stride *= 2
    strides = [stride]
    while stride > 16:
        stride //= 4
        strides.append(stride)
    if stride > 1:
        strides.append(1)
    return tuple(strides)


def _lloyd(s, s64, bounds, cp, mu, splits):
    """Exact Lloyd steps on all of sorted ``s``, starting from the DP's split indices.

    On sorted values a Lloyd step needs only the k cluster means, from prefix sums, and
    the k - 1 midpoints between them, located by searchsorted: O(k log n), not O(n). The
    prefix sum at an index is the bin prefix ``cp`` plus a running sum inside its bin,
    made once for each bin a split visits. Each step cannot increase the sum of squares
    (nearest assignment, then means); the loop stops when the splits stop moving, or
    before a step would empty a cluster, keeping the last valid partition.

    ``s64`` is ``s`` as float64 when that copy is cheap enough to make (or ``s`` itself),
    so midpoints can be located without rounding them to the dtype of ``s``; else None.
    """
    n = s.size
    wide = s64 if s64 is not None else s
    bound_list = bounds.tolist()
    cp_list = cp.tolist()
    runs = {}  # bin -> centred prefix sums inside it
    known = {}  # split index -> centred sum of s[:index]

    def centred_prefix(e):
        b = bisect_right(bound_list, e) - 1
        a = bound_list[b]
        v = cp_list[b]
        if e > a:
            run = runs.get(b)
            if run is None:
                run = np.subtract(wide[a : bound_list[b + 1]], mu, dtype=np.float64)
                run = runs[b] = run.cumsum()
            v += run.item(e - a - 1)
        known[e] = v
        return v

    splits = splits.tolist()
    # Plain floats: for k of a few dozen, Python arithmetic beats numpy's call overhead
    # and rounds the same (IEEE double), so the result does not depend on the choice.
    sums = [known[e] if e in known else centred_prefix(e) for e in splits]
    for _ in range(_MAX_LLOYD):
        means = [
            mu + (s1 - s0) / (e1 - e0)
            for s0, s1, e0, e1 in zip(sums, sums[1:], splits, splits[1:], strict=False)
        ]
        mids = np.array([0.5 * (a + b) for a, b in zip(means, means[1:], strict=False)])
        # Values equal to a midpoint go to the lower cluster, as in assign_nearest.
        if s64 is not None:
            inner = s64.searchsorted(mids, side="right")
        else:
            inner = s.searchsorted(_floor_to_dtype(mids, s.dtype), side="right")
        new = [0, *inner.tolist(), n]
        if new == splits or any(b <= a for a, b in zip(new, new[1:], strict=False)):
            break
        splits = new
        sums = [known[e] if e in known else centred_prefix(e) for e in splits]
    return np.array(splits)


def _sorted_unique(a):
    """``np.unique`` of a 1-D array without NaN, minus its overhead (~30 us in numpy 2)."""
    a = np.sort(a)
    keep = np.empty(a.size, dtype=bool)
    keep[:1] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]


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
