"""The ``board`` back-end: protocol 5 steps through the two AXI DMAs of the PYNQ-Z2 overlay.

NOT RUN ON HARDWARE. No board was available where this was written. CI runs this module
with the real pynq classes (``pynq.lib.dma.DMA``, ``DefaultIP``, ``MMIO``, ``allocate``) on a
fake ``pynq.Device`` (``tests/fake_board.py``) whose kernel is the HLS top's C-simulation and
whose DMAs, registers and caches behave as the board's do; see README "On the board" for
what that does and does not prove.

Memory (docs/job-format.md). Each step has one persistent buffer laid out exactly as its
stream A: descriptor and constants, the map slot, the reserved word, the jobs' A words.
Step *n* answers ``out_words`` words and a trailer, which is exactly step *n+1*'s map slot
and reserved word, so the answer is received straight into the next step's buffer and the
host touches no data between steps; the last answer lands in an output buffer. The stream-B
words of every step sit in one more buffer, sent by the second DMA: per step its map's B
share (an ``F32`` map with two streams travels word w on stream w mod 2, so step 0's map
slot is split: its even words in the step's buffer, its odd words at the head of the step's
part of the stream-B buffer), then its jobs' B words. Everything but the map slots is
written and flushed once, at load; per frame the host writes the network input into step
0's map slot (both halves of a split one, each value once) and flushes that slot only.

The transfers themselves are the kernel driver's (:class:`kcnn.overlay.driver.KcnnIP`,
pynq's idiom: the ``DefaultIP`` bound by VLNV carries the IP's methods): this module lays
out the buffers, checks answers and recovers. Per step the host makes exactly the register
accesses ``kcnn.estimate`` counts
(``STEP_ACCESSES`` + ``STREAM_B_ACCESSES``): it arms the answer channel (S2MM address and
length), starts the weight DMA (address and length) when the step has stream-B words,
starts stream A (address and length), reads the S2MM status until it sees the end, and
reads the S2MM length once. It writes the DMA registers itself, because
``channel.transfer()`` costs five accesses and ``wait()`` has no deadline; the channels are
started once at load, and the kernel runs in auto-restart mode (``CTRL = 0x81`` once), so
no step pays for ``ap_start``. Every wait has a deadline. A short answer is read back and
its trailer names the job and the status; the intermediate trailers need no read when the
length is right, because a refused step always answers fewer words (a step's last job
answers at least one word, checked at load). After any fault the next run resets both
DMAs, reloads the overlay, starts the channels, re-arms auto-restart and probes again, and
says so.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from kcnn.config import ARITHMETIC_CONTRACT, BUILD_PARAMETERS
from kcnn.errors import KcnnError
from kcnn.host.hwh import register_offset
from kcnn.model import Model
from kcnn.protocol import INFO_WORDS, MAGIC, StepFault, check_answer, probe_step
from kcnn.runner import GraphRunner, StepFabric
from kcnn.tiling import Step

WORD_BYTES = 8
#: AXI DMA status register bits (PG021): halted, idle and the three error kinds.
DMASR_HALTED = 0x1
DMASR_IDLE = 0x2
DMASR_ERRORS = {0x10: "DMA internal error", 0x20: "DMA slave error", 0x40: "DMA decode error"}
DMASR_ERROR_MASK = sum(DMASR_ERRORS)
#: DMA control register: run/stop, and the soft reset (whole DMA, self-clearing).
DMACR_RUN = 0x1
DMACR_RESET = 0x4
#: PG021's register offsets, used when a hand-off file omits the DMA's register list.
PG021_OFFSETS = {
    "MM2S_DMACR": 0x00,
    "MM2S_DMASR": 0x04,
    "MM2S_SA": 0x18,
    "MM2S_SA_MSB": 0x1C,
    "MM2S_LENGTH": 0x28,
    "S2MM_DMACR": 0x30,
    "S2MM_DMASR": 0x34,
    "S2MM_DA": 0x48,
    "S2MM_DA_MSB": 0x4C,
    "S2MM_LENGTH": 0x58,
}
#: The probe's answer: the info words and a trailer.
PROBE_ANSWER_WORDS = INFO_WORDS + 1
#: A PL clock further than this from kcnn.json's CLOCK_MHZ is reported.
CLOCK_TOLERANCE = 0.01


class BoardFault(KcnnError):
    """The DMA reported an error or stopped; the next run recovers."""


def decode_dmasr(value: int) -> str:
    """A DMA status register in words and any error bits: halted, idle (the last transfer
    ended), or active (a transfer in flight, or none since the channel started: in simple
    mode the idle bit rises only at the end of a transfer)."""
    state = "halted" if value & DMASR_HALTED else ("idle" if value & DMASR_IDLE else "active")
    errors = [text for bit, text in DMASR_ERRORS.items() if value & bit]
    return f"{state}{''.join(', ' + e for e in errors)} (DMASR 0x{value:08X})"


class Channel:
    """One direction of one AXI DMA, driven through its registers (simple mode)."""

    def __init__(self, dma, direction: str, label: str, file=None):
        self.dma, self.label = dma, label
        # The registers as pynq's own array view (a numpy view of the mapped page on the
        # board): one indexing per access, several times cheaper from Python than
        # MMIO.read/write (kcnn.estimate.REGISTER_ACCESS_S), as PYNQ's maintainers advise.
        self.registers = dma.mmio.array
        prefix = "MM2S" if direction == "send" else "S2MM"
        params = dma.description.get("parameters") or {}
        registers = dma.description.get("registers") or {}
        where = f"the {label} ({dma.description.get('fullpath', '?')})"
        if params.get(f"c_include_{prefix.lower()}", "1") != "1":
            raise KcnnError(f"{where} has no {prefix} channel", file=file, field="dma")
        if params.get("c_include_sg", "0") != "0":
            raise KcnnError(
                f"{where} is in scatter-gather mode; the overlay needs simple mode "
                "(c_include_sg 0)",
                file=file,
                field="dma",
            )
        names = ("DMACR", "DMASR", "SA" if prefix == "MM2S" else "DA", "LENGTH")
        offsets = []
        for name in (f"{prefix}_{n}" for n in names):
            if registers:
                offsets.append(register_offset(dma.description, name, file))
            else:
                offsets.append(PG021_OFFSETS[name])
        self.dmacr, self.dmasr, self.address, self.length = offsets
        self.address_msb = self.address + 4
        width = int(params.get(f"c_m_axi_{prefix.lower()}_data_width", "64")) // 8
        dre = params.get(f"c_include_{prefix.lower()}_dre", "0") == "1"
        # Without the realignment engine the address must be a multiple of the memory-map
        # width (PG021); the buffers' words are 8 bytes, so a 64-bit DMA always fits.
        self.align = 1 if dre else width
        self.max_bytes = int(dma.buffer_max_size)
        self.wide = int(params.get("c_addr_width", "32")) > 32

    def _read(self, offset: int) -> int:
        return int(self.registers[offset >> 2])

    def _write(self, offset: int, value: int) -> None:
        self.registers[offset >> 2] = int(value)

    def status(self) -> int:
        return self._read(self.dmasr)

    def received(self) -> int:
        return self._read(self.length)

    def start(self, address: int, nbytes: int) -> None:
        """Two register writes: the transfer begins with the length."""
        self._write(self.address, int(address) & 0xFFFFFFFF)
        self._write(self.length, nbytes)

    def check(self, address: int, nbytes: int, where: str) -> None:
        """The byte count and address the DMA can take, or an error naming the transfer
        (a length beyond ``c_sg_length_width`` bits would silently wrap in the register)."""
        if nbytes <= 0:
            raise KcnnError(f"{where}: a {self.label} transfer of {nbytes} bytes", field="dma")
        if nbytes > self.max_bytes:
            raise KcnnError(
                f"{where}: the {self.label} transfer of {nbytes} bytes exceeds the DMA's "
                f"maximum transfer of {self.max_bytes} bytes (c_sg_length_width)",
                field="dma",
            )
        if address % self.align:
            raise KcnnError(
                f"{where}: the {self.label} address 0x{address:X} is not aligned to the "
                f"DMA's {self.align}-byte memory-map width",
                field="dma",
            )
        if address >> 32 and not self.wide:
            raise KcnnError(
                f"{where}: the {self.label} address 0x{address:X} is above the DMA's 32-bit "
                "address range",
                field="dma",
            )

    def run(self) -> None:
        self._write(self.dmacr, DMACR_RUN)
        if self.wide:
            # Buffers sit below 4 GB on the Zynq-7000: the upper address half stays 0.
            self._write(self.address_msb, 0)

    def reset(self) -> None:
        """Soft reset of this channel's whole DMA (both directions)."""
        self._write(self.dmacr, DMACR_RESET)

    def resetting(self) -> bool:
        return bool(self._read(self.dmacr) & DMACR_RESET)


@dataclass(frozen=True)
class Transfer:
    """The DMA transfers of one step: stream A, stream B (0 bytes when none) and the
    answer, as physical addresses and byte counts; ``where`` names the step in errors."""

    where: str
    a_address: int
    a_bytes: int
    b_address: int
    b_bytes: int
    answer_address: int
    answer_bytes: int


@dataclass
class _StepIO:
    """A step's fixed transfers (addresses and byte counts never change) and the buffer
    view its answer lands in (the next step's map slot, or the output)."""

    step: Step
    transfer: Transfer
    answer: object  # PynqBuffer view


class BoardEngine:
    """Runs a model's steps on the overlay: the device of a :class:`kcnn.runner.StepFabric`,
    which one :class:`kcnn.runner.GraphRunner` drives (the host ops run on the ARM).

    Parameters
    ----------
    model
        The loaded ``.kcnn``.
    ip
        The kernel's driver (:class:`kcnn.overlay.driver.KcnnIP`), connected to the DMAs
        that feed and drain it (``KCNNOverlay.connected_kernel``); it makes the transfers.
    overlay_config
        ``kcnn.json`` as :func:`kcnn.overlay.read_overlay_config` returns it (``params``
        are the overlay's :class:`~kcnn.config.BuildParams`).
    reload
        Reloads the bitstream after a fault (``KCNNOverlay.download``).
    pl_clock_mhz
        The PL clock the PS registers give (``pynq.Clocks.fclk0_mhz``), checked against
        ``CLOCK_MHZ``.
    """

    def __init__(
        self,
        model: Model,
        ip,
        overlay_config: dict,
        *,
        reload=None,
        source=None,
        pl_clock_mhz: float | None = None,
    ):
        self.ip = ip
        self.reload = reload
        self.source = source
        self.overlay_config = overlay_config
        self._buffers: list = []
        self._fault: str | None = None
        self.model = model
        self.params = overlay_config["params"]
        self.fabric = StepFabric(model, self.params, self)
        self.plan = self.fabric.plan
        self.runner = GraphRunner(model, self.fabric)
        self._check_plan()
        self._check_clock(pl_clock_mhz)
        try:
            self._lay_out()
            self.ip.start_channels()
            self.ip.start()
            self.info = self.probe()
        except BaseException:
            self.close()  # a refused overlay must not keep contiguous memory
            raise

    # ---- load -------------------------------------------------------------------------
    def _check_plan(self) -> None:
        steps = self.plan.steps
        for prev, step in zip(steps[:-1], steps[1:], strict=True):
            if not step.host_in and prev.out_words != step.map_words:
                raise KcnnError(
                    f"step {prev.index} answers {prev.out_words} words but step {step.index} "
                    f"reads a map of {step.map_words}: the answer cannot land in its map slot",
                    layer=step.layer.name,
                    field="map_words",
                )
        for step in steps:
            # A refused job drops its own answer and every later job's: the answer is
            # shorter (and the refusal seen from its length alone) when the jobs from any
            # job on answer at least one word, that is when the last job does.
            if step.jobs and step.jobs[-1].out_words < 1:
                raise KcnnError(
                    f"step {step.index}: its last job answers no word",
                    layer=step.layer.name,
                    field="out_words",
                )
            if step.map_words_b and step.index and not step.host_in:
                # A map split over A and B is written by the host: no answer lands in it.
                raise KcnnError(
                    f"step {step.index}: its map is split over streams A and B, so the answer "
                    "before it cannot land in it",
                    layer=step.layer.name,
                    field="map_words",
                )
            if step.stream_b_words and self.ip.stream_b is None:
                raise KcnnError(
                    f"step {step.index} sends {step.stream_b_words} words on stream B but the "
                    "overlay has no weights DMA (kcnn.json says STREAMS="
                    f"{self.params.STREAMS})",
                    file=self.source,
                    layer=step.layer.name,
                    field="STREAMS",
                )

    def _check_clock(self, measured: float | None) -> None:
        want = float(self.params.CLOCK_MHZ)
        if measured is not None and abs(measured - want) > CLOCK_TOLERANCE * want:
            warnings.warn(
                f"kcnn board: the PL clock runs at {measured:.3f} MHz but kcnn.json says "
                f"CLOCK_MHZ={want:g}; the timing report and the estimate assume {want:g} MHz",
                RuntimeWarning,
                stacklevel=3,
            )

    def _allocate(self, words: int):
        import pynq

        buffer = pynq.allocate(
            shape=(max(1, words),), dtype=np.uint64, target=self.ip.buffer_device
        )
        self._buffers.append(buffer)
        return buffer

    def _lay_out(self) -> None:
        steps = self.plan.steps
        probe = probe_step()
        self._probe = self._allocate(probe.size + PROBE_ANSWER_WORDS)
        self._probe[: probe.size] = probe
        self._probe.flush()
        self._step_buffers, self._map_at = [], []
        for step in steps:
            # Stream A with an empty map: the map slot is filled per frame (by the host for
            # step 0, by the previous step's answer for the others).
            words = step.stream_a(
                np.zeros(step.map_words, np.uint64), np.zeros(step.shortcut_words, np.uint64)
            )
            buffer = self._allocate(words.size)
            buffer[:] = words
            buffer.flush()
            self._step_buffers.append(buffer)
            self._map_at.append(step.head.size)
        self._output = self._allocate(self.plan.last.out_words + 1)
        # Every step's stream-B words, back to back in one buffer (each step's joined once):
        # its map's B share (a slot filled per frame, like the map slot on A), its jobs'.
        b_parts = [step.stream_b(np.zeros(step.map_words, np.uint64)) for step in steps]
        # where each step's part starts in it (its map's B share first)
        self._map_b_at = np.cumsum([0] + [part.size for part in b_parts[:-1]]).tolist()
        b_words = sum(part.size for part in b_parts)
        self._weights = self._allocate(b_words) if b_words else None
        if self._weights is not None:
            self._weights[:] = np.concatenate(b_parts)
            self._weights.flush()
        self._io: list[_StepIO] = []
        for n, step in enumerate(steps):
            buffer = self._step_buffers[n]
            answer_words = step.out_words + 1
            if n + 1 < len(steps) and not steps[n + 1].host_in:
                nxt, at = self._step_buffers[n + 1], self._map_at[n + 1]
                answer = nxt[at : at + answer_words]
                answer_address = nxt.physical_address + WORD_BYTES * at
            elif n + 1 < len(steps):
                # The host makes the next map (a band, or bands joined): the answer lands in
                # a buffer of its own, which the host reads.
                answer = self._allocate(answer_words)
                answer_address = answer.physical_address
            else:
                answer, answer_address = self._output[:answer_words], self._output.physical_address
            b_bytes = WORD_BYTES * b_parts[n].size
            transfer = Transfer(
                f"step {step.index} (layer {step.layer.name!r})",
                buffer.physical_address,
                WORD_BYTES * buffer.size,
                (self._weights.physical_address + WORD_BYTES * self._map_b_at[n]) if b_bytes else 0,
                b_bytes,
                answer_address,
                WORD_BYTES * answer_words,
            )
            self.ip.check_transfer(transfer)
            self._io.append(_StepIO(step, transfer, answer))

    def map_slot(self, step: Step):
        """The writable map section of ``step``'s persistent buffer; for a map split over
        the streams the pair ``(A slot, B slot)``: its even words in the step's buffer, its
        odd words in the stream-B buffer (``kcnn.protocol.pack_f32`` fills both)."""
        at = self._map_at[step.index]
        slot_a = self._step_buffers[step.index][at : at + step.map_words_a]
        if not step.map_words_b:
            return slot_a
        at_b = self._map_b_at[step.index]
        return slot_a, self._weights[at_b : at_b + step.map_words_b]

    def shortcut_slot(self, step: Step):
        """The writable shortcut section of ``step``'s buffer (after the reserved word)."""
        at = self._map_at[step.index] + step.map_words_a + 1
        return self._step_buffers[step.index][at : at + step.shortcut_words]

    def close(self) -> None:
        """Free every buffer this engine allocated (also done by ``Accelerator.close``)."""
        while self._buffers:
            self._buffers.pop().freebuffer()

    @property
    def buffers(self) -> list:
        """The engine's contiguous buffers (probe, one per step, output, stream B)."""
        return list(self._buffers)

    def step_buffer(self, index: int):
        """Step ``index``'s persistent buffer (its stream A, map slot included)."""
        return self._step_buffers[index]

    def map_offset(self, index: int) -> int:
        """The word where step ``index``'s map slot starts in its buffer."""
        return self._map_at[index]

    def run(self, x: np.ndarray, trace: bool = False):
        return self.runner.run(x, trace)

    # ---- the device --------------------------------------------------------------------
    def begin_frame(self) -> None:
        if self._fault is not None:
            self.recover()

    def execute(self, step: Step, map_words, shortcut, need: bool):
        try:
            if shortcut is not None:
                self._write_slot(step, self.shortcut_slot(step), shortcut, "shortcut")
            return self._execute(step, map_words, need)
        except BaseException as exc:
            if self._fault is None:
                self._fault = f"{type(exc).__name__}: {exc}"
            raise

    def _write_slot(self, step: Step, slot, words: np.ndarray, what: str) -> None:
        """The host's words into a section of ``step``'s buffer, flushed for the DMA."""
        if words.size != slot.size:
            raise KcnnError(
                f"step {step.index}: the host made {words.size} {what} words, its {what} "
                f"slot holds {slot.size}",
                layer=step.layer.name,
                field=what,
            )
        if not np.shares_memory(words, slot):
            slot[:] = words
        slot.flush()

    def _execute(self, step: Step, map_words: np.ndarray | None, need: bool):
        io = self._io[step.index]
        if map_words is not None:
            slots = self.map_slot(step)
            if isinstance(slots, tuple):
                # The host's words as the two halves (pack_f32 wrote them in place), or a
                # whole section split here.
                parts = map_words if isinstance(map_words, tuple) else step.split_map(map_words)
                for slot, part in zip(slots, parts, strict=True):
                    self._write_slot(step, slot, part, "map")
            else:
                self._write_slot(step, slots, map_words, "map")
        # The transfers were checked once at load (_lay_out): their numbers never change.
        received = self.ip.transfer(io.transfer)
        if received != io.transfer.answer_bytes:
            self._short_answer(io, received)
        if not need:
            return None
        io.answer.invalidate()
        words = io.transfer.answer_bytes // WORD_BYTES
        return np.array(check_answer(step, io.answer, words), np.uint64)

    def _short_answer(self, io: _StepIO, received: int) -> None:
        """An answer of the wrong length: read it back and let its trailer name the job and
        the status (check_answer raises)."""
        where, expected = io.transfer.where, io.transfer.answer_bytes
        if received % WORD_BYTES:
            raise BoardFault(
                f"{where}: {received} answer bytes, not a whole number of words "
                f"(expected {expected})",
                layer=io.step.layer.name,
                field="answer",
            )
        words = received // WORD_BYTES
        io.answer.invalidate()
        check_answer(io.step, np.array(io.answer, np.uint64), min(words, io.answer.size))
        raise StepFault(  # check_answer accepted a length it should not have
            f"{where}: {words} answer words, expected {io.answer.size}",
            layer=io.step.layer.name,
            field="answer",
        )

    # ---- probe, recovery --------------------------------------------------------------
    def probe(self) -> dict:
        """The kernel's probe answer; refuse an overlay whose answer differs from
        ``kcnn.json`` or from this release's arithmetic contract."""
        info = self.ip.probe(self._probe, self.source)
        config = self.overlay_config
        checks = [("magic", info["magic"], MAGIC, MAGIC)]
        for key in ARITHMETIC_CONTRACT:
            checks.append((key, info[key], config["contract"].get(key), ARITHMETIC_CONTRACT[key]))
        for key in BUILD_PARAMETERS:
            declared = config["build"].get(key)
            checks.append((key, info[key], declared, getattr(self.params, key)))
        wrong = [
            f"{key}: kernel {got}, kcnn.json {declared}, this release {want}"
            for key, got, declared, want in checks
            if not got == declared == want
        ]
        if wrong:
            raise KcnnError(
                "the overlay's kernel does not match its kcnn.json or this release of kcnn "
                f"(refused): {'; '.join(wrong)}",
                file=self.source,
                field="probe",
            )
        return info

    def recover(self) -> None:
        """After a fault: reset both DMAs, reload the overlay, start the channels, re-arm
        auto-restart and probe again; says so with a RuntimeWarning."""
        reason = self._fault
        warnings.warn(
            f"kcnn board: recovering after the previous fault ({reason}): resetting the DMAs"
            + (", reloading the overlay" if self.reload is not None else "")
            + ", restarting the channels and the kernel and probing it again",
            RuntimeWarning,
            stacklevel=3,
        )
        self.ip.reset_dmas()
        if self.reload is not None:
            self.reload()
        self.ip.start_channels()
        self.ip.start()
        self.info = self.probe()
        self._fault = None

    def status(self) -> dict:
        """What the registers say now (README "On the board", check 2)."""
        return self.ip.status()
