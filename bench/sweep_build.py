"""Sweep the overlay's build parameters through the performance model (an estimate).

    python bench/sweep_build.py MODEL.kcnn [--markdown]

One row per build: estimated frames/s (fabric + host), the share of the physical limit,
and the estimated utilization against the planning budget (LUT 70 %, FF 50 %, BRAM 80 %,
DSP 80 %). The default build is marked. Nothing here is measured: it shows where the
default sits among the builds the kernel supports.
"""

from __future__ import annotations

import argparse
import itertools

from kcnn.config import BuildParams
from kcnn.estimate import estimate
from kcnn.kfile import load

SWEEP = {
    "P": (8, 16, 32),
    "STREAMS": (1, 2),
    "LRN_LANES": (2, 4, 8),
    "W_DEPTH": (1024, 2048),
}


def rows(model) -> list[dict]:
    out = []
    default = BuildParams()
    for values in itertools.product(*SWEEP.values()):
        change = dict(zip(SWEEP, values, strict=True))
        params = BuildParams(**{**default.as_dict(), **change})
        try:
            est = estimate(model, params, source="the sweep")
        except Exception as exc:  # a build that cannot run the model says why
            out.append({**change, "error": str(exc)})
            continue
        use = est["resources"]["utilization"]
        out.append(
            {
                **change,
                "fps": est["fps"],
                "fabric_ms": 1e3 * est["fabric_s"],
                "host_ms": 1e3 * est["host_s"],
                "dense_fps": est["baselines"]["dense_8bit"]["fps"],
                "limit_share": est["share_of_limit"],
                **{k: use[k] for k in ("lut", "ff", "bram36", "dsp48")},
                "fits": est["resources"]["within_budget"],
                "default": params == default,
            }
        )
    return out


def markdown(table: list[dict]) -> str:
    columns = (
        "P",
        "STREAMS",
        "LRN_LANES",
        "W_DEPTH",
        "fps",
        "fabric ms",
        "host ms",
        "x dense",
        "LUT",
        "FF",
        "BRAM",
        "DSP",
        "fits",
    )
    head = "| " + " | ".join(columns) + " |"
    lines = [head, "|" + "---|" * 13]
    for r in table:
        if "error" in r:
            continue
        mark = " **(default)**" if r["default"] else ""
        lines.append(
            f"| {r['P']} | {r['STREAMS']} | {r['LRN_LANES']} | {r['W_DEPTH']} | "
            f"{r['fps']:.1f}{mark} | {r['fabric_ms']:.2f} | {r['host_ms']:.2f} | "
            f"{r['fps'] / r['dense_fps']:.2f} | {100 * r['lut']:.0f}% | {100 * r['ff']:.0f}% | "
            f"{100 * r['bram36']:.0f}% | {100 * r['dsp48']:.0f}% | {'yes' if r['fits'] else 'no'} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a .kcnn file")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args(argv)
    table = rows(load(args.model))
    if args.markdown:
        print(markdown(table))
        return
    for r in table:
        print(r)


if __name__ == "__main__":
    main()
