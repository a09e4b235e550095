"""The ``kcnn`` command line: a thin layer over the Python API.

``--json`` prints exactly one JSON object on stdout; tables and notices go to stderr.
User errors print one line and exit 1; an unexpected exception is a bug in kcnn and prints
one line saying so and exits 3 (``--debug`` shows the traceback of either). Every output
is checked before the work starts and written all or none (:mod:`kcnn.files`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

from kcnn.errors import KcnnError
from kcnn.files import STDOUT, check_outputs, write_outputs
from kcnn.inputs import DEFAULT_BATCH

#: Exit status of an unexpected exception (a bug); user errors exit 1, usage errors 2.
EXIT_BUG = 3


def _json_writer(obj):
    text = json.dumps(obj, indent=1) + "\n"
    return lambda handle: handle.write(text.encode())


def _outputs(args, inputs: dict, **outputs):
    """Check the command's outputs (``--json-out`` included) against its inputs, up front."""
    outputs["json_out"] = getattr(args, "json_out", None)
    planned = check_outputs(outputs, inputs)
    if getattr(args, "json", False) and any(o.path == STDOUT for o in planned.values()):
        raise KcnnError("--json prints on standard output, so no output may be '-'", field="json")
    return planned


def _finish(args, planned: dict, writers: dict, obj: dict | None) -> None:
    """Write every output at once, then print the JSON object (``--json``)."""
    if obj is not None and "json_out" in planned:
        writers["json_out"] = _json_writer(obj)
    write_outputs([(planned[name], writers[name]) for name in planned])
    if obj is not None and args.json:
        json.dump(obj, sys.stdout)
        sys.stdout.write("\n")


def _print_report(report: dict) -> None:
    from kcnn.report import format_report

    print(format_report(report), file=sys.stderr)


def _quantize_options(args) -> dict:
    options = {"kmeans": args.kmeans, "seed": args.seed}
    for key in ("weight_clusters", "act_clusters", "density", "pixels"):
        value = getattr(args, key)
        if value is not None:
            options[key] = value
    return options


def cmd_quantize(args) -> None:
    from kcnn.kfile import writer
    from kcnn.quantizer import quantize
    from kcnn.report import build_report

    planned = _outputs(args, {"model": args.model, "calib": args.calib}, output=args.output)
    model = quantize(args.model, args.calib, **_quantize_options(args))
    report = build_report(model)
    _print_report(report)
    _finish(args, planned, {"output": writer(model)}, report)
    print(f"kcnn quantize: wrote {args.output}", file=sys.stderr)


def cmd_report(args) -> None:
    from kcnn.kfile import load
    from kcnn.report import build_report

    planned = _outputs(args, {"kcnn": args.kcnn, "input": args.input})
    model = load(args.kcnn)
    if args.input:
        from kcnn.inputs import check_batch
        from kcnn.sim.counts import measure

        x = check_batch(
            _load_array(args.input),
            model.input_shape,
            pixels=model.pixels is not None,
            source=args.input,
        )
        model.meta["calibration"] = measure(model, x, args.batch_size)
    report = build_report(model)
    if args.estimate:
        from kcnn.estimate import estimate, format_estimate

        params, source, overlay = None, "", None
        if args.overlay:
            from kcnn.overlay import find_overlay, format_measured, read_overlay_config

            files = find_overlay(args.overlay)
            overlay = read_overlay_config(files.json)
            params = overlay["params"]
            source = f"the overlay's {files.json}"
        report["estimate"] = estimate(model, params, source=source)
        print(format_estimate(report["estimate"]), file=sys.stderr)
        if overlay is not None:
            print(format_measured(overlay, report["estimate"]["resources"]), file=sys.stderr)
            report["overlay"] = {k: overlay.get(k) for k in ("timing", "utilization")}
    _print_report(report)
    _finish(args, planned, {}, report)


def _load_array(path, field="input"):
    """A `.npy` array; a regular file is read a batch at a time when it is used
    (:class:`kcnn.inputs.NpyRows`), so a large input costs no memory up front."""
    import numpy as np

    from kcnn.inputs import NpyRows

    try:
        if Path(path).is_file() and not zipfile.is_zipfile(path):
            try:
                return NpyRows(path)
            except ValueError:
                pass  # Fortran order or no batch dimension: loaded whole and checked
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise KcnnError(f"cannot read a .npy array: {exc}", file=path, field=field) from exc
    if not isinstance(array, np.ndarray):
        raise KcnnError("is an .npz archive; a .npy array is expected", file=path, field=field)
    return array


def _stored_rows(path, member):
    """``member`` of an `.npz` read in batches where it is stored uncompressed (as
    ``np.savez`` writes it), else None."""
    from kcnn.inputs import NpyRows

    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        local = handle.read(30)  # the local header's name and extra lengths may differ
    start = info.header_offset + 30 + int.from_bytes(local[26:28], "little")
    try:
        return NpyRows(path, start + int.from_bytes(local[28:30], "little"))
    except ValueError:
        return None


def _load_dataset(path):
    import numpy as np

    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise KcnnError(f"cannot read a .npz dataset: {exc}", file=path) from exc
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise KcnnError(
            "is a single .npy array; a .npz with arrays 'x' (inputs) and 'y' (labels) is "
            "expected (np.savez(path, x=x, y=y))",
            file=path,
        )
    try:
        with data:
            if "x" not in data or "y" not in data:
                raise KcnnError(
                    f"needs arrays 'x' and 'y', has {sorted(data.files)}", file=path, field="x/y"
                )
            x = _stored_rows(path, "x.npy")
            x, y = (data["x"] if x is None else x), data["y"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise KcnnError(f"cannot read a .npz dataset: {exc}", file=path) from exc
    if not np.issubdtype(y.dtype, np.integer) or y.shape != (len(x),):
        raise KcnnError(
            f"labels must be integers of shape ({len(x)},), got {y.dtype} {y.shape}",
            file=path,
            field="y",
        )
    return x, y


def _backend_note(acc) -> None:
    print(f"kcnn: backend {acc.backend} ({acc.reason})", file=sys.stderr)


def _npy_writer(array):
    import numpy as np

    return lambda handle: np.save(handle, array, allow_pickle=False)


def cmd_run(args) -> None:
    import numpy as np

    from kcnn.accelerator import Accelerator

    planned = _outputs(args, {"kcnn": args.kcnn, "input": args.input}, output=args.output)
    x = _load_array(args.input)
    with Accelerator(args.kcnn, backend=args.backend, batch_size=args.batch_size) as acc:
        _backend_note(acc)
        out = acc.run(acc.check_input(x, source=args.input), logits=args.logits)
    if args.output:
        _finish(args, planned, {"output": _npy_writer(out.astype(np.float64))}, None)
        print(f"kcnn run: wrote {args.output} {out.shape}", file=sys.stderr)
        return
    for index, row in enumerate(out):
        label = int(np.argmax(row))
        print(f"{index}\t{label}\t{row[label]:.6g}")


def evaluate(
    kcnn_path, onnx_path, x, y, backend="auto", counts=False, batch=DEFAULT_BATCH, source=None
) -> dict:
    """Float vs KCNN accuracy on labelled data (the body of ``kcnn eval``), in batches;
    ``source`` names where ``x`` came from in errors."""
    import numpy as np
    from tqdm import tqdm

    from kcnn.accelerator import Accelerator
    from kcnn.quantizer.reference import check_reference, run_onnx

    with Accelerator(kcnn_path, backend=backend, batch_size=batch) as acc:
        _backend_note(acc)
        x = acc.check_input(x, source=source)
        sess = check_reference(onnx_path, acc.model)
        with tqdm(total=2 * len(x), desc="kcnn eval", file=sys.stderr, unit="img") as bar:
            reference = run_onnx(
                onnx_path, x, batch, bar.update, session=sess, pixels=acc.model.pixels
            )
            labels = []
            for start in range(0, len(x), batch):
                chunk = x[start : start + batch]
                labels.append(acc.predict(chunk))
                bar.update(len(chunk))
        ours = np.concatenate(labels)
        float_labels = reference.argmax(axis=1)
        result = {
            "n": int(len(x)),
            "float_accuracy": float(np.mean(float_labels == y)),
            "kcnn_accuracy": float(np.mean(ours == y)),
            "agreement": float(np.mean(ours == float_labels)),
            "backend": acc.backend,
        }
        if counts:
            from kcnn.report import build_report
            from kcnn.sim.counts import measure

            acc.model.meta["calibration"] = measure(acc.model, x, batch)
            result["totals"] = build_report(acc.model)["totals"]
    return result


def _accuracy_line(result) -> str:
    return (
        f"on {result['n']} inputs: float top-1 {100 * result['float_accuracy']:.2f}%, "
        f"KCNN ({result['backend']}) top-1 {100 * result['kcnn_accuracy']:.2f}%, "
        f"agreement {100 * result['agreement']:.2f}%"
    )


def cmd_eval(args) -> None:
    planned = _outputs(args, {"kcnn": args.kcnn, "onnx": args.onnx, "data": args.data})
    x, y = _load_dataset(args.data)
    result = evaluate(
        args.kcnn, args.onnx, x, y, args.backend, args.counts, args.batch_size, source=args.data
    )
    print(_accuracy_line(result), file=sys.stderr)
    _finish(args, planned, {}, result)


def cmd_demo(args) -> None:
    from kcnn import models
    from kcnn.quantizer import quantize
    from kcnn.report import build_report, format_report

    planned = _outputs(args, {})
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
        x, y = models.digits("test")
        result = evaluate(path, models.model_path(name), x, y, backend="sim")
    from kcnn.estimate import estimate, format_estimate

    report = build_report(model)
    report["estimate"] = estimate(model)
    print(format_report(report), file=sys.stderr)
    print(format_estimate(report["estimate"]), file=sys.stderr)
    print(_accuracy_line(result), file=sys.stderr)
    _finish(args, planned, {}, {"report": report, "accuracy": result})


def _json_flags(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--json-out", metavar="PATH", help="also write the JSON to PATH")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def _batch_flag(parser) -> None:
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=DEFAULT_BATCH,
        metavar="N",
        help=f"inputs run at a time; memory stays flat in the number of inputs "
        f"(default {DEFAULT_BATCH})",
    )


def build_parser() -> argparse.ArgumentParser:
    from kcnn import __version__

    parser = argparse.ArgumentParser(prog="kcnn", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"kcnn {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quantize", help="ONNX model -> clustered tables (.kcnn)")
    q.add_argument("model", help="ONNX model")
    q.add_argument(
        "--calib", required=True, help="calibration inputs, float32 (N, ...) .npy (uint8: --pixels)"
    )
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
        "--pixels",
        metavar="MEAN[,..]/STD[,..]",
        help="the model takes uint8 images p, its input is (p - MEAN) / STD per channel "
        "(e.g. 0/255, or Caffe's 104,117,123/1); --calib then holds uint8 images",
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
    r.add_argument("--input", metavar="X.npy", help="count exactly on these inputs (simulator)")
    r.add_argument("--estimate", action="store_true", help="add the estimated board performance")
    r.add_argument(
        "--overlay",
        metavar="DIR",
        help="take the estimate's build parameters from this overlay's kcnn.json",
    )
    _batch_flag(r)
    _json_flags(r)
    r.set_defaults(run=cmd_report)

    backends = ("auto", "sim", "csim", "board")
    u = sub.add_parser("run", help="run inputs through a .kcnn")
    u.add_argument("kcnn", help="a .kcnn file")
    u.add_argument("input", help="inputs, float32 (N, ...) .npy")
    u.add_argument("-o", "--output", help="write the outputs (N, classes) float64 .npy")
    u.add_argument("--logits", action="store_true", help="logits instead of the model output")
    u.add_argument("--backend", default="auto", choices=backends)
    _batch_flag(u)
    u.set_defaults(run=cmd_run)

    e = sub.add_parser("eval", help="accuracy of a .kcnn against its float ONNX model")
    e.add_argument("kcnn", help="a .kcnn file")
    e.add_argument("--onnx", required=True, help="the float ONNX model")
    e.add_argument("--data", required=True, help=".npz with inputs x and integer labels y")
    e.add_argument("--backend", default="auto", choices=backends)
    e.add_argument("--counts", action="store_true", help="also count exactly (simulator)")
    _batch_flag(e)
    _json_flags(e)
    e.set_defaults(run=cmd_eval)

    d = sub.add_parser(
        "demo", help="quantize the bundled AlexNet-style model, evaluate it and report"
    )
    _json_flags(d)
    d.set_defaults(run=cmd_demo)
    return parser


def _one_line_warning(message, category, filename, lineno, line=None):
    return f"kcnn: warning: {message}\n"


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.formatwarning = _one_line_warning
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
    except BrokenPipeError:
        # The reader of stdout went away (``kcnn run ... | head``): nothing left to say.
        sys.stderr.close()
        return 1
    except MemoryError:
        if args.debug:
            raise
        print(
            f"kcnn {args.command}: error: out of memory; try a smaller --batch-size",
            file=sys.stderr,
        )
        return 1
    except Exception as exc:
        if args.debug:
            raise
        text = " ".join(str(exc).split()) or "no message"
        print(
            f"kcnn {args.command}: internal error, a bug in kcnn ({type(exc).__name__}: "
            f"{text[:300]}); please report it with the output of --debug",
            file=sys.stderr,
        )
        return EXIT_BUG
    return 0


if __name__ == "__main__":
    sys.exit(main())
