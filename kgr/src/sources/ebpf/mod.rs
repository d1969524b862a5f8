//! The only code that loads, attaches and reads eBPF: the `iter/task`
//! snapshot, the `sys_enter`/`sys_exit` tracker, the fentry probe. Every way
//! in returns `Unavailable` instead of failing, so commands fall back to
//! procfs and say why with `-v`.

use std::fmt;
use std::time::Duration;

use crate::model::Thread;

#[cfg(feature = "ebpf")]
pub mod btf;
// The fentry probe and the syscall tracker are consumed by `blocking --why`
// and `monitor` (issue 4, next phase); the privileged tests use them now.
#[cfg(feature = "ebpf")]
#[cfg_attr(
    not(test),
    expect(dead_code, reason = "consumed by the tracer, next phase")
)]
mod fentry;
#[cfg(feature = "ebpf")]
mod object;
#[cfg(feature = "ebpf")]
mod pinned;
#[cfg(feature = "ebpf")]
mod snapshot;
#[cfg(feature = "ebpf")]
mod syscalls;
#[cfg(all(test, feature = "ebpf"))]
mod tests;
#[cfg(feature = "ebpf")]
mod transitions;
#[cfg(feature = "ebpf")]
mod verdicts;

#[cfg(feature = "ebpf")]
pub use transitions::{TimedEvent, TransitionTracer};
#[cfg(feature = "ebpf")]
pub use verdicts::StackCheckTracer;

/// Without eBPF there is no transition tracer.
#[cfg(not(feature = "ebpf"))]
pub enum TransitionTracer {}

/// CLOCK_MONOTONIC ns and the event.
#[cfg(not(feature = "ebpf"))]
pub type TimedEvent = (u64, crate::model::KernelEvent);

#[cfg(not(feature = "ebpf"))]
impl TransitionTracer {
    pub fn attach() -> Result<TransitionTracer, Unavailable> {
        Err(Unavailable::NotBuiltIn)
    }
    pub fn hooks(&self) -> (&[&'static str], &[Unavailable]) {
        match *self {}
    }
    pub async fn next_events(&mut self, _into: &mut Vec<TimedEvent>) -> std::io::Result<()> {
        match *self {}
    }
    pub fn lost(&self) -> u64 {
        match *self {}
    }
}

/// Without eBPF nothing is pinned: `pin` always says why.
#[cfg(not(feature = "ebpf"))]
pub enum PinnedIterator {}

#[cfg(not(feature = "ebpf"))]
impl PinnedIterator {
    pub fn pin() -> Result<PinnedIterator, Unavailable> {
        Err(Unavailable::NotBuiltIn)
    }
    pub fn path(&self) -> &std::path::Path {
        match *self {}
    }
}

/// Without eBPF there is no tracer: `attach` always says why.
#[cfg(not(feature = "ebpf"))]
pub enum StackCheckTracer {}

#[cfg(not(feature = "ebpf"))]
impl StackCheckTracer {
    pub fn attach() -> Result<StackCheckTracer, Unavailable> {
        Err(Unavailable::NotBuiltIn)
    }
    pub fn verdict(&self, _tid: i32) -> Option<KernelVerdict> {
        match *self {}
    }
    pub fn in_kernel_s(&self, _tid: i32) -> Option<f64> {
        match *self {}
    }
    pub fn attached_for_s(&self) -> f64 {
        match *self {}
    }
}

/// The kernel's verdict on one task at its last stack check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelVerdict {
    /// `None`: it switched (0) at that check.
    pub reason: Option<crate::model::Reason>,
    /// The function it sleeps on (with `SleepingOnPatchedFunction`).
    pub function: Option<String>,
}

#[cfg(feature = "ebpf")]
#[cfg_attr(
    not(test),
    expect(unused_imports, reason = "consumed by the tracer, next phase")
)]
pub use fentry::FentryProbe;
#[cfg(feature = "ebpf")]
pub use pinned::PinnedIterator;
#[cfg(feature = "ebpf")]
pub use snapshot::TaskIterator;
#[cfg(feature = "ebpf")]
#[cfg_attr(
    not(test),
    expect(unused_imports, reason = "the privileged tests use it alone")
)]
pub use syscalls::SyscallTracker;

/// Which threads a snapshot keeps, by patch state (the rest are counted).
pub type Keep<'a> = &'a dyn Fn(crate::model::PatchState) -> bool;

/// Every thread of the system at one moment, from the `iter/task` program.
#[derive(Debug)]
pub struct TaskSnapshot {
    /// The threads kept (`Keep`), sorted by tid. On a kernel without live patching every thread's
    /// `patch_state` is `Idle`. `cmdline` is empty and `starttime` 0: the
    /// kernel side does not read them.
    pub threads: Vec<Thread>,
    /// Threads seen whole, kept or not.
    pub seen: usize,
    /// Records whose fields could not all be read (left out).
    pub incomplete: usize,
    /// Reading BTF and loading the program (opening the pin when pinned),
    /// then the pass itself.
    pub load_time: Duration,
    pub pass_time: Duration,
    /// The pid of the `kgr monitor` whose pinned iterator took it.
    pub pinned_by: Option<i32>,
}

/// One snapshot of every thread's patch state, on a live-patching kernel.
/// Loads the program each time: callers weigh this against a procfs scan.
pub fn task_snapshot(keep: Keep) -> Result<TaskSnapshot, Unavailable> {
    #[cfg(feature = "ebpf")]
    {
        TaskIterator::load(true)?.snapshot(keep)
    }
    #[cfg(not(feature = "ebpf"))]
    {
        let _ = keep;
        Err(Unavailable::NotBuiltIn)
    }
}

/// One snapshot from the task iterator a `kgr monitor` pinned, if one did
/// (`Ok(None)` when none did: no monitor, or one of another kgr version).
/// `trusted` is asked only when there is a pin.
pub fn pinned_snapshot(
    trusted: impl FnOnce() -> Result<(), Unavailable>,
    keep: Keep,
) -> Result<Option<TaskSnapshot>, Unavailable> {
    #[cfg(feature = "ebpf")]
    {
        let start = std::time::Instant::now();
        let Some((file, pid)) = pinned::open_pinned(trusted)? else {
            return Ok(None);
        };
        let load_time = start.elapsed();
        // Only commands that found a transition in sysfs read it: the
        // kernel has live patching (a record without a state is idle).
        let mut snapshot = snapshot::read_snapshot(file, true, keep)?;
        snapshot.load_time = load_time;
        snapshot.pinned_by = Some(pid);
        Ok(Some(snapshot))
    }
    #[cfg(not(feature = "ebpf"))]
    {
        let _ = (trusted, keep);
        Ok(None)
    }
}

/// The load of the task iterator and bare timed passes (`bench-iterator`).
pub struct IteratorFloor {
    pub load: Duration,
    /// Each pass: link, file, read of every record; and the record count.
    pub passes: Vec<(Duration, usize)>,
}

/// Loads the task iterator once and times `repeat` bare passes.
pub fn iterator_floor(repeat: usize) -> Result<IteratorFloor, Unavailable> {
    #[cfg(feature = "ebpf")]
    {
        let start = std::time::Instant::now();
        let mut iterator = TaskIterator::load(false)?;
        let load = start.elapsed();
        let size = std::mem::size_of::<kgr_common::TaskRecord>();
        let mut passes = Vec::with_capacity(repeat);
        for _ in 0..repeat {
            let start = std::time::Instant::now();
            let mut file = iterator
                .link()?
                .into_file()
                .map_err(|e| unavailable("opening the task iterator", &e))?;
            let bytes = snapshot::read_all(&mut file)?;
            passes.push((start.elapsed(), bytes.len() / size));
        }
        Ok(IteratorFloor { load, passes })
    }
    #[cfg(not(feature = "ebpf"))]
    {
        let _ = repeat;
        Err(Unavailable::NotBuiltIn)
    }
}

/// Why an eBPF path was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    not(feature = "ebpf"),
    expect(dead_code, reason = "without eBPF only the cheap prechecks answer")
)]
pub enum Unavailable {
    /// kgr was built without the `ebpf` feature, or with `AYA_BUILD_SKIP`.
    NotBuiltIn,
    /// `--root DIR`: the tree is not the running kernel.
    ForeignRoot,
    /// `--no-ebpf`.
    Disabled,
    /// Loading eBPF needs root (CAP_BPF and CAP_PERFMON at least).
    NotRoot,
    /// No `/sys/kernel/btf/vmlinux`: member offsets cannot be found.
    NoBtf,
    /// `task_struct` has no `patch_state`: no live patching in this kernel.
    NoLivePatching,
    /// Fewer threads than where the snapshot starts to pay off.
    FewThreads { threads: usize, crossover: usize },
    /// The kernel lacks the function a hook attaches to (skipped, not fatal).
    MissingHook(String),
    /// The kernel said EPERM/EACCES (lockdown, trampolines refused, ...).
    Refused { what: String, errno: &'static str },
    /// Anything else on the way: BTF unreadable, verifier, attach, read.
    Failed { what: String, error: String },
    /// What eBPF would see is not what procfs shows (pid namespaces, a
    /// snapshot that disagrees with the kernel's thread count).
    Untrusted(String),
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::NotBuiltIn => f.write_str("kgr was built without eBPF programs"),
            Unavailable::ForeignRoot => f.write_str("--root reads a captured tree"),
            Unavailable::Disabled => f.write_str("--no-ebpf given"),
            Unavailable::NotRoot => f.write_str("not root"),
            Unavailable::NoBtf => f.write_str("no BTF (/sys/kernel/btf/vmlinux)"),
            Unavailable::NoLivePatching => {
                f.write_str("no live patching in this kernel (task_struct has no patch_state)")
            }
            Unavailable::FewThreads { threads, crossover } => {
                write!(f, "{threads} threads, procfs is faster below {crossover}")
            }
            Unavailable::MissingHook(name) => write!(f, "the kernel has no {name}"),
            Unavailable::Refused { what, errno } => write!(f, "{what} refused ({errno})"),
            Unavailable::Failed { what, error } => write!(f, "{what} failed: {error}"),
            Unavailable::Untrusted(why) => write!(f, "its view of tasks cannot be trusted: {why}"),
        }
    }
}

/// Whether this process may load eBPF at all (cheap; checked first).
pub fn precheck(live: bool, disabled: bool) -> Result<(), Unavailable> {
    if !live {
        return Err(Unavailable::ForeignRoot);
    }
    if disabled {
        return Err(Unavailable::Disabled);
    }
    if !cfg!(feature = "ebpf") {
        return Err(Unavailable::NotBuiltIn);
    }
    if !rustix::process::geteuid().is_root() {
        return Err(Unavailable::NotRoot);
    }
    Ok(())
}

/// `PROC_PID_INIT_INO` (include/linux/proc_ns.h): the inode of the initial
/// pid namespace, the same on every boot.
const INIT_PID_NS_INODE: u64 = 0xEFFF_FFFC;

/// What kgr can tell of its pid namespace: eBPF sees global pids, procfs
/// those of the namespace it was mounted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidNamespace {
    /// Fields of `NSpid:` in /proc/self/status (one per namespace level).
    pub levels: Option<usize>,
    /// The inode of /proc/self/ns/pid.
    pub own: Option<u64>,
    /// The inode of /proc/1/ns/pid; `None` when it cannot be read.
    pub init: Option<u64>,
}

impl PidNamespace {
    /// Reads the running system's facts (a few small reads).
    pub fn read() -> PidNamespace {
        use std::os::unix::fs::MetadataExt;
        let inode = |path: &str| std::fs::metadata(path).ok().map(|m| m.ino());
        let levels = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("NSpid:"))
                    .map(|f| f.split_whitespace().count())
            });
        PidNamespace {
            levels,
            own: inode("/proc/self/ns/pid"),
            init: inode("/proc/1/ns/pid"),
        }
    }
}

/// Whether task ids seen by eBPF are the ids /proc shows: only when kgr runs
/// in the initial pid namespace and pid 1 is visibly in it too.
pub fn pid_view_trusted(ns: &PidNamespace) -> Result<(), Unavailable> {
    if let Some(levels) = ns.levels.filter(|&l| l > 1) {
        return Err(Unavailable::Untrusted(format!(
            "kgr runs in a nested pid namespace (NSpid has {levels} levels)"
        )));
    }
    match ns.own {
        Some(own) if own != INIT_PID_NS_INODE => {
            return Err(Unavailable::Untrusted(
                "kgr does not run in the initial pid namespace".into(),
            ))
        }
        None => {
            return Err(Unavailable::Untrusted(
                "/proc/self/ns/pid cannot be read".into(),
            ))
        }
        Some(_) => {}
    }
    match ns.init {
        None => Err(Unavailable::Untrusted(
            "/proc/1/ns/pid cannot be read: pid 1 may live in another namespace".into(),
        )),
        Some(init) if Some(init) != ns.own => Err(Unavailable::Untrusted(
            "pid 1 is in another pid namespace than kgr".into(),
        )),
        Some(_) => Ok(()),
    }
}

/// Whether a snapshot of `seen` tasks agrees with the kernel's own thread
/// count `counted` (read just before): threads come and go, so a small
/// difference is fine, a clear one means the snapshot misses tasks.
pub fn snapshot_count_trusted(seen: usize, counted: usize) -> Result<(), Unavailable> {
    let tolerance = (counted / 50).max(32);
    if seen.abs_diff(counted) > tolerance {
        return Err(Unavailable::Untrusted(format!(
            "the snapshot saw {seen} threads, the kernel counts {counted}"
        )));
    }
    Ok(())
}

/// The program `name` of a loaded object as its kind `P` (`FEntry`, `Iter`,
/// ...), or why not, as a failure of step `what`.
#[cfg(feature = "ebpf")]
fn typed_program<'a, P>(
    ebpf: &'a mut aya::Ebpf,
    name: &str,
    what: &str,
) -> Result<&'a mut P, Unavailable>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| Unavailable::Failed {
            what: what.into(),
            error: format!("no program {name} in the object"),
        })?
        .try_into()
        .map_err(|e| unavailable(what, &e))
}

/// Classifies an error of step `what`: permission errors are refusals (the
/// kernel's policy), the rest failures.
#[cfg(feature = "ebpf")]
fn unavailable(what: &str, err: &(dyn std::error::Error + 'static)) -> Unavailable {
    let mut source = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.raw_os_error() {
                Some(code) if code == rustix::io::Errno::PERM.raw_os_error() => {
                    return Unavailable::Refused {
                        what: what.into(),
                        errno: "EPERM",
                    };
                }
                Some(code) if code == rustix::io::Errno::ACCESS.raw_os_error() => {
                    return Unavailable::Refused {
                        what: what.into(),
                        errno: "EACCES",
                    };
                }
                _ => {}
            }
        }
        source = e.source();
    }
    // The verifier log can be long: keep its first line.
    let text = err.to_string();
    Unavailable::Failed {
        what: what.into(),
        error: text.lines().next().unwrap_or_default().to_owned(),
    }
}

#[cfg(test)]
mod trust_tests {
    use super::*;

    const INIT: u64 = INIT_PID_NS_INODE;

    fn ns(levels: Option<usize>, own: Option<u64>, init: Option<u64>) -> PidNamespace {
        PidNamespace { levels, own, init }
    }

    #[test]
    fn the_initial_namespace_is_trusted() {
        assert_eq!(
            pid_view_trusted(&ns(Some(1), Some(INIT), Some(INIT))),
            Ok(())
        );
        // Kernels before 4.1 have no NSpid line.
        assert_eq!(pid_view_trusted(&ns(None, Some(INIT), Some(INIT))), Ok(()));
    }

    #[test]
    fn nested_or_unclear_namespaces_are_not() {
        let untrusted = |n| matches!(pid_view_trusted(&n), Err(Unavailable::Untrusted(_)));
        assert!(untrusted(ns(Some(2), Some(INIT), Some(INIT))));
        assert!(untrusted(ns(Some(1), Some(4026532500), Some(4026532500))));
        assert!(untrusted(ns(Some(1), None, Some(INIT))));
        // This sandbox host: pid 1's namespace link is not readable, and
        // the iterator does not see pid 1's threads.
        assert!(untrusted(ns(Some(1), Some(INIT), None)));
        assert!(untrusted(ns(Some(1), Some(INIT), Some(4026532500))));
    }

    #[test]
    fn the_snapshot_must_agree_with_the_thread_count() {
        assert_eq!(snapshot_count_trusted(3000, 3000), Ok(()));
        assert_eq!(snapshot_count_trusted(3020, 3000), Ok(()));
        assert_eq!(snapshot_count_trusted(10_150, 10_000), Ok(()));
        assert!(snapshot_count_trusted(2900, 3000).is_err());
        assert!(snapshot_count_trusted(9_700, 10_000).is_err());
    }
}
