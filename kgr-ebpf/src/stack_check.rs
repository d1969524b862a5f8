//! fexit on `klp_check_and_switch_task` (kernel/livepatch/transition.c): the
//! kernel's own verdict on each task it tries to switch, with the patched
//! function it found on the stack, kept per tid in a bounded map.

use core::ffi::c_void;

use aya_ebpf::helpers::{bpf_ktime_get_ns, bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes};
use aya_ebpf::macros::{fexit, map};
use aya_ebpf::maps::HashMap;
use aya_ebpf::programs::FExitContext;
use kgr_common::{Verdict, COUNTER_VERDICTS_FULL, VERDICTS_MAX_TASKS, VERDICT_FUNCTION_LEN};

use crate::offsets::{self, Member};
use crate::syscalls::count;

/// `-EADDRINUSE`: the only return value that sets `*oldname`.
const EADDRINUSE: i32 = -98;

/// tid → the last verdict on that task.
#[map]
static VERDICTS: HashMap<u32, Verdict> = HashMap::with_max_entries(VERDICTS_MAX_TASKS, 0);

#[fexit(function = "klp_check_and_switch_task")]
pub fn klp_check_and_switch_task(ctx: FExitContext) -> i32 {
    try_klp_check_and_switch_task(&ctx)
}

#[inline(always)]
fn try_klp_check_and_switch_task(ctx: &FExitContext) -> i32 {
    // static int klp_check_and_switch_task(struct task_struct *task, void *arg)
    // where arg is `const char **oldname`; fexit passes the return value
    // after the arguments.
    let task: *const u8 = ctx.arg(0);
    let oldname: *const *const u8 = ctx.arg::<*const c_void>(1).cast();
    // An int: the upper half of the register is undefined.
    let ret: i32 = ctx.arg(2);
    let Ok(tid) = offsets::read::<u32>(task, Member::Pid) else {
        return 0;
    };
    let tgid = offsets::read::<i32>(task, Member::Tgid).unwrap_or(0);
    let mut verdict = Verdict {
        // SAFETY: a helper without arguments.
        checked_ns: unsafe { bpf_ktime_get_ns() },
        ret,
        tgid,
        function: [0; VERDICT_FUNCTION_LEN],
    };
    if ret == EADDRINUSE {
        // SAFETY: the helper checks the address; a bad one is an error.
        if let Ok(name) = unsafe { bpf_probe_read_kernel(oldname) } {
            // SAFETY: as above; the name is copied into our own buffer.
            let _ = unsafe { bpf_probe_read_kernel_str_bytes(name, &mut verdict.function) };
        }
    }
    if VERDICTS.insert(tid, verdict, 0).is_err() {
        count(COUNTER_VERDICTS_FULL);
    }
    0
}
