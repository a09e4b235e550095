# Build the KCNN overlay for the PYNQ-Z2: HLS IP -> block design -> bitstream -> overlay/.
#
#   vivado -mode batch -source build.tcl [-tclargs key=value ...]
#
# Vivado 2022.1 (PYNQ 3.0 images) or 2024.1 (PYNQ 3.1). Options (all optional):
#   part=xc7z020clg400-1   FPGA part
#   board_repo=DIR         folder holding the TUL pynq-z2 board files (board part
#                          tul.com.tw:pynq-z2:part0:*); without it the plain part is used with
#                          explicit PS7 settings, as PYNQ's own base overlay does
#   clock_mhz=100          FCLK_CLK0 and the HLS clock target (10..250)
#   P= IN_DEPTH= W_DEPTH= OUT_DEPTH= STREAMS= LRN_LANES= CH_MAX=
#                          build parameters, passed to HLS as -DKCNN_<name>=... and written
#                          into kcnn.json (defaults: hls/kcnn_config.h); powers of two in the
#                          ranges kcnn.config.BuildParams accepts
#   ip_repo=DIR            an HLS IP already exported (the folder with component.xml): the
#                          HLS step is skipped; give the parameters it was built with (the
#                          probe at load refuses a mismatch)
#   allow_negative_slack=1 keep a build that misses timing under the normal names, with a
#                          warning (default: see "Exit status")
#   stop_after=hls|bd      stop after the HLS IP, or after the validated block design + wrapper
#   hls_tool=vitis_hls|vitis-run   force the HLS launcher (default: chosen from the Vivado
#                          version and what is on PATH)
#   jobs=4                 parallel jobs for implementation
# Outputs: overlay/kcnn.bit, overlay/kcnn.hwh, overlay/kcnn.json (with WNS and the post-route
# LUT/FF/BRAM/DSP counts) and overlay/kcnn_utilization.rpt, overlay/kcnn_timing.rpt; work
# folders under build/.
# Exit status 1 when a step fails, a net is left unrouted or an expected output is missing,
# and when timing is not met (WNS < 0, or no WNS reported): then the same five files are
# written as overlay/kcnn_timing_failed.* (which the overlay loader refuses unless asked),
# unless allow_negative_slack=1.

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
set failed_stem kcnn_timing_failed

proc fail {msg} {
    puts stderr "ERROR: build.tcl: $msg"
    exit 1
}

proc step {name} {
    puts "==== build.tcl: $name"
}

# A JSON string literal.
proc json_str {text} {
    set out ""
    foreach ch [split $text ""] {
        scan $ch %c code
        if {$ch eq "\"" || $ch eq "\\"} {
            append out "\\$ch"
        } elseif {$code < 32} {
            append out [format "\\u%04x" $code]
        } else {
            append out $ch
        }
    }
    return "\"$out\""
}

# A JSON number, or null for whatever a tool returned that is not a finite number.
proc json_num {value} {
    set value [string trim $value]
    if {[regexp {^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$} $value]} {
        return $value
    }
    if {[string is double -strict $value] && ![regexp -nocase {inf|nan} $value]} {
        return [format %.6g $value]
    }
    return null
}

# ---- shared configuration, read from the generated header (one source of truth) --------------
# The arithmetic contract and the build-parameter defaults are taken from hls/kcnn_config.h,
# which kcnn.protocol.config_header() generates from kcnn/config.py; JSON keys follow it.
set header_path [file join $hls_src kcnn_config.h]
set fh [open $header_path r]
set header [read $fh]
close $fh
set macros [dict create]
foreach {-> name value} [regexp -all -inline -line {^#define KCNN_([A-Z_]+) ([0-9]+)$} $header] {
    dict set macros $name $value
}
set contract_keys {K_MAX K_MAX J_MAX J_MAX ACC_BITS ACC_BITS BW bw BA ba PROTOCOL protocol}
# kcnn.config.BUILD_PARAMETERS, and the ranges kcnn.config.BuildParams.RANGES allows (powers
# of two from low to high); tests/test_tcl.py holds the two to the same decisions.
set build_ranges {
    P {8 32}
    IN_DEPTH {16384 1048576}
    W_DEPTH {256 4096}
    OUT_DEPTH {4096 1048576}
    STREAMS {1 2}
    LRN_LANES {1 16}
    CH_MAX {256 4096}
}
set build_keys [dict keys $build_ranges]
foreach name [concat [dict keys $contract_keys] $build_keys] {
    if {![dict exists $macros $name]} {
        fail "KCNN_$name not found in $header_path"
    }
}

# ---- options ---------------------------------------------------------------------------------
array set opt [list part xc7z020clg400-1 board_repo "" clock_mhz 100 stop_after "" \
    hls_tool "" jobs 4 ip_repo "" allow_negative_slack 0]
foreach name $build_keys {
    set opt($name) [dict get $macros $name]
}
foreach arg $argv {
    if {![regexp {^([A-Za-z_]+)=(.*)$} $arg -> key value] || ![info exists opt($key)]} {
        fail "unknown argument '$arg'; known: [lsort [array names opt]] (as key=value)"
    }
    set opt($key) $value
}
foreach name $build_keys {
    lassign [dict get $build_ranges $name] low high
    set value $opt($name)
    if {![regexp {^[0-9]+$} $value]} {
        fail "$name must be an integer, got '$value'"
    }
    set value [expr {$value + 0}]
    if {$value <= 0 || ($value & ($value - 1)) != 0 || $value < $low || $value > $high} {
        fail "$name=$value is not a power of two in \[$low, $high\]"
    }
    set opt($name) $value
}
if {$opt(IN_DEPTH) % (16 * $opt(P)) != 0} {
    fail "IN_DEPTH=$opt(IN_DEPTH) must hold whole 4-code words in 4 banks per partition\
        (a multiple of 16 * P)"
}
if {![regexp {^[0-9]+$} $opt(jobs)] || $opt(jobs) <= 0} {
    fail "jobs must be a positive integer, got '$opt(jobs)'"
}
if {![string is double -strict $opt(clock_mhz)] || [json_num $opt(clock_mhz)] eq "null"
        || $opt(clock_mhz) < 10 || $opt(clock_mhz) > 250} {
    fail "clock_mhz must be a number from 10 to 250, got '$opt(clock_mhz)'"
}
if {$opt(stop_after) ni {"" hls bd}} {
    fail "stop_after must be hls or bd, got '$opt(stop_after)'"
}
if {$opt(hls_tool) ni {"" vitis_hls vitis-run}} {
    fail "hls_tool must be vitis_hls or vitis-run, got '$opt(hls_tool)'"
}
if {$opt(allow_negative_slack) ni {0 1}} {
    fail "allow_negative_slack must be 0 or 1, got '$opt(allow_negative_slack)'"
}
if {$opt(board_repo) ne ""} {
    set opt(board_repo) [file normalize $opt(board_repo)]
    if {![file isdirectory $opt(board_repo)]} {
        fail "board_repo=$opt(board_repo) is not a folder. Give the folder that holds the\
            pynq-z2 board files (XilinxBoardStore boards/TUL/pynq-z2), or leave board_repo out to\
            build for part=$opt(part) with explicit PS7 settings."
    }
}
if {$opt(ip_repo) ne ""} {
    set opt(ip_repo) [file normalize $opt(ip_repo)]
    if {$opt(stop_after) eq "hls"} {
        fail "stop_after=hls with ip_repo=: there is no HLS step to stop after"
    }
    if {![file exists [file join $opt(ip_repo) component.xml]]} {
        fail "ip_repo=$opt(ip_repo) holds no component.xml: give the folder export_design\
            wrote (<project>/<solution>/impl/ip)"
    }
}
set vivado_version [version -short]
set params_text ""
foreach name $build_keys {
    append params_text " $name=$opt($name)"
}
puts "build.tcl: Vivado $vivado_version, part $opt(part), clock $opt(clock_mhz) MHz,$params_text"

# ---- 1. HLS IP, as a child process (HLS commands never run inside Vivado) --------------------
set hls_tool ""
if {$opt(ip_repo) ne ""} {
    step "HLS IP: skipped, using ip_repo=$opt(ip_repo)"
    set ip_repo $opt(ip_repo)
} else {
    step "HLS IP"
    # hls/build_ip.tcl turns the parameters it knows into -D flags; one it does not know would
    # silently keep the header's default, so a different value for it stops the build here.
    set hls_script [file join $hls_src build_ip.tcl]
    set fh [open $hls_script r]
    set hls_text [read $fh]
    close $fh
    set passed {}
    regexp -line {^set kcnn_params \{([^\}]*)\}} $hls_text -> passed
    foreach name $build_keys {
        if {$name ni $passed && $opt($name) != [dict get $macros $name]} {
            fail "$name=$opt($name) differs from the default [dict get $macros $name], but\
                hls/build_ip.tcl passes only '$passed' to HLS: the IP would be built with\
                the default. Build the IP with KCNN_$name set and give ip_repo=, or keep the\
                default."
        }
    }
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
                <Xilinx>/Vitis/2024.1/settings64.sh), or give ip_repo= with an exported IP."
        }
    }
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
set weights [expr {$opt(STREAMS) == 2}]
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
# GP0 for the control registers; stream A reads through HP0 and the answers write through
# HP1 (one DDR port, each direction with its own AXI port), the weights read through HP2
# (the other DDR port); all 64 bit, FCLK_CLK0 at the build clock.
set ps7_config [list \
    CONFIG.PCW_USE_M_AXI_GP0 {1} \
    CONFIG.PCW_USE_S_AXI_HP0 {1} \
    CONFIG.PCW_S_AXI_HP0_DATA_WIDTH {64} \
    CONFIG.PCW_USE_S_AXI_HP1 {1} \
    CONFIG.PCW_S_AXI_HP1_DATA_WIDTH {64} \
    CONFIG.PCW_EN_CLK0_PORT {1} \
    CONFIG.PCW_EN_RST0_PORT {1} \
    CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ $opt(clock_mhz)]
if {$weights} {
    lappend ps7_config CONFIG.PCW_USE_S_AXI_HP2 {1} CONFIG.PCW_S_AXI_HP2_DATA_WIDTH {64}
}
set_property -dict $ps7_config $ps7

# AXI DMAs in simple mode, 64-bit memory map and streams, 26-bit length registers (64 MB),
# 256-beat bursts: "dma" sends stream A and receives the answers, "dma_w" sends stream B.
set dma_config [list \
    CONFIG.c_include_sg {0} \
    CONFIG.c_sg_include_stscntrl_strm {0} \
    CONFIG.c_sg_length_width {26} \
    CONFIG.c_addr_width {32} \
    CONFIG.c_include_mm2s {1} \
    CONFIG.c_m_axi_mm2s_data_width {64} \
    CONFIG.c_m_axis_mm2s_tdata_width {64} \
    CONFIG.c_mm2s_burst_size {256}]
set dma [create_bd_cell -type ip -vlnv xilinx.com:ip:axi_dma:7.1 dma]
set_property -dict [concat $dma_config [list \
    CONFIG.c_include_s2mm {1} \
    CONFIG.c_m_axi_s2mm_data_width {64} \
    CONFIG.c_s_axis_s2mm_tdata_width {64} \
    CONFIG.c_s2mm_burst_size {256}]] $dma
set cells [list $dma]
if {$weights} {
    set dma_w [create_bd_cell -type ip -vlnv xilinx.com:ip:axi_dma:7.1 dma_w]
    set_property -dict [concat $dma_config [list CONFIG.c_include_s2mm {0}]] $dma_w
    lappend cells $dma_w
}
set kcnn [create_bd_cell -type ip -vlnv $ip_vlnv kcnn]
lappend cells $kcnn

# Control: GP0 -> the DMAs' registers and the kernel's s_axi_CTRL (one AXI interconnect).
set lite [list dma/S_AXI_LITE {New AXI Interconnect} kcnn/s_axi_CTRL Auto]
if {$weights} {
    lappend lite dma_w/S_AXI_LITE Auto
}
foreach {slave intc} $lite {
    apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config [list Clk_master {Auto} \
        Clk_slave {Auto} Clk_xbar {Auto} Master {/ps7/M_AXI_GP0} Slave /$slave ddr_seg {Auto} \
        intc_ip $intc master_apm {0}] [get_bd_intf_pins $slave]
}
# Data: each DMA master on its own HP port, through its own SmartConnect.
set data [list /dma/M_AXI_MM2S ps7/S_AXI_HP0 /dma/M_AXI_S2MM ps7/S_AXI_HP1]
if {$weights} {
    lappend data /dma_w/M_AXI_MM2S ps7/S_AXI_HP2
}
foreach {master port} $data {
    apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config [list Clk_master {Auto} \
        Clk_slave {Auto} Clk_xbar {Auto} Master $master Slave /$port ddr_seg {Auto} \
        intc_ip {New AXI SmartConnect} master_apm {0}] [get_bd_intf_pins $port]
}
# Streams (hls/KERNEL_SPEC.md): stream A and the answers on dma, stream B on dma_w. With
# STREAMS=1 the kernel never reads in_b and the port stays unconnected.
connect_bd_intf_net [get_bd_intf_pins dma/M_AXIS_MM2S] [get_bd_intf_pins kcnn/in_a]
connect_bd_intf_net [get_bd_intf_pins kcnn/out_stream] [get_bd_intf_pins dma/S_AXIS_S2MM]
if {$weights} {
    connect_bd_intf_net [get_bd_intf_pins dma_w/M_AXIS_MM2S] [get_bd_intf_pins kcnn/in_b]
}
# Any clock pin the automation left open goes to FCLK_CLK0 (with its reset).
foreach pin [get_bd_pins -quiet -of_objects $cells -filter {TYPE == clk}] {
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
# Physical optimisation after placement and after routing: the wide lane adders and the
# product-table multiplexers are where timing is tight.
set impl [get_runs impl_1]
set_property STEPS.PHYS_OPT_DESIGN.IS_ENABLED true $impl
set_property STEPS.POST_ROUTE_PHYS_OPT_DESIGN.IS_ENABLED true $impl
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
set reports [dict create \
    utilization [report_utilization -return_string] \
    timing [report_timing_summary -return_string] \
    route_status [report_route_status -return_string]]
dict for {name text} $reports {
    set fh [open [file join $report_dir kcnn_$name.rpt] w]
    puts $fh $text
    close $fh
}
set unrouted [get_nets -quiet -hierarchical \
    -filter {ROUTE_STATUS == UNROUTED || ROUTE_STATUS == PARTIAL}]
if {[llength $unrouted] > 0} {
    fail "[llength $unrouted] nets not fully routed, e.g. [lindex $unrouted 0]"
}
set wns [json_num [get_property SLACK [get_timing_paths -max_paths 1 -nworst 1 -setup]]]
set met [expr {$wns ne "null" && $wns >= 0}]
set wns_text [expr {$wns eq "null" ? "not reported" : "$wns ns"}]
# The post-route counts from report_utilization's first column ("Used"); null if absent.
set used {}
foreach {key pattern} {
    lut {Slice LUTs\*?}
    ff {Slice Registers\*?}
    bram36 {Block RAM Tile\*?}
    dsp48 {DSPs\*?}
} {
    set value ""
    regexp -line "^\\|\\s*${pattern}\\s*\\|\\s*(\[^|\\s\]+)\\s*\\|" \
        [dict get $reports utilization] -> value
    lappend used "    [json_str $key]: [json_num $value]"
}
if {$met} {
    puts "build.tcl: WNS $wns_text, all nets routed"
} elseif {$opt(allow_negative_slack)} {
    puts "WARNING: build.tcl: timing not met (WNS $wns_text at $opt(clock_mhz) MHz); kept under\
        the normal names because allow_negative_slack=1: the overlay may compute wrong results"
}

# ---- 6. Overlay files ----------------------------------------------------------------------
step "overlay files"
set stem [expr {$met || $opt(allow_negative_slack) ? "kcnn" : $failed_stem}]
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
if {$stem eq "kcnn"} {
    # A stale set from an earlier failed build must not sit beside a good one.
    foreach suffix {.bit .hwh .json _utilization.rpt _timing.rpt} {
        file delete -force [file join $out_dir $failed_stem$suffix]
    }
}
file copy -force $bit [file join $out_dir $stem.bit]
file copy -force $hwh [file join $out_dir $stem.hwh]
foreach report {utilization timing} {
    file copy -force [file join $report_dir kcnn_$report.rpt] \
        [file join $out_dir ${stem}_$report.rpt]
}

# kcnn.json: the shared configuration this overlay was built with and its measured figures.
set contract_json {}
foreach {name key} $contract_keys {
    lappend contract_json "    [json_str $key]: [dict get $macros $name]"
}
set build_json {}
foreach name $build_keys {
    lappend build_json "    [json_str $name]: $opt($name)"
}
lappend build_json "    \"CLOCK_MHZ\": [json_num $opt(clock_mhz)]"
set fh [open [file join $out_dir $stem.json] w]
puts $fh "\{"
puts $fh "  \"contract\": \{\n[join $contract_json ",\n"]\n  \},"
puts $fh "  \"build\": \{\n[join $build_json ",\n"]\n  \},"
puts $fh "  \"ip\": [json_str $ip_vlnv],"
puts $fh "  \"ip_repo\": [json_str $ip_repo],"
puts $fh "  \"part\": [json_str $opt(part)],"
puts $fh "  \"board_part\": [json_str $board_part],"
puts $fh "  \"vivado\": [json_str $vivado_version],"
puts $fh "  \"hls_tool\": [json_str $hls_tool],"
puts $fh "  \"timing\": \{\"wns_ns\": $wns, \"met\": [expr {$met ? "true" : "false"}],\
    \"negative_slack_allowed\": [expr {$opt(allow_negative_slack) ? "true" : "false"}]\},"
puts $fh "  \"utilization\": \{\n[join $used ",\n"]\n  \}"
puts $fh "\}"
close $fh

foreach suffix {.bit .hwh .json} {
    if {![file exists [file join $out_dir $stem$suffix]]} {
        fail "expected output missing: [file join $out_dir $stem$suffix]"
    }
}
if {$stem ne "kcnn"} {
    fail "timing not met: WNS $wns_text at $opt(clock_mhz) MHz. The build is in\
        [file join $out_dir $failed_stem].* (the overlay loader refuses it unless asked); see\
        [file join $out_dir ${failed_stem}_timing.rpt]. Lower clock_mhz=, or rebuild with\
        allow_negative_slack=1 to keep it under the normal names."
}
puts "build.tcl: overlay written to $out_dir (kcnn.bit, kcnn.hwh, kcnn.json)"
exit 0
