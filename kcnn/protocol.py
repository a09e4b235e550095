"""Protocol 5: the words the host and the kernel exchange (docs/job-format.md).

numpy only: the ``csim`` and ``board`` back-ends, the planner and the tests share it. This
module owns the format: descriptor fields, map formats and their packers, the trailer,
the probe and info words, the status names and the generated ``hls/kcnn_config.h`` (one
source of truth for Python and C++). What a step contains is :mod:`kcnn.plan`.
"""

from __future__ import annotations

import numpy as np

from kcnn.config import ARITHMETIC_CONTRACT, DESCRIPTOR_WORDS, QUOTIENT_BITS, BuildParams
from kcnn.errors import KcnnError

#: Descriptor word 0, low 32 bits: the bytes "KCNN" in stream order.
MAGIC = 0x4E4E434B
#: Trailer word, low 32 bits: the bytes "KEND" in stream order.
TRAILER_TAG = 0x444E454B
#: Job header word 0, low 16 bits: the bytes "BJ".
JOB_TAG = 0x4A42
#: The job index a trailer gives when the descriptor, constants or map were refused.
STEP_LEVEL = 0xFFFF
INFO_WORDS = 4
JOB_HEADER_WORDS = 2
#: Format limits the kernel and the planner share (docs/job-format.md, hls/KERNEL_SPEC.md).
LIMITS = {
    "JOB_CHANNELS": 256,  # output channels of one job (the per-partition channel tables)
    "POSITION_BITS": 12,  # a weight entry's position within its partition
    "CONV_FLOOR": 16,  # a conv vector's shortest length: the reducer's 16 lanes
    "FC_FLOOR": 3,  # an fc vector's: the channel counts are read a vector ahead
    "POOL_WINDOW_MAX": 3,  # max-pool windows (the lanes' max trees)
    "POOL_STRIDE_MAX": 4,  # max-pool strides (the region buffer)
    "LRN_SIZE_MAX": 9,  # LRN window channels (and P >= size + 1)
    "FLAT_WRITE_CYCLES": 4,  # a block's 16 codes into the output memory (pool, add)
    "MAX_TRANSFER_WORDS": 1 << 23,  # one DMA transfer (c_sg_length_width 26)
    "PIXEL_CHANNELS": 4,  # raw channels of a U8 input (the pixel encoder's cut-point rows)
}

OPCODES = {"PROBE": 0, "CONV": 1, "FC": 2, "POOL": 3, "LRN": 4, "ADD": 5}
#: Descriptor flags: ACT_SIGNED (the input codebook's entries are signed bytes), OUT_TABLE
#: (a conv / fc / add emitting codes maps the threshold bank's interval index through a
#: table of 16 nibbles: a signed output map), RESIDUAL (a conv / fc emitting codes adds
#: R[code] of a shortcut map to each acc before the threshold bank).
FLAGS = {"ACT_SIGNED": 1, "OUT_TABLE": 2, "RESIDUAL": 4}
FORMATS = {"BLOCKED": 0, "FLAT": 1, "ACC": 2, "F32": 3, "U8": 4}
FORMAT_NAMES = {code: name for name, code in FORMATS.items()}
#: The formats of the network input that the kernel encodes itself (the first conv).
RAW_FORMATS = ("F32", "U8")
STATUS = {
    "OK": 0,
    "BAD_MAGIC": 1,
    "BAD_VERSION": 2,
    "BAD_OPCODE": 3,
    "COUNT_ABOVE_MAX": 4,
    "BAD_GEOMETRY": 5,
    "EARLY_TLAST": 6,
    "MISSING_TLAST": 7,
    "BAD_SPARSE": 8,
    "BAD_JOB": 9,
    "BAD_INPUT": 10,
    "BAD_CONSTANTS": 11,
}
#: Loops of the kernel, in the order of the C-sim's loop ids (hls/README.md).
LOOPS = (
    "DESCRIPTOR",
    "CONST",
    "TABLE",
    "MAP",
    "LOAD",
    "JOB",
    "EMIT",
    "PLANE",
    "POOL",
    "LRN",
    "SHORTCUT",
    "ADD",
    "QUOTIENTS",
)
#: int32 words of a residual table R[0..15] (RESIDUAL; an ADD step carries two).
RESIDUAL_WORDS = 8
#: Words of the output code table (OUT_TABLE): 16 nibbles.
CODE_TABLE_WORDS = 1

# (word, low bit, width) of every descriptor field; docs/job-format.md has the same table.
DESCRIPTOR_FIELDS = {
    "magic": (0, 0, 32),
    "version": (0, 32, 16),
    "opcode": (0, 48, 8),
    "flags": (0, 56, 8),
    "step_index": (1, 0, 16),
    "n_jobs": (1, 16, 16),
    "k1": (1, 32, 8),
    "j1": (1, 40, 8),
    "jo1": (1, 48, 8),
    "in_c": (2, 0, 16),
    "in_h": (2, 16, 16),
    "in_w": (2, 32, 16),
    "out_c": (2, 48, 16),
    "out_h": (3, 0, 16),
    "out_w": (3, 16, 16),
    "kh": (3, 32, 8),
    "kw": (3, 40, 8),
    "sh": (3, 48, 8),
    "sw": (3, 56, 8),
    "dh": (4, 0, 8),
    "dw": (4, 8, 8),
    "pad_t": (4, 16, 8),
    "pad_l": (4, 24, 8),
    "khb": (4, 32, 4),
    "kwb": (4, 36, 4),
    "in_format": (4, 40, 4),
    "out_format": (4, 44, 4),
    "s2d": (4, 48, 8),
    "sub": (4, 56, 8),
    "const_words": (5, 0, 32),
    "map_words": (5, 32, 32),
    "job_words_a": (6, 0, 32),
    "job_words_b": (6, 32, 32),
    "out_words": (7, 0, 32),
    "groups": (7, 32, 16),
    # Reserved for a batch served by one pass of the weights; protocols 4 and 5 take only 0.
    "images_m1": (7, 48, 16),
}


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# ---- descriptor ----------------------------------------------------------------------


def pack_fields(fields: dict, layout: dict, words: int) -> np.ndarray:
    """Bit fields into little-endian uint64 words; a value that does not fit is an error."""
    out = [0] * words
    for name, value in fields.items():
        word, low, width = layout[name]
        value = int(value)
        if not 0 <= value < (1 << width):
            raise KcnnError(f"{value} does not fit the {width}-bit field", field=name)
        out[word] |= value << low
    return np.array(out, np.uint64)


def unpack_fields(words, layout: dict) -> dict:
    words = [int(w) for w in np.asarray(words, np.uint64)]
    return {
        name: (words[word] >> low) & ((1 << width) - 1)
        for name, (word, low, width) in layout.items()
    }


def pack_descriptor(fields: dict) -> np.ndarray:
    """The ``DESCRIPTOR_WORDS`` words of a step descriptor; missing fields are 0."""
    return pack_fields(fields, DESCRIPTOR_FIELDS, DESCRIPTOR_WORDS)


def decode_descriptor(words) -> dict:
    return unpack_fields(np.asarray(words, np.uint64)[:DESCRIPTOR_WORDS], DESCRIPTOR_FIELDS)


def probe_step() -> np.ndarray:
    """The probe: a descriptor with opcode PROBE and every count 0."""
    return pack_descriptor(
        {"magic": MAGIC, "version": ARITHMETIC_CONTRACT["protocol"], "opcode": OPCODES["PROBE"]}
    )


# ---- job header ------------------------------------------------------------------------

JOB_FIELDS = {
    "tag": (0, 0, 16),
    "job_index": (0, 16, 16),
    "ch0": (0, 32, 16),
    "channels": (0, 48, 16),
    "sparse": (1, 0, 1),
    "steps": (1, 8, 24),
    "slot0": (1, 32, 16),
    "span": (1, 48, 16),
}


def pack_job_header(**fields) -> np.ndarray:
    return pack_fields({"tag": JOB_TAG, **fields}, JOB_FIELDS, JOB_HEADER_WORDS)


def decode_job_header(words) -> dict:
    return unpack_fields(np.asarray(words, np.uint64)[:JOB_HEADER_WORDS], JOB_FIELDS)


# ---- trailer, status, info -------------------------------------------------------------


def trailer_word(status: int, job: int = STEP_LEVEL) -> int:
    return TRAILER_TAG | (int(status) << 32) | (int(job) << 48)


def decode_trailer(word) -> tuple[str, int] | None:
    """``(status name, job index)`` of a trailer word, or None if ``word`` is not one."""
    word = int(word)
    if word & 0xFFFFFFFF != TRAILER_TAG:
        return None
    return status_name((word >> 32) & 0xFFFF), (word >> 48) & 0xFFFF


class StepFault(KcnnError):
    """A kernel refused a step or answered with the wrong length (names step and job)."""


def check_answer(step, words: np.ndarray, received: int) -> np.ndarray:
    """The output words of a step's answer (``received`` words, trailer included), or a
    :class:`StepFault` naming the layer, the job and the status. The one place that reads
    a trailer; ``step`` is a :class:`kcnn.tiling.Step`."""
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
        which = "the descriptor, constants or map" if job == STEP_LEVEL else f"job {job}"
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


def status_name(code: int) -> str:
    for name, value in STATUS.items():
        if value == code:
            return name
    return f"UNKNOWN({code})"


def info_words(contract: dict, params: BuildParams) -> list[int]:
    """The probe answer (also the ``info0..3`` registers) a kernel with ``params`` gives."""
    lrn_log = int(params.LRN_LANES).bit_length() - 1
    return [
        MAGIC,
        contract["protocol"] | (params.CH_MAX << 16),
        params.P
        | contract["K_MAX"] << 16
        | contract["J_MAX"] << 24
        | contract["ACC_BITS"] << 32
        | contract["bw"] << 40
        | contract["ba"] << 48
        | params.STREAMS << 56
        | lrn_log << 60,
        params.IN_DEPTH | params.W_DEPTH << 21 | params.OUT_DEPTH << 42,
    ]


def decode_info(info) -> dict:
    """The probe answer (also the ``info0..3`` registers) as a configuration dict."""
    i0, i1, i2, i3 = (int(v) for v in info[:INFO_WORDS])
    return {
        "magic": i0 & 0xFFFFFFFF,
        "protocol": i1 & 0xFFFF,
        "CH_MAX": (i1 >> 16) & 0xFFFF,
        "P": i2 & 0xFFFF,
        "K_MAX": (i2 >> 16) & 0xFF,
        "J_MAX": (i2 >> 24) & 0xFF,
        "ACC_BITS": (i2 >> 32) & 0xFF,
        "bw": (i2 >> 40) & 0xFF,
        "ba": (i2 >> 48) & 0xFF,
        "STREAMS": (i2 >> 56) & 0xF,
        "LRN_LANES": 1 << ((i2 >> 60) & 0xF),
        "IN_DEPTH": i3 & 0x1FFFFF,
        "W_DEPTH": (i3 >> 21) & 0x1FFFFF,
        "OUT_DEPTH": (i3 >> 42) & 0x1FFFFF,
    }


# ---- values <-> words --------------------------------------------------------------------


def pack_codes(codes) -> np.ndarray:
    """4-bit codes, 16 per word, the first code in the lowest nibble."""
    flat = np.asarray(codes, np.uint8).reshape(-1)
    if flat.size % 2:
        flat = np.concatenate([flat, np.zeros(1, np.uint8)])
    return pack_bytes(flat[0::2] | (flat[1::2] << 4))


def unpack_codes(words, count: int) -> np.ndarray:
    data = np.ascontiguousarray(words, "<u8").view(np.uint8)
    nibbles = np.empty(data.size * 2, np.uint8)
    nibbles[0::2] = data & 0x0F
    nibbles[1::2] = data >> 4
    return nibbles[:count]


def pack_bytes(data) -> np.ndarray:
    """Bytes, 8 per word, the first byte in the lowest byte (little endian)."""
    data = np.asarray(data, np.uint8).reshape(-1)
    padded = np.zeros(ceil_div(data.size, 8) * 8, np.uint8)
    padded[: data.size] = data
    return padded.view("<u8").astype(np.uint64)


def pack_int32(values) -> np.ndarray:
    """Signed 32-bit values, two per word, the first in the low half."""
    values = np.asarray(values, np.int64).reshape(-1)
    if values.size and (values.min() < -(2**31) or values.max() >= 2**31):
        raise KcnnError("a value does not fit the step format's 32 bits", field="int32")
    return pack_bytes(values.astype("<i4").view(np.uint8))


def unpack_int32(words, count: int) -> np.ndarray:
    return np.ascontiguousarray(words, "<u8").view("<i4")[:count].astype(np.int64)


def pack_code_table(table) -> np.ndarray:
    """The ``OUT_TABLE`` constant: ``table[i]`` (the code of the threshold bank's interval
    index ``i``) in bits ``4i+3..4i`` of one word; entries past the given ones are 0."""
    values = np.asarray(table, np.int64).reshape(-1)
    if values.size > 16 or (values.size and (values.min() < 0 or values.max() > 15)):
        raise KcnnError("an output code table is at most 16 codes of 0..15", field="table")
    nibbles = np.zeros(16, np.uint8)
    nibbles[: values.size] = values
    return pack_codes(nibbles)


def pack_residual_table(values) -> np.ndarray:
    """A residual table ``R[0..15]`` as its ``RESIDUAL_WORDS`` int32 words (``R[0]`` is 0:
    code 0 is exactly zero; the kernel refuses anything else as ``BAD_CONSTANTS``);
    entries past the given ones are 0."""
    values = np.asarray(values, np.int64).reshape(-1)
    if values.size > 16:
        raise KcnnError("a residual table has at most 16 entries", field="residual")
    table = np.zeros(16, np.int64)
    table[: values.size] = values
    return pack_int32(table)


# ---- map formats ----------------------------------------------------------------------


def blocked_words(channels: int, h: int, w: int) -> int:
    return channels * ceil_div(h, 4) * ceil_div(w, 4)


def format_words(fmt: str, channels: int, h: int, w: int) -> int:
    """Words of a ``(channels, h, w)`` map in format ``fmt`` (docs/job-format.md)."""
    if fmt == "BLOCKED":
        return blocked_words(channels, h, w)
    if fmt == "FLAT":
        return ceil_div(channels * h * w, 16)
    if fmt == "ACC":
        return ceil_div(channels * h * w, 2)
    if fmt == "F32":
        return ceil_div(channels * h * ceil_div(w, 16) * 16, 2)
    if fmt == "U8":
        return ceil_div(channels * h * ceil_div(w, 16) * 16, 8)
    raise ValueError(fmt)


def shortcut_words(fields: dict) -> int:
    """Words of a step's shortcut section, which follows the reserved word on stream A
    (docs/job-format.md): a RESIDUAL conv / fc carries the shortcut map in the step's
    output shape and format, an ADD step its map B in the map section's format; 0 for the
    other steps. Derived from the descriptor, never a field of it."""
    if fields.get("opcode") == OPCODES["ADD"]:
        return int(fields["map_words"])
    if int(fields.get("flags", 0)) & FLAGS["RESIDUAL"]:
        fmt = FORMAT_NAMES[int(fields["out_format"])]
        return format_words(fmt, fields["out_c"], fields["out_h"], fields["out_w"])
    return 0


def map_words_b(fields: dict, streams: int) -> int:
    """Words of the map section on stream B, ahead of the jobs' B words (docs/job-format.md
    "Stream B"): with two streams an ``F32`` map's word ``w`` travels on stream ``w mod 2``
    (A carries the extra word of an odd count), so B carries ``floor(map_words / 2)``;
    every other map is on A. Derived from the descriptor, as the kernel derives it."""
    split = (
        streams == 2
        and fields.get("opcode") == OPCODES["CONV"]
        and fields.get("in_format") == FORMATS["F32"]
    )
    return int(fields["map_words"]) // 2 if split else 0


def to_blocks(codes: np.ndarray) -> np.ndarray:
    """``(..., C, H, W)`` codes as ``(..., C, BY, BX, 16)`` 4x4 blocks (zero padded)."""
    codes = np.asarray(codes, np.uint8)
    *lead, c, h, w = codes.shape
    by, bx = ceil_div(h, 4), ceil_div(w, 4)
    padded = np.zeros((*lead, c, 4 * by, 4 * bx), np.uint8)
    padded[..., :h, :w] = codes
    blocks = padded.reshape(*lead, c, by, 4, bx, 4).swapaxes(-3, -2)
    return blocks.reshape(*lead, c, by, bx, 16)


def from_blocks(blocks: np.ndarray, h: int, w: int) -> np.ndarray:
    """Inverse of :func:`to_blocks`."""
    *lead, c, by, bx, _ = blocks.shape
    plane = (
        blocks.reshape(*lead, c, by, bx, 4, 4).swapaxes(-3, -2).reshape(*lead, c, 4 * by, 4 * bx)
    )
    return plane[..., :h, :w]


def pack_map(codes: np.ndarray, fmt: str) -> np.ndarray:
    """One image's map ``(C, H, W)`` codes (or accumulators for ``ACC``) as words."""
    if fmt == "BLOCKED":
        return pack_codes(to_blocks(codes))
    if fmt == "FLAT":
        return pack_codes(codes)
    if fmt == "ACC":
        return pack_int32(codes)
    raise ValueError(f"pack_map does not take format {fmt}")


def unpack_map(words: np.ndarray, fmt: str, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`pack_map`: codes (uint8) or accumulators (int64) of ``shape``."""
    count = int(np.prod(shape))
    if fmt == "ACC":
        return unpack_int32(words, count).reshape(shape)
    if fmt == "FLAT":
        return unpack_codes(words, count).reshape(shape)
    if fmt == "BLOCKED":
        c, h, w = shape
        by, bx = ceil_div(h, 4), ceil_div(w, 4)
        blocks = unpack_codes(words, c * by * bx * 16).reshape(c, by, bx, 16)
        return from_blocks(blocks, h, w)
    raise ValueError(fmt)


def pack_f32(x: np.ndarray, out=None):
    """The network input ``(C, H, W)`` float32 as ``F32`` words (rows padded to 16 values);
    written into ``out`` when given, so the board copies once: a uint64 buffer view of the
    section, or a pair ``(even, odd)`` of views that take its even and its odd words (a map
    split over streams A and B, :func:`map_words_b`), which is then returned."""
    x = np.asarray(x, np.float32)
    c, h, w = x.shape
    wp = ceil_div(w, 16) * 16
    words = format_words("F32", c, h, w)
    if isinstance(out, tuple):
        # Word 2k holds values 4k, 4k + 1 and word 2k + 1 values 4k + 2, 4k + 3; a padded
        # row is whole groups of 4, so value lane i (x mod 4) of every row goes to half i % 2
        # of the words of slot i // 2: four strided copies, each value written once.
        halves = [part[: words // 2].view(np.float32).reshape(c, h, wp // 4, 2) for part in out]
        for lane in range(4):
            column = x[..., lane::4]
            dest = halves[lane // 2][..., lane % 2]
            dest[..., : column.shape[-1]] = column
            dest[..., column.shape[-1] :] = 0
        return out
    return _pack_rows(x, "F32", out)


def pack_u8(p: np.ndarray, out=None) -> np.ndarray:
    """The network input ``(C, H, W)`` uint8 pixels as ``U8`` words (rows padded to 16
    values with 0), written into ``out`` (a uint64 view of the section) when given."""
    return _pack_rows(np.asarray(p, np.uint8), "U8", out)


def _pack_rows(x: np.ndarray, fmt: str, out) -> np.ndarray:
    """An image's rows, each padded with zeros to 16 values, as the words of ``fmt``."""
    c, h, w = x.shape
    words = format_words(fmt, c, h, w)
    if out is None:
        out = np.zeros(words, np.uint64)
    view = out[:words].view(x.dtype).reshape(c, h, ceil_div(w, 16) * 16)
    view[..., :w] = x
    view[..., w:] = 0
    return out[:words]


# ---- the input encoder's keys ------------------------------------------------------------


def float_key(values) -> np.ndarray:
    """The int32 key of float32 values that orders them like their values (docs)."""
    bits = np.asarray(values, np.float32).view(np.int32).astype(np.int64)
    return np.where(bits >= 0, bits, ~(bits & 0x7FFFFFFF)).astype(np.int64)


def encoder_keys(boundaries: np.ndarray) -> np.ndarray:
    """``K[m] = key(c_m)``, ``c_m`` the smallest float32 above the float64 boundary ``b_m``:
    for a float32 ``x``, ``key(x) >= K[m]`` exactly when ``x > b_m``."""
    b = np.asarray(boundaries, np.float64)
    c = b.astype(np.float32)
    # float32 rounding may land on or below b: step up to the first float32 above it.
    low = c.astype(np.float64) <= b
    c = np.where(low, np.nextafter(c, np.float32(np.inf)), c).astype(np.float32)
    return float_key(c)


#: Words of the pixel encoder section (``U8`` input).
PIXEL_ENCODER_WORDS = 18


def pixel_encoder_words(cuts: np.ndarray, zero: np.ndarray, window: tuple) -> np.ndarray:
    """The pixel encoder section (docs/job-format.md): ``cuts`` ``(C, J-2)`` cut points in
    0..256, ``zero`` ``(C,)`` the pixel whose value is 0 (256: none), ``window`` ``(row0,
    row1, col0, col1)`` of the map section's data."""
    cuts = np.asarray(cuts, np.int64)
    c, n = cuts.shape
    if c > LIMITS["PIXEL_CHANNELS"] or n > 16:
        raise KcnnError(f"{c} channels x {n} cut points do not fit the pixel encoder", field="U8")
    table = np.full((LIMITS["PIXEL_CHANNELS"], 16), 0xFFFF, np.uint64)
    table[:c, :n] = cuts
    zeros = np.full(LIMITS["PIXEL_CHANNELS"], 0xFFFF, np.uint64)
    zeros[:c] = np.asarray(zero, np.int64)
    lanes = np.arange(4, dtype=np.uint64) * np.uint64(16)
    words = np.zeros(PIXEL_ENCODER_WORDS, np.uint64)
    words[:16] = np.bitwise_or.reduce(table.reshape(16, 4) << lanes, axis=1)
    words[16] = np.bitwise_or.reduce(zeros << lanes)
    words[17] = np.bitwise_or.reduce(np.array(window, np.uint64) << lanes)
    return words


# ---- the shared configuration as a C++ header -------------------------------------------


def config_header() -> str:
    """``hls/kcnn_config.h``: the arithmetic contract, the build defaults (overridable
    with ``-D``) and the format constants, all from this package."""
    c, b = ARITHMETIC_CONTRACT, BuildParams()
    lines = [
        "// Generated by kcnn.protocol.config_header() from kcnn/config.py and kcnn/protocol.py.",
        "// Do not edit: run `python -m kcnn.protocol > hls/kcnn_config.h`; a test checks it.",
        "#ifndef KCNN_CONFIG_H_",
        "#define KCNN_CONFIG_H_",
        "",
        "// Arithmetic contract: fixed per release, equal to every .kcnn manifest.",
        f"#define KCNN_K_MAX {c['K_MAX']}",
        f"#define KCNN_J_MAX {c['J_MAX']}",
        f"#define KCNN_ACC_BITS {c['ACC_BITS']}",
        f"#define KCNN_BW {c['bw']}",
        f"#define KCNN_BA {c['ba']}",
        f"#define KCNN_PROTOCOL {c['protocol']}",
        "",
        "// Build parameters: defaults; build.tcl or -D overrides them per overlay.",
    ]
    from kcnn.config import BUILD_PARAMETERS

    for key in BUILD_PARAMETERS:
        lines += [f"#ifndef KCNN_{key}", f"#define KCNN_{key} {getattr(b, key)}", "#endif"]
    lines += [
        "",
        "// Step format (docs/job-format.md).",
        f"#define KCNN_MAGIC 0x{MAGIC:08X}u",
        f"#define KCNN_TRAILER_TAG 0x{TRAILER_TAG:08X}u",
        f"#define KCNN_JOB_TAG 0x{JOB_TAG:04X}u",
        f"#define KCNN_STEP_LEVEL 0x{STEP_LEVEL:04X}u",
        f"#define KCNN_DESCRIPTOR_WORDS {DESCRIPTOR_WORDS}",
        f"#define KCNN_QUOTIENT_BITS {QUOTIENT_BITS}",
        f"#define KCNN_JOB_HEADER_WORDS {JOB_HEADER_WORDS}",
        f"#define KCNN_INFO_WORDS {INFO_WORDS}",
        f"#define KCNN_PIXEL_ENCODER_WORDS {PIXEL_ENCODER_WORDS}",
    ]
    for name, value in LIMITS.items():
        lines.append(f"#define KCNN_{name} {value}u")
    for name, value in OPCODES.items():
        lines.append(f"#define KCNN_OP_{name} {value}")
    for name, value in FLAGS.items():
        lines.append(f"#define KCNN_FLAG_{name} {value}u")
    for name, value in FORMATS.items():
        lines.append(f"#define KCNN_FMT_{name} {value}")
    for name, value in STATUS.items():
        lines.append(f"#define KCNN_STATUS_{name} {value}")
    for n, name in enumerate(LOOPS):
        lines.append(f"#define KCNN_LOOP_{name} {n}")
    lines.append(f"#define KCNN_LOOP_COUNT {len(LOOPS)}")
    lines += ["", "#endif  // KCNN_CONFIG_H_", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(config_header(), end="")
