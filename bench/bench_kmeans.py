"""Benchmark: KCNN's 1-D k-means (``method="dp"``) against scikit-learn's ``KMeans``.

For each case (a layer-sized set of weight-like or activation-like values) and each k,
both methods cluster the same values in the same run. The table shows the time of ours
(best of a few repeats), the time of ``KMeans(n_clusters=k, n_init=1).fit`` (one run, the
way a quantizer would call it), the speedup and how much larger our within-cluster sum of
squares is than sklearn's (negative: ours is smaller). ``--check`` enforces the targets.

Usage::

    python bench/bench_kmeans.py [--quick] [--check] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

MIN_SPEEDUP = 10.0
MAX_EXCESS_PCT = 1.0
KS = (15, 7, 3)


def _load_kmeans1d():
    try:
        from kcnn.quantizer import kmeans1d
    except ImportError:
        # Not installed (or the package is mid-edit): the module needs numpy only, so load
        # the file from this checkout.
        import importlib.util

        path = Path(__file__).resolve().parents[1] / "quantizer" / "kmeans1d.py"
        spec = importlib.util.spec_from_file_location("kmeans1d", path)
        kmeans1d = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(kmeans1d)
    return kmeans1d


# -- seeded, layer-like data -------------------------------------------------------------


def pruned(rng, n, keep, dist, fan_in):
    """``n`` non-zero weights left after magnitude pruning a dense layer to ``keep``.

    The dense layer has ``n / keep`` He-scaled Gaussian or Laplace weights; only those of
    largest magnitude survive, which leaves the gap around zero that real pruned layers
    have. ``keep = 1`` is a dense layer.
    """
    scale = np.float32(np.sqrt(2.0 / fan_in))
    dense = round(n / keep)
    if dist == "gauss":
        w = rng.standard_normal(dense, dtype=np.float32)
    else:
        w = rng.laplace(size=dense).astype(np.float32) / np.float32(np.sqrt(2.0))
    w *= scale
    if dense == n:
        return w
    return w[np.argpartition(np.abs(w), dense - n)[dense - n :]]


def relu_activations(rng, n):
    """``n`` positive, heavy-tailed values like the non-zero outputs of a ReLU layer.

    A Gaussian pre-activation whose scale varies log-normally (channels and images differ),
    rectified; the zeros are dropped as the quantizer gives them their own code.
    """
    out = np.empty(0, dtype=np.float32)
    while out.size < n:
        z = rng.standard_normal(2 * n) - 0.3
        z *= np.exp(0.7 * rng.standard_normal(2 * n))
        out = np.concatenate((out, z[z > 0].astype(np.float32)))
    return out[:n]


# AlexNet-sized layers (weights counted after pruning, as the quantizer clusters them).
CASES = {
    "conv1 gauss keep84%": (34_848, lambda r, n: pruned(r, n, 0.84, "gauss", 363)),
    "conv2 laplace keep38%": (307_200, lambda r, n: pruned(r, n, 0.38, "laplace", 1200)),
    "act relu 300K": (300_000, relu_activations),
    "conv3 laplace keep35%": (884_736, lambda r, n: pruned(r, n, 0.35, "laplace", 2304)),
    "fc6 laplace keep9%": (3_397_386, lambda r, n: pruned(r, n, 0.09, "laplace", 9216)),
    "act relu 3.4M": (3_400_000, relu_activations),
    "fc7 gauss dense": (16_777_216, lambda r, n: pruned(r, n, 1.0, "gauss", 4096)),
}
QUICK = ("conv1 gauss keep84%", "conv2 laplace keep38%", "act relu 300K")


# -- measurement -------------------------------------------------------------------------


def run_case(km, name, values, k, repeats):
    from sklearn.cluster import KMeans

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        ours = km.cluster_1d(values, k)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    fitted = KMeans(n_clusters=k, n_init=1, random_state=0).fit(values.reshape(-1, 1))
    t_sk = time.perf_counter() - start
    theirs = np.unique(fitted.cluster_centers_.ravel().astype(np.float64))
    w_ours = km.wcss(values, ours)
    w_sk = km.wcss(values, theirs)
    return {
        "case": name,
        "n": int(values.size),
        "k": k,
        "ours_s": min(times),
        "sklearn_s": t_sk,
        "speedup": t_sk / min(times),
        "wcss_excess_pct": 100.0 * (w_ours / w_sk - 1.0),
        "sklearn_iters": int(fitted.n_iter_),
    }


def failures(row):
    out = []
    if row["speedup"] < MIN_SPEEDUP:
        out.append(f"speedup {row['speedup']:.1f} < {MIN_SPEEDUP:g}")
    if row["wcss_excess_pct"] > MAX_EXCESS_PCT:
        out.append(f"wcss excess {row['wcss_excess_pct']:.3f}% > {MAX_EXCESS_PCT:g}%")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small/medium cases only (CI)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a row misses a target")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)

    try:
        import sklearn
    except ImportError:
        print("bench_kmeans: scikit-learn is needed for the reference", file=sys.stderr)
        return 2
    km = _load_kmeans1d()
    names = QUICK if args.quick else tuple(CASES)
    print(
        f"# python {platform.python_version()}, numpy {np.__version__}, "
        f"scikit-learn {sklearn.__version__}, {os.cpu_count()} CPUs, {platform.machine()}"
    )
    header = f"{'case':<24}{'n':>11}{'k':>4}{'ours s':>10}{'sklearn s':>11}"
    print(header + f"{'speedup':>9}{'wcss excess %':>15}")
    rows, missed = [], []
    for name in names:
        n, make = CASES[name]
        # Seeded by the case's place in CASES, so --quick rows repeat full-run rows.
        values = make(np.random.default_rng(1000 + list(CASES).index(name)), n)
        for k in KS:
            row = run_case(km, name, values, k, repeats=5 if n < 1_000_000 else 3)
            rows.append(row)
            bad = failures(row)
            print(
                f"{name:<24}{row['n']:>11,}{k:>4}{row['ours_s']:>10.4f}{row['sklearn_s']:>11.3f}"
                f"{row['speedup']:>8.1f}x{row['wcss_excess_pct']:>+15.5f}"
                + ("   MISS: " + "; ".join(bad) if bad else ""),
                flush=True,
            )
            if bad:
                missed.append((name, k, bad))
        del values
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    if args.check and missed:
        for name, k, bad in missed:
            print(
                f"bench_kmeans: target missed for {name} k={k}: {'; '.join(bad)}", file=sys.stderr
            )
        return 1
    if args.check:
        print(
            f"bench_kmeans: all {len(rows)} rows meet speedup >= {MIN_SPEEDUP:g}x and "
            f"wcss excess <= {MAX_EXCESS_PCT:g}%"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
