"""The ``board`` back-end: KCNN jobs through the AXI DMA of the PYNQ-Z2 overlay.

NOT RUN ON HARDWARE. No board was available where this was written. CI runs this module
with the real pynq classes (``pynq.lib.dma.DMA``, ``DefaultIP``, ``MMIO``, ``allocate``) on a
fake ``pynq.Device`` whose kernel is the HLS top's C-simulation (``tests/fake_board.py``);
see README "On the board" for what that does and does not prove.

Per job (docs/job-format.md): arm the receive channel for the expected output bytes, start
the kernel, send the job's constant part (packed once at load into one persistent buffer),
then its inputs (a per-frame buffer reused for every job), and poll. ``DMA.wait()`` is never
used: it has no timeout. Every wait polls status bits against a deadline; a job is
complete when the receive channel is idle, its LENGTH register (read here: pynq sets
``transferred`` only inside ``wait()``) equals the expected byte count and the kernel
reports ``ap_idle`` (``ap_done`` is cleared on read). After a timeout or any failed job the
next run first resets the DMA, reloads the overlay and probes again, and says so.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from kcnn.config import ARITHMETIC_CONTRACT, BUILD_DEFAULTS, BUILD_PARAMETERS
from kcnn.errors import KcnnError
from kcnn.host.hwh import find_ip, register_offset
from kcnn.jobs import (
    INFO_WORDS,
    MAGIC,
    PackedJob,
    decode_info,
    decode_status,
    probe_job,
    status_word,
)
from kcnn.kfile import KcnnModel
from kcnn.overlay import DMA_VLNV_PREFIX, IP_VLNV
from kcnn.sim.streaming import StreamingEngine

#: AXI DMA status register bits (PG021): halted, idle, and the three error kinds.
DMASR_HALTED = 0x1
DMASR_IDLE = 0x2
DMASR_ERRORS = {0x10: "DMA internal error", 0x20: "DMA slave error", 0x40: "DMA decode error"}
#: MM2S_DMACR soft reset: resets the whole DMA, self-clearing.
DMACR_RESET = 0x4
#: HLS ap_ctrl_hs control register bits.
AP_START = 0x1
AP_IDLE = 0x4
WORD_BYTES = 8


class BoardFault(KcnnError):
    """A job failed on the board (status, byte count or DMA error); the next run recovers."""


def _allocate(words: int, device):
    import pynq

    return pynq.allocate(shape=(max(1, words),), dtype=np.uint64, target=device)


class BoardEngine(StreamingEngine):
    """Runs a model's fabric layers on the overlay, everything else on the ARM.

    Parameters
    ----------
    model
        The loaded ``.kcnn``.
    dma
        The overlay's ``pynq.lib.dma.DMA`` (simple mode).
    ip
        The KCNN IP (a ``pynq.DefaultIP``): its ``read``/``write`` reach the registers.
    overlay_config
        ``kcnn.json`` of the overlay as :func:`kcnn.overlay.read_overlay_config` returns it:
        its ``contract`` and ``build`` parameters.
    hwh_ips
        The overlay's ``.hwh`` as :func:`kcnn.host.hwh.read_hwh` reads it: register offsets
        and DMA parameters come from here.
    reload
        Called to reload the bitstream after a fault (``KCNNOverlay.download``).
    timeout_s
        Deadline of each wait.
    """

    def __init__(
        self,
        model: KcnnModel,
        dma,
        ip,
        overlay_config: dict,
        hwh_ips: dict,
        *,
        reload=None,
        timeout_s: float = 5.0,
        source=None,
    ):
        self.dma = dma
        self.ip = ip
        self.source = source
        self.reload = reload
        self.timeout_s = float(timeout_s)
        self.overlay_config = overlay_config
        build = overlay_config["build"]
        params = {**BUILD_DEFAULTS, **{key: int(build[key]) for key in BUILD_PARAMETERS}}
        _, dma_hwh = find_ip(hwh_ips, DMA_VLNV_PREFIX, source)
        _, ip_hwh = find_ip(hwh_ips, IP_VLNV, source)
        self._dma_regs = {
            name: register_offset(dma_hwh, name, source)
            for name in ("MM2S_DMACR", "MM2S_DMASR", "S2MM_DMASR", "S2MM_LENGTH")
        }
        self._ctrl = register_offset(ip_hwh, "CTRL", source)
        self._status = register_offset(ip_hwh, "status", source)
        p = dma_hwh["parameters"]
        self._align = {
            "send": int(p["c_m_axi_mm2s_data_width"]) // 8,
            "recv": int(p["c_m_axi_s2mm_data_width"]) // 8,
        }
        self._fault: str | None = None
        self._buffers: list = []
        super().__init__(model, params)
        self._allocate_buffers()
        try:
            self.info = self.probe()
        except BaseException:
            self.close()  # a refused overlay must not keep contiguous memory
            raise

    # ---- buffers ---------------------------------------------------------------------
    def _allocate_buffers(self) -> None:
        jobs = [pj for packed in self.packed.values() for pj in packed.jobs]
        self._probe = probe_job()
        total = self._probe.size + sum(pj.constant.size for pj in jobs)
        constant = self._new_buffer(total)
        self._offsets: dict[int, int] = {}
        constant[: self._probe.size] = self._probe
        at = self._probe.size
        for pj in jobs:
            constant[at : at + pj.constant.size] = pj.constant
            self._offsets[id(pj)] = at
            at += pj.constant.size
        self._constant = constant
        self._inputs = self._new_buffer(max((pj.input_words for pj in jobs), default=1))
        outputs = max([INFO_WORDS] + [pj.output_words for pj in jobs])
        self._outputs = self._new_buffer(outputs)

    def _new_buffer(self, words: int):
        buffer = _allocate(words, self.dma.device)
        self._buffers.append(buffer)
        return buffer

    def close(self) -> None:
        """Free every buffer this engine allocated (also done by ``Accelerator.close``)."""
        while self._buffers:
            self._buffers.pop().freebuffer()

    # ---- registers and polling -----------------------------------------------------------
    def _dmasr(self, channel: str) -> int:
        return self.dma.mmio.read(
            self._dma_regs["MM2S_DMASR" if channel == "send" else "S2MM_DMASR"]
        )

    def _received_bytes(self) -> int:
        return self.dma.mmio.read(self._dma_regs["S2MM_LENGTH"])

    def _check_dma_errors(self, where: str) -> None:
        for channel in ("send", "recv"):
            status = self._dmasr(channel)
            errors = [text for bit, text in DMASR_ERRORS.items() if status & bit]
            if errors:
                name = "MM2S (send)" if channel == "send" else "S2MM (receive)"
                self._fault = f"{', '.join(errors)} on {name}"
                raise BoardFault(
                    f"{where}: {' and '.join(errors)} on the {name} channel "
                    f"(DMASR 0x{status:08X}); the DMA is reset and the overlay reloaded "
                    "before the next run"
                )

    def _poll(self, ready, where: str, what: str, sent: int, expected: int) -> None:
        deadline = time.monotonic() + self.timeout_s
        spins = 0
        while True:
            self._check_dma_errors(where)
            if ready():
                return
            if time.monotonic() > deadline:
                # LENGTH holds the received count only once the channel is idle again.
                received = (
                    f"received {self._received_bytes()} of {expected} expected bytes"
                    if self._idle("recv")
                    else f"receive channel still busy with {expected} bytes armed"
                )
                self._fault = f"timeout while waiting for {what}"
                raise TimeoutError(
                    f"{where}: {what} did not happen within {self.timeout_s:g} s "
                    f"(sent {sent} bytes, {received}); "
                    "the DMA is reset and the overlay reloaded before the next run"
                )
            spins += 1
            if spins > 1000:  # long jobs: stop hogging the ARM core
                time.sleep(5e-5)

    def _transfer(self, channel: str, buffer, start_words: int, words: int, where: str):
        nbytes = words * WORD_BYTES
        start = start_words * WORD_BYTES
        if nbytes > self.dma.buffer_max_size:
            raise KcnnError(
                f"{where}: {nbytes} bytes exceed the DMA's maximum transfer of "
                f"{self.dma.buffer_max_size} bytes (c_sg_length_width)",
                field="job",
            )
        address = buffer.physical_address + start
        if address % self._align[channel]:
            raise KcnnError(
                f"{where}: buffer address 0x{address:X} is not aligned to the DMA's "
                f"{self._align[channel]}-byte memory-map width",
                field="job",
            )
        dma_channel = self.dma.sendchannel if channel == "send" else self.dma.recvchannel
        dma_channel.transfer(buffer, start=start, nbytes=nbytes)

    def _idle(self, channel: str) -> bool:
        return bool(self._dmasr(channel) & DMASR_IDLE)

    def _kernel_idle(self) -> bool:
        return bool(self.ip.read(self._ctrl) & AP_IDLE)

    # ---- one job ---------------------------------------------------------------------
    def _run(self, constant_at: int, constant_words: int, inputs, out_words: int, where: str):
        """One job on the fabric; returns the output words (a copy)."""
        if self._fault is not None:
            self.recover()
        expected = out_words * WORD_BYTES
        sent = constant_words * WORD_BYTES
        self._transfer("recv", self._outputs, 0, out_words, where)
        self.ip.write(self._ctrl, AP_START)
        self._transfer("send", self._constant, constant_at, constant_words, where)
        self._poll(lambda: self._idle("send"), where, "the constant part's send", sent, expected)

        # A bad job is answered after its constant part: one status word, then the kernel
        # ends and reads no more, so the inputs are not sent; if the answer comes after
        # they were, their send never completes and the short answer ends the wait.
        def answered_short() -> bool:
            return self._idle("recv") and self._received_bytes() < expected

        if inputs is not None and inputs.size and not answered_short():
            self._inputs[: inputs.size] = inputs
            self._transfer("send", self._inputs, 0, int(inputs.size), where)
            sent += inputs.size * WORD_BYTES
            self._poll(
                lambda: self._idle("send") or answered_short(),
                where,
                "the inputs' send",
                sent,
                expected,
            )
        self._poll(lambda: self._idle("recv"), where, "the receive channel's end", sent, expected)
        got = self._received_bytes()
        if got != expected:
            self._fault = f"short output ({got} of {expected} bytes)"
            self._outputs.invalidate()
            # The answer word names the status; else the status register (same encoding).
            word = int(self._outputs[0]) if got == WORD_BYTES else None
            name = decode_status(word) if word is not None else None
            name = name or decode_status(status_word(self.ip.read(self._status)))
            raise BoardFault(
                f"{where}: received {got} bytes, expected {expected}; kernel status {name}"
            )
        self._poll(self._kernel_idle, where, "the kernel's ap_idle", sent, expected)
        self._outputs.invalidate()
        return np.array(self._outputs[:out_words], dtype=np.uint64)

    def execute(self, pj: PackedJob, inputs: np.ndarray, layer: str, image: int) -> np.ndarray:
        where = f"layer {layer!r} job {pj.fields['job_index']}"
        return self._run(self._offsets[id(pj)], pj.constant.size, inputs, pj.output_words, where)

    # ---- probe and recovery --------------------------------------------------------------
    def probe(self) -> dict:
        """Send the probe job; refuse an overlay whose answer differs from ``kcnn.json`` or
        from this release's arithmetic contract."""
        answer = self._run(0, self._probe.size, None, INFO_WORDS, "probe job")
        info = decode_info(answer)
        contract = self.overlay_config.get("contract", {})
        build = self.overlay_config.get("build", {})
        checks = [("magic", info["magic"], MAGIC, MAGIC)]
        for key in ("K_MAX", "J_MAX", "ACC_BITS", "bw", "ba", "protocol"):
            checks.append((key, info[key], contract.get(key), ARITHMETIC_CONTRACT[key]))
        for key in BUILD_PARAMETERS:
            checks.append((key, info[key], build.get(key), self.params[key]))
        wrong = [
            f"{key}: kernel {got}, kcnn.json {declared}, expected {want}"
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

    def reset_dma(self) -> None:
        """Soft-reset the whole AXI DMA and start both channels again."""
        mmio = self.dma.mmio
        mmio.write(self._dma_regs["MM2S_DMACR"], DMACR_RESET)
        deadline = time.monotonic() + self.timeout_s
        while mmio.read(self._dma_regs["MM2S_DMACR"]) & DMACR_RESET:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the DMA soft reset did not finish within {self.timeout_s:g} s")
        self.dma.sendchannel.start()
        self.dma.recvchannel.start()

    def recover(self) -> None:
        """After a fault: reset the DMA, reload the overlay, probe again; says so."""
        reason, self._fault = self._fault, None
        warnings.warn(
            f"kcnn board: recovering after the previous fault ({reason}): resetting the DMA"
            + (", reloading the overlay" if self.reload is not None else "")
            + " and probing the kernel again",
            RuntimeWarning,
            stacklevel=3,
        )
        if self.reload is not None:
            self.reload()
        self.reset_dma()
        self.info = self.probe()
