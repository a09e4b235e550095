# Vitis HLS: synthesise kcnn_top and export it as a Vivado IP (xilinx.com:hls:kcnn_top:1.0).
#
# Run by build.tcl as a child process, or by hand from any folder:
#   vitis_hls -f hls/build_ip.tcl              (Vitis HLS 2022.1, PYNQ 3.0)
#   vitis-run --mode hls --tcl hls/build_ip.tcl (Vitis 2024.1, PYNQ 3.1)
# Parameters come from environment variables, because the two launchers hand Tcl arguments
# over differently (build.tcl sets them for the child). Each one may also be given as a
# key=value Tcl argument (e.g. `vitis_hls -f hls/build_ip.tcl -tclargs P=8`); an argument
# wins over the variable.
#   KCNN_P, KCNN_IN_DEPTH, KCNN_W_DEPTH, KCNN_OUT_DEPTH, KCNN_STREAMS, KCNN_LRN_LANES,
#   KCNN_CH_MAX     -> -DKCNN_<name>=... (unset or empty: the default in kcnn_config.h)
#   KCNN_PART       part (default xc7z020clg400-1)
#   KCNN_CLOCK_MHZ  target clock in MHz (default 100, i.e. a 10 ns period)
#   KCNN_HLS_WORK   folder for the HLS project (default build/hls in the repository)
#   KCNN_CSIM       1: run csim_design on the self-checking testbench before synthesis
# The IP ends up in $KCNN_HLS_WORK/kcnn_prj/sol1/impl/ip (component.xml). hls/csim_include
# (the g++ stand-in for ap_axi_sdata.h) is never on this include path: Vitis has the real one.

set kcnn_params {P IN_DEPTH W_DEPTH OUT_DEPTH STREAMS LRN_LANES CH_MAX}
set kcnn_keys [concat $kcnn_params {PART CLOCK_MHZ HLS_WORK CSIM}]

# The script's folder (hls/) is the include folder.
if {[info exists ::env(KCNN_HLS_SRC)]} {
    set src [file normalize $::env(KCNN_HLS_SRC)]
} else {
    set src [file dirname [file normalize [info script]]]
}

array set cfg [list PART xc7z020clg400-1 CLOCK_MHZ 100 \
    HLS_WORK [file join [file dirname $src] build hls] CSIM 0]
foreach key $kcnn_keys {
    if {[info exists ::env(KCNN_$key)] && $::env(KCNN_$key) ne ""} {
        set cfg($key) $::env(KCNN_$key)
    }
}
if {[info exists argv]} {
    foreach arg $argv {
        if {![regexp {^([A-Za-z_]+)=(.*)$} $arg -> key value]} {
            continue
        }
        set key [string toupper $key]
        if {$key ni $kcnn_keys} {
            puts "build_ip.tcl: WARNING: ignoring argument $arg (known: $kcnn_keys)"
            continue
        }
        set cfg($key) $value
    }
}

set defines ""
foreach key $kcnn_params {
    if {[info exists cfg($key)]} {
        if {![string is integer -strict $cfg($key)] || $cfg($key) <= 0} {
            puts stderr "build_ip.tcl: $key must be a positive integer, got '$cfg($key)'"
            exit 1
        }
        append defines " -DKCNN_$key=$cfg($key)"
    }
}
if {![string is double -strict $cfg(CLOCK_MHZ)] || $cfg(CLOCK_MHZ) <= 0} {
    puts stderr "build_ip.tcl: CLOCK_MHZ must be a positive number, got '$cfg(CLOCK_MHZ)'"
    exit 1
}
set period [format %g [expr {1000.0 / $cfg(CLOCK_MHZ)}]]
set cflags "-std=c++14 -I$src$defines"

file mkdir $cfg(HLS_WORK)
cd $cfg(HLS_WORK)
puts "build_ip.tcl: part $cfg(PART), clock $cfg(CLOCK_MHZ) MHz (period $period ns), cflags: $cflags"

open_project -reset kcnn_prj
set_top kcnn_top
# Kernel sources: the top and the header-only kernels (only hls/ itself, not its subfolders).
add_files [file join $src kcnn_top.cpp] -cflags $cflags
foreach header [lsort [glob -directory $src kcnn_*.h]] {
    add_files $header -cflags $cflags
}
add_files -tb [file join $src tb_kcnn.cpp] -cflags $cflags
# Golden steps from the Python packer (optional): the testbench checks them after its own.
set golden [file join $src vectors golden.txt]
set csim_args {}
if {[file exists $golden]} {
    add_files -tb $golden
    set csim_args [list -argv $golden]
}

open_solution -reset sol1
set_part $cfg(PART)
create_clock -period $period -name default

if {$cfg(CSIM)} {
    csim_design {*}$csim_args
}
csynth_design
export_design -format ip_catalog -vendor xilinx.com -library hls -version 1.0 \
    -display_name "KCNN accelerator" -description "k-means-clustered CNN layer engine"

set component [file join $cfg(HLS_WORK) kcnn_prj sol1 impl ip component.xml]
if {![file exists $component]} {
    puts stderr "build_ip.tcl: export_design wrote no $component"
    exit 1
}
puts "build_ip.tcl: IP in [file dirname $component]"
exit
