"""The one ``.hwh`` reader (``kcnn.host.hwh``) on a real Vivado hand-off file.

``pynqmetadata`` (a pynq dependency, so present in the board environment) ships
``tests/hwhs/resizer.hwh``: a Vivado 2019.2 design for the 7z020 with an AXI DMA and an HLS
IP. Our reader must agree with pynq's own parser on base addresses, register offsets and
the DMA parameters its driver reads.
"""

from pathlib import Path

import pytest
from test_tcl import AXI_DMA_PARAMS

from kcnn.errors import KcnnError
from kcnn.host.hwh import find_ip, read_hwh, register_offset

DMA_DRIVER_PARAMETERS = [
    "c_include_sg",
    "c_sg_length_width",
    "c_micro_dma",
    "c_include_mm2s",
    "c_include_s2mm",
    "c_include_mm2s_dre",
    "c_include_s2mm_dre",
    "c_m_axi_mm2s_data_width",
    "c_m_axi_s2mm_data_width",
]

pytestmark = pytest.mark.board_env


@pytest.fixture(scope="module")
def resizer():
    pynqmetadata = pytest.importorskip("pynqmetadata")
    path = Path(pynqmetadata.__file__).parent / "tests" / "hwhs" / "resizer.hwh"
    assert path.is_file(), f"{path} missing from pynqmetadata"
    return path


def test_addresses_registers_and_dma_parameters(resizer):
    ips = read_hwh(resizer)
    dma_name, dma = find_ip(ips, "xilinx.com:ip:axi_dma:")
    hls_name, hls = find_ip(ips, "xilinx.com:hls:")
    assert (dma_name, hex(dma["phys_addr"]), dma["addr_range"]) == (
        "axi_dma_0",
        "0x40400000",
        65536,
    )
    assert (hls_name, hex(hls["phys_addr"]), hls["addr_range"]) == (
        "resize_accel_0",
        "0x43c00000",
        65536,
    )
    assert {r: register_offset(dma, r) for r in ("MM2S_DMASR", "S2MM_DMASR", "S2MM_LENGTH")} == {
        "MM2S_DMASR": 0x04,
        "S2MM_DMASR": 0x34,
        "S2MM_LENGTH": 0x58,
    }
    offsets = {name: entry["address_offset"] for name, entry in hls["registers"].items()}
    assert offsets == {
        "CTRL": 0x00,
        "GIER": 0x04,
        "IP_IER": 0x08,
        "IP_ISR": 0x0C,
        "src_rows": 0x10,
        "src_cols": 0x18,
        "dst_rows": 0x20,
        "dst_cols": 0x28,
    }
    assert dma["parameters"]["c_include_sg"] == "0"
    assert dma["parameters"]["c_sg_length_width"] == "26"


def test_reader_agrees_with_pynqs_parser(resizer):
    pytest.importorskip("pynq")
    from pynqmetadata.frontends import Metadata

    try:
        from pynq.metadata.runtime_metadata_parser import RuntimeMetadataParser
    except ImportError:  # pynq 4 moved it
        from pynqmetadata.views.runtime import RuntimeMetadataParser
    theirs = RuntimeMetadataParser(Metadata(input=str(resizer))).ip_dict
    ours = read_hwh(resizer)
    assert set(ours) <= set(theirs)
    for name, entry in ours.items():
        for key in ("type", "fullpath", "phys_addr", "addr_range", "mem_id", "registers"):
            assert entry[key] == theirs[name][key], (name, key)
        shared = set(entry["parameters"]) & set(theirs[name]["parameters"])
        assert all(entry["parameters"][k] == theirs[name]["parameters"][k] for k in shared)
    dma = ours["axi_dma_0"]["parameters"]
    assert all(dma[k] == theirs["axi_dma_0"]["parameters"][k] for k in DMA_DRIVER_PARAMETERS)


def test_dma_parameter_list_of_build_tcl_matches_the_hwh(resizer):
    import xml.etree.ElementTree as ET

    root = ET.parse(resizer).getroot()
    (module,) = [m for m in root.iter("MODULE") if ":axi_dma:" in m.get("VLNV", "")]
    names = {p.get("NAME") for p in module.iter("PARAMETER")}
    user = {n for n in names if n == "Component_Name" or n.startswith("c_")}
    assert user == AXI_DMA_PARAMS


@pytest.mark.main_env
def test_bad_files_are_named(tmp_path):
    bad = tmp_path / "x.hwh"
    bad.write_text("<NOTVIVADO/>")
    with pytest.raises(KcnnError, match="not a Vivado .hwh") as err:
        read_hwh(bad)
    assert str(bad) in str(err.value)
    bad.write_text("<EDKSYSTEM>")
    with pytest.raises(KcnnError, match="cannot read"):
        read_hwh(bad)
    with pytest.raises(KcnnError, match="register 'status' missing"):
        register_offset({"fullpath": "kcnn", "registers": {"CTRL": {}}}, "status")
    with pytest.raises(KcnnError, match="exactly one xilinx.com:ip:axi_dma"):
        find_ip({}, "xilinx.com:ip:axi_dma:")
