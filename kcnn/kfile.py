"""The clustered table file (`.kcnn`): save, load and validate (DESIGN section 3).

A `.kcnn` is a zip of `.npy` arrays plus ``manifest.json``. This module needs numpy only
and imports nothing from :mod:`kcnn.quantizer`: the board, the simulator and the tests
share it. The layout of every member is documented in ``docs/kcnn-format.md``.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from kcnn.config import ARITHMETIC_CONTRACT, FORMAT_VERSION, act_code_range, weight_code_range
from kcnn.errors import KcnnError
from kcnn.files import atomic_write
from kcnn.limits import (
    MAX_JSON_DEPTH,
    MAX_LAYER_WEIGHTS,
    MAX_LAYERS,
    MAX_MANIFEST_BYTES,
    MAX_MAP_VALUES,
    MAX_MODEL_WEIGHTS,
)
from kcnn.model import Codebook, Layer, Model, Pixels
from kcnn.ops import all_ops, op_names
from kcnn.ops.activations import Activation, activation_of
from kcnn.weight_forms import (
    SPARSE_MAX_GAP,
    decode_sparse,
    encode_sparse,
    pack_dense,
    unpack_dense,
)

MANIFEST = "manifest.json"
#: Format versions the loader reads: 1 (a chain, ReLU flags) and the current one.
READS_VERSIONS = (1, FORMAT_VERSION)
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed so that equal contents give equal bytes
#: Scales are below this, so that logits (acc < 2^31 times two scales) stay finite.
SCALE_MAX = 1e100


# ---- save -----------------------------------------------------------------------------


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _layer_arrays(layer: Layer) -> dict[str, np.ndarray]:
    arrays = {}
    if layer.thresholds is not None:
        arrays[f"{layer.name}.thresholds"] = layer.thresholds.astype(np.int64)
    if layer.out_table is not None:
        arrays[f"{layer.name}.out_table"] = layer.out_table.astype(np.uint8)
    if layer.residual_table is not None:
        arrays[f"{layer.name}.residual_table"] = layer.residual_table.astype(np.int64)
    arrays.update(layer.kind.table_arrays(layer))
    if not layer.is_fabric:
        return arrays
    if layer.weight_form == "sparse":
        entries, per_row = encode_sparse(layer.codes)
        arrays[f"{layer.name}.wsparse"] = entries
        arrays[f"{layer.name}.wrows"] = per_row
    else:
        arrays[f"{layer.name}.wcodes"] = pack_dense(layer.codes)
    arrays[f"{layer.name}.wq"] = layer.wq.astype(np.int16)
    arrays[f"{layer.name}.bias"] = layer.bias.astype(np.int64)
    return arrays


def to_members(model: Model) -> dict[str, bytes]:
    """Every zip member of the model's `.kcnn`, manifest last."""
    arrays: dict[str, np.ndarray] = {}
    maps = {}
    for name, book in model.maps.items():
        arrays[f"map.{name}.aq"] = book.aq.astype(np.int16)
        entry = {
            "J": book.J,
            "scale": float(book.scale),
            "signed": bool(book.signed),
            "calib_values": int(book.calib_values),
        }
        if book.boundaries is not None:
            arrays[f"map.{name}.boundaries"] = book.boundaries.astype(np.float64)
        maps[name] = entry
    layers = []
    for layer in model.layers:
        entry = {
            "name": layer.name,
            "op": layer.op,
            "in_shape": list(layer.in_shape),
            "out_shape": list(layer.out_shape),
            "attrs": layer.attrs,
            "activation": layer.activation,
            "nodes": layer.nodes,
            "inputs": layer.inputs,
            "in_map": layer.in_map,
            "out_map": layer.out_map,
        }
        if layer.is_fabric:
            entry.update(
                {
                    "K": layer.K,
                    "J": model.maps[layer.in_map].J,
                    "w_scale": float(layer.w_scale),
                    "weight_form": layer.weight_form,
                    "weight_shape": list(layer.codes.shape),
                }
            )
        layers.append(entry)
        arrays.update(_layer_arrays(layer))
    members = {f"{name}.npy": _npy_bytes(arrays[name]) for name in sorted(arrays)}
    manifest = {
        "format_version": FORMAT_VERSION,
        "model": model.name,
        "contract": dict(ARITHMETIC_CONTRACT),
        "input": _input_entry(model),
        "maps": maps,
        "layers": layers,
        **model.meta,
        "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in members.items()},
    }
    members[MANIFEST] = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    return members


def writer(model: Model):
    """``write(handle)`` that writes the model's `.kcnn` bytes (for :mod:`kcnn.files`)."""
    members = to_members(model)

    def write(handle):
        with zipfile.ZipFile(handle, "w") as archive:
            for name, data in members.items():
                info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, data)

    return write


def _input_entry(model: Model) -> dict:
    entry = {"shape": list(model.input_shape), "dtype": "float32", "map": "input"}
    if model.pixels is not None:
        entry.update(dtype="uint8", mean=list(model.pixels.mean), std=list(model.pixels.std))
    return entry


def _read_pixels(reader, spec: dict, input_shape) -> Pixels | None:
    """The input's pixel declaration (``dtype`` uint8 with per-channel ``mean``, ``std``)."""
    dtype = reader.get(spec, "dtype", "input", str, optional=True) or "float32"
    if dtype == "float32":
        return None
    if dtype != "uint8":
        raise reader.fail(f"input dtype {dtype!r} is not float32 or uint8", field="input.dtype")
    mean = reader.get(spec, "mean", "input", list)
    std = reader.get(spec, "std", "input", list)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in mean + std):
        raise reader.fail("pixel mean and std must be numbers", field="input.mean")
    try:
        return Pixels.make(mean, std, input_shape, where="input")
    except KcnnError as exc:
        raise reader.fail(exc.message, field=exc.field) from None


def save(model: Model, path) -> Path:
    """Write ``model`` atomically (temporary file in the same folder, then rename)."""
    return atomic_write(path, writer(model))


# ---- load and validate ----------------------------------------------------------------

#: Bytes an `.npy` header may take beyond the data (numpy writes 128; version 2 allows more).
_NPY_HEADER_MAX = 4096
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _depth(value) -> int:
    """Nesting depth of a parsed JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, (dict, list)):
            stack.extend((child, level + 1) for child in children)
    return deepest


def read_member(
    archive: zipfile.ZipFile, name: str, limit: int, fail, why="its declared shape can take"
) -> bytes:
    """A zip member's bytes, refused before reading when it declares more than ``limit``
    bytes, is encrypted or uses a method other than stored/deflate; decompression stops at
    the declared size. ``fail(message)`` returns the exception to raise."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise fail("missing from the file") from None
    if info.flag_bits & 0x1:
        raise fail("the zip member is encrypted")
    if info.compress_type not in _ZIP_METHODS:
        raise fail(
            f"the zip member uses compression method {info.compress_type} (stored or "
            "deflate expected)"
        )
    if info.file_size > limit:
        raise fail(f"declares {info.file_size:,} bytes, more than the {limit:,} {why}")
    try:
        with archive.open(info) as handle:
            data = handle.read(limit + 1)
    except (
        zipfile.BadZipFile,
        zlib.error,
        OSError,
        EOFError,
        ValueError,
        RuntimeError,
        NotImplementedError,
    ) as exc:
        raise fail(f"unreadable zip member: {exc}") from exc
    if len(data) > limit:
        raise fail(f"holds more than the {limit:,} bytes {why}")
    return data


def parse_npy(data: bytes, dtype, shape, fail) -> np.ndarray:
    """An `.npy` of exactly ``dtype`` and ``shape`` (an int for a 1-D length, or None for
    any 1-D length) from ``data``; no other layout is accepted and nothing is allocated
    before the header has been checked against the data's length."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            got_shape, fortran, got_dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            got_shape, fortran, got_dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except Exception as exc:  # numpy raises ValueError and others on bad headers
        raise fail(f"not a valid .npy array: {exc}") from exc
    want = np.dtype(dtype)
    expected = shape if shape is None else (shape,)
    if (
        got_dtype != want
        or fortran
        or len(got_shape) != 1
        or (expected is not None and tuple(got_shape) != expected)
    ):
        raise fail(
            f"expected {want} of shape {expected or '(n,)'}, got {got_dtype} {got_shape}"
            + (" in Fortran order" if fortran else "")
        )
    count = int(got_shape[0])
    offset = stream.tell()
    if len(data) - offset != count * want.itemsize:
        raise fail(f"holds {len(data) - offset} data bytes for {count} {want} values")
    return np.frombuffer(data, dtype=want, count=count, offset=offset).copy()


class _Reader:
    def __init__(self, path: Path, archive: zipfile.ZipFile, manifest: dict):
        self.path, self.archive, self.manifest = path, archive, manifest

    def fail(self, message, layer=None, field=None):
        return KcnnError(message, file=self.path, layer=layer, field=field)

    def get(self, d: dict, key: str, layer=None, kind=None, optional=False):
        if not isinstance(d, dict) or key not in d:
            if optional:
                return None
            raise self.fail("missing entry", layer=layer, field=key)
        value = d[key]
        if kind is not None and (
            not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind))
        ):
            raise self.fail(f"wrong type {type(value).__name__}", layer=layer, field=key)
        return value

    def has_array(self, name: str) -> bool:
        return f"{name}.npy" in self.manifest["sha256"]

    def array(self, name: str, dtype, layer=None, shape=None, max_len=None) -> np.ndarray:
        """A 1-D member of exactly ``shape`` entries (or at most ``max_len``)."""
        member = f"{name}.npy"
        expected = self.manifest["sha256"].get(member)
        if expected is None:
            raise self.fail("array missing from the checksum list", layer=layer, field=name)
        length = shape if shape is not None else max_len
        limit = _NPY_HEADER_MAX + int(length) * np.dtype(dtype).itemsize

        def fail(message):
            return self.fail(message, layer=layer, field=name)

        data = read_member(self.archive, member, limit, fail)
        if hashlib.sha256(data).hexdigest() != expected:
            raise fail("SHA-256 mismatch: the array is corrupt")
        array = parse_npy(data, dtype, shape, fail)
        if shape is None and array.size > max_len:
            raise fail(f"{array.size} entries, at most {max_len} expected")
        return array


def _kinds(kind) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


def _shape(reader, entry, key, layer, ndims=None):
    value = reader.get(entry, key, layer, list)
    if not value or not all(_is_int(v) and v > 0 for v in value):
        raise reader.fail(f"invalid shape {value}", layer=layer, field=key)
    if ndims is not None and len(value) not in _kinds(ndims):
        raise reader.fail(
            f"shape {value} must have {' or '.join(map(str, _kinds(ndims)))} dimension(s)",
            layer=layer,
            field=key,
        )
    if np.prod(value, dtype=np.float64) > MAX_MAP_VALUES:
        raise reader.fail(
            f"shape {value} holds more than {MAX_MAP_VALUES:,} values", layer=layer, field=key
        )
    return tuple(value)


def _read_codebook(reader: _Reader, name: str, entry: dict, contract: dict) -> Codebook:
    where = f"map {name}"
    j = reader.get(entry, "J", where, int)
    if not 2 <= j <= contract["J_MAX"]:
        raise reader.fail(f"J={j} is outside 2..{contract['J_MAX']}", layer=where, field="J")
    aq = reader.array(f"map.{name}.aq", np.int16, where, shape=j - 1).astype(np.int64)
    signed = reader.get(entry, "signed", where, bool)
    scale = reader.get(entry, "scale", where, (int, float))
    low, high = act_code_range(contract["ba"], signed)
    if aq.min() < low or aq.max() > high or np.any(aq == 0) or np.any(np.diff(aq) <= 0):
        raise reader.fail(
            f"codebook entries must be non-zero, ascending and in [{low}, {high}]",
            layer=where,
            field="aq",
        )
    if not (np.isfinite(scale) and 0 < scale < SCALE_MAX):
        raise reader.fail(
            f"scale must be positive, finite and below {SCALE_MAX:g}", layer=where, field="scale"
        )
    boundaries = None
    if reader.has_array(f"map.{name}.boundaries"):
        boundaries = reader.array(f"map.{name}.boundaries", np.float64, where, max_len=j)
        if not np.all(np.isfinite(boundaries)) or np.any(np.diff(boundaries) < 0):
            raise reader.fail(
                "boundaries must be finite and non-decreasing", layer=where, field="boundaries"
            )
    calib_values = reader.get(entry, "calib_values", where, int, optional=True) or 0
    return Codebook(name, aq, float(scale), signed, boundaries, calib_values)


def _sparse_limit(shape) -> int:
    """Most entries a sparse form of ``shape`` can need: every position a code, plus a
    filler per 16 positions of a row."""
    rows, row_len = int(shape[0]), int(np.prod(shape[1:], dtype=np.int64))
    return rows * (row_len + row_len // (SPARSE_MAX_GAP + 1) + 1)


def _read_fabric(reader: _Reader, layer: Layer, entry: dict, contract: dict):
    name = layer.name
    shape = _shape_any(reader, entry, "weight_shape", name)
    count = int(np.prod(shape))
    reader.weights += count
    if reader.weights > MAX_MODEL_WEIGHTS:
        raise reader.fail(
            f"the model holds more than {MAX_MODEL_WEIGHTS:,} weights",
            layer=name,
            field="weight_shape",
        )
    form = reader.get(entry, "weight_form", name, str)
    if form == "dense":
        packed = reader.array(f"{name}.wcodes", np.uint8, name, shape=(count + 1) // 2)
        layer.codes = unpack_dense(packed, count).reshape(shape)
    elif form == "sparse":
        per_row = reader.array(f"{name}.wrows", np.uint32, name, shape=shape[0])
        entries = reader.array(f"{name}.wsparse", np.uint8, name, max_len=_sparse_limit(shape))
        try:
            layer.codes = decode_sparse(entries, per_row, shape)
        except ValueError as exc:
            raise reader.fail(str(exc), layer=name, field="wsparse") from exc
    else:
        raise reader.fail(
            f"unknown weight form {form!r} (dense or sparse)", layer=name, field="weight_form"
        )
    layer.weight_form = form
    k = reader.get(entry, "K", name, int)
    if not 1 <= k <= contract["K_MAX"]:
        raise reader.fail(f"K={k} is outside 1..{contract['K_MAX']}", layer=name, field="K")
    layer.wq = reader.array(f"{name}.wq", np.int16, name, shape=k - 1).astype(np.int64)
    low, high = weight_code_range(contract["bw"])
    wq = layer.wq
    if wq.size and (
        wq.min() < low or wq.max() > high or np.any(wq == 0) or np.any(np.diff(wq) <= 0)
    ):
        raise reader.fail(
            f"weight codebook must be non-zero, ascending, in [{low}, {high}]",
            layer=name,
            field="wq",
        )
    if layer.codes.size and int(layer.codes.max()) >= layer.K:
        raise reader.fail(
            f"weight code {int(layer.codes.max())} out of range for K={layer.K}",
            layer=name,
            field="codes",
        )
    layer.w_scale = float(reader.get(entry, "w_scale", name, (int, float)))
    if not (np.isfinite(layer.w_scale) and 0 < layer.w_scale < SCALE_MAX):
        raise reader.fail(
            f"w_scale must be positive, finite and below {SCALE_MAX:g}",
            layer=name,
            field="w_scale",
        )
    layer.bias = reader.array(f"{name}.bias", np.int64, name, shape=shape[0])
    if reader.get(entry, "J", name, int) != reader.maps[layer.in_map].J:
        raise reader.fail(f"J does not match its input map {layer.in_map!r}", layer=name, field="J")


def _read_activation(reader: _Reader, entry: dict, name: str) -> dict | None:
    activation = reader.get(entry, "activation", name, (dict, type(None)))
    if activation is None:
        return None
    op = activation.get("op")
    known = [o.name for o in all_ops() if isinstance(o, Activation)]
    if op not in known or not all(_is_number(v) for k, v in activation.items() if k != "op"):
        raise reader.fail(
            f"activation {activation!r}: op must be one of {known}, parameters numbers",
            layer=name,
            field="activation",
        )
    return activation


def _read_tables(reader: _Reader, layer: Layer, contract: dict) -> None:
    """The threshold bank's arrays (thresholds, interval codes), the residual table and
    the arrays of the layer's op (an add's tables, a code map's table)."""
    name, j_max = layer.name, contract["J_MAX"]
    if layer.thresholded and layer.out_map is not None:
        layer.thresholds = reader.array(f"{name}.thresholds", np.int64, name, max_len=j_max)
        if reader.has_array(f"{name}.out_table"):
            table = reader.array(f"{name}.out_table", np.uint8, name, max_len=j_max)
            layer.out_table = table
    else:
        for member in ("thresholds", "out_table"):
            if reader.has_array(f"{name}.{member}"):
                raise reader.fail(
                    f"{member} on a layer that emits no codes", layer=name, field=member
                )
    if layer.is_fabric and len(layer.inputs) > 1:
        layer.residual_table = reader.array(f"{name}.residual_table", np.int64, name, max_len=j_max)
    layer.kind.read_tables(reader, layer, j_max)


def _shape_any(reader, entry, key, layer):
    """A weight shape: positive ints within the per-layer weight limit."""
    value = reader.get(entry, key, layer, list)
    if not value or not all(_is_int(v) and v > 0 for v in value):
        raise reader.fail(f"invalid shape {value}", layer=layer, field=key)
    if np.prod(value, dtype=np.float64) > MAX_LAYER_WEIGHTS:
        raise reader.fail(
            f"shape {value} holds more than {MAX_LAYER_WEIGHTS:,} weights (the limit per layer)",
            layer=layer,
            field=key,
        )
    return tuple(value)


def _row_weight_sums(layer: Layer) -> np.ndarray:
    """``sum_i |Wq[w_i]|`` per output channel, over chunks of at most 2^22 weights (the
    largest layer's weights, decoded at once, would take 8 bytes each)."""
    rows = layer.codes.shape[0]
    flat = layer.codes.reshape(-1)
    row_len = max(1, flat.size // rows)
    w_abs = np.concatenate([[0.0], np.abs(layer.wq).astype(np.float64)])
    sums = np.zeros(rows)
    chunk = 1 << 22
    for start in range(0, flat.size, chunk):
        codes = flat[start : start + chunk]
        row = np.arange(start, start + codes.size) // row_len
        # float64 sums are exact here: at most 2^28 weights of |Wq| <= 127.
        sums += np.bincount(row, weights=w_abs[codes], minlength=rows)
    return sums.astype(np.int64)


def accumulator_bound(layer: Layer, books: list[Codebook]) -> int:
    """The largest ``|acc|`` the layer can reach (DESIGN section 1): ``|B[c]| + sum_i
    max_j |P[w_i][j]|`` plus the largest residual entry, or the two add tables' largest
    entries. ``books`` are the codebooks of the layer's inputs. Every term fits int64:
    |B| < 2^31, sum|Wq| < 2^28 * 127, |Aq| <= 255."""
    if layer.add_tables is not None:
        return int(sum(int(np.abs(t).max()) for t in layer.add_tables))
    a_max = int(np.abs(books[0].aq).max()) if books[0].aq.size else 0
    bound = np.abs(layer.bias) + _row_weight_sums(layer) * a_max
    if layer.residual_table is not None:
        bound = bound + int(np.abs(layer.residual_table).max())
    return int(bound.max()) if bound.size else 0


def check_layer_tables(model: Model, contract: dict, fail) -> None:
    """Codebook links, the threshold banks, the Add tables, the accumulator proof (DESIGN
    sections 1 and 4) and the order of the codes an op that compares codes can receive.
    ``fail(message, layer, field)`` returns the exception."""
    limit = (1 << (contract["ACC_BITS"] - 1)) - 1
    reachable = {"input": np.arange(model.maps["input"].J)}  # codes each tensor can hold
    for layer in model.layers:
        for key in ("in_map", "out_map"):
            ref = getattr(layer, key)
            if ref is not None and ref not in model.maps:
                raise fail(f"refers to unknown map {ref!r}", layer.name, key)
        if layer.kind.needs_ordered_codes:
            _check_ordered_codes(model, layer, reachable, fail)
        if layer.kind.acts_on_codes:
            held = [reachable[t] for t in layer.inputs if t in reachable]
            if held:  # (not a reshape of the logits)
                reachable[layer.name] = np.unique(np.concatenate(held))
        elif layer.out_map is not None and not layer.thresholded:
            reachable[layer.name] = np.arange(model.maps[layer.out_map].J)
        if not layer.thresholded:
            continue
        books = [model.maps[model.codebook_of(t)] for t in layer.inputs]
        for k, table in enumerate(
            layer.add_tables or ([layer.residual_table] if layer.residual is not None else [])
        ):
            book = books[k if layer.add_tables is not None else 1]
            if len(table) != book.J or table[0] != 0:
                raise fail(
                    f"an Add table needs J={book.J} entries (its map {book.name!r}) with "
                    "entry 0 = 0",
                    layer.name,
                    "add_table" if layer.add_tables is not None else "residual_table",
                )
        # min/max, not abs: |-2^63| wraps in int64.
        if layer.is_fabric and layer.bias.size and not _fits(layer.bias, limit):
            raise fail(f"a bias does not fit ACC_BITS={contract['ACC_BITS']}", layer.name, "bias")
        for table in layer.add_tables or [layer.residual_table]:
            if table is not None and not _fits(table, limit):
                raise fail("an Add table entry does not fit ACC_BITS", layer.name, "add_table")
        bound = accumulator_bound(layer, books)
        if bound > limit:
            raise fail(
                f"accumulator proof fails: an output can reach {bound}"
                f" > 2^{contract['ACC_BITS'] - 1}-1",
                layer.name,
                "accumulator",
            )
        if layer.thresholds is not None:
            _check_bank(layer, model.maps[layer.out_map], contract, bound, fail)
            reachable[layer.name] = _bank_codes(layer, bound)


def _bank_codes(layer: Layer, bound: int) -> np.ndarray:
    """The codes a threshold bank can emit for an ``acc`` within ``+-bound``."""
    t = layer.thresholds
    intervals = np.arange(int(np.sum(t <= -bound)), int(np.sum(t <= bound)) + 1)
    return np.unique(intervals if layer.out_table is None else layer.out_table[intervals])


def _check_ordered_codes(model: Model, layer: Layer, reachable: dict, fail) -> None:
    """An op that compares codes (max-pool) needs the codes its input can hold
    (``reachable``, by tensor) to be ordered like their values, none below zero (the
    padding code 0 never wins): true of every unsigned map, and of a signed map shared
    through a Concat that a ReLU-like layer emits into (it emits code 0 and the positive
    codes only)."""
    book = model.maps[model.codebook_of(layer.inputs[0])]
    codes = reachable.get(layer.inputs[0], np.arange(book.J))
    values = np.concatenate([[0], book.aq])[codes]
    if np.any(values < 0) or np.any(np.diff(values) <= 0):
        raise fail(
            f"{layer.op} compares codes: its input can hold codes {codes.tolist()}, whose "
            "values are negative or not ordered like the codes",
            layer.name,
            "in_map",
        )


def _fits(values: np.ndarray, limit: int) -> bool:
    return int(values.min()) >= -limit and int(values.max()) <= limit


def _check_bank(layer: Layer, out_book: Codebook, contract: dict, bound: int, fail) -> None:
    """Thresholds non-decreasing, of the output map's count, within the accumulator; with
    an activation that is 0 for every input <= 0, every reachable ``acc <= 0`` (down to
    ``-bound``) is code 0 (``T[1] >= 1`` on an unsigned map); the interval codes in range
    (an unsigned map has none: the interval is the code)."""
    limit = (1 << (contract["ACC_BITS"] - 1)) - 1
    t = layer.thresholds
    if len(t) != out_book.J - 1:
        raise fail(f"{len(t)} thresholds for J'={out_book.J}", layer.name, "thresholds")
    if np.any(np.diff(t) < 0) or (t.size and (t.min() < -limit or t.max() > limit)):
        raise fail(
            f"thresholds must be non-decreasing and fit ACC_BITS={contract['ACC_BITS']}",
            layer.name,
            "thresholds",
        )
    table = layer.out_table
    if table is not None and (len(table) != out_book.J or table.max() >= out_book.J):
        raise fail(
            f"out_table needs {out_book.J} codes below {out_book.J}", layer.name, "out_table"
        )
    act = activation_of(layer)
    if act is not None and act.zero_at_non_positive(layer.activation) and t.size:
        # The intervals of acc = -bound .. 0 (a signed map shared through a Concat has
        # thresholds at or below zero that every acc reaches) must all give code 0.
        lowest, highest = int(np.sum(t <= -bound)), int(np.sum(t <= 0))
        codes = np.arange(lowest, highest + 1) if table is None else table[lowest : highest + 1]
        if np.any(codes != 0):
            rule = "have T[1] >= 1" if table is None else "send every acc <= 0 to code 0"
            raise fail(
                f"thresholds must {rule} after a {layer.activation['op']}",
                layer.name,
                "thresholds",
            )
    if (table is None) == bool(np.any(out_book.aq < 0)):
        raise fail(
            "a signed output map needs out_table, an unsigned one takes none",
            layer.name,
            "out_table",
        )


def load(path) -> Model:
    """Load and validate a `.kcnn`; every problem raises :class:`KcnnError`."""
    path = Path(path)
    if not path.is_file():
        raise KcnnError("no such .kcnn file", file=path)
    try:
        archive = zipfile.ZipFile(path)
    except Exception as exc:  # zipfile raises BadZipFile, OSError, ValueError and others
        raise KcnnError(f"not a .kcnn file (not a zip archive): {exc}", file=path) from exc
    with archive:

        def fail(message):
            return KcnnError(message, file=path, field=MANIFEST)

        data = read_member(archive, MANIFEST, MAX_MANIFEST_BYTES, fail, "a manifest may take")
        try:
            manifest = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise fail(f"not valid JSON: {str(exc)[:200]}") from exc
        if not isinstance(manifest, dict):
            raise fail("is not a JSON object")
        if _depth(manifest) > MAX_JSON_DEPTH:
            raise fail(f"nested deeper than {MAX_JSON_DEPTH} levels")
        return _from_manifest(_Reader(path, archive, manifest))


def _read_meta(reader: _Reader, manifest: dict) -> dict:
    """The informative entries; those a report reads are checked like the rest."""
    meta = {
        k: v
        for k, v in manifest.items()
        if k not in ("format_version", "model", "contract", "input", "maps", "layers", "sha256")
    }
    calibration = meta.get("calibration")
    if calibration is None:
        return meta
    if not isinstance(calibration, dict):
        raise reader.fail("must be an object", field="calibration")
    layers = reader.get(calibration, "layers", "calibration", dict, optional=True) or {}
    for name, counts in layers.items():
        pairs = reader.get(counts, "effective_pairs", name, (int, float))
        density = reader.get(counts, "act_density", name, (int, float))
        if not (np.isfinite(pairs) and pairs >= 0 and 0 <= density <= 1):
            raise reader.fail(
                "effective_pairs must be >= 0 and act_density in [0, 1]",
                layer=name,
                field="calibration",
            )
    images = reader.get(calibration, "images", "calibration", int, optional=True)
    if images is not None and images < 0:
        raise reader.fail("images must be >= 0", field="calibration")
    return meta


def _from_manifest(reader: _Reader) -> Model:
    manifest = reader.manifest
    version = reader.get(manifest, "format_version")
    if version not in READS_VERSIONS or isinstance(version, bool):
        raise reader.fail(
            f"format version {version} is not supported (this kcnn reads "
            f"{', '.join(map(str, READS_VERSIONS))})",
            field="format_version",
        )
    contract = reader.get(manifest, "contract", kind=dict)
    # The protocol recorded is the writer's: the planner packs a file's tables for the
    # kernel at hand, so only the arithmetic must agree.
    arithmetic = {k: v for k, v in contract.items() if k != "protocol"}
    expected = {k: v for k, v in ARITHMETIC_CONTRACT.items() if k != "protocol"}
    if arithmetic != expected or any(isinstance(v, bool) for v in contract.values()):
        raise reader.fail(
            f"built for arithmetic contract {contract}, this kcnn implements {ARITHMETIC_CONTRACT}",
            field="contract",
        )
    sums = reader.get(manifest, "sha256", kind=dict)
    if not all(isinstance(v, str) for v in sums.values()):
        raise reader.fail("checksums must be strings", field="sha256")
    input_spec = reader.get(manifest, "input", kind=dict)
    input_shape = _shape(reader, input_spec, "shape", "input")
    map_entries = reader.get(manifest, "maps", kind=dict)
    entries = reader.get(manifest, "layers", kind=list)
    if len(map_entries) > MAX_LAYERS + 1 or len(entries) > MAX_LAYERS:
        raise reader.fail(f"more than {MAX_LAYERS} layers", field="layers")
    reader.maps = {
        name: _read_codebook(reader, name, entry, contract) for name, entry in map_entries.items()
    }
    layers, names = [], set()
    reader.weights = 0
    previous = "input"
    for entry in entries:
        name = reader.get(entry, "name", kind=str)
        if name in names:
            raise reader.fail("two layers have this name", layer=name, field="name")
        names.add(name)
        op = reader.get(entry, "op", name, str)
        if op not in op_names():
            raise reader.fail(f"unknown op {op!r}", layer=name, field="op")
        nodes = reader.get(entry, "nodes", name, list, optional=True) or []
        if version == 1:
            # Version 1 is a chain, and its activation a ReLU flag.
            inputs = [previous]
            activation = {"op": "relu"} if reader.get(entry, "relu", name, bool) else None
        else:
            inputs = reader.get(entry, "inputs", name, list)
            activation = _read_activation(reader, entry, name)
        if not inputs or not all(isinstance(t, str) for t in inputs):
            raise reader.fail(f"inputs {inputs!r} must name tensors", layer=name, field="inputs")
        layer = Layer(
            name=name,
            op=op,
            in_shape=_shape(reader, entry, "in_shape", name),
            out_shape=_shape(reader, entry, "out_shape", name),
            attrs=reader.get(entry, "attrs", name, dict),
            activation=activation,
            nodes=[str(n) for n in nodes],
            inputs=list(inputs),
            in_map=reader.get(entry, "in_map", name, (str, type(None)), optional=True),
            out_map=reader.get(entry, "out_map", name, (str, type(None)), optional=True),
        )
        previous = name
        for key in ("in_map", "out_map"):
            ref = getattr(layer, key)
            if ref is not None and ref not in reader.maps:
                raise reader.fail(f"refers to unknown map {ref!r}", layer=name, field=key)
        if layer.is_fabric:
            if layer.in_map is None:
                raise reader.fail("a fabric layer needs an input map", layer=name, field="in_map")
            _read_fabric(reader, layer, entry, contract)
        _read_tables(reader, layer, contract)
        layers.append(layer)
    model_name = reader.get(manifest, "model", kind=str)
    pixels = _read_pixels(reader, input_spec, input_shape)
    model = Model(
        model_name, input_shape, layers, reader.maps, _read_meta(reader, manifest), pixels
    )
    check_graph(model, lambda msg, layer, fld: reader.fail(msg, layer, fld))
    check_layer_tables(model, contract, lambda msg, layer, fld: reader.fail(msg, layer, fld))
    return model


def check_graph(model: Model, fail) -> None:
    """The graph is one the simulator and the kernel both run: layers in an order where
    each reads only the input and earlier layers, each with the inputs its op takes;
    shapes follow from the attributes; every map's codebook is the one its producer emits
    (maps joined by a Concat share one); the last weighted layer emits acc and only ops on
    the logits follow it; every tensor but the output is read; each host encoder has its
    boundaries. ``fail(message, layer, field)`` returns the exception."""
    fabric = [i for i, layer in enumerate(model.layers) if layer.is_fabric]
    if not fabric:
        raise fail("no fabric layer", None, "layers")
    last = fabric[-1]
    book = model.maps.get("input")
    if book is None or book.boundaries is None or len(book.boundaries) != book.J - 2:
        raise fail(
            f"the input map needs J-2 = {book.J - 2 if book else '?'} boundaries",
            "input",
            "boundaries",
        )
    shapes = {"input": tuple(model.input_shape)}
    codebooks: dict[str, str | None] = {"input": "input"}  # tensor -> its codes' codebook
    read = {"input"}
    emitters: dict[str, list[str]] = {}
    for index, layer in enumerate(model.layers):
        name, op = layer.name, layer.kind
        unknown = [t for t in layer.inputs if t not in shapes]
        if unknown:
            raise fail(f"reads {unknown}, which no earlier layer makes", name, "inputs")
        if len(layer.inputs) not in op.input_counts():
            raise fail(
                f"{layer.op} reads {len(layer.inputs)} tensors, not {op.input_counts()}",
                name,
                "inputs",
            )
        read.update(layer.inputs)
        in_shapes = [shapes[t] for t in layer.inputs]
        if layer.in_shape != in_shapes[0]:
            raise fail(
                f"in_shape {list(layer.in_shape)} is not its input's {list(in_shapes[0])}",
                name,
                "in_shape",
            )
        after_logits = index > last
        if after_logits and not (op.on_logits or op.shape_only):
            raise fail("only ops on the logits may follow the last fabric layer", name, "op")
        if op.on_logits and index < last:
            raise fail(f"{layer.op} applies to the logits, after the last fabric layer", name, "op")
        expected = op.output_shape(layer, in_shapes, fail)
        if layer.out_shape != tuple(expected):
            raise fail(
                f"out_shape {list(layer.out_shape)} does not follow from the input and "
                f"attributes ({list(expected)})",
                name,
                "out_shape",
            )
        in_books = [codebooks[t] for t in layer.inputs]
        if not (op.on_logits or after_logits) and any(b is None for b in in_books):
            raise fail("reads a tensor that holds no codes (acc or logits)", name, "inputs")
        reads = in_books[0] if op.reads_codebook else None
        emits = op.emits_map(index == last)
        if layer.in_map != reads:
            raise fail(f"in_map must be {reads!r}, the map of its input codes", name, "in_map")
        if (layer.out_map is not None) != emits:
            raise fail(
                "out_map must name the map it emits" if emits else "out_map must be null",
                name,
                "out_map",
            )
        if op.acts_on_codes:
            if len(set(in_books)) != 1:
                raise fail(
                    f"joins maps of codebooks {in_books}: maps joined by a Concat share one",
                    name,
                    "inputs",
                )
            codebooks[name] = in_books[0]
        else:
            codebooks[name] = layer.out_map
        if layer.out_map is not None:
            emitters.setdefault(layer.out_map, []).append(name)
            if op.host and model.maps[layer.out_map].signed:
                raise fail(f"map {layer.out_map!r}: a host op's output is unsigned", name, "signed")
        shapes[name] = layer.out_shape
    for book, names in emitters.items():
        # The host re-encodes a host op's output with the map's boundaries; the fabric
        # emits with integer thresholds. A map that a Concat joins may have both kinds.
        by_host = [n for n in names if model.layer(n).kind.host]
        boundaries = model.maps[book].boundaries
        if by_host and (boundaries is None or len(boundaries) != model.maps[book].J - 1):
            raise fail(
                f"map {book!r} needs J-1 boundaries (host-op output)", by_host[0], "boundaries"
            )
        if not by_host and boundaries is not None:
            raise fail(
                f"map {book!r} is emitted by the fabric and takes no boundaries",
                names[0],
                "boundaries",
            )
    _check_emitters(model, emitters, fail)
    tail = model.layers[-1].name
    unread = [t for t in shapes if t not in read and t != tail]
    if unread:
        raise fail(f"tensors {unread} are read by no layer", unread[0], "inputs")
    unused = sorted(set(model.maps) - set(emitters) - {"input"})
    if unused:
        raise fail(f"maps {unused} are emitted by no layer", None, "maps")


def _check_emitters(model: Model, emitters: dict[str, list[str]], fail) -> None:
    """A codebook emitted by several layers is one that Concats join: each of its
    emitters' codes reach one common Concat."""
    joined: dict[str, set] = {}
    for layer in model.layers:
        if layer.kind.joins_maps:
            group = set()
            for tensor in layer.inputs:
                while tensor != "input" and model.layer(tensor).kind.acts_on_codes:
                    sources = model.layer(tensor).inputs
                    if len(sources) > 1:
                        group.update(joined.get(tensor, set()))
                    tensor = sources[0]
                group.add(tensor)
            joined[layer.name] = group
    for book, layers in emitters.items():
        if len(layers) > 1 and not any(set(layers) <= group for group in joined.values()):
            raise fail(
                f"map {book!r} is emitted by {layers}, which no Concat joins", layers[1], "out_map"
            )
