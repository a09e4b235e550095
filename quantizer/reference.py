"""The float reference: the original ONNX model run by onnxruntime."""

from __future__ import annotations

import numpy as np

from kcnn.errors import require


def run_onnx(onnx_path, x: np.ndarray, batch: int = 64, progress=None) -> np.ndarray:
    """Outputs of the original model on ``x``, in chunks the model accepts.

    Models whose input fixes the batch to 1 (old zoo graphs) run one row at a time.
    ``progress(n)`` is called after each chunk with its size.
    """
    ort = require("onnxruntime", "quantize", "running the float ONNX model")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    sess = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    feed = sess.get_inputs()[0]
    step = 1 if feed.shape and feed.shape[0] == 1 else batch
    outs = []
    for start in range(0, len(x), step):
        chunk = x[start : start + step].astype(np.float32)
        outs.append(sess.run(None, {feed.name: chunk})[0])
        if progress is not None:
            progress(len(chunk))
    return np.concatenate(outs).astype(np.float64)
