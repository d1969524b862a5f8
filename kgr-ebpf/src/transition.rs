//! fentry on the `klp_*_transition` functions and `klp_update_patch_state`
//! (kernel/livepatch/transition.c): each call becomes one `TransitionEvent`
//! in the `TRANSITION_EVENTS` ring buffer; a full buffer is counted in
//! `COUNTERS[COUNTER_EVENTS_LOST]`. kgr's own threads are ignored.

use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel,
    bpf_probe_read_kernel_str_bytes,
};
use aya_ebpf::macros::{fentry, fexit, map};
use aya_ebpf::maps::RingBuf;
use aya_ebpf::programs::{FEntryContext, FExitContext};
use kgr_common::{
    TransitionEvent, COUNTER_EVENTS_LOST, EVENT_CANCEL, EVENT_CHECKED_SWITCH, EVENT_COMPLETE,
    EVENT_FORCE, EVENT_INIT, EVENT_NAME_LEN, EVENT_REVERSE, EVENT_ROUND, EVENT_START, EVENT_UPDATE,
    OFFSET_ABSENT, TRANSITION_EVENTS_BYTES,
};

use crate::offsets::{self, Member};
use crate::syscalls::count;

/// kgr's own process id (injected; 0: none ignored).
#[no_mangle]
static IGNORE_TGID: u32 = 0;
/// `struct klp_patch.mod` and `struct module.name`, from BTF.
#[no_mangle]
static OFFSET_PATCH_MOD: u32 = OFFSET_ABSENT;
#[no_mangle]
static OFFSET_MODULE_NAME: u32 = OFFSET_ABSENT;

#[map]
static TRANSITION_EVENTS: RingBuf = RingBuf::with_byte_size(TRANSITION_EVENTS_BYTES, 0);

#[fentry(function = "klp_init_transition")]
pub fn monitor_init_transition(ctx: FEntryContext) -> i32 {
    try_init_transition(&ctx)
}

#[fentry(function = "klp_start_transition")]
pub fn monitor_start_transition(_ctx: FEntryContext) -> i32 {
    current_event(EVENT_START)
}

#[fentry(function = "klp_reverse_transition")]
pub fn monitor_reverse_transition(_ctx: FEntryContext) -> i32 {
    current_event(EVENT_REVERSE)
}

#[fentry(function = "klp_force_transition")]
pub fn monitor_force_transition(_ctx: FEntryContext) -> i32 {
    current_event(EVENT_FORCE)
}

#[fentry(function = "klp_cancel_transition")]
pub fn monitor_cancel_transition(_ctx: FEntryContext) -> i32 {
    current_event(EVENT_CANCEL)
}

#[fentry(function = "klp_complete_transition")]
pub fn monitor_complete_transition(_ctx: FEntryContext) -> i32 {
    current_event(EVENT_COMPLETE)
}

#[fentry(function = "klp_try_complete_transition")]
pub fn monitor_try_complete_transition(_ctx: FEntryContext) -> i32 {
    current_event(EVENT_ROUND)
}

#[fentry(function = "klp_update_patch_state")]
pub fn monitor_update_patch_state(ctx: FEntryContext) -> i32 {
    try_update_patch_state(&ctx)
}

#[fexit(function = "klp_check_and_switch_task")]
pub fn monitor_check_and_switch_task(ctx: FExitContext) -> i32 {
    try_check_and_switch_task(&ctx)
}

/// A volatile read of an injected global (else the default is folded in).
#[inline(always)]
fn global(value: &u32) -> u32 {
    // SAFETY: a plain read of an initialised static.
    unsafe { core::ptr::read_volatile(value) }
}

#[inline(always)]
fn new_event(kind: u32, tid: i32, tgid: i32, arg: i32) -> TransitionEvent {
    TransitionEvent {
        // SAFETY: a helper without arguments.
        time_ns: unsafe { bpf_ktime_get_ns() },
        kind,
        tid,
        tgid,
        arg,
        name: [0; EVENT_NAME_LEN],
    }
}

#[inline(always)]
fn send(event: &TransitionEvent) {
    if TRANSITION_EVENTS
        .output::<TransitionEvent>(event, 0)
        .is_err()
    {
        count(COUNTER_EVENTS_LOST);
    }
}

/// An event about the current task (the one calling the hooked function).
#[inline(always)]
fn current_event(kind: u32) -> i32 {
    let id = bpf_get_current_pid_tgid();
    send(&new_event(kind, id as i32, (id >> 32) as i32, 0));
    0
}

#[inline(always)]
fn try_init_transition(ctx: &FEntryContext) -> i32 {
    // void klp_init_transition(struct klp_patch *patch, int state)
    let patch: *const u8 = ctx.arg(0);
    let state: i64 = ctx.arg(1);
    let id = bpf_get_current_pid_tgid();
    let mut event = new_event(EVENT_INIT, id as i32, (id >> 32) as i32, state as i32);
    let (mod_off, name_off) = (global(&OFFSET_PATCH_MOD), global(&OFFSET_MODULE_NAME));
    if mod_off != OFFSET_ABSENT && name_off != OFFSET_ABSENT {
        // SAFETY: the helper checks the address; a bad one is an error.
        let module = unsafe {
            bpf_probe_read_kernel(patch.wrapping_add(mod_off as usize).cast::<*const u8>())
        };
        if let Ok(module) = module {
            if !module.is_null() {
                // SAFETY: as above; the name is copied into our own buffer.
                let _ = unsafe {
                    bpf_probe_read_kernel_str_bytes(
                        module.wrapping_add(name_off as usize),
                        &mut event.name,
                    )
                };
            }
        }
    }
    send(&event);
    0
}

#[inline(always)]
fn try_update_patch_state(ctx: &FEntryContext) -> i32 {
    // void klp_update_patch_state(struct task_struct *task)
    let task: *const u8 = ctx.arg(0);
    task_event(EVENT_UPDATE, task)
}

/// An event about `task`, with its `patch_state` as `arg`; none for kgr's
/// own threads.
#[inline(always)]
fn task_event(kind: u32, task: *const u8) -> i32 {
    let Ok(tid) = offsets::read::<i32>(task, Member::Pid) else {
        return 0;
    };
    let tgid = offsets::read::<i32>(task, Member::Tgid).unwrap_or(0);
    let ignore = global(&IGNORE_TGID);
    if ignore != 0 && tgid as u32 == ignore {
        return 0;
    }
    let state = offsets::read::<i32>(task, Member::PatchState).unwrap_or(i32::MIN);
    send(&new_event(kind, tid, tgid, state));
    0
}

#[inline(always)]
fn try_check_and_switch_task(ctx: &FExitContext) -> i32 {
    // static int klp_check_and_switch_task(struct task_struct *task, void *arg)
    let task: *const u8 = ctx.arg(0);
    // An int: the upper half of the register is undefined.
    let ret: i32 = ctx.arg(2);
    if ret != 0 {
        return 0;
    }
    task_event(EVENT_CHECKED_SWITCH, task)
}
