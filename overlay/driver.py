"""pynq classes of the KCNN overlay. NOT RUN ON HARDWARE (see README "On the board").

Importing this module registers :class:`KcnnIP` for the HLS IP's VLNV (pynq's ``RegisterIP``
metaclass does it at class definition), so ``KCNNOverlay`` binds it before the overlay is
built.
"""

from __future__ import annotations

from pynq import Clocks, DefaultIP, Overlay

from kcnn.errors import KcnnError
from kcnn.host.hwh import scalar_output, stream_connections
from kcnn.overlay import (
    DMA_VLNV_PREFIX,
    IP_VLNV,
    check_timing,
    find_overlay,
    read_overlay_config,
)

#: ap_ctrl_hs control register bits (Vitis HLS s_axilite).
AP_START, AP_DONE, AP_IDLE, AP_READY, AUTO_RESTART = 0x1, 0x2, 0x4, 0x8, 0x80
#: The kernel's AXI-Stream ports (hls/KERNEL_SPEC.md) and the DMA's.
KERNEL_IN_A, KERNEL_IN_B, KERNEL_OUT = "in_a", "in_b", "out_stream"
DMA_MM2S, DMA_S2MM = "M_AXIS_MM2S", "S_AXIS_S2MM"


class KcnnIP(DefaultIP):
    """The ``kcnn_top`` HLS IP: AXI-Lite control (``bundle=CTRL``, ``ap_ctrl_hs``), the info
    words and the status register.

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

    def engine(self, model, timeout_s: float = 5.0):
        """A :class:`kcnn.host.board.BoardEngine` for ``model`` on this overlay."""
        from kcnn.host.board import BoardEngine

        try:
            clock = Clocks.fclk0_mhz
        except Exception:  # the check is a warning; a clock driver that fails must not stop
            clock = None
        return BoardEngine(
            model,
            self.driver(self.jobs_dma_name),
            self._weights(),
            self.kernel,
            self.config,
            reload=self.download,
            timeout_s=timeout_s,
            source=self.files.json,
            pl_clock_mhz=clock,
        )

    def status(self) -> dict:
        """The kernel's and the DMAs' registers in words (README "On the board", check 2)."""
        from kcnn.host.board import Channel, board_status

        jobs = self.driver(self.jobs_dma_name)
        channels = [
            Channel(jobs, "send", "stream A (jobs DMA, MM2S)"),
            Channel(jobs, "recv", "answer channel (jobs DMA, S2MM)"),
        ]
        if self.weights_dma_name is not None:
            channels.append(Channel(self._weights(), "send", "stream B (weights DMA, MM2S)"))
        return board_status(self.kernel, channels)
