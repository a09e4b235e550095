"""The step planner: a model and an overlay's build parameters -> the steps of a frame.

Every layer whose op runs as a fabric step (conv, fc, max-pool, LRN) becomes one step, or
several when it does not fit the kernel in one pass (bands of output rows, a chain of
pools, input blocks); how an op cuts its layer is its ``tile`` in :mod:`kcnn.ops`, what
the tilings share is :mod:`kcnn.tiling`. numpy only: the board, the C-sim back-end and
the estimate share it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from kcnn.config import BuildParams
from kcnn.errors import KcnnError
from kcnn.model import Layer, Model
from kcnn.protocol import ceil_div
from kcnn.tiling import Plan, Step, WindowTooLarge


def _fabric_sequence(model: Model) -> tuple[list[Layer], list[Layer]]:
    """The layers that become steps, in order, and the trailing host ops. Layers that
    only place codes (Concat, shuffle, a flatten that is not a step's format) and host ops
    between maps run on the host, around the steps."""
    steps, tail = [], []
    for layer in model.layers:
        if layer.kind.fabric_step:
            if tail:
                raise KcnnError(
                    "a fabric layer follows a host op on the logits", layer=layer.name, field="op"
                )
            steps.append(layer)
        elif layer.kind.on_logits:
            tail.append(layer)
    if not steps:
        raise KcnnError("the model has no fabric layer", field="layers")
    return steps, tail


def _reads(layer: Layer) -> str:
    return "FLAT" if layer.kind.reads_vector or len(layer.in_shape) == 1 else "BLOCKED"


def chained_inputs(model: Model, layers: list[Layer]) -> dict[str, bool]:
    """Per step layer: whether its input map is the answer of the step layer before it
    (possibly through a flatten), which the kernel then leaves in its map slot."""
    chained = {}
    for n, layer in enumerate(layers):
        source = layer.inputs[0]
        while source != "input" and model.layer(source).kind.shape_only:
            source = model.layer(source).inputs[0]
        chained[layer.name] = n > 0 and source == layers[n - 1].name
    return chained


def plan_model(model: Model, params: BuildParams | None = None) -> Plan:
    """Every step of one frame of ``model`` on an overlay built with ``params``."""
    params = params or BuildParams()
    layers, tail = _fabric_sequence(model)
    chained = chained_inputs(model, layers)
    readers = model.consumers()
    formats = []
    for n, layer in enumerate(layers):
        nxt = layers[n + 1] if n + 1 < len(layers) else None
        if layer.is_fabric and layer.thresholds is None:
            if nxt is not None:
                raise KcnnError(
                    "a layer that emits acc must be the last fabric layer",
                    layer=layer.name,
                    field="thresholds",
                )
            formats.append("ACC")
        elif nxt is not None and chained[nxt.name]:
            formats.append(_reads(nxt))
        else:
            # The host takes the answer (a feature extractor's end, a branch, a Concat).
            formats.append("FLAT" if len(layer.out_shape) == 1 else "BLOCKED")
    steps = []
    for n, layer in enumerate(layers):
        in_format = _reads(layer)
        if layer.inputs[0] == "input" and layer.is_fabric and not layer.kind.reads_vector:
            in_format = "F32"  # the kernel encodes the float image itself
        steps.extend(_layer_steps(model, layer, len(steps), in_format, formats[n], params))
    # The host writes a step's map when it is a band or an input block (cut from the
    # host's copy), when its layer reads a map the step before did not answer, or when
    # the step before answers something the host must finish first (bands to join, blocks
    # to add, a grid to subsample); otherwise the answer before it lands in its map slot.
    for before, step in zip([None, *steps[:-1]], steps, strict=True):
        # Bands, input blocks and the pools of a chain share their layer's name.
        starts = before is None or before.layer.name != step.layer.name
        step.host_in = (
            step.band is not None
            or step.part is not None
            or (before is not None and _host_finishes(before))
            or (starts and before is not None and not chained.get(step.layer.name, False))
        )
    for step, nxt in zip(steps[:-1], steps[1:], strict=True):
        step.host_out = nxt.host_in or _read_elsewhere(model, step, nxt, readers)
    return Plan(model, params, steps, tail)


def _read_elsewhere(model: Model, step: Step, nxt: Step, readers) -> bool:
    """Whether another reader than the next step needs the answer of ``step``'s layer
    (a branch, a Concat, a host op): the host reads it then."""
    if nxt.layer.name == step.layer.name or step.layer.name not in readers:
        return False
    pending = list(readers[step.layer.name])
    while pending:
        reader = pending.pop()
        if reader is nxt.layer:
            continue
        if reader.kind.shape_only and len(readers.get(reader.name, [])) == 1:
            pending.extend(readers[reader.name])
            continue
        return True
    return False


def _host_finishes(step: Step) -> bool:
    """Whether the host must finish ``step``'s answer before the next step can read it."""
    return step.band is not None or step.part is not None or step.host_stride is not None


def _layer_steps(model, layer: Layer, index: int, in_format: str, out_format: str, params):
    """A layer's steps: one, bands of output rows, or input blocks when its window does
    not fit the kernel in one pass."""
    try:
        made = layer.kind.tile(model, layer, index, in_format, out_format, params)
    except WindowTooLarge as whole:
        named = KcnnError(whole.message, layer=layer.name, field=whole.field)
        if not layer.is_fabric:
            raise named from whole
        return split_along_input(model, layer, index, out_format, params, named)
    return made if isinstance(made, list) else [made]


def split_along_input(model, layer: Layer, index, out_format, params, whole) -> list[Step]:
    """The steps of ``layer`` cut into the fewest equal input blocks whose windows fit
    (DESIGN section 4: input blocks with the partial ``acc`` carried in int32). Each block
    is the same layer on its share of the input: input channels for a conv (the same
    channels of every group), input elements for an fc (in multiples of ``P``, so that
    every block starts in partition 0). The host writes each block's map and adds the
    blocks' ``ACC`` answers."""
    op = layer.kind
    weights, by_partition = op.input_units(layer)
    n_in, align = weights.shape[1], (params.P if by_partition else 1)
    units = ceil_div(n_in, align)
    count = 2
    while count <= units:
        cuts = [min(n_in, align * (units * k // count)) for k in range(count + 1)]
        steps: list[Step] = []
        try:
            for k, (t0, t1) in enumerate(zip(cuts[:-1], cuts[1:], strict=True)):
                codes, in_shape = op.block(layer, weights, t0, t1)
                block = replace(
                    layer,
                    in_shape=in_shape,
                    codes=codes,
                    bias=layer.bias if k == 0 else np.zeros_like(layer.bias),
                    thresholds=None,
                    out_map=None,
                )
                made = op.tile(model, block, index + len(steps), _reads(layer), "ACC", params)
                for step in made if isinstance(made, list) else [made]:
                    step.layer, step.part = layer, (t0, t1)
                    steps.append(step)
        except WindowTooLarge:
            count += max(1, count // 4)  # few blocks are tried one by one, many sparsely
            continue
        return steps
    raise whole
