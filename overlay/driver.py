"""pynq classes of the KCNN overlay. NOT RUN ON HARDWARE (see README "On the board").

Importing this module registers :class:`KcnnIP` for the HLS IP's VLNV (pynq's ``RegisterIP``
metaclass does it at class definition), so ``KCNNOverlay`` binds it before the overlay is
built.
"""

from __future__ import annotations

import time

import numpy as np
from pynq import Clocks, DefaultIP, Overlay

from kcnn.config import ARITHMETIC_CONTRACT
from kcnn.errors import KcnnError
from kcnn.host.board import (
    DMASR_ERROR_MASK,
    DMASR_HALTED,
    DMASR_IDLE,
    PROBE_ANSWER_WORDS,
    WORD_BYTES,
    BoardFault,
    Channel,
    Transfer,
    decode_dmasr,
)
from kcnn.host.hwh import scalar_output, stream_connections
from kcnn.overlay import (
    DMA_VLNV_PREFIX,
    IP_VLNV,
    check_timing,
    find_overlay,
    read_overlay_config,
)
from kcnn.protocol import INFO_WORDS, decode_info, decode_trailer, probe_step, status_name

#: ap_ctrl_hs control register bits (Vitis HLS s_axilite).
AP_START, AP_DONE, AP_IDLE, AP_READY, AUTO_RESTART = 0x1, 0x2, 0x4, 0x8, 0x80
#: The kernel's AXI-Stream ports (hls/KERNEL_SPEC.md) and the DMA's.
KERNEL_IN_A, KERNEL_IN_B, KERNEL_OUT = "in_a", "in_b", "out_stream"
DMA_MM2S, DMA_S2MM = "M_AXIS_MM2S", "S_AXIS_S2MM"


class KcnnIP(DefaultIP):
    """The ``kcnn_top`` HLS IP: AXI-Lite control (``bundle=CTRL``, ``ap_ctrl_hs``), the info
    words and the status register; once :meth:`connect` has given it the DMAs that feed and
    drain it, the transfers of a step (:meth:`transfer`) and the probe (:meth:`probe`).

    Register offsets come from pynq's own parse of the ``.hwh`` (``description['registers']``),
    never from constants: Vitis HLS lays scalar outputs out differently from Vivado HLS, and
    reserves more control words when auto-restart counting or mailboxes are on.
    """

    bindto = [IP_VLNV]

    def __init__(self, description):
        super().__init__(description=description)
        registers = description.get("registers") or {}
        where = f"the KCNN IP ({description.get('fullpath', '?')})"
        if "CTRL" not in registers:
            raise KcnnError(f"{where} has no CTRL register in the .hwh", field="registers")
        self._ctrl = int(registers["CTRL"]["address_offset"])
        self._info = [scalar_output(registers, f"info{i}", 64, where)[0] for i in range(4)]
        self._status = scalar_output(registers, "status", 32, where)[0][0]

    def start(self) -> None:
        """Start the kernel in auto-restart mode: it runs step after step as the DMAs feed
        it, with no register access per step."""
        self.write(self._ctrl, AP_START | AUTO_RESTART)

    def stop(self) -> None:
        """Clear auto-restart: the kernel ends after the step it is in."""
        self.write(self._ctrl, 0)

    def control(self) -> dict:
        """The control register's bits (reading clears ``ap_done``)."""
        value = self.read(self._ctrl)
        return {
            "start": bool(value & AP_START),
            "done": bool(value & AP_DONE),
            "idle": bool(value & AP_IDLE),
            "ready": bool(value & AP_READY),
            "auto_restart": bool(value & AUTO_RESTART),
        }

    def info(self) -> list[int]:
        """``info0..3`` as the kernel last wrote them (0 before it has run)."""
        return [self.read(low) | self.read(high) << 32 for low, high in self._info]

    def status_register(self) -> int:
        return self.read(self._status)

    # ---- the DMAs ------------------------------------------------------------------------
    #: Deadline of every wait (``connect`` sets it).
    timeout_s = 5.0

    def connect(self, jobs_dma, weights_dma=None, *, timeout_s: float | None = None, source=None):
        """The DMAs the overlay found wired to this kernel in the ``.hwh``: ``jobs_dma``
        feeds ``in_a`` and takes ``out_stream``, ``weights_dma`` (or None) feeds ``in_b``;
        ``timeout_s``, when given, the deadline of every wait. Only reads the DMAs'
        descriptions; no register is written."""
        if timeout_s is not None:
            self.timeout_s = float(timeout_s)
        self.stream_a = Channel(jobs_dma, "send", "stream A (jobs DMA, MM2S)", source)
        self.answers = Channel(jobs_dma, "recv", "answer channel (jobs DMA, S2MM)", source)
        self.stream_b = None
        if weights_dma is not None:
            self.stream_b = Channel(weights_dma, "send", "stream B (weights DMA, MM2S)", source)
        #: Where the buffers these DMAs read and write must be allocated.
        self.buffer_device = jobs_dma.device
        return self

    @property
    def channels(self) -> list[Channel]:
        return [c for c in (self.stream_a, self.answers, self.stream_b) if c is not None]

    def check_transfer(self, t: Transfer) -> None:
        """Byte counts and addresses every channel of ``t`` can take (checked once, at load:
        a step's transfers never change)."""
        self.answers.check(t.answer_address, t.answer_bytes, t.where)
        self.stream_a.check(t.a_address, t.a_bytes, t.where)
        if t.b_bytes:
            self.stream_b.check(t.b_address, t.b_bytes, t.where)

    def transfer(self, t: Transfer) -> int:
        """One step: arm the answer channel, start stream B (if any) and stream A, wait for
        the answer's end; the bytes received. Exactly the register accesses
        ``kcnn.estimate`` counts per step."""
        self.answers.start(t.answer_address, t.answer_bytes)
        if t.b_bytes:
            self.stream_b.start(t.b_address, t.b_bytes)
        self.stream_a.start(t.a_address, t.a_bytes)
        self._wait_answer(t)
        return self.answers.received()

    def _wait_answer(self, t: Transfer) -> None:
        """Poll the S2MM status until the answer's end; the deadline starts only when the
        first read has not seen it, so the fast path costs one register read."""
        deadline = None
        spins = 0
        while True:
            status = self.answers.status()
            if status & (DMASR_ERROR_MASK | DMASR_HALTED):
                raise BoardFault(
                    f"{t.where}: the {self.answers.label} stopped: {decode_dmasr(status)}; "
                    f"{self._diagnose(t)}; the DMAs are reset and the overlay reloaded before "
                    "the next run",
                    field="dma",
                )
            if status & DMASR_IDLE:
                return
            now = time.monotonic()
            if deadline is None:
                deadline = now + self.timeout_s
            elif now > deadline:
                raise TimeoutError(
                    f"{t.where}: no answer within {self.timeout_s:g} s; {self._diagnose(t)}; "
                    "the DMAs are reset and the overlay reloaded before the next run"
                )
            spins += 1
            if spins > 1000:  # a long step: stop hogging the ARM core
                time.sleep(5e-5)

    def _diagnose(self, t: Transfer) -> str:
        """Byte counts and every channel's state, for an error message (fault path only)."""
        parts = [f"stream A {t.a_bytes} bytes ({decode_dmasr(self.stream_a.status())})"]
        if self.stream_b is not None:
            parts.append(f"stream B {t.b_bytes} bytes ({decode_dmasr(self.stream_b.status())})")
        status = self.answers.status()
        # LENGTH holds the received count only once the channel is idle again.
        got = f", {self.answers.received()} received" if status & DMASR_IDLE else ""
        parts.append(f"answer {t.answer_bytes} bytes expected{got} ({decode_dmasr(status)})")
        try:
            control = self.control()
            states = [k for k in ("idle", "auto_restart") if control.get(k)]
            parts.append("kernel " + (", ".join(states) or "busy"))
        except Exception as exc:  # the diagnosis must not hide the fault
            parts.append(f"kernel control unreadable ({exc})")
        return "; ".join(parts)

    def probe(self, buffer, source=None) -> dict:
        """Send the probe step from ``buffer`` (its words, then room for the answer) and
        return the info words it answers, decoded; refuse a kernel that answers otherwise
        or whose info registers differ from its answer."""
        answer_at = probe_step().size
        expected = WORD_BYTES * PROBE_ANSWER_WORDS
        t = Transfer(
            "the probe",
            buffer.physical_address,
            WORD_BYTES * answer_at,
            0,
            0,
            buffer.physical_address + WORD_BYTES * answer_at,
            expected,
        )
        self.check_transfer(t)
        received = self.transfer(t)
        answer = buffer[answer_at:]
        answer.invalidate()
        words = [int(w) for w in np.asarray(answer)]
        last = min(received // WORD_BYTES, PROBE_ANSWER_WORDS) - 1
        trailer = decode_trailer(words[last]) if last >= 0 else None
        if received != expected or trailer is None or trailer[0] != "OK":
            status = f"status {trailer[0]}" if trailer else "no trailer"
            raise KcnnError(
                f"the kernel answered the probe with {received} of {expected} bytes and "
                f"{status}: it is not a protocol-{ARITHMETIC_CONTRACT['protocol']} KCNN kernel "
                "(refused)",
                file=source,
                field="probe",
            )
        registers = self.info()
        if registers != words[:INFO_WORDS]:
            # The same values reach the host by two paths; a difference means the register
            # map pynq read from the .hwh is not the kernel's.
            raise KcnnError(
                "the kernel's info registers ("
                + ", ".join(f"0x{v:X}" for v in registers)
                + ") differ from its probe answer ("
                + ", ".join(f"0x{v:X}" for v in words[:INFO_WORDS])
                + "): the .hwh register map does not fit the kernel (refused)",
                file=source,
                field="registers",
            )
        return decode_info(words[:INFO_WORDS])

    def _poll(self, done, what: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not happen within {self.timeout_s:g} s")

    def start_channels(self) -> None:
        """Run every channel (simple mode: once, at load and after a reset)."""
        for channel in self.channels:
            channel.run()
        for channel in self.channels:
            self._poll(
                lambda c=channel: not c.status() & DMASR_HALTED, f"the {channel.label}'s start"
            )

    def reset_dmas(self) -> None:
        # A soft reset on either channel resets the whole DMA: one per DMA.
        for channel in (self.stream_a, self.stream_b):
            if channel is not None:
                channel.reset()
                self._poll(lambda c=channel: not c.resetting(), f"the {channel.label}'s reset")

    def status(self) -> dict:
        """The control bits, info words and status register, and every DMA channel's state,
        read from the registers (reading CTRL clears ``ap_done``; README "On the board",
        check 2)."""
        info = self.info()
        dmas = {}
        for channel in self.channels:
            value = channel.status()
            entry = {"dmasr": value, "state": decode_dmasr(value)}
            if channel is self.answers and value & DMASR_IDLE:
                entry["received_bytes"] = channel.received()
            dmas[channel.label] = entry
        return {
            "kernel": {
                **self.control(),
                "info": decode_info(info) if any(info) else None,
                "status": status_name(self.status_register()),
            },
            "dma": dmas,
        }


class KCNNOverlay(Overlay):
    """The KCNN bitstream on the PYNQ-Z2.

    ``path``: a ``.bit`` file or a folder with ``kcnn.bit``; ``None`` uses ``$KCNN_OVERLAY``,
    then the package folder. An overlay whose build did not meet timing is refused unless
    ``allow_timing_failure`` (see :func:`kcnn.overlay.check_timing`). The two DMAs are found
    by what they are wired to in the ``.hwh``: the one feeding the kernel's ``in_a`` and
    taking its ``out_stream`` (jobs and answers), and the one feeding ``in_b`` (weights).
    """

    def __init__(self, path=None, download: bool = True, allow_timing_failure=False, **kwargs):
        self.files = find_overlay(path)
        self.config = read_overlay_config(self.files.json)
        check_timing(self.config, self.files.json, allow_timing_failure)
        super().__init__(str(self.files.bit), download=download, **kwargs)
        self.kcnn_name = self._one_ip(IP_VLNV)
        links = stream_connections(self.files.hwh)
        self.jobs_dma_name = self._dma_on(links, KERNEL_IN_A, DMA_MM2S)
        answers = self._dma_on(links, KERNEL_OUT, DMA_S2MM)
        if answers != self.jobs_dma_name:
            raise KcnnError(
                f"the kernel's {KERNEL_IN_A} comes from {self.jobs_dma_name} but its "
                f"{KERNEL_OUT} goes to {answers}: stream A and the answers must share one DMA",
                file=self.files.hwh,
                field="dma",
            )
        self.weights_dma_name = None
        if self.config["params"].STREAMS == 2:
            self.weights_dma_name = self._dma_on(links, KERNEL_IN_B, DMA_MM2S)

    def _one_ip(self, vlnv: str) -> str:
        found = [name for name, d in self.ip_dict.items() if d.get("type") == vlnv]
        if len(found) != 1:
            raise KcnnError(
                f"the design must hold exactly one {vlnv}, found {', '.join(found) or 'none'}",
                file=self.files.hwh,
                field="ip",
            )
        return found[0]

    def _dma_on(self, links: dict, kernel_port: str, dma_port: str) -> str:
        peers = links.get((self.kcnn_name, kernel_port), set())
        dmas = [
            ip
            for ip, port in peers
            if port == dma_port
            and str(self.ip_dict.get(ip, {}).get("type", "")).startswith(DMA_VLNV_PREFIX)
        ]
        if len(dmas) != 1:
            raise KcnnError(
                f"the .hwh connects {'no' if not dmas else 'more than one'} AXI DMA "
                f"{dma_port} to {self.kcnn_name}/{kernel_port} (it is wired to "
                f"{', '.join(f'{i}/{p}' for i, p in sorted(peers)) or 'nothing'}); "
                f"kcnn.json says STREAMS={self.config['params'].STREAMS}",
                file=self.files.hwh,
                field="dma",
            )
        return dmas[0]

    def driver(self, name: str):
        """The driver pynq bound to IP ``name`` (a path through hierarchies)."""
        node = self
        for part in name.split("/"):
            node = getattr(node, part)
        return node

    @property
    def kernel(self) -> KcnnIP:
        return self.driver(self.kcnn_name)

    def _weights(self):
        return None if self.weights_dma_name is None else self.driver(self.weights_dma_name)

    def connected_kernel(self, timeout_s: float | None = None) -> KcnnIP:
        """The kernel's driver, given the DMAs the ``.hwh`` wires to it (and ``timeout_s``,
        when given: a status read keeps an engine's deadline)."""
        return self.kernel.connect(
            self.driver(self.jobs_dma_name),
            self._weights(),
            timeout_s=timeout_s,
            source=self.files.json,
        )

    def engine(self, model, timeout_s: float = 5.0):
        """A :class:`kcnn.host.board.BoardEngine` for ``model`` on this overlay."""
        from kcnn.host.board import BoardEngine

        try:
            clock = Clocks.fclk0_mhz
        except Exception:  # the check is a warning; a clock driver that fails must not stop
            clock = None
        return BoardEngine(
            model,
            self.connected_kernel(timeout_s),
            self.config,
            reload=self.download,
            source=self.files.json,
            pl_clock_mhz=clock,
        )

    def status(self) -> dict:
        """The kernel's and the DMAs' registers in words (README "On the board", check 2)."""
        return self.connected_kernel().status()
