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
mod snapshot;
#[cfg(feature = "ebpf")]
#[cfg_attr(
    not(test),
    expect(dead_code, reason = "consumed by `blocking --why`, next phase")
)]
mod syscalls;
#[cfg(all(test, feature = "ebpf"))]
mod tests;

#[cfg(feature = "ebpf")]
#[cfg_attr(
    not(test),
    expect(unused_imports, reason = "consumed by the tracer, next phase")
)]
pub use fentry::FentryProbe;
#[cfg(feature = "ebpf")]
pub use snapshot::TaskIterator;
#[cfg(feature = "ebpf")]
#[cfg_attr(
    not(test),
    expect(unused_imports, reason = "consumed by `blocking --why`, next phase")
)]
pub use syscalls::SyscallTracker;

/// Every thread of the system at one moment, from the `iter/task` program.
#[derive(Debug)]
pub struct TaskSnapshot {
    /// Sorted by tid. On a kernel without live patching every thread's
    /// `patch_state` is `Idle`. `cmdline` is empty and `starttime` 0: the
    /// kernel side does not read them.
    pub threads: Vec<Thread>,
    /// Records whose fields could not all be read (left out).
    pub incomplete: usize,
    /// Reading BTF and loading the program, then the pass itself.
    pub load_time: Duration,
    pub pass_time: Duration,
}

/// One snapshot of every thread's patch state, on a live-patching kernel.
/// Loads the program each time: callers weigh this against a procfs scan.
pub fn task_snapshot() -> Result<TaskSnapshot, Unavailable> {
    #[cfg(feature = "ebpf")]
    {
        TaskIterator::load(true)?.snapshot()
    }
    #[cfg(not(feature = "ebpf"))]
    {
        Err(Unavailable::NotBuiltIn)
    }
}

/// Why an eBPF path was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
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
