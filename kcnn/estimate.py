"""Estimated board performance (DESIGN section 6): an analytic model, never a measurement.

Computed from the `.kcnn` and the job tiler alone. The phases are the kernel's loops
(hls/README.md), each one trip per cycle at II=1, run one after another:

- ``stream_in``: one 64-bit word per cycle (descriptor, constant part, inputs), decoded as
  it arrives into the caches;
- ``wclear``: sparse jobs zero their weight banks first, ceil(channels/P) x window trips;
- ``table``: the product-table builder walks all K_MAX x J_MAX entries;
- ``gather``: per output pixel, one trip per window tap to list the non-zero activations;
- ``compute``: per output pixel and pass of P channels, one trip per non-zero activation
  tap (the P PEs in parallel): the only data-dependent phase, estimated from the
  calibration's activation density (a C-sim job gives the exact count);
- ``emit``: one output per cycle through the threshold bank;
- ``pool``: code pooling, one window tap per cycle;
- ``stream_out``: one output word per cycle.

The host pays a fixed overhead per job and runs the host ops. Every figure comes with
these assumptions.
"""

from __future__ import annotations

import numpy as np

from kcnn.config import ARITHMETIC_CONTRACT, BUILD_DEFAULTS
from kcnn.jobs import fabric_pools, pool_fields, pool_jobs, section_words
from kcnn.kfile import KcnnModel, QLayer
from kcnn.tiler import Job, plan_jobs, stream_words

PHASES = ("stream_in", "wclear", "table", "gather", "compute", "emit", "pool", "stream_out")

#: Host-side costs on the PYNQ-Z2's Cortex-A9 (650 MHz), assumed, not measured.
HOST_ASSUMPTIONS = {
    "host_job_overhead_s": 30e-6,  # descriptor bookkeeping, DMA start and completion poll
    "host_op_s_per_element": 60e-9,  # numpy element-wise LRN on the ARM, decode + re-encode
    "host_encode_s_per_element": 20e-9,  # input encoder
}


def job_phases(layer: QLayer, job: Job, words: dict, p: int, nonzero_taps: float) -> dict:
    """Cycles of each phase of one conv / fc job: the kernel's loop trips.

    ``words`` are the job's section sizes (:func:`kcnn.tiler.stream_words`);
    ``nonzero_taps`` is the number of non-zero activation codes summed over the windows of
    the job's output pixels (exact from codes, or density x window x pixels).
    """
    passes = -(-job.channels // p)
    pixels = job.outputs // job.channels
    phase = dict.fromkeys(PHASES, 0)
    phase["stream_in"] = sum(v for k, v in words.items() if k != "outputs")
    if layer.weight_form == "sparse":
        phase["wclear"] = passes * job.window
    phase["table"] = ARITHMETIC_CONTRACT["K_MAX"] * ARITHMETIC_CONTRACT["J_MAX"]
    phase["gather"] = pixels * job.window
    phase["compute"] = passes * nonzero_taps
    phase["emit"] = job.outputs
    phase["stream_out"] = words["outputs"]
    return phase


def pool_phases(job: Job, words: dict) -> dict:
    """Cycles of each phase of a code-pooling job (``job.window`` = kernel taps)."""
    phase = dict.fromkeys(PHASES, 0)
    phase["stream_in"] = words["descriptor"] + words["inputs"]
    phase["pool"] = job.outputs * job.window
    phase["stream_out"] = words["outputs"]
    return phase


def nonzero_taps(layer: QLayer, job: Job, padded: np.ndarray) -> int:
    """Exact non-zero activation taps over a job's windows, from one image's padded input
    codes ``(C, H_padded, W_padded)`` (``(taps, 1, 1)`` for fc)."""
    if layer.op == "fc":
        return int(np.count_nonzero(padded))
    a = layer.attrs
    (kh, kw), (sh, sw), (dh, dw) = a["kernel"], a["strides"], a["dilations"]
    tile = padded[
        job.in_ch0 : job.in_ch0 + job.in_channels, job.in_row0 : job.in_row0 + job.in_rows
    ]
    ow = layer.out_shape[2]
    total = 0
    for i in range(kh):
        for j in range(kw):
            view = tile[:, i * dh : i * dh + sh * (job.rows - 1) + 1 : sh]
            view = view[:, :, j * dw : j * dw + sw * (ow - 1) + 1 : sw]
            total += int(np.count_nonzero(view))
    return total


def estimate(model: KcnnModel, params: dict | None = None) -> dict:
    """The performance table of ``kcnn report --estimate`` (labelled an estimate)."""
    params = {**BUILD_DEFAULTS, **(params or {})}
    p, clock = params["P"], params["CLOCK_MHZ"] * 1e6
    density = {
        name: entry["act_density"]
        for name, entry in model.meta.get("calibration", {}).get("layers", {}).items()
    }
    pools = fabric_pools(model)
    rows, fabric_cycles, jobs_total = [], 0, 0
    host_s = float(np.prod(model.input_shape)) * HOST_ASSUMPTIONS["host_encode_s_per_element"]
    for layer in model.layers:
        if layer.op in ("lrn", "softmax"):
            host_s += float(np.prod(layer.out_shape)) * HOST_ASSUMPTIONS["host_op_s_per_element"]
        if not layer.is_fabric and layer.name not in pools:
            continue
        phase = dict.fromkeys(PHASES, 0)
        bits = 0
        if layer.is_fabric:
            jobs = plan_jobs(layer, params)
            j_in = model.maps[layer.in_map].J
            emits = layer.out_map is not None
            share = density.get(layer.name, 1.0)
            for job in jobs:
                words = stream_words(layer, job, j_in, emits)
                pixels = job.outputs // job.channels
                taps = share * job.window * pixels
                for k, v in job_phases(layer, job, words, p, taps).items():
                    phase[k] += v
                bits += 64 * sum(words.values())
        else:
            jobs = pool_jobs(layer, params)
            for job in jobs:
                words = section_words(pool_fields(layer, job))
                for k, v in pool_phases(job, words).items():
                    phase[k] += v
                bits += 64 * (words["descriptor"] + words["inputs"] + words["outputs"])
        cycles = sum(phase.values())
        fabric_cycles += cycles
        jobs_total += len(jobs)
        rows.append(
            {
                "name": layer.name,
                "jobs": len(jobs),
                "cycles": int(round(cycles)),
                "stream_bits": int(bits),
                "bottleneck": max(phase, key=phase.get),
                "phases": {k: int(round(v)) for k, v in phase.items()},
            }
        )
    host_s += jobs_total * HOST_ASSUMPTIONS["host_job_overhead_s"]
    fabric_s = fabric_cycles / clock
    assumptions = {
        "kind": "estimate (analytic model, not measured)",
        "P": p,
        "clock_MHz": params["CLOCK_MHZ"],
        "stream_bits_per_cycle": 64,
        "pe": "one non-zero activation tap per pass of P PEs per cycle (II=1), "
        "act_density from the .kcnn's counts; loops as in hls/README.md",
        "phases": "stream in, weight clear (sparse), table build, gather, compute, emit, "
        "pool and stream out run one after another",
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
