"""The one model representation every part of KCNN works on (DESIGN section 1).

A model is its input, a list of layers and the codebooks of its encoded maps. The
quantizer builds it from ONNX (layers carry float weights until BuildTables gives them
integer tables); :mod:`kcnn.kfile` reads and writes it; the simulator, the planner and
the report read it. What an op *does* lives in its entry of :mod:`kcnn.ops`, never here.
numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kcnn.errors import KcnnError
from kcnn.ops import Op, op_named


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


@dataclass(frozen=True)
class Pixels:
    """A model that takes uint8 images: its float input is ``(float32(p) - mean[c]) /
    std[c]`` in float32, per channel ``c`` (docs/quantizer.md, "Pixel input"). The first
    conv then receives the pixels and encodes them on the fabric (format ``U8``)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def make(cls, mean, std, input_shape, where: str = "pixels") -> Pixels:
        """Per-channel ``mean`` and ``std`` (one value each, or one per channel) for a model
        whose input is ``input_shape``, checked: images ``(C, H, W)`` of at most
        ``PIXEL_CHANNELS`` channels, finite values, ``std > 0`` (the encoder's cut points
        need values rising with ``p``)."""
        from kcnn.protocol import LIMITS

        if len(input_shape) != 3:
            raise KcnnError(
                f"pixel input needs images (C, H, W), not input shape {tuple(input_shape)}",
                field=where,
            )
        channels = int(input_shape[0])
        if channels > LIMITS["PIXEL_CHANNELS"]:
            raise KcnnError(
                f"pixel input has {channels} channels; images of 1 to "
                f"{LIMITS['PIXEL_CHANNELS']} channels are supported",
                field=where,
            )
        values = []
        for name, given in (("mean", mean), ("std", std)):
            array = np.atleast_1d(np.asarray(given, np.float64)).reshape(-1)
            if array.size == 1:
                array = np.repeat(array, channels)
            if array.size != channels or not np.all(np.isfinite(array)):
                raise KcnnError(
                    f"pixel {name} {list(array)} is not 1 or {channels} finite values",
                    field=where,
                )
            values.append(tuple(float(np.float32(v)) for v in array))
        if min(values[1]) <= 0:
            raise KcnnError(f"pixel std {list(values[1])} must be above 0", field=where)
        return cls(*values)

    def to_float(self, p: np.ndarray) -> np.ndarray:
        """``(N, C, ...)`` pixels as the float32 input of the model."""
        shape = (1, -1) + (1,) * (np.ndim(p) - 2)
        mean = np.asarray(self.mean, np.float32).reshape(shape)
        std = np.asarray(self.std, np.float32).reshape(shape)
        return (np.asarray(p).astype(np.float32) - mean) / std

    def encoder(self, boundaries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The pixel encoder's tables (docs/job-format.md): cut points ``(C, J-2)``, the
        smallest pixel whose value lies above each boundary (256: none), and the pixel
        whose value is exactly 0 per channel (256: none); found from the host encoder's
        codes of all 256 pixels, and checked to give exactly those codes."""
        from kcnn.codes import encode_input

        pixels = np.arange(256)
        values = self.to_float(np.broadcast_to(pixels, (1, len(self.mean), 256)))[0]
        codes = encode_input(values, boundaries).astype(np.int64)
        b = np.asarray(boundaries, np.float64)
        # values rise with p (std > 0): the first pixel above each boundary, 256 for none
        above = values.astype(np.float64)[:, :, None] > b[None, None, :]
        cuts = np.where(above.any(axis=1), above.argmax(axis=1), 256)
        zero = np.array([int(np.flatnonzero(v == 0)[0]) if np.any(v == 0) else 256 for v in values])
        counted = 1 + (pixels[None, :, None] >= cuts[:, None, :]).sum(axis=2)
        counted = np.where(pixels[None, :] == zero[:, None], 0, counted)
        if not np.array_equal(counted, codes):
            raise KcnnError(
                "the pixel encoder's cut points do not reproduce the input encoder",
                field="pixels",
            )
        return cuts.astype(np.int64), zero.astype(np.int64)


@dataclass
class Layer:
    """One layer: its output is the tensor named after it. ``attrs`` by op are listed in
    :mod:`kcnn.ops`; ``nodes`` are the ONNX nodes folded into it, for error messages.

    ``inputs`` name the tensors it reads (``"input"`` or earlier layers): a model is a DAG.
    ``in_map`` is the codebook of its first input where it decodes it, ``out_map`` the
    codebook of the codes it emits (several layers joined by a Concat emit one codebook).
    ``activation`` is the monotone activation folded into its threshold bank (``{"op":
    "relu"}``, ``{"op": "clip", "min": 0.0, "max": 6.0}``, ...; None: linear).

    Before BuildTables a weighted layer carries its float ``weight`` (``(C_out, C_in/groups,
    kh, kw)`` for conv, ``(out, in)`` for fc) and ``float_bias``; after it, its integer
    tables: ``codes`` (0 = pruned), ``wq``, ``w_scale``, ``bias`` in accumulator units,
    ``thresholds`` (None: the layer emits ``acc``) and ``out_table`` (the code of each
    interval of the threshold bank; None: the interval index is the code). A weighted layer
    with a second input adds ``residual_table[code]`` of that input to its accumulators
    (DESIGN section 1, residual Add); an ``add`` layer sums ``add_tables[k][code]`` of its
    two inputs.
    """

    name: str
    op: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    attrs: dict = field(default_factory=dict)
    activation: dict | None = None
    nodes: list[str] = field(default_factory=list)
    node_ops: list[str] = field(default_factory=list)  # the ONNX op type of each node
    inputs: list[str] = field(default_factory=list)
    in_map: str | None = None
    out_map: str | None = None
    weight: np.ndarray | None = None
    float_bias: np.ndarray | None = None
    codes: np.ndarray | None = None
    wq: np.ndarray | None = None
    w_scale: float = 0.0
    bias: np.ndarray | None = None
    thresholds: np.ndarray | None = None
    out_table: np.ndarray | None = None
    residual_table: np.ndarray | None = None
    add_tables: list[np.ndarray] | None = None
    code_table: np.ndarray | None = None  # codemap: output code per (channel, input code)
    weight_form: str = "dense"

    @property
    def kind(self) -> Op:
        """The op's registry entry (:mod:`kcnn.ops`)."""
        return op_named(self.op)

    @property
    def is_fabric(self) -> bool:
        """A weighted layer: its products run on the cluster PEs."""
        return self.kind.weighted

    @property
    def K(self) -> int:  # noqa: N802 - the paper's symbol
        return 0 if self.wq is None else len(self.wq) + 1

    @property
    def thresholded(self) -> bool:
        """It ends in a threshold bank (a weighted or an add layer)."""
        return self.kind.thresholded

    @property
    def residual(self) -> str | None:
        """The tensor a weighted layer adds through ``residual_table`` (None: no residual)."""
        return self.inputs[1] if self.is_fabric and len(self.inputs) > 1 else None


@dataclass
class Model:
    """A model: float layers after import, integer tables and codebooks after quantizing."""

    name: str
    input_shape: tuple[int, ...]
    layers: list[Layer]
    maps: dict[str, Codebook] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)  # source sha256, kcnn version, config, ...
    pixels: Pixels | None = None  # uint8 image input (None: float32 input)

    def __post_init__(self):
        # A layer that names no input reads the layer before it (a chain).
        previous = "input"
        for layer in self.layers:
            if not layer.inputs:
                layer.inputs = [previous]
            previous = layer.name

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def fabric_layers(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.is_fabric]

    def last_fabric_index(self) -> int:
        return max(i for i, layer in enumerate(self.layers) if layer.is_fabric)

    def shape_of(self, tensor: str) -> tuple[int, ...]:
        return tuple(self.input_shape) if tensor == "input" else self.layer(tensor).out_shape

    def consumers(self) -> dict[str, list[Layer]]:
        """Per tensor, the layers that read it, in order."""
        readers: dict[str, list[Layer]] = {"input": []}
        for layer in self.layers:
            readers.setdefault(layer.name, [])
            for tensor in layer.inputs:
                readers.setdefault(tensor, []).append(layer)
        return readers

    def codebook_of(self, tensor: str) -> str | None:
        """The codebook of a tensor's codes: its producer's ``out_map``, through the ops
        that only move codes (max-pool, flatten, concat); None for ``acc`` or logits."""
        while tensor != "input":
            layer = self.layer(tensor)
            if not layer.kind.acts_on_codes:
                return layer.out_map
            tensor = layer.inputs[0]
        return "input"

    def save(self, path) -> Path:
        from kcnn.kfile import save

        return save(self, path)
