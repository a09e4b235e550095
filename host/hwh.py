"""One reader for Vivado hardware hand-off (``.hwh``) files, used on and off the board.

It needs only the standard library, so the host driver and the CI tests read register
offsets, base addresses and DMA parameters the same way. On the board,
:class:`kcnn.overlay.KCNNOverlay` cross-checks what it reads against pynq's own
``ip_dict``. The result mimics the parts of pynq's ``ip_dict`` entries that the drivers
use: ``type``, ``fullpath``, ``phys_addr``, ``addr_range``, ``mem_id``, ``parameters``,
``registers`` (with ``fields``), ``interrupts`` and ``gpio``.
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
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        raise KcnnError(f"cannot read the hardware hand-off: {err}", file=path) from err
    if root.tag != "EDKSYSTEM":
        raise KcnnError(f"not a Vivado .hwh (root element {root.tag!r})", file=path)
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
