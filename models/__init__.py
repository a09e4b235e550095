"""Reference CNNs and real MNIST digits bundled with KCNN.

Float models trained on real MNIST digits, stored as ONNX, and the 5,000 digits they
were trained on, split once into train, validation and test parts: the two chain models of
:data:`MODELS` and the three branching ones of :data:`GRAPH_MODELS`. Everything here needs
numpy only; ``train.py`` beside this file (which needs torch) regenerates the models.

The test digits serve only the final accuracy tables and acceptance tests: never tune,
calibrate or pick anything with them. Calibrate with :func:`calibration_digits`.

Examples
--------
>>> from kcnn import models
>>> path = models.model_path("lenet5")
>>> x, y = models.digits("val")
>>> x.shape, x.dtype, y.dtype
((1000, 1, 28, 28), dtype('float32'), dtype('int64'))
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import numpy as np

from kcnn.errors import KcnnError

__all__ = [
    "table_path",
    "DEFAULT_CALIBRATION",
    "GRAPH_MODELS",
    "MODELS",
    "SPLITS",
    "calibration_digits",
    "digits",
    "model_path",
]

MODELS = ("lenet5", "alexnet_mnist")
"""Names of the bundled chain models, each stored as ``<name>.onnx`` (and quantized as
``<name>.kcnn``) in this package."""

GRAPH_MODELS = ("resnet_mnist", "mobilenet_mnist", "squeezenet_mnist")
"""Names of the bundled models whose graphs branch, each stored as ``<name>.onnx``.

They are the references of the DAG importer: residual blocks whose Add joins two maps
(``resnet_mnist``), inverted residual blocks with depthwise convs, ReLU6 as ``Clip`` and a
linear bottleneck before the Add (``mobilenet_mnist``), and fire modules whose branches
meet in a ``Concat`` (``squeezenet_mnist``). All three output logits. They are kept out of
:data:`MODELS`, and ship no ``.kcnn`` table, until the importer reads graphs with branches.
"""

SPLITS = ("train", "val", "test")
"""Names of the parts of the digit split, in the order they are usually used."""

DEFAULT_CALIBRATION = 1024
"""How many train digits :func:`calibration_digits` returns by default."""

_DATA_FILE = "mnist.npz"
_REGENERATE = "python -m kcnn.models.train"


def _resource(filename: str) -> Path:
    """Path of a file shipped in this package, failing clearly if it is absent."""
    resource = resources.files("kcnn.models").joinpath(filename)
    # A wheel installs into a plain folder; a zip import has no path to hand to callers.
    if not isinstance(resource, Path):
        raise KcnnError(
            "kcnn.models is not installed as plain files, so it has no file path",
            file=filename,
        )
    if not resource.is_file():
        raise KcnnError(
            f"missing from the package; regenerate it with {_REGENERATE}", file=resource
        )
    return resource


def model_path(name: str) -> Path:
    """Path of a bundled ONNX model.

    Parameters
    ----------
    name : str
        One of :data:`MODELS`: ``"lenet5"`` (logits out) or ``"alexnet_mnist"``
        (softmax probabilities out), or one of :data:`GRAPH_MODELS` (logits out). All
        take float32 input of shape (N, 1, 28, 28), named ``input``, scaled as
        ``uint8 / 255``.

    Returns
    -------
    pathlib.Path
        The ``.onnx`` file inside the installed package.

    Raises
    ------
    KcnnError
        If ``name`` is not a bundled model, or its file is missing.
    """
    if name not in MODELS + GRAPH_MODELS:
        known = ", ".join(repr(model) for model in MODELS + GRAPH_MODELS)
        raise KcnnError(f"unknown model {name!r}; the bundled models are {known}")
    return _resource(f"{name}.onnx")


def table_path(name: str) -> Path:
    """Path of a bundled `.kcnn` table: the model quantized at default settings.

    The board loads these by name and never quantizes; ``python -m
    kcnn.models.build_tables`` makes them from the bundled ONNX and calibration digits.
    Only the models of :data:`MODELS` have one.
    """
    if name not in MODELS + GRAPH_MODELS:
        known = ", ".join(repr(model) for model in MODELS + GRAPH_MODELS)
        raise KcnnError(f"unknown model {name!r}; the bundled models are {known}")
    return _resource(f"{name}.kcnn")


@functools.lru_cache(maxsize=1)
def _load() -> dict[str, np.ndarray]:
    path = _resource(_DATA_FILE)
    with np.load(path) as npz:
        data = {key: npz[key] for key in npz.files}
    for array in data.values():
        # The cache is shared by every caller, so nobody may change it in place.
        array.setflags(write=False)
    return data


def _to_input(x: np.ndarray) -> np.ndarray:
    # The exact preprocessing the models were trained with: no mean shift, so the
    # background stays exactly 0.0.
    return (x.astype(np.float32) / 255).reshape(-1, 1, 28, 28)


def digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Real MNIST digits of one part of the fixed split, ready for the bundled models.

    The 5,000 digits (500 per class) were split once, stratified, with seed 0 into
    3,000 train, 1,000 val and 1,000 test digits, each part with equal counts per class.

    Parameters
    ----------
    split : str
        ``"train"``, ``"val"`` or ``"test"``. Use ``"test"`` only for final accuracy
        tables and acceptance tests, never to choose anything.

    Returns
    -------
    x : numpy.ndarray
        float32, shape (N, 1, 28, 28), pixel values ``uint8 / 255`` in [0, 1].
    y : numpy.ndarray
        int64, shape (N,), the digit labels 0..9.

    Raises
    ------
    KcnnError
        If ``split`` is not one of :data:`SPLITS`.
    """
    if split not in SPLITS:
        known = ", ".join(repr(name) for name in SPLITS)
        raise KcnnError(f"unknown split {split!r}; the splits are {known}")
    data = _load()
    index = data[f"{split}_idx"]
    return _to_input(data["x"][index]), data["y"][index].astype(np.int64)


def calibration_digits(n: int = DEFAULT_CALIBRATION) -> np.ndarray:
    """The first ``n`` digits of the train split, for calibrating a quantizer.

    The train split is shuffled across classes, so even a short prefix holds all ten
    digits. The result is the same on every call and every machine.

    Parameters
    ----------
    n : int, default 1024
        How many digits, from 1 to 3000 (the size of the train split).

    Returns
    -------
    numpy.ndarray
        float32, shape (n, 1, 28, 28), pixel values ``uint8 / 255``.

    Raises
    ------
    KcnnError
        If ``n`` is not an integer from 1 to 3000.
    """
    index = _load()["train_idx"]
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= len(index):
        raise KcnnError(
            f"calibration needs from 1 to {len(index)} train digits, not {n!r}", field="n"
        )
    return _to_input(_load()["x"][index[: int(n)]])
