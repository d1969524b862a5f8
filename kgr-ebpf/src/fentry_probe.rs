//! An fentry probe on `klp_init_transition` (a transition is being set up).
//! kgr loads it against whatever function it names at load time; where the
//! kernel refuses trampolines (EPERM) kgr falls back to procfs.

use aya_ebpf::macros::fentry;
use aya_ebpf::programs::FEntryContext;
use kgr_common::COUNTER_FENTRY_HITS;

use crate::syscalls::count;

#[fentry(function = "klp_init_transition")]
pub fn klp_init_transition(_ctx: FEntryContext) -> i32 {
    try_klp_init_transition()
}

#[inline(always)]
fn try_klp_init_transition() -> i32 {
    count(COUNTER_FENTRY_HITS);
    0
}
