"""One frame runner for the back-ends that run steps (``csim`` and ``board``).

The plan (:mod:`kcnn.plan`) fixes the steps; an engine only says how one frame's steps
reach a kernel (:meth:`StepEngine.run_frame`). Everything around the fabric is here, once:
the network input written in the first step's format, the logits and trailing host ops,
and the per-layer trace. The answer of each step is checked against the protocol by
:func:`check_answer`, the one place that reads a trailer. numpy only.
"""

from __future__ import annotations

import numpy as np

from kcnn import hostops
from kcnn.codes import encode_input
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


def first_map_words(step: Step, x: np.ndarray, boundaries, out: np.ndarray | None = None):
    """One image as the first step's map section: float32 for an ``F32`` input (the kernel
    encodes it), else the host-encoded codes."""
    if step.in_format == "F32":
        top, left, bottom, right = step.input_padding
        if any(step.input_padding):
            c, h, w = x.shape
            padded = np.zeros((c, h + top + bottom, w + left + right), np.float32)
            padded[:, top : top + h, left : left + w] = x
            x = padded
        return pack_f32(x, out)
    codes = encode_input(x, boundaries)
    return pack_map(codes.reshape(step.in_shape), step.in_format)


class StepEngine:
    """Runs a model's frames as steps; subclasses supply :meth:`run_frame`."""

    def __init__(self, model: KcnnModel, params: BuildParams):
        self.model = model
        self.params = params
        self.plan: Plan = plan_model(model, params)

    def run_frame(self, x: np.ndarray, trace: bool) -> list[np.ndarray | None]:
        """One image through every step; returns each step's output words (with ``trace``
        false only the last one is needed, the others may be None)."""
        raise NotImplementedError

    def run(self, x: np.ndarray, trace: bool = False):
        """Same contract as :meth:`kcnn.sim.engine.Simulator.run`."""
        model, plan = self.model, self.plan
        last = plan.last
        acc = np.zeros((x.shape[0], *last.out_shape), np.int64)
        maps: dict[str, list] = {}
        for n in range(x.shape[0]):
            answers = self.run_frame(x[n], trace or last.out_format != "ACC")
            if last.out_format == "ACC":
                acc[n] = unpack_map(answers[-1], "ACC", last.out_shape)
            if trace or last.out_format != "ACC":
                for step, words in zip(plan.steps, answers, strict=True):
                    if words is None:
                        continue
                    shape = (
                        step.out_shape
                        if step.out_format != "FLAT"
                        else (int(np.prod(step.out_shape)),)
                    )
                    value = unpack_map(words, step.out_format, shape)
                    maps.setdefault(step.layer.name, []).append(value.reshape(step.out_shape))
        out = logits = None
        if last.out_format == "ACC":
            layer = last.layer
            logits = acc.astype(np.float64) * (layer.w_scale * model.maps[layer.in_map].scale)
            out = logits
            for host in plan.host_tail:
                out = hostops.apply(host.op, host.attrs, out)
        traced = {}
        if trace or last.out_format != "ACC":
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
