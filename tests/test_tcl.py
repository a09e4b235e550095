"""CI check of build.tcl and hls/build_ip.tcl without Vivado.

Both scripts run under plain ``tclsh`` through ``tests/tcl_dryrun.tcl``, which replaces every
Vivado / Vitis HLS command, ``exec``, ``cd``, ``exit`` and file writes by logging stubs. The
tests read that log. Nothing here proves the scripts work in Vivado; it proves they are
complete Tcl, call the tools in the documented order with the documented settings, and fail
where they should.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kcnn.config import ARITHMETIC_CONTRACT, BUILD_PARAMETERS, BuildParams
from kcnn.errors import KcnnError

ROOT = Path(__file__).resolve().parents[1]
BUILD_TCL = ROOT / "build.tcl"
HLS_TCL = ROOT / "hls" / "build_ip.tcl"
HARNESS = Path(__file__).with_name("tcl_dryrun.tcl")
TCLSH = shutil.which("tclsh")
DEFAULTS = BuildParams().as_dict()

pytestmark = [
    pytest.mark.main_env,
    pytest.mark.board_env,
    pytest.mark.skipif(TCLSH is None, reason="tclsh not installed (apt-get install tcl)"),
]

# The user-settable parameters of xilinx.com:ip:axi_dma:7.1 (the lower-case CONFIG names),
# extracted once from the MODULE axi_dma_0 / PARAMETERS of pynqmetadata 0.2.0's
# pynqmetadata/tests/hwhs/resizer.hwh (a Vivado 2019.2 hand-off for a 7z020 design with an
# AXI DMA and an HLS IP; the package is on PyPI, Xilinx/PYNQ-Metadata on GitHub). Committed
# because installing pynqmetadata pulls pydantic, ipython and jsonschema; the board
# environment has it, and tests/test_hwh.py re-reads the file there.
AXI_DMA_PARAMS = frozenset(
    """
    Component_Name c_include_sg c_enable_multi_channel c_num_mm2s_channels c_num_s2mm_channels
    c_sg_length_width c_dlytmr_resolution c_prmry_is_aclk_async c_sg_include_stscntrl_strm
    c_micro_dma c_include_mm2s c_m_axi_mm2s_data_width c_m_axis_mm2s_tdata_width
    c_include_mm2s_dre c_include_mm2s_sf c_mm2s_burst_size c_include_s2mm
    c_sg_use_stsapp_length c_m_axi_s2mm_data_width c_s_axis_s2mm_tdata_width
    c_include_s2mm_dre c_include_s2mm_sf c_s2mm_burst_size c_addr_width c_single_interface
    c_increase_throughput
    """.split()
)

HLS_ONLY = {
    "open_project",
    "set_top",
    "open_solution",
    "set_part",
    "create_clock",
    "csim_design",
    "csynth_design",
    "cosim_design",
    "export_design",
    "open_component",
}
VIVADO_ONLY = {
    "create_project",
    "open_project_xpr",
    "create_bd_design",
    "create_bd_cell",
    "apply_bd_automation",
    "set_property",
    "validate_bd_design",
    "make_wrapper",
    "launch_runs",
    "wait_on_run",
    "open_run",
    "report_utilization",
    "report_timing_summary",
    "update_ip_catalog",
    "get_parts",
}


class DryRun:
    def __init__(self, rc: int, calls: list[dict], stdout: str, stderr: str, scratch: Path):
        self.rc, self.calls, self.stdout, self.stderr, self.scratch = (
            rc,
            calls,
            stdout,
            stderr,
            scratch,
        )

    def names(self) -> list[str]:
        return [c["cmd"] for c in self.calls]

    def find(self, cmd: str, *args: str) -> list[dict]:
        """Calls of ``cmd`` whose arguments contain all of ``args``."""
        return [c for c in self.calls if c["cmd"] == cmd and all(a in c["args"] for a in args)]

    def index(self, cmd: str, *args: str) -> int:
        for i, c in enumerate(self.calls):
            if c["cmd"] == cmd and all(a in c["args"] for a in args):
                return i
        raise AssertionError(f"{cmd} {args} never called; calls: {self.names()}")

    def bd_dict(self, target: str) -> dict[str, str]:
        """All ``set_property -dict`` pairs set on a block-design cell."""
        out: dict[str, str] = {}
        for c in self.find("set_property", "-dict"):
            if c["args"][-1] == target:
                out.update(c["dict"])
        return out


def dry_run(
    tmp_path: Path,
    script: Path,
    *args: str,
    sets: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> DryRun:
    scratch = tmp_path / f"scratch{len(list(tmp_path.glob('scratch*')))}"
    scratch.mkdir()
    log = scratch / "calls.jsonl"
    cmd = [TCLSH, str(HARNESS), "-log", str(log), "-scratch", str(scratch)]
    for s in sets:
        cmd += ["-set", s]
    cmd += [str(script), *args]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KCNN_")}
    full_env.update(env or {})
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode in (0, 1), f"harness error {proc.returncode}:\n{proc.stderr}"
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return DryRun(proc.returncode, calls, proc.stdout, proc.stderr, scratch)


def hls_exec(run: DryRun) -> dict:
    (call,) = run.find("exec")
    return call


# ---- syntax ------------------------------------------------------------------------------


@pytest.mark.parametrize("script", [BUILD_TCL, HLS_TCL, HARNESS], ids=lambda p: p.name)
def test_scripts_are_complete_tcl(script: Path) -> None:
    check = f"set f [open {{{script}}}]; puts [info complete [read $f]]"
    out = subprocess.run([TCLSH], input=check, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_tclint_clean() -> None:
    beside = Path(sys.executable).parent / "tclint"
    tclint = str(beside) if beside.exists() else shutil.which("tclint")
    if tclint is None:
        pytest.skip("tclint not installed (pip install tclint)")
    proc = subprocess.run([tclint, str(BUILD_TCL), str(HLS_TCL)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---- build.tcl ---------------------------------------------------------------------------


def test_build_steps_in_order(tmp_path: Path) -> None:
    run = dry_run(tmp_path, BUILD_TCL)
    assert run.rc == 0, run.stderr
    order = [
        run.index("exec"),
        run.index("create_project"),
        run.index("create_bd_design"),
        run.index("create_bd_cell", "xilinx.com:ip:processing_system7:5.5"),
        run.index("create_bd_cell", "xilinx.com:ip:axi_dma:7.1"),
        run.index("create_bd_cell", "xilinx.com:hls:kcnn_top:1.0"),
        run.index("apply_bd_automation", "xilinx.com:bd_rule:axi4"),
        run.index("connect_bd_intf_net"),
        run.index("assign_bd_address"),
        run.index("validate_bd_design"),
        run.index("make_wrapper"),
        run.index("set_property", "STEPS.PHYS_OPT_DESIGN.IS_ENABLED", "true", "impl_1"),
        run.index("set_property", "STEPS.POST_ROUTE_PHYS_OPT_DESIGN.IS_ENABLED", "true"),
        run.index("launch_runs", "impl_1", "write_bitstream"),
        run.index("wait_on_run"),
        run.index("open_run"),
        run.index("report_utilization", "-return_string"),
        run.index("report_timing_summary", "-return_string"),
        run.index("get_nets"),
        run.index("get_timing_paths"),
        run.index("file copy"),
        run.index("open", str(ROOT / "overlay" / "kcnn.json"), "w"),
        run.index("exit", "0"),
    ]
    assert order == sorted(order)
    assert run.calls[-1] == {"cmd": "exit", "args": ["0"]}
    # The wrapper comes from make_wrapper itself, not from a version-specific path.
    add = run.find("add_files", "-norecurse")
    assert add and add[0]["args"][-1] == "/stub/kcnn_bd_wrapper.v"


def test_no_hls_command_in_vivado_script(tmp_path: Path) -> None:
    run = dry_run(tmp_path, BUILD_TCL)
    assert not HLS_ONLY & set(run.names())


def test_no_vivado_command_in_hls_script(tmp_path: Path) -> None:
    run = dry_run(tmp_path, HLS_TCL, env={"KCNN_CSIM": "1"})
    assert run.rc == 0, run.stderr
    assert not VIVADO_ONLY & set(run.names())


@pytest.mark.parametrize(
    ("version", "path", "tool"),
    [
        ("2022.1", "vitis_hls,vitis-run", ["vitis_hls", "-f"]),
        ("2022.1", "vitis_hls", ["vitis_hls", "-f"]),
        ("2024.1", "vitis_hls,vitis-run", ["vitis-run", "--mode", "hls", "--tcl"]),
        ("2024.1", "vitis_hls", ["vitis_hls", "-f"]),
    ],
)
def test_child_hls_command(tmp_path: Path, version: str, path: str, tool: list[str]) -> None:
    run = dry_run(
        tmp_path, BUILD_TCL, "stop_after=hls", sets=(f"version={version}", f"path={path}")
    )
    assert run.rc == 0, run.stderr
    args = hls_exec(run)["args"]
    assert args[-4:] == [">@", "stdout", "2>@", "stderr"]
    start = args.index(tool[0])
    assert args[start : start + len(tool) + 1] == [*tool, str(HLS_TCL)]


def test_no_hls_tool_fails_with_fix(tmp_path: Path) -> None:
    run = dry_run(tmp_path, BUILD_TCL, sets=("path=",))
    assert run.rc == 1
    assert "settings64.sh" in run.stderr
    assert not run.find("exec")


def test_part_clock_and_ps(tmp_path: Path) -> None:
    run = dry_run(tmp_path, BUILD_TCL)
    (proj,) = run.find("create_project")
    assert proj["args"][proj["args"].index("-part") + 1] == "xc7z020clg400-1"
    ps7 = run.bd_dict("ps7")
    assert ps7["CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ"] == "100"
    assert ps7["CONFIG.PCW_USE_S_AXI_HP0"] == "1"
    assert ps7["CONFIG.PCW_S_AXI_HP0_DATA_WIDTH"] == "64"
    assert ps7["CONFIG.PCW_USE_M_AXI_GP0"] == "1"
    # Without board files: the part plus explicit PS7 settings, no board preset.
    assert ps7["CONFIG.PCW_UIPARAM_DDR_PARTNO"] == "MT41J256M16 RE-125"
    assert ps7["CONFIG.PCW_CRYSTAL_PERIPHERAL_FREQMHZ"] == "50"
    (auto,) = run.find("apply_bd_automation", "xilinx.com:bd_rule:processing_system7")
    assert auto["dict"]["apply_board_preset"] == "0"
    assert not run.find("set_property", "board_part")


def test_board_repo(tmp_path: Path) -> None:
    boards = tmp_path / "boards"
    boards.mkdir()
    run = dry_run(tmp_path, BUILD_TCL, f"board_repo={boards}")
    assert run.rc == 0, run.stderr
    assert run.index("set_param", "board.repoPaths") < run.index("create_project")
    assert run.find("set_property", "board_part", "tul.com.tw:pynq-z2:part0:1.0")
    (auto,) = run.find("apply_bd_automation", "xilinx.com:bd_rule:processing_system7")
    assert auto["dict"]["apply_board_preset"] == "1"
    info = json.loads((run.scratch / "kcnn.json").read_text())
    assert info["board_part"] == "tul.com.tw:pynq-z2:part0:1.0"


def test_board_repo_problems_fail_early(tmp_path: Path) -> None:
    run = dry_run(tmp_path, BUILD_TCL, f"board_repo={tmp_path / 'nope'}")
    assert run.rc == 1 and "board_repo" in run.stderr
    assert not run.find("exec"), "must fail before the HLS step"
    boards = tmp_path / "boards"
    boards.mkdir()
    run = dry_run(tmp_path, BUILD_TCL, f"board_repo={boards}", sets=("no_board=1",))
    assert run.rc == 1 and "pynq-z2" in run.stderr
    assert not run.find("create_bd_design")
    run = dry_run(tmp_path, BUILD_TCL, sets=("no_part=1",))
    assert run.rc == 1 and "not installed" in run.stderr
    assert not run.find("create_project")


def test_dma_settings(tmp_path: Path) -> None:
    """Two DMAs in simple mode with 26-bit lengths and 64-bit words: "dma" sends stream A and
    receives the answers, "dma_w" only sends stream B."""
    run = dry_run(tmp_path, BUILD_TCL)
    for cell, s2mm in (("dma", "1"), ("dma_w", "0")):
        dma = run.bd_dict(cell)
        assert dma["CONFIG.c_include_sg"] == "0"
        assert dma["CONFIG.c_sg_length_width"] == "26"
        assert dma["CONFIG.c_include_mm2s"] == "1"
        assert dma["CONFIG.c_include_s2mm"] == s2mm
        keys = ["c_m_axi_mm2s_data_width", "c_m_axis_mm2s_tdata_width"]
        if s2mm == "1":
            keys += ["c_m_axi_s2mm_data_width", "c_s_axis_s2mm_tdata_width"]
        for key in keys:
            assert dma[f"CONFIG.{key}"] == "64", (cell, key)
    cells = [c["args"][-1] for c in run.find("create_bd_cell", "xilinx.com:ip:axi_dma:7.1")]
    assert cells == ["dma", "dma_w"]


def test_dma_config_names_are_real_axi_dma_parameters(tmp_path: Path) -> None:
    run = dry_run(tmp_path, BUILD_TCL)
    for cell in ("dma", "dma_w"):
        dma = run.bd_dict(cell)
        assert dma
        names = {key.removeprefix("CONFIG.") for key in dma}
        assert all(key.startswith("CONFIG.") for key in dma)
        assert names <= AXI_DMA_PARAMS, names - AXI_DMA_PARAMS


def test_each_dma_master_has_its_own_hp_port(tmp_path: Path) -> None:
    run = dry_run(tmp_path, BUILD_TCL)
    data = {
        c["dict"]["Master"]: c["dict"]["Slave"]
        for c in run.find("apply_bd_automation", "xilinx.com:bd_rule:axi4")
        if c["dict"]["Master"] != "/ps7/M_AXI_GP0"
    }
    assert data == {
        "/dma/M_AXI_MM2S": "/ps7/S_AXI_HP0",
        "/dma/M_AXI_S2MM": "/ps7/S_AXI_HP1",
        "/dma_w/M_AXI_MM2S": "/ps7/S_AXI_HP2",
    }
    ps7 = run.bd_dict("ps7")
    for hp in (0, 1, 2):
        assert ps7[f"CONFIG.PCW_USE_S_AXI_HP{hp}"] == "1"
        assert ps7[f"CONFIG.PCW_S_AXI_HP{hp}_DATA_WIDTH"] == "64"


def test_one_stream_build_has_no_weights_dma(tmp_path: Path) -> None:
    run = dry_run(tmp_path, BUILD_TCL, "STREAMS=1", "ip_repo=" + str(tmp_path))
    assert run.rc == 0, run.stderr
    assert not run.bd_dict("dma_w") and "CONFIG.PCW_USE_S_AXI_HP2" not in run.bd_dict("ps7")
    nets = [c["args"] for c in run.find("connect_bd_intf_net")]
    assert nets == [["dma/M_AXIS_MM2S", "kcnn/in_a"], ["kcnn/out_stream", "dma/S_AXIS_S2MM"]]
    assert json.loads((run.scratch / "kcnn.json").read_text())["build"]["STREAMS"] == 1


def test_streams_and_control_match_the_hls_top(tmp_path: Path) -> None:
    source = (ROOT / "hls" / "kcnn_top.cpp").read_text()
    assert re.search(r"\bvoid kcnn_top\(", source)
    axis = re.findall(r"INTERFACE mode\s*=\s*axis port\s*=\s*(\w+)", source)
    assert sorted(axis) == ["in_a", "in_b", "out_stream"]
    assert re.search(r"bundle\s*=\s*CTRL", source)
    run = dry_run(tmp_path, BUILD_TCL)
    nets = [c["args"] for c in run.find("connect_bd_intf_net")]
    assert nets == [
        ["dma/M_AXIS_MM2S", "kcnn/in_a"],
        ["kcnn/out_stream", "dma/S_AXIS_S2MM"],
        ["dma_w/M_AXIS_MM2S", "kcnn/in_b"],
    ]
    slaves = [c["args"][-1] for c in run.find("apply_bd_automation", "xilinx.com:bd_rule:axi4")]
    assert {"dma/S_AXI_LITE", "dma_w/S_AXI_LITE", "kcnn/s_axi_CTRL"} <= set(slaves)


def test_outputs_written_into_overlay(tmp_path: Path) -> None:
    run = dry_run(tmp_path, BUILD_TCL)
    overlay = ROOT / "overlay"
    copies = {Path(c["args"][-1]).name: c["args"][-2] for c in run.find("file copy")}
    for name in ("kcnn.bit", "kcnn.hwh"):
        assert any(Path(c["args"][-1]) == overlay / name for c in run.find("file copy")), name
    assert copies["kcnn.bit"].endswith("kcnn_overlay.runs/impl_1/kcnn_bd_wrapper.bit")
    assert "kcnn_overlay.gen/sources_1/bd/kcnn_bd/hw_handoff/kcnn_bd.hwh" in copies["kcnn.hwh"]
    for report in ("utilization", "timing"):
        assert copies[f"kcnn_{report}.rpt"].endswith(f"reports/kcnn_{report}.rpt")
    assert run.find("open", str(overlay / "kcnn.json"), "w")
    info = json.loads((run.scratch / "kcnn.json").read_text())
    assert info["contract"] == ARITHMETIC_CONTRACT
    assert info["build"] == DEFAULTS
    assert info["ip"] == "xilinx.com:hls:kcnn_top:1.0"
    assert info["part"] == "xc7z020clg400-1"
    assert info["timing"] == {"wns_ns": 0.5, "met": True, "negative_slack_allowed": False}
    assert info["utilization"] == {"lut": 35012, "ff": 30117, "bram36": 86.5, "dsp48": 160}
    # A good build removes what an earlier failed one left.
    deleted = {Path(c["args"][-1]).name for c in run.find("file delete")}
    assert {"kcnn_timing_failed.bit", "kcnn_timing_failed.json"} <= deleted


def test_hwh_from_srcs_when_no_gen(tmp_path: Path) -> None:
    run = dry_run(tmp_path, BUILD_TCL, sets=("missing=*.gen/*",))
    assert run.rc == 0, run.stderr
    copies = {Path(c["args"][-1]).name: c["args"][-2] for c in run.find("file copy")}
    assert "kcnn_overlay.srcs/sources_1/bd/kcnn_bd/hw_handoff/kcnn_bd.hwh" in copies["kcnn.hwh"]


def test_stop_after_hls(tmp_path: Path) -> None:
    run = dry_run(tmp_path, BUILD_TCL, "stop_after=hls")
    assert run.rc == 0
    assert run.find("exec")
    assert run.calls[-1] == {"cmd": "exit", "args": ["0"]}
    assert not run.find("create_project") and not run.find("file copy")


def test_stop_after_bd(tmp_path: Path) -> None:
    run = dry_run(tmp_path, BUILD_TCL, "stop_after=bd")
    assert run.rc == 0
    assert run.find("validate_bd_design") and run.find("make_wrapper")
    assert not run.find("launch_runs") and not run.find("file copy")


def test_options_propagate(tmp_path: Path) -> None:
    run = dry_run(tmp_path, BUILD_TCL, "P=8", "clock_mhz=125")
    assert run.rc == 0, run.stderr
    env = hls_exec(run)["env"]
    assert env["KCNN_P"] == "8"
    assert env["KCNN_CLOCK_MHZ"] == "125"
    assert env["KCNN_PART"] == "xc7z020clg400-1"
    for key in BUILD_PARAMETERS:
        if key != "P":
            assert env[f"KCNN_{key}"] == str(DEFAULTS[key]), key
    assert Path(env["KCNN_HLS_SRC"]) == ROOT / "hls"
    assert run.bd_dict("ps7")["CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ"] == "125"
    info = json.loads((run.scratch / "kcnn.json").read_text())
    assert info["build"]["P"] == 8 and info["build"]["CLOCK_MHZ"] == 125
    run = dry_run(tmp_path, BUILD_TCL, "part=xc7z020clg484-1")
    (proj,) = run.find("create_project")
    assert "xc7z020clg484-1" in proj["args"]
    assert hls_exec(run)["env"]["KCNN_PART"] == "xc7z020clg484-1"


@pytest.mark.parametrize(
    "arg",
    [
        "P=0",
        "P=x",
        "P=12",
        "STREAMS=3",
        "LRN_LANES=32",
        "CH_MAX=128",
        "clock_mhz=fast",
        "clock_mhz=300",
        "stop_after=impl",
        "allow_negative_slack=yes",
        "colour=red",
    ],
)
def test_bad_options_fail(tmp_path: Path, arg: str) -> None:
    run = dry_run(tmp_path, BUILD_TCL, arg)
    assert run.rc == 1 and "ERROR" in run.stderr
    assert not run.find("exec")


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("unrouted=net_a net_b",), "not fully routed"),
        (("progress=80%",), "did not finish"),
        (("missing=*kcnn_bd_wrapper.bit",), "bitstream missing"),
        (("missing=*.hwh",), "hand-off missing"),
        (("missing=*/overlay/kcnn.json",), "expected output missing"),
    ],
)
def test_build_fails(tmp_path: Path, sets: tuple[str, ...], message: str) -> None:
    run = dry_run(tmp_path, BUILD_TCL, sets=sets)
    assert run.rc == 1
    assert message in run.stderr
    assert run.calls[-1] == {"cmd": "exit", "args": ["1"]}


def python_accepts(key: str, value) -> bool:
    try:
        BuildParams.from_mapping({key: value})
    except KcnnError:
        return False
    return True


def candidate_values(key: str) -> list:
    low, high = BuildParams.RANGES[key]
    values = [0, -low, low // 2 if low > 1 else 3, low, 2 * low, high, 2 * high, low + 1, 3 * low]
    return sorted({v for v in values if v != 0} | {0}) + ["x", "1.5"]


def test_tcl_validates_build_parameters_as_build_params_does(tmp_path: Path) -> None:
    """Every build parameter, in range and out of it, powers of two and not: build.tcl
    accepts exactly what kcnn.config.BuildParams accepts."""
    decisions = []
    for key in BUILD_PARAMETERS:
        for value in candidate_values(key):
            run = dry_run(
                tmp_path, BUILD_TCL, f"{key}={value}", f"ip_repo={tmp_path}", "stop_after=bd"
            )
            tcl = run.rc == 0
            assert tcl == python_accepts(key, value), (key, value, run.stderr)
            decisions.append(tcl)
    assert True in decisions and False in decisions
    for clock, ok in (
        ("9.5", False),
        ("10", True),
        ("142.857", True),
        ("250", True),
        ("251", False),
    ):
        run = dry_run(
            tmp_path, BUILD_TCL, f"clock_mhz={clock}", f"ip_repo={tmp_path}", "stop_after=bd"
        )
        assert (run.rc == 0) == ok == python_accepts("CLOCK_MHZ", clock), clock


def test_build_ip_tcl_takes_every_build_parameter(tmp_path: Path) -> None:
    env = {f"KCNN_{key}": str(DEFAULTS[key] // 2 or 1) for key in BUILD_PARAMETERS}
    run = dry_run(tmp_path, HLS_TCL, env=env)
    (top,) = run.find("add_files", str(ROOT / "hls" / "kcnn_top.cpp"))
    flags = top["args"][top["args"].index("-cflags") + 1].split()
    for key in BUILD_PARAMETERS:
        assert f"-DKCNN_{key}={env[f'KCNN_{key}']}" in flags, key


@pytest.mark.parametrize("key, value", [("STREAMS", "1"), ("LRN_LANES", "4"), ("CH_MAX", "512")])
def test_a_parameter_hls_would_not_get_is_refused(tmp_path: Path, key: str, value: str) -> None:
    """A build parameter hls/build_ip.tcl does not turn into -D would silently keep the
    header's default in the IP: with an older build_ip.tcl that passes P, IN_DEPTH, W_DEPTH
    and OUT_DEPTH only, a different value stops the build before HLS runs."""
    run = dry_run(tmp_path, BUILD_TCL, f"{key}={value}")
    assert run.rc == 0, run.stderr
    assert hls_exec(run)["env"][f"KCNN_{key}"] == value
    repo = tmp_path / "repo"
    (repo / "hls").mkdir(parents=True)
    shutil.copy(BUILD_TCL, repo / "build.tcl")
    shutil.copy(ROOT / "hls" / "kcnn_config.h", repo / "hls" / "kcnn_config.h")
    older = re.sub(
        r"^set kcnn_params \{[^}]*\}",
        "set kcnn_params {P IN_DEPTH W_DEPTH OUT_DEPTH}",
        HLS_TCL.read_text(),
        flags=re.M,
    )
    (repo / "hls" / "build_ip.tcl").write_text(older)
    run = dry_run(tmp_path, repo / "build.tcl", f"{key}={value}")
    assert run.rc == 1 and f"{key}={value} differs from the default" in run.stderr
    assert "hls/build_ip.tcl passes only" in run.stderr and not run.find("exec")
    assert dry_run(tmp_path, repo / "build.tcl", "P=8").rc == 0  # it does pass P
    # With an IP built elsewhere there is no HLS step to miss it.
    run = dry_run(tmp_path, repo / "build.tcl", f"{key}={value}", f"ip_repo={tmp_path}")
    assert run.rc == 0, run.stderr


# ---- issue 14 point 2: timing, reports, an IP built elsewhere ------------------------------


def test_negative_slack_keeps_the_build_under_timing_failed_names_and_exits_1(
    tmp_path: Path,
) -> None:
    run = dry_run(tmp_path, BUILD_TCL, sets=("wns=-0.042",))
    assert run.rc == 1
    assert "timing not met: WNS -0.042 ns at 100 MHz" in run.stderr
    assert "kcnn_timing_failed" in run.stderr
    overlay = ROOT / "overlay"
    copied = {Path(c["args"][-1]) for c in run.find("file copy")}
    assert copied == {
        overlay / f"kcnn_timing_failed{suffix}"
        for suffix in (".bit", ".hwh", "_utilization.rpt", "_timing.rpt")
    }
    assert run.find("open", str(overlay / "kcnn_timing_failed.json"), "w")
    assert not run.find("file delete")
    info = json.loads((run.scratch / "kcnn_timing_failed.json").read_text())
    assert info["timing"] == {"wns_ns": -0.042, "met": False, "negative_slack_allowed": False}
    assert run.calls[-1] == {"cmd": "exit", "args": ["1"]}


def test_allow_negative_slack_keeps_the_normal_names_with_a_warning(tmp_path: Path) -> None:
    run = dry_run(tmp_path, BUILD_TCL, "allow_negative_slack=1", sets=("wns=-0.042",))
    assert run.rc == 0, run.stderr
    assert "WARNING: build.tcl: timing not met (WNS -0.042 ns" in run.stdout
    copied = {Path(c["args"][-1]).name for c in run.find("file copy")}
    assert copied == {"kcnn.bit", "kcnn.hwh", "kcnn_utilization.rpt", "kcnn_timing.rpt"}
    info = json.loads((run.scratch / "kcnn.json").read_text())
    assert info["timing"] == {"wns_ns": -0.042, "met": False, "negative_slack_allowed": True}


@pytest.mark.parametrize(
    "wns, expected",
    [
        ("0.5", 0.5),
        ("1e-3", 1e-3),
        (".25", 0.25),
        ("", None),
        ("inf", None),
        ("NaN", None),
        ("{}", None),
        ('1"2', None),
    ],
)
def test_kcnn_json_is_valid_whatever_the_tool_returns(tmp_path: Path, wns, expected) -> None:
    garbage = tmp_path / "util.rpt"
    garbage.write_text('| Slice LUTs | 1,234 |\n| DSPs | "x" |\n| Block RAM Tile | 3.5 |\n')
    run = dry_run(
        tmp_path, BUILD_TCL, "allow_negative_slack=1", sets=(f"wns={wns}", f"util={garbage}")
    )
    assert run.rc == 0, run.stderr
    info = json.loads((run.scratch / "kcnn.json").read_text())
    assert info["timing"]["wns_ns"] == expected
    assert info["timing"]["met"] is (expected is not None and expected >= 0)
    assert info["utilization"] == {"lut": None, "ff": None, "bram36": 3.5, "dsp48": None}


def test_no_wns_reported_is_not_a_pass(tmp_path: Path) -> None:
    run = dry_run(tmp_path, BUILD_TCL, sets=("wns=",))
    assert run.rc == 1 and "WNS not reported" in run.stderr
    info = json.loads((run.scratch / "kcnn_timing_failed.json").read_text())
    assert info["timing"]["wns_ns"] is None and info["timing"]["met"] is False


def test_ip_repo_skips_the_hls_step(tmp_path: Path) -> None:
    ip = tmp_path / "ip"
    run = dry_run(tmp_path, BUILD_TCL, f"ip_repo={ip}", sets=("path=",))
    assert run.rc == 0, run.stderr
    assert not run.find("exec")
    assert run.find("set_property", "ip_repo_paths", str(ip))
    info = json.loads((run.scratch / "kcnn.json").read_text())
    assert info["ip_repo"] == str(ip) and info["hls_tool"] == ""
    run = dry_run(tmp_path, BUILD_TCL, f"ip_repo={ip}", sets=("missing=*component.xml",))
    assert run.rc == 1 and "holds no component.xml" in run.stderr
    assert not run.find("create_project")
    run = dry_run(tmp_path, BUILD_TCL, f"ip_repo={ip}", "stop_after=hls")
    assert run.rc == 1 and "no HLS step" in run.stderr


def test_missing_ip_stops_before_vivado(tmp_path: Path) -> None:
    run = dry_run(tmp_path, BUILD_TCL, sets=("missing=*component.xml",))
    assert run.rc == 1 and "exported no IP" in run.stderr
    assert not run.find("create_project")


# ---- hls/build_ip.tcl --------------------------------------------------------------------


def test_hls_script_steps(tmp_path: Path) -> None:
    run = dry_run(tmp_path, HLS_TCL)
    assert run.rc == 0, run.stderr
    order = [
        run.index("open_project", "kcnn_prj"),
        run.index("set_top", "kcnn_top"),
        run.index("add_files", str(ROOT / "hls" / "kcnn_top.cpp")),
        run.index("add_files", "-tb", str(ROOT / "hls" / "tb_kcnn.cpp")),
        run.index("open_solution"),
        run.index("set_part", "xc7z020clg400-1"),
        run.index("create_clock", "-period", "10"),
        run.index("csynth_design"),
        run.index("export_design", "-format", "ip_catalog"),
        run.index("exit"),
    ]
    assert order == sorted(order)
    assert run.find("add_files", "-tb", str(ROOT / "hls" / "vectors" / "golden.txt"))
    assert not run.find("csim_design"), "csim only when asked"
    (export,) = run.find("export_design")
    a = export["args"]
    vlnv = ":".join(a[a.index(k) + 1] for k in ("-vendor", "-library")) + ":kcnn_top:"
    assert vlnv + a[a.index("-version") + 1] == "xilinx.com:hls:kcnn_top:1.0"
    assert run.index("cd") < run.index("open_project")


def test_hls_cflags(tmp_path: Path) -> None:
    run = dry_run(tmp_path, HLS_TCL)
    adds = run.find("add_files")
    sources = {Path(c["args"][0 if c["args"][0] != "-tb" else 1]).name for c in adds}
    assert "kcnn_top.cpp" in sources and "kcnn_config.h" in sources
    for call in adds:
        assert not any("csim_include" in a for a in call["args"]), call
    flagged = [c for c in adds if "-cflags" in c["args"]]
    for call in flagged:
        flags = call["args"][call["args"].index("-cflags") + 1]
        assert "-std=c++14" in flags.split()
        assert f"-I{ROOT / 'hls'}" in flags.split()
    assert any("tb_kcnn.cpp" in c["args"][1] for c in flagged if c["args"][0] == "-tb")


def test_hls_parameters_from_env_and_args(tmp_path: Path) -> None:
    env = {"KCNN_P": "8", "KCNN_CLOCK_MHZ": "125", "KCNN_W_DEPTH": "131072", "KCNN_CSIM": "1"}
    run = dry_run(tmp_path, HLS_TCL, env=env)
    assert run.rc == 0, run.stderr
    assert run.find("create_clock", "-period", "8")
    (top,) = run.find("add_files", str(ROOT / "hls" / "kcnn_top.cpp"))
    flags = top["args"][top["args"].index("-cflags") + 1].split()
    assert "-DKCNN_P=8" in flags and "-DKCNN_W_DEPTH=131072" in flags
    assert not any(f.startswith("-DKCNN_IN_DEPTH") for f in flags)
    assert run.index("csim_design") < run.index("csynth_design")
    (csim,) = run.find("csim_design")
    assert csim["args"] == ["-argv", str(ROOT / "hls" / "vectors" / "golden.txt")]
    # A key=value argument (vitis_hls -f ... -tclargs P=4) wins over the environment.
    run = dry_run(tmp_path, HLS_TCL, "P=4", env=env)
    (top,) = run.find("add_files", str(ROOT / "hls" / "kcnn_top.cpp"))
    assert "-DKCNN_P=4" in top["args"][top["args"].index("-cflags") + 1].split()
    run = dry_run(tmp_path, HLS_TCL, env={"KCNN_P": "zero"})
    assert run.rc == 1 and not run.find("open_project")


def test_hls_default_work_folder_is_ignored_build(tmp_path: Path) -> None:
    run = dry_run(tmp_path, HLS_TCL)
    (cd,) = run.find("cd")
    assert Path(cd["args"][0]) == ROOT / "build" / "hls"
