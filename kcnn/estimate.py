"""Estimated board performance (DESIGN section 6): an analytic model, never a measurement.

Computed from the `.kcnn` and the job tiler alone. The kernel handles a job in phases: it
reads the job's words from the stream (one 64-bit word per cycle), builds the product
table (one product per cycle), lets the P PEs visit the non-zero activation taps of every
output's window (one pair per PE per cycle, II=1, one pass per P channels), then writes
the outputs (one word per cycle). The host pays a fixed overhead per job and runs the host
ops. Every figure comes with these assumptions.
"""

from __future__ import annotations

import numpy as np

from kcnn.config import BUILD_DEFAULTS
from kcnn.kfile import KcnnModel
from kcnn.tiler import plan_jobs, stream_words

#: Host-side costs on the PYNQ-Z2's Cortex-A9 (650 MHz), assumed, not measured.
HOST_ASSUMPTIONS = {
    "host_job_overhead_s": 30e-6,  # descriptor bookkeeping, DMA start and completion poll
    "host_op_s_per_element": 60e-9,  # numpy element-wise LRN on the ARM, decode + re-encode
    "host_encode_s_per_element": 20e-9,  # input encoder
}


def estimate(model: KcnnModel, params: dict | None = None) -> dict:
    """The performance table of ``kcnn report --estimate`` (labelled an estimate)."""
    params = {**BUILD_DEFAULTS, **(params or {})}
    p, clock = params["P"], params["CLOCK_MHZ"] * 1e6
    density = {
        name: entry["act_density"]
        for name, entry in model.meta.get("calibration", {}).get("layers", {}).items()
    }
    rows, fabric_cycles, jobs_total = [], 0, 0
    host_s = float(np.prod(model.input_shape)) * HOST_ASSUMPTIONS["host_encode_s_per_element"]
    for layer in model.layers:
        if layer.op in ("lrn", "softmax"):
            host_s += float(np.prod(layer.out_shape)) * HOST_ASSUMPTIONS["host_op_s_per_element"]
        if not layer.is_fabric:
            continue
        jobs = plan_jobs(layer, params)
        j_in = model.maps[layer.in_map].J
        emits = layer.out_map is not None
        phase = {"stream_in": 0, "table": 0, "compute": 0, "stream_out": 0}
        bits = 0
        taps = max(1, round(density.get(layer.name, 1.0) * jobs[0].window))
        out_w = layer.out_shape[-1] if layer.op == "conv" else 1
        for job in jobs:
            words = stream_words(layer, job, j_in, emits)
            w_in = sum(v for k, v in words.items() if k != "outputs")
            phase["stream_in"] += w_in
            phase["stream_out"] += words["outputs"]
            phase["table"] += (layer.K - 1) * (j_in - 1)
            phase["compute"] += -(-job.channels // p) * job.rows * out_w * taps
            bits += 64 * (w_in + words["outputs"])
        cycles = sum(phase.values())
        fabric_cycles += cycles
        jobs_total += len(jobs)
        rows.append(
            {
                "name": layer.name,
                "jobs": len(jobs),
                "cycles": int(cycles),
                "stream_bits": int(bits),
                "bottleneck": max(phase, key=phase.get),
                "phases": {k: int(v) for k, v in phase.items()},
            }
        )
    host_s += jobs_total * HOST_ASSUMPTIONS["host_job_overhead_s"]
    fabric_s = fabric_cycles / clock
    assumptions = {
        "kind": "estimate (analytic model, not measured)",
        "P": p,
        "clock_MHz": params["CLOCK_MHZ"],
        "stream_bits_per_cycle": 64,
        "pe": "one pair per PE per cycle (II=1) over the non-zero activation taps, "
        "act_density from the .kcnn's counts",
        "phases": "stream in, table build, compute and stream out run one after another",
        "buffers": {k: params[k] for k in ("IN_DEPTH", "W_DEPTH", "OUT_DEPTH")},
        **HOST_ASSUMPTIONS,
    }
    return {
        "assumptions": assumptions,
        "layers": rows,
        "fabric_s": fabric_s,
        "host_s": host_s,
        "fps": 1.0 / (fabric_s + host_s),
    }


def format_estimate(est: dict) -> str:
    lines = [
        f"ESTIMATED PYNQ-Z2 performance ({est['assumptions']['kind']}; P="
        f"{est['assumptions']['P']} at {est['assumptions']['clock_MHz']} MHz)",
        f"{'layer':<12}{'jobs':>6}{'cycles':>12}{'stream KiB':>12}  bottleneck",
    ]
    for r in est["layers"]:
        lines.append(
            f"{r['name'][:11]:<12}{r['jobs']:>6}{r['cycles']:>12,}"
            f"{r['stream_bits'] / 8192:>12,.1f}  {r['bottleneck']}"
        )
    lines.append(
        f"fabric {1e3 * est['fabric_s']:.2f} ms + host {1e3 * est['host_s']:.2f} ms"
        f" -> estimated {est['fps']:.1f} frames/s"
    )
    return "\n".join(lines)
