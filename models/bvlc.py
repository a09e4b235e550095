"""Build an AlexNet-sized ONNX test model with seeded, Deep-Compression-pruned weights.

The onnx package ships the BVLC AlexNet graph as "light" backend test data: the real
topology of the old model zoo, but every weight is a ``ConstantOfShape`` fill, so no
real weights have to be downloaded. This module swaps those fills for seeded random
weights pruned to the per-layer densities Deep Compression reports for AlexNet
(Han et al., 2016), which gives the quantizer a full-size model (about 244 MB) with a
realistic sparsity pattern. The result is never committed; build it when needed::

    python -m kcnn.models.bvlc OUT.onnx [--seed N]
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import sys
import time

import numpy as np

from kcnn.errors import KcnnError, require

#: Fraction of weights Deep Compression keeps in each AlexNet layer (biases are not pruned).
DC_DENSITIES = {
    "conv1": 0.84,
    "conv2": 0.38,
    "conv3": 0.35,
    "conv4": 0.37,
    "conv5": 0.37,
    "fc6": 0.09,
    "fc7": 0.09,
    "fc8": 0.25,
}

_LIGHT_MODEL = ("backend", "test", "data", "light", "light_bvlc_alexnet.onnx")
_PURPOSE = "building the BVLC AlexNet test model"
# Small enough that biases never dominate the He-scaled pre-activations, so LRN and ReLU
# see the same kind of signal as with trained weights.
_BIAS_STD = 0.01


def kept_count(density: float, size: int) -> int:
    """Number of weights a layer keeps at ``density``.

    Parameters
    ----------
    density : float
        Fraction of weights to keep, in [0, 1].
    size : int
        Number of weights in the layer.

    Returns
    -------
    int
        ``density * size`` rounded half up (Python's ``round`` rounds half to even,
        which would make the count depend on the parity of the neighbour).
    """
    return min(size, max(0, math.floor(density * size + 0.5)))


def prune_to_density(w: np.ndarray, density: float) -> np.ndarray:
    """Zero all but the largest-magnitude weights, keeping exactly ``kept_count`` of them.

    Parameters
    ----------
    w : numpy.ndarray
        Weights of one layer, any shape.
    density : float
        Fraction of weights to keep.

    Returns
    -------
    numpy.ndarray
        A pruned copy of ``w``. Among weights of equal magnitude at the threshold, those
        with the lowest flat (C-order) index are kept, so the result never depends on
        the sorting algorithm.
    """
    flat = np.array(w, copy=True).reshape(-1)
    keep_n = kept_count(density, flat.size)
    if keep_n == flat.size:
        return flat.reshape(w.shape)
    if keep_n == 0:
        return np.zeros_like(w)
    mag = np.abs(flat)
    # A partition finds the threshold in linear time; a full sort of fc6 (38 M weights)
    # would dominate the build time.
    threshold = np.partition(mag, flat.size - keep_n)[flat.size - keep_n]
    keep = mag > threshold
    ties = np.flatnonzero(mag == threshold)
    keep[ties[: keep_n - int(keep.sum())]] = True
    flat[~keep] = 0
    return flat.reshape(w.shape)


def light_model_path() -> pathlib.Path:
    """Path of the BVLC AlexNet graph shipped with the installed onnx package.

    Returns
    -------
    pathlib.Path
        ``<onnx>/backend/test/data/light/light_bvlc_alexnet.onnx``.

    Raises
    ------
    KcnnError
        If onnx is missing or this onnx build does not ship its backend test data.
    """
    onnx = require("onnx", "quantize", _PURPOSE)
    path = pathlib.Path(onnx.__file__).parent.joinpath(*_LIGHT_MODEL)
    if not path.is_file():
        raise KcnnError(
            f"onnx {onnx.__version__} does not ship its backend test data; "
            "install a full onnx wheel (pip install 'kcnn[quantize]')",
            file=path,
        )
    return path


def fan_in(op_type: str, shape, trans_b: bool) -> int:
    """Inputs per output of a conv or Gemm weight of ``shape``: conv weights are
    [out, in/group, kh, kw] (or a Gemm weight stored 4-D), Gemm weights [out, in] when
    ``transB`` is set and [in, out] otherwise."""
    if op_type == "Gemm" and len(shape) == 2:
        return shape[1] if trans_b else shape[0]
    return int(np.prod(shape[1:]))


#: The census's kept-weight fractions for every model-zoo graph it seeds by op (BVLC
#: AlexNet itself takes Deep Compression's per-layer densities above).
ZOO_DENSITIES = {"Conv": 0.4, "Gemm": 0.1}


def seeded_parameter(
    rng: np.random.Generator, op_type: str, slot: int, shape, trans_b: bool
) -> np.ndarray:
    """Seeded values for input ``slot`` of an ``op_type`` node of a model-zoo graph, in
    the shape that node sees (``bench/architectures.py`` and ``tools/zoo_graphs.py``).

    Conv and Gemm weights are He-normal, magnitude-pruned to :data:`ZOO_DENSITIES`;
    BatchNorm scales and variances and the factors of a Caffe "Scale" layer (a ``Mul``) are
    near 1, so that deep stacks neither vanish nor blow up; every other parameter is small
    and normal. They test what the quantizer and the kernel accept, not accuracy.
    """
    if op_type in ZOO_DENSITIES and slot == 1:
        std = np.sqrt(2.0 / fan_in(op_type, shape, trans_b))
        w = rng.standard_normal(shape) * std
        return prune_to_density(w.astype(np.float32), ZOO_DENSITIES[op_type])
    if (op_type == "BatchNormalization" and slot in (1, 4)) or op_type == "Mul":
        return (1.0 + 0.1 * np.abs(rng.standard_normal(shape))).astype(np.float32)
    return (0.05 * rng.standard_normal(shape)).astype(np.float32)


def _replace_fills(model, rng: np.random.Generator, src: pathlib.Path) -> dict[str, str]:
    """Swap each ``ConstantOfShape`` fill for a seeded initializer; return {shape: tensor}."""
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    fills = {n.output[0]: n for n in graph.node if n.op_type == "ConstantOfShape"}
    renamed = {}
    # Graph order fixes the order of the RNG draws, hence the bytes of the file.
    for node in graph.node:
        for slot, name in enumerate(node.input):
            if name not in fills or slot == 0:
                continue
            fill = fills[name]
            shape = tuple(int(d) for d in numpy_helper.to_array(inits[fill.input[0]]))
            if slot == 1:
                layer = name.split("_")[0]
                if layer not in DC_DENSITIES:
                    raise KcnnError(
                        "unexpected weight tensor: no Deep Compression density for its layer",
                        file=src,
                        layer=node.name,
                        field=name,
                    )
                trans_b = any(a.name == "transB" and a.i for a in node.attribute)
                std = math.sqrt(2.0 / fan_in(node.op_type, shape, trans_b))
                w = rng.standard_normal(shape, dtype=np.float32) * np.float32(std)
                w = prune_to_density(w, DC_DENSITIES[layer])
            else:
                w = rng.standard_normal(shape, dtype=np.float32) * np.float32(_BIAS_STD)
            renamed[fill.input[0]] = name
            inits[fill.input[0]].CopyFrom(numpy_helper.from_array(w, name))
    if set(renamed.values()) != set(fills):
        raise KcnnError("a ConstantOfShape fill is not a Conv/Gemm weight or bias", file=src)
    return renamed


def _rebuild(src: pathlib.Path, seed: int):
    onnx = require("onnx", "quantize", _PURPOSE)
    from onnx import helper

    model = onnx.load(str(src))
    graph = model.graph
    rng = np.random.default_rng(seed)
    renamed = _replace_fills(model, rng, src)

    kept_nodes = [n for n in graph.node if n.op_type != "ConstantOfShape"]
    del graph.node[:]
    graph.node.extend(kept_nodes)

    # Old zoo models list every initializer as a graph input too; keep that quirk, with
    # each weight taking the slot its shape tensor had.
    types = {t.name: t for t in graph.initializer}
    inputs = []
    for vi in graph.input:
        name = renamed.get(vi.name, vi.name)
        if name in types:
            t = types[name]
            inputs.append(helper.make_tensor_value_info(name, t.data_type, list(t.dims)))
        else:
            inputs.append(vi)
    del graph.input[:]
    graph.input.extend(inputs)
    model.doc_string = (
        f"BVLC AlexNet topology from onnx's light backend test data with seeded (seed={seed}) "
        "He-normal weights, magnitude-pruned to Deep Compression's per-layer densities."
    )
    return model


def _check(path: pathlib.Path, seed: int) -> tuple[float, float]:
    """Validate the written file; return seconds to load it in onnxruntime and to run it."""
    onnx = require("onnx", "quantize", _PURPOSE)
    ort = require("onnxruntime", "quantize", _PURPOSE)
    onnx.checker.check_model(str(path))

    options = ort.SessionOptions()
    # Initializers that are also graph inputs make onnxruntime warn once per tensor.
    options.log_severity_level = 3
    t0 = time.perf_counter()
    sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    # A stream separate from the weights' one, so the check never changes the model.
    x = np.random.default_rng([seed, 1]).standard_normal((1, 3, 224, 224), dtype=np.float32)
    t1 = time.perf_counter()
    (prob,) = sess.run(None, {inp.name: x})
    t2 = time.perf_counter()
    if (
        prob.shape != (1, 1000)
        or not np.all(np.isfinite(prob))
        or prob.min() < 0
        or abs(float(prob.sum()) - 1.0) > 1e-4
    ):
        raise KcnnError(
            f"output is not a probability vector (shape {prob.shape}, sum {prob.sum()})",
            file=path,
        )
    return t1 - t0, t2 - t1


def build_bvlc_alexnet(path, *, seed: int = 0) -> pathlib.Path:
    """Write the AlexNet-sized test model.

    Parameters
    ----------
    path : str or os.PathLike
        Destination ``.onnx`` file; its folder must exist. Written to a temporary file
        in that folder, checked, then renamed over ``path``, so ``path`` never holds a
        partial or unchecked model.
    seed : int, optional
        Seed of ``numpy.random.default_rng``; the same seed gives a byte-identical file
        (with the same numpy and onnx versions: the graph comes from the onnx package).

    Returns
    -------
    pathlib.Path
        ``path``.

    Notes
    -----
    The graph keeps the old model-zoo form the importer must accept: IR 3, opset 9, input
    ``data_0`` fixed to ``[1, 3, 224, 224]``, every initializer also listed as a graph
    input, grouped conv2/4/5, two LRNs, pool5 with pads ``[0, 0, 1, 1]``, the Reshape
    before fc6, Gemm with ``transB=1``, Dropout and a final Softmax. Only the
    ``ConstantOfShape`` fills and their shape tensors are replaced. Weights are He-normal
    (std ``sqrt(2 / fan_in)``), then pruned to :data:`DC_DENSITIES` by magnitude; biases
    are normal with std 0.01. The model is checked with ``onnx.checker`` and run once in
    onnxruntime; timings and size are printed.
    """
    t0 = time.perf_counter()
    path = pathlib.Path(path)
    if not path.parent.is_dir():
        raise KcnnError("the output folder does not exist", file=path)
    src = light_model_path()
    model = _rebuild(src, seed)
    data = model.SerializeToString()
    del model

    # Same folder so os.replace stays a rename on one file system; opened with "xb"
    # rather than mkstemp so the file gets the usual umask permissions, not 0600.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # Opened before the try, so a clash with an existing file never deletes that file.
    f = open(tmp, "xb")
    try:
        with f:
            f.write(data)
        del data
        load_s, run_s = _check(tmp, seed)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    size = path.stat().st_size
    print(
        f"onnxruntime: session created in {load_s:.2f} s, "
        f"one 1x3x224x224 inference took {run_s:.3f} s"
    )
    print(
        f"built {path} in {time.perf_counter() - t0:.1f} s: {size} bytes ({size / 2**20:.1f} MiB)"
    )
    return path


#: BVLC AlexNet's input: Caffe's images, pixel values 0..255 minus the mean pixel (its BGR
#: means 104, 117 and 123, one value here for the grey digits). The model is quantized with
#: pixel input, ``quantize(..., pixels=PIXELS)`` or ``kcnn quantize --pixels 117/1``: it
#: takes the uint8 images and the first conv encodes them (docs/quantizer.md).
PIXELS = "117/1"


def calibration_images(n: int = 8) -> np.ndarray:
    """``n`` calibration images for the BVLC graph, uint8 ``(n, 3, 224, 224)`` (pixel input,
    :data:`PIXELS`).

    There is no ImageNet here: real MNIST train digits, scaled 8x to 224x224 and copied to
    three channels; after the mean is subtracted the input map is signed.
    """
    from kcnn.models import calibration_digits

    digits = np.rint(calibration_digits(n)[:, 0] * 255.0).astype(np.uint8)
    big = np.repeat(np.repeat(digits, 8, axis=1), 8, axis=2)
    return np.repeat(big[:, None], 3, axis=1)


def main(argv=None) -> int:
    """Command line: ``python -m kcnn.models.bvlc OUT.onnx [--seed N]``."""
    parser = argparse.ArgumentParser(
        prog="python -m kcnn.models.bvlc",
        description="Build the BVLC AlexNet test model (about 244 MB) with seeded, "
        "Deep-Compression-pruned weights.",
    )
    parser.add_argument("out", type=pathlib.Path, help="output .onnx file")
    parser.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    args = parser.parse_args(argv)
    try:
        build_bvlc_alexnet(args.out, seed=args.seed)
    except KcnnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
