"""The step planner against the format, decoded independently.

The decoder below is written from docs/job-format.md alone (it imports nothing of
kcnn.plan's packing code): it reads a step's words back into the layer's weight codes,
placement and biases. The planner must round-trip every bundled model's weights exactly,
dense and sparse, with channel copies, groups and space-to-depth.
"""

from __future__ import annotations

import numpy as np
import pytest
from layer_cases import one_layer_model

from kcnn.codes import encode_input
from kcnn.config import BuildParams
from kcnn.errors import KcnnError
from kcnn.kfile import load
from kcnn.models import table_path
from kcnn.plan import plan_model
from kcnn.protocol import (
    decode_descriptor,
    encoder_keys,
    float_key,
    pack_map,
    unpack_map,
)


def _bytes(words) -> np.ndarray:
    return np.ascontiguousarray(words, "<u8").view(np.uint8)


def _weight_words(a: np.ndarray, b: np.ndarray, count: int, streams: int) -> np.ndarray:
    """Word ``w`` of a weight section travels on stream ``w mod STREAMS``."""
    if streams == 1:
        return a[:count]
    out = np.zeros(count, np.uint64)
    out[0::2] = a[: (count + 1) // 2]
    out[1::2] = b[: count // 2]
    return out


def decode_conv_weights(step, fillers: list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(weight codes (C_out, C_in/groups, kh, kw) of the stored map, biases) from words;
    appends the skip of every sparse filler to ``fillers`` when given."""
    f = decode_descriptor(step.head)
    params = step.params
    p, streams = params.P, params.STREAMS
    consts = step.head[8:]
    book_words = -(-(f["k1"] + f["j1"]) // 8)
    thr_words = -(-f["jo1"] // 2)
    placement = consts[book_words + thr_words : book_words + thr_words + f["in_c"]]
    masks = (placement & np.uint64(0xFFFFFFFF)).astype(np.int64)
    slots = (placement >> np.uint64(32)).astype(np.int64) & 0xFFFF
    cg = f["in_c"] // f["groups"]
    where = {}
    for c in range(f["in_c"]):
        for part in range(p):
            if masks[c] >> part & 1:
                where[(part, int(slots[c]))] = c
    weights = np.zeros((f["out_c"], cg, f["kh"], f["kw"]), np.int64)
    seen = np.zeros_like(weights)
    biases = np.zeros(f["out_c"], np.int64)
    a, b = step.jobs_a, step.jobs_b
    at = bt = 0
    cell_bits = f["khb"] + f["kwb"]
    for _ in range(f["n_jobs"]):
        h0, h1 = int(a[at]), int(a[at + 1])
        assert h0 & 0xFFFF == 0x4A42
        ch0, channels = (h0 >> 32) & 0xFFFF, (h0 >> 48) & 0xFFFF
        sparse, steps = h1 & 1, (h1 >> 8) & 0xFFFFFF
        slot0, span = (h1 >> 32) & 0xFFFF, (h1 >> 48) & 0xFFFF
        at += 2
        nb = -(-channels // 2)
        biases[ch0 : ch0 + channels] = np.ascontiguousarray(a[at : at + nb]).view("<i4")[:channels]
        at += nb
        count = steps * p // (8 if sparse else 16)
        na = (count + 1) // 2 if streams == 2 else count
        nb_words = count // 2 if streams == 2 else 0
        words = _weight_words(a[at : at + na], b[bt : bt + nb_words], count, streams)
        at += na
        bt += nb_words
        raw = _bytes(words)
        if sparse:
            matrix = raw.reshape(steps, p)
        else:
            nib = np.empty(raw.size * 2, np.uint8)
            nib[0::2], nib[1::2] = raw & 15, raw >> 4
            matrix = nib.reshape(steps, p)
        for part in range(p):
            seq = matrix[:, part]
            entries = []  # per channel: list of (pos, code)
            if sparse:
                current, pos = [], -1
                for byte in (int(b) for b in seq):
                    if len(entries) == channels:
                        assert byte == 0, "padding after the last channel must be 0x00"
                        continue
                    if byte == 0:
                        entries.append(current)
                        current, pos = [], -1
                        continue
                    if byte & 15:
                        pos += (byte >> 4) + 1
                        current.append((pos, byte & 15))
                    else:  # a filler of skip s covers 16 s positions
                        pos += 16 * (byte >> 4)
                        if fillers is not None:
                            fillers.append(byte >> 4)
                assert len(entries) == channels
            else:
                for ch in range(channels):
                    row = seq[ch * span : (ch + 1) * span]
                    entries.append([(q, int(v)) for q, v in enumerate(row) if v])
            for ch, items in enumerate(entries):
                for pos, code in items:
                    slot = slot0 + (pos >> cell_bits)
                    i = (pos >> f["kwb"]) & ((1 << f["khb"]) - 1)
                    j = pos & ((1 << f["kwb"]) - 1)
                    c = where[(part, slot)]
                    co = ch0 + ch
                    weights[co, c % cg, i, j] = code
                    seen[co, c % cg, i, j] += 1
    assert seen.max(initial=0) <= 1, "a weight sent twice"
    assert at == a.size and bt == b.size
    return weights, biases


def stride_to_depth(codes: np.ndarray, s: int) -> np.ndarray:
    """The docs' space-to-depth rule, written out with loops."""
    co, ci, kh, kw = codes.shape
    kh2, kw2 = -(-kh // s), -(-kw // s)
    out = np.zeros((co, ci * s * s, kh2, kw2), codes.dtype)
    for c in range(ci):
        for i in range(kh):
            for j in range(kw):
                out[:, c * s * s + (i % s) * s + (j % s), i // s, j // s] = codes[:, c, i, j]
    return out


@pytest.mark.parametrize("name", ["lenet5", "alexnet_mnist"])
@pytest.mark.parametrize("streams", [1, 2])
def test_conv_steps_carry_the_weights_exactly(name, streams):
    model = load(table_path(name))
    plan = plan_model(model, BuildParams(STREAMS=streams))
    convs = [s for s in plan.steps if s.op == "CONV"]
    assert convs
    for step in convs:
        weights, biases = decode_conv_weights(step)
        expected = step.layer.codes
        if step.fields["s2d"] > 1:
            expected = stride_to_depth(expected, step.fields["s2d"])
        np.testing.assert_array_equal(weights, expected)
        np.testing.assert_array_equal(biases, step.layer.bias)


def test_blocked_map_round_trip_and_layout():
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 16, (3, 6, 9), dtype=np.uint8)
    words = pack_map(codes, "BLOCKED")
    assert words.size == 3 * 2 * 3
    # Word 0 is block (0, 0) of channel 0: code 4*dy+dx is row dy, column dx.
    first = np.array([(int(words[0]) >> (4 * k)) & 15 for k in range(16)]).reshape(4, 4)
    np.testing.assert_array_equal(first, codes[0, :4, :4])
    np.testing.assert_array_equal(unpack_map(words, "BLOCKED", codes.shape), codes)


def test_input_encoder_keys_reproduce_the_host_encoder_at_every_boundary():
    rng = np.random.default_rng(3)
    boundaries = np.sort(rng.normal(size=14) * 50)
    keys = encoder_keys(boundaries)
    b32 = boundaries.astype(np.float32)
    near = [np.nextafter(b32, np.float32(-np.inf)), b32, np.nextafter(b32, np.float32(np.inf))]
    x = np.concatenate([*near, rng.normal(size=2000).astype(np.float32) * 80]).astype(np.float32)
    x = x[x != 0]
    fabric = 1 + (float_key(x)[:, None] >= keys[None, :]).sum(axis=1)
    np.testing.assert_array_equal(fabric, encode_input(x, boundaries))


def test_a_sparse_conv_with_long_zero_runs_carries_its_weights_exactly():
    """1% density over 128 input channels of 5x5 kernels (64 positions a slot, 8 slots a
    partition): runs of hundreds of zeros, sent as fillers of skip above 1."""
    rng = np.random.default_rng(8)
    model, layer = one_layer_model(
        rng,
        c_in=128,
        c_out=6,
        kernel=(5, 5),
        pads=(2, 2, 2, 2),
        form="sparse",
        weight_density=0.01,
    )
    step = plan_model(model).steps[0]
    assert all(job.sparse for job in step.jobs)
    fillers = []
    weights, biases = decode_conv_weights(step, fillers)
    assert max(fillers) > 1, "no long filler was sent"
    np.testing.assert_array_equal(weights, layer.codes)
    np.testing.assert_array_equal(biases, layer.bias)


def test_a_conv_split_along_its_input_carries_each_weight_once_and_the_bias_first():
    rng = np.random.default_rng(5)
    model, layer = one_layer_model(rng, c_in=300, c_out=5, hw=(5, 4), form="sparse")
    assert all(s.part is None for s in plan_model(model).steps)
    plan = plan_model(model, BuildParams(CH_MAX=256))
    blocks = [s.part for s in plan.steps]
    assert len(blocks) >= 2 and blocks[0][0] == 0 and blocks[-1][1] == 300
    assert all(a[1] == b[0] for a, b in zip(blocks[:-1], blocks[1:], strict=True))
    weights = []
    for n, step in enumerate(plan.steps):
        f = decode_descriptor(step.head)
        assert (f["in_c"], f["out_format"], f["jo1"]) == (step.part[1] - step.part[0], 2, 0)
        codes, biases = decode_conv_weights(step)
        weights.append(codes)
        np.testing.assert_array_equal(biases, layer.bias if n == 0 else np.zeros(5))
    np.testing.assert_array_equal(np.concatenate(weights, axis=1), layer.codes)


def test_a_grouped_conv_splits_the_channels_of_every_group_alike():
    rng = np.random.default_rng(6)
    model, layer = one_layer_model(rng, c_in=600, c_out=4, groups=2, hw=(4, 4))
    plan = plan_model(model, BuildParams(CH_MAX=256))
    blocks = [s.part for s in plan.steps]
    assert len(blocks) >= 3 and blocks[0][0] == 0 and blocks[-1][1] == 300
    weights = []
    for step in plan.steps:
        f = decode_descriptor(step.head)
        assert (f["in_c"], f["groups"]) == (2 * (step.part[1] - step.part[0]), 2)
        weights.append(decode_conv_weights(step)[0])
    np.testing.assert_array_equal(np.concatenate(weights, axis=1), layer.codes)


def test_a_depthwise_conv_above_ch_max_runs_as_group_blocks_carrying_each_weight_once():
    """One input channel per group: nothing to split along the input, but the groups split
    into the fewest equal-ish blocks of whole groups, each its own channels' conv."""
    rng = np.random.default_rng(6)
    model, layer = one_layer_model(rng, c_in=600, c_out=600, groups=600, hw=(4, 4))
    plan = plan_model(model, BuildParams(CH_MAX=256))
    blocks = [s.group_block for s in plan.steps]
    assert [(b.out0, b.out1) for b in blocks] == [(0, 200), (200, 400), (400, 600)]
    assert all(b.in0 == b.out0 and b.in1 == b.out1 for b in blocks)
    weights, biases = [], []
    for step in plan.steps:
        f = decode_descriptor(step.head)
        assert (f["in_c"], f["out_c"], f["groups"], f["jo1"]) == (200, 200, 200, 3)
        codes, bias = decode_conv_weights(step)
        weights.append(codes)
        biases.append(bias)
    np.testing.assert_array_equal(np.concatenate(weights), layer.codes)
    np.testing.assert_array_equal(np.concatenate(biases), layer.bias)


def test_a_group_too_large_for_the_kernel_alone_is_refused_naming_the_layer_and_field():
    """Two depthwise channels 300 columns wide: four output rows of one channel need more
    codes than a partition holds, whatever the blocks of groups."""
    rng = np.random.default_rng(6)
    model, _ = one_layer_model(rng, c_in=2, c_out=2, groups=2, hw=(8, 300))
    small = BuildParams(P=8, IN_DEPTH=16384)
    with pytest.raises(KcnnError, match="one group a step: 4 output rows need") as info:
        plan_model(model, small)
    assert (info.value.layer, info.value.field) == ("L", "IN_DEPTH")


@pytest.mark.parametrize("out_format", ["ACC", "FLAT"])
def test_a_grouped_conv_packs_its_flat_and_acc_outputs_on_across_jobs(out_format):
    """A depthwise global average pool (7 groups of one output each) answers ACC logits or
    FLAT codes into an fc directly (no host repack): one job a group, each answering the
    words its outputs complete after the jobs before, the last job the tail; the trips of
    EMIT are those words (a job that completes none does not enter it)."""
    from layer_cases import chain_model

    rng = np.random.default_rng(5)
    pool = {"c_in": 7, "c_out": 7, "groups": 7, "hw": (6, 6), "kernel": (6, 6)}
    pool["pads"] = (0, 0, 0, 0)
    if out_format == "ACC":
        model, _ = one_layer_model(rng, **pool, last=True)
    else:
        model, _ = chain_model(rng, pool, {"op": "fc", "c_out": 3, "last": True})
    plan = plan_model(model, BuildParams())
    step = plan.steps[0]
    assert step.out_format == out_format and len(step.jobs) == 7
    words = [0, 1, 0, 1, 0, 1, 1] if out_format == "ACC" else [0, 0, 0, 0, 0, 0, 1]
    assert [job.out_words for job in step.jobs] == words
    assert step.fields["out_words"] == sum(words)
    assert [t for loop, t in step.loop_log() if loop == "EMIT"] == [w for w in words if w]
    if out_format == "FLAT":
        assert not plan.steps[1].host_in and not step.host_out
