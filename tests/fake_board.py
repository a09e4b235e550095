"""A stand-in for the PYNQ-Z2 at the outermost edge: a fake ``pynq.Device``.

Only the physical board is faked, and as strictly as the board behaves. The real pynq
classes (``Overlay``, ``MMIO``, ``DefaultIP``, ``pynq.lib.dma.DMA``, ``allocate``/``PynqBuffer``)
run on it; pynq's own parser reads the ``.hwh`` that :func:`write_overlay` writes, and so does
the fake: its register map, its DMAs and which DMA feeds which kernel port all come from
that file, so a driver that hard-codes an offset or picks the wrong DMA fails here too.

- **Registers.** The device declares ``REGISTER_RW``: every MMIO access comes through
  :meth:`FakeZynq.read_registers` / :meth:`FakeZynq.write_registers` and is counted
  (:attr:`FakeZynq.accesses`). Design registers start at their reset values.
- **AXI DMA (PG021, simple mode).** ``DMACR`` run/stop and the soft reset (whole DMA,
  self-clearing after one read); ``DMASR`` halted, idle, error and IOC bits; a transfer
  starts when LENGTH is written to a running, idle channel, with the length cut to
  ``c_sg_length_width`` bits (a longer count wraps, as in the register); a zero length is
  an internal error; an address that is not a multiple of the memory-map width (no DRE) or
  a LENGTH write to a busy channel is undefined on the board and fails the test here. MM2S
  completes when the kernel has read every word; S2MM writes until TLAST, its LENGTH then
  reads the bytes received (a short answer ends early), and an answer longer than the
  armed length is an internal error. A channel halted by an error stays halted until a
  soft reset.
- **Caches.** Every buffer has a CPU copy (the ``PynqBuffer``) and a device copy (DDR).
  The DMAs read and write only the device copy; ``flush()`` copies the CPU's bytes to the
  device and ``invalidate()`` the device's bytes to the CPU, for the range the call names
  (pynq's mock devices check the same calls). New buffers hold a garbage pattern. So a
  missing ``flush()`` sends stale bytes and a missing ``invalidate()`` reads stale ones.
- **Kernel.** The HLS top's C-simulation (``kcnn.sim.csim.CsimKernel``), invoked with
  ``ap_ctrl_hs`` semantics and auto-restart: once started, an invocation runs when its
  transfers are complete (a stream-A transfer up to TLAST, and a stream-B transfer when the
  descriptor says B carries words: ``job_words_b``, or an ``F32`` map's odd words), its
  answer goes to the S2MM channel (waiting there if none is armed), and with auto-restart
  the next invocation begins at once. A
  kernel that would read past the words present is stuck until the overlay is reloaded.
  ``info0..3`` and ``status`` are written per invocation, with their ``ap_vld`` bits.
- **Faults** (:meth:`FakeZynq.inject`): ``hang`` (the kernel never finishes), ``truncate``
  (drop the answer's last words, TLAST moves to the new last), ``extra`` (more words after
  the trailer), ``dma_error`` (error bits on a channel's next transfer). A refused job is
  the C-sim's own answer to a corrupted job in a persistent buffer.

The ``.hwh`` is a stand-in (the real one comes from Vivado): the kernel's registers follow
the Vitis HLS layout of ``kcnn_top``'s arguments (64-bit scalar outputs ``infoN_1``,
``infoN_2`` and the ``ap_vld`` word ``infoN_ctrl``, the next output 24 bytes on; the 32-bit
``status`` and ``status_ctrl``), from 0x10 or from ``args_at``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pynq import Device
from pynq.buffer import PynqBuffer

from kcnn.config import ARITHMETIC_CONTRACT, DESCRIPTOR_WORDS, BuildParams
from kcnn.protocol import MAGIC, decode_descriptor, map_words_b
from kcnn.sim.csim import CsimKernel

DMA_BASE = 0x40400000
WEIGHTS_DMA_BASE = 0x40410000
IP_BASE = 0x43C00000
RANGE = 0x10000
#: PG021 register offsets of the AXI DMA.
DMA_REGISTERS = {
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
DMA_PARAMETERS = {
    "C_INCLUDE_SG": "0",
    "C_SG_LENGTH_WIDTH": "26",
    "C_MICRO_DMA": "0",
    "C_INCLUDE_MM2S": "1",
    "C_INCLUDE_S2MM": "1",
    "C_INCLUDE_MM2S_DRE": "0",
    "C_INCLUDE_S2MM_DRE": "0",
    "C_M_AXI_MM2S_DATA_WIDTH": "64",
    "C_M_AXI_S2MM_DATA_WIDTH": "64",
    "C_M_AXIS_MM2S_TDATA_WIDTH": "64",
    "C_S_AXIS_S2MM_TDATA_WIDTH": "64",
    "C_ADDR_WIDTH": "32",
}
#: Zynq SLCR PLL control registers (PLL_FDIV in bits 12..18): ARM 1300, DDR 1050, IO 1000 MHz.
SLCR_PLLS = {0xF8000100: 26 << 12, 0xF8000104: 21 << 12, 0xF8000108: 20 << 12}
IO_PLL_MHZ = 1000.0
HALTED, IDLE, INTERNAL_ERROR, IOC = 0x1, 0x2, 0x10, 0x1000
ERROR_BITS = 0x70
RUN, RESET = 0x1, 0x4
DMACR_RESET_VALUE, DMASR_RESET_VALUE = 0x00010002, 0x00010001
AP_START, AP_DONE, AP_IDLE, AP_READY, AUTO_RESTART = 0x1, 0x2, 0x4, 0x8, 0x80
#: A new buffer's bytes (contiguous memory is not cleared): stale reads show.
GARBAGE = 0xA5


def kernel_registers(args_at: int = 0x10) -> dict[str, int]:
    """``kcnn_top``'s AXI-Lite registers in the Vitis HLS layout."""
    registers = {"CTRL": 0x00, "GIER": 0x04, "IP_IER": 0x08, "IP_ISR": 0x0C}
    at = args_at
    for i in range(4):
        registers.update({f"info{i}_1": at, f"info{i}_2": at + 4, f"info{i}_ctrl": at + 8})
        at += 24
    registers.update({"status": at, "status_ctrl": at + 4})
    return registers


def _registers_xml(registers: dict) -> str:
    rows = []
    for name, offset in registers.items():
        rows.append(
            f'<REGISTER NAME="{name}"><PROPERTY NAME="ADDRESS_OFFSET" VALUE="0x{offset:X}"/>'
            '<PROPERTY NAME="SIZE" VALUE="32"/><PROPERTY NAME="ACCESS" VALUE="read-write"/>'
            '<PROPERTY NAME="IS_ENABLED" VALUE="true"/></REGISTER>'
        )
    return "".join(rows)


def _bus(name: str, busname: str, kind: str, vlnv: str) -> str:
    return (
        f'<BUSINTERFACE BUSNAME="{busname}" NAME="{name}" TYPE="{kind}" '
        f'VLNV="xilinx.com:interface:{vlnv}:1.0"/>'
    )


def _divisors(clock_mhz: float) -> tuple[int, int]:
    """FCLK0 divisors from the IO PLL closest to ``clock_mhz`` (6-bit fields)."""
    best = min(
        ((d0, d1) for d0 in range(1, 64) for d1 in range(1, 64)),
        key=lambda d: (abs(IO_PLL_MHZ / (d[0] * d[1]) - clock_mhz), d[1]),
    )
    return best


def write_overlay(
    folder: Path,
    params: dict | None = None,
    contract: dict | None = None,
    dma: dict | None = None,
    *,
    args_at: int = 0x10,
    swap_dmas: bool = False,
    timing: dict | None = None,
    stem: str = "kcnn",
) -> Path:
    """``<stem>.bit`` (a placeholder), ``.hwh`` and ``.json`` of the fake design.

    ``params``: build parameters (``kcnn.json`` and the design: ``STREAMS`` = 2 adds the
    weights DMA); ``contract``: changes to ``kcnn.json``'s contract; ``dma``: changes to both
    DMAs' parameters; ``args_at``: where the kernel's argument registers start;
    ``swap_dmas``: the weights DMA gets the lower address and the first place in the file;
    ``timing``: ``kcnn.json``'s "timing" section.
    """
    folder.mkdir(parents=True, exist_ok=True)
    build = BuildParams.from_mapping(params).as_dict()
    (folder / f"{stem}.bit").write_bytes(b"not a bitstream: tests/fake_board.py")
    d0, d1 = _divisors(build["CLOCK_MHZ"])
    ps7 = {"PCW_FPGA_FCLK0_ENABLE": "1", "PCW_FPGA0_PERIPHERAL_FREQMHZ": f"{build['CLOCK_MHZ']}"}
    for clk in range(4):
        ps7.setdefault(f"PCW_FPGA_FCLK{clk}_ENABLE", "0")
        ps7[f"PCW_FCLK{clk}_PERIPHERAL_DIVISOR0"] = str(d0 if clk == 0 else 10)
        ps7[f"PCW_FCLK{clk}_PERIPHERAL_DIVISOR1"] = str(d1 if clk == 0 else 1)
        ps7[f"PCW_FCLK{clk}_PERIPHERAL_CLKSRC"] = "IO PLL"
    ps7_xml = "".join(f'<PARAMETER NAME="{k}" VALUE="{v}"/>' for k, v in ps7.items())
    dmas = [("dma", DMA_BASE, True)]
    if build["STREAMS"] == 2:
        dmas.append(("dma_w", WEIGHTS_DMA_BASE, False))
    if swap_dmas and len(dmas) == 2:
        dmas = [("dma_w", DMA_BASE, False), ("dma", WEIGHTS_DMA_BASE, True)]
    ranges, modules = [], []
    for name, base, answers in dmas:
        values = {**DMA_PARAMETERS, "C_INCLUDE_S2MM": "1" if answers else "0", **(dma or {})}
        # Like Vivado: each parameter as HDL generic (upper case) and configuration name.
        params_xml = "".join(
            f'<PARAMETER NAME="{k}" VALUE="{v}"/><PARAMETER NAME="{k.lower()}" VALUE="{v}"/>'
            for k, v in values.items()
        )
        registers = {k: v for k, v in DMA_REGISTERS.items() if answers or k.startswith("MM2S")}
        buses = _bus("S_AXI_LITE", "gp0", "SLAVE", "aximm")
        buses += _bus("M_AXIS_MM2S", f"{name}_M_AXIS_MM2S", "MASTER", "axis")
        if answers:
            buses += _bus("S_AXIS_S2MM", "kcnn_out_stream", "SLAVE", "axis")
        ranges.append(
            f'<MEMRANGE ADDRESSBLOCK="Reg" BASEVALUE="0x{base:08X}" '
            f'HIGHVALUE="0x{base + RANGE - 1:08X}" INSTANCE="{name}" '
            'MASTERBUSINTERFACE="M_AXI_GP0" MEMTYPE="REGISTER" SLAVEBUSINTERFACE="S_AXI_LITE"/>'
        )
        modules.append(
            f'<MODULE FULLNAME="/{name}" INSTANCE="{name}" MODTYPE="axi_dma" '
            f'VLNV="xilinx.com:ip:axi_dma:7.1"><ADDRESSBLOCKS><ADDRESSBLOCK '
            f'INTERFACE="S_AXI_LITE" NAME="Reg" RANGE="{RANGE}" USAGE="register"><REGISTERS>'
            f"{_registers_xml(registers)}</REGISTERS></ADDRESSBLOCK></ADDRESSBLOCKS>"
            f"<PARAMETERS>{params_xml}</PARAMETERS><BUSINTERFACES>{buses}</BUSINTERFACES>"
            "</MODULE>"
        )
    kcnn_buses = _bus("s_axi_CTRL", "gp0", "SLAVE", "aximm")
    kcnn_buses += _bus("in_a", "dma_M_AXIS_MM2S", "SLAVE", "axis")
    if build["STREAMS"] == 2:
        kcnn_buses += _bus("in_b", "dma_w_M_AXIS_MM2S", "SLAVE", "axis")
    kcnn_buses += _bus("out_stream", "kcnn_out_stream", "MASTER", "axis")
    ranges.append(
        f'<MEMRANGE ADDRESSBLOCK="Reg" BASEVALUE="0x{IP_BASE:08X}" '
        f'HIGHVALUE="0x{IP_BASE + RANGE - 1:08X}" INSTANCE="kcnn" MASTERBUSINTERFACE="M_AXI_GP0" '
        'MEMTYPE="REGISTER" SLAVEBUSINTERFACE="s_axi_CTRL"/>'
    )
    modules.append(
        '<MODULE FULLNAME="/kcnn" INSTANCE="kcnn" MODTYPE="kcnn_top" '
        'VLNV="xilinx.com:hls:kcnn_top:1.0"><ADDRESSBLOCKS><ADDRESSBLOCK INTERFACE="s_axi_CTRL" '
        f'NAME="Reg" RANGE="{RANGE}" USAGE="register"><REGISTERS>'
        f"{_registers_xml(kernel_registers(args_at))}</REGISTERS></ADDRESSBLOCK></ADDRESSBLOCKS>"
        f"<BUSINTERFACES>{kcnn_buses}</BUSINTERFACES></MODULE>"
    )
    hwh = f"""<?xml version="1.0" encoding="UTF-8" standalone="no" ?>
<EDKSYSTEM EDWVERSION="1.2" VIVADOVERSION="stand-in">
  <SYSTEMINFO ARCH="zynq" DEVICE="7z020" NAME="kcnn_bd" PACKAGE="clg400" SPEEDGRADE="-1"/>
  <EXTERNALPORTS/>
  <EXTERNALINTERFACES/>
  <MODULES>
    <MODULE FULLNAME="/ps7" INSTANCE="ps7" MODTYPE="processing_system7"
        VLNV="xilinx.com:ip:processing_system7:5.5">
      <PARAMETERS>{ps7_xml}</PARAMETERS>
      <MEMORYMAP>{"".join(ranges)}</MEMORYMAP>
      <BUSINTERFACES>{_bus("M_AXI_GP0", "gp0", "MASTER", "aximm")}</BUSINTERFACES>
    </MODULE>
    {"".join(modules)}
  </MODULES>
</EDKSYSTEM>
"""
    (folder / f"{stem}.hwh").write_text(hwh)
    config = {
        "contract": {**ARITHMETIC_CONTRACT, **(contract or {})},
        "build": build,
        "ip": "xilinx.com:hls:kcnn_top:1.0",
        "timing": timing or {"wns_ns": 0.125, "met": True, "negative_slack_allowed": False},
        "utilization": {"lut": 35012, "ff": 30117, "bram36": 86.5, "dsp48": 160},
    }
    (folder / f"{stem}.json").write_text(json.dumps(config, indent=2))
    return folder / f"{stem}.bit"


# ---- the design as the fake reads it from the .hwh ---------------------------------------------


@dataclass
class _Channel:
    """One DMA channel's registers and transfer state."""

    dma: str
    prefix: str  # MM2S or S2MM
    dmacr: int = DMACR_RESET_VALUE
    dmasr: int = DMASR_RESET_VALUE
    address: int = 0
    address_msb: int = 0
    length: int = 0
    busy: bool = False
    left: int = 0  # MM2S: words the kernel has still to read; S2MM: room in bytes
    received: int = 0
    pending_error: int = 0

    def reset(self) -> None:
        self.dmacr, self.dmasr = DMACR_RESET_VALUE, DMASR_RESET_VALUE
        self.address = self.address_msb = self.length = 0
        self.busy, self.left, self.received = False, 0, 0


@dataclass
class _Dma:
    name: str
    base: int
    offsets: dict  # register name -> offset, from the .hwh
    length_bits: int
    align: int
    channels: dict = field(default_factory=dict)  # MM2S / S2MM -> _Channel
    feeds: str | None = None  # kernel port its MM2S drives
    resetting: int = 0  # reads of DMACR that still show the reset bit


def _read_design(hwh: Path) -> tuple[dict, dict, dict]:
    """The fake's view of the design: DMAs (registers, parameters, wiring) and the kernel's
    register offsets, all from the .hwh."""
    root = ET.parse(hwh).getroot()
    bases = {}
    for mem in root.iter("MEMRANGE"):
        bases[mem.get("INSTANCE")] = int(mem.get("BASEVALUE"), 0)
    nets: dict[str, list] = {}
    modules = {}
    for module in root.iter("MODULE"):
        name = module.get("INSTANCE")
        modules[name] = module
        for bus in module.iter("BUSINTERFACE"):
            if ":axis:" in (bus.get("VLNV") or ""):
                nets.setdefault(bus.get("BUSNAME"), []).append((name, bus.get("NAME")))

    def registers(module):
        out = {}
        for reg in module.iter("REGISTER"):
            for prop in reg.iter("PROPERTY"):
                if prop.get("NAME") == "ADDRESS_OFFSET":
                    out[reg.get("NAME")] = int(prop.get("VALUE"), 0)
        return out

    dmas, kernel = {}, None
    for name, module in modules.items():
        vlnv = module.get("VLNV") or ""
        if ":axi_dma:" in vlnv:
            p = {q.get("NAME"): q.get("VALUE") for q in module.iter("PARAMETER")}
            dma = _Dma(
                name,
                bases[name],
                registers(module),
                int(p["c_sg_length_width"]),
                1 if p["c_include_mm2s_dre"] == "1" else int(p["c_m_axi_mm2s_data_width"]) // 8,
            )
            if p["c_include_mm2s"] == "1":
                dma.channels["MM2S"] = _Channel(name, "MM2S")
            if p["c_include_s2mm"] == "1":
                dma.channels["S2MM"] = _Channel(name, "S2MM")
            dmas[name] = dma
        elif vlnv.startswith("xilinx.com:hls:kcnn_top:"):
            kernel = (name, bases[name], registers(module))
    for ends in nets.values():
        for ip, port in ends:
            if ip in dmas and port == "M_AXIS_MM2S":
                dmas[ip].feeds = next((p for i, p in ends if i == kernel[0]), None)
    return dmas, kernel, bases


# ---- the device -----------------------------------------------------------------------------


@dataclass
class _Memory:
    cpu: np.ndarray  # the PynqBuffer's bytes (what the CPU sees)
    device: np.ndarray  # DDR (what the DMAs see)
    address: int
    freed: bool = False


class FakeZynq(Device):
    """A fake PYNQ-Z2: registers, DDR with a CPU cache, two AXI DMAs and the kernel (C-sim).

    ``pynq.Overlay(..., device=FakeZynq())`` works on it: the metadata comes from pynq's own
    ``.hwh`` parser, ``download`` puts the design's registers back to their reset values,
    and the PS clock registers hold what the boot loader leaves there (IO PLL 1000 MHz).
    """

    arch = "armv7l"  # pynq.ps.ZYNQ_ARCH: selects the Zynq-7000 clock driver

    def __init__(self, kernel_params: dict | None = None, kernel_args_at: int | None = None):
        """``kernel_params``: the build parameters the kernel (C-sim) is compiled with;
        ``kernel_args_at``: where the kernel really has its argument registers, when the
        ``.hwh`` is to be wrong about it."""
        super().__init__("fake-pynq-z2")
        self.capabilities = {"REGISTER_RW": True}
        self.kernel_params = BuildParams.from_mapping(kernel_params)
        self.kernel_args_at = kernel_args_at
        self._kernel = None
        self.registers: dict[int, int] = dict(SLCR_PLLS)
        self.memory: dict[int, _Memory] = {}
        self.next_address = 0x1600_0000
        self.freed: list[int] = []
        self.reloads = 0
        self.accesses: list[tuple[str, str, str]] = []  # (r/w, ip, register)
        self.transfers: list[tuple[str, str, int]] = []  # (dma, MM2S/S2MM, bytes)
        self.cache_ops: list[tuple[str, int, int]] = []  # (flush/invalidate, offset, size)
        self.invocations: list[dict] = []  # per kernel invocation: descriptor and status
        self.faults: dict = {}
        self.dmas: dict[str, _Dma] = {}
        self.kernel_name, self.kernel_base, self.kernel_offsets = "", 0, {}
        self._reset_design()

    @property
    def kernel(self) -> CsimKernel:
        """The C-sim, compiled and loaded on first use (tests of the registers need none)."""
        if self._kernel is None:
            self._kernel = CsimKernel(self.kernel_params)
        return self._kernel

    # ---- faults -----------------------------------------------------------------------
    def inject(self, fault: str, value=True) -> None:
        """``hang``: the kernel never finishes its next invocation; ``truncate=n``: drop the
        next answer's last n words; ``extra=n``: n more words after the next trailer;
        ``dma_error=(dma, channel, bits)``: error bits on that channel's next transfer."""
        if fault not in ("hang", "truncate", "extra", "dma_error"):
            raise ValueError(fault)
        self.faults[fault] = value

    # ---- pynq.Device: metadata and download ---------------------------------------------
    def get_bitfile_metadata(self, bitfile_name):
        """The parser pynq uses on the board for a ``.bit`` with its ``.hwh``; the fake reads
        the same file for its own register map and wiring."""
        from pynqmetadata.frontends import Metadata

        try:
            from pynq.metadata.runtime_metadata_parser import RuntimeMetadataParser
        except ImportError:  # pynq 4
            from pynqmetadata.views.runtime import RuntimeMetadataParser
        hwh = Path(bitfile_name).with_suffix(".hwh")
        self.dmas, kernel, _ = _read_design(hwh)
        self.kernel_name, self.kernel_base, self.kernel_offsets = kernel
        if self.kernel_args_at is not None:
            self.kernel_offsets = kernel_registers(self.kernel_args_at)
        self._reset_design()
        return RuntimeMetadataParser(Metadata(input=str(hwh)))

    def download(self, bitstream, parser=None) -> None:
        self.reloads += 1
        self._reset_design()

    def _reset_design(self) -> None:
        """Programming the PL: every register of the design at its reset value, the
        kernel idle, no word in any stream."""
        for dma in self.dmas.values():
            dma.resetting = 0
            for channel in dma.channels.values():
                channel.reset()
        self.ctrl = AP_IDLE
        self.values = {name: 0 for name in self.kernel_offsets}
        self.running = False
        self.stuck = False
        self.streams = {"in_a": [], "in_b": []}  # per port: [(words, last, dma)] in order
        self.answer = (np.zeros(0, np.uint64), np.zeros(0, np.uint8))

    # ---- pynq.Device: memory -----------------------------------------------------------
    def allocate(self, shape, dtype, **kwargs):
        address = self.next_address
        buffer = PynqBuffer(shape, dtype, device=self, device_address=address, bo=address)
        cpu = buffer.view(np.ndarray).reshape(-1).view(np.uint8)
        cpu[...] = GARBAGE
        self.memory[address] = _Memory(cpu, cpu.copy(), address)
        # pynq frees a buffer through ``return_to.return_pointer`` when ``memory`` is set.
        buffer.memory, buffer.pointer, buffer.return_to = True, address, self
        self.next_address += -(-buffer.nbytes // 4096) * 4096
        return buffer

    def return_pointer(self, pointer: int) -> None:
        self.memory[pointer].freed = True
        self.freed.append(pointer)

    def _bytes_of(self, bo: int, offset: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        mem = self.memory[bo]
        assert not mem.freed, f"cache operation on freed buffer 0x{bo:X}"
        assert 0 <= offset and offset + size <= mem.cpu.size, (bo, offset, size)
        return mem.cpu[offset : offset + size], mem.device[offset : offset + size]

    def flush(self, bo, offset, ptr, size):
        cpu, device = self._bytes_of(bo, offset, size)
        device[...] = cpu
        self.cache_ops.append(("flush", offset, size))

    def invalidate(self, bo, offset, ptr, size):
        cpu, device = self._bytes_of(bo, offset, size)
        cpu[...] = device
        self.cache_ops.append(("invalidate", offset, size))

    def _ddr(self, address: int, nbytes: int) -> np.ndarray:
        """The device bytes ``[address, address + nbytes)``, inside one live buffer."""
        for base, mem in self.memory.items():
            if base <= address and address + nbytes <= base + mem.device.size:
                assert not mem.freed, f"DMA access to freed buffer 0x{base:X}"
                return mem.device[address - base : address - base + nbytes]
        raise AssertionError(f"DMA access to 0x{address:X}+{nbytes} outside every buffer")

    # ---- pynq.Device: registers --------------------------------------------------------
    def read_registers(self, address: int, length: int) -> bytes:
        words = [self._read(address + 4 * i) for i in range(length // 4)]
        return np.array(words, np.uint32).tobytes()

    def write_registers(self, address: int, data: bytes) -> None:
        for i, value in enumerate(np.frombuffer(bytes(data), np.uint32)):
            self._write(address + 4 * i, int(value))

    def _decode(self, address: int):
        """``(component, register name)`` of a design address, or None."""
        for dma in self.dmas.values():
            if dma.base <= address < dma.base + RANGE:
                offset = address - dma.base
                name = next((n for n, o in dma.offsets.items() if o == offset), None)
                return dma, name
        if self.kernel_base <= address < self.kernel_base + RANGE:
            offset = address - self.kernel_base
            name = next((n for n, o in self.kernel_offsets.items() if o == offset), None)
            return "kernel", name
        return None

    def _read(self, address: int) -> int:
        where = self._decode(address)
        if where is None:
            return self.registers.get(address, 0)
        component, name = where
        self.accesses.append(("r", getattr(component, "name", component), name))
        if component == "kernel":
            return self._read_kernel(name)
        return self._read_dma(component, name)

    def _write(self, address: int, value: int) -> None:
        where = self._decode(address)
        if where is None:
            self.registers[address] = value
            return
        component, name = where
        self.accesses.append(("w", getattr(component, "name", component), name))
        if component == "kernel":
            self._write_kernel(name, value)
        else:
            self._write_dma(component, name, value)
        self._advance()

    # ---- DMA -------------------------------------------------------------------------
    def _read_dma(self, dma: _Dma, name: str | None) -> int:
        if name is None:
            return 0
        prefix, register = name.split("_", 1)
        channel = dma.channels[prefix]
        if register == "DMACR":
            value = channel.dmacr
            if dma.resetting:
                dma.resetting -= 1
                value |= RESET
            return value
        return {
            "DMASR": channel.dmasr,
            "SA": channel.address,
            "DA": channel.address,
            "SA_MSB": channel.address_msb,
            "DA_MSB": channel.address_msb,
            # S2MM LENGTH reads the bytes received once the transfer has ended.
            "LENGTH": channel.received if prefix == "S2MM" and not channel.busy else channel.length,
        }[register]

    def _write_dma(self, dma: _Dma, name: str | None, value: int) -> None:
        if name is None:
            return
        prefix, register = name.split("_", 1)
        channel = dma.channels[prefix]
        if register == "DMACR":
            if value & RESET:
                # Either channel's reset bit resets the whole DMA; the words it had not
                # handed to the kernel yet are gone.
                for other in dma.channels.values():
                    other.reset()
                for port in self.streams.values():
                    port[:] = [item for item in port if item[2] != dma.name]
                dma.resetting = 1
                return
            channel.dmacr = value
            if value & RUN and not channel.dmasr & ERROR_BITS:
                channel.dmasr &= ~HALTED
            elif not value & RUN:
                channel.dmasr |= HALTED
                channel.busy = False
            return
        if register in ("SA", "DA"):
            channel.address = value
        elif register in ("SA_MSB", "DA_MSB"):
            channel.address_msb = value
        elif register == "LENGTH":
            channel.length = value
            self._start_transfer(dma, channel, value)

    def _start_transfer(self, dma: _Dma, channel: _Channel, value: int) -> None:
        if channel.dmasr & HALTED:
            return  # a halted channel ignores the length: nothing moves
        assert not channel.busy, (
            f"{dma.name} {channel.prefix}_LENGTH written while a transfer is in flight "
            "(undefined on the AXI DMA)"
        )
        nbytes = value & ((1 << dma.length_bits) - 1)
        address = channel.address | channel.address_msb << 32
        error = 0
        fault = self.faults.get("dma_error")
        if fault and fault[:2] == (dma.name, channel.prefix):
            error = fault[2]
            del self.faults["dma_error"]
        elif nbytes == 0:
            error = INTERNAL_ERROR
        if error:
            channel.dmasr = (channel.dmasr | error | HALTED) & ~IDLE
            return
        assert address % dma.align == 0, (
            f"{dma.name} {channel.prefix} address 0x{address:X} is not {dma.align}-byte "
            "aligned (undefined without the realignment engine)"
        )
        assert nbytes % 8 == 0, f"{dma.name} {channel.prefix}: {nbytes} bytes of 64-bit words"
        self.transfers.append((dma.name, channel.prefix, nbytes))
        channel.dmasr &= ~(IDLE | IOC)
        channel.busy = True
        if channel.prefix == "MM2S":
            words = self._ddr(address, nbytes).view(np.uint64).copy()
            last = np.zeros(words.size, np.uint8)
            last[-1] = 1
            assert dma.feeds in self.streams, f"{dma.name} MM2S drives no kernel port"
            self.streams[dma.feeds].append((words, last, dma.name))
            channel.left = words.size
        else:
            self._ddr(address, nbytes)  # the whole buffer must exist
            channel.left, channel.received = nbytes, 0

    def _complete(self, channel: _Channel) -> None:
        channel.busy = False
        channel.dmasr |= IDLE | IOC

    # ---- kernel ---------------------------------------------------------------------------
    def _read_kernel(self, name: str | None) -> int:
        if name == "CTRL":
            value = self.ctrl
            self.ctrl &= ~AP_DONE  # clear on read
            return value
        if name is None:
            return 0
        value = self.values.get(name, 0)
        if name.endswith("_ctrl"):
            self.values[name] = 0  # ap_vld: clear on read
        return value

    def _write_kernel(self, name: str | None, value: int) -> None:
        if name == "CTRL":
            self.ctrl = (self.ctrl & ~AUTO_RESTART) | (value & AUTO_RESTART)
            if value & AP_START and not self.running:
                self.running = True
                self.ctrl = (self.ctrl | AP_START) & ~AP_IDLE
        elif name is not None:
            self.values[name] = value

    def _port(self, port: str) -> tuple[np.ndarray, np.ndarray]:
        items = self.streams[port]
        if not items:
            return np.zeros(0, np.uint64), np.zeros(0, np.uint8)
        return np.concatenate([i[0] for i in items]), np.concatenate([i[1] for i in items])

    def _consume(self, port: str, count: int) -> None:
        """The kernel read ``count`` words of ``port``: MM2S transfers drained complete."""
        items = self.streams[port]
        while count:
            words, last, dma = items[0]
            take = min(count, words.size)
            channel = self.dmas[dma].channels["MM2S"]
            channel.left -= take
            if channel.left == 0 and channel.busy:
                self._complete(channel)
            if take == words.size:
                items.pop(0)
            else:
                items[0] = (words[take:], last[take:], dma)
            count -= take

    def _transfer(self, port: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The words of ``port`` up to its first TLAST, or None before it has arrived."""
        words, last = self._port(port)
        ends = np.flatnonzero(last)
        if not ends.size:
            return None
        return words[: ends[0] + 1], last[: ends[0] + 1]

    def _invoke(self) -> bool:
        """One invocation when its transfers are complete; True if it ran."""
        if not self.running or self.stuck or self.answer[0].size or self.faults.get("hang"):
            return False
        a = self._transfer("in_a")
        if a is None:
            return False
        fields = decode_descriptor(a[0][:DESCRIPTOR_WORDS]) if a[0].size >= DESCRIPTOR_WORDS else {}
        # B carries the jobs' B words and, with two streams, an F32 map's odd words.
        b_words = fields.get("job_words_b", 0) + (
            map_words_b(fields, self.kernel.config["STREAMS"]) if fields else 0
        )
        wants_b = fields.get("magic") == MAGIC and b_words > 0
        b = self._transfer("in_b")
        if wants_b and b is None:
            return False
        b = b if b is not None else (np.zeros(0, np.uint64), np.zeros(0, np.uint8))
        # Room for the answer the descriptor announces or the S2MM channel takes, whichever is
        # larger: words beyond what S2MM takes are an error there, not lost here.
        jobs = next((d for d in self.dmas.values() if "S2MM" in d.channels), None)
        room = jobs.channels["S2MM"].left // 8 if jobs and jobs.channels["S2MM"].busy else 0
        announced = int(fields.get("out_words", 0)) + 1 if fields.get("magic") == MAGIC else 0
        cap = min(max(announced, room, 16) + 32, self.kernel.config["max_step_words"])
        out, result, _ = self.kernel.run_words(a[0], a[1], b[0], b[1], cap)
        if result["reads_a"] > a[0].size or result["reads_b"] > b[0].size:
            # The hardware would wait for words that are not coming: stuck until reloaded.
            self.stuck = True
            return False
        self._consume("in_a", result["consumed_a"])
        if result["consumed_b"]:
            self._consume("in_b", result["consumed_b"])
        out_last = np.zeros(out.size, np.uint8)
        if 0 <= result["first_last"] < out.size:
            out_last[result["first_last"]] = 1
        if self.faults.get("truncate"):
            n = self.faults.pop("truncate")
            out, out_last = out[:-n], out_last[:-n]
            out_last[-1] = 1
        if self.faults.get("extra"):
            n = self.faults.pop("extra")
            out_last[:] = 0
            out = np.concatenate([out, np.arange(1, n + 1, dtype=np.uint64)])
            out_last = np.concatenate([out_last, np.zeros(n, np.uint8)])
            out_last[-1] = 1
        self.answer = (out, out_last)
        for i, value in enumerate(result["info"]):
            self.values[f"info{i}_1"] = value & 0xFFFFFFFF
            self.values[f"info{i}_2"] = value >> 32
            self.values[f"info{i}_ctrl"] = 1
        self.values["status"] = result["status"]
        self.values["status_ctrl"] = 1
        self.invocations.append({**fields, "status": result["status"]})
        self.ctrl |= AP_DONE | AP_READY
        if not self.ctrl & AUTO_RESTART:
            self.running = False
            self.ctrl = (self.ctrl & ~AP_START) | AP_IDLE
        return True

    def _deliver(self) -> bool:
        """Answer words into the armed S2MM channel; True if any moved."""
        words, last = self.answer
        jobs = next((d for d in self.dmas.values() if "S2MM" in d.channels), None)
        if jobs is None or not words.size:
            return False
        channel = jobs.channels["S2MM"]
        if not channel.busy:
            return False
        room = channel.left // 8
        ends = np.flatnonzero(last[:room])
        count = int(ends[0]) + 1 if ends.size else min(room, words.size)
        address = (channel.address | channel.address_msb << 32) + channel.received
        self._ddr(address, 8 * count)[...] = words[:count].view(np.uint8)
        channel.received += 8 * count
        channel.left -= 8 * count
        self.answer = (words[count:], last[count:])
        if ends.size:
            self._complete(channel)
        elif channel.left == 0:
            # The packet is longer than the armed length (PG021: internal error).
            channel.busy = False
            channel.dmasr |= INTERNAL_ERROR | HALTED
        return count > 0

    def _advance(self) -> None:
        """Let the design run until nothing can move without the host."""
        while self._deliver() or self._invoke():
            pass
