//! `iter/task`: one `TaskRecord` per thread, written to the iterator's
//! seq_file; kgr reads them through the iterator link's file.

use core::ffi::c_void;

use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_get_current_task, bpf_seq_write};
use kgr_common::{
    TaskRecord, MARK_CURRENT, MARK_PID_MISMATCH, MARK_READ_FAILED, PATCH_STATE_ABSENT,
};

use crate::offsets::{self, Member};

/// The iterator's context: `struct bpf_iter__task` (kernel/bpf/task_iter.c).
#[repr(C)]
struct IterTaskContext {
    meta: *const IterMeta,
    task: *const u8,
}

/// `struct bpf_iter_meta`: only its first member is used.
#[repr(C)]
struct IterMeta {
    seq: *mut c_void,
}

#[no_mangle]
#[link_section = "iter/task"]
pub fn task_iter(ctx: *mut c_void) -> i32 {
    try_task_iter(ctx.cast())
}

#[inline(always)]
fn try_task_iter(ctx: *const IterTaskContext) -> i32 {
    // SAFETY: the kernel passes a valid `bpf_iter__task`; `task` is NULL on
    // the final call, checked below, and the verifier checks every load.
    let (seq, task) = unsafe { ((*(*ctx).meta).seq, (*ctx).task) };
    if task.is_null() {
        return 0;
    }
    let record = describe(task);
    // SAFETY: `record` lives on the stack for the duration of the call and
    // `seq` is the iterator's seq_file.
    unsafe {
        bpf_seq_write(
            seq.cast(),
            core::ptr::from_ref(&record).cast(),
            core::mem::size_of::<TaskRecord>() as u32,
        );
    }
    0
}

#[inline(always)]
fn describe(task: *const u8) -> TaskRecord {
    let mut marks = 0;
    let mut field = |member| {
        offsets::read::<u32>(task, member).unwrap_or_else(|_| {
            marks |= MARK_READ_FAILED;
            0
        })
    };
    let tid = field(Member::Pid) as i32;
    let tgid = field(Member::Tgid) as i32;
    let state = field(Member::State);
    let exit_state = field(Member::ExitState);
    let flags = field(Member::Flags);
    let patch_state = if offsets::present(Member::PatchState) {
        field(Member::PatchState) as i32
    } else {
        PATCH_STATE_ABSENT
    };
    let comm = offsets::read::<[u8; 16]>(task, Member::Comm).unwrap_or_else(|_| {
        marks |= MARK_READ_FAILED;
        [0; 16]
    });
    // SAFETY: a helper without arguments.
    let current = unsafe { bpf_get_current_task() };
    let pid_tgid = bpf_get_current_pid_tgid();
    if current == task as u64 {
        // The thread running this iterator: what it read at the injected
        // offsets must match what the kernel says it is.
        marks |= MARK_CURRENT;
        if tid as u32 != pid_tgid as u32 || tgid as u32 != (pid_tgid >> 32) as u32 {
            marks |= MARK_PID_MISMATCH;
        }
    }
    TaskRecord {
        tid,
        tgid,
        state,
        exit_state,
        flags,
        patch_state,
        marks,
        comm,
    }
}
