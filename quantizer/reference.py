"""The float reference: the original ONNX model run by onnxruntime."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np

from kcnn.errors import KcnnError, require
from kcnn.inputs import batches


def reference_session(onnx_path):
    """An onnxruntime session of the model at ``onnx_path``, after the importer's checks
    (a readable ONNX graph within the size limits), or a :class:`KcnnError`."""
    ort = require("onnxruntime", "quantize", "running the float ONNX model")
    from kcnn.quantizer.onnx_import import check_limits, load_onnx

    _, model, source = load_onnx(onnx_path)
    check_limits(model, source)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own exception types
        message = " ".join(str(exc).split())
        raise KcnnError(f"onnxruntime cannot run this model: {message}", file=source) from exc


def _dims(shape) -> list:
    return [d if isinstance(d, int) and d > 0 else None for d in shape]


def check_reference(onnx_path, model):
    """The session of ``model``'s float ONNX model: its input must take the `.kcnn`'s input
    shape and its output the same number of classes; a file other than the one the `.kcnn`
    was quantized from (SHA-256) only warns, since a re-exported model may be the same."""
    sess = reference_session(onnx_path)
    feed, out = sess.get_inputs()[0], sess.get_outputs()[0]
    want = list(model.input_shape)
    have = _dims(feed.shape)[1:]
    if len(have) != len(want) or any(
        h is not None and h != w for h, w in zip(have, want, strict=True)
    ):
        raise KcnnError(
            f"its input {feed.name!r} has shape {feed.shape}, the .kcnn takes (N, "
            f"{', '.join(map(str, want))})",
            file=onnx_path,
            field="graph.input",
        )
    classes = model.layers[-1].out_shape
    have_out = _dims(out.shape)[1:]
    if have_out and have_out[-1] is not None and (have_out[-1],) != tuple(classes[-1:]):
        raise KcnnError(
            f"its output {out.name!r} has shape {out.shape}, the .kcnn gives {classes[-1]} classes",
            file=onnx_path,
            field="graph.output",
        )
    stored = model.meta.get("source_sha256")
    if isinstance(onnx_path, (str, Path)) and stored:
        digest = hashlib.sha256(Path(onnx_path).read_bytes()).hexdigest()
        if digest != stored:
            warnings.warn(
                f"{onnx_path} is not the ONNX file the .kcnn was quantized from (SHA-256 "
                f"{digest[:12]}... differs from the stored {str(stored)[:12]}...); the "
                "float accuracy is of another model",
                RuntimeWarning,
                stacklevel=2,
            )
    return sess


def run_onnx(onnx_path, x: np.ndarray, batch: int = 64, progress=None, session=None, pixels=None):
    """Outputs of the original model on ``x``, in chunks the model accepts.

    Models whose input fixes the batch to 1 (old zoo graphs) run one row at a time.
    ``progress(n)`` is called after each chunk with its size; ``session`` reuses one from
    :func:`check_reference`; ``pixels`` (a :class:`kcnn.model.Pixels`) turns uint8 images
    into the model's float input.
    """
    sess = session if session is not None else reference_session(onnx_path)
    feed = sess.get_inputs()[0]
    step = 1 if feed.shape and feed.shape[0] == 1 else batch
    outs = []
    for _, chunk in batches(x, step):
        try:
            if pixels is not None:
                chunk = pixels.to_float(chunk)
            outs.append(sess.run(None, {feed.name: chunk})[0])
        except Exception as exc:  # onnxruntime raises its own exception types
            message = " ".join(str(exc).split())
            raise KcnnError(f"onnxruntime failed on the inputs: {message}", file=onnx_path) from exc
        if progress is not None:
            progress(len(chunk))
    return np.concatenate(outs).astype(np.float64)
