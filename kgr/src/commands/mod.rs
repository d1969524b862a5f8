//! One file per command; each reads through `sources`, decides with `model`
//! and returns a report (data) for `output` to render.

pub mod bench_iterator;
pub mod blocking;
pub mod metrics;
pub mod monitor;
pub mod patches;
pub mod poke;
pub mod snapshot;
pub mod status;

use anyhow::Result;

use crate::model::{blocks, PatchState, Target, Thread, Transition};
use crate::sources::ebpf;
use crate::sources::procfs::{self, scan_threads, ScanRequest, StateFile, ThreadScan};
use crate::sources::sysfs::{self, Depth, Livepatching};
use crate::sources::Root;

/// What every command gets: where to read, how much to say.
#[derive(Debug)]
pub struct Context {
    pub root: Root,
    pub verbose: u8,
    pub json: bool,
    /// `--no-ebpf`: procfs only.
    pub no_ebpf: bool,
    /// Take the eBPF snapshot even below the crossover (`--force-ebpf`).
    pub force_ebpf: bool,
    /// Things kgr could not see, said once on stderr.
    pub warnings: Vec<String>,
    /// With `-v`: what kgr did not use and why (e.g. eBPF), said once on stderr.
    pub notes: Vec<String>,
}

impl Context {
    pub fn warn(&mut self, message: String) {
        if !self.warnings.contains(&message) {
            self.warnings.push(message);
        }
    }

    /// Records a `-v` remark; dropped without `-v`.
    pub fn note(&mut self, message: String) {
        if self.verbose > 0 && !self.notes.contains(&message) {
            self.notes.push(message);
        }
    }
}

/// The running transition, if any, and how to scan tasks for it.
pub struct TransitionView {
    pub transition: Transition,
    state_file: StateFile,
    target: Target,
}

/// Reads the transition that runs now, if one does.
pub fn current_transition(system: &Livepatching) -> Option<TransitionView> {
    match system {
        Livepatching::Unsupported => None,
        Livepatching::Livepatch(patches) => {
            let transition = Transition::from_patches(patches)?;
            let target = transition.target?;
            Some(TransitionView {
                transition,
                state_file: StateFile::PatchState,
                target,
            })
        }
        Livepatching::Kgraft { in_progress, .. } => in_progress.then(|| TransitionView {
            transition: Transition {
                patch: None,
                target: None,
                elapsed_s: None,
                threads_left: None,
            },
            state_file: StateFile::KgrInProgress,
            target: Target::Patched,
        }),
    }
}

impl TransitionView {
    /// Every thread that blocks this transition.
    /// `details`: each blocker's `stat` and `cmdline`; `stacks`: its kernel stack.
    pub fn blockers(&self, ctx: &mut Context, details: bool, stacks: bool) -> Result<ThreadScan> {
        let target = self.target;
        let request = ScanRequest {
            state_file: self.state_file,
            details: details || stacks,
            stacks,
        };
        if self.state_file == StateFile::PatchState {
            match snapshot_blockers(ctx, target, request)? {
                Ok(scan) => return Ok(scan),
                // A captured tree is not the running kernel: nothing to say.
                Err(ebpf::Unavailable::ForeignRoot) => {}
                Err(why) => ctx.note(format!("eBPF not used: {why}")),
            }
        }
        let scan = scan_threads(&ctx.root, request, |state: PatchState| {
            blocks(state, target)
        })?;
        if scan.unreadable > 0 {
            let example = scan
                .first_unreadable
                .as_ref()
                .map(|p| format!(", e.g. {}", p.display()))
                .unwrap_or_default();
            ctx.warn(format!(
                "could not read the state of {} threads{example}: permission denied (run as root)",
                scan.unreadable
            ));
        }
        Ok(scan)
    }
}

/// From this many threads on, one eBPF task snapshot (load included) beats
/// opening every thread's `patch_state` (with a `kgr monitor` running, its
/// pinned iterator costs no load and is used at any count). The procfs scan
/// costs one `openat`, one `read` and one `close` per thread; the snapshot a
/// fixed load (kernel BTF read and cut for aya, aya's own parse, object and
/// program load) plus a cheap pass. Measured 2026-12-04 with `cargo xtask
/// bench` (20:14 UTC run): on the 2-core host procfs ~4.3 us per thread,
/// the snapshot 43 ms to load + ~0.65 us per thread (crossover ~11.8k); in
/// the TCG lab procfs ~54 us per thread, the snapshot ~420 ms + ~3.4 us
/// (crossover ~8.3k; at 50,069 threads 603 ms against 2,701 ms). The larger
/// crossover wins: below it the snapshot's load does not pay. See also
/// `bench_snapshot_vs_procfs` in sources/ebpf/tests.rs.
const SNAPSHOT_MIN_THREADS: usize = 12_000;

/// The blockers from one eBPF task snapshot, when eBPF is allowed and the
/// system has enough threads for it to pay; else why not. The details of the
/// few blockers still come from procfs, as in the scan, so the output is the
/// same.
fn snapshot_blockers(
    ctx: &mut Context,
    target: Target,
    request: ScanRequest,
) -> Result<Result<ThreadScan, ebpf::Unavailable>> {
    if let Err(why) = ebpf::precheck(ctx.root.is_live(), ctx.no_ebpf) {
        return Ok(Err(why));
    }
    let threads = procfs::thread_count(&ctx.root).unwrap_or(0);
    // A task iterator pinned by `kgr monitor` costs no load: it beats the
    // procfs scan at any thread count.
    let keep = |state: PatchState| blocks(state, target);
    let pinned = ebpf::pinned_snapshot(
        || ebpf::pid_view_trusted(&ebpf::PidNamespace::read()),
        &keep,
    );
    let snapshot = match pinned {
        Ok(Some(snapshot)) => snapshot,
        Ok(None) | Err(_) => {
            if let Err(why) = pinned {
                ctx.note(format!("pinned task iterator not used: {why}"));
            }
            if threads < SNAPSHOT_MIN_THREADS && !ctx.force_ebpf {
                return Ok(Err(ebpf::Unavailable::FewThreads {
                    threads,
                    crossover: SNAPSHOT_MIN_THREADS,
                }));
            }
            if let Err(why) = ebpf::pid_view_trusted(&ebpf::PidNamespace::read()) {
                return Ok(Err(why));
            }
            match ebpf::task_snapshot(&keep) {
                Ok(snapshot) => snapshot,
                Err(why) => return Ok(Err(why)),
            }
        }
    };
    let seen = snapshot.seen + snapshot.incomplete;
    if let Err(why) = ebpf::snapshot_count_trusted(seen, threads) {
        return Ok(Err(why));
    }
    if snapshot.incomplete > 0 {
        return Ok(Err(ebpf::Unavailable::Failed {
            what: "the task snapshot".into(),
            error: format!("{} tasks could not be read", snapshot.incomplete),
        }));
    }
    let (source, load) = match snapshot.pinned_by {
        Some(pid) => (format!(" (iterator pinned by kgr monitor {pid})"), "open"),
        None => (String::new(), "load"),
    };
    ctx.note(format!(
        "eBPF task snapshot{source}: {} threads, {} ms to {load}, {} ms to read",
        snapshot.seen,
        snapshot.load_time.as_millis(),
        snapshot.pass_time.as_millis()
    ));
    let mut scan = ThreadScan {
        examined: snapshot.seen,
        ..ThreadScan::default()
    };
    // The snapshot kept the blockers only.
    for thread in snapshot.threads {
        if !request.details {
            // What the scan reports without details: ids and state only.
            scan.threads
                .push(Thread::bare(thread.pid, thread.tid, thread.patch_state));
            continue;
        }
        let described = procfs::describe_thread(
            &ctx.root,
            thread.pid,
            thread.tid,
            thread.patch_state,
            request.stacks,
        )?;
        scan.threads.extend(described);
    }
    Ok(Ok(scan))
}

/// Reads the live patching state, shallow or deep.
pub fn read_system(ctx: &Context, depth: Depth) -> Result<Livepatching> {
    sysfs::read(&ctx.root, depth)
}
