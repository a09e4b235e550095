"""Write the layer-streaming report of the AlexNet-sized model that notebooks 2 and 3 read.

    python notebooks/streaming_report.py notebooks/alexnet_streaming.json [--seed 0] [--images 8]

from the repository root, with kcnn installed; ``python -m kcnn.notebooks.streaming_report
OUT.json`` does the same from any other folder (in the root, the source folder ``kcnn/``
hides the installed package, and only the installed one has ``kcnn.notebooks``).

Needs the ``quantize`` extra, about 250 MB of free space in the temporary folder and about
2 GB of memory: it builds the BVLC AlexNet graph with seeded, Deep-Compression-pruned
weights (:mod:`kcnn.models.bvlc`), quantizes it at default settings on ``--images``
calibration images, and writes what the board would run: every step of a frame as the
planner (:mod:`kcnn.plan`) makes it for the default build parameters, with its jobs and
the kernel's loop log, the compression report and the analytic performance estimate (an
estimate, never a measurement). The board can neither build nor quantize this model, so
the small JSON is committed beside the notebooks. The same seed, image count and package
versions give the same bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from kcnn import __version__
from kcnn.config import BuildParams
from kcnn.errors import KcnnError
from kcnn.estimate import LOOP_TABLE, estimate
from kcnn.files import atomic_write
from kcnn.model import Model
from kcnn.plan import plan_model
from kcnn.report import build_report
from kcnn.tiling import Step

#: Columns of every job row: its channels, its weight form (1 sparse, 0 dense), weight steps,
#: words on stream A (header, biases, weights) and B (weights), words it answers, and the
#: trips of its JOB loop entry.
JOB_FIELDS = (
    "ch0",
    "channels",
    "sparse",
    "steps",
    "words_a",
    "words_b",
    "out_words",
    "job_trips",
)
#: Columns of every loop-log row: ``entries`` consecutive entries of one loop with the same
#: trips, the loop table's II and depth, and the cycles those entries cost together.
LOOP_FIELDS = ("loop", "trips", "entries", "ii", "depth", "cycles")
#: The command's defaults: the weight seed and the number of calibration images.
SEED, IMAGES = 0, 8


def layer_labels(model: Model) -> dict[str, str]:
    """Caffe-style names (conv1 .. fc8, norm1, pool5, ...) for the quantizer's node names.

    A conv or fc layer is numbered by its position among the conv / fc layers; a pool or
    LRN takes the number of the conv / fc layer before it, as in the BVLC model definition.
    """
    labels, weighted = {}, 0
    for layer in model.layers:
        if layer.is_fabric:
            weighted += 1
            labels[layer.name] = f"{layer.op}{weighted}"
        else:
            prefix = {"maxpool": "pool", "lrn": "norm"}.get(layer.op)
            labels[layer.name] = f"{prefix}{weighted}" if prefix else layer.op
    return labels


def loop_runs(log: list[tuple[str, int]]) -> list[list]:
    """A step's loop log with runs of equal entries folded (a pool or LRN step enters its
    loop once per channel), each run costed from :data:`kcnn.estimate.LOOP_TABLE`."""
    runs: list[list] = []
    for loop, trips in log:
        if runs and runs[-1][:2] == [loop, trips]:
            runs[-1][2] += 1
        else:
            runs.append([loop, trips, 1])
    out = []
    for loop, trips, entries in runs:
        ii, depth = LOOP_TABLE[loop].ii, LOOP_TABLE[loop].depth
        out.append([loop, trips, entries, ii, depth, entries * (ii * trips + depth)])
    return out


def step_entry(step: Step, label: str, row: dict) -> dict:
    """One step of the frame: geometry, jobs (:data:`JOB_FIELDS`), loop log
    (:data:`LOOP_FIELDS`) and the estimate's row for it."""
    log = step.loop_log()
    job_trips = [trips for loop, trips in log if loop == "JOB"]
    runs = loop_runs(log)
    layer = step.layer
    where = f"step {step.index}"
    if len(job_trips) != len(step.jobs):
        raise KcnnError(f"{where}: {len(job_trips)} JOB entries for {len(step.jobs)} jobs")
    if row["step"] != step.index or sum(run[-1] for run in runs) != row["cycles"]:
        raise KcnnError(
            f"{where}: the loop log costs {sum(run[-1] for run in runs)} cycles, the estimate "
            f"{row['cycles']}",
            layer=layer.name,
        )
    return {
        "step": step.index,
        "name": layer.name,
        "label": label,
        "op": step.op,
        "in_shape": list(layer.in_shape),
        "stored_in_shape": list(step.in_shape),
        "out_shape": list(step.out_shape),
        "in_format": step.in_format,
        "out_format": step.out_format,
        "attrs": layer.attrs,
        "descriptor": dict(step.fields),
        "head_words": int(step.head.size),
        "jobs": [
            [
                job.ch0,
                job.channels,
                int(job.sparse),
                job.steps,
                int(job.words_a.size),
                int(job.words_b.size),
                job.out_words,
                trips,
            ]
            for job, trips in zip(step.jobs, job_trips, strict=True)
        ],
        "loop_log": runs,
        "words": row["words"],
        "cycles": row["cycles"],
        "loops": row["loops"],
        "seconds": row["seconds"],
        "bound": row["bound"],
    }


def streaming_report(model: Model, *, seed: int, images: int) -> dict:
    """The JSON object notebook 3 reads: provenance, steps, report and estimate."""
    params = BuildParams()
    plan = plan_model(model, params)
    est = estimate(model, params)
    labels = layer_labels(model)
    steps = [
        step_entry(step, labels[step.layer.name], row)
        for step, row in zip(plan.steps, est["steps"], strict=True)
    ]
    return {
        "what": "Layer streaming of the BVLC AlexNet graph (seeded weights pruned to Deep "
        "Compression's densities, quantized at default settings) on the PYNQ-Z2: the "
        "planner's steps and jobs, the kernel's loop log and the analytic performance "
        "model. Estimated, not measured.",
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
        "params": params.as_dict(),
        "labels": labels,
        "job_fields": list(JOB_FIELDS),
        "loop_fields": list(LOOP_FIELDS),
        "steps": steps,
        "report": build_report(model),
        "estimate": est,
    }


def to_json(obj) -> str:
    """Indented JSON with every list of plain values on one line (one job, one loop run or
    one shape per line)."""

    def dump(value, depth: int) -> str:
        inner, outer = " " * (depth + 1), " " * depth
        if isinstance(value, dict) and value:
            items = [f"{inner}{json.dumps(k)}: {dump(v, depth + 1)}" for k, v in value.items()]
            return "{\n" + ",\n".join(items) + "\n" + outer + "}"
        if isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list)) for v in value):
            items = [inner + dump(v, depth + 1) for v in value]
            return "[\n" + ",\n".join(items) + "\n" + outer + "]"
        return json.dumps(value)

    return dump(obj, 0) + "\n"


def quantize_bvlc(onnx_path, images: int, log=sys.stderr) -> Model:
    """Quantize the BVLC AlexNet graph at default settings on ``images`` calibration images,
    with the pixel input of :data:`kcnn.models.bvlc.PIXELS`."""
    from kcnn.models.bvlc import PIXELS, calibration_images
    from kcnn.quantizer import quantize

    calib = calibration_images(images)
    return quantize(onnx_path, calib, name="bvlc_alexnet", log=log, pixels=PIXELS)


def build_model(seed: int, images: int) -> Model:
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
