//! The command line: commands, `-v` count, `--json`, `--root DIR`.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

const AFTER_HELP: &str = "\
Exit status:
  check: 0 ready, 1 transition in progress, 2 could not tell (error)
  monitor --once: 0 the transition completed; 1 it did not (timed out,
    cancelled, interrupted) or error, e.g. no live patching
  every other command: 0 success, 1 error

Most answers need root: per-task patch state and kernel stacks are readable
by root only. `--root DIR` reads DIR/sys and DIR/proc instead of /sys and
/proc (a captured snapshot, or a test fixture); poke then signals nothing.";

/// Kernel live patching: is a transition running, which patches are loaded,
/// and which threads hold a transition up.
///
/// kgr reads the kernel's live patching state from /sys/kernel/livepatch and
/// /proc/<pid>/task/<tid>/patch_state (or the SLE 12 kGraft files), and with
/// eBPF follows tasks in the kernel itself. The default output of status,
/// check, patches and blocking is that of SUSE's kgr, byte for byte.
#[derive(Debug, Parser)]
#[command(name = "kgr", version, after_help = AFTER_HELP, disable_help_subcommand = true)]
pub struct Cli {
    /// More detail (repeat for more: -vv).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Print one JSON document instead of the human output.
    #[arg(long, global = true)]
    pub json: bool,

    /// Read DIR/sys and DIR/proc instead of /sys and /proc (DIR may be a
    /// `kgr snapshot` archive).
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Never use eBPF: read sysfs/procfs only (-v says when eBPF was not used).
    #[arg(long, global = true)]
    pub no_ebpf: bool,

    /// Use the eBPF task snapshot whatever the thread count (it pays from
    /// a few thousand threads on); to compare it with the procfs scan.
    #[arg(long, global = true, conflicts_with = "no_ebpf")]
    pub force_ebpf: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print `ready`, or `in_progress` while a patch transition runs.
    Status,
    /// Exit 0 when ready, 1 while a transition runs, 2 when it cannot tell.
    Check,
    /// List the loaded live patches in stack order (-v: package, CVEs, bugs;
    /// -vv: kernel facts and patched functions).
    Patches,
    /// List the threads that keep the running transition from finishing
    /// (-v: with command lines; -vv: with kernel stacks).
    Blocking(BlockingArgs),
    /// Obsolete alias of `blocking`.
    #[command(name = "blocking_threads")]
    BlockingThreads(BlockingArgs),
    /// Send SIGSTOP then SIGCONT to each process with a blocking thread, so
    /// that it crosses the kernel/user boundary and switches (obsolete;
    /// kernels since 5.1 signal blockers by themselves).
    Poke(PokeArgs),
    /// Capture what kgr reads (livepatch sysfs, every thread's state, comm,
    /// cmdline, stat, stack...) into one .tar.gz; `kgr --root FILE` answers
    /// from it as on the live system.
    Snapshot(SnapshotArgs),
    /// Print the live patching state as Prometheus metrics (or write them
    /// for node_exporter's textfile collector with --textfile).
    Metrics(MetricsArgs),
    /// Follow the running (or next) transition as it happens: a progress line
    /// on a terminal, one line per event (-v: per thread switch; --json: JSON
    /// lines), a summary at the end or on Ctrl-C. Uses eBPF on the kernel's
    /// klp functions, else polls sysfs every 200 ms.
    Monitor(MonitorArgs),
    /// For `cargo xtask bench`: load the task iterator once, then time N
    /// bare passes over every task (the floor of any snapshot).
    #[command(name = "bench-iterator", hide = true)]
    BenchIterator(BenchIteratorArgs),
}

#[derive(Debug, Args)]
pub struct BenchIteratorArgs {
    /// Passes to time after the load.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Exit when the followed transition ends: 0 completed, 1 otherwise.
    #[arg(long)]
    pub once: bool,
    /// With --once: give up after SECS seconds (exit 1).
    #[arg(long, value_name = "SECS", requires = "once")]
    pub timeout: Option<f64>,
    /// Serve Prometheus metrics at http://ADDR/metrics while following
    /// (default 127.0.0.1:9717; give another address to listen elsewhere).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:9717")]
    pub listen: Option<String>,
    /// Draw the followed transition into FILE (SVG) at the end: threads
    /// left over time, its events, the last blockers and their functions.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Do not pin the eBPF task iterator (by default it is pinned in
    /// /sys/fs/bpf/kgr while monitor runs, and `kgr blocking` reads it
    /// there instead of loading a program of its own).
    #[arg(long)]
    pub no_pin: bool,
}

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Write DIR/kgr.prom atomically instead of printing.
    #[arg(long, value_name = "DIR")]
    pub textfile: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// The archive to write.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct BlockingArgs {
    /// Say why each thread blocks: the patched function on its stack, the
    /// reason, its syscall, how long it has been in the kernel, whether poke
    /// can help (the kernel's own verdict with eBPF; waits up to ~1.5 s).
    #[arg(long)]
    pub why: bool,
}

#[derive(Debug, Args)]
pub struct PokeArgs {
    /// Say what would be signalled, signal nothing.
    #[arg(long)]
    pub dry_run: bool,
}
