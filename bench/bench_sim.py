"""Time the exact simulator against onnxruntime float32 on the AlexNet-sized model.

    python bench/bench_sim.py [--work DIR] [--repeats N] [--json PATH]

Builds the BVLC AlexNet test model (models/bvlc.py) and its `.kcnn` into DIR (reused when
present), then measures, alternating the two and taking the median of N runs:
  - in-process: batch 1, and batch 8 (onnxruntime as 8 single runs: the graph fixes batch 1);
  - whole processes: `kcnn run` against a plain onnxruntime script, import and load included.
Prints each pair and the ratio sim / onnxruntime (target: at most 3).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ORT_SCRIPT = """
import sys, numpy as np, onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])
name = s.get_inputs()[0].name
np.save(sys.argv[3], np.concatenate([s.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))]))
"""


def prepare(work: Path):
    from kcnn.kfile import load
    from kcnn.models.bvlc import PIXELS, build_bvlc_alexnet, calibration_images
    from kcnn.quantizer import quantize

    work.mkdir(parents=True, exist_ok=True)
    onnx_path, kcnn_path = work / "bvlc_alexnet.onnx", work / "bvlc_alexnet.kcnn"
    if not onnx_path.exists():
        build_bvlc_alexnet(onnx_path)
    if not kcnn_path.exists():
        quantize(onnx_path, calibration_images(8), log=None, pixels=PIXELS).save(kcnn_path)
    # Inputs the calibration did not see: uint8 images for the simulator, their float
    # values (mean subtracted) for onnxruntime.
    x = calibration_images(16)[8:]
    np.save(work / "x8.npy", x)
    floats = load(kcnn_path).pixels.to_float(x)
    np.save(work / "x8_float.npy", floats)
    return onnx_path, kcnn_path, x, floats


def alternate(first, second, repeats):
    a, b = [], []
    for _ in range(repeats):
        for fn, out in ((first, a), (second, b)):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return statistics.median(a), statistics.median(b)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="bench-work", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    import onnxruntime as ort

    from kcnn import Accelerator

    onnx_path, kcnn_path, x, floats = prepare(args.work)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    rows = []
    with Accelerator(kcnn_path, backend="sim") as acc:
        for batch in (1, 8):
            sim_s, ort_s = alternate(
                lambda b=batch: acc.run(x[:b]),
                lambda b=batch: [session.run(None, {name: floats[i : i + 1]}) for i in range(b)],
                args.repeats,
            )
            rows.append({"case": f"in-process batch {batch}", "sim_s": sim_s, "ort_s": ort_s})
    x8, out = args.work / "x8.npy", args.work / "out.npy"
    kcnn_cmd = [
        sys.executable,
        "-m",
        "kcnn.cli",
        "run",
        str(kcnn_path),
        str(x8),
        "-o",
        str(out),
        "--backend",
        "sim",
    ]
    ort_cmd = [
        sys.executable,
        "-c",
        ORT_SCRIPT,
        str(onnx_path),
        str(args.work / "x8_float.npy"),
        str(out),
    ]
    sim_s, ort_s = alternate(
        lambda: subprocess.run(kcnn_cmd, check=True, capture_output=True),
        lambda: subprocess.run(ort_cmd, check=True, capture_output=True),
        max(3, args.repeats // 2),
    )
    rows.append({"case": "process, 8 images", "sim_s": sim_s, "ort_s": ort_s})
    print(f"{'case':<24}{'sim s':>10}{'onnxruntime s':>15}{'ratio':>8}")
    for row in rows:
        row["ratio"] = row["sim_s"] / row["ort_s"]
        print(f"{row['case']:<24}{row['sim_s']:>10.3f}{row['ort_s']:>15.3f}{row['ratio']:>8.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
