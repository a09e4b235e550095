"""What the ops' tilings share: steps, jobs, descriptors and weight packing
(docs/job-format.md).

Each op cuts its layer into steps in its own module (``tile`` in :mod:`kcnn.ops`); a conv
or fc step is split into jobs of consecutive output channels whose weight entries fit
the weight cache; every job's weights are laid out as one sequence per partition,
interleaved so that entry ``k`` of every partition travels in step ``k``. The kernel's
loop trips for each step (:func:`Step.loop_log`) are here too: the performance model and
the C-sim test use the same numbers. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from kcnn.config import ARITHMETIC_CONTRACT, DESCRIPTOR_WORDS, QUOTIENT_BITS, BuildParams
from kcnn.errors import KcnnError
from kcnn.protocol import (
    FLAGS,
    JOB_HEADER_WORDS,
    LIMITS,
    MAGIC,
    OPCODES,
    ceil_div,
    format_words,
    map_words_b,
    pack_bytes,
    pack_code_table,
    pack_codes,
    pack_descriptor,
    pack_int32,
    pack_job_header,
    pack_residual_table,
    shortcut_words,
)
from kcnn.weight_forms import encode_sparse

if TYPE_CHECKING:
    from kcnn.model import Layer, Model

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
    planner splits the layer along its input (:func:`kcnn.plan.split_along_input`)."""


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


class GroupBlock(NamedTuple):
    """A block of whole groups of a grouped conv run as a step of its own: its input
    channels ``in0..in1`` and output channels ``out0..out1`` of the layer's maps."""

    in0: int
    in1: int
    out0: int
    out1: int


@dataclass
class Step:
    """One kernel invocation: a fabric layer on one frame (docs/job-format.md)."""

    index: int
    op: str  # CONV, FC, POOL, LRN, ADD
    layer: Layer
    fields: dict
    constants: np.ndarray
    jobs: list[Job] = field(default_factory=list)
    in_format: str = "BLOCKED"
    out_format: str = "BLOCKED"
    in_shape: tuple = ()  # the map as stored (after space-to-depth)
    out_shape: tuple = ()
    input_padding: tuple = (0, 0, 0, 0)  # F32, U8: rows/columns the host adds (t, l, b, r)
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
    #: A block of whole groups of a conv whose groups do not fit the tile together: the
    #: step reads the block's input channels and answers its output channels, which the
    #: host cuts from the input map and places in the output map.
    group_block: GroupBlock | None = None
    #: The layer's whole output as the kernel answers it (its bands and group blocks
    #: joined), when the host joins or subsamples it; else the layer's output shape.
    grid_shape: tuple = ()
    #: ``(a, b)``: the host keeps every a-th row and b-th column of the joined answer (a
    #: conv with unequal strides, computed by the kernel at their common stride).
    host_stride: tuple | None = None

    @property
    def is_piece(self) -> bool:
        """Whether the step computes only a piece of its layer (a band, an input block, a
        group block): the host cuts its map from its copy and joins its answer."""
        return self.band is not None or self.part is not None or self.group_block is not None

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

    @property
    def shortcut_words(self) -> int:
        """Words of the shortcut section after the reserved word (a RESIDUAL conv / fc:
        the shortcut map; an ADD: map B); 0 for the other steps."""
        return shortcut_words(self.fields)

    @property
    def map_words_b(self) -> int:
        """Words of the map section on stream B (an ``F32`` map with two streams: the odd
        words), ahead of the jobs' B words; the rest of the map is on A."""
        return map_words_b(self.fields, self.params.STREAMS)

    @property
    def map_words_a(self) -> int:
        return self.map_words - self.map_words_b

    @property
    def stream_b_words(self) -> int:
        """Words of the step's stream-B transfer (0: none)."""
        return self.map_words_b + sum(int(job.words_b.size) for job in self.jobs)

    def split_map(self, map_words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The map section as its words on A and on B (even and odd words of a split map):
        views, no copy."""
        if map_words.size != self.map_words:
            raise KcnnError(
                f"step {self.index}: {map_words.size} map words, expected {self.map_words}",
                layer=getattr(self.layer, "name", None),
                field="map",
            )
        if not self.map_words_b:
            return map_words, map_words[:0]
        return map_words[0::2], map_words[1::2]

    def stream_b(self, map_words: np.ndarray) -> np.ndarray:
        """The whole transfer on stream B for one frame's input map: the map's B share,
        then the jobs' B words (empty when the step has no stream-B transfer)."""
        _, map_b = self.split_map(map_words)
        return np.concatenate([map_b, self.jobs_b]).astype(np.uint64)

    def stream_a(self, map_words: np.ndarray, shortcut: np.ndarray | None = None) -> np.ndarray:
        """The whole transfer on stream A for one frame's input map (its A share: all of
        it but for a split map) and, for a step with a shortcut section, the shortcut
        map's words."""
        name = getattr(self.layer, "name", None)
        map_a, _ = self.split_map(map_words)
        shortcut = np.zeros(0, np.uint64) if shortcut is None else np.asarray(shortcut)
        if shortcut.size != self.shortcut_words:
            raise KcnnError(
                f"step {self.index}: {shortcut.size} shortcut words, expected "
                f"{self.shortcut_words}",
                layer=name,
                field="shortcut",
            )
        reserved = np.zeros(1, np.uint64)
        return np.concatenate([self.head, map_a, reserved, shortcut, self.jobs_a]).astype(np.uint64)

    def loop_log(self) -> list[tuple[str, int]]:
        """The kernel's loop entries for this step, in order: ``(loop, trips)``."""
        return loop_log(self)


@dataclass
class Plan:
    """A model's frame: the steps in order and what the host does around them."""

    model: Model
    params: BuildParams
    steps: list[Step]
    host_tail: list[Layer]  # trailing host ops on the logits (softmax)

    @property
    def first(self) -> Step:
        return self.steps[0]

    @property
    def last(self) -> Step:
        return self.steps[-1]


# ---- descriptors ----------------------------------------------------------------------------


def base_fields(op: str, index: int) -> dict:
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


def weighted_fields(
    op: str, index: int, layer: Layer, book, jobs, constants, map_words: int, **geometry
) -> dict:
    """A conv or fc step's descriptor: the fields they share around the ``geometry``
    fields (in this order: streaming_report dumps the descriptor as it is built)."""
    return {
        **base_fields(op, index),
        "flags": (FLAGS["ACT_SIGNED"] if book.signed else 0) | bank_flags(layer),
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


def _threshold_count(layer: Layer) -> int:
    return 0 if layer.thresholds is None else len(layer.thresholds)


def weight_constants(layer: Layer, book) -> list[np.ndarray]:
    """The constants every conv or fc step starts with: the codebooks, then the
    threshold bank of a layer that emits codes."""
    return [_codebook_words(layer.wq, book.aq), *bank_constants(layer)]


def bank_flags(layer: Layer) -> int:
    """OUT_TABLE for a bank whose intervals map through a code table (a signed map),
    RESIDUAL for one that adds a shortcut map's table entry first; a step that emits no
    codes (acc, an input block) has neither."""
    if not _threshold_count(layer):
        return 0
    flags = FLAGS["OUT_TABLE"] if layer.out_table is not None else 0
    return flags | (FLAGS["RESIDUAL"] if layer.residual_table is not None else 0)


def bank_constants(layer: Layer) -> list[np.ndarray]:
    """The threshold bank's constants: thresholds, the code table, the residual table."""
    if not _threshold_count(layer):
        return []
    consts = [pack_int32(layer.thresholds)]
    if layer.out_table is not None:
        consts.append(pack_code_table(layer.out_table))
    if layer.residual_table is not None:
        consts.append(pack_residual_table(layer.residual_table))
    return consts


def _codebook_words(wq, aq) -> np.ndarray:
    books = np.concatenate([np.asarray(wq, np.int64), np.asarray(aq, np.int64)])
    if books.size and (books.min() < -128 or books.max() > 255):
        raise KcnnError("a codebook entry does not fit 8 bits", field="codebook")
    return pack_bytes((books & 0xFF).astype(np.uint8))


def answer_words(fmt: str, shape: tuple) -> int:
    c, h, w = (shape + (1, 1))[:3] if len(shape) == 1 else shape
    return format_words(fmt, c, h, w)


# ---- weights: per-partition sequences ------------------------------------------------------


def _sparse_sequence(rows: np.ndarray) -> np.ndarray:
    """A partition's sparse sequence for ``rows`` (channels x positions): each channel's
    entries in the job form (docs/job-format.md "Weight steps": a filler of skip ``s``
    covers ``16 s`` positions) then the end-of-channel byte 0x00."""
    entries, per_row = encode_sparse(rows, long_fillers=True)
    ends = np.cumsum(per_row.astype(np.int64))
    return np.insert(entries, ends, np.zeros(len(ends), np.uint8))


def _partial_bound(rows: np.ndarray, wq: np.ndarray, aq_max: int) -> np.ndarray:
    """Per channel: the largest |partial sum| a partition's entries can reach."""
    worst = np.concatenate([[0], np.abs(np.asarray(wq, np.int64)) * aq_max])
    return worst[rows].sum(axis=1)


def partition_entries(rows: list[np.ndarray], layer: Layer, book) -> np.ndarray:
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


def make_job(index, ch0, rows_per_part, slot0, span, bias, params, floor, out_words, buffered):
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


def split_jobs(
    entries: np.ndarray,
    params: BuildParams,
    limit_outputs: int,
    outputs_per_channel: int,
    lead: int = 0,
    per_word: int = 1,
) -> list[tuple[int, int]]:
    """Channel blocks ``(start, stop)``: each within the weight cache (entries per
    partition), the channel tables and the buffered-output memory (``limit_outputs``; 0:
    not buffered). Buffered outputs pack on across the jobs, ``per_word`` to a word: a job
    shares the memory with the partial word the outputs before it left (``lead`` outputs
    before the first block, mod ``per_word``)."""
    blocks, start, n = [], 0, entries.shape[0]
    per_part = entries.astype(np.int64)
    if per_part.max(initial=0) > params.W_DEPTH:
        raise WindowTooLarge(
            f"one output channel has {int(per_part.max())} weight entries in one partition, "
            f"more than the weight cache holds (W_DEPTH={params.W_DEPTH})",
            field="W_DEPTH",
        )
    cum = np.vstack([np.zeros((1, per_part.shape[1]), np.int64), np.cumsum(per_part, axis=0)])
    while start < n:
        fits = np.all(cum[start + 1 :] - cum[start] <= params.W_DEPTH, axis=1)
        stop = start + int(np.argmin(fits)) if not fits.all() else n
        stop = min(stop, start + JOB_CHANNELS)
        if limit_outputs:
            room = limit_outputs - lead
            if outputs_per_channel > room:
                raise KcnnError(
                    f"one output channel is {outputs_per_channel} buffered outputs, more than "
                    f"the output memory holds behind {lead} outputs of a partial word "
                    f"({limit_outputs}; OUT_DEPTH={params.OUT_DEPTH} codes)",
                    field="OUT_DEPTH",
                )
            stop = min(stop, start + room // max(1, outputs_per_channel))
        blocks.append((start, stop))
        lead = (lead + (stop - start) * outputs_per_channel) % per_word
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
class Placement:
    """Where a conv's input channels live: per channel a partition mask and a slot; per
    group the partition sets, each a tuple of partitions holding copies of the same
    channels (an output channel's taps of those channels may go to any of them)."""

    masks: np.ndarray
    slots: np.ndarray
    sets: list  # per group: [(partitions, input channels relative to the group), ...]
    slots_per_group: int


def place(
    codes: np.ndarray, groups: int, p: int, distinct: np.ndarray, seed: int, capacity_slots: int
) -> Placement:
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
        return Placement(masks, slots, sets, 1)
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
    return Placement(masks, slots, sets, lc)


def row_bands(
    h, w, oh, stride, pt, span, slots, params, layer, *, out_fits=None, align=4, allow_bands=True
):
    """Output-row bands ``(r0, r1, o0, o1)`` of a map of ``h`` x ``w`` whose input rows fit
    one partition with ``slots`` slots (and whose outputs ``out_fits``): one band when the
    whole map fits, else (``allow_bands``) bands of a multiple of ``align`` output rows, each
    reading its input rows with the window's halo (``span`` rows at ``stride``, top
    padding ``pt``)."""
    capacity = params.IN_DEPTH // params.P
    bx = ceil_div(w, 4)

    def fits(n_out: int, rows: int) -> bool:
        out_ok = out_fits is None or out_fits(n_out)
        return slots * ceil_div(rows, 4) * bx * 16 <= capacity and out_ok

    def rows_for(n_out: int) -> int:
        return min(h, (n_out - 1) * stride + span)

    if fits(oh, h):
        return [(0, h, 0, oh)]
    if not allow_bands:
        raise WindowTooLarge(
            f"the whole map needs {slots * ceil_div(h, 4) * bx * 16} input codes in a "
            f"partition (IN_DEPTH/P={capacity}) or more output than the output memory holds "
            f"(OUT_DEPTH={params.OUT_DEPTH})",
            layer=layer.name,
            field="IN_DEPTH",
        )
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
    log = [("DESCRIPTOR", DESCRIPTOR_WORDS), ("QUOTIENTS", QUOTIENT_BITS)]
    if f["const_words"]:
        log.append(("CONST", f["const_words"]))
    if step.op == "ADD":
        # map A into the tile, then map B streamed against it: a word a cycle when the
        # output keeps the format, one output row a cycle (4 a block) into the output
        # memory for a BLOCKED -> FLAT add, which EMIT streams after
        log.append(("TABLE", 256))
        log.append(("MAP", f["map_words"] + 1))
        reorder = step.in_format == "BLOCKED" and step.out_format == "FLAT"
        log.append(("ADD", f["map_words"] * (FLAT_WRITE_CYCLES if reorder else 1)))
        if reorder:
            log.append(("EMIT", f["out_words"]))
        return log
    if step.op in ("CONV", "FC"):
        tail = CONV_FLOOR if step.op == "CONV" else FC_FLOOR
        log.append(("TABLE", 256))
        # one map word of each stream a cycle (an F32 map's words alternate A, B with two
        # streams), the reserved word, and the bank-write queue's drain: F32 4 cycles (a
        # write a cycle), U8 2 (two a cycle, on the tile banks' two ports)
        cycles = max(step.map_words_a, step.map_words_b)
        log.append(("MAP", cycles + 1 + {"F32": 4, "U8": 2}.get(step.in_format, 0)))
        if step.shortcut_words:
            log.append(("SHORTCUT", step.shortcut_words))
        log.append(("LOAD", loader_trips(step.jobs[0], params)))
        for k, job in enumerate(step.jobs):
            nxt = loader_trips(step.jobs[k + 1], params) if k + 1 < len(step.jobs) else 0
            log.append(("JOB", max(compute_trips(step, job) + tail, nxt)))
            if job.buffered and job.out_words:
                # the words its outputs complete (a job may complete none)
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
