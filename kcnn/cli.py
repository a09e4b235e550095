"""The ``kcnn`` command line: a thin layer over the Python API.

``--json`` prints exactly one JSON object on stdout; tables and notices go to stderr.
User errors print one line (``--debug`` shows the traceback) and exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from kcnn.errors import KcnnError


def write_json_atomic(path, obj) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(obj, handle, indent=1)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _emit(args, report: dict) -> None:
    from kcnn.report import format_report

    print(format_report(report), file=sys.stderr)
    if args.json_out:
        write_json_atomic(args.json_out, report)
    if args.json:
        json.dump(report, sys.stdout)
        sys.stdout.write("\n")


def _quantize_options(args) -> dict:
    options = {"kmeans": args.kmeans, "seed": args.seed}
    for key in ("weight_clusters", "act_clusters", "density"):
        value = getattr(args, key)
        if value is not None:
            options[key] = value
    return options


def cmd_quantize(args) -> None:
    from kcnn.quantizer import quantize
    from kcnn.report import build_report

    model = quantize(args.model, args.calib, **_quantize_options(args))
    report = build_report(model)
    model.save(args.output)
    print(f"kcnn quantize: wrote {args.output}", file=sys.stderr)
    _emit(args, report)


def cmd_report(args) -> None:
    from kcnn.kfile import load
    from kcnn.report import build_report

    _emit(args, build_report(load(args.kcnn)))


def cmd_demo(args) -> None:
    from kcnn import models
    from kcnn.quantizer import quantize
    from kcnn.report import build_report

    name = "alexnet_mnist"
    print(
        f"kcnn demo: quantizing the bundled {name} on {models.DEFAULT_CALIBRATION} "
        "calibration digits",
        file=sys.stderr,
    )
    model = quantize(models.model_path(name), models.calibration_digits(), name=name)
    with tempfile.TemporaryDirectory() as folder:
        path = model.save(Path(folder) / f"{name}.kcnn")
        print(f"kcnn demo: {path.name} is {path.stat().st_size:,} bytes", file=sys.stderr)
    _emit(args, build_report(model))


def _json_flags(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--json-out", metavar="PATH", help="also write the JSON to PATH")


def build_parser() -> argparse.ArgumentParser:
    from kcnn import __version__

    parser = argparse.ArgumentParser(prog="kcnn", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"kcnn {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quantize", help="ONNX model -> clustered tables (.kcnn)")
    q.add_argument("model", help="ONNX model")
    q.add_argument("--calib", required=True, help="calibration inputs, float32 (N, ...) .npy")
    q.add_argument("-o", "--output", required=True, help="the .kcnn to write")
    q.add_argument(
        "--weight-clusters",
        metavar="K|K,name=K,...",
        help="weight codes per layer, code 0 included (default 16)",
    )
    q.add_argument(
        "--act-clusters",
        metavar="J|J,name=J,...",
        help="input codes per layer, code 0 included (default 16)",
    )
    q.add_argument(
        "--density",
        metavar="auto|FLOAT|name=FLOAT,...",
        help="kept-weight fraction per layer (default auto: sensitivity search)",
    )
    q.add_argument(
        "--kmeans",
        default="dp",
        choices=("dp", "sklearn"),
        help="1-D k-means: exact dynamic programming or scikit-learn's KMeans",
    )
    q.add_argument("--seed", type=int, default=0)
    _json_flags(q)
    q.set_defaults(run=cmd_quantize)

    r = sub.add_parser("report", help="compression and compute report of a .kcnn")
    r.add_argument("kcnn", help="a .kcnn file")
    _json_flags(r)
    r.set_defaults(run=cmd_report)

    d = sub.add_parser("demo", help="quantize the bundled AlexNet-style model and report")
    _json_flags(d)
    d.set_defaults(run=cmd_demo)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except KcnnError as exc:
        if args.debug:
            raise
        print(f"kcnn {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("kcnn: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
