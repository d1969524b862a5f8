//! `task_struct` member offsets, injected by kgr at load time from the
//! kernel's BTF (Rust cannot emit CO-RE relocations): `OFFSET_ABSENT` means
//! this kernel has no such member. Names match `kgr_common::GLOBAL_OFFSET_*`.

use aya_ebpf::helpers::bpf_probe_read_kernel;
use kgr_common::OFFSET_ABSENT;

#[no_mangle]
static OFFSET_PID: u32 = OFFSET_ABSENT;
#[no_mangle]
static OFFSET_TGID: u32 = OFFSET_ABSENT;
#[no_mangle]
static OFFSET_STATE: u32 = OFFSET_ABSENT;
#[no_mangle]
static OFFSET_EXIT_STATE: u32 = OFFSET_ABSENT;
#[no_mangle]
static OFFSET_FLAGS: u32 = OFFSET_ABSENT;
#[no_mangle]
static OFFSET_COMM: u32 = OFFSET_ABSENT;
#[no_mangle]
static OFFSET_PATCH_STATE: u32 = OFFSET_ABSENT;

/// The members a program can ask for.
#[derive(Clone, Copy)]
pub enum Member {
    Pid,
    Tgid,
    State,
    ExitState,
    Flags,
    Comm,
    PatchState,
}

/// The injected offset; a volatile read, or the compiler would fold in the
/// default that the loader replaces.
#[inline(always)]
fn offset(member: Member) -> u32 {
    let global = match member {
        Member::Pid => &OFFSET_PID,
        Member::Tgid => &OFFSET_TGID,
        Member::State => &OFFSET_STATE,
        Member::ExitState => &OFFSET_EXIT_STATE,
        Member::Flags => &OFFSET_FLAGS,
        Member::Comm => &OFFSET_COMM,
        Member::PatchState => &OFFSET_PATCH_STATE,
    };
    // SAFETY: a plain read of an initialised static.
    unsafe { core::ptr::read_volatile(global) }
}

/// Whether this kernel's `task_struct` has `member`.
#[inline(always)]
pub fn present(member: Member) -> bool {
    offset(member) != OFFSET_ABSENT
}

/// Reads `member` of the `task_struct` at `task`: `Err` when the kernel lacks
/// the member or the read faults.
#[inline(always)]
pub fn read<T: Copy>(task: *const u8, member: Member) -> Result<T, i64> {
    let off = offset(member);
    if off == OFFSET_ABSENT {
        return Err(-1);
    }
    // SAFETY: `bpf_probe_read_kernel` checks the address itself; a bad one
    // returns an error instead of faulting.
    unsafe { bpf_probe_read_kernel(task.wrapping_add(off as usize).cast::<T>()) }.map_err(i64::from)
}
