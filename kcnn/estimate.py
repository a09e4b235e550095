"""Estimated board performance (DESIGN section 6): an analytic model, never a measurement.

Computed from the `.kcnn`, the overlay's build parameters and the step planner alone:

- **fabric**: every step runs the kernel's loops in order (:func:`kcnn.plan.loop_log`
  gives the loop entries and their trips, which the C-sim reproduces entry by entry);
  a loop costs ``II x trips + depth`` per entry, from :data:`LOOP_TABLE` (the same table
  ``hls/README.md`` prints). Where the hardware overlaps work (the next job's weights with
  the current job's compute, the next channel's plane with the current channel's pool or
  LRN), the planner's trips are already the maximum of the two. A step also needs its
  DDR traffic: it takes ``max(loop cycles / clock, bytes / DDR bandwidth)``, plus a set-up
  cost per DMA transfer.
- **host**: per step the register accesses of the transfers (pynq's MMIO path from
  Python on the Cortex-A9), per frame the input copy into the DMA buffer and its cache
  flush, and the trailing host ops; each a named constant with its source.
- **resources**: per module, formulas in the build parameters; utilization of the
  xc7z020 against the budget of DESIGN section 4.
- **baselines**: the dense 8-bit design a user would build instead, and the physical
  limits, with the same host work.

``fps = 1 / (fabric + host)``. Every figure is an estimate and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kcnn.config import DESCRIPTOR_WORDS, BuildParams
from kcnn.model import Model
from kcnn.plan import plan_model
from kcnn.protocol import RAW_FORMATS
from kcnn.report import build_report
from kcnn.tiling import JOB_CHANNELS, Plan, Step

# ---- the kernel's loops ---------------------------------------------------------------------


@dataclass(frozen=True)
class Loop:
    ii: int
    depth: int  # pipeline stages: cycles from the first issue to the last result
    why: str  # why the structure allows this II


#: One row per pipelined loop of the kernel. ``hls/README.md`` prints this table.
LOOP_TABLE = {
    "DESCRIPTOR": Loop(1, 3, "one stream word per iteration into a word register"),
    "QUOTIENTS": Loop(
        1,
        2,
        "the step checks' three quotients, one bit per iteration: each remainder is "
        "shifted, compared with its divisor and reduced (17-bit registers; the carried "
        "chain is one compare-subtract, no memory)",
    ),
    "CONST": Loop(1, 3, "one stream word per iteration; each table has its own write port"),
    "TABLE": Loop(
        1,
        5,
        "one product (an ADD step: the output code of one pair of input codes, from one "
        "adder, the threshold bank and the code table) per iteration, written once into each "
        "lane pair's BRAM18 (one write port each); the codebook copies in the LUTRAMs take "
        "one write each in 16 of the iterations",
    ),
    "MAP": Loop(
        1,
        5,
        "one map word per iteration; its 4 rows go to the 4 banks (one write each) of "
        "the partitions in the channel's mask (an F32 map with two streams: one word of A "
        "and one of B, 4 floats through 4 comparator banks; a U8 map: one word of A, 8 "
        "pixels through 8 comparator banks sharing their channel's cut points; a 16-code "
        "segment every 4 (F32) or 2 (U8) iterations leaves as 4 queued bank words, two "
        "per iteration on the tile bank's two ports, with two reads of the placement "
        "RAM's two ports)",
    ),
    "LOAD": Loop(
        1,
        5,
        "one weight step per iteration: each partition decodes its own byte or nibble "
        "and writes at most one entry into its own bank",
    ),
    "JOB": Loop(
        1,
        24,
        "per partition: 1 read of its weight bank (the loader writes the other buffer), "
        "2 reads of each of its 4 tile banks (true dual port), 1 read of its Wq LUTRAM and "
        "of each DSP lane's Aq LUTRAM, 2 reads of each of its 4 product BRAM18s (one per "
        "lane of the pair); every accumulator is a register (a DSP lane's feeds its DSP48's "
        "adder); the next vector's length comes from channel starts read a vector ahead; "
        "the reducer reads 1 word of the shortcut memory (its address from the output "
        "place's running sums) and R and the code table are registers",
    ),
    "EMIT": Loop(1, 3, "one output word read per iteration from the output memory"),
    "PLANE": Loop(1, 4, "as MAP: one word per iteration, one write per bank"),
    "POOL": Loop(
        1,
        8,
        "the region schedule reads at most 2 words per bank per iteration (true dual "
        "port); the next plane writes another partition",
    ),
    "LRN": Loop(
        1,
        8,
        "one word per bank of each window channel's partition per iteration; the next "
        "plane writes a partition outside the window; one read of each search stage's cut "
        "LUTRAM per lane",
    ),
    "SHORTCUT": Loop(
        1,
        3,
        "one shortcut word of stream A per iteration into one word of the shortcut memory "
        "(its one write port; nothing reads it in this loop)",
    ),
    "ADD": Loop(
        1,
        6,
        "one word of map B per iteration (a BLOCKED -> FLAT add: one every 4, one output "
        "row of 4 codes per iteration into 4 distinct out-memory banks); map A's word: 1 read "
        "per bank of every partition at one address; 16 lanes read their output code from "
        "the product BRAM18s of partitions 0 and 1, 2 per BRAM18 (one per port)",
    ),
}

# ---- constants with their sources -------------------------------------------------------------

#: PYNQ-Z2 DDR3: 16-bit at 1,050 MT/s = 2.1 GB/s peak, about 75% efficiency (UG585 22.3.2).
DDR_BYTES_PER_S = 1.6e9
#: Set-up of one simple-mode AXI DMA transfer before data flows (register write to the
#: first beat): assumed 2 us, not measured.
DMA_SETUP_S = 2e-6
#: One pynq ``MMIO.write`` from Python on the board: 5,600 calls took 150-200 ms on a
#: PYNQ-Z1 (discuss.pynq.io, "MMIO write is too slow"; PYNQ_FACTS.md).
MMIO_ACCESS_S = 30e-6
#: The driver indexes ``MMIO.array`` instead (host/board.py), as PYNQ's maintainers advise
#: in that thread: 4.6-6.2 times cheaper than MMIO.read / MMIO.write on this machine
#: (bench/bench_registers.py: 86-140 ns against 520-660 ns; pynq 3.1.2, Python 3.10,
#: 2026-11-30). The model takes the smaller ratio, and the cited board cost divided by it.
ARRAY_ACCESS_SPEEDUP = 4.6
REGISTER_ACCESS_S = MMIO_ACCESS_S / ARRAY_ACCESS_SPEEDUP
#: Register accesses per step: S2MM address + length, MM2S address + length (and the same
#: on the weight DMA when the step has a stream-B share), then the S2MM status read that
#: sees the end and the S2MM length read that checks it (host/board.py).
STEP_ACCESSES = 6
STREAM_B_ACCESSES = 2
#: The CPU's copy of the input into the DMA buffer: assumed 0.5 GB/s on the Cortex-A9
#: (read + write through the 16-bit DDR3, a quarter of its peak); this machine copies the
#: same array at about 15 GB/s.
HOST_COPY_BYTES_PER_S = 0.5e9
#: Cache clean of the input buffer before the DMA reads it: assumed 1 ns per byte (one
#: clean per 32-byte line at about 30 ns).
HOST_FLUSH_S_PER_BYTE = 1e-9
#: Python work per step in the driver besides register accesses (bookkeeping, numpy views):
#: about 5 us measured on this machine, times 10 for the Cortex-A9 at 650 MHz (CoreMark
#: per MHz and clock ratio).
HOST_STEP_S = 50e-6
#: The host encoder (a first layer that takes codes, not float32, and the thresholds of a
#: layer split along its input): 24 ns per value measured here (numpy searchsorted on
#: 150,528 values), times 10.
HOST_ENCODE_S_PER_VALUE = 2.4e-7
#: Maps the host cuts into bands or joins from bands (a layer larger than the tile): one
#: unpack and one pack per code, about 6 ns measured here, times 10.
HOST_MAP_S_PER_CODE = 6e-8
#: Trailing host ops (softmax) per element: 27 us for 1,000 logits measured here, times 10.
HOST_OP_S_PER_ELEMENT = 2.7e-7
CPU_SCALE = 10

# ---- resources ----------------------------------------------------------------------------

#: xc7z020 (PYNQ_FACTS.md) and the planning budget of DESIGN section 4.
DEVICE = {"lut": 53200, "ff": 106400, "bram36": 140, "dsp48": 220}
BUDGET = {"lut": 0.70, "ff": 0.50, "bram36": 0.80, "dsp48": 0.80}
#: LUTs of one 16:1 multiplexer bit (4 LUT6 + MUXF7/MUXF8 in one slice) and of one adder
#: bit (LUT + carry chain); a 16-deep LUTRAM bit is one LUT (RAM32X1S).
MUX16_LUT, ADD_LUT, LUTRAM16_LUT = 4, 1, 1
#: A lane's 24-bit accumulator in fabric, and a DSP lane's copy of the input codebook
#: (16 x 9-bit LUTRAM).
LANE_ADD_LUT = 24 * ADD_LUT
LANE_CODEBOOK_LUT = 9 * LUTRAM16_LUT
#: A pixel lane built of LUTs only: a 16:1 multiplexer of the 16-bit products and a 24-bit
#: accumulator. The kernel's lanes avoid it (DSP48 and BRAM18 lanes); the physical limit
#: (DESIGN section 6: the lanes that fit the LUT budget) is priced with it.
LANE_LUT = 16 * MUX16_LUT + LANE_ADD_LUT


#: Products P[k][a] of a step: K_MAX x J_MAX.
PRODUCT_ENTRIES = 16 * 16
#: BRAM18 aspect ratios (width, depth); a BRAM36 is two BRAM18.
BRAM18_SHAPES = ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512))


def _bram36(depth: int, width: int) -> float:
    """BRAM36 of a ``depth`` x ``width`` memory, in the cheapest BRAM18 arrangement."""
    n18 = min(-(-width // w) * -(-depth // d) for w, d in BRAM18_SHAPES)
    return n18 / 2


def resources(params: BuildParams) -> dict:
    """Per module LUT / FF / BRAM36 / DSP48, from the build parameters (an estimate)."""
    p = params.P
    lanes = params.lanes
    bank_words = params.IN_DEPTH // (16 * p)
    modules = {
        "partition array": {
            # lanes: half multiply and accumulate in a DSP48 each (their input codebook
            # copy in a LUTRAM), half read the product from a BRAM18 port and accumulate
            # in LUTs; per partition the Wq LUTRAM (16 x 9 bits), the 4:1 shift of each
            # tile bank's two words, the address arithmetic of 4 banks x 2 ports, the
            # entry decode and the vector counters, and the dilated tap offsets (4 LUTRAMs
            # of 16 words of 18 bits)
            "lut": (lanes // 2) * (LANE_CODEBOOK_LUT + LANE_ADD_LUT)
            + p * (9 * LUTRAM16_LUT + 4 * 16 + 150)
            + p * 4 * 18 * LUTRAM16_LUT,
            # accumulators (a DSP lane's too: its sum leaves the DSP48 unregistered, for the
            # shadow copy), shadow copies, products and codes in flight
            "ff": lanes * 24 + lanes * (24 + 16 + 4 + 8) + p * 200,
            # the tile's 4 banks, the weight cache's two buffers and the 4 product BRAM18s
            # (256 x 16 bits) of each partition
            "bram36": p
            * (
                4 * _bram36(bank_words, 16)
                + 2 * _bram36(params.W_DEPTH, 16)
                + 4 * _bram36(PRODUCT_ENTRIES, 16)
            ),
            # slot x plane and block row x width products of the tile addresses, and the
            # DSP lanes
            "dsp48": 2 * p + lanes // 2,
        },
        "channel starts": {
            # both buffers of a partition's table (2 x 257 pointers of 12 bits) in one BRAM18
            "lut": 20 * p,
            "ff": 24 * p,
            "bram36": p * _bram36(2 * (JOB_CHANNELS + 1), 12),
            "dsp48": 0,
        },
        "reducer and threshold bank": {
            # P-input adder tree of 24-bit partials, bias add, 15 comparators, packer, and
            # per partition a 16:1 multiplexer of the 24-bit shadow accumulators (the
            # reducer takes one lane of every partition per cycle)
            "lut": 15 * 28 + 32 + 15 * 16 + 120 + p * 24 * MUX16_LUT,
            "ff": 16 * 32 + 600,
            "bram36": _bram36(2 * 256, 32),
            "dsp48": 0,
        },
        # per partition: the entry decode and three barrel shifters of the position checks,
        # the filler's detect and addend (10) and its second 14-bit position adder (14)
        "weight loader": {"lut": p * 134 + 250, "ff": p * 48 + 300, "bram36": 0, "dsp48": 0},
        "map loader and input encoders": {
            # F32, per float encoded a cycle (2 per stream): a bank of 15 comparators of
            # 32-bit keys (16 LUT each with the carry chain), the key's formation (32), the
            # code count (24), the zero / non-finite detect and code select (10) and the
            # row-width compare (16); stream B's read site and its enable (50); the segment,
            # queue (narrow channel and address registers) and counters (212); per extra
            # stream a 64-bit word and two lanes' pipeline copies.
            # U8, per pixel encoded a cycle (8): 14 comparators of 9 bits (5 LUT each), the
            # code count (20), the zero-pixel test and select (6), its column-window bit (a
            # 5-input function of 4 shared compares: 2); shared: the window compares (45),
            # the channel's cut-point row and zero pixel through 4:1 multiplexers (126 + 9),
            # CONST's writes of the pixel registers (180), the F32 / U8 code select (64);
            # the queue's second drain site (50 + 4 P) and one more input (address, data,
            # enable: 28 bits) on the second port of each of the 4 P tile banks (112 P, the
            # upper end of 56 P to 112 P); the pixel registers (cut points, zero pixels,
            # window: 604 FF), their pipeline (150 FF), the second drain site's and the
            # U8 lanes' pipeline stages (50 + 112 FF)
            "lut": 2 * params.STREAMS * (15 * 16 + 32 + 24 + 10 + 16)
            + 50 * (params.STREAMS - 1)
            + 212
            + 8 * (14 * 5 + 20 + 6 + 2)
            + 45
            + 126
            + 9
            + 180
            + 64
            + 50
            + 4 * p
            + 112 * p,
            "ff": 600 - 176 + 200 * (params.STREAMS - 1) + 604 + 150 + 50 + 112,
            "bram36": _bram36(params.CH_MAX, 48),
            "dsp48": 0,
        },
        "product-table builder": {"lut": 60, "ff": 60, "bram36": 0, "dsp48": 1},
        # the descriptor and job-header checks: one shared 32 x 16 multiplier, the 9 x 15
        # and 9 x 13 header products, a 16-step shift-and-subtract divider
        "step checks": {"lut": 600, "ff": 500, "bram36": 0, "dsp48": 5},
        "pool unit": {
            # 32 candidate codes per cycle (4 rows x 2 words x 4 codes), each decoded once
            # into a 15-bit thermometer; per lane (16) and candidate an in-window bit, and
            # per lane and thermometer bit an OR of 32 masked bits; the region registers
            "lut": 32 * 8 + 16 * 32 + 16 * 15 * 13 + 300,
            "ff": 15 * 16 * 4 + 200,
            "bram36": 0,
            "dsp48": 0,
        },
        "LRN unit": {
            # per lane: 9 window copies of the square LUTRAM (16 x 17 bits) and their adder
            # tree, the window's 16-bit partition slices, and a 4-stage binary search of the
            # centre code's cut row, each stage with one comparator and a LUTRAM of the 16,
            # 32, 64 or 128 cut points (21 bits) it can probe (a LUT6 holds 64 x 1 bits),
            # whose address chooses between CONST's and the search's (22 LUT a lane) and
            # whose read output is a register (4 x 21 FF a lane)
            "lut": params.LRN_LANES * (9 * 17 * LUTRAM16_LUT + 8 * 20 + 16 * 4 * MUX16_LUT)
            + params.LRN_LANES * (4 * 20 + 4 * 10 + 50)
            + params.LRN_LANES * (21 * (1 + 1 + 1 + 2) + 22)
            + 100,
            "ff": params.LRN_LANES * (160 + 4 * 21) + 100,
            "bram36": 0,
            "dsp48": 0,
        },
        "output memory": {
            # 16 banks of 4-bit codes, so that any code is written alone (FLAT, subsampled
            # and ACC outputs are scattered one code or one int32 at a time)
            "lut": 120,
            "ff": 100,
            "bram36": 16 * _bram36(params.OUT_DEPTH // 16, 4),
            "dsp48": 0,
        },
        "residual and code table": {
            # RESIDUAL: the shortcut section (OUT_DEPTH codes, like the out memory) in one
            # 64-bit-wide memory; the reducer's shortcut place (an adder), its nibble (a 16:1
            # multiplexer of 4 bits), R[code] from 16 int32 registers (a 16:1 multiplexer of
            # 32 bits) into one more adder input; OUT_TABLE: a 16:1 multiplexer of 4 bits
            "lut": 32 * ADD_LUT + 4 * MUX16_LUT + 32 * MUX16_LUT + 32 * ADD_LUT + 4 * MUX16_LUT,
            "ff": 16 * 32 + 64 + 100,
            "bram36": _bram36(params.OUT_DEPTH // 16, 64),
            "dsp48": 0,
        },
        "add unit": {
            # the ADD loop: map A's word out of P partitions (a P:1 multiplexer of 64 bits),
            # 16 place masks, and per out-memory bank a 16:1 multiplexer of 4 bits and a place
            # compare (BLOCKED -> FLAT); TABLE's add path: R1[k] and R2[a] (two 16:1
            # multiplexers of 32 bits), an adder, 15 comparators of 32 bits and their count,
            # the code table's multiplexer; R2 and the row buffer in registers
            "lut": 64 * p // 4
            + 16 * 8
            + 16 * (4 * MUX16_LUT + 8)
            + 150
            + 2 * 32 * MUX16_LUT
            + 32 * ADD_LUT
            + 15 * 16
            + 40,
            "ff": 16 * 32 + 64 + 500,
            "bram36": 0,
            "dsp48": 0,
        },
        "control, AXI-Lite and streams": {"lut": 1000, "ff": 1500, "bram36": 0, "dsp48": 0},
        # Platform IP beside the kernel, assumed from typical simple-mode AXI DMA builds:
        "AXI DMA (jobs and answers)": {"lut": 1700, "ff": 2600, "bram36": 2, "dsp48": 0},
        "AXI DMA (weights)": (
            {"lut": 900, "ff": 1400, "bram36": 1, "dsp48": 0}
            if params.STREAMS == 2
            else {"lut": 0, "ff": 0, "bram36": 0, "dsp48": 0}
        ),
        "AXI interconnect and resets": {"lut": 1200, "ff": 1600, "bram36": 0, "dsp48": 0},
    }
    total = {k: sum(m[k] for m in modules.values()) for k in DEVICE}
    utilization = {k: total[k] / DEVICE[k] for k in DEVICE}
    return {
        "modules": modules,
        "total": total,
        "utilization": utilization,
        "budget": dict(BUDGET),
        "within_budget": all(utilization[k] <= BUDGET[k] for k in DEVICE),
        "lane_lut": LANE_LUT,
    }


# ---- steps --------------------------------------------------------------------------------


def step_cycles(step: Step) -> tuple[int, dict]:
    """Fabric cycles of one step and their split by loop."""
    by_loop: dict[str, int] = {}
    for loop, trips in step.loop_log():
        row = LOOP_TABLE[loop]
        by_loop[loop] = by_loop.get(loop, 0) + row.ii * trips + row.depth
    return sum(by_loop.values()), by_loop


def step_words(step: Step) -> dict:
    # Counted from the parts: joining a step's weight words only to count them would copy
    # every weight of the model.
    return {
        "a": int(DESCRIPTOR_WORDS + step.constants.size + step.map_words_a + 1)
        + step.shortcut_words
        + sum(int(job.words_a.size) for job in step.jobs),
        "b": step.stream_b_words,
        "out": int(step.out_words + 1),
    }


def _host(plan: Plan) -> dict:
    first = plan.first
    # The host writes the first layer's map (every band of it): float32 values or uint8
    # pixels the kernel encodes, or codes the host encodes first. Each value is copied and
    # flushed once, whether the map's words sit in one slot or are split over the stream-A
    # and stream-B buffers.
    first_steps = [s for s in plan.steps if s.layer is first.layer]
    input_bytes = 8 * sum(s.map_words for s in first_steps)
    encoded = 0 if first.in_format in RAW_FORMATS else int(np.prod(first.layer.in_shape))
    accesses = sum(
        STEP_ACCESSES + (STREAM_B_ACCESSES if step.stream_b_words else 0) for step in plan.steps
    )
    tail = sum(int(np.prod(layer.out_shape)) for layer in plan.host_tail)
    # Layers of a graph the host runs between steps: Concats and shuffles (placing codes),
    # code tables and host ops on maps (costed as host ops, an upper bound for placing).
    between = sum(
        int(np.prod(layer.out_shape))
        for layer in plan.model.layers
        if not (layer.kind.fabric_step or layer.kind.shape_only or layer.kind.on_logits)
    )
    # Codes of the maps the host unpacks (answers it reads, every piece it joins) and
    # packs (maps it writes, every piece it cuts); the first step's input is counted above.
    host_codes = sum(
        int(np.prod(step.out_shape)) for step in plan.steps if step.host_out or step.is_piece
    ) + sum(
        int(np.prod(step.in_shape))
        for step in plan.steps
        if step.host_in and step.layer is not first.layer
    )
    # The shortcut sections the host packs (a residual step's shortcut, an add's map B).
    host_codes += sum(
        int(np.prod(step.in_shape if step.op == "ADD" else step.out_shape))
        for step in plan.steps
        if step.shortcut_words
    )
    # A layer split along its input: the host adds its blocks' answers (counted with the
    # maps above) and encodes the sums with the layer's thresholds.
    split = {id(s.layer): s.layer for s in plan.steps if s.part is not None}
    thresholded = sum(
        int(np.prod(layer.out_shape)) for layer in split.values() if layer.thresholds is not None
    )
    parts = {
        "register_accesses": accesses * REGISTER_ACCESS_S,
        "input_copy": input_bytes / HOST_COPY_BYTES_PER_S,
        "input_flush": input_bytes * HOST_FLUSH_S_PER_BYTE,
        "driver_python": len(plan.steps) * HOST_STEP_S,
        "host_ops": (tail + between) * HOST_OP_S_PER_ELEMENT,
        "host_maps": host_codes * HOST_MAP_S_PER_CODE,
        "input_encode": encoded * HOST_ENCODE_S_PER_VALUE,
        "block_thresholds": thresholded * HOST_ENCODE_S_PER_VALUE,
    }
    return {
        "s": sum(parts.values()),
        "parts": parts,
        "accesses": accesses,
        "input_bytes": input_bytes,
    }


def _dense_baseline(plan: Plan, rows: list[dict], clock: float) -> float:
    """Fabric seconds of the dense 8-bit design: per conv / fc layer its weight bytes over
    the DDR bandwidth or its MACs over the DSP budget x 2 int8 MACs per DSP48 per cycle,
    whichever is longer; the pool and LRN steps as ours."""
    macs_per_s = int(DEVICE["dsp48"] * BUDGET["dsp48"]) * 2 * clock
    total = 0.0
    seen = set()  # a layer run as pieces (bands, blocks) is one layer of the dense design
    for step, row in zip(plan.steps, rows, strict=True):
        layer = step.layer
        if not layer.is_fabric:
            total += row["seconds"]
        elif id(layer) not in seen:
            seen.add(id(layer))
            weight_bytes = int(layer.codes.size) + 4 * int(layer.bias.size)
            total += max(weight_bytes / DDR_BYTES_PER_S, layer.kind.dense_macs(layer) / macs_per_s)
    return total


def estimate(model: Model, params: BuildParams | None = None, *, source: str = "") -> dict:
    """The performance table of ``kcnn report --estimate`` (labelled an estimate)."""
    params = params or BuildParams()
    source = source or "the default build parameters (no overlay given)"
    clock = float(params.CLOCK_MHZ) * 1e6
    plan = plan_model(model, params)
    rows, fabric_s = [], 0.0
    for step in plan.steps:
        cycles, by_loop = step_cycles(step)
        words = step_words(step)
        transfers = 2 + (1 if words["b"] else 0)
        ddr_s = 8 * (words["a"] + words["b"] + words["out"]) / DDR_BYTES_PER_S
        seconds = max(cycles / clock, ddr_s) + transfers * DMA_SETUP_S
        fabric_s += seconds
        rows.append(
            {
                "step": step.index,
                "name": step.layer.name,
                "op": step.op,
                "jobs": len(step.jobs),
                "cycles": int(cycles),
                "loops": by_loop,
                "words": words,
                "stream_bits": 64 * (words["a"] + words["b"]),
                "seconds": seconds,
                "bound": "DDR" if ddr_s > cycles / clock else "fabric",
            }
        )
    host = _host(plan)
    report = build_report(model)
    pairs = float(report["totals"]["effective_pairs"])
    storage_bytes = report["totals"]["storage_bits"] / 8
    lanes_in_budget = int(DEVICE["lut"] * BUDGET["lut"] // LANE_LUT)
    limit_fabric = max(storage_bytes / DDR_BYTES_PER_S, pairs / (lanes_in_budget * clock))
    dense_fabric = _dense_baseline(plan, rows, clock)
    fps = 1.0 / (fabric_s + host["s"])
    limit_fps = 1.0 / (limit_fabric + host["s"])
    return {
        "kind": "estimate (analytic model, not measured)",
        "params": params.as_dict(),
        "params_from": source,
        "assumptions": {
            "loops": {k: {"ii": v.ii, "depth": v.depth} for k, v in LOOP_TABLE.items()},
            "ddr_bytes_per_s": DDR_BYTES_PER_S,
            "dma_setup_s": DMA_SETUP_S,
            "register_access_s": REGISTER_ACCESS_S,
            "host_copy_bytes_per_s": HOST_COPY_BYTES_PER_S,
            "host_flush_s_per_byte": HOST_FLUSH_S_PER_BYTE,
            "host_step_s": HOST_STEP_S,
            "host_op_s_per_element": HOST_OP_S_PER_ELEMENT,
            "host_map_s_per_code": HOST_MAP_S_PER_CODE,
            "host_encode_s_per_value": HOST_ENCODE_S_PER_VALUE,
            "cpu_scale": CPU_SCALE,
            "overlap": "job k+1's weights load during job k's compute; the next plane loads "
            "during a pool or LRN channel; steps run one after another",
        },
        "steps": rows,
        "fabric_s": fabric_s,
        "host_s": host["s"],
        "host": host,
        "fps": fps,
        "resources": resources(params),
        "baselines": {
            "dense_8bit": {
                "fabric_s": dense_fabric,
                "host_s": host["s"],
                "fps": 1.0 / (dense_fabric + host["s"]),
            },
            "limit": {
                "fabric_s": limit_fabric,
                "host_s": host["s"],
                "fps": limit_fps,
                "lanes_in_lut_budget": lanes_in_budget,
                "effective_pairs": pairs,
                "stored_bytes": storage_bytes,
            },
        },
        "share_of_limit": fps / limit_fps,
    }


def loop_table_markdown() -> str:
    """The loop table as ``hls/README.md`` prints it (a test keeps the two equal)."""
    lines = ["| loop | II | depth | why the structure allows this II |", "|---|---|---|---|"]
    for name, row in LOOP_TABLE.items():
        lines.append(f"| `{name}` | {row.ii} | {row.depth} | {row.why} |")
    return "\n".join(lines)


def format_estimate(est: dict) -> str:
    p = est["params"]
    lines = [
        f"ESTIMATED PYNQ-Z2 performance ({est['kind']}; P={p['P']} ({16 * p['P']} lanes), "
        f"STREAMS={p['STREAMS']}, {p['CLOCK_MHZ']:g} MHz; parameters from {est['params_from']})",
        f"{'step':<5}{'layer':<12}{'op':<6}{'jobs':>5}{'cycles':>12}{'ms':>8}  bound",
    ]
    for r in est["steps"]:
        lines.append(
            f"{r['step']:<5}{r['name'][:11]:<12}{r['op']:<6}{r['jobs']:>5}{r['cycles']:>12,}"
            f"{1e3 * r['seconds']:>8.3f}  {r['bound']}"
        )
    res = est["resources"]["utilization"]
    base = est["baselines"]
    lines.append(
        f"fabric {1e3 * est['fabric_s']:.2f} ms + host {1e3 * est['host_s']:.2f} ms -> "
        f"estimated {est['fps']:.1f} frames/s (dense 8-bit design: "
        f"{base['dense_8bit']['fps']:.1f}; physical limit: {base['limit']['fps']:.1f}; "
        f"{100 * est['share_of_limit']:.0f}% of the limit)"
    )
    lines.append(
        "resources (estimated): "
        + ", ".join(f"{k.upper()} {100 * v:.0f}%" for k, v in res.items())
        + ("" if est["resources"]["within_budget"] else "  ABOVE the planning budget")
    )
    return "\n".join(lines)
