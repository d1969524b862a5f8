//! The transition tracer: fentry/fexit on the kernel's klp functions
//! (kernel/livepatch/transition.c), each attached only where this kernel has
//! and allows it, read from the `TRANSITION_EVENTS` ring buffer through
//! tokio (`AsyncFd`: woken by the kernel's ring buffer notification).

use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::{FEntry, FExit};
use aya::Ebpf;
use kgr_common::{
    TransitionEvent, COUNTER_EVENTS_LOST, EVENT_CANCEL, EVENT_CHECKED_SWITCH, EVENT_COMPLETE,
    EVENT_FORCE, EVENT_INIT, EVENT_REVERSE, EVENT_ROUND, EVENT_START, EVENT_UPDATE,
    GLOBAL_IGNORE_TGID, GLOBAL_OFFSET_MODULE_NAME, GLOBAL_OFFSET_PATCH_MOD, OFFSET_ABSENT,
};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::model::{KernelEvent, SwitchVia, Target};

use super::object::Kernel;
use super::{typed_program, unavailable, Unavailable};

/// (program in the object, kernel function, fexit?)
const HOOKS: [(&str, &str, bool); 9] = [
    ("monitor_init_transition", "klp_init_transition", false),
    ("monitor_start_transition", "klp_start_transition", false),
    (
        "monitor_reverse_transition",
        "klp_reverse_transition",
        false,
    ),
    ("monitor_force_transition", "klp_force_transition", false),
    ("monitor_cancel_transition", "klp_cancel_transition", false),
    (
        "monitor_complete_transition",
        "klp_complete_transition",
        false,
    ),
    (
        "monitor_try_complete_transition",
        "klp_try_complete_transition",
        false,
    ),
    (
        "monitor_update_patch_state",
        "klp_update_patch_state",
        false,
    ),
    (
        "monitor_check_and_switch_task",
        "klp_check_and_switch_task",
        true,
    ),
];

/// Without these the end of a transition is never seen: fall back to sysfs.
const REQUIRED: [&str; 2] = ["klp_start_transition", "klp_complete_transition"];

/// Attached while it lives; detached on drop.
pub struct TransitionTracer {
    ebpf: Ebpf,
    /// Registered with the tokio runtime `attach` ran in.
    events: AsyncFd<RingBuf<MapData>>,
    attached: Vec<&'static str>,
    skipped: Vec<Unavailable>,
}

/// One event read from the ring buffer: CLOCK_MONOTONIC ns and what it says.
pub type TimedEvent = (u64, KernelEvent);

impl TransitionTracer {
    /// Loads the object and attaches every hook this kernel has and allows.
    /// Runs inside a tokio runtime (with I/O), whose reactor then watches
    /// the ring buffer.
    pub fn attach() -> Result<TransitionTracer, Unavailable> {
        let functions: Vec<&str> = HOOKS.iter().map(|&(_, function, _)| function).collect();
        let mut kernel = Kernel::read(&functions)?;
        if kernel.offsets.patch_state.is_none() {
            return Err(Unavailable::NoLivePatching);
        }
        // The patch module's name, when BTF tells where it is.
        let module_offsets = kernel
            .ours
            .member_offsets("klp_patch", ["mod"])
            .ok()
            .flatten()
            .and_then(|[m]| m)
            .zip(
                kernel
                    .ours
                    .member_offsets("module", ["name"])
                    .ok()
                    .flatten()
                    .and_then(|[n]| n),
            );
        let (patch_mod, module_name) = module_offsets.unwrap_or((OFFSET_ABSENT, OFFSET_ABSENT));
        let mut ebpf = kernel.load_with(&[
            (GLOBAL_IGNORE_TGID, std::process::id()),
            (GLOBAL_OFFSET_PATCH_MOD, patch_mod),
            (GLOBAL_OFFSET_MODULE_NAME, module_name),
        ])?;
        let mut attached = Vec::new();
        let mut skipped = Vec::new();
        for (program, function, fexit) in HOOKS {
            if !kernel.ours.has_function(function) {
                skipped.push(Unavailable::MissingHook(function.into()));
                continue;
            }
            match attach_one(&mut ebpf, &kernel, program, function, fexit) {
                Ok(()) => attached.push(function),
                Err(why) => skipped.push(why),
            }
        }
        if let Some(missing) = REQUIRED.iter().find(|f| !attached.contains(f)) {
            // The reason of the first required hook that failed says it best.
            return Err(skipped
                .into_iter()
                .find(|why| why.to_string().contains(missing))
                .unwrap_or_else(|| Unavailable::MissingHook((*missing).into())));
        }
        let map = ebpf
            .take_map("TRANSITION_EVENTS")
            .ok_or_else(|| Unavailable::Failed {
                what: "the transition events".into(),
                error: "no ring buffer in the object".into(),
            })?;
        let events = RingBuf::try_from(map).map_err(|e| unavailable("the ring buffer", &e))?;
        // SAFETY: the ring buffer owns its map's fd: open, and the same, for
        // as long as the `AsyncFd` owns the ring buffer.
        let events = unsafe { AsyncFd::register_with_interest(events, Interest::READABLE) }
            .map_err(|e| unavailable("the ring buffer", &std::io::Error::from(e)))?;
        Ok(TransitionTracer {
            ebpf,
            events,
            attached,
            skipped,
        })
    }

    /// The kernel functions hooked, and the hooks skipped with why.
    pub fn hooks(&self) -> (&[&'static str], &[Unavailable]) {
        (&self.attached, &self.skipped)
    }

    /// Waits until the kernel has written events, then moves every pending
    /// one into `into`.
    pub async fn next_events(&mut self, into: &mut Vec<TimedEvent>) -> std::io::Result<()> {
        let mut ready = self.events.readable_mut().await?;
        let ring = ready.get_inner_mut();
        while let Some(item) = ring.next() {
            if item.len() < size_of::<TransitionEvent>() {
                continue;
            }
            // SAFETY: the kernel side writes whole `TransitionEvent`s (plain
            // integers, any bit pattern valid); read unaligned from the slice.
            let raw: TransitionEvent =
                unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<TransitionEvent>()) };
            if let Some(event) = convert(&raw) {
                into.push((raw.time_ns, event));
            }
        }
        // Drained: wait for the next notification (one that came meanwhile
        // is kept by tokio).
        ready.clear_ready();
        Ok(())
    }

    /// Events the kernel could not deliver (ring buffer full).
    pub fn lost(&self) -> u64 {
        let Some(map) = self.ebpf.map("COUNTERS") else {
            return 0;
        };
        let Ok(counters) = PerCpuArray::<&MapData, u64>::try_from(map) else {
            return 0;
        };
        counters
            .get(&COUNTER_EVENTS_LOST, 0)
            .map(|per_cpu| per_cpu.iter().sum())
            .unwrap_or(0)
    }
}

fn attach_one(
    ebpf: &mut Ebpf,
    kernel: &Kernel,
    program: &str,
    function: &str,
    fexit: bool,
) -> Result<(), Unavailable> {
    let what = format!("{} {function}", if fexit { "fexit" } else { "fentry" });
    if fexit {
        let prog: &mut FExit = typed_program(ebpf, program, &what)?;
        prog.load(function, kernel.aya()?)
            .map_err(|e| unavailable(&what, &e))?;
        prog.attach().map_err(|e| unavailable(&what, &e))?;
    } else {
        let prog: &mut FEntry = typed_program(ebpf, program, &what)?;
        prog.load(function, kernel.aya()?)
            .map_err(|e| unavailable(&what, &e))?;
        prog.attach().map_err(|e| unavailable(&what, &e))?;
    }
    Ok(())
}

/// The model's view of one wire event.
fn convert(raw: &TransitionEvent) -> Option<KernelEvent> {
    Some(match raw.kind {
        EVENT_INIT => {
            let len = raw
                .name
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(raw.name.len());
            KernelEvent::Init {
                patch: (len > 0).then(|| String::from_utf8_lossy(&raw.name[..len]).into_owned()),
                target: match raw.arg {
                    1 => Some(Target::Patched),
                    0 => Some(Target::Unpatched),
                    _ => None,
                },
            }
        }
        EVENT_START => KernelEvent::Start,
        EVENT_REVERSE => KernelEvent::Reverse,
        EVENT_FORCE => KernelEvent::Force,
        EVENT_CANCEL => KernelEvent::Cancel,
        EVENT_COMPLETE => KernelEvent::Complete,
        EVENT_ROUND => KernelEvent::Round,
        EVENT_UPDATE | EVENT_CHECKED_SWITCH => KernelEvent::Switch {
            tid: raw.tid,
            tgid: raw.tgid,
            via: if raw.kind == EVENT_UPDATE {
                SwitchVia::Exit
            } else {
                SwitchVia::StackCheck
            },
        },
        _ => return None,
    })
}
