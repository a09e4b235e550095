# Dry run of a Vivado / Vitis HLS Tcl script under plain tclsh (no Xilinx tools).
#
#   tclsh tests/tcl_dryrun.tcl -log FILE -scratch DIR [-set name=value ...] script.tcl [args...]
#
# Every command tclsh does not know (all Vivado and HLS commands), `exec`, `cd`, `exit`,
# `auto_execok`, file writes and `file copy|mkdir|delete|rename` are replaced by stubs that
# log the call as one JSON object per line ({"cmd": ..., "args": [...]}; the list after
# -dict/-config is also logged as an object under "dict"; exec also logs the KCNN_* environment).
# Files opened for writing go to the scratch folder under their own name. `file exists` says
# yes unless the path matches a -set missing=GLOB. Tcl errors (unset variables, misspelled
# builtins, wrong argument counts of Tcl commands) stop the run.
# Settings (-set): version=2024.1 path=vitis_hls,vitis-run wns=0.5 progress=100% unrouted=
#   missing=GLOB (repeatable) no_part=0 no_board=0 util=FILE (what `report_utilization
#   -return_string` returns; default: a post-route 7-series table, LUT 35012 FF 30117
#   BRAM 86.5 DSP 160)
# Exit status: the script's own exit code (0 when it ends without exit), 2 for an incomplete
# script, 3 for a Tcl error.

array set ::dry {version 2024.1 path {vitis_hls vitis-run} wns 0.5 progress 100% unrouted {}
    missing {} no_part 0 no_board 0 log {} scratch {} util {}}
set ::dry(util_text) [join {
    "1. Slice Logic"
    "--------------"
    ""
    "+-------------------------+-------+-------+------------+-----------+-------+"
    "|        Site Type        |  Used | Fixed | Prohibited | Available | Util% |"
    "+-------------------------+-------+-------+------------+-----------+-------+"
    "| Slice LUTs              | 35012 |     0 |          0 |     53200 | 65.81 |"
    "|   LUT as Logic          | 31500 |     0 |          0 |     53200 | 59.21 |"
    "| Slice Registers         | 30117 |     0 |          0 |    106400 | 28.31 |"
    "+-------------------------+-------+-------+------------+-----------+-------+"
    "| Block RAM Tile    | 86.5 |     0 |          0 |       140 | 61.79 |"
    "|   RAMB36/FIFO*    |   80 |     0 |          0 |       140 | 57.14 |"
    "| DSPs           |  160 |     0 |          0 |       220 | 72.73 |"
} "\n"]
set rest $argv
while {[llength $rest] > 0 && [string match -* [lindex $rest 0]]} {
    set rest [lassign $rest flag value]
    switch -- $flag {
        -log { set ::dry(log) $value }
        -scratch { set ::dry(scratch) $value }
        -set {
            regexp {^([a-z_]+)=(.*)$} $value -> key val
            if {$key eq "missing"} {
                lappend ::dry(missing) $val
            } elseif {$key eq "path"} {
                set ::dry(path) [split $val ,]
            } else {
                set ::dry($key) $val
            }
        }
        default { puts stderr "tcl_dryrun: unknown flag $flag"; exit 4 }
    }
}
set script [file normalize [lindex $rest 0]]
set script_args [lrange $rest 1 end]
set fh [open $script r]
set src [read $fh]
close $fh
if {![info complete $src]} {
    puts stderr "SYNTAX: $script is not complete Tcl (unbalanced braces, brackets or quotes)"
    exit 2
}
set ::logfh [open $::dry(log) w]

proc json_str {s} {
    set out ""
    foreach ch [split $s ""] {
        scan $ch %c code
        if {$ch eq "\""} {
            append out "\\\""
        } elseif {$ch eq "\\"} {
            append out "\\\\"
        } elseif {$code < 32} {
            append out [format "\\u%04x" $code]
        } else {
            append out $ch
        }
    }
    return "\"$out\""
}

proc log_call {cmd arglist {extra {}}} {
    set items {}
    foreach a $arglist {
        lappend items [json_str $a]
    }
    set line "\{\"cmd\": [json_str $cmd], \"args\": \[[join $items ", "]\]"
    set i [lsearch -regexp $arglist {^-(dict|config)$}]
    if {$i >= 0 && [string is list [lindex $arglist [expr {$i + 1}]]]} {
        set pairs {}
        foreach {k v} [lindex $arglist [expr {$i + 1}]] {
            lappend pairs "[json_str $k]: [json_str $v]"
        }
        append line ", \"dict\": \{[join $pairs ", "]\}"
    }
    foreach {k v} $extra {
        append line ", [json_str $k]: $v"
    }
    puts $::logfh "$line\}"
    flush $::logfh
}

# Return values of the tool commands that the scripts use.
proc unknown {cmd args} {
    log_call $cmd $args
    switch -- $cmd {
        version { return $::dry(version) }
        get_parts { return [expr {$::dry(no_part) ? "" : [lindex $args end]}] }
        get_board_parts { return [expr {$::dry(no_board) ? "" : "tul.com.tw:pynq-z2:part0:1.0"}] }
        get_ipdefs - create_bd_cell - get_bd_intf_pins - get_files - get_runs {
            return [lindex $args end]
        }
        get_bd_cells { return /axi_smc }
        report_utilization {
            if {$::dry(util) eq ""} {
                return $::dry(util_text)
            }
            set fh [__real_open $::dry(util) r]
            set text [read $fh]
            close $fh
            return $text
        }
        report_timing_summary - report_route_status { return "stub $cmd" }
        make_wrapper { return /stub/kcnn_bd_wrapper.v }
        get_timing_paths { return stub_path }
        get_nets { return $::dry(unrouted) }
        get_property {
            switch -- [lindex $args 0] {
                PROGRESS { return $::dry(progress) }
                SLACK { return $::dry(wns) }
                default { return stub }
            }
        }
        current_project - current_fileset { return stub }
    }
    return ""
}

rename exec __real_exec
proc exec {args} {
    set env {}
    foreach name [lsort [array names ::env KCNN_*]] {
        lappend env "[json_str $name]: [json_str $::env($name)]"
    }
    log_call exec $args [list env "\{[join $env ", "]\}"]
    return ""
}
rename cd __real_cd
proc cd {args} { log_call cd $args }
proc auto_execok {name} {
    if {$name in $::dry(path)} {
        return [list /stub/bin/$name]
    }
    return ""
}
rename file __real_file
proc file {sub args} {
    if {$sub in {copy mkdir delete rename}} {
        log_call "file $sub" $args
        return ""
    }
    if {$sub eq "exists"} {
        log_call "file exists" $args
        foreach pattern $::dry(missing) {
            if {[string match $pattern [lindex $args 0]]} {
                return 0
            }
        }
        return 1
    }
    return [__real_file $sub {*}$args]
}
rename open __real_open
proc open {path {mode r} args} {
    if {[regexp {[wa+]} $mode] || [lsearch -regexp $mode {WRONLY|RDWR|CREAT}] >= 0} {
        log_call open [list $path $mode]
        set target [__real_file join $::dry(scratch) [__real_file tail $path]]
        return [__real_open $target $mode {*}$args]
    }
    return [__real_open $path $mode {*}$args]
}
rename exit __real_exit
proc exit {{code 0}} {
    log_call exit [list $code]
    return -code error -errorcode [list KCNN_DRYRUN_EXIT $code] "exit $code"
}

set argv $script_args
set argc [llength $argv]
set rc 0
if {[catch {uplevel #0 [list source $script]} err opts]} {
    set code [dict get $opts -errorcode]
    if {[lindex $code 0] eq "KCNN_DRYRUN_EXIT"} {
        set rc [lindex $code 1]
    } else {
        puts stderr "RUNTIME: [dict get $opts -errorinfo]"
        set rc 3
    }
}
close $::logfh
__real_exit $rc
