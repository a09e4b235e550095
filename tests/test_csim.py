"""The C-simulation of the HLS kernel against the simulator, bit for bit, and its loop
trips against the performance model, step by step.

Each build-parameter set is compiled once per machine (cached on disk by source hash).
"""

from __future__ import annotations

import threading
import zlib

import environments
import numpy as np
import pytest
from csim_builds import PARAMS, SMALL, require_csim
from layer_cases import (
    assert_runs_as_the_simulator,
    branch_model,
    chain_model,
    check_tables,
    floats_for,
    one_layer_model,
    pool_model,
    random_codes,
    spread_thresholds,
)

from kcnn.config import ARITHMETIC_CONTRACT, BuildParams
from kcnn.errors import KcnnError
from kcnn.kfile import load
from kcnn.models import digits, table_path
from kcnn.plan import plan_model
from kcnn.protocol import (
    LIMITS,
    STATUS,
    StepFault,
    check_answer,
    decode_info,
    decode_trailer,
    map_words_b,
    pack_descriptor,
    probe_step,
)
from kcnn.runner import first_map_words
from kcnn.sim import csim
from kcnn.sim.engine import simulator

require_csim()

#: A tile so small (512 codes a partition) that the reference models' first layers run as
#: bands of output rows, the host cutting and joining their maps.
BANDED = BuildParams(
    P=32, IN_DEPTH=16384, W_DEPTH=1024, OUT_DEPTH=4096, STREAMS=2, LRN_LANES=4, CH_MAX=256
)


@pytest.fixture(scope="module", params=sorted(PARAMS))
def params(request):
    return PARAMS[request.param]


def seed(name: str) -> int:
    return zlib.crc32(name.encode())


def assert_same_run(model, x, params):
    """csim == sim on every map (trace) and on the logits; returns the engine."""
    engine = csim.CsimEngine(model, params)
    assert_runs_as_the_simulator(engine, x)
    return engine


def assert_trips_are_the_model(engine):
    """The kernel's loop log of the last frame equals the planner's, step by step."""
    assert len(engine.loop_logs) == len(engine.plan.steps)
    for step, log in zip(engine.plan.steps, engine.loop_logs, strict=True):
        assert log == step.loop_log(), f"step {step.index} ({step.op})"


CASES = {
    "conv3x3": {},
    "conv_sparse": {"form": "sparse", "weight_density": 0.2},
    "conv_last": {"last": True},
    "conv_groups_dilation": {
        "c_in": 4,
        "c_out": 8,
        "groups": 2,
        "pads": (0, 1, 2, 0),
        "dilations": (2, 2),
        "kernel": (3, 2),
        "hw": (9, 7),
    },
    "conv_stride2": {"c_out": 5, "strides": (2, 2), "hw": (9, 8)},
    # unequal strides: the kernel answers at their common stride, the host subsamples
    "conv_strides_2x1": {"c_out": 5, "strides": (2, 1), "hw": (9, 8)},
    "conv_strides_1x3_last": {"strides": (1, 3), "hw": (7, 10), "pads": (0, 1, 2, 0), "last": True},
    "conv_strides_4x2": {"strides": (4, 2), "hw": (13, 11), "kernel": (5, 3), "pads": (2, 1, 2, 1)},
    "depthwise": {"c_in": 6, "c_out": 6, "groups": 6, "form": "sparse"},
    "conv1x1_signed_input": {"kernel": (1, 1), "pads": (0, 0, 0, 0), "signed_in": True},
    "conv_many_channels": {"c_in": 19, "c_out": 37, "hw": (5, 6), "form": "sparse"},
    "fc": {"op": "fc", "taps": 70, "c_out": 21},
    "fc_sparse_last": {"op": "fc", "taps": 300, "c_out": 9, "form": "sparse", "last": True},
    "fc_sparse_long_gaps": {
        "op": "fc",
        "taps": 200,
        "c_out": 5,
        "form": "sparse",
        "weight_density": 0.03,
    },
    "k_j_max": {"K": 16, "J": 16, "J_out": 16, "c_out": 9},
    "k_j_max_fc_sparse": {"op": "fc", "K": 16, "J": 16, "J_out": 16, "form": "sparse"},
    "k1_all_zero_weights": {"K": 1, "c_out": 5},
    "j_out_2": {"J_out": 2, "J": 2},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_layer_models_equal_the_simulator_and_the_model(name, params):
    rng = np.random.default_rng(seed(name))
    model, layer = one_layer_model(rng, **CASES[name])
    codes = random_codes(rng, layer, 2, model.maps["input"].J)
    engine = assert_same_run(model, floats_for(model, codes), params)
    assert_trips_are_the_model(engine)


#: Zero runs before the entries of a sparse fc's partition: fillers of skip 1, 15, 15 + 1,
#: and 4 x 15 + 2 (protocol 4: a filler of skip s covers 16 s positions).
LONG_GAPS = (16, 17, 240, 241, 255, 256, 1000)


@pytest.mark.parametrize("build", sorted(PARAMS))
def test_long_zero_runs_of_a_sparse_fc_equal_the_simulator(build):
    """In partitions 0, 1 and P - 1 (windows of 2040 positions, nearly the small build's
    IN_DEPTH / P = 2048), channels 0..3 have entries after the LONG_GAPS runs and one at the
    window's last position, channel 4 only that one (a run of 2039), channel 5 none.
    csim == sim bit for bit, the trips are the model's, and the steps are the count worked
    out by hand from docs/job-format.md."""
    rng = np.random.default_rng(seed("long_zero_runs"))
    params = PARAMS[build]
    p, window = params.P, 2040
    model, layer = one_layer_model(
        rng, "fc", taps=window * p, c_out=6, form="sparse", weight_density=0.0, last=True
    )
    codes = layer.codes.reshape(6, window, p)  # (channel, position, partition)
    first = np.cumsum([0, *(g + 1 for g in LONG_GAPS)])
    for channel in range(4):
        for part in (0, 1, p - 1):
            codes[channel, channel + first, part] = rng.integers(1, len(layer.wq) + 1, first.size)
    codes[:5, window - 1, [0, 1, p - 1]] = 1
    x = floats_for(model, random_codes(rng, layer, 2, model.maps["input"].J, 0.2))
    engine = assert_same_run(model, x, params)
    assert_trips_are_the_model(engine)
    # A busy partition's sequence: channels 0..3 have 9 entries (at c + 0, 17, 35, 276, 518,
    # 774, 1031, 2032 and 2039), the fillers of the runs before them (0 before the first,
    # then 1, 1, 1, 1, 1, 2, 5, and 0 before the last: a run of 6 - c) and the end byte: 22
    # each; channel 4 the 9 fillers of a run of 2039 = 16 * 127 + 7 (8 x 15 + 7), its entry
    # and the end byte; channel 5 the end byte. 4 * 22 + 11 + 1 = 100 (with protocol 3's
    # fillers of 16 positions: 4 * 135 + 129 + 1 = 670).
    step = engine.plan.steps[0]
    assert all(job.sparse for job in step.jobs)
    assert sum(job.steps for job in step.jobs) == 100


def test_an_fc_input_above_the_tile_runs_in_input_blocks():
    """An fc whose input needs more codes per partition than the tile holds (the small
    build's IN_DEPTH / P = 2048) is split along its input by the planner, never refused by
    the kernel, and runs as the simulator does."""
    rng = np.random.default_rng(seed("fc_above_tile"))
    p = SMALL.P
    # Sparse enough that a channel's entries fit the weight cache (W_DEPTH = 256 a
    # partition): only the tile makes the planner split.
    model, layer = one_layer_model(
        rng, "fc", taps=2100 * p, c_out=5, form="sparse", weight_density=0.05, last=True
    )
    x = floats_for(model, random_codes(rng, layer, 2, model.maps["input"].J, 0.3))
    engine = assert_same_run(model, x, SMALL)
    assert_trips_are_the_model(engine)
    assert [step.part for step in engine.plan.steps] == [(0, 8400), (8400, 16800)]


#: A global average pool as the kernel runs it: a depthwise conv whose kernel is the whole
#: 6x6 map (one output a channel, one weight value), one job a group.
GAP = {"hw": (6, 6), "kernel": (6, 6), "pads": (0, 0, 0, 0), "K": 2}


def gap_model(rng, channels, head):
    """A global average pool of ``channels`` channels emitting the logits (``head`` None) or
    feeding a last fc of ``head`` outputs; returns ``(model, pool layer)``."""
    pool = {**GAP, "c_in": channels, "c_out": channels, "groups": channels}
    if head is None:
        model, layer = one_layer_model(rng, **pool, last=True)
    else:
        model, layer = chain_model(rng, pool, {"op": "fc", "c_out": head, "last": True})
    layer.codes[:] = 1  # an average: every tap the one weight
    return model, layer


def assert_packs_across_jobs(step, per_word):
    """The step's conv jobs answer the words their outputs complete (C order over the step,
    across its groups), the last job the tail; at least one job ends mid-word."""
    c, h, w = step.out_shape
    before, mid_word = 0, False
    for job in step.jobs:
        after = before + job.channels * h * w
        last = job is step.jobs[-1]
        done = -(-after // per_word) if last else after // per_word
        assert job.out_words == done - before // per_word
        mid_word |= not last and after % per_word != 0
        before = after
    assert mid_word and step.out_words == -(-c * h * w // per_word)


@pytest.mark.parametrize("head", [None, 5], ids=["acc_logits", "flat_into_fc"])
def test_a_global_average_pool_packs_its_groups_outputs_on_across_jobs(head, params):
    """A depthwise global average pool (groups = channels, one output each) emits its
    outputs directly: ACC logits (2 a word) as the last layer, or FLAT codes (16 a word)
    into an fc's map slot; every job is one group and most end mid-word. csim == sim bit
    for bit and the loop trips (EMIT only for jobs that complete a word) as planned."""
    rng = np.random.default_rng(seed(f"gap{head}"))
    model, layer = gap_model(rng, 6 if head is None else 10, head)
    x = floats_for(model, random_codes(rng, layer, 2, model.maps["input"].J, 0.2))
    if head is not None:
        spread_thresholds(model, layer, x)
    engine = assert_same_run(model, x, params)
    assert_trips_are_the_model(engine)
    step = engine.plan.steps[0]
    assert step.out_format == ("ACC" if head is None else "FLAT")
    assert len(step.jobs) == layer.attrs["groups"]
    assert_packs_across_jobs(step, 2 if head is None else 16)
    if head is not None:  # the FLAT answer lands in the fc's map slot, no host repack
        assert not step.host_out and not engine.plan.steps[1].host_in


def test_jobs_inside_a_group_end_mid_word():
    """Groups of 9 output channels of 3x3 outputs (81 a group) whose weights fill the
    small build's weight cache after 5 channels: each group runs as jobs of 5 and 4
    channels (45 and 36 outputs), ending mid-word inside a group and at its end, FLAT
    into an fc."""
    rng = np.random.default_rng(seed("mid_word"))
    conv = {"c_in": 32, "c_out": 18, "groups": 2, "hw": (7, 7), "kernel": (5, 5)}
    conv |= {"pads": (0, 0, 0, 0), "weight_density": 1.0, "K": 3}
    model, layer = chain_model(rng, conv, {"op": "fc", "c_out": 7, "last": True})
    x = floats_for(model, random_codes(rng, layer, 2, model.maps["input"].J))
    spread_thresholds(model, layer, x)
    engine = assert_same_run(model, x, SMALL)
    assert_trips_are_the_model(engine)
    step = engine.plan.steps[0]
    assert step.out_format == "FLAT" and step.out_shape == (18, 3, 3)
    assert [job.channels for job in step.jobs] == [5, 4, 5, 4]
    assert [job.out_words for job in step.jobs] == [2, 3, 2, 4]
    assert_packs_across_jobs(step, 16)
    assert not engine.plan.steps[1].host_in


@pytest.mark.parametrize("zero_fraction", [0.0, 1.0])
@pytest.mark.parametrize("form", ["dense", "sparse"])
def test_all_zero_and_no_zero_inputs(zero_fraction, form, params):
    rng = np.random.default_rng(7)
    model, layer = one_layer_model(rng, form=form, c_out=7)
    codes = random_codes(rng, layer, 1, model.maps["input"].J, zero_fraction)
    assert_same_run(model, floats_for(model, codes), params)


@pytest.mark.parametrize("name", ["lenet5", "alexnet_mnist"])
def test_reference_models_equal_the_simulator_and_the_model(name, params):
    model = load(table_path(name))
    x = digits("test")[0][:2]
    engine = assert_same_run(model, x, params)
    assert_trips_are_the_model(engine)


@pytest.mark.parametrize("name", ["lenet5", "alexnet_mnist"])
def test_maps_larger_than_the_tile_run_as_bands(name):
    model = load(table_path(name))
    plan = plan_model(model, BANDED)
    bands = [s for s in plan.steps if s.band is not None]
    assert len({s.layer.name for s in bands}) >= 1 and len(bands) >= 2
    assert all(s.host_in for s in bands)
    engine = assert_same_run(model, digits("test")[0][:2], BANDED)
    assert_trips_are_the_model(engine)


@pytest.mark.parametrize("build", ["default", "banded"])
def test_unequal_strides_before_another_layer_and_in_bands(build):
    """A (1, 2)-strided conv: the kernel answers at stride 1, the host keeps every other
    column, joining bands first, and writes the next layer's map."""
    rng = np.random.default_rng(21)
    model, layer = chain_model(
        rng, {"c_in": 8, "c_out": 6, "hw": (40, 23), "strides": (1, 2)}, {"c_out": 4, "last": True}
    )
    params = BuildParams() if build == "default" else BANDED
    codes = random_codes(rng, layer, 2, model.maps["input"].J)
    engine = assert_same_run(model, floats_for(model, codes), params)
    assert_trips_are_the_model(engine)
    strided = [s for s in engine.plan.steps if s.layer is layer]
    assert all(s.host_stride == (1, 2) and s.fields["sub"] == 1 for s in strided)
    assert all(s.band is not None for s in strided) == (build == "banded")
    assert engine.plan.steps[len(strided)].host_in


#: Max-pools the kernel does not take in one step, run as chains of pools (kernel, strides,
#: pads, input rows and columns), and the one it takes whole.
POOL_CASES = {
    "5x5_stride2_pad2": ((5, 5), (2, 2), (2, 2, 2, 2), (13, 12)),
    "4x4_stride4": ((4, 4), (4, 4), (0, 0, 0, 0), (16, 16)),
    "global_7x7": ((7, 7), (7, 7), (0, 0, 0, 0), (7, 7)),
    "3x6_stride3_pads": ((3, 6), (3, 3), (1, 2, 1, 2), (11, 14)),
    "6x2_strides_1x2_pad3": ((6, 2), (1, 2), (3, 0, 2, 1), (9, 9)),
    "2x2_whole": ((2, 2), (2, 2), (0, 0, 0, 0), (8, 8)),
    # bottom and right padding of window - 1: the first pool's map stops where the second
    # pool's windows would see only padding
    "5x5_stride1_wide_pads": ((5, 5), (1, 1), (2, 1, 4, 4), (9, 8)),
}


@pytest.mark.parametrize("name", sorted(POOL_CASES))
def test_max_pools_above_the_kernels_window_run_as_chains(name, params):
    kernel, strides, pads, hw = POOL_CASES[name]
    rng = np.random.default_rng(seed(name))
    model, conv = pool_model(rng, kernel, strides, pads, hw)
    codes = random_codes(rng, conv, 2, model.maps["input"].J)
    engine = assert_same_run(model, floats_for(model, codes), params)
    assert_trips_are_the_model(engine)
    pools = [s for s in engine.plan.steps if s.op == "POOL"]
    # each pool of a chain widens the window by at most POOL_WINDOW_MAX - 1
    reach = LIMITS["POOL_WINDOW_MAX"] - 1
    assert len(pools) == max(1, -(-(max(kernel) - 1) // reach))
    for s in pools:
        assert max(s.fields["kh"], s.fields["kw"]) <= LIMITS["POOL_WINDOW_MAX"], s.index
        assert max(s.fields["sh"], s.fields["sw"]) <= LIMITS["POOL_STRIDE_MAX"], s.index


def test_a_pool_chain_in_bands():
    """Each pool of the chain banded on its own: the host joins one pool's bands and cuts
    the next pool's."""
    rng = np.random.default_rng(31)
    model, conv = pool_model(rng, (5, 5), (2, 2), (2, 2, 2, 2), (30, 29))
    codes = random_codes(rng, conv, 2, model.maps["input"].J)
    engine = assert_same_run(model, floats_for(model, codes), BANDED)
    assert_trips_are_the_model(engine)
    pools = [s for s in engine.plan.steps if s.op == "POOL"]
    assert len({id(s.layer) for s in pools}) == 2 and all(s.band is not None for s in pools)


#: Layers whose window does not fit the kernel in one pass at the small build (weight
#: entries above W_DEPTH, input channels above CH_MAX, input rows above the tile, partial
#: sums above the 24-bit lanes): ``(first layer, second layer or None, the layer split,
#: whether it is split at the default build too)``.
SPLIT_CASES = {
    "fc_wide": ({"op": "fc", "taps": 5000, "c_out": 7}, None, "L", False),
    "fc_partial_sums_above_24_bits": (
        {"op": "fc", "taps": 9600, "c_out": 3, "K": 16, "J": 16, "weight_density": 1.0},
        None,
        "L",
        True,
    ),
    "conv_above_ch_max_last": (
        {"c_in": 300, "c_out": 5, "hw": (5, 4), "last": True},
        None,
        "L",
        False,
    ),
    "conv_then_split_conv": ({"c_in": 3, "c_out": 300, "hw": (6, 5)}, {"c_out": 5}, "L1", False),
    "conv_then_split_banded_conv": (
        {"c_in": 3, "c_out": 300, "hw": (30, 29)},
        {"c_out": 6, "strides": (2, 2), "last": True},
        "L1",
        False,
    ),
    # a group alone above CH_MAX: blocks of whole groups cannot help, input blocks do
    "grouped_conv_above_ch_max": (
        {"c_in": 600, "c_out": 6, "groups": 2, "hw": (4, 5), "last": True},
        None,
        "L",
        False,
    ),
    "fc_then_split_fc": (
        {"op": "fc", "taps": 40, "c_out": 5000},
        {"op": "fc", "c_out": 9},
        "L1",
        False,
    ),
    "split_conv_then_fc": (
        {"c_in": 300, "c_out": 20, "hw": (4, 4)},
        {"op": "fc", "c_out": 9, "last": True},
        "L0",
        False,
    ),
}


def _case_model_and_input(name, first, second):
    """One layer (``second`` None) or a chain of two, and two inputs, seeded by the case's
    name."""
    rng = np.random.default_rng(seed(name))
    if second is None:
        model, layer = one_layer_model(rng, **first)
    else:
        model, layer = chain_model(rng, first, second)
    return model, layer, floats_for(model, random_codes(rng, layer, 2, model.maps["input"].J))


@pytest.mark.parametrize("name", sorted(SPLIT_CASES))
def test_windows_above_the_kernel_run_as_input_blocks(name, params):
    """The planner splits such a layer along its input; each block answers its partial
    acc and the host adds them in int64: bit for bit the simulator's layer."""
    first, second, split_layer, at_default = SPLIT_CASES[name]
    model, layer, x = _case_model_and_input(name, first, second)
    if model.layer(split_layer).thresholds is not None:
        spread_thresholds(model, model.layer(split_layer), x)
        # codes all at 0 or all at the top would hide a wrong sum of the blocks
        codes = simulator(model).run(x, trace=True)[2][split_layer]
        assert np.unique(codes).size >= 3
    engine = assert_same_run(model, x, params)
    assert_trips_are_the_model(engine)
    split = {s.layer.name for s in engine.plan.steps if s.part is not None}
    assert split == ({split_layer} if params is SMALL or at_default else set())
    for s in engine.plan.steps:
        if s.part is not None:
            assert s.host_in and s.out_format == "ACC" and s.fields["jo1"] == 0


#: Grouped convs whose groups do not fit the small build's tile together, not even in bands
#: of output rows (one slot a group in every partition): ``(first layer, second layer or
#: None, the layer cut into blocks of whole groups, the blocks' output channels, whether
#: the blocks are banded too)``.
DEPTHWISE_40 = {"c_in": 40, "c_out": 40, "groups": 40, "hw": (8, 8)}
GROUP_BLOCK_CASES = {
    "depthwise": (DEPTHWISE_40, None, "L", [(0, 20), (20, 40)], False),
    "grouped_3_inputs_a_group": (
        {"c_in": 48, "c_out": 32, "groups": 16, "hw": (8, 40)},
        None,
        "L",
        [(0, 10), (10, 20), (20, 32)],
        False,
    ),
    "grouped_16_inputs_a_group": (
        {"c_in": 64, "c_out": 8, "groups": 4, "hw": (8, 40)},
        None,
        "L",
        [(0, 4), (4, 8)],
        False,
    ),
    # one group alone needs bands: the fewest blocks that fit, each in bands
    "depthwise_in_bands_last": (
        {"c_in": 6, "c_out": 6, "groups": 6, "hw": (48, 48), "last": True},
        None,
        "L",
        [(0, 3), (3, 6)],
        True,
    ),
    "conv_then_depthwise_last": (
        {"c_in": 3, "c_out": 40, "hw": (8, 8)},
        {"c_out": 40, "groups": 40, "last": True},
        "L1",
        [(0, 20), (20, 40)],
        False,
    ),
    "depthwise_then_conv": (
        DEPTHWISE_40,
        {"c_out": 5, "last": True},
        "L0",
        [(0, 20), (20, 40)],
        False,
    ),
    "strided_depthwise_then_fc": (
        {**DEPTHWISE_40, "strides": (2, 2)},
        {"op": "fc", "c_out": 7, "last": True},
        "L0",
        [(0, 20), (20, 40)],
        False,
    ),
}


def assert_group_blocks(plan, name, blocks, banded) -> None:
    """Layer ``name`` runs as blocks of whole groups with these output channels (each
    banded or not), each step the conv on its groups' channels, cut and joined by the
    host; the step after the layer reads the joined map from the host."""
    groups = plan.model.layer(name).attrs["groups"]
    per_group = plan.model.layer(name).out_shape[0] // groups
    steps = [s for s in plan.steps if s.layer.name == name]
    assert sorted({(s.group_block.out0, s.group_block.out1) for s in steps}) == blocks
    for s in steps:
        block = s.group_block
        assert s.host_in and (s.band is not None) == banded and s.part is None
        assert s.fields["out_c"] == block.out1 - block.out0
        assert s.fields["in_c"] == block.in1 - block.in0
        assert s.fields["groups"] == (block.out1 - block.out0) // per_group
    after = plan.steps.index(steps[-1]) + 1
    if after < len(plan.steps):
        assert steps[-1].host_out and plan.steps[after].host_in


def assert_codes_vary(model, x, name) -> None:
    """Codes all at 0 or all at the top would hide blocks joined in the wrong places."""
    codes = simulator(model).run(x, trace=True)[2][name]
    assert np.unique(codes).size >= 3


@pytest.mark.parametrize("name", sorted(GROUP_BLOCK_CASES))
def test_groups_above_the_tile_run_as_blocks_of_whole_groups(name):
    """The planner cuts such a layer into the fewest equal-ish blocks of whole groups that
    fit; the host cuts each block's input channels from the map and places its answer at
    its output channels: bit for bit the simulator's layer, the trips as planned."""
    first, second, split_layer, blocks, banded = GROUP_BLOCK_CASES[name]
    model, layer, x = _case_model_and_input(name, first, second)
    for fabric in model.layers:
        if fabric.thresholds is not None:
            spread_thresholds(model, fabric, x)
            assert_codes_vary(model, x, fabric.name)
    engine = assert_same_run(model, x, SMALL)
    assert_trips_are_the_model(engine)
    assert_group_blocks(engine.plan, split_layer, blocks, banded)


@pytest.mark.parametrize("head", [None, 5], ids=["acc_logits", "flat_into_fc"])
def test_a_global_average_pool_over_many_channels_runs_as_group_blocks(head):
    """80 channels of 6x6 maps, one slot a channel: 3 blocks at the small build, each
    answering its channels' ACC logits or FLAT codes, which the host joins (into the fc's
    map)."""
    rng = np.random.default_rng(seed(f"gap_blocks{head}"))
    model, layer = gap_model(rng, 80, head)
    x = floats_for(model, random_codes(rng, layer, 2, model.maps["input"].J, 0.2))
    if head is not None:
        spread_thresholds(model, layer, x)
        assert_codes_vary(model, x, layer.name)
    engine = assert_same_run(model, x, SMALL)
    assert_trips_are_the_model(engine)
    assert_group_blocks(engine.plan, layer.name, [(0, 26), (26, 53), (53, 80)], False)
    formats = {s.out_format for s in engine.plan.steps if s.layer is layer}
    assert formats == {"ACC" if head is None else "FLAT"}


def test_a_depthwise_conv_with_a_residual_shortcut_runs_as_group_blocks():
    """A residual Add into a depthwise conv cut into group blocks: each block's shortcut
    section is its own channels of the shortcut map."""
    rng = np.random.default_rng(seed("residual_blocks"))
    conv1x1 = {"c_in": 40, "c_out": 40, "hw": (8, 8), "kernel": (1, 1), "pads": (0, 0, 0, 0)}
    model, _ = chain_model(rng, conv1x1, {"c_out": 40, "groups": 40})
    depthwise = model.layer("L1")
    depthwise.inputs = ["L0", "input"]
    shortcut_j = model.maps["input"].J
    depthwise.residual_table = np.concatenate([[0], rng.integers(-3000, 3000, shortcut_j - 1)])
    check_tables(model)
    x = floats_for(model, random_codes(rng, model.layer("L0"), 2, shortcut_j))
    for fabric in model.layers:
        spread_thresholds(model, fabric, x)
    assert_codes_vary(model, x, "L1")
    engine = assert_same_run(model, x, SMALL)
    assert_trips_are_the_model(engine)
    assert_group_blocks(engine.plan, "L1", [(0, 20), (20, 40)], False)
    assert all(s.shortcut_words for s in engine.plan.steps if s.layer is depthwise)


@pytest.mark.parametrize("sign", [1, -1])
def test_fc_at_the_accumulator_bound(sign, params):
    """The reducer adds 24-bit partials and the bias in 32 bits: acc = +-(2^31 - 1)."""
    rng = np.random.default_rng(11)
    model, layer = one_layer_model(rng, "fc", taps=200, c_out=3, K=2, J=2, last=True)
    layer.wq = np.array([127 * sign])
    model.maps["input"].aq = np.array([255])
    layer.codes[:] = 1
    top = 200 * 127 * 255
    layer.bias = np.array([sign * (2**31 - 1 - top), -sign * (2**31 - 1 - top), 0])
    x = floats_for(model, np.ones((1, 200), np.uint8))
    engine = assert_same_run(model, x, params)
    _, logits, trace = engine.run(x, trace=True)
    assert trace["L"][0, 0] == sign * (2**31 - 1)


def test_probe_answers_the_configuration(params):
    kernel = csim.CsimKernel(params)
    words = probe_step()
    last = np.zeros(words.size, np.uint8)
    last[-1] = 1
    out, res, log = kernel.run_words(words, last)
    assert res["status"] == 0 and res["out_words"] == 5 and res["first_last"] == 4
    assert decode_trailer(out[4]) == ("OK", 0xFFFF)
    info = decode_info(out[:4])
    assert info == decode_info(res["info"])
    assert info["magic"] == 0x4E4E434B
    for key in ("K_MAX", "J_MAX", "ACC_BITS", "bw", "ba", "protocol"):
        assert info[key] == ARITHMETIC_CONTRACT[key], key
    for key in ("P", "IN_DEPTH", "W_DEPTH", "OUT_DEPTH", "STREAMS", "LRN_LANES", "CH_MAX"):
        assert info[key] == getattr(params, key), key
    assert log == [("DESCRIPTOR", 8)]


def _good_step(params):
    rng = np.random.default_rng(5)
    # more output channels than one job holds (256): two jobs
    model, layer = one_layer_model(rng, form="sparse", c_out=300, c_in=20)
    codes = random_codes(rng, layer, 1, model.maps["input"].J)
    x = floats_for(model, codes)
    plan = plan_model(model, params)
    step = plan.first
    words = first_map_words(step, x[0], model)
    return step, words


def _transfer(step, map_words):
    a, b = step.stream_a(map_words), step.stream_b(map_words)
    a_last = np.zeros(a.size, np.uint8)
    a_last[-1] = 1
    b_last = np.zeros(b.size, np.uint8)
    if b.size:
        b_last[-1] = 1
    return a, a_last, b, b_last


def test_bad_steps_are_named_by_their_trailer_and_the_next_step_runs(params):
    kernel = csim.CsimKernel(params)
    step, map_words = _good_step(params)
    good, _ = kernel.run_step(step, map_words)
    head = step.head
    a, a_last, b, b_last = _transfer(step, map_words)

    def with_fields(**change):
        words = a.copy()
        words[:8] = pack_descriptor({**step.fields, **change})
        return words

    jobs_at = head.size + step.map_words_a + 1
    bad_job = a.copy()
    bad_job[jobs_at] ^= np.uint64(1)  # the first job's tag
    cases = [
        ("BAD_MAGIC", with_fields(magic=0x12345678)),
        ("BAD_VERSION", with_fields(version=99)),
        ("BAD_OPCODE", with_fields(opcode=9)),
        ("COUNT_ABOVE_MAX", with_fields(k1=16)),
        ("BAD_GEOMETRY", with_fields(const_words=step.fields["const_words"] + 1)),
        ("BAD_GEOMETRY", with_fields(images_m1=1)),  # a batch: reserved in protocol 2
        ("BAD_JOB", bad_job),
    ]
    for name, words in cases:
        out, res, _ = kernel.run_words(words, a_last, b, b_last, step.out_words + 1)
        assert res["status"] == STATUS[name], name
        # B is drained only when the descriptor is the host's: a count from a descriptor
        # with a wrong magic or version could wait for words never sent.
        drained_b = 0 if name in ("BAD_MAGIC", "BAD_VERSION") else b.size
        assert res["reads_a"] == words.size and res["reads_b"] == drained_b, name
        status, job = decode_trailer(out[res["out_words"] - 1])
        assert status == name
        assert job == (0 if name == "BAD_JOB" else 0xFFFF), name
        assert np.array_equal(kernel.run_step(step, map_words)[0], good), name


def test_a_refused_job_in_the_middle_keeps_the_jobs_before_it(params):
    kernel = csim.CsimKernel(params)
    step, map_words = _good_step(params)
    assert len(step.jobs) >= 2, "the case needs several jobs"
    good, _ = kernel.run_step(step, map_words)
    a, a_last, b, b_last = _transfer(step, map_words)
    at = step.head.size + step.map_words_a + 1 + step.jobs[0].words_a.size
    a[at] ^= np.uint64(1)  # job 1's tag
    out, res, _ = kernel.run_words(a, a_last, b, b_last, step.out_words + 1)
    first = step.jobs[0].out_words
    assert res["status"] == STATUS["BAD_JOB"] and res["out_words"] == first + 1
    assert decode_trailer(out[first]) == ("BAD_JOB", 1)
    assert np.array_equal(out[:first], good[:first])


def _split_f32_step():
    """A first conv whose F32 map travels on A and B (the default build, two streams): 1x1
    and dense, so that any word shifted into its weight section is still a valid job."""
    rng = np.random.default_rng(12)
    params = BuildParams()
    model, layer = one_layer_model(rng, kernel=(1, 1), pads=(0, 0, 0, 0), c_in=3, hw=(5, 19))
    step = plan_model(model, params).first
    x = floats_for(model, random_codes(rng, layer, 1, model.maps["input"].J))
    words = first_map_words(step, x[0], model)
    assert step.in_format == "F32" and step.map_words_b == step.map_words // 2 > 0
    assert step.jobs_b.size, "the case needs job words on B behind the map's"
    return csim.CsimKernel(params), step, words


def test_a_split_f32_map_is_refused_when_stream_b_is_short_or_long():
    """The kernel counts stream B as the map's B share then the jobs' B words: one map
    word fewer or more on B is refused with a named status, and the host's error names
    the step; a B transfer that ends inside the map share is refused at the map."""
    kernel, step, words = _split_f32_step()
    good, log = kernel.run_step(step, words)
    map_log = dict(log)["MAP"]
    assert map_log == step.map_words // 2 + 1 + 4  # one word of A and one of B a cycle
    a, a_last, b, b_last = _transfer(step, words)
    last_job = len(step.jobs) - 1
    map_b = step.map_words_b

    def run_b(new_b, status, job):
        new_last = np.zeros(new_b.size, np.uint8)
        new_last[-1] = 1
        out, res, _ = kernel.run_words(a, a_last, new_b, new_last, step.out_words + 1)
        assert decode_trailer(out[res["out_words"] - 1]) == (status, job)
        # Both streams are read on to their TLAST (the drain), never past it.
        assert res["status"] == STATUS[status]
        assert res["reads_a"] == a.size and res["reads_b"] == new_b.size
        with pytest.raises(StepFault, match=f"step {step.index} .*status {status}"):
            check_answer(step, out, res["out_words"])
        # the next step runs as before
        assert np.array_equal(kernel.run_step(step, words)[0], good)

    # Short by one map word: the TLAST comes one word early, in the last job's B words.
    run_b(np.delete(b, map_b - 1), "EARLY_TLAST", last_job)
    # Long by one map word: the word the descriptor names last carries no TLAST.
    run_b(np.insert(b, map_b, b[map_b - 1]), "MISSING_TLAST", last_job)
    # A B transfer of the map share alone, one word short: refused in the map (0xFFFF).
    run_b(b[: map_b - 1], "EARLY_TLAST", 0xFFFF)


def test_an_odd_f32_map_word_count_is_refused_with_the_extra_word_on_a():
    """An F32 map is whole 16-value row segments (8 words each), so map_words is even; an
    odd count differs from the descriptor's own sizes (BAD_GEOMETRY), and both streams are
    drained as the host would have sent them: word w on stream w mod 2, A the extra one."""
    kernel, step, words = _split_f32_step()
    odd = {**step.fields, "map_words": step.map_words + 1}
    assert map_words_b(odd, 2) == step.map_words_b  # the extra (last, even) word is A's
    a, a_last, b, b_last = _transfer(step, words)
    at = step.head.size + step.map_words_a
    a = np.insert(a, at, np.uint64(0))
    a[:8] = pack_descriptor(odd)
    a_last = np.zeros(a.size, np.uint8)
    a_last[-1] = 1
    out, res, _ = kernel.run_words(a, a_last, b, b_last, step.out_words + 1)
    assert decode_trailer(out[res["out_words"] - 1]) == ("BAD_GEOMETRY", 0xFFFF)
    assert res["reads_a"] == a.size and res["reads_b"] == b.size


def test_the_wrapper_refuses_wrong_counts(monkeypatch):
    kernel = csim.CsimKernel()
    step, map_words = _good_step(BuildParams())
    real = kernel.run_words

    def faulty(**change):
        def run(*args, **kwargs):
            out, res, log = real(*args, **kwargs)
            return out, {**res, **change}, log

        return run

    for change, message in [
        ({"reads_a": 10**6}, "stream A"),
        ({"consumed_b": 0}, "stream B"),
        ({"first_last": 0}, "TLAST"),
        ({"lasts": 2}, "TLAST"),
        ({"keep_strb_ones": 0}, "keep"),
    ]:
        monkeypatch.setattr(kernel, "run_words", faulty(**change))
        with pytest.raises(StepFault, match=message):
            kernel.run_step(step, map_words)
    monkeypatch.setattr(kernel, "run_words", real)


def test_engines_in_two_threads_keep_their_own_state():
    """Each engine loads a private copy of the library (static memories are per copy)."""
    models = [load(table_path("lenet5")), load(table_path("alexnet_mnist"))]
    x = digits("test")[0][:2]
    want = [simulator(m).run(x)[1] for m in models]
    engines = [csim.CsimEngine(m) for m in models]
    errors = []

    def work(n):
        for _ in range(4):
            if not np.array_equal(engines[n].run(x)[1], want[n]):
                errors.append(n)

    threads = [threading.Thread(target=work, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_missing_compiler_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-g++")
    with pytest.raises(KcnnError, match="no-such-g\\+\\+"):
        csim.compiler()


@pytest.mark.parametrize(
    "build, sanitize",
    [("default", False), ("default", True), ("small", False)],
    ids=["plain", "asan_ubsan", "small_build"],
)
def test_standalone_testbench(build, sanitize):
    """hls/tb_kcnn.cpp: steps built word by word in C++ against plain-loop references and
    the trip formulas, every status included; under ASan/UBSan as well, and on the small
    build, whose cases must size themselves by its tile and weight cache."""
    import os
    import subprocess

    tb = csim.build_testbench(PARAMS[build], sanitize=sanitize)
    env = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0", "UBSAN_OPTIONS": "print_stacktrace=1"}
    done = subprocess.run(
        [str(tb)],
        cwd=csim.hls_dir(),
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert " 0 failed" in done.stdout and "runtime error" not in done.stderr
    assert "ERROR: AddressSanitizer" not in done.stderr


def test_clang_tidy_is_clean_on_the_kernels():
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    tidy = shutil.which("clang-tidy") or shutil.which(
        "clang-tidy", path=str(Path(sys.executable).parent)
    )
    assert tidy is not None, "clang-tidy is part of the test extra"
    folder = Path(__file__).resolve().parents[1] / "hls"
    done = subprocess.run(
        [
            tidy,
            "--quiet",
            f"--config-file={folder / '.clang-tidy'}",
            "kcnn_top.cpp",
            "tb_kcnn.cpp",
            "--",
            "-std=c++14",
            "-isystem",
            str(csim.ap_types_dir()),
            "-isystem",
            "csim_include",
            "-I.",
            "-Wno-unknown-pragmas",
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0 and "warning:" not in done.stdout, done.stdout + done.stderr


def test_the_accelerator_shows_the_kernels_loop_logs():
    from kcnn import Accelerator

    path = table_path("lenet5")
    with Accelerator(path, backend="csim") as acc:
        assert acc.loop_logs == []  # no frame yet
        acc.run(digits("test")[0][:1])
        plan = plan_model(acc.model)
        assert acc.loop_logs == [step.loop_log() for step in plan.steps]
    with Accelerator(path, backend="sim") as acc:
        acc.run(digits("test")[0][:1])
        assert acc.loop_logs is None


def test_a_graph_with_branches_and_a_concat_runs_as_in_the_simulator(params):
    """Two branches read one map; the host joins their answers (one codebook) into the
    max-pool's map: sim == csim, and the steps whose map is not the answer before them
    are written by the host."""
    rng = np.random.default_rng(21)
    model = branch_model(rng)
    layer0 = model.layer("L0")
    x = floats_for(model, random_codes(rng, layer0, 2, model.maps["input"].J))
    engine = assert_same_run(model, x, params)
    assert_trips_are_the_model(engine)
    first = {s.layer.name: s for s in reversed(engine.plan.steps)}
    assert not first["B1"].host_in and first["B2"].host_in and first["P"].host_in
    assert first["L0"].host_out and first["B1"].host_out


GRAPH_CASES = [
    "residual_identity_op13",  # and a global average pool (depthwise) before an fc
    "avgpool_op13",
    "residual_projection_op13",
    "add_of_activations_op13",
    "linear_bottleneck_op13",
    "monotone_activations_op13",
    "fire_concat_op13",
    "preactivation_bn_op13",
    "avgpool_exclude_pad_op13",
]


@pytest.mark.parametrize("case", GRAPH_CASES)
def test_quantized_graphs_run_as_in_the_simulator(case, tmp_path):
    """Residual Adds (into a conv's accumulator and the add step), signed maps (interval
    codes), folded activations, Concats and host ops between steps, through a `.kcnn`
    file (an add's tables, a code map's table): csim == sim on every map and on the
    logits, the kernel's loop trips as planned."""
    environments.importorskip("onnxruntime")
    import onnx_cases

    from kcnn.quantizer import quantize

    model, x = onnx_cases.SUPPORTED[case]()
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((64, *x.shape[1:])).astype(np.float32)
    made = quantize(model, calib, log=None, density=0.6)
    quantized = load(made.save(tmp_path / f"{case}.kcnn"))
    engine = assert_same_run(quantized, x[:2], BuildParams())
    assert_trips_are_the_model(engine)
