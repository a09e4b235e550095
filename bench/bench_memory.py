"""Peak memory of `kcnn` commands against the number of inputs, and on files that declare
far more than they hold.

    python bench/bench_memory.py [--n 1000,5000,20000,50000] [--batch-size 256]
                                 [--limit-mb 8192] [--json PATH]

Each measurement is one `kcnn` process (the CLI's ``main`` in a fresh interpreter); its
peak resident set (VmHWM) is read when it ends, so imports and the loaded model
are included. Rows:
  - ``run N``: `kcnn run` of the bundled LeNet on N test digits (the 1,000 test digits
    tiled), outputs written with ``-o``;
  - ``eval N``: `kcnn eval` (onnxruntime reference and simulator) on the same digits;
  - the refused files of issue 13 (a 2 GiB zip member, a 120 x 5e6 layer, 1 GiB of
    manifest padding, an ONNX ConstantOfShape of 4e9 values): peak before the refusal.
To measure another kcnn (an older release), put it first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so a child would report its
# parent's peak; the high-water mark of the address space starts anew.
CHILD = """
import resource, sys
limit = int(sys.argv.pop(1)) << 20
if limit:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from kcnn.cli import main
try:
    code = main(sys.argv[1:])
except BaseException as exc:
    code = f"{type(exc).__name__}"
peak = next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(f"PEAK {peak} EXIT {code}", file=sys.stderr)
"""


def peak(folder: Path, limit_mb: int, *args) -> tuple[float, str]:
    """Peak resident MiB of ``kcnn ARGS`` run in ``folder`` (address space limited to
    ``limit_mb`` unless 0), and how it ended."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(limit_mb), *map(str, args)],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    line = [x for x in done.stderr.splitlines() if x.startswith("PEAK ")]
    if not line:
        return float("nan"), f"died ({done.returncode})"
    _, kib, _, code = line[-1].split(maxsplit=3)
    return int(kib) / 1024, f"exit {code}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="1000,5000,20000,50000")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--limit-mb",
        type=int,
        default=8192,
        help="RLIMIT_AS of each kcnn process, so that an unbounded one fails instead of "
        "swapping (0: none)",
    )
    args = parser.parse_args(argv)
    import bad_inputs

    from kcnn import models

    rows = []
    extra = ["--batch-size", str(args.batch_size)] if args.batch_size else []
    with tempfile.TemporaryDirectory() as root:
        folder = Path(root)
        bad_inputs.prepare(folder)
        digits, labels = models.digits("test")
        for n in (int(v) for v in args.n.split(",")):
            reps = -(-n // len(digits))
            x = np.tile(digits, (reps, 1, 1, 1))[:n]
            np.save(folder / "many.npy", x)
            np.savez(folder / "many.npz", x=x, y=np.tile(labels, reps)[:n])
            for name, command in (
                ("run", ["run", "m.kcnn", "many.npy", "-o", "out.npy", "--backend", "sim"]),
                ("eval", ["eval", "m.kcnn", "--onnx", "m.onnx", "--data", "many.npz"]),
            ):
                mib, end = peak(folder, args.limit_mb, *command, *extra)
                rows.append({"what": f"{name} N={n}", "peak_mib": mib, "end": end})
                print(f"{name:<5} N={n:<7} {mib:9.1f} MiB  {end}", flush=True)
            os.remove(folder / "many.npy")
        refused = (
            ("2 GiB zip member", bad_inputs.zip_bomb, ["report", "bad.kcnn"]),
            ("120 x 5e6 layer", bad_inputs.huge_layer, ["report", "bad.kcnn"]),
            ("1 GiB manifest padding", bad_inputs.padded_manifest, ["report", "bad.kcnn"]),
            (
                "ConstantOfShape 4e9",
                lambda f: bad_inputs.save_onnx(f, bad_inputs.big_constant),
                ["quantize", "bad.onnx", "--calib", "calib.npy", "-o", "q.kcnn"],
            ),
        )
        for what, build, command in refused:
            build(folder)
            mib, end = peak(folder, args.limit_mb, *command)
            rows.append({"what": what, "peak_mib": mib, "end": end})
            print(f"{what:<24} {mib:9.1f} MiB  {end}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
