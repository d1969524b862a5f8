//! `sys_enter`/`sys_exit` raw tracepoints: per thread, when it entered the
//! kernel and in which syscall, updated in place (an insert happens once per
//! thread); `sched_process_exit` drops the thread's entry.

use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns};
use aya_ebpf::macros::{map, raw_tracepoint};
use aya_ebpf::maps::{HashMap, PerCpuArray};
use aya_ebpf::programs::RawTracePointContext;
use kgr_common::{
    SyscallEntry, COUNTERS_LEN, COUNTER_IN_KERNEL_FULL, IN_KERNEL_MAX_THREADS, SYSCALL_NONE,
};

/// tid → where that thread is, bounded.
#[map]
static IN_KERNEL: HashMap<u32, SyscallEntry> = HashMap::with_max_entries(IN_KERNEL_MAX_THREADS, 0);

/// Event counters (`kgr_common::COUNTER_*`), summed over CPUs by kgr.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTERS_LEN, 0);

/// Adds one to counter `index`.
#[inline(always)]
pub fn count(index: u32) {
    if let Some(slot) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: a per-CPU slot, written only by this CPU with preemption off.
        unsafe { *slot += 1 };
    }
}

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter(ctx: RawTracePointContext) -> i32 {
    try_sys_enter(&ctx)
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn sys_exit(_ctx: RawTracePointContext) -> i32 {
    try_sys_exit()
}

#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(_ctx: RawTracePointContext) -> i32 {
    try_sched_process_exit()
}

fn current_tid() -> u32 {
    bpf_get_current_pid_tgid() as u32
}

#[inline(always)]
fn try_sys_enter(ctx: &RawTracePointContext) -> i32 {
    let tid = current_tid();
    // TP_PROTO(struct pt_regs *regs, long id)
    let nr: i64 = ctx.arg(1);
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if let Some(entry) = IN_KERNEL.get_ptr_mut(tid) {
        // SAFETY: a pointer into the map's value, valid for this program run.
        unsafe {
            (*entry).entered_ns = now;
            (*entry).nr = nr as i32;
        }
        return 0;
    }
    let entry = SyscallEntry {
        entered_ns: now,
        nr: nr as i32,
        reserved: 0,
    };
    if IN_KERNEL.insert(tid, entry, 0).is_err() {
        count(COUNTER_IN_KERNEL_FULL);
    }
    0
}

#[inline(always)]
fn try_sys_exit() -> i32 {
    if let Some(entry) = IN_KERNEL.get_ptr_mut(current_tid()) {
        // SAFETY: a pointer into the map's value, valid for this program run.
        unsafe { (*entry).nr = SYSCALL_NONE };
    }
    0
}

#[inline(always)]
fn try_sched_process_exit() -> i32 {
    // Absent entries are fine: the thread never made a syscall while traced.
    let _ = IN_KERNEL.remove(current_tid());
    0
}
