//! The wire types kgr's eBPF programs write and kgr reads: defined once,
//! `#[repr(C)]`, no `bool`, no implicit padding, sizes checked at compile time.

#![no_std]

/// `TaskRecord::patch_state` when this kernel has no `task_struct.patch_state`
/// (no CONFIG_LIVEPATCH).
pub const PATCH_STATE_ABSENT: i32 = i32::MIN;

/// `TaskRecord::marks`: this record describes the task that runs the iterator.
pub const MARK_CURRENT: u32 = 1 << 0;
/// `TaskRecord::marks`: for the current task, the pid read at the injected
/// offset differs from `bpf_get_current_pid_tgid`: the offsets are wrong.
pub const MARK_PID_MISMATCH: u32 = 1 << 1;
/// `TaskRecord::marks`: a field could not be read; the record is incomplete.
pub const MARK_READ_FAILED: u32 = 1 << 2;

/// One thread, as the `iter/task` program sees it (one record per task).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TaskRecord {
    /// `task_struct.pid`: the thread id.
    pub tid: i32,
    /// `task_struct.tgid`: the process id.
    pub tgid: i32,
    /// `task_struct.__state`.
    pub state: u32,
    /// `task_struct.exit_state` (zombie, dead).
    pub exit_state: u32,
    /// `task_struct.flags` (PF_KTHREAD, ...).
    pub flags: u32,
    /// `task_struct.patch_state`: -1, 0, 1, or `PATCH_STATE_ABSENT`.
    pub patch_state: i32,
    /// `MARK_*` bits.
    pub marks: u32,
    /// `task_struct.comm`, NUL-padded.
    pub comm: [u8; 16],
}

const _: () = assert!(core::mem::size_of::<TaskRecord>() == 44);
const _: () = assert!(core::mem::align_of::<TaskRecord>() == 4);

/// The byte offsets of the `task_struct` members the programs read, found in
/// the kernel's BTF at load time and injected as globals (`u32::MAX`: absent).
/// One global per member, named `OFFSET_<MEMBER>`.
pub const OFFSET_ABSENT: u32 = u32::MAX;
pub const GLOBAL_OFFSET_PID: &str = "OFFSET_PID";
pub const GLOBAL_OFFSET_TGID: &str = "OFFSET_TGID";
pub const GLOBAL_OFFSET_STATE: &str = "OFFSET_STATE";
pub const GLOBAL_OFFSET_EXIT_STATE: &str = "OFFSET_EXIT_STATE";
pub const GLOBAL_OFFSET_FLAGS: &str = "OFFSET_FLAGS";
pub const GLOBAL_OFFSET_COMM: &str = "OFFSET_COMM";
pub const GLOBAL_OFFSET_PATCH_STATE: &str = "OFFSET_PATCH_STATE";

/// Where a thread is in a syscall: the value of the `IN_KERNEL` map, keyed by
/// tid, written in place by the `sys_enter`/`sys_exit` raw tracepoints.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SyscallEntry {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) at `sys_enter`.
    pub entered_ns: u64,
    /// The syscall number, or `SYSCALL_NONE` after `sys_exit`.
    pub nr: i32,
    /// Explicit padding (always 0).
    pub reserved: u32,
}

/// `SyscallEntry::nr` of a thread that is back in user space.
pub const SYSCALL_NONE: i32 = -1;

const _: () = assert!(core::mem::size_of::<SyscallEntry>() == 16);
const _: () = assert!(core::mem::align_of::<SyscallEntry>() == 8);

// SAFETY: plain integers with no padding (asserted above): any bit pattern
// is a valid value.
#[cfg(feature = "user")]
unsafe impl aya::Pod for SyscallEntry {}
// SAFETY: as above.
#[cfg(feature = "user")]
unsafe impl aya::Pod for TaskRecord {}

/// Bound of the `IN_KERNEL` map: threads beyond it are not tracked (counted in
/// `COUNTERS[COUNTER_IN_KERNEL_FULL]`).
pub const IN_KERNEL_MAX_THREADS: u32 = 65_536;

/// Indexes of the `COUNTERS` array map.
pub const COUNTER_IN_KERNEL_FULL: u32 = 0;
pub const COUNTER_FENTRY_HITS: u32 = 1;
pub const COUNTER_VERDICTS_FULL: u32 = 2;
pub const COUNTERS_LEN: u32 = 3;

/// Bytes kept of the function name the kernel's stack check returns.
pub const VERDICT_FUNCTION_LEN: usize = 64;

/// The kernel's verdict on one task: the value of the `VERDICTS` map, keyed
/// by tid, written by the fexit program on `klp_check_and_switch_task`
/// (kernel/livepatch/transition.c) at each check of that task.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Verdict {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) of the check.
    pub checked_ns: u64,
    /// Its return value: 0 switched, -EBUSY running, -EINVAL unreliable
    /// stack, -EADDRINUSE sleeping on `function`.
    pub ret: i32,
    /// `task_struct.tgid`.
    pub tgid: i32,
    /// With -EADDRINUSE: the patched function's name, NUL-terminated.
    pub function: [u8; VERDICT_FUNCTION_LEN],
}

const _: () = assert!(core::mem::size_of::<Verdict>() == 80);
const _: () = assert!(core::mem::align_of::<Verdict>() == 8);

// SAFETY: plain integers and bytes, no padding (asserted above).
#[cfg(feature = "user")]
unsafe impl aya::Pod for Verdict {}

/// Bound of the `VERDICTS` map: tasks beyond it are counted in
/// `COUNTERS[COUNTER_VERDICTS_FULL]`, not recorded.
pub const VERDICTS_MAX_TASKS: u32 = 16_384;
