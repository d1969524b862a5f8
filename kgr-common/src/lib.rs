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

/// The version of `TaskRecord` and of the `iter/task` program's output. A
/// task iterator pinned by one kgr (`kgr monitor`) is read by another
/// (`kgr blocking`) only when both name the same version in the pin's name:
/// raise it with any change to the record or to what the program writes.
pub const TASK_RECORD_VERSION: u32 = 1;
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
/// Transition events not delivered: the `TRANSITION_EVENTS` ring buffer was full.
pub const COUNTER_EVENTS_LOST: u32 = 3;
pub const COUNTERS_LEN: u32 = 4;

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

/// The global holding kgr's own process id: the transition hooks ignore its
/// threads (reading events must not produce events).
pub const GLOBAL_IGNORE_TGID: &str = "IGNORE_TGID";

/// `TransitionEvent::kind`: `klp_init_transition(patch, state)`; `arg` is the
/// target state (1 patched, 0 unpatched), `name` the patch module's name.
pub const EVENT_INIT: u32 = 1;
/// `klp_start_transition()`.
pub const EVENT_START: u32 = 2;
/// `klp_reverse_transition()`.
pub const EVENT_REVERSE: u32 = 3;
/// `klp_force_transition()`.
pub const EVENT_FORCE: u32 = 4;
/// `klp_cancel_transition()`.
pub const EVENT_CANCEL: u32 = 5;
/// `klp_complete_transition()`.
pub const EVENT_COMPLETE: u32 = 6;
/// `klp_try_complete_transition()`: one retry round.
pub const EVENT_ROUND: u32 = 7;
/// `klp_update_patch_state(task)`: `tid`/`tgid` are the task's, `arg` its
/// `patch_state` before the call (kernel exit, idle).
pub const EVENT_UPDATE: u32 = 8;
/// `klp_check_and_switch_task(task)` returned 0: the retry round's stack
/// check switched the task; `tid`/`tgid` are the task's.
pub const EVENT_CHECKED_SWITCH: u32 = 9;

/// Bytes kept of the patch module's name (`MODULE_NAME_LEN` is 56).
pub const EVENT_NAME_LEN: usize = 56;

/// One event of a live patch transition, sent through the
/// `TRANSITION_EVENTS` ring buffer by the fentry programs on the
/// `klp_*_transition` functions (kernel/livepatch/transition.c).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TransitionEvent {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC).
    pub time_ns: u64,
    /// `EVENT_*`.
    pub kind: u32,
    /// The task concerned (`EVENT_UPDATE`), else the current task.
    pub tid: i32,
    pub tgid: i32,
    /// Kind-specific (see `EVENT_*`).
    pub arg: i32,
    /// `EVENT_INIT`: the patch module's name, NUL-terminated (empty when it
    /// could not be read).
    pub name: [u8; EVENT_NAME_LEN],
}

const _: () = assert!(core::mem::size_of::<TransitionEvent>() == 80);
const _: () = assert!(core::mem::align_of::<TransitionEvent>() == 8);

/// Size of the `TRANSITION_EVENTS` ring buffer (a power of two, pages).
pub const TRANSITION_EVENTS_BYTES: u32 = 256 * 1024;

/// Byte offsets, from BTF, of `struct klp_patch.mod` and `struct
/// module.name`, injected as globals (`OFFSET_ABSENT` when not found).
pub const GLOBAL_OFFSET_PATCH_MOD: &str = "OFFSET_PATCH_MOD";
pub const GLOBAL_OFFSET_MODULE_NAME: &str = "OFFSET_MODULE_NAME";
