"""Tests of the 1-D k-means used to cluster weights and activations."""

from __future__ import annotations

import itertools
import math
import sys

import numpy as np
import pytest

from kcnn.errors import MissingExtraError
from kcnn.quantizer import kmeans1d as km
from kcnn.quantizer.kmeans1d import assign_nearest, cluster_1d, wcss


def brute_force_wcss(values, k):
    """Smallest sum of squares over all splits of the sorted values into k runs."""
    s = np.sort(np.asarray(values, dtype=np.float64))
    best = math.inf
    for cuts in itertools.combinations(range(1, s.size), k - 1):
        edges = (0, *cuts, s.size)
        total = math.fsum(
            float(np.sum((s[a:b] - s[a:b].mean()) ** 2)) for a, b in itertools.pairwise(edges)
        )
        best = min(best, total)
    return best


def pruned_laplace(rng, n, keep=0.35):
    w = rng.laplace(size=round(n / keep)).astype(np.float32)
    return w[np.argsort(np.abs(w))[-n:]]


def check_centroids(c, k):
    assert c.dtype == np.float64 and c.ndim == 1
    assert 1 <= c.size <= k
    assert np.all(np.diff(c) > 0)


# -- optimality --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_dp_equals_brute_force_optimum(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 11))
    k = int(rng.integers(1, min(n, 5) + 1))
    # Some inputs are rounded so that equal values occur.
    x = np.round(rng.standard_normal(n) * 3, int(rng.integers(0, 4)))
    c = cluster_1d(x, k)
    distinct = np.unique(x)
    if distinct.size <= k:
        np.testing.assert_array_equal(c, distinct)
        return
    check_centroids(c, k)
    assert c.size == k
    best = brute_force_wcss(x, k)
    got = wcss(x, c)
    assert got == pytest.approx(best, rel=1e-9, abs=1e-12)


def test_histogram_path_is_near_the_exact_optimum():
    # Forcing the exact DP on all 30K values gives the optimum to compare with.
    x = pruned_laplace(np.random.default_rng(7), 30_000)
    for k in (3, 7, 15):
        fast = cluster_1d(x, k)
        exact = km._cluster_dp(x, k, max_bins=x.size)
        check_centroids(fast, k)
        assert fast.size == exact.size == k
        w_fast, w_exact = wcss(x, fast), wcss(x, exact)
        assert w_exact <= w_fast * (1 + 1e-12)
        assert w_fast <= w_exact * (1 + 1e-4)


def test_histogram_path_with_many_repeated_values():
    # 50K values on 3000 levels: bins hold several distinct values, some bins one.
    rng = np.random.default_rng(3)
    x = np.round(rng.standard_normal(50_000) * 300) / 300
    fast = cluster_1d(x, 7)
    exact = km._cluster_dp(x, 7, max_bins=x.size)
    assert wcss(x, fast) <= wcss(x, exact) * (1 + 1e-4)


def test_large_offset_loses_no_precision():
    rng = np.random.default_rng(5)
    x = rng.standard_normal(1500)
    c_shift = cluster_1d(x + 1e6, 5)
    c_plain = cluster_1d(x, 5)
    np.testing.assert_allclose(c_shift - 1e6, c_plain, rtol=0, atol=1e-8)


# -- the fast DP and Lloyd steps against plain versions ---------------------------------


def bin_prefix_sums(s, bounds):
    """Prefix sums of the bin counts and centred bin sums, as `_cluster_dp` makes them."""
    sums = np.add.reduceat(s, bounds[:-1], dtype=np.float64)
    mu = math.fsum(sums.tolist()) / s.size
    cw = bounds.astype(np.float64)
    cp = np.concatenate(([0.0], np.cumsum(sums - np.diff(cw) * mu)))
    return cw, cp, mu


def plain_dp_term(cw, cp, k):
    """Largest ``sum(S^2 / W)`` over splits of the bins into k runs: every split, every layer."""
    m = cw.size - 1
    j, i = np.arange(m + 1)[:, None], np.arange(m + 1)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(i < j, (cp[j] - cp[i]) ** 2 / (cw[j] - cw[i]), -np.inf)
        best = np.where(cw > 0, cp * cp / cw, -np.inf)
    for _ in range(k - 1):
        best = np.max(best[None, :] + gain, axis=1)
    return best[m]


def segments_term(cw, cp, cuts):
    a, b = cuts[:-1], cuts[1:]
    return math.fsum(((cp[b] - cp[a]) ** 2 / (cw[b] - cw[a])).tolist())


@pytest.mark.parametrize("seed", range(24))
def test_layered_dp_finds_the_plain_dp_optimum(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 600)) if seed % 2 else int(rng.integers(3, 40))
    kind = seed % 4
    if kind == 0:
        x = rng.standard_normal(n)
    elif kind == 1:
        x = pruned_laplace(rng, n)
    elif kind == 2:
        # Evenly spaced integers: many splits tie exactly.
        x = np.arange(n, dtype=np.float64) // int(rng.integers(1, 4))
    else:
        x = np.exp(rng.standard_normal(n) * 2)
    s = np.sort(x)
    bounds = km._run_starts(s) if seed % 3 else km._histogram_bounds(s, int(rng.integers(8, 600)))
    cw, cp, _ = bin_prefix_sums(s, bounds)
    m = cw.size - 1
    for k in sorted({2, 3, 4, 7, 8, 15, m - 1, m} & set(range(2, min(m, 40) + 1))):
        cuts = km._optimal_cuts(cw, cp, k)
        assert cuts[0] == 0 and cuts[-1] == m and cuts.size == k + 1
        assert np.all(np.diff(cuts) > 0)
        best = plain_dp_term(cw, cp, k)
        assert segments_term(cw, cp, cuts) == pytest.approx(best, rel=1e-12, abs=1e-9)


def plain_lloyd(s, splits):
    """Lloyd's algorithm as usually written: segment means, then every value to the nearest."""
    x = s.astype(np.float64)
    for _ in range(km._MAX_LLOYD):
        means = np.array([x[a:b].mean() for a, b in itertools.pairwise(splits)])
        labels = np.searchsorted(0.5 * (means[:-1] + means[1:]), x, side="left")
        new = np.concatenate(([0], np.cumsum(np.bincount(labels, minlength=means.size))))
        if np.array_equal(new, splits) or np.any(np.diff(new) <= 0):
            break
        splits = new
    return np.asarray(splits)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("widen", [True, False])
def test_prefix_sum_lloyd_equals_plain_lloyd(monkeypatch, dtype, widen):
    if not widen:
        # float32 values are then searched with midpoints rounded down to float32.
        monkeypatch.setattr(km, "_WIDEN_LIMIT", 0)
    calls = []
    lloyd = km._lloyd

    def spy(*args):
        calls.append(args)
        return lloyd(*args)

    monkeypatch.setattr(km, "_lloyd", spy)
    rng = np.random.default_rng(21)
    for x in (pruned_laplace(rng, 35_000), np.exp(rng.standard_normal(20_000))):
        x = x.astype(dtype)
        for k in (3, 7, 15):
            calls.clear()
            cluster_1d(x, k)
            s, s64, bounds, cp, mu, start = calls[0]
            assert (s64 is None) == (dtype == np.float32 and not widen)
            np.testing.assert_array_equal(lloyd(*calls[0]), plain_lloyd(s, start))
            # From a poor start (equal counts) Lloyd takes many more steps.
            start = np.arange(k + 1) * s.size // k
            np.testing.assert_array_equal(
                lloyd(s, s64, bounds, cp, mu, start), plain_lloyd(s, start)
            )


def test_float32_result_does_not_depend_on_widening(monkeypatch):
    x = pruned_laplace(np.random.default_rng(22), 40_000)
    wide = [cluster_1d(x, k) for k in (3, 7, 15)]
    monkeypatch.setattr(km, "_WIDEN_LIMIT", 0)
    for k, c in zip((3, 7, 15), wide, strict=True):
        assert cluster_1d(x, k).tobytes() == c.tobytes()


# -- against scikit-learn ----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_no_worse_than_sklearn_exact_path(seed):
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(100 + seed)
    x = pruned_laplace(rng, int(rng.integers(200, 2000)))
    for k in (3, 7, 15):
        ours = cluster_1d(x, k)
        theirs = cluster_1d(x, k, method="sklearn", seed=seed)
        check_centroids(theirs, k)
        assert wcss(x, ours) <= wcss(x, theirs) * (1 + 1e-9)


def test_within_one_percent_of_sklearn_histogram_path():
    pytest.importorskip("sklearn")
    x = pruned_laplace(np.random.default_rng(11), 300_000)
    ours = cluster_1d(x, 15)
    theirs = cluster_1d(x, 15, method="sklearn")
    assert ours.size == 15
    assert wcss(x, ours) <= wcss(x, theirs) * 1.01


def test_sklearn_method_with_few_distinct_values():
    pytest.importorskip("sklearn")
    np.testing.assert_array_equal(cluster_1d([2.0, 1.0, 2.0], 4, method="sklearn"), [1.0, 2.0])


def test_sklearn_missing_raises_missing_extra(monkeypatch):
    # A None entry in sys.modules makes the import fail as if the package were absent.
    monkeypatch.setitem(sys.modules, "sklearn.cluster", None)
    with pytest.raises(MissingExtraError, match=r"kcnn\[quantize\]"):
        cluster_1d([0.0, 1.0, 2.0, 3.0], 2, method="sklearn")


# -- edge cases --------------------------------------------------------------------------


def test_fewer_distinct_values_than_k_gives_those_values():
    x = np.array([0.3, -1.25, 0.3, 7.0, -1.25, 0.3])
    np.testing.assert_array_equal(cluster_1d(x, 5), [-1.25, 0.3, 7.0])
    np.testing.assert_array_equal(cluster_1d(x, 3), [-1.25, 0.3, 7.0])


def test_fewer_distinct_values_than_k_large_input():
    # Large enough for the histogram path; the values must come back exactly.
    levels = np.array([-0.1, 0.013, 0.02, 0.5, 3.0], dtype=np.float32)
    x = np.random.default_rng(0).choice(levels, size=40_000)
    np.testing.assert_array_equal(cluster_1d(x, 7), levels.astype(np.float64))
    assert cluster_1d(x, 4).size == 4


def test_rare_value_sharing_a_bin_with_a_frequent_one():
    # 1e-6 is too rare to get its own equal-count bin and too close to 0 for its own
    # equal-width bin, so the histogram cannot tell it apart: the exact count must.
    x = np.concatenate((np.zeros(20_003), np.full(5, 1e-6), np.ones(19_992)))
    np.testing.assert_array_equal(cluster_1d(x, 7), [0.0, 1e-6, 1.0])
    np.testing.assert_allclose(cluster_1d(x, 2), [5e-6 / 20_008, 1.0], rtol=1e-12)


def test_empty_input():
    for empty in ([], np.empty((0, 3), dtype=np.float32)):
        c = cluster_1d(empty, 4)
        assert c.dtype == np.float64 and c.shape == (0,)


def test_all_equal_input():
    np.testing.assert_array_equal(cluster_1d(np.full(5000, 0.25, np.float32), 4), [0.25])
    np.testing.assert_array_equal(cluster_1d([-3.5], 1), [-3.5])


def test_k_equals_one_gives_the_mean():
    x = np.random.default_rng(2).standard_normal((40, 50))
    c = cluster_1d(x, 1)
    assert c.shape == (1,)
    assert c[0] == pytest.approx(x.mean(), rel=1e-12, abs=1e-15)


def test_any_shape_is_clustered_flat():
    x = pruned_laplace(np.random.default_rng(4), 6000)
    np.testing.assert_array_equal(cluster_1d(x.reshape(10, 20, 30), 7), cluster_1d(x, 7))


def test_larger_k():
    x = pruned_laplace(np.random.default_rng(8), 20_000)
    c = cluster_1d(x, 40)
    check_centroids(c, 40)
    assert c.size == 40
    assert wcss(x, c) < wcss(x, cluster_1d(x, 39))


# -- determinism and dtypes --------------------------------------------------------------


@pytest.mark.parametrize("n", [500, 120_000])
def test_deterministic_bytes(n):
    x = pruned_laplace(np.random.default_rng(9), n)
    first = cluster_1d(x, 15).tobytes()
    assert cluster_1d(x.copy(), 15).tobytes() == first
    # Only the set of values matters, not their order.
    shuffled = np.random.default_rng(1).permutation(x)
    assert cluster_1d(shuffled, 15).tobytes() == first


@pytest.mark.parametrize("n", [1000, 60_000])
def test_float32_input(n):
    x32 = pruned_laplace(np.random.default_rng(12), n).astype(np.float32)
    c32 = cluster_1d(x32, 15)
    c64 = cluster_1d(x32.astype(np.float64), 15)
    check_centroids(c32, 15)
    assert c32.size == 15
    np.testing.assert_allclose(c32, c64, rtol=1e-9)
    assert c32[0] >= x32.min() and c32[-1] <= x32.max()


def test_integer_input():
    np.testing.assert_array_equal(cluster_1d(np.array([1, 1, 2, 9, 10]), 2), [4 / 3, 9.5])


# -- assign_nearest and wcss -------------------------------------------------------------


def test_assign_nearest_ties_go_to_lower_index():
    c = np.array([0.0, 2.0, 4.0])
    x = np.array([1.0, 3.0, -1.0, 5.0, 0.999, 1.001, 2.0])
    np.testing.assert_array_equal(assign_nearest(x, c), [0, 1, 0, 2, 0, 1, 1])
    np.testing.assert_array_equal(assign_nearest(np.float32([1.0, 3.0]), c), [0, 1])
    # Equal centroids: the first one wins.
    np.testing.assert_array_equal(assign_nearest([1.0, 0.0, 5.0], [1.0, 1.0, 3.0]), [0, 0, 2])


def test_assign_nearest_matches_argmin_and_keeps_shape():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((7, 9))
    c = np.sort(rng.standard_normal(5))
    got = assign_nearest(x, c)
    assert got.shape == x.shape
    np.testing.assert_array_equal(got, np.argmin(np.abs(x[..., None] - c), axis=-1))


def test_assign_nearest_rejects_bad_centroids():
    with pytest.raises(ValueError, match="sorted"):
        assign_nearest([0.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="non-empty"):
        assign_nearest([0.0], [])


def test_wcss_matches_direct_computation():
    rng = np.random.default_rng(10)
    x = rng.laplace(size=3000).astype(np.float32)
    c = np.sort(rng.standard_normal(6))
    x64 = x.astype(np.float64)
    direct = math.fsum(np.min((x64[:, None] - c[None, :]) ** 2, axis=1).tolist())
    assert wcss(x, c) == pytest.approx(direct, rel=1e-12)
    assert wcss([], c) == 0.0


def test_wcss_of_result_matches_segment_sums():
    # wcss uses differences, not moments, so a large offset does not cost precision.
    x = 1e4 + np.random.default_rng(13).standard_normal(2000)
    c = cluster_1d(x, 4)
    labels = assign_nearest(x, c)
    direct = math.fsum(float(np.sum((x[labels == i] - c[i]) ** 2)) for i in range(4))
    assert wcss(x, c) == pytest.approx(direct, rel=1e-12)


# -- argument errors ---------------------------------------------------------------------


def test_unknown_method():
    with pytest.raises(ValueError, match=r"unknown k-means method 'lloyd'.*'dp', 'sklearn'"):
        cluster_1d([1.0, 2.0], 2, method="lloyd")


def test_bad_k_and_values():
    with pytest.raises(ValueError, match="at least 1"):
        cluster_1d([1.0, 2.0], 0)
    with pytest.raises(TypeError):
        cluster_1d([1.0, 2.0], 2.5)
    with pytest.raises(ValueError, match="NaN or infinity"):
        cluster_1d([1.0, np.nan, 2.0], 2)
    with pytest.raises(ValueError, match="NaN or infinity"):
        cluster_1d([-np.inf, 1.0, 2.0], 2)
    with pytest.raises(TypeError, match="real numbers"):
        cluster_1d(np.array(["a", "b"]), 1)
