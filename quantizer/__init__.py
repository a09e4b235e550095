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
from kcnn.inputs import check_batch
from kcnn.model import Model, Pixels

__all__ = ["quantize", "load_calibration"]


def load_calibration(calib, input_shape, source="calibration data", pixels=None) -> np.ndarray:
    """Calibration inputs as float32 ``(N, *input_shape)``, from an array or a `.npy` path
    (uint8 images turned into the model's float input for a model with ``pixels``)."""
    if isinstance(calib, (str, Path)):
        source = str(calib)
        try:
            calib = np.load(calib, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise KcnnError(f"cannot read a .npy array: {exc}", file=source) from exc
    calib = check_batch(
        calib, input_shape, pixels=pixels is not None, source=source, field="calibration"
    )
    if pixels is not None:
        return pixels.to_float(np.asarray(calib))
    return np.asarray(calib, dtype=np.float32)


def _source_digest(onnx_path) -> str:
    if isinstance(onnx_path, (str, Path)):
        digest = hashlib.sha256()
        with open(onnx_path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    return hashlib.sha256(onnx_path.SerializeToString()).hexdigest()


def quantize(onnx_path, calib, *, log=sys.stderr, name=None, **config) -> Model:
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
    Model
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
    from kcnn.quantizer.passes import robust_range

    pixels = None
    if settings.pixels is not None:
        pixels = Pixels.make(settings.pixels["mean"], settings.pixels["std"], graph.input_shape)
    calib = load_calibration(calib, graph.input_shape, pixels=pixels)
    # Outliers in the inputs are clipped before anything else reads them: the pruning
    # search and every downstream map then see the robust range too.
    clip = robust_range(calib, "the calibration inputs")
    if clip is not None:
        calib = np.clip(calib, -clip, clip)
    run = Run(graph, calib, settings, log=log)
    if clip is not None:
        run.clipped["input"] = clip
    for step in (prune_weights, cluster_weights, calibrate_activations):
        run.say(f"kcnn quantize: {step.__name__.replace('_', ' ')}")
        step(run)
    model = build_tables(run)
    model.pixels = pixels
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
    if run.clipped:  # absent where the outlier test never fired: those files stay the same
        model.meta["calibration"]["clipped"] = {k: float(v) for k, v in run.clipped.items()}
    return model
