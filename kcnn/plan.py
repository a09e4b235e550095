"""The step planner: a model and an overlay's build parameters -> the steps of a frame.

One home for tiling and packing (docs/job-format.md): every fabric layer becomes one
step (conv, fc, max-pool, LRN); a conv or fc step is split into jobs of consecutive
output channels whose weight entries fit the weight cache; every job's weights are laid
out as one sequence per partition, interleaved so that entry ``k`` of every partition
travels in step ``k``. The planner also knows the kernel's loop trips for each step
(:func:`Step.loop_log`): the performance model and the C-sim test use the same numbers.
numpy only: the board, the C-sim back-end and the estimate share it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np

from kcnn.config import ARITHMETIC_CONTRACT, DESCRIPTOR_WORDS, BuildParams
from kcnn.errors import KcnnError
from kcnn.hostops import lrn_cut_points
from kcnn.kfile import KcnnModel, QLayer, encode_sparse
from kcnn.protocol import (
    FLAGS,
    FORMATS,
    JOB_HEADER_WORDS,
    LIMITS,
    MAGIC,
    OPCODES,
    ceil_div,
    encoder_keys,
    format_words,
    pack_bytes,
    pack_codes,
    pack_descriptor,
    pack_int32,
    pack_job_header,
)

#: Layer ops that run as fabric steps (LRN through exact cut points on its window sums).
FABRIC_STEP_OPS = ("conv", "fc", "maxpool", "lrn")
CONV_FLOOR = LIMITS["CONV_FLOOR"]
FC_FLOOR = LIMITS["FC_FLOOR"]
JOB_CHANNELS = LIMITS["JOB_CHANNELS"]
#: Partial sums of one partition for one vector are held in 24-bit accumulators.
PARTIAL_LIMIT = 1 << 23
POOL_WINDOW_MAX = LIMITS["POOL_WINDOW_MAX"]
POOL_STRIDE_MAX = LIMITS["POOL_STRIDE_MAX"]
FLAT_WRITE_CYCLES = LIMITS["FLAT_WRITE_CYCLES"]
POSITION_BITS = LIMITS["POSITION_BITS"]
#: The planner's placement search: swaps tried per input channel (deterministic).
PLACEMENT_SWAPS_PER_CHANNEL = 40


class WindowTooLarge(KcnnError):
    """A conv or fc window the kernel cannot take in one pass (weight entries of one output
    channel above ``W_DEPTH`` in a partition, positions, a partial sum above the 24-bit
    lane accumulators, input channels above ``CH_MAX``, input rows above the tile): the
    planner splits the layer along its input (:func:`_split_along_input`)."""


@dataclass
class Job:
    """One job of a conv / fc step: output channels ``[ch0, ch0 + channels)``."""

    index: int
    ch0: int
    channels: int
    sparse: bool
    steps: int  # weight steps (entry k of every partition per step)
    slot0: int
    span: int  # dense positions per channel (0 for sparse)
    words_a: np.ndarray  # header, biases, weight words on stream A
    words_b: np.ndarray  # weight words on stream B
    weight_words: int
    vector_length: np.ndarray  # per channel: max(floor, max over partitions of entries)
    entries: np.ndarray  # (channels, P) weight entries per partition and channel
    out_words: int
    buffered: bool


@dataclass
class Step:
    """One kernel invocation: a fabric layer on one frame (docs/job-format.md)."""

    index: int
    op: str  # CONV, FC, POOL, LRN
    layer: QLayer
    fields: dict
    constants: np.ndarray
    jobs: list[Job] = field(default_factory=list)
    in_format: str = "BLOCKED"
    out_format: str = "BLOCKED"
    in_shape: tuple = ()  # the map as stored (after space-to-depth)
    out_shape: tuple = ()
    input_padding: tuple = (0, 0, 0, 0)  # F32: rows/columns the host adds (t, l, b, r)
    params: BuildParams = field(default_factory=BuildParams)
    #: ``(r0, r1, o0, o1)``: a band of a conv too large for the tile, reading stored input
    #: rows r0..r1 and answering output rows o0..o1; the host cuts and joins the maps.
    band: tuple | None = None
    #: The host writes this step's map (a band, or the map a banded layer's bands made);
    #: otherwise the previous step's answer lands in it.
    host_in: bool = False
    #: The host reads this step's answer (the next step's map is made on the host).
    host_out: bool = False
    #: ``(t0, t1)``: one input block of a layer split along its input (input channels
    #: t0..t1 of each group of a conv, input elements of an fc). The step answers its
    #: partial ``acc`` (``ACC``, the biases in the first block only); the host adds the
    #: blocks' answers in int64 and applies the layer's thresholds.
    part: tuple | None = None
    #: The layer's whole output as the kernel answers it (its bands joined), when the host
    #: subsamples it (``host_stride``); else the layer's output shape.
    grid_shape: tuple = ()
    #: ``(a, b)``: the host keeps every a-th row and b-th column of the joined answer (a
    #: conv with unequal strides, computed by the kernel at their common stride).
    host_stride: tuple | None = None

    @property
    def head(self) -> np.ndarray:
        """Descriptor and constants: the words before the map section."""
        return np.concatenate([pack_descriptor(self.fields), self.constants]).astype(np.uint64)

    @property
    def map_words(self) -> int:
        return self.fields["map_words"]

    @property
    def out_words(self) -> int:
        return self.fields["out_words"]

    @property
    def jobs_a(self) -> np.ndarray:
        parts = [job.words_a for job in self.jobs]
        return np.concatenate(parts).astype(np.uint64) if parts else np.zeros(0, np.uint64)

    @property
    def jobs_b(self) -> np.ndarray:
        parts = [job.words_b for job in self.jobs]
        return np.concatenate(parts).astype(np.uint64) if parts else np.zeros(0, np.uint64)

    def stream_a(self, map_words: np.ndarray) -> np.ndarray:
        """The whole transfer on stream A for one frame's input map."""
        if map_words.size != self.map_words:
            raise KcnnError(
                f"step {self.index}: {map_words.size} map words, expected {self.map_words}",
                layer=self.layer.name,
                field="map",
            )
        reserved = np.zeros(1, np.uint64)
        return np.concatenate([self.head, map_words, reserved, self.jobs_a]).astype(np.uint64)

    def loop_log(self) -> list[tuple[str, int]]:
        """The kernel's loop entries for this step, in order: ``(loop, trips)``."""
        return loop_log(self)


@dataclass
class Plan:
    """A model's frame: the steps in order and what the host does around them."""

    model: KcnnModel
    params: BuildParams
    steps: list[Step]
    host_tail: list[QLayer]  # trailing host ops on the logits (softmax)

    @property
    def first(self) -> Step:
        return self.steps[0]

    @property
    def last(self) -> Step:
        return self.steps[-1]


# ---- the model as a sequence of fabric layers ----------------------------------------------


def _fabric_sequence(model: KcnnModel) -> tuple[list[QLayer], list[QLayer]]:
    """The layers that become steps, in order, and the trailing host ops."""
    steps, tail = [], []
    for layer in model.layers:
        if layer.op in FABRIC_STEP_OPS:
            if tail:
                raise KcnnError(
                    "a fabric layer follows a host op on the logits", layer=layer.name, field="op"
                )
            steps.append(layer)
        elif layer.op == "flatten":
            continue
        elif layer.out_map is None:
            tail.append(layer)
        else:
            raise KcnnError(
                f"the fabric cannot run {layer.op!r} between two maps and it has no exact "
                "host step in this kernel",
                layer=layer.name,
                field="op",
            )
    if not steps:
        raise KcnnError("the model has no fabric layer", field="layers")
    return steps, tail


def plan_model(model: KcnnModel, params: BuildParams | None = None) -> Plan:
    """Every step of one frame of ``model`` on an overlay built with ``params``."""
    params = params or BuildParams()
    layers, tail = _fabric_sequence(model)
    formats = []
    for n, layer in enumerate(layers):
        nxt = layers[n + 1] if n + 1 < len(layers) else None
        if layer.op in ("conv", "fc") and layer.thresholds is None:
            if nxt is not None:
                raise KcnnError(
                    "a layer that emits acc must be the last fabric layer",
                    layer=layer.name,
                    field="thresholds",
                )
            formats.append("ACC")
        elif nxt is None:
            # A model may end in a coded map (a feature extractor): its last step emits the
            # format a following layer would read.
            formats.append("FLAT" if layer.op == "fc" else "BLOCKED")
        else:
            formats.append("FLAT" if nxt.op == "fc" else "BLOCKED")
    steps = []
    for n, layer in enumerate(layers):
        in_format = "FLAT" if layer.op == "fc" else "BLOCKED"
        if n == 0 and layer.op == "conv":
            in_format = "F32"
        steps.extend(_layer_steps(model, layer, len(steps), in_format, formats[n], params))
    # The host writes a step's map when it is a band or an input block (cut from the
    # host's copy), or when the step before answers something the host must finish first
    # (bands to join, blocks to add, a grid to subsample); otherwise the answer before it
    # lands in its map slot.
    for before, step in zip([None, *steps[:-1]], steps, strict=True):
        step.host_in = (
            step.band is not None
            or step.part is not None
            or (before is not None and _host_finishes(before))
        )
    for step, nxt in zip(steps[:-1], steps[1:], strict=True):
        step.host_out = nxt.host_in
    return Plan(model, params, steps, tail)


def _host_finishes(step: Step) -> bool:
    """Whether the host must finish ``step``'s answer before the next step can read it."""
    return step.band is not None or step.part is not None or step.host_stride is not None


def _layer_steps(model, layer: QLayer, index: int, in_format: str, out_format: str, params):
    """A layer's steps: one, bands of output rows, or input blocks when its window does
    not fit the kernel in one pass."""
    builder = {"conv": _conv_steps, "fc": _fc_step, "maxpool": _pool_steps, "lrn": _lrn_step}
    try:
        made = builder[layer.op](model, layer, index, in_format, out_format, params)
    except WindowTooLarge as whole:
        named = KcnnError(whole.message, layer=layer.name, field=whole.field)
        if layer.op not in ("conv", "fc"):
            raise named from whole
        return _split_along_input(model, layer, index, out_format, params, named)
    return made if isinstance(made, list) else [made]


def _split_along_input(model, layer: QLayer, index, out_format, params, whole) -> list[Step]:
    """The steps of ``layer`` cut into the fewest equal input blocks whose windows fit
    (DESIGN section 4: input blocks with the partial ``acc`` carried in int32). Each block
    is the same layer on its share of the input: input channels for a conv (the same
    channels of every group), input elements for an fc (in multiples of ``P``, so that
    every block starts in partition 0). The host writes each block's map and adds the
    blocks' ``ACC`` answers."""
    weights = layer.codes.reshape(layer.codes.shape[0], layer.codes.shape[1], -1)
    if layer.op == "fc":
        weights = layer.codes.reshape(layer.codes.shape[0], -1, 1)
    n_in, align = weights.shape[1], (params.P if layer.op == "fc" else 1)
    units = ceil_div(n_in, align)
    builder = _conv_steps if layer.op == "conv" else _fc_step
    in_format = "BLOCKED" if layer.op == "conv" else "FLAT"
    count = 2
    while count <= units:
        cuts = [min(n_in, align * (units * k // count)) for k in range(count + 1)]
        steps: list[Step] = []
        try:
            for k, (t0, t1) in enumerate(zip(cuts[:-1], cuts[1:], strict=True)):
                block = _input_block(layer, weights, t0, t1, first=k == 0)
                made = builder(model, block, index + len(steps), in_format, "ACC", params)
                for step in made if isinstance(made, list) else [made]:
                    step.layer, step.part = layer, (t0, t1)
                    steps.append(step)
        except WindowTooLarge:
            count += max(1, count // 4)  # few blocks are tried one by one, many sparsely
            continue
        return steps
    raise whole


def _input_block(layer: QLayer, weights: np.ndarray, t0: int, t1: int, first: bool) -> QLayer:
    """``layer`` restricted to inputs ``t0..t1`` (channels of each group of a conv,
    elements of an fc), emitting its partial ``acc``: the biases in the first block only."""
    codes = weights[:, t0:t1].reshape(weights.shape[0], t1 - t0, *layer.codes.shape[2:])
    in_shape = (layer.attrs.get("groups", 1) * (t1 - t0), *layer.in_shape[1:])
    if layer.op == "fc":
        codes, in_shape = weights[:, t0:t1, 0], (t1 - t0,)
    return replace(
        layer,
        in_shape=in_shape,
        codes=codes,
        bias=layer.bias if first else np.zeros_like(layer.bias),
        thresholds=None,
        out_map=None,
    )


# ---- descriptors ----------------------------------------------------------------------------


def _base_fields(op: str, index: int) -> dict:
    return {
        "magic": MAGIC,
        "version": ARITHMETIC_CONTRACT["protocol"],
        "opcode": OPCODES[op],
        "step_index": index,
        "dh": 1,
        "dw": 1,
        "sh": 1,
        "sw": 1,
        "s2d": 1,
        "sub": 1,
        "groups": 1,
        "kh": 1,
        "kw": 1,
        "out_h": 1,
        "out_w": 1,
        "in_h": 1,
        "in_w": 1,
        "const_words": 0,
    }


def _weighted_fields(
    op: str, index: int, layer: QLayer, book, jobs, constants, map_words: int, **geometry
) -> dict:
    """A conv or fc step's descriptor: the fields they share around the ``geometry``
    fields (in this order: streaming_report dumps the descriptor as it is built)."""
    return {
        **_base_fields(op, index),
        "flags": FLAGS["ACT_SIGNED"] if book.signed else 0,
        "n_jobs": len(jobs),
        "k1": layer.K - 1,
        "j1": book.J - 1,
        "jo1": _threshold_count(layer),
        **geometry,
        "const_words": constants.size,
        "map_words": map_words,
        "job_words_a": sum(job.words_a.size for job in jobs),
        "job_words_b": sum(job.words_b.size for job in jobs),
        "out_words": sum(job.out_words for job in jobs),
    }


def _threshold_count(layer: QLayer) -> int:
    return 0 if layer.thresholds is None else len(layer.thresholds)


def _weight_constants(layer: QLayer, book) -> list[np.ndarray]:
    """The constants every conv or fc step starts with: the codebooks, then the
    thresholds of a layer that emits codes."""
    consts = [_codebook_words(layer.wq, book.aq)]
    if _threshold_count(layer):
        consts.append(pack_int32(layer.thresholds))
    return consts


def _codebook_words(wq, aq) -> np.ndarray:
    books = np.concatenate([np.asarray(wq, np.int64), np.asarray(aq, np.int64)])
    if books.size and (books.min() < -128 or books.max() > 255):
        raise KcnnError("a codebook entry does not fit 8 bits", field="codebook")
    return pack_bytes((books & 0xFF).astype(np.uint8))


def _out_words(fmt: str, shape: tuple) -> int:
    c, h, w = (shape + (1, 1))[:3] if len(shape) == 1 else shape
    return format_words(fmt, c, h, w)


# ---- weights: per-partition sequences ------------------------------------------------------


def _sparse_sequence(rows: np.ndarray) -> np.ndarray:
    """A partition's sparse sequence for ``rows`` (channels x positions): each channel's
    entries (docs/job-format.md) then the end-of-channel byte 0x00."""
    entries, per_row = encode_sparse(rows)
    ends = np.cumsum(per_row.astype(np.int64))
    return np.insert(entries, ends, np.zeros(len(ends), np.uint8))


def _partial_bound(rows: np.ndarray, wq: np.ndarray, aq_max: int) -> np.ndarray:
    """Per channel: the largest |partial sum| a partition's entries can reach."""
    worst = np.concatenate([[0], np.abs(np.asarray(wq, np.int64)) * aq_max])
    return worst[rows].sum(axis=1)


def _partition_entries(rows: list[np.ndarray], layer: QLayer, book) -> np.ndarray:
    """Weight entries per (output, partition) of a layer's partition ``rows``, after
    checking that no partition's partial sum can overflow the lane accumulators."""
    aq_max = int(np.abs(book.aq).max()) if book.aq.size else 0
    bound = np.stack([_partial_bound(r, layer.wq, aq_max) for r in rows], axis=1)
    if bound.max(initial=0) >= PARTIAL_LIMIT:
        raise WindowTooLarge(
            "a partition's partial sum of one output may exceed the 24-bit lane accumulators",
            layer=layer.name,
            field="W_DEPTH",
        )
    return np.stack([np.count_nonzero(r, axis=1) for r in rows], axis=1)


def _interleave(sequences: list[np.ndarray], dense: bool, params: BuildParams):
    """Steps of the job's weight section as words, split over the streams."""
    p = params.P
    steps = max(len(s) for s in sequences)
    matrix = np.zeros((steps, p), np.uint8)
    for part, seq in enumerate(sequences):
        matrix[: len(seq), part] = seq
    words = pack_codes(matrix) if dense else pack_bytes(matrix)
    if params.STREAMS == 2:
        return steps, words[0::2], words[1::2], words.size
    return steps, words, np.zeros(0, np.uint64), words.size


def _make_job(index, ch0, rows_per_part, slot0, span, bias, params, floor, out_words, buffered):
    """Pack one job from its per-partition weight matrices (channels x positions), in the
    weight form that takes fewer loader cycles: the dense form sends every position of
    every partition (padding and the positions a copied channel leaves to its other
    copies included), the sparse form only the entries, fillers and channel ends."""
    channels = rows_per_part[0].shape[0]
    entries = np.stack([np.count_nonzero(r, axis=1) for r in rows_per_part], axis=1)
    dense_steps = channels * span
    sparse_sequences = [_sparse_sequence(r) for r in rows_per_part]
    sparse_steps = max(len(q) for q in sparse_sequences)
    # A sparse step is a byte per partition, a dense one a nibble: compare loader cycles.
    sparse = _loader_cycles(sparse_steps, True, params) < _loader_cycles(dense_steps, False, params)
    if sparse:
        sequences = sparse_sequences
    else:
        sequences = [r.reshape(-1) for r in rows_per_part]
    steps, wa, wb, weight_words = _interleave(sequences, not sparse, params)
    header = pack_job_header(
        job_index=index,
        ch0=ch0,
        channels=channels,
        sparse=int(sparse),
        steps=steps,
        slot0=slot0,
        span=0 if sparse else span,
    )
    words_a = np.concatenate([header, pack_int32(bias), wa]).astype(np.uint64)
    length = np.maximum(floor, entries.max(axis=1))
    return Job(
        index,
        ch0,
        channels,
        sparse,
        steps,
        slot0,
        span,
        words_a,
        wb.astype(np.uint64),
        weight_words,
        length,
        entries,
        out_words,
        buffered,
    )


def _split_jobs(
    entries: np.ndarray,
    params: BuildParams,
    align: int,
    limit_outputs: int,
    outputs_per_channel: int,
) -> list[tuple[int, int]]:
    """Channel blocks ``(start, stop)``: each within the weight cache (entries per
    partition), the channel tables and the buffered-output memory, and a multiple of
    ``align`` channels except the last."""
    blocks, start, n = [], 0, entries.shape[0]
    per_part = entries.astype(np.int64)
    if per_part.max(initial=0) > params.W_DEPTH:
        raise WindowTooLarge(
            f"one output channel has {int(per_part.max())} weight entries in one partition, "
            f"more than the weight cache holds (W_DEPTH={params.W_DEPTH})",
            field="W_DEPTH",
        )
    if limit_outputs and outputs_per_channel > limit_outputs:
        raise KcnnError(
            f"one output channel is {outputs_per_channel} buffered outputs, more than the "
            f"output memory holds ({limit_outputs}; OUT_DEPTH={params.OUT_DEPTH} codes)",
            field="OUT_DEPTH",
        )
    cum = np.vstack([np.zeros((1, per_part.shape[1]), np.int64), np.cumsum(per_part, axis=0)])
    while start < n:
        fits = np.all(cum[start + 1 :] - cum[start] <= params.W_DEPTH, axis=1)
        stop = start + int(np.argmin(fits)) if not fits.all() else n
        stop = min(stop, start + JOB_CHANNELS)
        if limit_outputs:
            stop = min(stop, start + max(1, limit_outputs // max(1, outputs_per_channel)))
        if stop < n and align > 1:
            stop = start + ((stop - start) // align) * align
            if stop == start:
                raise WindowTooLarge(f"{align} output channels do not fit one job", field="W_DEPTH")
        blocks.append((start, stop))
        start = stop
    return blocks


# ---- placement of a conv's input channels ---------------------------------------------------


def _balance(
    nz: np.ndarray, assign: np.ndarray, sets: int, share: int, distinct: np.ndarray, seed: int
) -> np.ndarray:
    """Swap input channels between partition sets while the vectors get shorter.

    ``nz`` is (output channels, input channels) non-zero counts. A set of ``share``
    partitions holds copies of its channels, so an output channel's taps in the set are
    dealt evenly to its partitions: the set's load is ``ceil(taps / share)``. ``distinct``
    gives each input channel a class whose members must stay in different sets (the
    channels one row segment of an F32 input feeds); swaps keep every set's channel count.
    """
    assign = assign.copy()
    ci = nz.shape[1]
    if ci < 2 or sets < 2:
        return assign
    loads = np.zeros((nz.shape[0], sets))
    for q in range(sets):
        loads[:, q] = nz[:, assign == q].sum(axis=1)

    def cost(values):
        return np.maximum(CONV_FLOOR, np.ceil(values / share).max(axis=1)).sum()

    best = cost(loads)
    rng = np.random.default_rng(seed)
    for a, b in rng.integers(0, ci, size=(PLACEMENT_SWAPS_PER_CHANNEL * ci, 2)):
        qa, qb = assign[a], assign[b]
        if qa == qb:
            continue
        others_a = distinct == distinct[b]
        others_a[b] = False
        others_b = distinct == distinct[a]
        others_b[a] = False
        if np.any(assign[others_a] == qa) or np.any(assign[others_b] == qb):
            continue
        d = nz[:, a] - nz[:, b]
        loads[:, qa] -= d
        loads[:, qb] += d
        value = cost(loads)
        if value <= best:
            best = value
            assign[a], assign[b] = qb, qa
        else:
            loads[:, qa] += d
            loads[:, qb] -= d
    return assign


@dataclass
class _Placement:
    """Where a conv's input channels live: per channel a partition mask and a slot; per
    group the partition sets, each a tuple of partitions holding copies of the same
    channels (an output channel's taps of those channels may go to any of them)."""

    masks: np.ndarray
    slots: np.ndarray
    sets: list  # per group: [(partitions, input channels relative to the group), ...]
    slots_per_group: int


def _place(
    codes: np.ndarray, groups: int, p: int, distinct: np.ndarray, seed: int, capacity_slots: int
) -> _Placement:
    """Input channels of a conv -> partitions and slots (docs/job-format.md "the tile").

    Fewer channels than partitions: each channel is copied into ``p // cg`` partitions.
    Otherwise the partitions form ``p / R`` sets of ``R`` copies, ``R`` the largest of 8,
    4, 2, 1 whose copies still fit the tile, and the channels are spread over the sets to
    balance the vectors (the longest partition sets a vector's length).
    """
    co, cg = codes.shape[0], codes.shape[1]
    cin = cg * groups
    masks = np.zeros(cin, np.int64)
    slots = np.zeros(cin, np.int64)
    per_group = co // groups
    sets = []
    if cg < p:
        copies = p // cg
        for g in range(groups):
            group_sets = []
            for rel in range(cg):
                parts = tuple(rel + cg * r for r in range(copies))
                masks[g * cg + rel] = sum(1 << part for part in parts)
                slots[g * cg + rel] = g
                group_sets.append((parts, [rel]))
            sets.append(group_sets)
        return _Placement(masks, slots, sets, 1)
    share = 1
    for r in (8, 4, 2):
        if r <= p and groups * ceil_div(cg, p // r) <= capacity_slots:
            share = r
            break
    n_sets = p // share
    lc = ceil_div(cg, n_sets)
    for g in range(groups):
        nz = (codes[g * per_group : (g + 1) * per_group] != 0).sum(axis=(2, 3)).astype(np.float64)
        assign = _balance(
            nz, np.arange(cg) % n_sets, n_sets, share, distinct[g * cg : (g + 1) * cg], seed + g
        )
        group_sets = []
        for q in range(n_sets):
            members = np.flatnonzero(assign == q)
            parts = tuple(q + n_sets * k for k in range(share))
            masks[g * cg + members] = sum(1 << part for part in parts)
            slots[g * cg + members] = g * lc + np.arange(members.size)
            group_sets.append((parts, [int(m) for m in members]))
        sets.append(group_sets)
    return _Placement(masks, slots, sets, lc)


def _conv_rows(
    codes_g: np.ndarray, placement: _Placement, g: int, cg: int, p: int, khb: int, kwb: int
) -> tuple[list[np.ndarray], int]:
    """Per partition: (channels x positions) codes of the job's channels ``codes_g``
    (channels, cg, kh, kw) of group ``g``, and the group's first slot."""
    n, _, kh, kw = codes_g.shape
    cell = 1 << (khb + kwb)
    slot0 = g * placement.slots_per_group
    pad = np.zeros((n, cg, 1 << khb, 1 << kwb), np.uint8)
    pad[:, :, :kh, :kw] = codes_g
    taps = pad.reshape(n, cg, cell)
    span = placement.slots_per_group * cell
    rows = [np.zeros((n, span), np.uint8) for _ in range(p)]
    for parts, members in placement.sets[g]:
        if not members:
            continue
        # The set's channels side by side at their slots; each output channel deals its
        # non-zero taps round-robin to the set's copies: every copy holds every channel of
        # the set, so any split is exact, and this one balances the copies to +-1.
        local = np.zeros((n, span), np.uint8)
        for rel in members:
            slot = int(placement.slots[g * cg + rel]) - slot0
            local[:, slot * cell : (slot + 1) * cell] = taps[:, rel]
        nonzero = local != 0
        rank = np.cumsum(nonzero, axis=1) - 1
        for r, part in enumerate(parts):
            mine = nonzero & (rank % len(parts) == r)
            rows[part][mine] = local[mine]
    return rows, slot0


# ---- conv -----------------------------------------------------------------------------------


def space_to_depth(codes: np.ndarray, s: int) -> np.ndarray:
    """Weights ``(Co, Ci, kh, kw)`` of a stride-``s`` conv as the stride-1 conv on the
    space-to-depth input: channel ``ci*s*s + (i mod s)*s + (j mod s)``, tap
    ``(i div s, j div s)``."""
    co, ci, kh, kw = codes.shape
    kh2, kw2 = ceil_div(kh, s), ceil_div(kw, s)
    pad = np.zeros((co, ci, kh2 * s, kw2 * s), codes.dtype)
    pad[:, :, :kh, :kw] = codes
    out = pad.reshape(co, ci, kh2, s, kw2, s).transpose(0, 1, 3, 5, 2, 4)
    return out.reshape(co, ci * s * s, kh2, kw2)


def _log2_ceil(n: int) -> int:
    return max(0, int(n - 1).bit_length())


@dataclass
class _ConvGeometry:
    """A conv as the kernel computes it: after space-to-depth of an F32 input (stride
    ``s2d``), or at stride 1 with the outputs subsampled by ``sub``."""

    codes: np.ndarray
    c_in: int
    h: int
    w: int
    kh: int
    kw: int
    dh: int
    dw: int
    pt: int
    pl: int
    s2d: int
    sub: int
    padding: tuple  # F32 rows/columns the host adds (top, left, bottom, right)
    grid: tuple  # (out_h, out_w) the kernel answers: the layer's, unless host_stride
    host_stride: tuple | None  # the host keeps every (a, b)-th row and column of the grid


def _conv_geometry(layer: QLayer, in_format: str) -> _ConvGeometry:
    a = layer.attrs
    c_in, h, w = layer.in_shape
    (kh, kw), (sh, sw), (dh, dw) = a["kernel"], a["strides"], a["dilations"]
    pt, pl, pb, pr = a["pads"]
    codes = layer.codes
    s2d, sub, padding, host_stride = 1, 1, (0, 0, 0, 0), None
    grid = tuple(layer.out_shape[1:])
    if sh != sw:
        # The kernel's stride is square: it answers the outputs at the common stride, and
        # the host keeps every (sh/g)-th row and (sw/g)-th column of them.
        sub = math.gcd(sh, sw)
        host_stride = (sh // sub, sw // sub)
        grid = tuple(
            (size + before + after - dilation * (k - 1) - 1) // sub + 1
            for size, before, after, dilation, k in ((h, pt, pb, dh, kh), (w, pl, pr, dw, kw))
        )
    elif in_format == "F32" and sh in (2, 4) and dh == dw == 1 and a["groups"] == 1:
        s2d = sh
        hp = ceil_div(h + pt + pb, s2d) * s2d
        wp = ceil_div(w + pl + pr, s2d) * s2d
        padding = (pt, pl, hp - h - pt, wp - w - pl)
        codes = space_to_depth(codes, s2d)
        c_in, h, w = c_in * s2d * s2d, hp // s2d, wp // s2d
        kh, kw = codes.shape[2], codes.shape[3]
        pt = pl = 0
    elif sh > 1:
        sub = sh
    if not (pt <= 255 and pl <= 255 and dh <= 255 and dw <= 255):
        raise KcnnError("padding or dilation above 255", layer=layer.name, field="pads")
    return _ConvGeometry(
        codes, c_in, h, w, kh, kw, dh, dw, pt, pl, s2d, sub, padding, grid, host_stride
    )


def _row_bands(h, w, oh, stride, pt, span, slots, params, layer, *, out_fits=None, align=4):
    """Output-row bands ``(r0, r1, o0, o1)`` of a map of ``h`` x ``w`` whose input rows fit
    one partition with ``slots`` slots (and whose outputs ``out_fits``): one band when the
    whole map fits, else bands of a multiple of ``align`` output rows, each reading its
    input rows with the window's halo (``span`` rows at ``stride``, top padding ``pt``)."""
    capacity = params.IN_DEPTH // params.P
    bx = ceil_div(w, 4)

    def fits(n_out: int, rows: int) -> bool:
        out_ok = out_fits is None or out_fits(n_out)
        return slots * ceil_div(rows, 4) * bx * 16 <= capacity and out_ok

    def rows_for(n_out: int) -> int:
        return min(h, (n_out - 1) * stride + span)

    if fits(oh, h):
        return [(0, h, 0, oh)]
    band = min(align, oh)
    if not fits(band, rows_for(band)):
        raise WindowTooLarge(
            f"{band} output rows need {slots * ceil_div(rows_for(band), 4) * bx * 16} input "
            f"codes in a partition (IN_DEPTH/P={capacity}) or more output than the output "
            f"memory holds (OUT_DEPTH={params.OUT_DEPTH})",
            layer=layer.name,
            field="IN_DEPTH",
        )
    while band + align < oh and fits(band + align, rows_for(band + align)):
        band += align
    bands = []
    for o0 in range(0, oh, band):
        o1 = min(oh, o0 + band)
        r0 = max(0, o0 * stride - pt)
        r1 = min(h, (o1 - 1) * stride - pt + span)
        bands.append((r0, r1, o0, o1))
    return bands


def _conv_steps(
    model, layer: QLayer, index: int, in_format: str, out_format: str, params: BuildParams
) -> list[Step]:
    """A conv layer's steps: one, or one per band of output rows when its input map does
    not fit the tile (the host then cuts the map into bands and joins their answers)."""
    geo = _conv_geometry(layer, in_format)
    c_in, h, w = geo.c_in, geo.h, geo.w
    c_out, (oh, ow) = layer.out_shape[0], geo.grid
    groups = layer.attrs["groups"]
    khb, kwb = _log2_ceil(geo.kh), _log2_ceil(geo.kw)
    cg = c_in // groups
    if c_in > params.CH_MAX:
        raise WindowTooLarge(
            f"{c_in} input channels, more than the placement table holds (CH_MAX={params.CH_MAX})",
            layer=layer.name,
            field="CH_MAX",
        )
    book = model.maps[layer.in_map]
    distinct = np.arange(c_in)
    if geo.s2d > 1:
        distinct = np.arange(c_in) // geo.s2d  # the s2d channels of one (channel, row phase)
    plane = ceil_div(h, 4) * ceil_div(w, 4) * 16
    capacity_slots = params.IN_DEPTH // params.P // plane
    placement = _place(geo.codes, groups, params.P, distinct, index, capacity_slots)
    lc = placement.slots_per_group
    slots_total = int(placement.slots.max()) + 1
    if (lc << (khb + kwb)) > (1 << POSITION_BITS):
        raise WindowTooLarge(
            f"a partition's window of {lc << (khb + kwb)} positions exceeds {1 << POSITION_BITS}",
            layer=layer.name,
            field="kernel",
        )
    # FLAT and ACC outputs are in C order and a subsampled map in its own blocks: the
    # reducer writes them into the output memory and EMIT streams it after the job, so a
    # band's smallest job (the channels that fill whole words) must fit it.
    buffered = out_format in ("FLAT", "ACC") or geo.sub > 1
    out_fits = None
    if buffered:
        out_fits = partial(_buffered_fits, out_format, ow, params.OUT_DEPTH)
    bands = _row_bands(
        geo.h,
        geo.w,
        oh,
        geo.sub,
        geo.pt,
        (geo.kh - 1) * geo.dh + 1,
        slots_total,
        params,
        layer,
        out_fits=out_fits,
    )
    per_group = c_out // groups
    group_rows = []
    for g in range(groups):
        codes_g = geo.codes[g * per_group : (g + 1) * per_group]
        rows, slot0 = _conv_rows(codes_g, placement, g, cg, params.P, khb, kwb)
        group_rows.append((rows, slot0, _partition_entries(rows, layer, book)))
    consts = _weight_constants(layer, book)
    placement_words = (placement.masks & 0xFFFFFFFF) | (placement.slots << 32)
    consts.append(placement_words.astype(np.uint64))
    if in_format == "F32":
        keys = np.full(16, 0x7FFFFFFF, np.int64)
        boundaries = book.boundaries
        keys[: len(boundaries)] = encoder_keys(boundaries)
        consts.append(pack_int32(keys))
    constants = np.concatenate(consts).astype(np.uint64)
    banded = len(bands) > 1
    steps = []
    for n_band, (r0, r1, o0, o1) in enumerate(bands):
        band_oh = o1 - o0
        jobs = []
        for g, (rows, slot0, entries) in enumerate(group_rows):
            align = 1
            if out_format == "FLAT":
                align = 16 // np.gcd(band_oh * ow, 16)
            elif out_format == "ACC":
                align = 2 // np.gcd(band_oh * ow, 2)
            limit, per_channel = 0, band_oh * ow
            if buffered:
                # an int32 takes 8 codes of the output memory; blocks are stored whole
                limit = params.OUT_DEPTH // 8 if out_format == "ACC" else params.OUT_DEPTH
                if out_format == "BLOCKED":
                    per_channel = ceil_div(band_oh, 4) * ceil_div(ow, 4) * 16
            for start, stop in _split_jobs(entries, params, align, limit, per_channel):
                ch0 = g * per_group + start
                n = stop - start
                out_words = (
                    _out_words(out_format, (n, band_oh, ow))
                    if out_format != "ACC"
                    else ceil_div(n * band_oh * ow, 2)
                )
                jobs.append(
                    _make_job(
                        len(jobs),
                        ch0,
                        [r[start:stop] for r in rows],
                        slot0,
                        rows[0].shape[1],
                        layer.bias[ch0 : ch0 + n],
                        params,
                        CONV_FLOOR,
                        out_words,
                        buffered,
                    )
                )
        band_pt = max(0, geo.pt - o0 * geo.sub) if banded else geo.pt
        in_rows = r1 - r0
        fields = _weighted_fields(
            "CONV",
            index + n_band,
            layer,
            book,
            jobs,
            constants,
            _map_words(in_format, layer.in_shape, geo, (c_in, in_rows, w)),
            in_c=c_in,
            in_h=in_rows,
            in_w=w,
            out_c=c_out,
            out_h=band_oh,
            out_w=ow,
            kh=geo.kh,
            kw=geo.kw,
            dh=geo.dh,
            dw=geo.dw,
            pad_t=band_pt,
            pad_l=geo.pl,
            khb=khb,
            kwb=kwb,
            in_format=FORMATS[in_format],
            out_format=FORMATS[out_format],
            s2d=geo.s2d,
            sub=geo.sub,
            groups=groups,
        )
        steps.append(
            Step(
                index + n_band,
                "CONV",
                layer,
                fields,
                constants,
                jobs,
                in_format,
                out_format,
                (c_in, in_rows, w),
                (c_out, band_oh, ow),
                geo.padding,
                params,
                band=(r0, r1, o0, o1) if banded else None,
                grid_shape=(c_out, *geo.grid),
                host_stride=geo.host_stride,
            )
        )
    return steps


def _buffered_fits(out_format: str, ow: int, depth: int, rows: int) -> bool:
    """Whether one conv job of ``rows`` output rows fits the output memory (``depth``
    codes; an int32 takes 8): a FLAT or ACC job's channels fill whole words, a BLOCKED
    (subsampled) channel is stored as whole blocks."""
    per_channel = rows * ow
    if out_format == "FLAT":
        return 16 // np.gcd(per_channel, 16) * per_channel <= depth
    if out_format == "ACC":
        return 2 // np.gcd(per_channel, 2) * per_channel <= depth // 8
    return ceil_div(rows, 4) * ceil_div(ow, 4) * 16 <= depth


def _map_words(in_format: str, raw_shape, geo: _ConvGeometry, stored) -> int:
    """Words of a conv step's map section; an F32 map is the padded raw image's rows the
    stored rows come from (``s2d`` raw rows per stored row)."""
    c, rows, _ = stored
    if in_format == "F32":
        raw_c, _, raw_w = raw_shape
        t, left, b, r = geo.padding
        return format_words("F32", raw_c, rows * geo.s2d, raw_w + left + r)
    return format_words(in_format, c, rows, stored[2])


# ---- fc ---------------------------------------------------------------------------------------


def _fc_step(
    model, layer: QLayer, index: int, in_format: str, out_format: str, params: BuildParams
) -> Step:
    book = model.maps[layer.in_map]
    weights = layer.codes.reshape(layer.codes.shape[0], -1)
    rows_out, n_in = weights.shape
    p = params.P
    span = ceil_div(n_in, p)
    if span > (1 << POSITION_BITS):
        raise WindowTooLarge(
            f"{n_in} inputs need {span} positions per partition, more than {1 << POSITION_BITS}",
            layer=layer.name,
            field="in_shape",
        )
    padded = np.zeros((rows_out, span * p), np.uint8)
    padded[:, :n_in] = weights
    rows = [padded[:, s::p] for s in range(p)]
    entries = _partition_entries(rows, layer, book)
    # The kernel packs an fc step's outputs on across its jobs: a job writes the words it
    # completes, the last job the partial tail.
    per_word = 16 if out_format == "FLAT" else 2
    blocks = _split_jobs(entries, params, 1, 0, 1)
    jobs = []
    for n, (start, stop) in enumerate(blocks):
        out_words = stop // per_word - start // per_word
        if n + 1 == len(blocks) and stop % per_word:
            out_words += 1
        jobs.append(
            _make_job(
                n,
                start,
                [r[start:stop] for r in rows],
                0,
                span,
                layer.bias[start:stop],
                params,
                FC_FLOOR,
                out_words,
                False,
            )
        )
    constants = np.concatenate(_weight_constants(layer, book)).astype(np.uint64)
    fields = _weighted_fields(
        "FC",
        index,
        layer,
        book,
        jobs,
        constants,
        format_words("FLAT", n_in, 1, 1),
        in_c=n_in,
        out_c=rows_out,
        in_format=FORMATS[in_format],
        out_format=FORMATS[out_format],
    )
    return Step(
        index,
        "FC",
        layer,
        fields,
        constants,
        jobs,
        in_format,
        out_format,
        (n_in,),
        (rows_out,),
        params=params,
    )


# ---- pool and LRN ---------------------------------------------------------------------------


def _pool_steps(
    model, layer: QLayer, index: int, in_format: str, out_format: str, params: BuildParams
) -> list[Step]:
    """A max-pool's steps: one pool, or a chain of pools whose windows (at most
    ``POOL_WINDOW_MAX``) add up to the layer's. Pools at stride 1 with windows ``a`` then
    ``b`` take the max over ``a + b - 1`` consecutive inputs, so a chain ending in the
    layer's stride is the layer exactly; its top padding is shared out so that no pool
    pads more than its window minus one, and every intermediate map is cut where the next
    pool's windows would see only padding (padding never wins)."""
    stages = _pool_chain(layer)
    steps: list[Step] = []
    for n, stage in enumerate(stages):
        last = n + 1 == len(stages)
        made = _pool_step(
            stage,
            index + len(steps),
            in_format if n == 0 else "BLOCKED",
            out_format if last else "BLOCKED",
            params,
        )
        for step in made:
            step.layer = layer if last else stage
        steps.extend(made)
    return steps


def _pool_chain(layer: QLayer) -> list[QLayer]:
    """The pools that make up ``layer``: one when the kernel takes its window."""
    a = layer.attrs
    (kh, kw), (sh, sw) = a["kernel"], a["strides"]
    c, h, w = layer.in_shape
    _, oh, ow = layer.out_shape
    # A single output's stride is never used: a global pool takes any.
    sh, sw = (1 if oh == 1 else sh), (1 if ow == 1 else sw)
    if max(sh, sw) > POOL_STRIDE_MAX:
        raise KcnnError(
            f"max-pool stride {sh}x{sw}: the kernel pools with strides up to "
            f"{POOL_STRIDE_MAX} (a global pool, one output, takes any)",
            layer=layer.name,
            field="strides",
        )
    if max(kh, kw) <= POOL_WINDOW_MAX:
        return [replace(layer, attrs={**a, "strides": [sh, sw]})]
    rows = _pool_axis(h, kh, sh, a["pads"][0], oh, layer)
    cols = _pool_axis(w, kw, sw, a["pads"][1], ow, layer)
    count = max(len(rows), len(cols))
    # The shorter axis starts with pools of window 1: they keep its map as it is.
    rows = [(1, 1, 0, h)] * (count - len(rows)) + rows
    cols = [(1, 1, 0, w)] * (count - len(cols)) + cols
    stages, size = [], (h, w)
    for (wh, th, ph, nh), (wc, tc, pc, nc) in zip(rows, cols, strict=True):
        stages.append(
            replace(
                layer,
                in_shape=(c, *size),
                out_shape=(c, nh, nc),
                attrs={**a, "kernel": [wh, wc], "strides": [th, tc], "pads": [ph, pc, 0, 0]},
            )
        )
        size = (nh, nc)
    return stages


def _pool_axis(n: int, k: int, s: int, pad: int, out: int, layer: QLayer) -> list[tuple]:
    """One axis of a pool chain: ``(window, stride, top pad, output length)`` per pool,
    stride 1 but the last; the windows' extents add up to ``k``, the pads to ``pad``."""
    windows, left = [], k - 1
    while left > 0:
        step = min(POOL_WINDOW_MAX - 1, left)
        windows.append(step + 1)
        left -= step
    windows = windows or [1]
    pads, left = [], pad
    for window in windows:
        pads.append(min(window - 1, left))
        left -= pads[-1]
    if left:
        raise KcnnError(
            f"max-pool padding {pad} is not below its window {k}", layer=layer.name, field="pads"
        )
    # Backwards from the output: the length each pool's successor reads.
    need = [out]
    for j in range(len(windows) - 1, 0, -1):
        stride = s if j == len(windows) - 1 else 1
        need.append((need[-1] - 1) * stride - pads[j] + windows[j])
    need.reverse()
    axis, length = [], n
    for j, window in enumerate(windows):
        last = j + 1 == len(windows)
        # past length + pad a window would see only padding: the next pool pads instead
        length = out if last else min(need[j], length + pads[j])
        axis.append((window, s if last else 1, pads[j], length))
    return axis


def _pool_step(
    layer: QLayer, index: int, in_format: str, out_format: str, params: BuildParams
) -> list[Step]:
    a = layer.attrs
    c, h, w = layer.in_shape
    _, oh, ow = layer.out_shape
    (kh, kw), (sh, sw) = a["kernel"], a["strides"]
    pt, pl, _, _ = a["pads"]
    flat = out_format == "FLAT"
    # A FLAT answer is gathered in the output memory and streamed at the step's end.
    out_fits = (lambda n: c * n * ow <= params.OUT_DEPTH) if flat else None
    bands = _row_bands(
        h, w, oh, sh, pt, kh, 1, params, layer, out_fits=out_fits, align=1 if flat else 4
    )
    steps = []
    for n, (r0, r1, o0, o1) in enumerate(bands):
        rows, band_oh = r1 - r0, o1 - o0
        fields = {
            **_base_fields("POOL", index + n),
            "in_c": c,
            "in_h": rows,
            "in_w": w,
            "out_c": c,
            "out_h": band_oh,
            "out_w": ow,
            "kh": kh,
            "kw": kw,
            "sh": sh,
            "sw": sw,
            "pad_t": max(0, pt - o0 * sh),
            "pad_l": pl,
            "in_format": FORMATS[in_format],
            "out_format": FORMATS[out_format],
            "map_words": format_words(in_format, c, rows, w),
            "out_words": format_words(out_format, c, band_oh, ow),
        }
        steps.append(
            Step(
                index + n,
                "POOL",
                layer,
                fields,
                np.zeros(0, np.uint64),
                [],
                in_format,
                out_format,
                (c, rows, w),
                (c, band_oh, ow),
                params=params,
                band=(r0, r1, o0, o1) if len(bands) > 1 else None,
            )
        )
    return steps


def _lrn_step(
    model, layer: QLayer, index: int, in_format: str, out_format: str, params: BuildParams
) -> Step:
    c, h, w = layer.in_shape
    size = int(layer.attrs["size"])
    if size > LIMITS["LRN_SIZE_MAX"] or params.P < size + 1:
        raise KcnnError(
            f"LRN size {size}: the kernel takes windows up to {LIMITS['LRN_SIZE_MAX']} "
            f"channels and P >= size + 1 partitions (P = {params.P})",
            layer=layer.name,
            field="size",
        )
    book = model.maps[layer.in_map]
    thresholds = model.maps[layer.out_map].boundaries
    if np.any(thresholds <= 0):
        raise KcnnError(
            "LRN output thresholds must be positive", layer=layer.name, field="boundaries"
        )
    try:
        cuts = lrn_cut_points(book.aq, book.scale, layer.attrs, thresholds)
    except ValueError as exc:
        raise KcnnError(str(exc), layer=layer.name, field="attrs") from None
    squares = np.zeros(16, np.int64)
    squares[1 : len(book.aq) + 1] = np.asarray(book.aq, np.int64) ** 2
    full = np.full((15, len(thresholds)), -1, np.int64)
    full[: len(book.aq)] = cuts
    rows = [pack_int32(row) for row in full]
    constants = np.concatenate([pack_int32(squares), *rows]).astype(np.uint64)
    # LRN mixes channels, not rows: bands need no halo.
    steps = []
    bands = _row_bands(h, w, h, 1, 0, 1, 1, params, layer)
    for n, (r0, r1, o0, o1) in enumerate(bands):
        rows = r1 - r0
        fields = {
            **_base_fields("LRN", index + n),
            "j1": book.J - 1,
            "jo1": len(thresholds),
            "in_c": c,
            "in_h": rows,
            "in_w": w,
            "out_c": c,
            "out_h": rows,
            "out_w": w,
            "kh": size,
            "in_format": FORMATS[in_format],
            "out_format": FORMATS[out_format],
            "const_words": constants.size,
            "map_words": format_words(in_format, c, rows, w),
            "out_words": format_words(out_format, c, rows, w),
        }
        steps.append(
            Step(
                index + n,
                "LRN",
                layer,
                fields,
                constants,
                [],
                in_format,
                out_format,
                (c, rows, w),
                (c, rows, w),
                params=params,
                band=(r0, r1, o0, o1) if len(bands) > 1 else None,
            )
        )
    return steps


# ---- the kernel's loop trips ------------------------------------------------------------------


def _loader_cycles(steps: int, sparse: bool, params: BuildParams) -> int:
    """Cycles of ``steps`` weight steps: a step's words, at most STREAMS words a cycle and
    at least one cycle a step."""
    bits = 8 if sparse else 4
    words_per_step = params.P * bits / 64
    per_step = max(1, ceil_div(int(np.ceil(words_per_step)), params.STREAMS))
    return steps * per_step


def loader_trips(job: Job, params: BuildParams) -> int:
    """Cycles the loader spends on a job: header, biases, weight steps."""
    return (
        JOB_HEADER_WORDS + ceil_div(job.channels, 2) + _loader_cycles(job.steps, job.sparse, params)
    )


def compute_trips(step: Step, job: Job) -> int:
    """Cycles of a job's vectors: channel lengths times the output blocks."""
    if step.op == "FC":
        return int(job.vector_length.sum())
    f = step.fields
    h1 = (f["out_h"] - 1) * f["sub"] + 1
    w1 = (f["out_w"] - 1) * f["sub"] + 1
    return int(job.vector_length.sum()) * ceil_div(h1, 4) * ceil_div(w1, 4)


def pool_cycles_per_block(f: dict) -> int:
    rows = 3 * f["sh"] + f["kh"]
    cols = 3 * f["sw"] + f["kw"]
    words = ceil_div(cols + 3, 4)
    return ceil_div(ceil_div(rows, 4) * words, 2)


def loop_log(step: Step) -> list[tuple[str, int]]:
    """The kernel's loop entries of ``step`` in order, as ``(loop, trips)``; loops with no
    iterations are not entered (hls/README.md)."""
    f, params = step.fields, step.params
    log = [("DESCRIPTOR", DESCRIPTOR_WORDS)]
    if f["const_words"]:
        log.append(("CONST", f["const_words"]))
    if step.op in ("CONV", "FC"):
        tail = CONV_FLOOR if step.op == "CONV" else FC_FLOOR
        log.append(("TABLE", 256))
        log.append(("MAP", f["map_words"] + 1 + (4 if step.in_format == "F32" else 0)))
        log.append(("LOAD", loader_trips(step.jobs[0], params)))
        for k, job in enumerate(step.jobs):
            nxt = loader_trips(step.jobs[k + 1], params) if k + 1 < len(step.jobs) else 0
            log.append(("JOB", max(compute_trips(step, job) + tail, nxt)))
            if job.buffered:
                log.append(("EMIT", job.out_words))
        return log
    c, h, w = step.in_shape
    plane = ceil_div(h, 4) * ceil_div(w, 4)
    if step.op == "POOL":
        out_blocks = ceil_div(f["out_h"], 4) * ceil_div(f["out_w"], 4)
        per_block = pool_cycles_per_block(f)
        flat = step.out_format == "FLAT"
        if flat:
            # a block's 16 codes go into the output memory's banks in 4 cycles at least
            per_block = max(per_block, FLAT_WRITE_CYCLES)
        log.append(("PLANE", plane))
        for ch in range(c):
            last = ch + 1 == c
            work = out_blocks * per_block + (FLAT_WRITE_CYCLES if flat and last else 0)
            log.append(("POOL", max(work, 0 if last else plane)))
        if step.out_format == "FLAT":
            log.append(("EMIT", f["out_words"]))
        return log
    ahead = f["kh"] - 1 - (f["kh"] - 1) // 2
    log.append(("PLANE", plane * min(c, ahead + 1)))
    work = plane * 16 // params.LRN_LANES
    for ch in range(c):
        log.append(("LRN", max(work, plane if ch + ahead + 1 < c else 0)))
    return log
