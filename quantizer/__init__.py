"""The quantizer: ONNX model in, clustered tables (`.kcnn`) out.

``quantize`` runs the import, the lowering passes and the quantizer passes in order.
Needs the ``quantize`` extra (onnx, onnxruntime; scikit-learn for the reference k-means).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

from kcnn import __version__
from kcnn.errors import KcnnError
from kcnn.kfile import KcnnModel

__all__ = ["quantize", "load_calibration"]


def load_calibration(calib, input_shape, source="calibration data") -> np.ndarray:
    """Calibration inputs as float32 ``(N, *input_shape)``, from an array or a `.npy` path."""
    if isinstance(calib, (str, Path)):
        source = str(calib)
        try:
            calib = np.load(calib, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise KcnnError(f"cannot read a .npy array: {exc}", file=source) from exc
    calib = np.asarray(calib)
    if calib.ndim != len(input_shape) + 1 or tuple(calib.shape[1:]) != tuple(input_shape):
        raise KcnnError(
            f"shape {calib.shape} does not match (N, {', '.join(map(str, input_shape))})"
            " for this model",
            file=source,
            field="shape",
        )
    if calib.shape[0] == 0:
        raise KcnnError("no calibration inputs", file=source, field="shape")
    if not np.issubdtype(calib.dtype, np.floating):
        raise KcnnError(
            f"dtype {calib.dtype} is not a float type (float32 expected)",
            file=source,
            field="dtype",
        )
    calib = calib.astype(np.float32)
    if not np.all(np.isfinite(calib)):
        raise KcnnError("contains NaN or infinite values", file=source, field="values")
    return calib


def _source_digest(onnx_path) -> str:
    if isinstance(onnx_path, (str, Path)):
        digest = hashlib.sha256()
        with open(onnx_path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    return hashlib.sha256(onnx_path.SerializeToString()).hexdigest()


def quantize(onnx_path, calib, *, log=sys.stderr, name=None, **config) -> KcnnModel:
    """Quantize an ONNX CNN into clustered integer tables.

    Parameters
    ----------
    onnx_path
        Path of the ONNX model (or an ``onnx.ModelProto``).
    calib
        Calibration inputs, float32 ``(N, *input_shape)`` (array or `.npy` path).
    log
        Stream for progress notes (``None`` for silence).
    **config
        Options of :class:`kcnn.quantizer.config.QuantizeConfig`.

    Returns
    -------
    KcnnModel
        The model; ``.save(path)`` writes the `.kcnn` and :func:`kcnn.report.build_report`
        gives its report.
    """
    from kcnn.quantizer.config import QuantizeConfig
    from kcnn.quantizer.lowering import lower
    from kcnn.quantizer.onnx_import import import_onnx
    from kcnn.quantizer.passes import (
        Run,
        build_tables,
        calibrate_activations,
        cluster_weights,
        prune_weights,
    )

    settings = QuantizeConfig.from_options(**config)
    graph = lower(import_onnx(onnx_path, name=name))
    settings.check_names(layer.name for layer in graph.layers)
    run = Run(graph, load_calibration(calib, graph.input_shape), settings, log=log)
    for step in (prune_weights, cluster_weights, calibrate_activations):
        run.say(f"kcnn quantize: {step.__name__.replace('_', ' ')}")
        step(run)
    model = build_tables(run)
    model.meta = {
        "source_sha256": _source_digest(onnx_path),
        "kcnn_version": __version__,
        "config": settings.to_json(),
        "densities": run.densities,
        "sensitivity": {k: v for k, v in run.sensitivity.items()},
        "calibration": {
            "images": int(len(run.calib)),
            "counts_from": "float-cut",
            "layers": run.counts,
        },
    }
    return model
