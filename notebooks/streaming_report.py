"""Write the layer-streaming report of the AlexNet-sized model that notebooks 2 and 3 read.

    python -m kcnn.notebooks.streaming_report notebooks/alexnet_streaming.json
        [--seed 0] [--images 8]

Needs the ``quantize`` extra, about 250 MB of free space in the temporary folder and about
2 GB of memory: it builds the BVLC AlexNet graph with seeded, Deep-Compression-pruned
weights (:mod:`kcnn.models.bvlc`), quantizes it at default settings on ``--images``
calibration images, and writes what the board would stream: every layer's jobs from the
job tiler, the compression report and the analytic performance estimate (an estimate, never
a measurement). The board can neither build nor quantize this model, so the small JSON is
committed beside the notebooks. The same seed, image count and package versions give the
same bytes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from kcnn import __version__
from kcnn.config import BUILD_DEFAULTS
from kcnn.errors import KcnnError
from kcnn.estimate import estimate, job_phases, pool_phases
from kcnn.files import atomic_write
from kcnn.jobs import fabric_pools, pool_fields, pool_jobs, section_words
from kcnn.kfile import KcnnModel
from kcnn.report import build_report
from kcnn.tiler import plan_jobs, stream_words

#: Columns of every job row in the JSON.
JOB_FIELDS = ("ch0", "channels", "row0", "rows", "words_in", "words_out", "cycles")
#: The command's defaults: the weight seed and the number of calibration images.
SEED, IMAGES = 0, 8


def layer_labels(model: KcnnModel) -> dict[str, str]:
    """Caffe-style names (conv1 .. fc8, norm1, pool5, ...) for the quantizer's node names.

    A fabric layer is numbered by its position among the conv / fc layers; a pool or LRN
    takes the number of the fabric layer before it, as in the BVLC model definition.
    """
    labels, fabric = {}, 0
    for layer in model.layers:
        if layer.is_fabric:
            fabric += 1
            labels[layer.name] = f"{layer.op}{fabric}"
        else:
            prefix = {"maxpool": "pool", "lrn": "norm"}.get(layer.op)
            labels[layer.name] = f"{prefix}{fabric}" if prefix else layer.op
    return labels


def streamed_layers(model: KcnnModel, params: dict) -> list[dict]:
    """Every layer the fabric runs, with its geometry and one row per job (:data:`JOB_FIELDS`).

    Job cycles use the same phases and activation densities as
    :func:`kcnn.estimate.estimate`, one job at a time, so a layer's rows add up to its row of
    the estimate.
    """
    density = {
        name: entry["act_density"]
        for name, entry in model.meta.get("calibration", {}).get("layers", {}).items()
    }
    pools = fabric_pools(model)
    labels = layer_labels(model)
    out = []
    for layer in model.layers:
        rows = []
        if layer.is_fabric:
            j_in = model.maps[layer.in_map].J
            share = density.get(layer.name, 1.0)
            for job in plan_jobs(layer, params):
                words = stream_words(layer, job, j_in, layer.out_map is not None)
                taps = share * job.window * (job.outputs // job.channels)
                phases = job_phases(layer, job, words, params["P"], taps)
                words_in = sum(v for k, v in words.items() if k != "outputs")
                rows.append((job, words_in, words["outputs"], sum(phases.values())))
        elif layer.name in pools:
            for job in pool_jobs(layer, params):
                words = section_words(pool_fields(layer, job))
                words_in = words["descriptor"] + words["inputs"]
                phases = pool_phases(job, words)
                rows.append((job, words_in, words["outputs"], sum(phases.values())))
        else:
            continue
        out.append(
            {
                "name": layer.name,
                "label": labels[layer.name],
                "op": layer.op,
                "in_shape": list(layer.in_shape),
                "out_shape": list(layer.out_shape),
                "attrs": layer.attrs,
                "weight_form": layer.weight_form if layer.is_fabric else None,
                "jobs": [
                    [job.ch0, job.channels, job.row0, job.rows, w_in, w_out, int(round(cycles))]
                    for job, w_in, w_out, cycles in rows
                ],
            }
        )
    return out


def streaming_report(model: KcnnModel, *, seed: int, images: int) -> dict:
    """The JSON object notebook 3 reads: provenance, jobs, report and estimate."""
    params = dict(BUILD_DEFAULTS)
    est = estimate(model, params)
    layers = streamed_layers(model, params)
    for row, layer in zip(est["layers"], layers, strict=True):
        # The per-job split must add up to the estimator's own layer total.
        total = sum(job[-1] for job in layer["jobs"])
        if row["name"] != layer["name"] or abs(total - row["cycles"]) > len(layer["jobs"]):
            raise KcnnError(
                f"per-job cycles {total} disagree with the estimate's {row['cycles']}",
                layer=layer["name"],
            )
    return {
        "what": "Layer streaming of the BVLC AlexNet graph (seeded weights pruned to Deep "
        "Compression's densities, quantized at default settings) on the PYNQ-Z2: the job "
        "tiler's jobs and the analytic performance model. Estimated, not measured.",
        "command": f"python -m kcnn.notebooks.streaming_report OUT.json --seed {seed} "
        f"--images {images}",
        "kcnn_version": __version__,
        "model": {
            "name": model.name,
            "source_sha256": model.meta.get("source_sha256"),
            "seed": seed,
            "calibration_images": images,
            "input_shape": list(model.input_shape),
        },
        "params": params,
        "labels": layer_labels(model),
        "job_fields": list(JOB_FIELDS),
        "layers": layers,
        "report": build_report(model),
        "estimate": est,
    }


def to_json(obj: dict) -> str:
    """Indented JSON with every list of plain numbers on one line (one job per line)."""
    text = json.dumps(obj, indent=1)
    flat = re.compile(r"\[\n\s*([^\[\]{}\"]*?)\n\s*\]")
    return flat.sub(lambda m: "[" + re.sub(r",\n\s*", ", ", m.group(1)) + "]", text) + "\n"


def quantize_bvlc(onnx_path, images: int, log=sys.stderr) -> KcnnModel:
    """Quantize the BVLC AlexNet graph at default settings on ``images`` calibration images."""
    from kcnn.models.bvlc import calibration_images
    from kcnn.quantizer import quantize

    return quantize(onnx_path, calibration_images(images), name="bvlc_alexnet", log=log)


def build_model(seed: int, images: int) -> KcnnModel:
    """Build the BVLC AlexNet graph in a temporary folder and quantize it (default settings)."""
    from kcnn.models.bvlc import build_bvlc_alexnet

    with tempfile.TemporaryDirectory() as folder:
        onnx_path = build_bvlc_alexnet(Path(folder) / "bvlc_alexnet.onnx", seed=seed)
        return quantize_bvlc(onnx_path, images)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kcnn.notebooks.streaming_report",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("out", type=Path, help="the JSON to write")
    parser.add_argument("--seed", type=int, default=SEED, help=f"weight seed (default {SEED})")
    parser.add_argument(
        "--images", type=int, default=IMAGES, help=f"calibration images (default {IMAGES})"
    )
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    try:
        model = build_model(args.seed, args.images)
        text = to_json(streaming_report(model, seed=args.seed, images=args.images))
    except KcnnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    atomic_write(args.out, lambda handle: handle.write(text.encode()))
    print(
        f"wrote {args.out} ({len(text):,} bytes) in {time.perf_counter() - t0:.0f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
