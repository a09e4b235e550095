"""The board back-end (``kcnn.host.board``) with the real pynq classes on a fake board.

Runs in the board environment of tools/test.sh (Python 3.10, numpy 1.x, pynq 3.x, the
``csim`` extra): ``pynq.lib.dma.DMA``, ``KcnnIP`` (a ``pynq.DefaultIP``), ``MMIO`` and
``pynq.allocate`` drive ``tests/fake_board.py``, whose kernel is the HLS top's C-sim. There the
results must equal, bit for bit, the files the main environment wrote with tools/golden.py
(missing files fail).
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

from fake_board import IP_REGISTERS, FakeZynq, write_overlay  # noqa: E402

import kcnn.accelerator  # noqa: E402
from kcnn import Accelerator  # noqa: E402
from kcnn.host.board import BoardFault  # noqa: E402
from kcnn.overlay import KCNNOverlay  # noqa: E402
from kcnn.sim.engine import Simulator  # noqa: E402

GOLDEN = os.environ.get("KCNN_GOLDEN_DIR")


def connect(folder: Path, model_name="lenet5", timeout_s=2.0, kernel_params=None, **overlay):
    """Overlay files + fake board -> KCNNOverlay (a real pynq.Overlay) -> its BoardEngine."""
    write_overlay(folder, **overlay)
    device = FakeZynq(kernel_params)
    ol = KCNNOverlay(folder, device=device)
    engine = ol.engine(load(models.table_path(model_name)), timeout_s=timeout_s)
    return engine, device


@pytest.fixture
def lenet(tmp_path):
    engine, device = connect(tmp_path / "overlay")
    yield engine, device
    engine.close()


def digits(n):
    return models.digits("test")[0][:n]


@pytest.mark.parametrize("name", models.MODELS)
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
    assert list(maps) == list(stored)
    for key, value in stored.items():
        assert maps[key].dtype == value.dtype and np.array_equal(maps[key], value), key


def test_probe_answer_and_buffers(lenet):
    engine, device = lenet
    assert engine.info["P"] == engine.params["P"] and engine.info["K_MAX"] == 16
    jobs = sum(len(p.jobs) for p in engine.packed.values())
    assert jobs >= 3
    # One constant buffer (probe + every job), one input and one output buffer.
    assert len(engine._buffers) == 3
    pointers = sorted(b.physical_address for b in engine._buffers)
    engine.close()
    assert sorted(device.freed) == pointers


@pytest.mark.parametrize(
    "overlay, field",
    [({"params": {"P": 8}}, "P: kernel 16, kcnn.json 8"), ({"contract": {"K_MAX": 8}}, "K_MAX")],
)
def test_configuration_mismatch_is_refused(tmp_path, overlay, field):
    write_overlay(tmp_path, **overlay)
    device = FakeZynq()
    ol = KCNNOverlay(tmp_path, device=device)
    with pytest.raises(KcnnError, match="refused") as err:
        ol.engine(load(models.table_path("lenet5")))
    assert field in str(err.value)
    assert len(device.freed) == 3  # the refused engine's buffers are freed


def test_kernel_that_never_finishes_times_out_and_the_next_run_recovers(tmp_path):
    engine, device = connect(tmp_path / "overlay", timeout_s=0.3)
    x = digits(2)
    expected = Simulator(engine.model).run(x, trace=True)[2]
    device.hang = True
    start = time.monotonic()
    with pytest.raises(TimeoutError) as err:
        engine.run(x)
    assert time.monotonic() - start < 0.3 + 1.0
    message = str(err.value)
    assert "layer 'conv1' job 0" in message and "within 0.3 s (sent " in message
    assert "receive channel still busy with 2352 bytes armed" in message
    device.hang = False
    with pytest.warns(RuntimeWarning, match="resetting the DMA, reloading the overlay"):
        maps = engine.run(x, trace=True)[2]
    assert device.reloads == 2  # at load, and after the fault through Overlay.download
    for key, value in expected.items():
        assert np.array_equal(maps[key], value), key
    engine.close()


def test_short_output_is_a_byte_count_error(lenet):
    engine, device = lenet
    device.short_output = 1
    with pytest.raises(BoardFault, match=r"layer 'conv1' job 0: received \d+ bytes, expected"):
        engine.run(digits(1))
    with pytest.warns(RuntimeWarning, match="short output"):
        out = engine.run(digits(1))[1]
    assert np.array_equal(out, Simulator(engine.model).run(digits(1))[1])


def test_dma_error_bits_give_a_clear_message(lenet):
    engine, device = lenet
    device.dma_error = 0x40
    with pytest.raises(BoardFault, match="DMA decode error on the S2MM"):
        engine.run(digits(1))
    with pytest.warns(RuntimeWarning):
        engine.run(digits(1))


@pytest.mark.parametrize("late", [False, True], ids=["answered-at-once", "answered-late"])
def test_bad_job_reports_the_kernel_status(lenet, late):
    """Answered before the inputs are sent, they never are; answered after, the short
    answer still names the status."""
    engine, device = lenet
    device.answer_late = late
    packed = engine.packed["conv1"].jobs[0]
    at = engine._offsets[id(packed)]
    engine._constant[at] ^= np.uint64(1)  # break the magic word
    sends = []
    original = device._send
    device._send = lambda nbytes: (sends.append(nbytes), original(nbytes))
    with pytest.raises(BoardFault, match="layer 'conv1' job 0: .* kernel status BAD_MAGIC"):
        engine.run(digits(1))
    inputs = packed.input_words * 8
    assert sends == [packed.constant.size * 8] + ([inputs] if late else [])
    device.answer_late = False
    engine._constant[at] ^= np.uint64(1)
    with pytest.warns(RuntimeWarning):
        engine.run(digits(1))


def test_transfer_above_the_dma_maximum_is_refused(tmp_path):
    with pytest.raises(KcnnError, match="exceed the DMA's maximum transfer of 1023 bytes"):
        engine, _ = connect(tmp_path / "overlay", dma={"C_SG_LENGTH_WIDTH": "10"})
        engine.run(digits(1))


def test_info_words_reach_the_driver_through_the_probe_answer(tmp_path):
    write_overlay(tmp_path)
    device = FakeZynq()
    ol = KCNNOverlay(tmp_path, device=device)
    # Before the kernel has run, its info registers read 0 through pynq's MMIO.
    assert [ol.kcnn.read(IP_REGISTERS[f"info{i}_1"]) for i in range(4)] == [0, 0, 0, 0]
    engine = ol.engine(load(models.table_path("lenet5")))
    # The kernel's own configuration (from the C-sim library) arrived in the probe's answer.
    for key, value in device.kernel.config.items():
        assert engine.info[key] == value, key
    engine.close()


def test_overlay_binds_the_drivers_and_cross_checks_pynqs_parser(tmp_path):
    write_overlay(tmp_path)
    ol = KCNNOverlay(tmp_path, device=FakeZynq())
    assert type(ol.kcnn).__name__ == "KcnnIP" and type(ol.dma).__name__ == "DMA"
    assert ol.dma.buffer_max_size == 2**26 - 1
    ol.cross_check()
    # pynq's parser reading another offset than ours (its ip_dict hands out copies)
    entry = dict(ol.ip_dict["kcnn"])
    entry["registers"] = {name: dict(reg) for name, reg in entry["registers"].items()}
    entry["registers"]["status"]["address_offset"] += 4
    ol.ip_dict = {**dict(ol.ip_dict), "kcnn": entry}
    with pytest.raises(KcnnError, match="register status: .hwh reader offset 80, pynq 84"):
        ol.cross_check()


@pytest.fixture
def active_fake_device():
    """The fake board as pynq's active device (what pynq finds first on a real board)."""
    device = FakeZynq()
    pynq.Device.active_device = device
    yield device
    del pynq.Device._active_device


def test_accelerator_auto_picks_the_board(tmp_path, monkeypatch, active_fake_device):
    write_overlay(tmp_path)
    monkeypatch.setattr(kcnn.accelerator, "board_present", lambda: True)  # the FPGA manager
    x = digits(3)
    with Accelerator(models.table_path("lenet5"), backend="auto", overlay=tmp_path) as acc:
        assert acc.backend == "board" and "matching overlay" in acc.reason
        assert np.array_equal(acc.predict(x), Simulator(acc.model).run(x)[1].argmax(axis=1))
        buffers = [b.physical_address for b in acc._engine._buffers]
    assert sorted(active_fake_device.freed) == sorted(buffers)
