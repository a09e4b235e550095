"""The one graph runner, and the fabric that runs a model's steps on a kernel.

:class:`GraphRunner` walks a model's layers once for every back-end: it encodes the input,
hands each layer to its *fabric* when the fabric runs it and otherwise runs the op's own
numpy model (:mod:`kcnn.ops`), turns the last ``acc`` into logits, applies the trailing
host ops and keeps the trace. Fabrics compose with it, none inherits:

- :class:`kcnn.sim.engine.NumpyFabric`: whole layers at a time on a batch (the simulator);
- :class:`StepFabric`: a frame at a time, the planned steps (:mod:`kcnn.plan`) sent to a
  *device*: the C-sim kernel (:mod:`kcnn.sim.csim`) or the board (:mod:`kcnn.host.board`).

numpy only.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from kcnn.codes import encode_input, encode_thresholds
from kcnn.config import BuildParams
from kcnn.model import Layer, Model
from kcnn.plan import chained_inputs, plan_model
from kcnn.protocol import RAW_FORMATS, pack_f32, pack_map, pack_u8, unpack_map
from kcnn.tiling import Plan, Step


class Fabric(Protocol):
    """What the runner asks of a fabric."""

    #: Runs a whole batch at once (else the runner hands it one frame at a time).
    batched: bool

    def begin(self, x: np.ndarray) -> None:
        """A new batch (a frame when not batched) of float inputs starts."""

    def runs(self, layer: Layer) -> bool:
        """Whether this fabric runs ``layer`` (else the runner runs the op's numpy model,
        with the runner as its context: ops that need no tables, host ops)."""

    def keeps(self, tensor: str) -> bool:
        """Whether the fabric itself hands ``tensor`` to every reader it runs (so the host
        needs no copy of it)."""

    def run_layer(self, layer: Layer, inputs: list, need: bool):
        """``layer`` on its input maps (an entry None: the fabric holds it); returns the
        output map, or None when ``need`` is false and the fabric keeps it."""

    def close(self) -> None: ...


class GraphRunner:
    """Runs a model on a fabric. ``run(x, trace)`` returns ``(output, logits, maps)``: the
    model output (trailing host ops applied), the float64 logits ``acc * s_w * s_a``, and
    with ``trace`` every map's codes and the last layer's ``acc`` (int64) by layer name
    (``"input"`` for the encoded input)."""

    def __init__(self, model: Model, fabric: Fabric):
        self.model = model
        self.fabric = fabric
        self._readers = model.consumers()
        last = model.layers[model.last_fabric_index()]
        self._logits_layer = last if last.thresholds is None else None
        self._last_read: dict[str, list[str]] = {}  # layer -> tensors it is the last to read
        final = {}
        for layer in model.layers:
            for tensor in layer.inputs:
                final[tensor] = layer.name
        for tensor, layer in final.items():
            self._last_read.setdefault(layer, []).append(tensor)

    def run(self, x: np.ndarray, trace: bool = False):
        if self.fabric.batched:
            return self._walk(x, trace)
        frames = [self._walk(x[n : n + 1], trace) for n in range(len(x))]
        out, logits = (
            None if frames[0][k] is None else np.concatenate([f[k] for f in frames]) for k in (0, 1)
        )
        maps = {name: np.concatenate([f[2][name] for f in frames]) for name in frames[0][2]}
        return out, logits, maps

    def _walk(self, x: np.ndarray, trace: bool):
        model, fabric = self.model, self.fabric
        values = {"input": encode_input(model_input(model, x), model.maps["input"].boundaries)}
        fabric.begin(x)
        maps = dict(values) if trace else {}
        out = logits = None
        for layer in model.layers:
            if layer.kind.on_logits:
                out = layer.kind.simulate(self, layer, [out])
                continue
            if logits is not None and layer.kind.shape_only:
                # (N, C, 1, 1) logits of a classifier conv, flattened.
                out, logits = (layer.kind.simulate(self, layer, [v]) for v in (out, logits))
                continue
            inputs = [values[t] for t in layer.inputs]
            if fabric.runs(layer):
                readers = self._readers[layer.name]
                need = trace or not readers or not fabric.keeps(layer.name)
                need = need or any(not fabric.runs(r) for r in readers)
                value = fabric.run_layer(layer, inputs, need or layer is self._logits_layer)
            else:
                value = layer.kind.simulate(self, layer, inputs)
            values[layer.name] = value
            for tensor in self._last_read.get(layer.name, ()):
                if not trace:
                    del values[tensor]  # no later layer reads it
            if layer is self._logits_layer:
                scale = layer.w_scale * model.maps[layer.in_map].scale
                out = logits = value.astype(np.float64) * scale
            if trace:
                maps[layer.name] = value
        return out, logits, maps


# ---- steps on a kernel ----------------------------------------------------------------


class StepDevice(Protocol):
    """A kernel that runs steps: the C-sim library or the board's overlay."""

    def begin_frame(self) -> None: ...

    def map_slot(self, step: Step) -> np.ndarray | None:
        """Where the host may write ``step``'s map section directly (the board's DMA
        buffer; for a map split over streams A and B the pair of slots that take its even
        and its odd words, which ``kcnn.protocol.pack_f32`` fills), or None."""

    def shortcut_slot(self, step: Step) -> np.ndarray | None:
        """Where the host may write ``step``'s shortcut section directly, or None."""

    def execute(self, step: Step, map_words, shortcut, need: bool):
        """Run one step. ``map_words`` is its map section, or None when the previous step's
        answer is its map already (the device keeps it); ``shortcut`` its shortcut section
        (None when it has none); returns the step's output words, or None when ``need`` is
        false and the device did not read them."""

    def close(self) -> None: ...


def step_map_words(step: Step, source: np.ndarray, out: np.ndarray | None = None):
    """A step's map section from the host's copy of its input map: the float32 image of
    an ``F32`` first step (padded and cut into its band's rows here), else the codes of the
    whole map, of which an input block takes its channels (elements of an fc), a group
    block its groups' channels and a band its rows."""
    if step.group_block is not None:
        # Channel-major maps: the block's channels are a view, nothing is copied.
        source = source[step.group_block.in0 : step.group_block.in1]
    if step.in_format in RAW_FORMATS:
        # The image itself: float32 values, or uint8 pixels whose padding the kernel's
        # data window turns into code 0 (so its pixel value does not matter).
        top, left, bottom, right = step.input_padding
        dtype = np.uint8 if step.in_format == "U8" else np.float32
        x = np.asarray(source, dtype)
        if any(step.input_padding):
            c, h, w = x.shape
            padded = np.zeros((c, h + top + bottom, w + left + right), dtype)
            padded[:, top : top + h, left : left + w] = x
            x = padded
        if step.band is not None:
            s2d = step.fields["s2d"]
            x = x[:, s2d * step.band[0] : s2d * step.band[1]]
        return pack_u8(x, out) if step.in_format == "U8" else pack_f32(x, out)
    codes = np.asarray(source, np.uint8)
    if step.part is not None:
        t0, t1 = step.part
        if step.op == "FC":
            codes = codes.reshape(-1)[t0:t1]
        else:
            groups = step.fields["groups"]
            per_group = codes.shape[0] // groups
            codes = codes.reshape(groups, per_group, *codes.shape[1:])[:, t0:t1]
            codes = codes.reshape(-1, *codes.shape[2:])
    if step.band is not None:
        codes = codes[:, step.band[0] : step.band[1]]
    return pack_map(codes.reshape(step.in_shape), step.in_format)


def first_map_words(step: Step, x: np.ndarray, model: Model, out: np.ndarray | None = None):
    """One image as the first step's map section: float32 or uint8 pixels for an ``F32``
    or ``U8`` input (the kernel encodes it), else the host-encoded codes."""
    if step.in_format in RAW_FORMATS:
        return step_map_words(step, x, out)
    codes = encode_input(model_input(model, x[None])[0], model.maps["input"].boundaries)
    return step_map_words(step, codes.reshape(step.layer.in_shape), out)


def model_input(model: Model, x: np.ndarray) -> np.ndarray:
    """A batch as the model's float input: pixels through the model's mean and std."""
    return x if model.pixels is None else model.pixels.to_float(x)


class StepFabric:
    """A model's planned steps on a :class:`StepDevice`, one frame at a time.

    The device keeps each answer as the next step's map where it can; the host reads an
    answer only when it must finish it (bands and group blocks to join, input blocks to
    add, a grid to subsample), when the runner needs the map, or at the end. ``answers``
    holds the last frame's output words per step (None where not read)."""

    batched = False

    def __init__(self, model: Model, params: BuildParams, device: StepDevice):
        self.model = model
        self.params = params
        self.device = device
        self.plan: Plan = plan_model(model, params)
        self._steps: dict[str, list[Step]] = {}
        fabric_layers = [layer for layer in model.layers if layer.kind.fabric_step]
        # A flatten whose only reader is the step layer chained to its input is the
        # format of the answer in between.
        chained = chained_inputs(model, fabric_layers)
        readers = model.consumers()
        self._format_only = {
            layer.name
            for layer in model.layers
            if layer.kind.shape_only
            and len(readers[layer.name]) == 1
            and chained.get(readers[layer.name][0].name, False)
        }
        group = iter(fabric_layers)
        current = next(group)
        for n, step in enumerate(self.plan.steps):
            self._steps.setdefault(current.name, []).append(step)
            follows = n + 1 < len(self.plan.steps) and self.plan.steps[n + 1].layer is current
            if step.layer is current and not follows:
                current = next(group, None)
        self.answers: list[np.ndarray | None] = []

    def begin(self, x: np.ndarray) -> None:
        self._image = x[0]  # float32 values or uint8 pixels, as the model takes them
        self._source = None  # the host's copy of the map the next host-written step reads
        self.answers = []
        self.device.begin_frame()

    def runs(self, layer: Layer) -> bool:
        """The step layers, and the flattens between a step and the fc it feeds (the
        step's format); the host runs Concats, shuffles and host ops."""
        return layer.name in self._steps or layer.name in self._format_only

    def keeps(self, tensor: str) -> bool:
        steps = self._steps.get(tensor)
        return tensor in self._format_only or (steps is not None and not steps[-1].host_out)

    def run_layer(self, layer: Layer, inputs: list, need: bool):
        value = inputs[0]
        steps = self._steps.get(layer.name)
        if steps is None:  # flatten: the format of the step before
            return None if value is None else value.reshape(1, -1)
        if value is not None:
            self._source = value[0]
        pieces = None  # the output of a layer run as pieces, as it is joined
        result = None
        for n, step in enumerate(steps):
            words = None
            if step.index == 0 or step.host_in:
                source = self._image if step.in_format in RAW_FORMATS else self._source
                words = step_map_words(step, source, self.device.map_slot(step))
            shortcut = None
            if step.shortcut_words:
                shortcut = shortcut_map_words(step, inputs[1][0], self.device.shortcut_slot(step))
            ends_layer = n + 1 == len(steps)
            read = (need and ends_layer) or step.host_out or step.is_piece
            answer = self.device.execute(step, words, shortcut, read)
            self.answers.append(answer)
            if answer is None:
                continue
            value = _unpack(step, answer)
            if step.is_piece:
                if pieces is None:
                    dtype = np.int64 if step.out_format == "ACC" else np.uint8
                    pieces = np.zeros(step.grid_shape or step.layer.out_shape, dtype)
                at = _piece_place(step)
                if step.part is None:
                    pieces[at] = value
                else:
                    pieces[at] += value  # the blocks' partial sums, exact in int64
                if not ends_layer and steps[n + 1].layer is step.layer:
                    continue
                value, pieces = pieces, None
                if step.part is not None and step.layer.thresholds is not None:
                    value = _finish_blocks(step.layer, value, inputs)
            if step.host_stride is not None:
                a, b = step.host_stride
                shape = step.layer.out_shape
                value = value[:, ::a, ::b][:, : shape[1], : shape[2]]
            if step.host_out:
                self._source = value.reshape(step.layer.out_shape)
            result = value
        if result is None or not need:
            return None
        return result.reshape(1, *layer.out_shape)

    def close(self) -> None:
        self.device.close()


def _piece_place(step: Step) -> tuple[slice, ...]:
    """Where a piece's answer goes in its layer's joined output: its group block's
    channels and its band's rows (all of them for an input block's partial sums)."""
    channels = slice(None)
    if step.group_block is not None:
        channels = slice(step.group_block.out0, step.group_block.out1)
    if step.band is None:
        return (channels,)
    return channels, slice(step.band[2], step.band[3])


def _finish_blocks(layer: Layer, acc: np.ndarray, inputs: list) -> np.ndarray:
    """The threshold bank of a layer run as input blocks, on the host: the blocks' summed
    ``acc``, plus the residual table of its shortcut, through thresholds and interval
    codes (exact integers, as the kernel would)."""
    if layer.residual_table is not None:
        acc = acc + layer.residual_table[inputs[1][0].reshape(acc.shape)]
    index = encode_thresholds(acc, layer.thresholds)
    return index if layer.out_table is None else layer.out_table[index]


def shortcut_map_words(step: Step, codes: np.ndarray, out: np.ndarray | None = None):
    """A step's shortcut section from the host's copy of its second map: a residual conv
    or fc's shortcut in the step's output shape and format (its group block's channels,
    its band's output rows), an add step's map B in the map section's format (its band's
    rows)."""
    codes = np.asarray(codes, np.uint8)
    if step.op == "ADD":
        shape, fmt = step.in_shape, step.in_format
        rows = None if step.band is None else (step.band[0], step.band[1])
    else:
        shape, fmt = step.out_shape, step.out_format
        rows = None if step.band is None else (step.band[2], step.band[3])
        if step.group_block is not None:
            codes = codes[step.group_block.out0 : step.group_block.out1]
    if rows is not None:
        codes = codes[:, rows[0] : rows[1]]
    words = pack_map(codes.reshape(shape), fmt)
    if out is None:
        return words
    out[:] = words
    return out


def _unpack(step: Step, words: np.ndarray) -> np.ndarray:
    """A step's answer as its output map (codes, or accumulators for ACC)."""
    shape = step.out_shape if step.out_format != "FLAT" else (int(np.prod(step.out_shape)),)
    return unpack_map(words, step.out_format, shape).reshape(step.out_shape)
