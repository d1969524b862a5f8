//! The only code that loads, attaches and reads eBPF: the `iter/task`
//! snapshot, the `sys_enter`/`sys_exit` tracker, the fentry probe. Every way
//! in returns `Unavailable` instead of failing, so commands fall back to
//! procfs and say why with `-v`.

use std::fmt;

#[cfg(feature = "ebpf")]
pub mod btf;
#[cfg(feature = "ebpf")]
mod fentry;
#[cfg(feature = "ebpf")]
mod object;
#[cfg(feature = "ebpf")]
mod snapshot;
#[cfg(feature = "ebpf")]
mod syscalls;
#[cfg(all(test, feature = "ebpf"))]
mod tests;

#[cfg(feature = "ebpf")]
pub use fentry::FentryProbe;
#[cfg(feature = "ebpf")]
pub use snapshot::{TaskIterator, TaskSnapshot};
#[cfg(feature = "ebpf")]
pub use syscalls::{InKernel, SyscallTracker};

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
            Unavailable::FewThreads { threads, crossover } => write!(
                f,
                "{threads} threads, procfs is faster below {crossover}"
            ),
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
