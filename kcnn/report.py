"""The compression and compute report of a `.kcnn` (DESIGN section 2), numpy only."""

from __future__ import annotations

import numpy as np

from kcnn.config import ARITHMETIC_CONTRACT
from kcnn.errors import KcnnError
from kcnn.model import Layer, Model
from kcnn.weight_forms import encode_sparse, sparse_bits

TOTAL_KEYS = (
    "dense_macs",
    "effective_pairs",
    "multiplies",
    "adds",
    "compares",
    "storage_bits",
    "dense_fp32_bits",
    "dense_16bit_bits",
)


def weight_code_bits(layer: Layer) -> int:
    """Bits of the weight codes in the layer's stored form."""
    if layer.weight_form == "sparse":
        entries, per_row = encode_sparse(layer.codes)
        return sparse_bits(entries.size, per_row.size)
    return 4 * int(layer.codes.size)


def storage_bits(model: Model, layer: Layer) -> int:
    """Constant bits a fabric layer's jobs carry: codes, both codebooks, biases, the
    threshold bank (thresholds, interval codes) and the Add tables."""
    c = ARITHMETIC_CONTRACT
    bits = 0
    if layer.is_fabric:
        bits += weight_code_bits(layer)
        bits += c["bw"] * (layer.K - 1) + c["ba"] * (model.maps[layer.in_map].J - 1)
        bits += c["ACC_BITS"] * int(layer.bias.size)
    if layer.thresholds is not None:
        bits += c["ACC_BITS"] * int(layer.thresholds.size)
    if layer.out_table is not None:
        bits += 4 * int(layer.out_table.size)
    for table in layer.add_tables or [layer.residual_table]:
        if table is not None:
            bits += c["ACC_BITS"] * int(table.size)
    return bits


def _add_layer_row(model: Model, layer: Layer) -> dict:
    """The fabric add layer: no dense MACs, one add per output (DESIGN section 2)."""
    outputs = int(np.prod(layer.out_shape))
    j_out = model.maps[layer.out_map].J
    return {
        "name": layer.name,
        "op": layer.op,
        "K": 0,
        "J": max(model.maps[model.codebook_of(t)].J for t in layer.inputs),
        "weight_density": 0.0,
        "act_density": 1.0,
        "dense_macs": 0,
        "effective_pairs": 0.0,
        "multiplies": 0,
        "adds": outputs,
        "compares": outputs * (j_out - 1),
        "storage_bits": storage_bits(model, layer),
        "dense_fp32_bits": 0,
        "dense_16bit_bits": 0,
        "weight_form": "none",
        "table_builds": 0,
    }


def build_report(model: Model) -> dict:
    """The report JSON of ``kcnn quantize`` / ``kcnn report``."""
    calibration = model.meta.get("calibration", {})
    measured = calibration.get("layers", {})
    layers, host_ops = [], []
    last_fabric = None
    for index, layer in enumerate(model.layers):
        if layer.kind.runs_on_host:
            host_ops.append(
                {
                    "name": layer.name,
                    "op": layer.op,
                    "position": index,
                    "after": last_fabric,
                    "on": "codes" if layer.out_map else "logits",
                }
            )
        if layer.thresholded and not layer.is_fabric:
            layers.append(_add_layer_row(model, layer))
            continue
        if not layer.is_fabric:
            continue
        last_fabric = layer.name
        counts = measured.get(layer.name)
        if counts is None:
            raise KcnnError(
                "the file holds no calibration counts for this layer",
                layer=layer.name,
                field="calibration",
            )
        outputs = int(np.prod(layer.out_shape))
        pairs = float(counts["effective_pairs"])
        # The kernel builds a layer's product table once per step (docs/job-format.md).
        table_builds = 1
        j_in = model.maps[layer.in_map].J
        j_out = model.maps[layer.out_map].J if layer.out_map else None
        params = int(layer.codes.size + layer.bias.size)
        layers.append(
            {
                "name": layer.name,
                "op": layer.op,
                "K": layer.K,
                "J": j_in,
                "weight_density": float(np.count_nonzero(layer.codes) / layer.codes.size),
                "act_density": float(counts["act_density"]),
                "dense_macs": layer.kind.dense_macs(layer),
                "effective_pairs": pairs,
                "multiplies": (layer.K - 1) * (j_in - 1) * table_builds,
                # the bias, and a residual Add's table entry, per output
                "adds": pairs + outputs * (2 if layer.residual is not None else 1),
                "compares": outputs * (j_out - 1) if j_out else 0,
                "storage_bits": storage_bits(model, layer),
                "dense_fp32_bits": 32 * params,
                "dense_16bit_bits": 16 * params,
                "weight_form": layer.weight_form,
                "table_builds": table_builds,
            }
        )
    totals = {key: sum(layer[key] for layer in layers) for key in TOTAL_KEYS}
    ops = totals["multiplies"] + totals["adds"] + totals["compares"]
    totals["compute_reduction"] = 1.0 - ops / (2.0 * totals["dense_macs"])
    totals["storage_reduction_fp32"] = 1.0 - totals["storage_bits"] / totals["dense_fp32_bits"]
    totals["storage_reduction_16bit"] = 1.0 - totals["storage_bits"] / totals["dense_16bit_bits"]
    return {
        "model": model.name,
        "counts_from": calibration.get("counts_from", "none"),
        "images": calibration.get("images", 0),
        "layers": layers,
        "host_ops": host_ops,
        "totals": totals,
    }


def format_report(report: dict) -> str:
    """A human-readable table of the report (for stderr)."""
    head = (
        f"{'layer':<12}{'op':<5}{'K':>3}{'J':>4}{'w dens':>8}{'a dens':>8}{'dense MACs':>14}"
        f"{'eff. pairs':>14}{'mults':>8}{'storage KiB':>13}{'fp32 KiB':>11}  form"
    )
    lines = [
        f"model {report['model']}  (counts from {report['counts_from']}, "
        f"{report['images']} images)",
        head,
    ]
    for r in report["layers"]:
        lines.append(
            f"{r['name'][:11]:<12}{r['op']:<5}{r['K']:>3}{r['J']:>4}{r['weight_density']:>8.3f}"
            f"{r['act_density']:>8.3f}{r['dense_macs']:>14,}{r['effective_pairs']:>14,.0f}"
            f"{r['multiplies']:>8,}{r['storage_bits'] / 8192:>13,.1f}"
            f"{r['dense_fp32_bits'] / 8192:>11,.1f}  {r['weight_form']}"
        )
    t = report["totals"]
    lines.append(
        f"total: dense MACs {t['dense_macs']:,}  effective pairs {t['effective_pairs']:,.0f}  "
        f"compute reduction {100 * t['compute_reduction']:.1f}%"
    )
    lines.append(
        f"storage {t['storage_bits'] / 8192:,.1f} KiB vs fp32 {t['dense_fp32_bits'] / 8192:,.1f}"
        f" KiB: -{100 * t['storage_reduction_fp32']:.1f}% (vs 16-bit: "
        f"-{100 * t['storage_reduction_16bit']:.1f}%)"
    )
    for h in report["host_ops"]:
        lines.append(f"host op {h['name']} ({h['op']}) after {h['after']}, on {h['on']}")
    return "\n".join(lines)
