//! The `sys_enter`/`sys_exit` tracker: for each thread, the syscall it is in
//! and since when, kept by the kernel side in a bounded map updated in place.

use std::time::Duration;

use aya::maps::{HashMap, MapData, PerCpuArray};
use aya::programs::RawTracePoint;
use aya::Ebpf;
use kgr_common::{SyscallEntry, COUNTER_IN_KERNEL_FULL, SYSCALL_NONE};

use super::object::Kernel;
use super::{typed_program, unavailable, Unavailable};

/// The raw tracepoints the tracker needs, by program name.
const HOOKS: [&str; 3] = ["sys_enter", "sys_exit", "sched_process_exit"];

/// Attached while it lives; detached on drop.
pub struct SyscallTracker {
    ebpf: Ebpf,
}

/// A thread that is in a syscall now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InKernel {
    /// The syscall number (arch-specific table).
    pub syscall: i32,
    /// How long it has been in the kernel.
    pub elapsed: Duration,
}

#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "`blocking --why` attaches the hooks with its verdicts"
    )
)]
impl SyscallTracker {
    /// Loads and attaches the three raw tracepoints. Threads are seen from
    /// their next syscall on.
    pub fn attach() -> Result<SyscallTracker, Unavailable> {
        // Raw tracepoints attach by name: no function ids needed.
        let mut kernel = Kernel::read(&[])?;
        let mut ebpf = kernel.load()?;
        attach_hooks(&mut ebpf)?;
        Ok(SyscallTracker { ebpf })
    }

    /// The syscall thread `tid` is in and for how long, `None` when it is in
    /// user space or was not seen entering since the tracker was attached.
    pub fn in_kernel_since(&self, tid: i32) -> Option<InKernel> {
        in_kernel_since(&self.ebpf, tid)
    }

    /// Threads not tracked because the map was full.
    pub fn untracked(&self) -> u64 {
        let Some(map) = self.ebpf.map("COUNTERS") else {
            return 0;
        };
        let Ok(counters) = PerCpuArray::<&MapData, u64>::try_from(map) else {
            return 0;
        };
        counters
            .get(&COUNTER_IN_KERNEL_FULL, 0)
            .map(|per_cpu| per_cpu.iter().sum())
            .unwrap_or(0)
    }
}

/// Attaches the tracker's raw tracepoints in an object loaded elsewhere.
pub(super) fn attach_hooks(ebpf: &mut Ebpf) -> Result<(), Unavailable> {
    for hook in HOOKS {
        let what = format!("raw tracepoint {hook}");
        let program: &mut RawTracePoint = typed_program(ebpf, hook, &what)?;
        program.load().map_err(|e| unavailable(&what, &e))?;
        program.attach(hook).map_err(|e| unavailable(&what, &e))?;
    }
    Ok(())
}

/// The `IN_KERNEL` entry of `tid` in `ebpf`'s map, as an `InKernel`.
pub(super) fn in_kernel_since(ebpf: &Ebpf, tid: i32) -> Option<InKernel> {
    let map: HashMap<&MapData, u32, SyscallEntry> =
        HashMap::try_from(ebpf.map("IN_KERNEL")?).ok()?;
    let entry = map.get(&u32::try_from(tid).ok()?, 0).ok()?;
    if entry.nr == SYSCALL_NONE {
        return None;
    }
    let now = monotonic_ns();
    Some(InKernel {
        syscall: entry.nr,
        elapsed: Duration::from_nanos(now.saturating_sub(entry.entered_ns)),
    })
}

/// CLOCK_MONOTONIC, the clock of `bpf_ktime_get_ns`.
pub(super) fn monotonic_ns() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (now.tv_sec as u64) * 1_000_000_000 + now.tv_nsec as u64
}
