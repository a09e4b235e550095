"""A stand-in for the PYNQ-Z2 at the outermost edge: a fake ``pynq.Device``.

Only the physical board is faked. The real pynq classes (``MMIO``, ``DefaultIP``,
``pynq.lib.dma.DMA``, ``allocate``/``PynqBuffer``) run on it, and the kernel behind the
registers is the HLS top's C-simulation (``kcnn.sim.csim``), fed the exact bytes the DMA reads
from the buffers. The device declares ``REGISTER_RW``, so pynq's ``MMIO`` routes every
register access through :meth:`FakeZynq.read_registers` / :meth:`FakeZynq.write_registers`:
writing a DMA LENGTH register starts a transfer, writing ``ap_start`` starts the kernel. All
registers start at 0; the kernel's info words reach the driver only through the probe's
answer. Faults can be injected one at a time (``hang``, ``short_output``, ``dma_error``,
``answer_late``).

Also writes a ``.hwh`` for this design (a stand-in: the real one comes from Vivado). Its
register offsets follow the Vitis HLS layout for ``kcnn_top``'s arguments: 64-bit scalar
outputs ``info0..3`` (low word, high word, ``ap_vld`` control word, reserved) from 0x10 and the
32-bit ``status`` (data, control) after them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pynq import Device
from pynq.buffer import PynqBuffer

from kcnn.config import ARITHMETIC_CONTRACT, BUILD_DEFAULTS, DESCRIPTOR_WORDS
from kcnn.jobs import MAGIC, decode_descriptor
from kcnn.sim.csim import kernel

DMA_BASE = 0x40400000
IP_BASE = 0x43C00000
RANGE = 0x10000
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
IP_REGISTERS = {"CTRL": 0x00, "GIER": 0x04, "IP_IER": 0x08, "IP_ISR": 0x0C}
for _i in range(4):
    IP_REGISTERS.update(
        {
            f"info{_i}_1": 0x10 + 16 * _i,
            f"info{_i}_2": 0x14 + 16 * _i,
            f"info{_i}_ctrl": 0x18 + 16 * _i,
        }
    )
IP_REGISTERS.update({"status": 0x50, "status_ctrl": 0x54})
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
}
#: Zynq SLCR PLL control registers (PLL_FDIV in bits 12..18): ARM 1300, DDR 1050, IO 1000 MHz.
SLCR_PLLS = {0xF8000100: 26 << 12, 0xF8000104: 21 << 12, 0xF8000108: 20 << 12}
HALTED, IDLE = 0x1, 0x2
AP_START, AP_DONE, AP_IDLE = 0x1, 0x2, 0x4


def _registers_xml(registers: dict) -> str:
    rows = []
    for name, offset in registers.items():
        rows.append(
            f'<REGISTER NAME="{name}"><PROPERTY NAME="ADDRESS_OFFSET" VALUE="0x{offset:X}"/>'
            '<PROPERTY NAME="SIZE" VALUE="32"/><PROPERTY NAME="ACCESS" VALUE="read-write"/>'
            '<PROPERTY NAME="IS_ENABLED" VALUE="true"/></REGISTER>'
        )
    return "".join(rows)


def write_overlay(
    folder: Path, params: dict | None = None, contract: dict | None = None, dma: dict | None = None
) -> Path:
    """``kcnn.bit`` (a placeholder), ``kcnn.hwh`` and ``kcnn.json`` for the fake design;
    ``params``/``contract`` change ``kcnn.json``, ``dma`` the DMA's parameters."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kcnn.bit").write_bytes(b"not a bitstream: tests/fake_board.py")
    # Like Vivado: each parameter as HDL generic (upper case) and configuration name.
    params_xml = "".join(
        f'<PARAMETER NAME="{k}" VALUE="{v}"/><PARAMETER NAME="{k.lower()}" VALUE="{v}"/>'
        for k, v in {**DMA_PARAMETERS, **(dma or {})}.items()
    )
    # FCLK_CLK0 at 100 MHz from the 1 GHz IO PLL; the other PL clocks off.
    ps7 = {"PCW_FPGA_FCLK0_ENABLE": "1", "PCW_FPGA0_PERIPHERAL_FREQMHZ": "100"}
    for clk in range(4):
        ps7.setdefault(f"PCW_FPGA_FCLK{clk}_ENABLE", "0")
        ps7[f"PCW_FCLK{clk}_PERIPHERAL_DIVISOR0"] = "10"
        ps7[f"PCW_FCLK{clk}_PERIPHERAL_DIVISOR1"] = "1"
        ps7[f"PCW_FCLK{clk}_PERIPHERAL_CLKSRC"] = "IO PLL"
    ps7_xml = "".join(f'<PARAMETER NAME="{k}" VALUE="{v}"/>' for k, v in ps7.items())
    hwh = f"""<?xml version="1.0" encoding="UTF-8" standalone="no" ?>
<EDKSYSTEM EDWVERSION="1.2" VIVADOVERSION="stand-in">
  <SYSTEMINFO ARCH="zynq" DEVICE="7z020" NAME="kcnn_bd" PACKAGE="clg400" SPEEDGRADE="-1"/>
  <EXTERNALPORTS/>
  <EXTERNALINTERFACES/>
  <MODULES>
    <MODULE FULLNAME="/ps7" INSTANCE="ps7" MODTYPE="processing_system7"
        VLNV="xilinx.com:ip:processing_system7:5.5">
      <PARAMETERS>{ps7_xml}</PARAMETERS>
      <MEMORYMAP>
        <MEMRANGE ADDRESSBLOCK="Reg" BASEVALUE="0x{DMA_BASE:08X}"
            HIGHVALUE="0x{DMA_BASE + RANGE - 1:08X}" INSTANCE="dma" MASTERBUSINTERFACE="M_AXI_GP0"
            MEMTYPE="REGISTER" SLAVEBUSINTERFACE="S_AXI_LITE"/>
        <MEMRANGE ADDRESSBLOCK="Reg" BASEVALUE="0x{IP_BASE:08X}"
            HIGHVALUE="0x{IP_BASE + RANGE - 1:08X}" INSTANCE="kcnn" MASTERBUSINTERFACE="M_AXI_GP0"
            MEMTYPE="REGISTER" SLAVEBUSINTERFACE="s_axi_CTRL"/>
      </MEMORYMAP>
      <BUSINTERFACES><BUSINTERFACE BUSNAME="gp0" NAME="M_AXI_GP0" TYPE="MASTER"
          VLNV="xilinx.com:interface:aximm:1.0"/></BUSINTERFACES>
    </MODULE>
    <MODULE FULLNAME="/dma" INSTANCE="dma" MODTYPE="axi_dma" VLNV="xilinx.com:ip:axi_dma:7.1">
      <ADDRESSBLOCKS><ADDRESSBLOCK INTERFACE="S_AXI_LITE" NAME="Reg" RANGE="{RANGE}"
          USAGE="register"><REGISTERS>{_registers_xml(DMA_REGISTERS)}
      </REGISTERS></ADDRESSBLOCK></ADDRESSBLOCKS>
      <PARAMETERS>{params_xml}</PARAMETERS>
      <BUSINTERFACES><BUSINTERFACE BUSNAME="gp0" NAME="S_AXI_LITE" TYPE="SLAVE"
          VLNV="xilinx.com:interface:aximm:1.0"/></BUSINTERFACES>
    </MODULE>
    <MODULE FULLNAME="/kcnn" INSTANCE="kcnn" MODTYPE="kcnn_top"
        VLNV="xilinx.com:hls:kcnn_top:1.0">
      <ADDRESSBLOCKS><ADDRESSBLOCK INTERFACE="s_axi_CTRL" NAME="Reg" RANGE="{RANGE}"
          USAGE="register"><REGISTERS>{_registers_xml(IP_REGISTERS)}
      </REGISTERS></ADDRESSBLOCK></ADDRESSBLOCKS>
      <BUSINTERFACES><BUSINTERFACE BUSNAME="gp0" NAME="s_axi_CTRL" TYPE="SLAVE"
          VLNV="xilinx.com:interface:aximm:1.0"/></BUSINTERFACES>
    </MODULE>
  </MODULES>
</EDKSYSTEM>
"""
    (folder / "kcnn.hwh").write_text(hwh)
    build = {**BUILD_DEFAULTS, **(params or {})}
    config = {
        "contract": {**ARITHMETIC_CONTRACT, **(contract or {})},
        "build": build,
        "ip": "xilinx.com:hls:kcnn_top:1.0",
    }
    (folder / "kcnn.json").write_text(json.dumps(config, indent=2))
    return folder / "kcnn.bit"


class FakeZynq(Device):
    """A fake PYNQ-Z2: registers, DDR buffers, the AXI DMA and the kernel (C-sim).

    ``pynq.Overlay(..., device=FakeZynq())`` works on it: the metadata comes from pynq's own
    ``.hwh`` parser, ``download`` resets the design's registers, and the PS clock registers
    hold what the boot loader leaves there (IO PLL 1000 MHz from the 50 MHz crystal).
    """

    arch = "armv7l"  # pynq.ps.ZYNQ_ARCH: selects the Zynq-7000 clock driver

    def __init__(self, kernel_params: dict | None = None):
        super().__init__("fake-pynq-z2")
        self.capabilities = {"REGISTER_RW": True}
        self.kernel = kernel(kernel_params)
        self.registers: dict[int, int] = dict(SLCR_PLLS)
        self.memory: list[tuple[int, np.ndarray]] = []
        self.next_address = 0x1600_0000
        self.freed: list[int] = []
        self.reloads = 0
        self.hang = False  # the kernel never finishes
        self.short_output = 0  # drop this many output words (TLAST moves to the new last)
        self.dma_error = 0  # DMASR error bits raised on the next receive
        self.answer_late = False  # a bad job is answered only after the inputs arrived
        self._reset_state()

    # ---- pynq.Device ---------------------------------------------------------------
    def allocate(self, shape, dtype, **kwargs):
        buffer = PynqBuffer(shape, dtype, device=self, device_address=self.next_address)
        buffer[...] = 0
        # pynq frees a buffer through ``return_to.return_pointer`` when ``memory`` is set.
        buffer.memory, buffer.pointer, buffer.return_to = True, self.next_address, self
        self.memory.append((self.next_address, buffer.view(np.ndarray).reshape(-1)))
        self.next_address += -(-buffer.nbytes // 4096) * 4096
        return buffer

    def return_pointer(self, pointer: int) -> None:
        self.freed.append(pointer)

    def flush(self, bo, offset, ptr, size):
        pass

    def invalidate(self, bo, offset, ptr, size):
        pass

    def read_registers(self, address: int, length: int) -> bytes:
        words = [self._read(address + 4 * i) for i in range(length // 4)]
        return np.array(words, np.uint32).tobytes()

    def write_registers(self, address: int, data: bytes) -> None:
        for i, value in enumerate(np.frombuffer(bytes(data), np.uint32)):
            self._write(address + 4 * i, int(value))

    # ---- board state ---------------------------------------------------------------
    def _reset_state(self) -> None:
        # Words (uint64) and TLAST flags (uint8) on the way into and out of the kernel.
        self.stream = (np.zeros(0, np.uint64), np.zeros(0, np.uint8))
        self.pending = (np.zeros(0, np.uint64), np.zeros(0, np.uint8))
        self.started = False
        self.recv: dict | None = None

    def get_bitfile_metadata(self, bitfile_name):
        """The parser pynq uses on the board for a ``.bit`` with its ``.hwh``."""
        from pynqmetadata.frontends import Metadata

        try:
            from pynq.metadata.runtime_metadata_parser import RuntimeMetadataParser
        except ImportError:  # pynq 4
            from pynqmetadata.views.runtime import RuntimeMetadataParser
        return RuntimeMetadataParser(Metadata(input=str(Path(bitfile_name).with_suffix(".hwh"))))

    def download(self, bitstream, parser=None) -> None:
        self.reload()

    def reload(self) -> None:
        """What downloading the bitstream again does: the design's registers back to 0."""
        self.reloads += 1
        for address in list(self.registers):
            if DMA_BASE <= address < DMA_BASE + RANGE or IP_BASE <= address < IP_BASE + RANGE:
                del self.registers[address]
        self._reset_state()

    def _bytes(self, address: int, nbytes: int) -> bytes:
        for base, array in self.memory:
            if base <= address and address + nbytes <= base + array.nbytes:
                return array.view(np.uint8)[address - base : address - base + nbytes].tobytes()
        raise AssertionError(f"DMA access to unmapped 0x{address:X}+{nbytes}")

    def _store(self, address: int, payload: bytes) -> None:
        for base, array in self.memory:
            if base <= address and address + len(payload) <= base + array.nbytes:
                view = array.view(np.uint8)
                view[address - base : address - base + len(payload)] = np.frombuffer(
                    payload, np.uint8
                )
                return
        raise AssertionError(f"DMA write to unmapped 0x{address:X}")

    def _reg(self, base: int, name: str, table: dict) -> int:
        return self.registers.get(base + table[name], 0)

    def _set(self, base: int, name: str, table: dict, value: int) -> None:
        self.registers[base + table[name]] = value & 0xFFFFFFFF

    def _read(self, address: int) -> int:
        value = self.registers.get(address, 0)
        if address == IP_BASE + IP_REGISTERS["CTRL"]:
            self.registers[address] = value & ~AP_DONE  # ap_done is clear-on-read
        return value

    def _write(self, address: int, value: int) -> None:
        d = DMA_REGISTERS
        if address in (DMA_BASE + d["MM2S_DMACR"], DMA_BASE + d["S2MM_DMACR"]):
            if value & 0x4:  # soft reset: the whole DMA, both channels
                for offset in d.values():
                    self.registers.pop(DMA_BASE + offset, None)
                self._set(DMA_BASE, "MM2S_DMASR", d, HALTED)
                self._set(DMA_BASE, "S2MM_DMASR", d, HALTED)
                self._reset_state()
                return
            self.registers[address] = value
            status = "MM2S_DMASR" if address == DMA_BASE + d["MM2S_DMACR"] else "S2MM_DMASR"
            current = self._reg(DMA_BASE, status, d)
            self._set(DMA_BASE, status, d, current & ~HALTED if value & 1 else current | HALTED)
            return
        self.registers[address] = value & 0xFFFFFFFF
        if address == DMA_BASE + d["MM2S_LENGTH"]:
            self._send(value)
        elif address == DMA_BASE + d["S2MM_LENGTH"]:
            self._arm_receive(value)
        elif address == IP_BASE + IP_REGISTERS["CTRL"] and value & AP_START:
            self.started = True
            self.registers[address] = AP_START
            self._step()

    def _send(self, nbytes: int) -> None:
        d = DMA_REGISTERS
        self._set(DMA_BASE, "MM2S_DMASR", d, self._reg(DMA_BASE, "MM2S_DMASR", d) & ~IDLE)
        source = self._reg(DMA_BASE, "MM2S_SA", d) | (self._reg(DMA_BASE, "MM2S_SA_MSB", d) << 32)
        words = np.frombuffer(self._bytes(source, nbytes), np.uint64)
        last = np.zeros(words.size, np.uint8)
        last[-1:] = 1
        self.stream = (
            np.concatenate([self.stream[0], words]),
            np.concatenate([self.stream[1], last]),
        )
        self._step()
        # Words the kernel will still read drain; words left after the kernel has ended
        # back-pressure the stream, and the send never completes.
        if self.started or not self.stream[0].size:
            self._set(DMA_BASE, "MM2S_DMASR", d, self._reg(DMA_BASE, "MM2S_DMASR", d) | IDLE)

    def _arm_receive(self, nbytes: int) -> None:
        d = DMA_REGISTERS
        status = self._reg(DMA_BASE, "S2MM_DMASR", d) & ~IDLE
        if self.dma_error:
            status |= self.dma_error | HALTED
            self.dma_error = 0
            self._set(DMA_BASE, "S2MM_DMASR", d, status)
            return
        self._set(DMA_BASE, "S2MM_DMASR", d, status)
        address = self._reg(DMA_BASE, "S2MM_DA", d) | (self._reg(DMA_BASE, "S2MM_DA_MSB", d) << 32)
        self.recv = {"address": address, "capacity": nbytes, "received": 0}
        self._deliver()

    def _step(self) -> None:
        """Run the kernel once it has been started and the stream holds a whole job."""
        words, last = self.stream
        if not self.started or self.hang or not self._job_complete(words, last):
            return
        if self.answer_late and np.count_nonzero(last) < 2:
            return
        out, result, _ = self.kernel.run_words(words, last, 1 << 16)
        if result["reads"] > words.size:
            return  # the kernel would still be waiting for words: not sent yet
        self.stream = (words[result["reads"] :], last[result["reads"] :])
        out_last = np.zeros(out.size, np.uint8)
        if result["first_last"] >= 0:
            out_last[result["first_last"]] = 1
        if self.short_output:
            out, out_last = out[: -self.short_output], out_last[: -self.short_output]
            out_last[-1] = 1
            self.short_output = 0
        self.pending = (
            np.concatenate([self.pending[0], out]),
            np.concatenate([self.pending[1], out_last]),
        )
        base, r = IP_BASE, IP_REGISTERS
        for i, value in enumerate(result["info"]):
            self._set(base, f"info{i}_1", r, value & 0xFFFFFFFF)
            self._set(base, f"info{i}_2", r, value >> 32)
            self._set(base, f"info{i}_ctrl", r, 1)
        self._set(base, "status", r, result["status"])
        self._set(base, "status_ctrl", r, 1)
        self.started = False
        self._set(base, "CTRL", r, AP_DONE | AP_IDLE)
        self._deliver()

    @staticmethod
    def _job_complete(words: np.ndarray, last: np.ndarray) -> bool:
        """Whether the kernel would finish reading its job from these words. Its C-sim cannot
        block on an empty stream, so it runs only then: after two transfers, or after one
        that ends the job (no inputs, or a descriptor the kernel stops reading at)."""
        ends = np.flatnonzero(last)
        if ends.size >= 2:
            return True
        if ends.size == 0 or words.size < DESCRIPTOR_WORDS:
            return ends.size == 1
        fields = decode_descriptor(words[:DESCRIPTOR_WORDS])
        well_formed = fields["magic"] == MAGIC and fields["const_words"] == ends[0] + 1
        return not well_formed or fields["input_words"] == 0

    def _deliver(self) -> None:
        """Move kernel output into the armed receive buffer; TLAST or a full buffer ends it."""
        words, last = self.pending
        if self.recv is None or not words.size:
            return
        recv = self.recv
        room = (recv["capacity"] - recv["received"]) // 8
        ends = np.flatnonzero(last[:room])
        count = int(ends[0]) + 1 if ends.size else min(room, words.size)
        self._store(recv["address"] + recv["received"], words[:count].tobytes())
        recv["received"] += 8 * count
        self.pending = (words[count:], last[count:])
        if ends.size or recv["received"] == recv["capacity"]:
            d = DMA_REGISTERS
            self._set(DMA_BASE, "S2MM_LENGTH", d, recv["received"])
            status = self._reg(DMA_BASE, "S2MM_DMASR", d)
            self._set(DMA_BASE, "S2MM_DMASR", d, status | IDLE)
            self.recv = None
