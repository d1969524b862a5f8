//! The kernel's stack-check verdicts: fexit on `klp_check_and_switch_task`
//! (kernel/livepatch/transition.c), read per tid from the `VERDICTS` map;
//! with the `sys_enter`/`sys_exit` tracker in the same object for how long a
//! thread has been in the kernel.

use aya::maps::{HashMap, MapData};
use aya::programs::FExit;
use aya::Ebpf;
use kgr_common::Verdict;

use crate::model::Reason;

use super::object::Kernel;
use super::syscalls::{self, monotonic_ns, InKernel};
use super::{typed_program, unavailable, KernelVerdict, Unavailable};

/// The kernel function whose return is the verdict.
const HOOK: &str = "klp_check_and_switch_task";

/// Attached while it lives; detached on drop.
pub struct StackCheckTracer {
    ebpf: Ebpf,
    /// CLOCK_MONOTONIC at attach: older verdicts are not in the map anyway,
    /// but the tracker's entries are only as old as this.
    attached_ns: u64,
    /// Why the syscall tracker is not attached (the verdicts still are).
    pub syscalls_unavailable: Option<Unavailable>,
}

impl StackCheckTracer {
    /// Loads the object once and attaches the fexit program (required) and
    /// the syscall tracker (optional).
    pub fn attach() -> Result<StackCheckTracer, Unavailable> {
        let mut kernel = Kernel::read(&[HOOK])?;
        if kernel.offsets.patch_state.is_none() {
            return Err(Unavailable::NoLivePatching);
        }
        if !kernel.ours.has_function(HOOK) {
            return Err(Unavailable::MissingHook(HOOK.into()));
        }
        let mut ebpf = kernel.load()?;
        let what = format!("fexit {HOOK}");
        let program: &mut FExit = typed_program(&mut ebpf, HOOK, &what)?;
        program
            .load(HOOK, kernel.aya()?)
            .map_err(|e| unavailable(&what, &e))?;
        program.attach().map_err(|e| unavailable(&what, &e))?;
        let syscalls_unavailable = syscalls::attach_hooks(&mut ebpf).err();
        Ok(StackCheckTracer {
            ebpf,
            attached_ns: monotonic_ns(),
            syscalls_unavailable,
        })
    }

    /// The kernel's last verdict on thread `tid`, if it checked it since
    /// the attach.
    pub fn verdict(&self, tid: i32) -> Option<KernelVerdict> {
        let map: HashMap<&MapData, u32, Verdict> =
            HashMap::try_from(self.ebpf.map("VERDICTS")?).ok()?;
        let v = map.get(&u32::try_from(tid).ok()?, 0).ok()?;
        let len = v
            .function
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(v.function.len());
        let function = (len > 0).then(|| String::from_utf8_lossy(&v.function[..len]).into_owned());
        Some(KernelVerdict {
            reason: Reason::from_kernel(v.ret),
            function,
        })
    }

    /// How long thread `tid` has been in its syscall, when the tracker saw
    /// it enter (only entries after the attach).
    pub fn in_kernel_since(&self, tid: i32) -> Option<InKernel> {
        if self.syscalls_unavailable.is_some() {
            return None;
        }
        syscalls::in_kernel_since(&self.ebpf, tid)
    }

    /// Seconds in the kernel, as `in_kernel_since` but in seconds.
    pub fn in_kernel_s(&self, tid: i32) -> Option<f64> {
        self.in_kernel_since(tid).map(|k| k.elapsed.as_secs_f64())
    }

    /// Seconds since the attach.
    pub fn attached_for_s(&self) -> f64 {
        monotonic_ns().saturating_sub(self.attached_ns) as f64 / 1e9
    }
}
