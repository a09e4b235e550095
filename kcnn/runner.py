"""One frame runner for the back-ends that run steps (``csim`` and ``board``).

The plan (:mod:`kcnn.plan`) fixes the steps; an engine only says how one frame's steps
reach a kernel (:meth:`StepEngine.run_frame`). Everything around the fabric is here, once:
the network input written in the first step's format, the logits and trailing host ops,
and the per-layer trace. The answer of each step is checked against the protocol by
:func:`check_answer`, the one place that reads a trailer. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kcnn import hostops
from kcnn.codes import encode_input, encode_thresholds
from kcnn.config import BuildParams
from kcnn.errors import KcnnError
from kcnn.kfile import KcnnModel
from kcnn.plan import Plan, Step, plan_model
from kcnn.protocol import decode_trailer, pack_f32, pack_map, unpack_map


class StepFault(KcnnError):
    """A kernel refused a step or answered with the wrong length (names step and job)."""


def check_answer(step: Step, words: np.ndarray, received: int) -> np.ndarray:
    """The output words of a step's answer (``received`` words, trailer included), or a
    :class:`StepFault` naming the layer, the job and the status."""
    where = f"step {step.index} (layer {step.layer.name!r})"
    trailer = decode_trailer(words[received - 1]) if received else None
    if trailer is None:
        raise StepFault(
            f"{where}: the answer of {received} words ends without a trailer "
            f"(expected {step.out_words} output words and a trailer)",
            layer=step.layer.name,
            field="answer",
        )
    status, job = trailer
    if status != "OK":
        which = "the descriptor, constants or map" if job == 0xFFFF else f"job {job}"
        raise StepFault(
            f"{where}: the kernel refused {which} with status {status} "
            f"({received - 1} of {step.out_words} output words came back)",
            layer=step.layer.name,
            field="status",
        )
    if received != step.out_words + 1:
        raise StepFault(
            f"{where}: {received - 1} output words and a trailer came back, expected "
            f"{step.out_words}",
            layer=step.layer.name,
            field="answer",
        )
    return words[: step.out_words]


def step_map_words(step: Step, source: np.ndarray, out: np.ndarray | None = None):
    """A step's map section from the host's copy of its input map: the float32 image of
    an ``F32`` first step (padded and cut into its band's rows here), else the codes of the
    whole map, of which an input block takes its channels (elements of an fc) and a band
    its rows."""
    if step.in_format == "F32":
        top, left, bottom, right = step.input_padding
        x = np.asarray(source, np.float32)
        if any(step.input_padding):
            c, h, w = x.shape
            padded = np.zeros((c, h + top + bottom, w + left + right), np.float32)
            padded[:, top : top + h, left : left + w] = x
            x = padded
        if step.band is not None:
            s2d = step.fields["s2d"]
            x = x[:, s2d * step.band[0] : s2d * step.band[1]]
        return pack_f32(x, out)
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


def first_map_words(step: Step, x: np.ndarray, boundaries, out: np.ndarray | None = None):
    """One image as the first step's map section: float32 for an ``F32`` input (the kernel
    encodes it), else the host-encoded codes."""
    if step.in_format == "F32":
        return step_map_words(step, x, out)
    return step_map_words(step, encode_input(x, boundaries).reshape(step.layer.in_shape), out)


@dataclass
class Frame:
    """What one frame left: per step its output words (None where not read), and per
    fabric layer its output map (codes, or ``acc`` for an ``ACC`` layer)."""

    answers: list[np.ndarray | None]
    layers: dict[str, np.ndarray]


class StepEngine:
    """Runs a model's frames as steps; subclasses supply :meth:`run_frame`."""

    def __init__(self, model: KcnnModel, params: BuildParams):
        self.model = model
        self.params = params
        self.plan: Plan = plan_model(model, params)

    def map_slot(self, step: Step) -> np.ndarray | None:
        """Where the host may write ``step``'s map section directly (the board's DMA
        buffer), or None."""
        return None

    def execute(self, step: Step, map_words: np.ndarray | None, need: bool) -> np.ndarray | None:
        """Run one step. ``map_words`` is its map section, or None when the previous step's
        answer is its map already (the engine keeps it); returns the step's output words,
        or None when ``need`` is false and the engine did not read them."""
        raise NotImplementedError

    def run_frame(self, x: np.ndarray, trace: bool) -> Frame:
        """One image through every step: each step's output words (with ``trace`` false
        only those the host needs are read) and the fabric layers' output maps (with
        ``trace`` false only the last layer's)."""
        steps = self.plan.steps
        book = self.model.maps["input"]
        first = steps[0]
        # The host's copy of the map the next host-written step reads; the first step's map
        # is always written, and a banded or blocked first layer reads it again.
        source = x
        if first.in_format != "F32":
            source = encode_input(x, book.boundaries).reshape(first.layer.in_shape)
        frame = Frame([], {})
        pieces = None  # the output of a layer run as bands or input blocks, as it is joined
        for n, step in enumerate(steps):
            words = None
            if n == 0 or step.host_in:
                words = step_map_words(step, source, self.map_slot(step))
            last = n + 1 == len(steps)
            whole = step.band is None and step.part is None
            need = trace or step.host_out or not whole or last
            answer = self.execute(step, words, need)
            frame.answers.append(answer)
            if answer is None:
                continue
            value = _unpack(step, answer)
            if not whole:
                if pieces is None:
                    dtype = np.int64 if step.out_format == "ACC" else np.uint8
                    pieces = np.zeros(step.grid_shape or step.layer.out_shape, dtype)
                at = np.s_[:, step.band[2] : step.band[3]] if step.band is not None else np.s_[...]
                if step.part is None:
                    pieces[at] = value
                else:
                    pieces[at] += value  # the blocks' partial sums, exact in int64
                if not last and steps[n + 1].layer is step.layer:
                    continue
                value, pieces = pieces, None
                if step.part is not None and step.layer.thresholds is not None:
                    value = encode_thresholds(value, step.layer.thresholds)
            if step.host_stride is not None:
                a, b = step.host_stride
                value = value[:, ::a, ::b][:, : step.layer.out_shape[1], : step.layer.out_shape[2]]
            if step.host_out:
                source = value.reshape(step.layer.out_shape)
            if trace or last:
                frame.layers[step.layer.name] = value
        return frame

    def run(self, x: np.ndarray, trace: bool = False):
        """Same contract as :meth:`kcnn.sim.engine.Simulator.run`."""
        model, plan = self.model, self.plan
        last = plan.last
        ends_in_acc = last.layer.op in ("conv", "fc") and last.layer.thresholds is None
        keep = trace or not ends_in_acc
        acc = np.zeros((x.shape[0], *last.layer.out_shape), np.int64)
        maps: dict[str, list] = {}
        for n in range(x.shape[0]):
            layers = self.run_frame(x[n], keep).layers
            if ends_in_acc:
                acc[n] = layers[last.layer.name]
            for name, value in layers.items():
                maps.setdefault(name, []).append(value)
        out = logits = None
        if ends_in_acc:
            layer = last.layer
            logits = acc.astype(np.float64) * (layer.w_scale * model.maps[layer.in_map].scale)
            out = logits
            for host in plan.host_tail:
                out = hostops.apply(host.op, host.attrs, out)
        traced = {}
        if keep:
            traced["input"] = encode_input(x, model.maps["input"].boundaries)
            previous = "input"
            for q in model.layers:
                if q.name in maps:
                    traced[q.name] = np.stack(maps[q.name])
                elif q.op == "flatten":
                    traced[q.name] = traced[previous].reshape(x.shape[0], -1)
                else:
                    continue
                previous = q.name
        return out, logits, traced


def _unpack(step: Step, words: np.ndarray) -> np.ndarray:
    """A step's answer as its output map (codes, or accumulators for ACC)."""
    shape = step.out_shape if step.out_format != "FLAT" else (int(np.prod(step.out_shape)),)
    return unpack_map(words, step.out_format, shape).reshape(step.out_shape)
