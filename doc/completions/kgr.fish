# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_kgr_global_optspecs
    string join \n v/verbose json root= no-ebpf force-ebpf h/help V/version
end

function __fish_kgr_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_kgr_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_kgr_using_subcommand
    set -l cmd (__fish_kgr_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c kgr -n "__fish_kgr_needs_command" -l root -d 'Read DIR/sys and DIR/proc instead of /sys and /proc (DIR may be a `kgr snapshot` archive)' -r -F
complete -c kgr -n "__fish_kgr_needs_command" -s v -l verbose -d 'More detail (repeat for more: -vv)'
complete -c kgr -n "__fish_kgr_needs_command" -l json -d 'Print one JSON document instead of the human output'
complete -c kgr -n "__fish_kgr_needs_command" -l no-ebpf -d 'Never use eBPF: read sysfs/procfs only (-v says when eBPF was not used)'
complete -c kgr -n "__fish_kgr_needs_command" -l force-ebpf -d 'Use the eBPF task snapshot whatever the thread count (it pays from a few thousand threads on); to compare it with the procfs scan'
complete -c kgr -n "__fish_kgr_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kgr -n "__fish_kgr_needs_command" -s V -l version -d 'Print version'
complete -c kgr -n "__fish_kgr_needs_command" -f -a "status" -d 'Print `ready`, or `in_progress` while a patch transition runs'
complete -c kgr -n "__fish_kgr_needs_command" -f -a "check" -d 'Exit 0 when ready, 1 while a transition runs, 2 when it cannot tell'
complete -c kgr -n "__fish_kgr_needs_command" -f -a "patches" -d 'List the loaded live patches in stack order (-v: package, CVEs, bugs; -vv: kernel facts and patched functions)'
complete -c kgr -n "__fish_kgr_needs_command" -f -a "blocking" -d 'List the threads that keep the running transition from finishing (-v: with command lines; -vv: with kernel stacks)'
complete -c kgr -n "__fish_kgr_needs_command" -f -a "blocking_threads" -d 'Obsolete alias of `blocking`'
complete -c kgr -n "__fish_kgr_needs_command" -f -a "poke" -d 'Send SIGSTOP then SIGCONT to each process with a blocking thread, so that it crosses the kernel/user boundary and switches (obsolete; kernels since 5.1 signal blockers by themselves)'
complete -c kgr -n "__fish_kgr_needs_command" -f -a "snapshot" -d 'Capture what kgr reads (livepatch sysfs, every thread\'s state, comm, cmdline, stat, stack...) into one .tar.gz; `kgr --root FILE` answers from it as on the live system'
complete -c kgr -n "__fish_kgr_needs_command" -f -a "metrics" -d 'Print the live patching state as Prometheus metrics (or write them for node_exporter\'s textfile collector with --textfile)'
complete -c kgr -n "__fish_kgr_needs_command" -f -a "monitor" -d 'Follow the running (or next) transition as it happens: a progress line on a terminal, one line per event (-v: per thread switch; --json: JSON lines), a summary at the end or on Ctrl-C. Uses eBPF on the kernel\'s klp functions, else polls sysfs every 200 ms'
complete -c kgr -n "__fish_kgr_using_subcommand status" -l root -d 'Read DIR/sys and DIR/proc instead of /sys and /proc (DIR may be a `kgr snapshot` archive)' -r -F
complete -c kgr -n "__fish_kgr_using_subcommand status" -s v -l verbose -d 'More detail (repeat for more: -vv)'
complete -c kgr -n "__fish_kgr_using_subcommand status" -l json -d 'Print one JSON document instead of the human output'
complete -c kgr -n "__fish_kgr_using_subcommand status" -l no-ebpf -d 'Never use eBPF: read sysfs/procfs only (-v says when eBPF was not used)'
complete -c kgr -n "__fish_kgr_using_subcommand status" -l force-ebpf -d 'Use the eBPF task snapshot whatever the thread count (it pays from a few thousand threads on); to compare it with the procfs scan'
complete -c kgr -n "__fish_kgr_using_subcommand status" -s h -l help -d 'Print help'
complete -c kgr -n "__fish_kgr_using_subcommand check" -l root -d 'Read DIR/sys and DIR/proc instead of /sys and /proc (DIR may be a `kgr snapshot` archive)' -r -F
complete -c kgr -n "__fish_kgr_using_subcommand check" -s v -l verbose -d 'More detail (repeat for more: -vv)'
complete -c kgr -n "__fish_kgr_using_subcommand check" -l json -d 'Print one JSON document instead of the human output'
complete -c kgr -n "__fish_kgr_using_subcommand check" -l no-ebpf -d 'Never use eBPF: read sysfs/procfs only (-v says when eBPF was not used)'
complete -c kgr -n "__fish_kgr_using_subcommand check" -l force-ebpf -d 'Use the eBPF task snapshot whatever the thread count (it pays from a few thousand threads on); to compare it with the procfs scan'
complete -c kgr -n "__fish_kgr_using_subcommand check" -s h -l help -d 'Print help'
complete -c kgr -n "__fish_kgr_using_subcommand patches" -l root -d 'Read DIR/sys and DIR/proc instead of /sys and /proc (DIR may be a `kgr snapshot` archive)' -r -F
complete -c kgr -n "__fish_kgr_using_subcommand patches" -s v -l verbose -d 'More detail (repeat for more: -vv)'
complete -c kgr -n "__fish_kgr_using_subcommand patches" -l json -d 'Print one JSON document instead of the human output'
complete -c kgr -n "__fish_kgr_using_subcommand patches" -l no-ebpf -d 'Never use eBPF: read sysfs/procfs only (-v says when eBPF was not used)'
complete -c kgr -n "__fish_kgr_using_subcommand patches" -l force-ebpf -d 'Use the eBPF task snapshot whatever the thread count (it pays from a few thousand threads on); to compare it with the procfs scan'
complete -c kgr -n "__fish_kgr_using_subcommand patches" -s h -l help -d 'Print help'
complete -c kgr -n "__fish_kgr_using_subcommand blocking" -l root -d 'Read DIR/sys and DIR/proc instead of /sys and /proc (DIR may be a `kgr snapshot` archive)' -r -F
complete -c kgr -n "__fish_kgr_using_subcommand blocking" -l why -d 'Say why each thread blocks: the patched function on its stack, the reason, its syscall, how long it has been in the kernel, whether poke can help (the kernel\'s own verdict with eBPF; waits up to ~1.5 s)'
complete -c kgr -n "__fish_kgr_using_subcommand blocking" -s v -l verbose -d 'More detail (repeat for more: -vv)'
complete -c kgr -n "__fish_kgr_using_subcommand blocking" -l json -d 'Print one JSON document instead of the human output'
complete -c kgr -n "__fish_kgr_using_subcommand blocking" -l no-ebpf -d 'Never use eBPF: read sysfs/procfs only (-v says when eBPF was not used)'
complete -c kgr -n "__fish_kgr_using_subcommand blocking" -l force-ebpf -d 'Use the eBPF task snapshot whatever the thread count (it pays from a few thousand threads on); to compare it with the procfs scan'
complete -c kgr -n "__fish_kgr_using_subcommand blocking" -s h -l help -d 'Print help'
complete -c kgr -n "__fish_kgr_using_subcommand blocking_threads" -l root -d 'Read DIR/sys and DIR/proc instead of /sys and /proc (DIR may be a `kgr snapshot` archive)' -r -F
complete -c kgr -n "__fish_kgr_using_subcommand blocking_threads" -l why -d 'Say why each thread blocks: the patched function on its stack, the reason, its syscall, how long it has been in the kernel, whether poke can help (the kernel\'s own verdict with eBPF; waits up to ~1.5 s)'
complete -c kgr -n "__fish_kgr_using_subcommand blocking_threads" -s v -l verbose -d 'More detail (repeat for more: -vv)'
complete -c kgr -n "__fish_kgr_using_subcommand blocking_threads" -l json -d 'Print one JSON document instead of the human output'
complete -c kgr -n "__fish_kgr_using_subcommand blocking_threads" -l no-ebpf -d 'Never use eBPF: read sysfs/procfs only (-v says when eBPF was not used)'
complete -c kgr -n "__fish_kgr_using_subcommand blocking_threads" -l force-ebpf -d 'Use the eBPF task snapshot whatever the thread count (it pays from a few thousand threads on); to compare it with the procfs scan'
complete -c kgr -n "__fish_kgr_using_subcommand blocking_threads" -s h -l help -d 'Print help'
complete -c kgr -n "__fish_kgr_using_subcommand poke" -l root -d 'Read DIR/sys and DIR/proc instead of /sys and /proc (DIR may be a `kgr snapshot` archive)' -r -F
complete -c kgr -n "__fish_kgr_using_subcommand poke" -l dry-run -d 'Say what would be signalled, signal nothing'
complete -c kgr -n "__fish_kgr_using_subcommand poke" -s v -l verbose -d 'More detail (repeat for more: -vv)'
complete -c kgr -n "__fish_kgr_using_subcommand poke" -l json -d 'Print one JSON document instead of the human output'
complete -c kgr -n "__fish_kgr_using_subcommand poke" -l no-ebpf -d 'Never use eBPF: read sysfs/procfs only (-v says when eBPF was not used)'
complete -c kgr -n "__fish_kgr_using_subcommand poke" -l force-ebpf -d 'Use the eBPF task snapshot whatever the thread count (it pays from a few thousand threads on); to compare it with the procfs scan'
complete -c kgr -n "__fish_kgr_using_subcommand poke" -s h -l help -d 'Print help'
complete -c kgr -n "__fish_kgr_using_subcommand snapshot" -s o -l output -d 'The archive to write' -r -F
complete -c kgr -n "__fish_kgr_using_subcommand snapshot" -l root -d 'Read DIR/sys and DIR/proc instead of /sys and /proc (DIR may be a `kgr snapshot` archive)' -r -F
complete -c kgr -n "__fish_kgr_using_subcommand snapshot" -s v -l verbose -d 'More detail (repeat for more: -vv)'
complete -c kgr -n "__fish_kgr_using_subcommand snapshot" -l json -d 'Print one JSON document instead of the human output'
complete -c kgr -n "__fish_kgr_using_subcommand snapshot" -l no-ebpf -d 'Never use eBPF: read sysfs/procfs only (-v says when eBPF was not used)'
complete -c kgr -n "__fish_kgr_using_subcommand snapshot" -l force-ebpf -d 'Use the eBPF task snapshot whatever the thread count (it pays from a few thousand threads on); to compare it with the procfs scan'
complete -c kgr -n "__fish_kgr_using_subcommand snapshot" -s h -l help -d 'Print help'
complete -c kgr -n "__fish_kgr_using_subcommand metrics" -l textfile -d 'Write DIR/kgr.prom atomically instead of printing' -r -F
complete -c kgr -n "__fish_kgr_using_subcommand metrics" -l root -d 'Read DIR/sys and DIR/proc instead of /sys and /proc (DIR may be a `kgr snapshot` archive)' -r -F
complete -c kgr -n "__fish_kgr_using_subcommand metrics" -s v -l verbose -d 'More detail (repeat for more: -vv)'
complete -c kgr -n "__fish_kgr_using_subcommand metrics" -l json -d 'Print one JSON document instead of the human output'
complete -c kgr -n "__fish_kgr_using_subcommand metrics" -l no-ebpf -d 'Never use eBPF: read sysfs/procfs only (-v says when eBPF was not used)'
complete -c kgr -n "__fish_kgr_using_subcommand metrics" -l force-ebpf -d 'Use the eBPF task snapshot whatever the thread count (it pays from a few thousand threads on); to compare it with the procfs scan'
complete -c kgr -n "__fish_kgr_using_subcommand metrics" -s h -l help -d 'Print help'
complete -c kgr -n "__fish_kgr_using_subcommand monitor" -l timeout -d 'With --once: give up after SECS seconds (exit 1)' -r
complete -c kgr -n "__fish_kgr_using_subcommand monitor" -l listen -d 'Serve Prometheus metrics at http://ADDR/metrics while following (default 127.0.0.1:9717; give another address to listen elsewhere)' -r
complete -c kgr -n "__fish_kgr_using_subcommand monitor" -l report -d 'Draw the followed transition into FILE (SVG) at the end: threads left over time, its events, the last blockers and their functions' -r -F
complete -c kgr -n "__fish_kgr_using_subcommand monitor" -l root -d 'Read DIR/sys and DIR/proc instead of /sys and /proc (DIR may be a `kgr snapshot` archive)' -r -F
complete -c kgr -n "__fish_kgr_using_subcommand monitor" -l once -d 'Exit when the followed transition ends: 0 completed, 1 otherwise'
complete -c kgr -n "__fish_kgr_using_subcommand monitor" -l no-pin -d 'Do not pin the eBPF task iterator (by default it is pinned in /sys/fs/bpf/kgr while monitor runs, and `kgr blocking` reads it there instead of loading a program of its own)'
complete -c kgr -n "__fish_kgr_using_subcommand monitor" -s v -l verbose -d 'More detail (repeat for more: -vv)'
complete -c kgr -n "__fish_kgr_using_subcommand monitor" -l json -d 'Print one JSON document instead of the human output'
complete -c kgr -n "__fish_kgr_using_subcommand monitor" -l no-ebpf -d 'Never use eBPF: read sysfs/procfs only (-v says when eBPF was not used)'
complete -c kgr -n "__fish_kgr_using_subcommand monitor" -l force-ebpf -d 'Use the eBPF task snapshot whatever the thread count (it pays from a few thousand threads on); to compare it with the procfs scan'
complete -c kgr -n "__fish_kgr_using_subcommand monitor" -s h -l help -d 'Print help'
