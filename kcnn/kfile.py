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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kcnn.config import ARITHMETIC_CONTRACT, FORMAT_VERSION, act_code_range, weight_code_range
from kcnn.errors import KcnnError
from kcnn.files import atomic_write

MANIFEST = "manifest.json"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed so that equal contents give equal bytes
SPARSE_MAX_GAP = 15
#: Bits a sparse row's entry count takes in storage and in the job format.
ROW_COUNT_BITS = 32


@dataclass
class Codebook:
    """The integer codebook of one encoded map: value of code j (j >= 1) is aq[j-1]*scale.

    ``boundaries`` exist for maps the host encodes: the network input (midpoints of the
    sorted decoded centroids) and a host op's output (thresholds ``t``, code = #{t <= y}).
    """

    name: str
    aq: np.ndarray
    scale: float
    signed: bool
    boundaries: np.ndarray | None = None
    calib_values: int = 0

    @property
    def J(self) -> int:  # noqa: N802 - the paper's symbol
        return len(self.aq) + 1

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Float64 values of ``codes`` (code 0 is exactly zero)."""
        table = np.concatenate([[0.0], self.aq.astype(np.float64) * self.scale])
        return table[codes]


@dataclass
class QLayer:
    """A layer of a quantized model. Fabric layers carry their integer tables."""

    name: str
    op: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    attrs: dict = field(default_factory=dict)
    relu: bool = False
    nodes: list[str] = field(default_factory=list)
    in_map: str | None = None
    out_map: str | None = None
    # fabric layers only
    codes: np.ndarray | None = None  # uint8, weight-shaped; 0 = pruned
    wq: np.ndarray | None = None  # int64, K-1 non-zero integer centroids, ascending
    w_scale: float = 0.0
    bias: np.ndarray | None = None  # int64, one per output channel, in accumulator units
    thresholds: np.ndarray | None = None  # int64, J'-1 non-decreasing (None: emits acc)
    weight_form: str = "dense"

    @property
    def is_fabric(self) -> bool:
        return self.op in ("conv", "fc")

    @property
    def K(self) -> int:  # noqa: N802 - the paper's symbol
        return 0 if self.wq is None else len(self.wq) + 1


@dataclass
class KcnnModel:
    """A loaded or freshly quantized model: graph, integer tables and codebooks."""

    name: str
    input_shape: tuple[int, ...]
    layers: list[QLayer]
    maps: dict[str, Codebook]
    meta: dict = field(default_factory=dict)  # source sha256, kcnn version, config, ...

    def layer(self, name: str) -> QLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def save(self, path) -> Path:
        return save(self, path)


# ---- weight code forms --------------------------------------------------------------


def pack_dense(codes: np.ndarray) -> np.ndarray:
    """Two 4-bit codes per byte, first code in the low nibble."""
    flat = codes.reshape(-1).astype(np.uint8)
    if flat.size % 2:
        flat = np.concatenate([flat, np.zeros(1, np.uint8)])
    return (flat[0::2] | (flat[1::2] << 4)).astype(np.uint8)


def unpack_dense(packed: np.ndarray, count: int) -> np.ndarray:
    out = np.empty(packed.size * 2, np.uint8)
    out[0::2] = packed & 0x0F
    out[1::2] = packed >> 4
    return out[:count]


def encode_sparse(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sparse form of a weight array, one row per output channel.

    Each entry is one byte: code in the low nibble, the number of zeros skipped before it
    (0..15) in the high nibble. A gap above 15 inserts filler entries (code 0, gap 15),
    each of which covers 16 positions. Returns ``(entries, entries_per_row)``.
    """
    rows = codes.reshape(codes.shape[0], -1)
    row_idx, col_idx = np.nonzero(rows)
    previous = np.empty_like(col_idx)
    if col_idx.size:
        previous[0] = -1
        previous[1:] = np.where(row_idx[1:] == row_idx[:-1], col_idx[:-1], -1)
    gap = col_idx - previous - 1
    fillers = gap // (SPARSE_MAX_GAP + 1)
    residual = gap % (SPARSE_MAX_GAP + 1)
    per_nonzero = fillers + 1
    total = int(per_nonzero.sum())
    entries = np.full(total, SPARSE_MAX_GAP << 4, np.uint8)  # fillers by default
    last_slot = np.cumsum(per_nonzero) - 1
    entries[last_slot] = (rows[row_idx, col_idx].astype(np.uint8) | (residual << 4)).astype(
        np.uint8
    )
    per_row = np.bincount(row_idx, weights=per_nonzero, minlength=rows.shape[0])
    return entries, per_row.astype(np.uint32)


def decode_sparse(entries: np.ndarray, per_row: np.ndarray, shape) -> np.ndarray:
    """Inverse of :func:`encode_sparse`; raises ValueError when an entry leaves its row."""
    n_rows = int(shape[0])
    row_len = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    if per_row.size != n_rows or int(per_row.sum()) != entries.size:
        raise ValueError("entry counts per row do not add up to the number of entries")
    if entries.size == 0:
        return np.zeros(shape, np.uint8)
    step = (entries >> 4).astype(np.int64) + 1
    row_of = np.repeat(np.arange(n_rows), per_row.astype(np.int64))
    cum = np.cumsum(step)
    row_start = np.concatenate([[0], np.cumsum(per_row.astype(np.int64))])[:-1]
    before_row = np.where(row_start > 0, cum[np.maximum(row_start - 1, 0)], 0)
    position = cum - 1 - np.repeat(before_row, per_row.astype(np.int64))
    if position.size and (position.max() >= row_len):
        raise ValueError("a sparse entry points past the end of its row")
    out = np.zeros((n_rows, row_len), np.uint8)
    out[row_of, position] = entries & 0x0F
    return out.reshape(shape)


def sparse_bits(entries: int, rows: int) -> int:
    return 8 * entries + ROW_COUNT_BITS * rows


# ---- save -----------------------------------------------------------------------------


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _layer_arrays(layer: QLayer) -> dict[str, np.ndarray]:
    arrays = {}
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
    if layer.thresholds is not None:
        arrays[f"{layer.name}.thresholds"] = layer.thresholds.astype(np.int64)
    return arrays


def to_members(model: KcnnModel) -> dict[str, bytes]:
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
            "relu": layer.relu,
            "nodes": layer.nodes,
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
        "input": {"shape": list(model.input_shape), "dtype": "float32", "map": "input"},
        "maps": maps,
        "layers": layers,
        **model.meta,
        "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in members.items()},
    }
    members[MANIFEST] = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    return members


def save(model: KcnnModel, path) -> Path:
    """Write ``model`` atomically (temporary file in the same folder, then rename)."""
    members = to_members(model)

    def write(handle):
        with zipfile.ZipFile(handle, "w") as archive:
            for name, data in members.items():
                info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, data)

    return atomic_write(path, write)


# ---- load and validate ----------------------------------------------------------------


class _Reader:
    def __init__(self, path: Path, archive: zipfile.ZipFile, manifest: dict):
        self.path, self.archive, self.manifest = path, archive, manifest

    def fail(self, message, layer=None, field=None):
        return KcnnError(message, file=self.path, layer=layer, field=field)

    def get(self, d: dict, key: str, layer=None, kind=None):
        if not isinstance(d, dict) or key not in d:
            raise self.fail("missing entry", layer=layer, field=key)
        value = d[key]
        if kind is not None and not isinstance(value, kind):
            raise self.fail(f"wrong type {type(value).__name__}", layer=layer, field=key)
        return value

    def array(self, name: str, dtype, layer=None, ndim=1) -> np.ndarray:
        member = f"{name}.npy"
        expected = self.manifest.get("sha256", {}).get(member)
        if expected is None:
            raise self.fail("array missing from the checksum list", layer=layer, field=name)
        try:
            data = self.archive.read(member)
        except KeyError:
            raise self.fail("array missing from the file", layer=layer, field=name) from None
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise self.fail(f"array unreadable: {exc}", layer=layer, field=name) from exc
        if hashlib.sha256(data).hexdigest() != expected:
            raise self.fail("SHA-256 mismatch: the array is corrupt", layer=layer, field=name)
        try:
            array = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
        except Exception as exc:  # numpy raises ValueError and others on bad headers
            raise self.fail(f"not a valid .npy array: {exc}", layer=layer, field=name) from exc
        if array.dtype != np.dtype(dtype) or array.ndim != ndim:
            raise self.fail(
                f"expected {np.dtype(dtype)} with {ndim} dimension(s), got "
                f"{array.dtype} {array.shape}",
                layer=layer,
                field=name,
            )
        return array


def _shape(reader, entry, key, layer):
    value = reader.get(entry, key, layer, list)
    if not value or not all(isinstance(v, int) and v > 0 for v in value):
        raise reader.fail(f"invalid shape {value}", layer=layer, field=key)
    return tuple(value)


def _read_codebook(reader: _Reader, name: str, entry: dict, contract: dict) -> Codebook:
    where = f"map {name}"
    aq = reader.array(f"map.{name}.aq", np.int16, where).astype(np.int64)
    signed = reader.get(entry, "signed", where, bool)
    scale = reader.get(entry, "scale", where, (int, float))
    if reader.get(entry, "J", where, int) != len(aq) + 1 or len(aq) + 1 > contract["J_MAX"]:
        raise reader.fail(
            f"J does not match {len(aq)} codebook entries or exceeds J_MAX", layer=where, field="J"
        )
    low, high = act_code_range(contract["ba"], signed)
    if aq.size and (
        aq.min() < low or aq.max() > high or np.any(aq == 0) or np.any(np.diff(aq) <= 0)
    ):
        raise reader.fail(
            f"codebook entries must be non-zero, ascending and in [{low}, {high}]",
            layer=where,
            field="aq",
        )
    if not (np.isfinite(scale) and scale > 0):
        raise reader.fail("scale must be positive and finite", layer=where, field="scale")
    boundaries = None
    if f"map.{name}.boundaries.npy" in reader.manifest.get("sha256", {}):
        boundaries = reader.array(f"map.{name}.boundaries", np.float64, where)
        if not np.all(np.isfinite(boundaries)) or np.any(np.diff(boundaries) < 0):
            raise reader.fail(
                "boundaries must be finite and non-decreasing", layer=where, field="boundaries"
            )
    return Codebook(name, aq, float(scale), signed, boundaries, int(entry.get("calib_values", 0)))


def _read_fabric(reader: _Reader, layer: QLayer, entry: dict, contract: dict):
    name = layer.name
    shape = _shape(reader, entry, "weight_shape", name)
    if shape[0] != layer.out_shape[0]:
        raise reader.fail(
            f"weight rows {shape[0]} do not match {layer.out_shape[0]} outputs",
            layer=name,
            field="weight_shape",
        )
    form = reader.get(entry, "weight_form", name, str)
    count = int(np.prod(shape))
    if form == "dense":
        packed = reader.array(f"{name}.wcodes", np.uint8, name)
        if packed.size != (count + 1) // 2:
            raise reader.fail(
                f"{packed.size} bytes cannot hold {count} codes", layer=name, field="wcodes"
            )
        layer.codes = unpack_dense(packed, count).reshape(shape)
    elif form == "sparse":
        entries = reader.array(f"{name}.wsparse", np.uint8, name)
        per_row = reader.array(f"{name}.wrows", np.uint32, name)
        try:
            layer.codes = decode_sparse(entries, per_row, shape)
        except ValueError as exc:
            raise reader.fail(str(exc), layer=name, field="wsparse") from exc
    else:
        raise reader.fail(
            f"unknown weight form {form!r} (dense or sparse)", layer=name, field="weight_form"
        )
    layer.weight_form = form
    layer.wq = reader.array(f"{name}.wq", np.int16, name).astype(np.int64)
    low, high = weight_code_range(contract["bw"])
    wq = layer.wq
    if len(wq) + 1 > contract["K_MAX"] or reader.get(entry, "K", name, int) != len(wq) + 1:
        raise reader.fail(
            "K does not match the weight codebook or exceeds K_MAX", layer=name, field="K"
        )
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
    if not (np.isfinite(layer.w_scale) and layer.w_scale > 0):
        raise reader.fail("w_scale must be positive and finite", layer=name, field="w_scale")
    layer.bias = reader.array(f"{name}.bias", np.int64, name)
    if layer.bias.size != shape[0]:
        raise reader.fail(
            f"{layer.bias.size} biases for {shape[0]} outputs", layer=name, field="bias"
        )
    if layer.out_map is not None:
        layer.thresholds = reader.array(f"{name}.thresholds", np.int64, name)


def check_layer_tables(model: KcnnModel, contract: dict, fail) -> None:
    """Codebook links, thresholds and the accumulator proof (DESIGN sections 1 and 4).

    ``fail(message, layer, field)`` returns the exception to raise.
    """
    limit = (1 << (contract["ACC_BITS"] - 1)) - 1
    for layer in model.layers:
        for key in ("in_map", "out_map"):
            ref = getattr(layer, key)
            if ref is not None and ref not in model.maps:
                raise fail(f"refers to unknown map {ref!r}", layer.name, key)
        if not layer.is_fabric:
            continue
        book = model.maps[layer.in_map]
        if layer.thresholds is not None:
            t = layer.thresholds
            if len(t) != model.maps[layer.out_map].J - 1:
                raise fail(
                    f"{len(t)} thresholds for J'={model.maps[layer.out_map].J}",
                    layer.name,
                    "thresholds",
                )
            if t.size and (t[0] < 1 or np.any(np.diff(t) < 0)):
                raise fail(
                    "thresholds must be non-decreasing with T[1] >= 1", layer.name, "thresholds"
                )
            if t.size and np.abs(t).max() > limit:
                raise fail(
                    f"a threshold does not fit ACC_BITS={contract['ACC_BITS']}",
                    layer.name,
                    "thresholds",
                )
        a_max = int(np.abs(book.aq).max()) if book.aq.size else 0
        w_abs = np.concatenate([[0], np.abs(layer.wq)])
        per_row = w_abs[layer.codes.reshape(layer.codes.shape[0], -1)].sum(axis=1)
        bound = np.abs(layer.bias) + per_row * a_max
        if bound.size and int(bound.max()) > limit:
            worst = int(np.argmax(bound))
            raise fail(
                f"accumulator proof fails: output {worst} can reach {int(bound.max())}"
                f" > 2^{contract['ACC_BITS'] - 1}-1",
                layer.name,
                "accumulator",
            )


def load(path) -> KcnnModel:
    """Load and validate a `.kcnn`; every problem raises :class:`KcnnError`."""
    path = Path(path)
    if not path.is_file():
        raise KcnnError("no such .kcnn file", file=path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise KcnnError(f"not a .kcnn file (not a zip archive): {exc}", file=path) from exc
    with archive:
        try:
            manifest = json.loads(archive.read(MANIFEST))
        except KeyError:
            raise KcnnError("manifest.json is missing", file=path, field=MANIFEST) from None
        except (ValueError, zipfile.BadZipFile, OSError, EOFError) as exc:
            raise KcnnError(
                f"manifest.json is unreadable: {exc}", file=path, field=MANIFEST
            ) from exc
        return _from_manifest(_Reader(path, archive, manifest))


def _from_manifest(reader: _Reader) -> KcnnModel:
    manifest = reader.manifest
    version = reader.get(manifest, "format_version")
    if version != FORMAT_VERSION:
        raise reader.fail(
            f"format version {version} is not supported (this kcnn reads {FORMAT_VERSION})",
            field="format_version",
        )
    contract = reader.get(manifest, "contract", kind=dict)
    if contract != ARITHMETIC_CONTRACT:
        raise reader.fail(
            f"built for arithmetic contract {contract}, this kcnn implements {ARITHMETIC_CONTRACT}",
            field="contract",
        )
    input_spec = reader.get(manifest, "input", kind=dict)
    input_shape = _shape(reader, input_spec, "shape", "input")
    maps = {
        name: _read_codebook(reader, name, entry, contract)
        for name, entry in reader.get(manifest, "maps", kind=dict).items()
    }
    if "input" not in maps or maps["input"].boundaries is None:
        raise reader.fail(
            "the input map and its boundaries are missing", layer="input", field="maps"
        )
    layers = []
    for entry in reader.get(manifest, "layers", kind=list):
        name = reader.get(entry, "name", kind=str)
        op = reader.get(entry, "op", name, str)
        if op not in ("conv", "fc", "maxpool", "flatten", "lrn", "softmax"):
            raise reader.fail(f"unknown op {op!r}", layer=name, field="op")
        layer = QLayer(
            name=name,
            op=op,
            in_shape=_shape(reader, entry, "in_shape", name),
            out_shape=_shape(reader, entry, "out_shape", name),
            attrs=reader.get(entry, "attrs", name, dict),
            relu=reader.get(entry, "relu", name, bool),
            nodes=list(entry.get("nodes", [])),
            in_map=entry.get("in_map"),
            out_map=entry.get("out_map"),
        )
        if layer.is_fabric:
            _read_fabric(reader, layer, entry, contract)
        layers.append(layer)
    if not any(layer.is_fabric for layer in layers):
        raise reader.fail("no fabric layer", field="layers")
    meta = {
        k: v
        for k, v in manifest.items()
        if k not in ("format_version", "model", "contract", "input", "maps", "layers", "sha256")
    }
    model = KcnnModel(reader.get(manifest, "model", kind=str), input_shape, layers, maps, meta)
    check_layer_tables(model, contract, lambda msg, layer, fld: reader.fail(msg, layer, fld))
    return model
