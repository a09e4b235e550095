"""The board back-end (``kcnn.host.board``) with the real pynq classes on a fake board.

Runs in the board environment of tools/test.sh (Python 3.10, numpy 1.x, pynq 3.x, the
``csim`` extra): ``pynq.Overlay``, ``pynq.lib.dma.DMA``, ``KcnnIP`` (a ``pynq.DefaultIP``),
``MMIO`` and ``pynq.allocate`` drive ``tests/fake_board.py``, whose kernel is the HLS top's
C-sim and whose DMAs, registers and caches behave as the board's. There the results must
equal the simulator and the C-sim bit for bit, and the files the main environment wrote
with tools/golden.py (missing files fail).
"""

import os
import time
from pathlib import Path

import environments
import numpy as np
import pytest

from kcnn import models
from kcnn.errors import KcnnError
from kcnn.kfile import load

pytestmark = pytest.mark.board_env
pynq = environments.importorskip("pynq")

from fake_board import FakeZynq, kernel_registers, write_overlay  # noqa: E402
from layer_cases import (  # noqa: E402
    assert_runs_as_the_simulator,
    assert_same_maps,
    branch_model,
    chain_model,
    floats_for,
    pool_model,
    random_codes,
)

import kcnn.accelerator  # noqa: E402
from kcnn import Accelerator  # noqa: E402
from kcnn.estimate import STEP_ACCESSES, STREAM_B_ACCESSES, estimate, step_words  # noqa: E402
from kcnn.host.board import BoardFault  # noqa: E402
from kcnn.overlay import KCNNOverlay  # noqa: E402
from kcnn.protocol import JOB_TAG, StepFault, decode_trailer  # noqa: E402
from kcnn.runner import first_map_words  # noqa: E402
from kcnn.sim.csim import CsimEngine  # noqa: E402
from kcnn.sim.engine import simulator  # noqa: E402

GOLDEN = os.environ.get("KCNN_GOLDEN_DIR")
#: Every bundled table: the chains and the graphs (residual Adds, signed maps, Concats).
BUNDLED = models.MODELS + models.GRAPH_MODELS
#: A build whose planner splits LeNet's fc1 into four jobs answering 1, 2, 2 and 3 words.
SMALL_W = {"W_DEPTH": 256}


def connect(
    folder: Path, model_name="lenet5", timeout_s=2.0, params=None, kernel_params=None, **overlay
):
    """Overlay files + fake board -> KCNNOverlay (a real pynq.Overlay) -> its BoardEngine
    for a bundled model (by name) or a model. The fake's kernel is built with
    ``kernel_params`` (by default the overlay's)."""
    write_overlay(folder, params, **overlay)
    device = FakeZynq(kernel_params if kernel_params is not None else params)
    ol = KCNNOverlay(folder, device=device)
    model = load(models.table_path(model_name)) if isinstance(model_name, str) else model_name
    engine = ol.engine(model, timeout_s=timeout_s)
    return engine, device


@pytest.fixture
def lenet(tmp_path):
    engine, device = connect(tmp_path / "overlay")
    yield engine, device
    engine.close()


@pytest.fixture(scope="module")
def references():
    """Simulator and C-sim traces of four test digits, per model."""
    x = models.digits("test")[0][:4]
    out = {}
    for name in BUNDLED:
        model = load(models.table_path(name))
        sim = simulator(model).run(x, trace=True)
        csim_engine = CsimEngine(model)
        try:
            csim = csim_engine.run(x, trace=True)
        finally:
            csim_engine.close()
        out[name] = (x, sim, csim)
    return out


def digits(n):
    return models.digits("test")[0][:n]


def corrupt(engine, step_index: int, word: int, xor: int):
    """Flip bits of one word of a step's persistent stream-A buffer, as a DDR fault would
    (the CPU writes, then flushes that word)."""
    buffer = engine.step_buffer(step_index)
    buffer[word] ^= np.uint64(xor)
    buffer[word : word + 1].flush()
    return lambda: corrupt(engine, step_index, word, xor)


def job_header_at(engine, step, job_index: int) -> int:
    """Word offset of a job's header in its step's stream-A buffer."""
    at = step.head.size + step.map_words_a + 1
    return at + sum(job.words_a.size for job in step.jobs[:job_index])


# ---- bit-exact equality --------------------------------------------------------------------


@pytest.mark.parametrize("name", BUNDLED)
def test_board_reproduces_the_main_environment_bit_for_bit(tmp_path, name):
    if GOLDEN is None:
        pytest.fail("KCNN_GOLDEN_DIR is not set: tools/test.sh writes it with tools/golden.py")
    path = Path(GOLDEN) / f"{name}.npz"
    assert path.is_file(), f"{path} is missing: run tools/golden.py in the main environment"
    with np.load(path) as golden:
        stored = {key[4:]: golden[key] for key in golden.files if key.startswith("map:")}
        x = golden["x"]
    engine, _ = connect(tmp_path / "overlay", name)
    try:
        _, logits, maps = engine.run(x, trace=True)
    finally:
        engine.close()
    maps["logits"] = logits
    assert_same_maps(maps, stored)


@pytest.mark.parametrize("name", BUNDLED)
def test_sim_csim_and_board_agree_bit_for_bit(tmp_path, name, references):
    """Every layer's codes and the last acc (through ``trace``), and the logits."""
    x, (sim_out, sim_logits, sim_maps), (_, csim_logits, csim_maps) = references[name]
    engine, device = connect(tmp_path / "overlay", name)
    try:
        out, logits, maps = engine.run(x, trace=True)
        assert_same_maps(csim_maps, sim_maps)
        assert_same_maps(maps, sim_maps)
        assert np.array_equal(logits, sim_logits) and np.array_equal(csim_logits, sim_logits)
        assert np.array_equal(out, sim_out)
        # Without trace only the last answer is read back, and it is the same.
        assert np.array_equal(engine.run(x)[1], sim_logits)
    finally:
        engine.close()
    assert all(inv["status"] == 0 for inv in device.invocations)


# ---- the host's work per frame ---------------------------------------------------------------


def frame_counts(engine, device, x):
    device.accesses.clear()
    device.transfers.clear()
    device.cache_ops.clear()
    engine.run(x)
    return list(device.accesses), list(device.transfers), list(device.cache_ops)


@pytest.mark.parametrize("name", models.MODELS)
def test_register_accesses_and_transfers_per_frame_equal_the_model(tmp_path, name):
    engine, device = connect(tmp_path / "overlay", name)
    try:
        model, plan = engine.model, engine.plan
        est = estimate(model, engine.params)
        for frame in range(2):
            accesses, transfers, cache = frame_counts(engine, device, digits(2)[frame : frame + 1])
            print(
                f"{name}: frame {frame}: {len(accesses)} register accesses "
                f"(model {est['host']['accesses']}), {len(transfers)} transfers"
            )
            assert len(accesses) == est["host"]["accesses"]
            expected = []
            for step in plan.steps:
                words = step_words(step)
                expected.append(("dma", "S2MM", 8 * words["out"]))
                if words["b"]:
                    expected.append(("dma_w", "MM2S", 8 * words["b"]))
                expected.append(("dma", "MM2S", 8 * words["a"]))
            assert transfers == expected
            # Per step: S2MM DA + LENGTH, (weights SA + LENGTH), MM2S SA + LENGTH, one status
            # read that sees the end, one length read; the kernel's registers never.
            per_step = []
            for step in plan.steps:
                per_step += [("w", "dma", "S2MM_DA"), ("w", "dma", "S2MM_LENGTH")]
                if step.stream_b_words:
                    per_step += [("w", "dma_w", "MM2S_SA"), ("w", "dma_w", "MM2S_LENGTH")]
                per_step += [("w", "dma", "MM2S_SA"), ("w", "dma", "MM2S_LENGTH")]
                per_step += [("r", "dma", "S2MM_DMASR"), ("r", "dma", "S2MM_LENGTH")]
            assert accesses == per_step
            assert sum(
                STEP_ACCESSES + STREAM_B_ACCESSES * bool(s.stream_b_words) for s in plan.steps
            ) == len(accesses)
            # The input is flushed once (its bytes only: an F32 map split over the streams
            # as its even words in step 0's buffer and its odd words at the head of the
            # stream-B buffer), the answer invalidated once.
            last = plan.last.out_words + 1
            first = plan.first
            flushes = [("flush", 8 * engine.map_offset(0), 8 * first.map_words_a)]
            if first.map_words_b:
                flushes.append(("flush", 0, 8 * first.map_words_b))
            assert sum(f[2] for f in flushes) == est["host"]["input_bytes"]
            assert cache == [*flushes, ("invalidate", 0, 8 * last)]
    finally:
        engine.close()


def test_a_layer_split_along_its_input_runs_as_in_the_simulator(tmp_path):
    """300 input channels on a kernel whose placement table holds 256: two input blocks,
    each answering its partial acc into a buffer the host reads and adds."""
    rng = np.random.default_rng(4)
    model, layer = chain_model(
        rng, {"c_in": 3, "c_out": 300, "hw": (6, 5)}, {"c_out": 5, "last": True}
    )
    x = floats_for(model, random_codes(rng, layer, 2, model.maps["input"].J))
    engine, _ = connect(tmp_path / "overlay", model, params={"CH_MAX": 256})
    try:
        assert [s.part for s in engine.plan.steps] == [None, (0, 150), (150, 300)]
        assert_runs_as_the_simulator(engine, x)
    finally:
        engine.close()


def test_a_depthwise_conv_above_the_kernel_runs_as_group_blocks(tmp_path):
    """A first-layer depthwise conv of 300 channels on a kernel whose placement table holds
    256: two blocks of 150 whole groups, each reading its channels of the float image and
    answering into a buffer the host reads; the host joins them into the next conv's map."""
    rng = np.random.default_rng(5)
    depthwise = {"c_in": 300, "c_out": 300, "groups": 300, "hw": (6, 5)}
    model, layer = chain_model(rng, depthwise, {"c_out": 5, "last": True})
    x = floats_for(model, random_codes(rng, layer, 2, model.maps["input"].J))
    engine, _ = connect(tmp_path / "overlay", model, params={"CH_MAX": 256})
    try:
        blocks = [s.group_block for s in engine.plan.steps]
        assert [(b.out0, b.out1) for b in blocks[:2]] == [(0, 150), (150, 300)]
        assert blocks[2] is None and engine.plan.steps[2].host_in
        assert_runs_as_the_simulator(engine, x)
    finally:
        engine.close()


def test_a_pool_chain_and_unequal_strides_run_as_in_the_simulator(tmp_path):
    """A (1, 2)-strided conv the host subsamples, then a 5x5 max-pool run as two pool steps
    (the first answering into the second's map slot)."""
    rng = np.random.default_rng(8)
    model, conv = pool_model(rng, (5, 5), (2, 2), (2, 2, 2, 2), (13, 12), conv_strides=(1, 2))
    x = floats_for(model, random_codes(rng, conv, 2, model.maps["input"].J))
    engine, _ = connect(tmp_path / "overlay", model)
    try:
        pools = [s for s in engine.plan.steps if s.op == "POOL"]
        assert engine.plan.steps[0].host_stride == (1, 2) and len(pools) == 2
        assert not pools[1].host_in  # the first pool's answer lands in the second's map
        assert_runs_as_the_simulator(engine, x)
    finally:
        engine.close()


def test_each_step_buffer_is_its_stream_a_and_answers_land_in_the_next(tmp_path):
    """Zero copy: after a frame every step's buffer holds exactly its stream A for the map it
    read, the map being the previous step's answer and the reserved word its trailer."""
    engine, _ = connect(tmp_path / "overlay", "alexnet_mnist")
    try:
        x = digits(1)
        engine.run(x, trace=True)
        answers = engine.fabric.answers
        first = engine.plan.first
        words = first_map_words(first, x[0], engine.model)
        for n, step in enumerate(engine.plan.steps):
            buffer = engine.step_buffer(n)
            buffer.invalidate()
            expected = step.stream_a(words if n == 0 else answers[n - 1])
            reserved = engine.map_offset(n) + step.map_words_a
            if n:
                assert decode_trailer(buffer[reserved])[0] == "OK", step.layer.name
                expected[reserved] = buffer[reserved]
            assert np.array_equal(np.asarray(buffer), expected), step.layer.name
        assert len(engine.buffers) == 1 + len(engine.plan.steps) + 2
        weights = engine.buffers[-1]
        # every step's stream B: step 0's map share (the input's odd words), the jobs'
        assert first.map_words_b
        assert np.array_equal(
            np.asarray(weights),
            np.concatenate([first.stream_b(words)] + [s.jobs_b for s in engine.plan.steps[1:]]),
        )
    finally:
        engine.close()


def test_accesses_grow_with_steps_not_jobs(tmp_path):
    """LeNet planned for a small weight cache has more jobs, the same steps and accesses."""
    default, device = connect(tmp_path / "a")
    small, small_device = connect(tmp_path / "b", params=SMALL_W)
    try:
        jobs = [sum(len(s.jobs) for s in e.plan.steps) for e in (default, small)]
        assert jobs[1] > jobs[0] and len(default.plan.steps) == len(small.plan.steps)
        counts = [
            len(frame_counts(e, d, digits(1))[0])
            for e, d in ((default, device), (small, small_device))
        ]
        print(f"jobs {jobs}: register accesses per frame {counts}")
        assert counts[0] == counts[1]
    finally:
        default.close()
        small.close()


def test_a_frame_reaches_the_dma_registers_through_their_array_only(lenet, monkeypatch):
    """The model prices a register access on the array path (kcnn.estimate
    REGISTER_ACCESS_S); MMIO.read and MMIO.write, several times dearer, raise here."""
    engine, device = lenet

    def refused(*args, **kwargs):
        raise AssertionError("a frame called MMIO.read or MMIO.write")

    for channel in engine.ip.channels:
        mmio = channel.dma.mmio
        monkeypatch.setattr(mmio, "read", refused)
        monkeypatch.setattr(mmio, "write", refused)
    accesses, _, _ = frame_counts(engine, device, digits(1))
    assert len(accesses) == estimate(engine.model, engine.params)["host"]["accesses"]


def test_one_stream_overlay_sends_everything_on_stream_a(tmp_path, references):
    """STREAMS=1: no weights DMA in the design, no stream-B words in the plan, six register
    accesses per step, and the same logits."""
    x, (_, sim_logits, _), _ = references["lenet5"]
    engine, device = connect(tmp_path / "overlay", params={"STREAMS": 1})
    try:
        assert engine.info["STREAMS"] == 1 and set(device.dmas) == {"dma"}
        assert not any(step.jobs_b.size for step in engine.plan.steps)
        assert np.array_equal(engine.run(x)[1], sim_logits)
        accesses, transfers, _ = frame_counts(engine, device, x[:1])
        steps = len(engine.plan.steps)
        assert (
            len(accesses)
            == STEP_ACCESSES * steps
            == estimate(engine.model, engine.params)["host"]["accesses"]
        )
        assert len(transfers) == 2 * steps
    finally:
        engine.close()


# ---- load: probe, buffers, register map -------------------------------------------------------


def test_probe_answer_and_buffers(lenet):
    engine, device = lenet
    for key, value in device.kernel.config.items():
        if key in engine.info:
            assert engine.info[key] == value, key
    # Probe, one buffer per step, the output and the stream-B words.
    steps = len(engine.plan.steps)
    assert len(engine.buffers) == 1 + steps + 1 + 1
    pointers = sorted(b.physical_address for b in engine.buffers)
    engine.close()
    assert sorted(device.freed) == pointers
    engine.close()  # idempotent


@pytest.mark.parametrize(
    "overlay, kernel, field",
    [
        ({"P": 8}, {}, "P: kernel 16, kcnn.json 8"),
        ({"LRN_LANES": 4}, {}, "LRN_LANES: kernel 8, kcnn.json 4"),
        ({"CH_MAX": 512}, {}, "CH_MAX: kernel 1024, kcnn.json 512"),
        ({"IN_DEPTH": 1 << 17}, {}, "IN_DEPTH: kernel 262144, kcnn.json 131072"),
        ({}, {"OUT_DEPTH": 8192}, "OUT_DEPTH: kernel 8192, kcnn.json 16384"),
    ],
)
def test_probe_mismatch_is_refused(tmp_path, overlay, kernel, field):
    write_overlay(tmp_path, overlay)
    device = FakeZynq(kernel)
    ol = KCNNOverlay(tmp_path, device=device)
    with pytest.raises(KcnnError, match="refused") as err:
        ol.engine(load(models.table_path("lenet5")))
    assert field in str(err.value)
    assert len(device.freed) == len(device.memory)  # the refused engine's buffers are freed


def test_contract_mismatch_is_refused(tmp_path):
    write_overlay(tmp_path, contract={"K_MAX": 8})
    device = FakeZynq()
    with pytest.raises(KcnnError, match="K_MAX: kernel 16, kcnn.json 8, this release 16"):
        KCNNOverlay(tmp_path, device=device).engine(load(models.table_path("lenet5")))
    assert len(device.freed) == len(device.memory)


def test_register_offsets_and_dma_roles_come_from_the_hwh(tmp_path, references):
    """Arguments from 0x20 (as with counted auto-restart) and the weights DMA first in the
    file and at the lower address: the driver follows the .hwh, so the frame is the same."""
    x, (_, sim_logits, _), _ = references["lenet5"]
    engine, device = connect(tmp_path / "overlay", args_at=0x20, swap_dmas=True)
    try:
        ol_regs = kernel_registers(0x20)
        assert engine.ip._status == ol_regs["status"] and engine.ip._info[0] == [0x20, 0x24]
        assert np.array_equal(engine.run(x)[1], sim_logits)
    finally:
        engine.close()


def test_register_map_that_does_not_fit_the_kernel_is_refused(tmp_path):
    """The .hwh puts the arguments at 0x10, the kernel has them at 0x20: the info registers
    the driver reads differ from the probe's answer."""
    write_overlay(tmp_path)
    device = FakeZynq(kernel_args_at=0x20)
    ol = KCNNOverlay(tmp_path, device=device)
    with pytest.raises(
        KcnnError,
        match=r"info registers \(0x0, .*\) differ from its probe "
        r"answer \(0x4E4E434B, .*\(refused\)",
    ):
        ol.engine(load(models.table_path("lenet5")))
    assert len(device.freed) == len(device.memory)


def test_info_registers_read_zero_before_the_kernel_runs(tmp_path):
    write_overlay(tmp_path)
    device = FakeZynq()
    ol = KCNNOverlay(tmp_path, device=device)
    assert ol.kernel.info() == [0, 0, 0, 0]
    engine = ol.engine(load(models.table_path("lenet5")))
    try:
        status = ol.status()
        assert status["kernel"]["auto_restart"] and status["kernel"]["status"] == "OK"
        assert status["kernel"]["info"] == engine.info
        states = {
            label.split()[0] + label.split()[1]: c["state"] for label, c in status["dma"].items()
        }
        # The probe uses stream A and the answers; stream B has not moved yet.
        assert states["streamA"].startswith("idle") and states["answerchannel"].startswith("idle")
        assert states["streamB"].startswith("active (")
        engine.run(digits(1))
        assert all(c["state"].startswith("idle (") for c in ol.status()["dma"].values())
        assert ol.status()["dma"]["answer channel (jobs DMA, S2MM)"]["received_bytes"] == 48
    finally:
        engine.close()


def test_a_status_read_keeps_the_engines_deadline(tmp_path):
    """The overlay's status reads the registers through the kernel driver the engine uses;
    it must not reset the engine's wait deadline to the default."""
    write_overlay(tmp_path)
    ol = KCNNOverlay(tmp_path, device=FakeZynq())
    engine = ol.engine(load(models.table_path("lenet5")), timeout_s=0.5)
    try:
        ol.status()
        assert engine.ip is ol.kernel and engine.ip.timeout_s == 0.5
    finally:
        engine.close()


def test_overlay_binds_the_drivers(tmp_path):
    write_overlay(tmp_path)
    ol = KCNNOverlay(tmp_path, device=FakeZynq())
    assert type(ol.kernel).__name__ == "KcnnIP"
    assert (ol.jobs_dma_name, ol.weights_dma_name) == ("dma", "dma_w")
    jobs, weights = ol.driver("dma"), ol.driver("dma_w")
    assert type(jobs).__name__ == type(weights).__name__ == "DMA"
    assert jobs.buffer_max_size == 2**26 - 1 and weights.recvchannel is None


def test_transfer_above_the_dma_maximum_is_refused_at_load(tmp_path):
    write_overlay(tmp_path, dma={"C_SG_LENGTH_WIDTH": "10"})
    device = FakeZynq()
    ol = KCNNOverlay(tmp_path, device=device)
    with pytest.raises(
        KcnnError,
        match=r"step 0 \(layer 'conv1'\): the answer channel \(jobs DMA, S2MM\) transfer of "
        r"\d+ bytes exceeds the DMA's maximum transfer of 1023 bytes",
    ):
        ol.engine(load(models.table_path("lenet5")))
    assert device.transfers == []  # refused before any register was written
    assert len(device.freed) == len(device.memory)


def test_timing_failure_is_refused_unless_asked(tmp_path):
    write_overlay(tmp_path, timing={"wns_ns": -0.31, "met": False, "negative_slack_allowed": False})
    device = FakeZynq()
    with pytest.raises(KcnnError, match=r"WNS -0.31 ns .* \(refused\)"):
        KCNNOverlay(tmp_path, device=device)
    assert device.reloads == 0  # refused before programming the PL
    with pytest.warns(RuntimeWarning, match="timing not met"):
        KCNNOverlay(tmp_path, device=device, allow_timing_failure=True)


def test_clock_differing_from_kcnn_json_is_reported(tmp_path):
    write_overlay(tmp_path, {"CLOCK_MHZ": 150})  # the IO PLL gives 1000 / 7 = 142.857 MHz
    device = FakeZynq()
    ol = KCNNOverlay(tmp_path, device=device)
    with pytest.warns(RuntimeWarning, match=r"PL clock runs at 142.857 MHz .* CLOCK_MHZ=150"):
        ol.engine(load(models.table_path("lenet5"))).close()


# ---- faults and recovery --------------------------------------------------------------------


def recovers_to_sim(engine, device, x, expected, reloads):
    with pytest.warns(RuntimeWarning, match="resetting the DMAs, reloading the overlay"):
        logits = engine.run(x)[1]
    assert np.array_equal(logits, expected)
    assert device.reloads == reloads


def test_hang_times_out_naming_step_layer_and_bytes_then_recovers(tmp_path, references):
    x, (_, sim_logits, _), _ = references["lenet5"]
    engine, device = connect(tmp_path / "overlay", timeout_s=0.3)
    try:
        device.inject("hang")
        start = time.monotonic()
        with pytest.raises(TimeoutError) as err:
            engine.run(x)
        assert time.monotonic() - start < 0.3 + 1.0
        message = str(err.value)
        print(message)
        step = engine.plan.steps[0]
        words = step_words(step)
        assert "step 0 (layer 'conv1'): no answer within 0.3 s" in message
        assert f"stream A {8 * words['a']} bytes" in message
        assert f"stream B {8 * words['b']} bytes" in message
        assert f"answer {8 * words['out']} bytes expected" in message
        device.faults.clear()
        recovers_to_sim(engine, device, x, sim_logits, reloads=2)
    finally:
        engine.close()


@pytest.mark.parametrize(
    "fault, words, error, match",
    [
        # an answer cut short is named by its missing trailer
        ("truncate", 1, StepFault, r"the answer of 294 words ends without a trailer"),
        # one longer than armed halts the S2MM channel
        ("extra", 3, BoardFault, r"the answer channel .* stopped: halted, DMA internal error"),
    ],
    ids=["truncated", "longer_than_armed"],
)
def test_answer_of_the_wrong_length_is_named_then_recovers(
    tmp_path, references, fault, words, error, match
):
    x, (_, sim_logits, _), _ = references["lenet5"]
    engine, device = connect(tmp_path / "overlay")
    try:
        device.inject(fault, words)
        with pytest.raises(error, match=r"step 0 \(layer 'conv1'\): " + match):
            engine.run(x)
        recovers_to_sim(engine, device, x, sim_logits, reloads=2)
    finally:
        engine.close()


@pytest.mark.parametrize(
    "dma, channel, bits, error, match",
    [
        ("dma", "S2MM", 0x40, BoardFault, r"the answer channel .* halted, DMA decode error"),
        ("dma_w", "MM2S", 0x20, TimeoutError, r"stream B \d+ bytes \(halted, DMA slave error"),
        ("dma", "MM2S", 0x10, TimeoutError, r"stream A \d+ bytes \(halted, DMA internal error"),
    ],
)
def test_dma_error_bits_are_named_then_recovered(
    tmp_path, references, dma, channel, bits, error, match
):
    x, (_, sim_logits, _), _ = references["lenet5"]
    engine, device = connect(tmp_path / "overlay", timeout_s=0.3)
    try:
        device.inject("dma_error", (dma, channel, bits))
        with pytest.raises(error, match=match) as err:
            engine.run(x)
        assert "step 0 (layer 'conv1')" in str(err.value)
        recovers_to_sim(engine, device, x, sim_logits, reloads=2)
    finally:
        engine.close()


def test_refused_job_in_the_middle_of_a_multi_job_step(tmp_path, references):
    """AlexNet's conv3 has three jobs: the second is refused after the first has answered;
    the trailer names it, and only the first job's words came back."""
    x, (_, sim_logits, _), _ = references["alexnet_mnist"]
    engine, device = connect(tmp_path / "overlay", "alexnet_mnist")
    try:
        step = next(s for s in engine.plan.steps if s.layer.name == "conv3")
        assert len(step.jobs) == 3
        restore = corrupt(engine, step.index, job_header_at(engine, step, 1), JOB_TAG)
        first = step.jobs[0].out_words
        with pytest.raises(StepFault) as err:
            engine.run(x)
        message = str(err.value)
        print(message)
        assert (
            f"step {step.index} (layer 'conv3'): the kernel refused job 1 with status "
            f"BAD_JOB ({first} of {step.out_words} output words came back)" in message
        )
        assert err.value.layer == "conv3"
        restore()
        recovers_to_sim(engine, device, x, sim_logits, reloads=2)
    finally:
        engine.close()


@pytest.mark.parametrize("job,words", [(0, 1), (1, 2)])
def test_refused_job_whose_good_answer_is_one_word(tmp_path, references, job, words):
    """LeNet's fc1 planned for a small weight cache: job 0 answers one word, job 1 two (an
    fc step packs its codes on across jobs). The refusal is seen from the answer's length
    and named by its trailer."""
    x, (_, sim_logits, _), _ = references["lenet5"]
    engine, device = connect(tmp_path / "overlay", params=SMALL_W)
    try:
        step = next(s for s in engine.plan.steps if s.layer.name == "fc1")
        assert step.jobs[job].out_words == words
        before = sum(j.out_words for j in step.jobs[:job])
        restore = corrupt(engine, step.index, job_header_at(engine, step, job), JOB_TAG)
        with pytest.raises(
            StepFault,
            match=rf"the kernel refused job {job} with status BAD_JOB "
            rf"\({before} of {step.out_words} output words came back\)",
        ):
            engine.run(x)
        restore()
        recovers_to_sim(engine, device, x, sim_logits, reloads=2)
    finally:
        engine.close()


def test_refused_sparse_byte_is_named(tmp_path, references):
    """A weight byte of a sparse job corrupted in the persistent buffer."""
    x, (_, sim_logits, _), _ = references["lenet5"]
    engine, device = connect(tmp_path / "overlay", params=SMALL_W)
    try:
        step = next(s for s in engine.plan.steps if s.layer.name == "fc1")
        job = step.jobs[2]
        assert job.sparse
        # The first weight word on stream A after the header and the biases.
        at = job_header_at(engine, step, 2) + 2 + -(-job.channels // 2)
        restore = corrupt(engine, step.index, at, 0xFF)
        with pytest.raises(
            StepFault,
            match=r"layer 'fc1'\): the kernel refused job 2 with "
            r"status BAD_SPARSE",
        ):
            engine.run(x)
        restore()
        recovers_to_sim(engine, device, x, sim_logits, reloads=2)
    finally:
        engine.close()


# ---- the fake is as strict as the board --------------------------------------------------------


def test_fake_dma_reads_only_flushed_bytes_and_the_cpu_sees_only_invalidated_ones(tmp_path):
    """The cache model the driver's flush() and invalidate() calls are tested against."""
    write_overlay(tmp_path)
    device = FakeZynq()
    ol = KCNNOverlay(tmp_path, device=device)
    dma = ol.driver("dma")
    src = pynq.allocate((4,), np.uint64, target=device)
    dst = pynq.allocate((4,), np.uint64, target=device)
    src[:] = [1, 2, 3, 4]
    # Not flushed: the DMA reads what DDR holds (the allocation's garbage).
    assert not np.array_equal(device.memory[src.physical_address].device.view(np.uint64), src)
    src.flush()
    assert np.array_equal(device.memory[src.physical_address].device.view(np.uint64), src)
    device.memory[dst.physical_address].device[:] = 7  # the device writes DDR
    assert not np.any(np.asarray(dst) == np.uint64(0x0707070707070707))
    dst[2:].invalidate()
    assert list(np.asarray(dst)[2:]) == [0x0707070707070707] * 2
    assert dst[0] == np.uint64(0xA5A5A5A5A5A5A5A5)  # outside the invalidated range
    assert dma.sendchannel.running


def test_fake_dma_halts_on_errors_until_reset(tmp_path):
    write_overlay(tmp_path)
    device = FakeZynq()
    ol = KCNNOverlay(tmp_path, device=device)
    mmio = ol.driver("dma").mmio
    mmio.write(0x28, 0)  # MM2S LENGTH 0: internal error
    assert mmio.read(0x04) & 0x11 == 0x11
    mmio.write(0x00, 1)  # run again: still halted
    assert mmio.read(0x04) & 0x1
    mmio.write(0x00, 4)  # soft reset, self-clearing
    assert mmio.read(0x00) & 4 and not mmio.read(0x00) & 4
    mmio.write(0x00, 1)
    assert mmio.read(0x04) & 0x71 == 0


def test_fake_kernel_waits_for_stream_b(lenet):
    """A step with stream-B words runs only once both transfers have arrived."""
    engine, device = lenet
    step = engine.plan.steps[0]
    assert step.jobs_b.size
    kernel, transfer = engine.ip, engine._io[0].transfer
    kernel.answers.start(transfer.answer_address, transfer.answer_bytes)
    kernel.stream_a.start(transfer.a_address, transfer.a_bytes)
    runs = len(device.invocations)
    assert len(device.invocations) == runs and not kernel.answers.status() & 0x2
    kernel.stream_b.start(transfer.b_address, transfer.b_bytes)
    assert len(device.invocations) == runs + 1 and kernel.answers.status() & 0x2


def test_fake_kernel_without_auto_restart_runs_one_step(lenet):
    """ap_ctrl_hs: with auto-restart cleared, the invocation already waiting runs step 0 and
    the kernel then stays idle, so step 1 gets no answer."""
    engine, device = lenet
    engine.timeout_s = 0.2
    engine.ip.stop()
    with pytest.raises(TimeoutError, match=r"step 1 \(layer 'MaxPool'\): no answer"):
        engine.run(digits(1))
    assert engine.ip.control()["idle"] and not engine.ip.control()["auto_restart"]
    engine.timeout_s = 2.0
    with pytest.warns(RuntimeWarning, match="restarting the channels and the kernel"):
        engine.run(digits(1))  # recovery re-arms auto-restart


# ---- the Accelerator ------------------------------------------------------------------------


@pytest.fixture
def active_fake_device():
    """The fake board as pynq's active device (what pynq finds first on a real board)."""
    device = FakeZynq()
    pynq.Device.active_device = device
    yield device
    del pynq.Device._active_device


def test_accelerator_auto_picks_the_board(tmp_path, monkeypatch, active_fake_device, references):
    write_overlay(tmp_path)
    monkeypatch.setattr(kcnn.accelerator, "board_present", lambda: True)  # the FPGA manager
    x, (_, sim_logits, _), _ = references["lenet5"]
    with Accelerator(models.table_path("lenet5"), backend="auto", overlay=tmp_path) as acc:
        assert acc.backend == "board" and "matching overlay" in acc.reason
        assert np.array_equal(acc.predict(x), sim_logits.argmax(axis=1))
        buffers = [b.physical_address for b in acc._engine.buffers]
    assert sorted(active_fake_device.freed) == sorted(buffers)


def test_a_graph_with_branches_runs_as_in_the_simulator(tmp_path):
    """Branches and a Concat on the board: an answer read by a later step than the next
    one is read by the host, which writes the maps of the steps that do not read the
    answer before them."""
    rng = np.random.default_rng(21)
    model = branch_model(rng)
    x = floats_for(model, random_codes(rng, model.layer("L0"), 2, model.maps["input"].J))
    engine, _ = connect(tmp_path / "overlay", model)
    try:
        assert [s.host_in for s in engine.plan.steps] == [False, False, True, True, False]
        assert_runs_as_the_simulator(engine, x)
    finally:
        engine.close()


def test_pixel_input_runs_as_in_the_simulator_with_its_map_on_stream_a(tmp_path):
    """A model taking uint8 images (alexnet_mnist's table with its preprocessing x / 255
    declared as pixel input): the host writes the pixels, 8 a word, into the first step's
    buffer only, and the logits equal the float model's on x / 255."""
    from kcnn.model import Pixels
    from kcnn.protocol import pack_u8

    model = load(models.table_path("alexnet_mnist"))
    model.pixels = Pixels.make(0, 255, model.input_shape)
    engine, _ = connect(tmp_path / "overlay", model)
    try:
        floats = digits(3)
        x = np.rint(floats * 255).astype(np.uint8)
        assert np.array_equal(model.pixels.to_float(x), floats)
        first = engine.plan.first
        assert first.in_format == "U8" and first.map_words_b == 0
        assert_runs_as_the_simulator(engine, x)
        buffer = engine.step_buffer(0)
        buffer.invalidate()
        at = engine.map_offset(0)
        slot = np.asarray(buffer[at : at + first.map_words])
        assert np.array_equal(slot, pack_u8(x[-1]))
        float_logits = simulator(load(models.table_path("alexnet_mnist"))).run(floats)[1]
        assert np.array_equal(engine.run(x)[1], float_logits)
    finally:
        engine.close()
