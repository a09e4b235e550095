"""The job packer: layers and codes -> the 64-bit words the kernel reads (docs/job-format.md).

numpy only: the ``csim`` and ``board`` back-ends share it. A layer's *constant part* (the
descriptor, codebooks, thresholds, biases and weights of each job) is packed once, when a
model is loaded; per frame only the input tiles are packed. Every word is a little-endian
``uint64``; the DMA raises TLAST on the last word of each transfer, so the constant part and
the inputs are two transfers.

The format constants live here and in ``hls/kcnn_config.h``, which :func:`config_header`
generates: one source of truth for Python and C++.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kcnn.config import ARITHMETIC_CONTRACT, BUILD_DEFAULTS, BUILD_PARAMETERS, DESCRIPTOR_WORDS
from kcnn.errors import KcnnError
from kcnn.kfile import QLayer, encode_sparse, sparse_bits
from kcnn.tiler import Job, plan_jobs, row_blocks

#: Descriptor word 0, low 32 bits: the bytes "KCNN" in stream order.
MAGIC = 0x4E4E434B
#: Tags the bad-job status word (high 32 bits): the bytes "KERR" in stream order.
STATUS_TAG = 0x5252454B

OPCODES = {"PROBE": 0, "LAYER": 1, "POOL": 2}
FLAGS = {"SPARSE": 1, "ACC_OUT": 2, "ACT_SIGNED": 4}
#: The ``status`` register and the bad-job word. 0 = the job ran.
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
}
#: Jobs carry one image; the field exists so that a weight block can later serve a batch.
IMAGES_MAX = 1
INFO_WORDS = 4
#: Loop-trip counters of a C-sim job, in the order the C ABI returns them.
TRIP_COUNTERS = (
    "words_in",
    "words_out",
    "wclear",
    "table",
    "gather",
    "compute",
    "emit",
    "pool",
)

# (word, low bit, width) of every descriptor field; docs/job-format.md has the same table.
DESCRIPTOR_FIELDS = {
    "magic": (0, 0, 32),
    "version": (0, 32, 16),
    "opcode": (0, 48, 8),
    "flags": (0, 56, 8),
    "k1": (1, 0, 8),
    "j1": (1, 8, 8),
    "jo1": (1, 16, 8),
    "images": (1, 24, 8),
    "channels": (1, 32, 16),
    "in_channels": (1, 48, 16),
    "in_rows": (2, 0, 16),
    "in_width": (2, 16, 16),
    "out_rows": (2, 32, 16),
    "out_width": (2, 48, 16),
    "kh": (3, 0, 8),
    "kw": (3, 8, 8),
    "sh": (3, 16, 8),
    "sw": (3, 24, 8),
    "dh": (3, 32, 8),
    "dw": (3, 40, 8),
    "const_words": (4, 0, 32),
    "input_words": (4, 32, 32),
    "entries": (5, 0, 32),
    "output_words": (5, 32, 32),
    "layer_index": (6, 0, 32),
    "job_index": (6, 32, 32),
}


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def pack_descriptor(fields: dict) -> np.ndarray:
    """The ``DESCRIPTOR_WORDS`` words of a descriptor; missing fields are 0."""
    words = [0] * DESCRIPTOR_WORDS
    for name, value in fields.items():
        word, low, width = DESCRIPTOR_FIELDS[name]
        value = int(value)
        if not 0 <= value < (1 << width):
            raise KcnnError(f"{value} does not fit the {width}-bit job field", field=name)
        words[word] |= value << low
    return np.array(words, np.uint64)


def decode_descriptor(words) -> dict:
    """Every field of a descriptor (inverse of :func:`pack_descriptor`)."""
    words = [int(w) for w in np.asarray(words, np.uint64)[:DESCRIPTOR_WORDS]]
    return {
        name: (words[word] >> low) & ((1 << width) - 1)
        for name, (word, low, width) in DESCRIPTOR_FIELDS.items()
    }


def section_words(fields: dict) -> dict:
    """Words of each section of a job with descriptor ``fields`` (the kernel's own sums)."""
    sparse = fields.get("flags", 0) & FLAGS["SPARSE"]
    channels = fields["channels"]
    window = fields["in_channels"] * fields["kh"] * fields["kw"]
    outputs = channels * fields["out_rows"] * fields["out_width"]
    if sparse:
        weights = _ceil(4 * channels + fields.get("entries", 0), 8)
    else:
        weights = _ceil(channels * window, 16) if fields["opcode"] == OPCODES["LAYER"] else 0
    in_codes = fields["in_channels"] * fields["in_rows"] * fields["in_width"]
    acc_out = fields.get("flags", 0) & FLAGS["ACC_OUT"]
    return {
        "descriptor": DESCRIPTOR_WORDS,
        "codebooks": _ceil(fields.get("k1", 0) + fields.get("j1", 0), 8),
        "thresholds": _ceil(fields.get("jo1", 0), 2),
        "biases": _ceil(channels, 2) if fields["opcode"] == OPCODES["LAYER"] else 0,
        "weights": weights,
        "inputs": _ceil(in_codes, 16),
        "outputs": _ceil(outputs, 2) if acc_out else _ceil(outputs, 16),
    }


# ---- codes <-> words --------------------------------------------------------------------


def pack_codes(codes: np.ndarray) -> np.ndarray:
    """4-bit codes, 16 per word, the first code in the lowest nibble."""
    flat = np.asarray(codes, np.uint8).reshape(-1)
    padded = np.zeros(_ceil(flat.size, 16) * 16, np.uint64)
    padded[: flat.size] = flat
    nibbles = padded.reshape(-1, 16) << (np.arange(16, dtype=np.uint64) * np.uint64(4))
    return np.bitwise_or.reduce(nibbles, axis=1).astype(np.uint64)


def unpack_codes(words: np.ndarray, count: int) -> np.ndarray:
    shifts = np.arange(16, dtype=np.uint64) * np.uint64(4)
    nibbles = (np.asarray(words, np.uint64)[:, None] >> shifts) & np.uint64(0xF)
    return nibbles.reshape(-1)[:count].astype(np.uint8)


def pack_bytes(data: np.ndarray) -> np.ndarray:
    """Bytes, 8 per word, the first byte in the lowest byte (little endian)."""
    data = np.asarray(data, np.uint8).reshape(-1)
    padded = np.zeros(_ceil(data.size, 8) * 8, np.uint8)
    padded[: data.size] = data
    return padded.view("<u8").astype(np.uint64)


def pack_int32(values: np.ndarray) -> np.ndarray:
    """Signed 32-bit values, two per word, the first in the low half."""
    values = np.asarray(values, np.int64)
    if values.size and (values.min() < -(2**31) or values.max() >= 2**31):
        raise KcnnError("a value does not fit the job format's 32 bits", field="int32")
    return pack_bytes(values.astype("<i4").view(np.uint8))


def unpack_int32(words: np.ndarray, count: int) -> np.ndarray:
    return np.asarray(words, "<u8").view("<i4")[:count].astype(np.int64)


# ---- jobs of a layer --------------------------------------------------------------------


@dataclass
class PackedJob:
    """One job: its geometry, its constant words (packed once) and its output layout."""

    job: Job
    fields: dict
    constant: np.ndarray  # uint64, descriptor included; TLAST on the last word
    sections: dict  # words per section
    weight_bits: int  # payload bits of the weight section (padding excluded)

    @property
    def output_words(self) -> int:
        return self.fields["output_words"]

    @property
    def input_words(self) -> int:
        return self.fields["input_words"]


@dataclass
class PackedLayer:
    """A fabric layer (or a max-pool run on the fabric) as the jobs the packer made."""

    layer: QLayer
    index: int
    jobs: list[PackedJob] = field(default_factory=list)
    acc_out: bool = False


def _check_banks(layer: QLayer, job: Job, params: dict) -> None:
    """The kernel's caches are banked by PE; a job must fit each bank, not only the total."""
    p = params["P"]
    bank = params["W_DEPTH"] // p
    if _ceil(job.channels, p) * job.window > bank:
        raise KcnnError(
            f"{job.channels} output channel(s) of {job.window} weights need "
            f"{_ceil(job.channels, p) * job.window} codes in one PE's weight bank, more than "
            f"W_DEPTH/P={bank}",
            layer=layer.name,
            field="W_DEPTH",
        )


def layer_fields(layer: QLayer, job: Job, j_in: int, signed_in: bool) -> dict:
    """Descriptor fields of a conv / fc job (counts filled in)."""
    emits_codes = layer.thresholds is not None
    if layer.op == "fc":
        kernel, strides, dilations = (1, 1), (1, 1), (1, 1)
        out_rows, out_width = 1, 1
    else:
        a = layer.attrs
        kernel, strides, dilations = a["kernel"], a["strides"], a["dilations"]
        out_rows, out_width = job.rows, layer.out_shape[2]
    flags = (0 if emits_codes else FLAGS["ACC_OUT"]) | (FLAGS["ACT_SIGNED"] if signed_in else 0)
    entries = 0
    if layer.weight_form == "sparse":
        flags |= FLAGS["SPARSE"]
        entries = int(_job_sparse(layer, job)[0].size)
    fields = {
        "magic": MAGIC,
        "version": ARITHMETIC_CONTRACT["protocol"],
        "opcode": OPCODES["LAYER"],
        "flags": flags,
        "k1": layer.K - 1,
        "j1": j_in - 1,
        "jo1": len(layer.thresholds) if emits_codes else 0,
        "images": 1,
        "channels": job.channels,
        "in_channels": job.in_channels,
        "in_rows": job.in_rows,
        "in_width": job.in_width,
        "out_rows": out_rows,
        "out_width": out_width,
        "kh": kernel[0],
        "kw": kernel[1],
        "sh": strides[0],
        "sw": strides[1],
        "dh": dilations[0],
        "dw": dilations[1],
        "entries": entries,
    }
    return _with_counts(fields)


def _with_counts(fields: dict) -> dict:
    s = section_words(fields)
    fields["const_words"] = sum(
        s[k] for k in ("descriptor", "codebooks", "thresholds", "biases", "weights")
    )
    fields["input_words"] = s["inputs"]
    fields["output_words"] = s["outputs"]
    return fields


def _job_rows(layer: QLayer, job: Job) -> np.ndarray:
    return layer.codes.reshape(layer.codes.shape[0], -1)[job.ch0 : job.ch0 + job.channels]


def _job_sparse(layer: QLayer, job: Job):
    return encode_sparse(_job_rows(layer, job))


def pack_constant(layer: QLayer, job: Job, fields: dict, aq: np.ndarray) -> tuple:
    """``(words, sections, weight_bits)`` of a conv / fc job's constant part."""
    books = np.concatenate([layer.wq, aq]).astype(np.int64)
    if books.size and (books.min() < -128 or books.max() > 255):
        raise KcnnError("a codebook entry does not fit 8 bits", layer=layer.name, field="wq")
    parts = [pack_descriptor(fields), pack_bytes((books & 0xFF).astype(np.uint8))]
    if layer.thresholds is not None:
        parts.append(pack_int32(layer.thresholds))
    parts.append(pack_int32(layer.bias[job.ch0 : job.ch0 + job.channels]))
    if layer.weight_form == "sparse":
        entries, per_row = _job_sparse(layer, job)
        payload = np.concatenate([per_row.astype("<u4").view(np.uint8), entries])
        weight_bits = sparse_bits(entries.size, per_row.size)
        parts.append(pack_bytes(payload))
    else:
        rows = _job_rows(layer, job)
        weight_bits = 4 * rows.size
        parts.append(pack_codes(rows))
    words = np.concatenate(parts).astype(np.uint64)
    sections = section_words(fields)
    if words.size != fields["const_words"]:  # the packer and the kernel's sums disagree
        raise AssertionError(f"{words.size} constant words, descriptor says {fields}")
    return words, sections, weight_bits


def pool_jobs(layer: QLayer, params: dict | None = None) -> list[Job]:
    """Jobs of a max-pool on the fabric: channel block x output-row block, like a depthwise
    conv whose every channel is its own group (so one tile serves a block of channels)."""
    params = {**BUILD_DEFAULTS, **(params or {})}
    c, h, w = layer.in_shape
    top, left, bottom, right = layer.attrs["pads"]
    kh, _ = layer.attrs["kernel"]
    sh = layer.attrs["strides"][0]
    wp = w + left + right
    _, oh, ow = layer.out_shape

    def rows_needed(rows):
        return (rows - 1) * sh + kh

    in_depth, out_depth = params["IN_DEPTH"], params["OUT_DEPTH"]
    if rows_needed(1) * wp > in_depth or ow > out_depth:
        raise KcnnError(
            f"one output row of one channel needs {rows_needed(1) * wp} input codes and {ow}"
            f" outputs, more than IN_DEPTH={in_depth} / OUT_DEPTH={out_depth}",
            layer=layer.name,
            field="IN_DEPTH",
        )
    rows = oh
    while rows > 1 and (rows_needed(rows) * wp > in_depth or rows * ow > out_depth):
        rows -= 1
    block = max(1, min(c, in_depth // (rows_needed(rows) * wp), out_depth // (rows * ow)))
    jobs = []
    for ch in range(0, c, block):
        channels = min(block, c - ch)
        jobs += row_blocks(
            layer.name,
            ch,
            channels,
            ch,
            channels,
            rows=rows,
            oh=oh,
            ow=ow,
            sh=sh,
            span=kh,
            wp=wp,
            window=layer.attrs["kernel"][0] * layer.attrs["kernel"][1],
        )
    return jobs


def fabric_pools(model) -> set[str]:
    """Max-pools the fabric runs: those right after a conv. A max-pool after a host op
    stays on the host, on codes (DESIGN section 1)."""
    names, previous = set(), None
    for layer in model.layers:
        if layer.op == "maxpool" and previous is not None and previous.op == "conv":
            names.add(layer.name)
        previous = layer
    return names


def pool_fields(layer: QLayer, job: Job) -> dict:
    a = layer.attrs
    fields = {
        "magic": MAGIC,
        "version": ARITHMETIC_CONTRACT["protocol"],
        "opcode": OPCODES["POOL"],
        "images": 1,
        "channels": job.channels,
        "in_channels": job.in_channels,
        "in_rows": job.in_rows,
        "in_width": job.in_width,
        "out_rows": job.rows,
        "out_width": layer.out_shape[2],
        "kh": a["kernel"][0],
        "kw": a["kernel"][1],
        "sh": a["strides"][0],
        "sw": a["strides"][1],
        "dh": 1,
        "dw": 1,
    }
    return _with_counts(fields)


def pack_layer(model, layer: QLayer, index: int, params: dict | None = None) -> PackedLayer:
    """Every job of a fabric layer (conv, fc, or a max-pool the fabric runs), constant
    parts packed. Done once per model load."""
    params = {**BUILD_DEFAULTS, **(params or {})}
    packed = PackedLayer(layer, index, acc_out=layer.is_fabric and layer.thresholds is None)
    if layer.op == "maxpool":
        for n, job in enumerate(pool_jobs(layer, params)):
            fields = pool_fields(layer, job)
            fields.update(layer_index=index, job_index=n)
            words = pack_descriptor(fields)
            packed.jobs.append(PackedJob(job, fields, words, section_words(fields), 0))
        return packed
    book = model.maps[layer.in_map]
    for n, job in enumerate(plan_jobs(layer, params)):
        _check_banks(layer, job, params)
        fields = layer_fields(layer, job, book.J, book.signed)
        fields.update(layer_index=index, job_index=n)
        words, sections, bits = pack_constant(layer, job, fields, book.aq)
        packed.jobs.append(PackedJob(job, fields, words, sections, bits))
    return packed


def padded_input(layer: QLayer, codes: np.ndarray) -> np.ndarray:
    """One image's input codes as the tiler sees them: ``(C, H_padded, W_padded)`` with
    code-0 padding, or ``(taps, 1, 1)`` for an fc layer."""
    if layer.op == "fc":
        return np.asarray(codes, np.uint8).reshape(-1, 1, 1)
    top, left, bottom, right = layer.attrs["pads"]
    return np.pad(codes, ((0, 0), (top, bottom), (left, right)))


def pack_inputs(padded: np.ndarray, job: Job) -> np.ndarray:
    """The input transfer of ``job``: its tile, C order (channel, row, column), nibble-packed."""
    tile = padded[
        job.in_ch0 : job.in_ch0 + job.in_channels,
        job.in_row0 : job.in_row0 + job.in_rows,
        : job.in_width,
    ]
    return pack_codes(tile)


def unpack_outputs(words: np.ndarray, pj: PackedJob, acc_out: bool) -> np.ndarray:
    """A job's outputs as ``(channels, rows, out_width)``: codes (uint8) or acc (int64)."""
    f = pj.fields
    shape = (f["channels"], f["out_rows"], f["out_width"])
    count = int(np.prod(shape))
    if acc_out:
        return unpack_int32(words, count).reshape(shape)
    return unpack_codes(words, count).reshape(shape)


def job_transfers(pj: PackedJob, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The words of a job as the kernel sees them, and the TLAST flag of each word (the DMA
    raises it on the last word of each of the two transfers)."""
    words = np.concatenate([pj.constant, inputs]).astype(np.uint64)
    last = np.zeros(words.size, np.uint8)
    last[pj.constant.size - 1] = 1
    if inputs.size:
        last[-1] = 1
    return words, last


def probe_job() -> np.ndarray:
    """The probe job: a descriptor with opcode PROBE and no payload."""
    return pack_descriptor(
        {
            "magic": MAGIC,
            "version": ARITHMETIC_CONTRACT["protocol"],
            "opcode": OPCODES["PROBE"],
            "const_words": DESCRIPTOR_WORDS,
        }
    )


def decode_info(info) -> dict:
    """The probe answer (also the ``info0..3`` registers) as a configuration dict."""
    i0, i1, i2, i3 = (int(v) for v in info[:INFO_WORDS])
    return {
        "magic": i0 & 0xFFFFFFFF,
        "protocol": i1 & 0xFFFF,
        "P": i2 & 0xFFFF,
        "K_MAX": (i2 >> 16) & 0xFF,
        "J_MAX": (i2 >> 24) & 0xFF,
        "ACC_BITS": (i2 >> 32) & 0xFF,
        "bw": (i2 >> 40) & 0xFF,
        "ba": (i2 >> 48) & 0xFF,
        "IN_DEPTH": i3 & 0x1FFFFF,
        "W_DEPTH": (i3 >> 21) & 0x1FFFFF,
        "OUT_DEPTH": (i3 >> 42) & 0x1FFFFF,
    }


def status_word(status: int) -> int:
    """The single output word of a bad job."""
    return (STATUS_TAG << 32) | int(status)


def decode_status(word: int) -> str | None:
    """The status name of a bad-job word, or None if ``word`` is not one."""
    word = int(word)
    if (word >> 32) != STATUS_TAG:
        return None
    code = word & 0xFFFF
    for name, value in STATUS.items():
        if value == code:
            return name
    return f"UNKNOWN({code})"


# ---- the shared configuration as a C++ header -------------------------------------------


def config_header() -> str:
    """``hls/kcnn_config.h``: the arithmetic contract, the build defaults (overridable
    with ``-D``) and the job-format constants, all from this package."""
    c, b = ARITHMETIC_CONTRACT, BUILD_DEFAULTS
    lines = [
        "// Generated by kcnn.jobs.config_header() from kcnn/config.py and kcnn/jobs.py.",
        "// Do not edit: run `python -m kcnn.jobs > hls/kcnn_config.h`; a test checks it.",
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
    for key in BUILD_PARAMETERS:
        lines += [f"#ifndef KCNN_{key}", f"#define KCNN_{key} {b[key]}", "#endif"]
    lines += ["", "// Job format (docs/job-format.md).", f"#define KCNN_MAGIC 0x{MAGIC:08X}u"]
    lines.append(f"#define KCNN_STATUS_TAG 0x{STATUS_TAG:08X}u")
    lines.append(f"#define KCNN_DESCRIPTOR_WORDS {DESCRIPTOR_WORDS}")
    lines.append(f"#define KCNN_INFO_WORDS {INFO_WORDS}")
    lines.append(f"#define KCNN_IMAGES_MAX {IMAGES_MAX}")
    for name, value in OPCODES.items():
        lines.append(f"#define KCNN_OP_{name} {value}")
    for name, value in FLAGS.items():
        lines.append(f"#define KCNN_FLAG_{name} {value}u")
    for name, value in STATUS.items():
        lines.append(f"#define KCNN_STATUS_{name} {value}")
    for n, name in enumerate(TRIP_COUNTERS):
        lines.append(f"#define KCNN_TRIP_{name.upper()} {n}")
    lines.append(f"#define KCNN_TRIP_COUNT {len(TRIP_COUNTERS)}")
    lines += ["", "#endif  // KCNN_CONFIG_H_", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(config_header(), end="")
