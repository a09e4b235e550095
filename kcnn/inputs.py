"""The one validator of input batches: the quantizer's calibration set, ``Accelerator`` and
the CLI all pass their inputs through :func:`check_batch` (numpy only).
"""

from __future__ import annotations

import warnings

import numpy as np

from kcnn.errors import KcnnError

#: Images validated (and run) at a time by default: keeps memory flat in N.
DEFAULT_BATCH = 64


def check_batch(
    x, input_shape, *, pixels: bool = False, source=None, field: str = "input"
) -> np.ndarray:
    """``x`` as a floating array ``(N, *input_shape)`` with N >= 1 and finite values, or
    with ``pixels`` (a model quantized with pixel input) a uint8 array of images.

    An array is returned as given and an :class:`NpyRows` file stays one: callers convert
    to float32 a batch at a time. A ragged list, a missing batch dimension, an empty batch, a
    dtype other than the model's and a NaN or infinite value are each a :class:`KcnnError`
    naming ``source`` and ``field``.
    """
    shape = tuple(int(d) for d in input_shape)
    if not isinstance(x, NpyRows):  # those are read in batches below, never whole
        x = _as_array(x, source, field)
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
        raise KcnnError(
            f"shape {x.shape} is not (N, {', '.join(map(str, shape))}); add the batch dimension N",
            file=source,
            field=field,
        )
    if x.shape[0] == 0:
        raise KcnnError("the batch is empty (N = 0)", file=source, field=field)
    if pixels:
        if x.dtype != np.uint8:
            raise KcnnError(
                f"dtype {x.dtype} is not uint8: this model takes uint8 images (it was "
                "quantized with pixel input; its mean and std turn them into its float input)",
                file=source,
                field=field,
            )
        return x
    if not np.issubdtype(x.dtype, np.floating):
        raise KcnnError(
            f"dtype {x.dtype} is not a float type (float32 expected)", file=source, field=field
        )
    for start in range(0, len(x), DEFAULT_BATCH):
        # Checked as float32, the type the encoders see: 1e300 is finite in float64 only.
        with np.errstate(over="ignore"):
            chunk = np.asarray(x[start : start + DEFAULT_BATCH], dtype=np.float32)
        finite = np.isfinite(chunk).reshape(len(chunk), -1).all(axis=1)
        if not finite.all():
            first = start + int(np.argmin(finite))
            raise KcnnError(
                f"input {first} holds NaN or infinite values (as float32); the encoders have "
                "no code for them, so such inputs are refused",
                file=source,
                field=field,
            )
    return x


def _as_array(x, source, field) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            # numpy < 1.24 turns a ragged list into an object array with a warning.
            warnings.simplefilter("ignore")
            x = np.asarray(x)
    except (ValueError, TypeError) as exc:
        raise KcnnError(f"not a rectangular array: {exc}", file=source, field=field) from exc
    if x.dtype == object:
        raise KcnnError(
            "not a rectangular array of numbers (ragged or mixed list)", file=source, field=field
        )
    return x


def check_batch_size(size) -> int:
    """``size`` as a positive int, or a :class:`KcnnError`."""
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise KcnnError(f"batch size {size!r} is not a positive integer", field="batch_size")
    return int(size)


def batches(x: np.ndarray, size: int):
    """``(start, chunk)`` of at most ``size`` rows of ``x``, in order: float32, or uint8
    for a batch of pixels (checked by :func:`check_batch`)."""
    size = check_batch_size(size)
    dtype = np.uint8 if x.dtype == np.uint8 else np.float32  # pixels stay pixels
    for start in range(0, len(x), size):
        yield start, np.asarray(x[start : start + size], dtype=dtype)


class NpyRows:
    """A C-order `.npy` array (a file, or a stored member of an `.npz` at ``offset``) read
    a slice of rows at a time with plain reads: only the rows asked for are ever in memory,
    and the file takes no address space (a memory map of a large input would count against
    ``RLIMIT_AS`` and show in the resident set as its pages are read)."""

    def __init__(self, path, offset: int = 0):
        self.path = str(path)
        with open(self.path, "rb") as handle:
            handle.seek(offset)
            version = np.lib.format.read_magic(handle)
            read_header = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
            shape, fortran, dtype = read_header(handle)
            self.start = handle.tell()
        if fortran or dtype.hasobject or not shape:
            raise ValueError("not a C-order numeric array with a batch dimension")
        self.shape, self.dtype, self.ndim = tuple(shape), dtype, len(shape)
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows):
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError("NpyRows takes contiguous row slices")
        start, stop, _ = rows.indices(len(self))
        count = max(0, stop - start)
        data = bytearray(count * self.row_bytes)
        with open(self.path, "rb") as handle:
            handle.seek(self.start + start * self.row_bytes)
            if handle.readinto(data) != len(data):
                raise KcnnError("the array is shorter than its header says", file=self.path)
        return np.frombuffer(data, self.dtype).reshape(count, *self.shape[1:])
