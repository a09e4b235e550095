"""A reader for Vivado hardware hand-off (``.hwh``) files that needs only the standard
library.

On the board, register offsets and DMA parameters come from pynq's own parse of the
``.hwh`` (``Overlay.ip_dict``). pynq does not say which AXI-Stream port feeds which, so
:func:`stream_connections` reads that here: the overlay finds its two DMAs (stream A and
answers; stream B) by what they are wired to, not by their names. :func:`read_hwh` mimics
the parts of pynq's ``ip_dict`` entries that the drivers use (``type``, ``fullpath``,
``phys_addr``, ``addr_range``, ``mem_id``, ``parameters``, ``registers`` with ``fields``)
for checks off the board.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from kcnn.errors import KcnnError


def _int(text: str | None, default: int = 0) -> int:
    if text is None or text == "":
        return default
    return int(text, 0)


def _properties(element) -> dict[str, str]:
    return {p.get("NAME"): p.get("VALUE") for p in element.findall("PROPERTY")}


def _fields(register) -> dict:
    fields = {}
    for field in register.iter("FIELD"):
        props = _properties(field)
        fields[field.get("NAME")] = {
            "bit_offset": _int(props.get("BIT_OFFSET")),
            "bit_width": _int(props.get("BIT_WIDTH"), 1),
            "access": props.get("ACCESS", ""),
            "description": props.get("DESCRIPTION", ""),
        }
    return fields


def _registers(module) -> dict:
    registers = {}
    for register in module.iter("REGISTER"):
        props = _properties(register)
        registers[register.get("NAME")] = {
            "address_offset": _int(props.get("ADDRESS_OFFSET")),
            "size": _int(props.get("SIZE"), 32),
            "access": props.get("ACCESS", ""),
            "description": props.get("DESCRIPTION", ""),
            "fields": _fields(register),
        }
    return registers


def _parameters(module) -> dict[str, str]:
    # Vivado writes an IP's HDL generics (C_INCLUDE_SG) and its configuration names
    # (c_include_sg, what pynq.lib.dma.DMA reads) side by side; both are kept as written.
    return {p.get("NAME"): p.get("VALUE") for p in module.findall("PARAMETERS/PARAMETER")}


def read_hwh(path) -> dict[str, dict]:
    """Every addressable IP of the design in ``path``, keyed by instance name."""
    root = _root(path)
    modules = {m.get("INSTANCE"): m for m in root.iter("MODULE")}
    ips: dict[str, dict] = {}
    # Base addresses live in the masters' memory maps (the PS's M_AXI_GP0 for AXI-Lite IPs).
    for master in modules.values():
        for mem in master.findall("MEMORYMAP/MEMRANGE"):
            if mem.get("MEMTYPE") != "REGISTER":
                continue
            name = mem.get("INSTANCE")
            module = modules.get(name)
            if module is None or name in ips:
                continue
            base = _int(mem.get("BASEVALUE"))
            ips[name] = {
                "type": module.get("VLNV"),
                "fullpath": (module.get("FULLNAME") or name).lstrip("/"),
                "phys_addr": base,
                "addr_range": _int(mem.get("HIGHVALUE")) - base + 1,
                "mem_id": mem.get("SLAVEBUSINTERFACE"),
                "parameters": _parameters(module),
                "registers": _registers(module),
                "interrupts": {},
                "gpio": {},
            }
    return ips


def find_ip(ip_dict: dict, vlnv_prefix: str, file=None) -> tuple[str, dict]:
    """The one IP whose VLNV starts with ``vlnv_prefix`` (e.g. ``xilinx.com:ip:axi_dma:``)."""
    found = [
        (name, d) for name, d in ip_dict.items() if str(d.get("type", "")).startswith(vlnv_prefix)
    ]
    if len(found) != 1:
        names = ", ".join(name for name, _ in found) or "none"
        raise KcnnError(
            f"the design must hold exactly one {vlnv_prefix}* IP, found {names}",
            file=file,
            field="ip",
        )
    return found[0]


def register_offset(description: dict, name: str, file=None) -> int:
    """The byte offset of register ``name`` of an IP, or a clear error naming it."""
    registers = description.get("registers") or {}
    if name not in registers:
        raise KcnnError(
            f"register {name!r} missing from {description.get('fullpath', '?')} "
            f"(registers: {', '.join(registers) or 'none'})",
            file=file,
            field="registers",
        )
    return int(registers[name]["address_offset"])


def _root(path):
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        raise KcnnError(f"cannot read the hardware hand-off: {err}", file=path) from err
    if root.tag != "EDKSYSTEM":
        raise KcnnError(f"not a Vivado .hwh (root element {root.tag!r})", file=path)
    return root


def stream_connections(path) -> dict[tuple[str, str], set[tuple[str, str]]]:
    """Every AXI-Stream port of the design and the ports on the same net:
    ``(ip, port) -> {(ip, port), ...}``, ``ip`` named as pynq's ``ip_dict`` names it (the
    full path without the leading slash)."""
    nets: dict[str, list[tuple[str, str]]] = {}
    for module in _root(path).iter("MODULE"):
        name = (module.get("FULLNAME") or module.get("INSTANCE") or "").lstrip("/")
        for bus in module.findall("BUSINTERFACES/BUSINTERFACE"):
            if ":axis:" not in (bus.get("VLNV") or "") or not bus.get("BUSNAME"):
                continue
            nets.setdefault(bus.get("BUSNAME"), []).append((name, bus.get("NAME")))
    peers: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for ends in nets.values():
        for end in ends:
            peers.setdefault(end, set()).update(e for e in ends if e != end)
    return peers


def scalar_output(registers: dict, name: str, bits: int, where: str = "", file=None):
    """Offsets of the data words and of the ``ap_vld`` control word of HLS scalar output
    ``name`` (``bits`` 32 or 64), from an IP's register list.

    Vitis HLS lists a 64-bit output as two 32-bit registers ``<name>_1`` (bits 31..0) and
    ``<name>_2`` (bits 63..32) and its ``ap_vld`` word as ``<name>_ctrl``; a 32-bit output
    as ``<name>`` and ``<name>_ctrl``. One 64-bit register ``<name>`` is also accepted, in
    case a tool version lists it whole. Returns ``(data offsets, control offset or None)``.
    """

    def offset(key):
        entry = registers.get(key)
        return None if entry is None else int(entry["address_offset"])

    data = None
    whole = registers.get(name)
    if bits == 64 and offset(f"{name}_1") is not None and offset(f"{name}_2") is not None:
        data = [offset(f"{name}_1"), offset(f"{name}_2")]
    elif whole is not None and int(whole.get("size") or 32) == bits:
        base = int(whole["address_offset"])
        data = [base + 4 * k for k in range(bits // 32)]
    if data is None:
        expected = f"{name}_1 and {name}_2" if bits == 64 else name
        raise KcnnError(
            f"{where or 'the IP'} has no register for its {bits}-bit output {name!r}: expected "
            f"{expected} (registers: {', '.join(sorted(registers)) or 'none'})",
            file=file,
            field="registers",
        )
    return data, offset(f"{name}_ctrl")
