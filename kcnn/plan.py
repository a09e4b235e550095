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
from kcnn.tiling import GroupBlock, Plan, Step, WindowTooLarge


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
            # The kernel encodes the image itself: uint8 pixels, or float32 values.
            in_format = "U8" if model.pixels is not None else "F32"
        steps.extend(_layer_steps(model, layer, len(steps), in_format, formats[n], params))
    # The host writes a step's map when it is a piece of its layer (a band, an input block
    # or a group block, cut from the host's copy), when its layer reads a map the step
    # before did not answer, or when the step before answers something the host must
    # finish first (pieces to join, a grid to subsample); otherwise the answer before it
    # lands in its map slot.
    for before, step in zip([None, *steps[:-1]], steps, strict=True):
        # Pieces of a layer and the pools of a chain share their layer's name.
        starts = before is None or before.layer.name != step.layer.name
        step.host_in = (
            step.is_piece
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
    return step.is_piece or step.host_stride is not None


def _layer_steps(model, layer: Layer, index: int, in_format: str, out_format: str, params):
    """A layer's steps: one, bands of output rows, blocks of groups or input blocks when
    it does not fit the kernel in one pass."""
    try:
        return _tiled(model, layer, index, in_format, out_format, params)
    except WindowTooLarge as whole:
        named = KcnnError(whole.message, layer=layer.name, field=whole.field)
        if not layer.is_fabric:
            raise named from whole
        if layer.attrs.get("groups", 1) > 1:
            try:
                return split_along_groups(model, layer, index, in_format, out_format, params)
            except WindowTooLarge as one_group:
                # Not even one group a step fits: input blocks are what is left, and the
                # refusal says why one group does not fit.
                named = KcnnError(
                    f"one group a step: {one_group.message}",
                    layer=layer.name,
                    field=one_group.field,
                )
        return split_along_input(model, layer, index, out_format, params, named)


def _tiled(model, layer: Layer, index: int, in_format: str, out_format: str, params):
    made = layer.kind.tile(model, layer, index, in_format, out_format, params)
    return made if isinstance(made, list) else [made]


def _group_block_layer(layer: Layer, g0: int, g1: int) -> tuple[Layer, GroupBlock]:
    """Groups ``g0..g1`` of a grouped conv as a layer of their own, and where its
    channels are in the layer's maps."""
    groups = layer.attrs["groups"]
    c_in, c_out = layer.in_shape[0], layer.out_shape[0]
    cg, per_group = c_in // groups, c_out // groups
    block = GroupBlock(g0 * cg, g1 * cg, g0 * per_group, g1 * per_group)
    sub_layer = replace(
        layer,
        in_shape=(block.in1 - block.in0, *layer.in_shape[1:]),
        out_shape=(block.out1 - block.out0, *layer.out_shape[1:]),
        attrs={**layer.attrs, "groups": g1 - g0},
        codes=layer.codes[block.out0 : block.out1],
        bias=layer.bias[block.out0 : block.out1],
    )
    return sub_layer, block


def _group_cuts(groups: int, count: int) -> list[tuple[int, int]]:
    """``count`` contiguous blocks of whole groups, their sizes at most one apart."""
    cuts = [groups * k // count for k in range(count + 1)]
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def split_along_groups(model, layer: Layer, index, in_format, out_format, params) -> list[Step]:
    """The steps of a grouped conv whose groups do not fit the kernel together, cut into
    the fewest equal-ish blocks of whole groups that fit. Each block is the same conv on
    its groups' input channels, answering its groups' output channels (codes or ``acc``
    as the whole layer would, its residual shortcut cut alike): the host cuts each
    block's map from its copy and places its answer at its channels, exactly.

    A block of whole maps needs no halo rows read twice and fewer steps than bands, so
    the fewest blocks that fit whole are taken; only when one group alone needs bands are
    blocks banded (the fewest blocks that fit then). Raises :class:`WindowTooLarge` when
    not even one group a step fits."""
    groups = layer.attrs["groups"]
    failure: WindowTooLarge | None = None

    def largest_fits(count: int, allow_bands: bool) -> bool:
        # The fit depends on a block's size (its slots in the tile), so the largest block
        # decides; every block is checked when the steps are made. Without bands a block
        # too large is refused before any job is packed: most tries are cheap.
        nonlocal failure
        g0, g1 = max(_group_cuts(groups, count), key=lambda cut: cut[1] - cut[0])
        sub_layer = _group_block_layer(layer, g0, g1)[0]
        try:
            layer.kind.tile(
                model, sub_layer, index, in_format, out_format, params, allow_bands=allow_bands
            )
        except WindowTooLarge as exc:
            failure = exc
            return False
        return True

    def blocks(count: int) -> list[Step]:
        steps: list[Step] = []
        for g0, g1 in _group_cuts(groups, count):
            sub_layer, block = _group_block_layer(layer, g0, g1)
            made = _tiled(model, sub_layer, index + len(steps), in_format, out_format, params)
            for step in made:
                step.layer, step.group_block = layer, block
                step.grid_shape = (layer.out_shape[0], *step.grid_shape[1:])
                steps.append(step)
        return steps

    # Whole maps when one group a step fits whole (then blocks never need bands), else
    # bands in every block.
    for allow_bands in (False, True):
        if not largest_fits(groups, allow_bands):
            continue
        low, high = 2, groups  # the smallest count in low..high that fits is wanted
        while low < high:
            middle = (low + high) // 2
            if largest_fits(middle, allow_bands):
                high = middle
            else:
                low = middle + 1
        for count in range(high, groups + 1):
            try:
                return blocks(count)
            except WindowTooLarge as exc:
                failure = exc  # a block's weights, not its size, did not fit: smaller blocks
        break
    raise failure


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
