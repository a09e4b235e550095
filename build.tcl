# Build the KCNN overlay for the PYNQ-Z2: HLS IP -> block design -> bitstream -> overlay/.
#
#   vivado -mode batch -source build.tcl [-tclargs key=value ...]
#
# Vivado 2022.1 (PYNQ 3.0 images) or 2024.1 (PYNQ 3.1). Options (all optional):
#   part=xc7z020clg400-1   FPGA part
#   board_repo=DIR         folder holding the TUL pynq-z2 board files (board part
#                          tul.com.tw:pynq-z2:part0:*); without it the plain part is used with
#                          explicit PS7 settings, as PYNQ's own base overlay does
#   clock_mhz=100          FCLK_CLK0 and the HLS clock target
#   P=16 IN_DEPTH= W_DEPTH= OUT_DEPTH=   build parameters, passed to HLS as -DKCNN_<name>=...
#                          (defaults: the values in hls/kcnn_config.h)
#   stop_after=hls|bd      stop after the HLS IP, or after the validated block design + wrapper
#   hls_tool=vitis_hls|vitis-run   force the HLS launcher (default: chosen from the Vivado
#                          version and what is on PATH)
#   jobs=4                 parallel jobs for implementation
# Outputs: overlay/kcnn.bit, overlay/kcnn.hwh, overlay/kcnn.json and the reports
# overlay/kcnn_utilization.rpt, overlay/kcnn_timing.rpt; work folders under build/.
# Exit status 1 when a step fails, timing is not met (WNS < 0), a net is left unrouted or an
# expected output is missing.

set repo [file dirname [file normalize [info script]]]
set hls_src [file join $repo hls]
set out_dir [file join $repo overlay]
set build_dir [file join $repo build]
set hls_work [file join $build_dir hls]
set vivado_dir [file join $build_dir vivado]
set proj kcnn_overlay
set bd kcnn_bd
set ip_vlnv xilinx.com:hls:kcnn_top:1.0
set board_part_pattern tul.com.tw:pynq-z2:part0:*

proc fail {msg} {
    puts stderr "ERROR: build.tcl: $msg"
    exit 1
}

proc step {name} {
    puts "==== build.tcl: $name"
}

# ---- shared configuration, read from the generated header (one source of truth) --------------
# The arithmetic contract and the build-parameter defaults are taken from hls/kcnn_config.h,
# which kcnn.jobs.config_header() generates from kcnn/config.py; JSON keys follow kcnn/config.py.
set header_path [file join $hls_src kcnn_config.h]
set fh [open $header_path r]
set header [read $fh]
close $fh
set macros [dict create]
foreach {-> name value} [regexp -all -inline -line {^#define KCNN_([A-Z_]+) ([0-9]+)$} $header] {
    dict set macros $name $value
}
set contract_keys {K_MAX K_MAX J_MAX J_MAX ACC_BITS ACC_BITS BW bw BA ba PROTOCOL protocol}
set build_keys {P IN_DEPTH W_DEPTH OUT_DEPTH}
foreach name [concat [dict keys $contract_keys] $build_keys] {
    if {![dict exists $macros $name]} {
        fail "KCNN_$name not found in $header_path"
    }
}

# ---- options ---------------------------------------------------------------------------------
array set opt [list part xc7z020clg400-1 board_repo "" clock_mhz 100 stop_after "" \
    hls_tool "" jobs 4]
foreach name $build_keys {
    set opt($name) [dict get $macros $name]
}
foreach arg $argv {
    if {![regexp {^([A-Za-z_]+)=(.*)$} $arg -> key value] || ![info exists opt($key)]} {
        fail "unknown argument '$arg'; known: [lsort [array names opt]] (as key=value)"
    }
    set opt($key) $value
}
foreach name [concat $build_keys jobs] {
    if {![string is integer -strict $opt($name)] || $opt($name) <= 0} {
        fail "$name must be a positive integer, got '$opt($name)'"
    }
}
if {![string is double -strict $opt(clock_mhz)] || $opt(clock_mhz) <= 0} {
    fail "clock_mhz must be a positive number, got '$opt(clock_mhz)'"
}
if {$opt(stop_after) ni {"" hls bd}} {
    fail "stop_after must be hls or bd, got '$opt(stop_after)'"
}
if {$opt(hls_tool) ni {"" vitis_hls vitis-run}} {
    fail "hls_tool must be vitis_hls or vitis-run, got '$opt(hls_tool)'"
}
if {$opt(board_repo) ne ""} {
    set opt(board_repo) [file normalize $opt(board_repo)]
    if {![file isdirectory $opt(board_repo)]} {
        fail "board_repo=$opt(board_repo) is not a folder. Give the folder that holds the\
            pynq-z2 board files (XilinxBoardStore boards/TUL/pynq-z2), or leave board_repo out to\
            build for part=$opt(part) with explicit PS7 settings."
    }
}
set vivado_version [version -short]
puts "build.tcl: Vivado $vivado_version, part $opt(part), clock $opt(clock_mhz) MHz,\
    P=$opt(P) IN_DEPTH=$opt(IN_DEPTH) W_DEPTH=$opt(W_DEPTH) OUT_DEPTH=$opt(OUT_DEPTH)"

# ---- 1. HLS IP, as a child process (HLS commands never run inside Vivado) --------------------
step "HLS IP"
set hls_tool $opt(hls_tool)
if {$hls_tool eq ""} {
    set have_run [expr {[auto_execok vitis-run] ne ""}]
    set have_hls [expr {[auto_execok vitis_hls] ne ""}]
    # vitis-run is the launcher from 2023.2 on; vitis_hls before (and deprecated in 2024.2).
    if {$have_run && [package vcompare $vivado_version 2023.2] >= 0} {
        set hls_tool vitis-run
    } elseif {$have_hls} {
        set hls_tool vitis_hls
    } elseif {$have_run} {
        set hls_tool vitis-run
    } else {
        fail "neither vitis_hls nor vitis-run is on PATH. Source the Vitis settings first\
            (e.g. source <Xilinx>/Vitis_HLS/2022.1/settings64.sh or\
            <Xilinx>/Vitis/2024.1/settings64.sh)."
    }
}
set hls_script [file join $hls_src build_ip.tcl]
if {$hls_tool eq "vitis-run"} {
    set hls_cmd [list vitis-run --mode hls --tcl $hls_script]
} else {
    set hls_cmd [list vitis_hls -f $hls_script]
}
# build_ip.tcl reads its parameters from the environment (both launchers pass it on).
set ::env(KCNN_HLS_SRC) $hls_src
set ::env(KCNN_HLS_WORK) $hls_work
set ::env(KCNN_PART) $opt(part)
set ::env(KCNN_CLOCK_MHZ) $opt(clock_mhz)
foreach name $build_keys {
    set ::env(KCNN_$name) $opt($name)
}
file mkdir $hls_work
puts "build.tcl: running $hls_cmd"
if {[catch {exec -ignorestderr {*}$hls_cmd >@ stdout 2>@ stderr} err]} {
    fail "HLS step failed ($hls_cmd): $err"
}
set ip_repo [file join $hls_work kcnn_prj sol1 impl ip]
if {![file exists [file join $ip_repo component.xml]]} {
    fail "the HLS step exported no IP: [file join $ip_repo component.xml] is missing"
}
if {$opt(stop_after) eq "hls"} {
    puts "build.tcl: stop_after=hls: IP in $ip_repo"
    exit 0
}

# ---- 2. Vivado project -------------------------------------------------------------------
step "Vivado project"
if {[llength [get_parts -quiet $opt(part)]] == 0} {
    fail "part $opt(part) is not installed in this Vivado. Add Zynq-7000 device support\
        (Vivado installer: Help > Add Design Tools or Devices) or give part=<an installed part>."
}
if {$opt(board_repo) ne ""} {
    set_param board.repoPaths [list $opt(board_repo)]
}
create_project -force $proj [file join $vivado_dir $proj] -part $opt(part)
set board_part ""
if {$opt(board_repo) ne ""} {
    set board_part [lindex [lsort [get_board_parts -quiet $board_part_pattern]] end]
    if {$board_part eq ""} {
        fail "no board part $board_part_pattern in board_repo=$opt(board_repo). Install the pynq-z2\
            board files there (XilinxBoardStore boards/TUL/pynq-z2/A.0, or the TUL zip), or leave\
            board_repo out to build for the part with explicit PS7 settings."
    }
    set_property board_part $board_part [current_project]
}
set_property ip_repo_paths [list $ip_repo] [current_project]
update_ip_catalog
if {[llength [get_ipdefs -quiet $ip_vlnv]] == 0} {
    fail "IP $ip_vlnv not found in $ip_repo"
}

# ---- 3. Block design -----------------------------------------------------------------------
step "block design"
create_bd_design $bd
set ps7 [create_bd_cell -type ip -vlnv xilinx.com:ip:processing_system7:5.5 ps7]
if {$board_part ne ""} {
    apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 -config {make_external\
        "FIXED_IO, DDR" apply_board_preset "1" Master "Disable" Slave "Disable"} $ps7
} else {
    apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 -config {make_external\
        "FIXED_IO, DDR" apply_board_preset "0" Master "Disable" Slave "Disable"} $ps7
    # The PYNQ-Z2 PS settings the overlay depends on (board preset values: 50 MHz crystal,
    # 650 MHz APU, 512 MB DDR3 on a 16-bit bus, UART0 on MIO 14..15). The image configures the
    # PS at boot; loading the overlay programs the PL and its clocks (from the .hwh).
    set_property -dict [list \
        CONFIG.PCW_CRYSTAL_PERIPHERAL_FREQMHZ {50} \
        CONFIG.PCW_APU_PERIPHERAL_FREQMHZ {650} \
        CONFIG.PCW_UIPARAM_DDR_PARTNO {MT41J256M16 RE-125} \
        CONFIG.PCW_UIPARAM_DDR_BUS_WIDTH {16 Bit} \
        CONFIG.PCW_UIPARAM_DDR_FREQ_MHZ {525} \
        CONFIG.PCW_UART0_PERIPHERAL_ENABLE {1} \
        CONFIG.PCW_UART0_UART0_IO {MIO 14 .. 15} \
    ] $ps7
}
# HP0 for the DMA (64 bit), GP0 for the control registers, FCLK_CLK0 at the build clock.
set_property -dict [list \
    CONFIG.PCW_USE_M_AXI_GP0 {1} \
    CONFIG.PCW_USE_S_AXI_HP0 {1} \
    CONFIG.PCW_S_AXI_HP0_DATA_WIDTH {64} \
    CONFIG.PCW_EN_CLK0_PORT {1} \
    CONFIG.PCW_EN_RST0_PORT {1} \
    CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ $opt(clock_mhz) \
] $ps7

# AXI DMA, simple mode, 64-bit memory map and streams, 26-bit length register (64 MB).
set dma [create_bd_cell -type ip -vlnv xilinx.com:ip:axi_dma:7.1 dma]
set_property -dict [list \
    CONFIG.c_include_sg {0} \
    CONFIG.c_sg_include_stscntrl_strm {0} \
    CONFIG.c_sg_length_width {26} \
    CONFIG.c_include_mm2s {1} \
    CONFIG.c_include_s2mm {1} \
    CONFIG.c_m_axi_mm2s_data_width {64} \
    CONFIG.c_m_axis_mm2s_tdata_width {64} \
    CONFIG.c_m_axi_s2mm_data_width {64} \
    CONFIG.c_s_axis_s2mm_tdata_width {64} \
] $dma

set kcnn [create_bd_cell -type ip -vlnv $ip_vlnv kcnn]

# Control: GP0 -> DMA registers and the kernel's s_axi_CTRL (new AXI interconnect, resets).
foreach {slave intc} {dma/S_AXI_LITE {New AXI Interconnect} kcnn/s_axi_CTRL Auto} {
    apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config [list Clk_master {Auto} \
        Clk_slave {Auto} Clk_xbar {Auto} Master {/ps7/M_AXI_GP0} Slave /$slave ddr_seg {Auto} \
        intc_ip $intc master_apm {0}] [get_bd_intf_pins $slave]
}
# Data: both DMA masters -> HP0 through one SmartConnect.
apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config [list Clk_master {Auto} Clk_slave {Auto} \
    Clk_xbar {Auto} Master {/dma/M_AXI_MM2S} Slave {/ps7/S_AXI_HP0} ddr_seg {Auto} \
    intc_ip {New AXI SmartConnect} master_apm {0}] [get_bd_intf_pins ps7/S_AXI_HP0]
set smc [lindex [get_bd_cells -filter {VLNV =~ "*:smartconnect:*"}] 0]
apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config [list Clk_master {Auto} Clk_slave {Auto} \
    Clk_xbar {Auto} Master {/dma/M_AXI_S2MM} Slave {/ps7/S_AXI_HP0} ddr_seg {Auto} \
    intc_ip $smc master_apm {0}] [get_bd_intf_pins dma/M_AXI_S2MM]
# Streams: DMA MM2S -> kcnn_top(in_stream); kcnn_top(out_stream) -> DMA S2MM.
connect_bd_intf_net [get_bd_intf_pins dma/M_AXIS_MM2S] [get_bd_intf_pins kcnn/in_stream]
connect_bd_intf_net [get_bd_intf_pins kcnn/out_stream] [get_bd_intf_pins dma/S_AXIS_S2MM]
# Any clock pin the automation left open goes to FCLK_CLK0 (with its reset).
foreach pin [get_bd_pins -quiet -of_objects [list $dma $kcnn] -filter {TYPE == clk}] {
    if {[llength [get_bd_nets -quiet -of_objects $pin]] == 0} {
        apply_bd_automation -rule xilinx.com:bd_rule:clkrst -config {Clk {/ps7/FCLK_CLK0}} $pin
    }
}
assign_bd_address
validate_bd_design
save_bd_design
set bd_file [get_files $bd.bd]
generate_target all $bd_file
add_files -norecurse [make_wrapper -files $bd_file -top]
set_property top ${bd}_wrapper [current_fileset]
update_compile_order -fileset sources_1
if {$opt(stop_after) eq "bd"} {
    puts "build.tcl: stop_after=bd: block design validated,\
        project in [file join $vivado_dir $proj]"
    exit 0
}

# ---- 4. Implementation to bitstream --------------------------------------------------------
step "implementation"
launch_runs impl_1 -to_step write_bitstream -jobs $opt(jobs)
wait_on_run impl_1
if {[get_property PROGRESS [get_runs impl_1]] ne "100%"} {
    fail "implementation did not finish: [get_property STATUS [get_runs impl_1]]"
}
open_run impl_1

# ---- 5. Reports and checks -----------------------------------------------------------------
step "reports"
set report_dir [file join $vivado_dir reports]
file mkdir $report_dir
report_utilization -file [file join $report_dir kcnn_utilization.rpt]
report_timing_summary -file [file join $report_dir kcnn_timing.rpt]
report_route_status -file [file join $report_dir kcnn_route_status.rpt]
set wns [get_property SLACK [get_timing_paths -max_paths 1 -nworst 1 -setup]]
if {$wns eq "" || ![string is double -strict $wns]} {
    fail "no setup slack reported (is the design constrained?)"
}
if {$wns < 0} {
    fail "timing not met: WNS $wns ns at $opt(clock_mhz) MHz\
        (see [file join $report_dir kcnn_timing.rpt])"
}
set unrouted [get_nets -quiet -hierarchical \
    -filter {ROUTE_STATUS == UNROUTED || ROUTE_STATUS == PARTIAL}]
if {[llength $unrouted] > 0} {
    fail "[llength $unrouted] nets not fully routed, e.g. [lindex $unrouted 0]"
}
puts "build.tcl: WNS $wns ns, all nets routed"

# ---- 6. Overlay files ----------------------------------------------------------------------
step "overlay files"
set proj_dir [file join $vivado_dir $proj]
set bit [file join $proj_dir $proj.runs impl_1 ${bd}_wrapper.bit]
set hwh ""
# 2020.2 and later write the hand-off into .gen, older versions into .srcs.
foreach tree [list $proj.gen $proj.srcs] {
    set candidate [file join $proj_dir $tree sources_1 bd $bd hw_handoff $bd.hwh]
    if {[file exists $candidate]} {
        set hwh $candidate
        break
    }
}
if {![file exists $bit]} {
    fail "bitstream missing: $bit"
}
if {$hwh eq ""} {
    fail "hardware hand-off missing: no $bd.hwh under $proj.gen or $proj.srcs"
}
file mkdir $out_dir
file copy -force $bit [file join $out_dir kcnn.bit]
file copy -force $hwh [file join $out_dir kcnn.hwh]
foreach report {kcnn_utilization.rpt kcnn_timing.rpt} {
    file copy -force [file join $report_dir $report] [file join $out_dir $report]
}

# kcnn.json: the shared configuration this overlay was built with.
set contract_json {}
foreach {name key} $contract_keys {
    lappend contract_json "    \"$key\": [dict get $macros $name]"
}
set build_json {}
foreach name $build_keys {
    lappend build_json "    \"$name\": $opt($name)"
}
lappend build_json "    \"CLOCK_MHZ\": $opt(clock_mhz)"
set fh [open [file join $out_dir kcnn.json] w]
puts $fh "\{"
puts $fh "  \"contract\": \{\n[join $contract_json ",\n"]\n  \},"
puts $fh "  \"build\": \{\n[join $build_json ",\n"]\n  \},"
puts $fh "  \"ip\": \"$ip_vlnv\","
puts $fh "  \"part\": \"$opt(part)\","
puts $fh "  \"board_part\": \"$board_part\","
puts $fh "  \"vivado\": \"$vivado_version\","
puts $fh "  \"hls_tool\": \"$hls_tool\","
puts $fh "  \"wns_ns\": $wns"
puts $fh "\}"
close $fh

foreach name {kcnn.bit kcnn.hwh kcnn.json} {
    if {![file exists [file join $out_dir $name]]} {
        fail "expected output missing: [file join $out_dir $name]"
    }
}
puts "build.tcl: overlay written to $out_dir (kcnn.bit, kcnn.hwh, kcnn.json)"
exit 0
