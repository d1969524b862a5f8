//! `blocking` (and `blocking_threads`): the threads that hold the transition
//! up; with `--why`, why each one does.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use crate::model::{
    frame_symbols, infer, pokeable, syscall_name, PatchObject, PatchedAddresses, Source,
    SymbolTable, Target, Thread, Transition, Why,
};
use crate::sources::ebpf::{self, StackCheckTracer};
use crate::sources::sysfs::{Depth, Livepatching};
use crate::sources::{kallsyms, procfs};

use super::{current_transition, read_system, Context};

#[derive(Debug, Serialize)]
pub struct BlockingReport {
    pub transition: Option<Transition>,
    pub threads: Vec<Thread>,
    /// Some threads could not be examined (not root): the list may be short.
    #[serde(skip)]
    pub incomplete: bool,
    /// `--why`: each thread carries its `why`.
    #[serde(skip)]
    pub why: bool,
}

/// How long `--why` waits for the kernel to check every blocker once: its
/// retry work runs each second, rounded to a whole jiffies second
/// (kernel/livepatch/transition.c `klp_transition_work_fn`).
const VERDICT_WAIT: Duration = Duration::from_millis(1500);

pub fn run(ctx: &mut Context, details: bool, stacks: bool, why: bool) -> Result<BlockingReport> {
    let depth = if why { Depth::Full } else { Depth::States };
    let system = read_system(ctx, depth)?;
    let Some(view) = current_transition(&system) else {
        return Ok(BlockingReport {
            transition: None,
            threads: Vec::new(),
            incomplete: false,
            why,
        });
    };
    // Attached before the scan, so the kernel's next round runs meanwhile.
    let tracer = if why { start_tracer(ctx) } else { None };
    let mut scan = view.blockers(ctx, details || why, stacks || why)?;
    let mut transition = view.transition.clone();
    let incomplete = scan.unreadable > 0;
    if !incomplete {
        transition.threads_left = Some(scan.threads.len());
    }
    if why {
        let objects = patch_objects(&system, transition.patch.as_deref());
        // Unpatching: the stacks hold the patch's replacements, in its module.
        let replacements = match transition.target {
            Some(Target::Unpatched) => transition.patch.as_deref(),
            _ => None,
        };
        explain(
            ctx,
            &mut scan.threads,
            objects,
            replacements,
            tracer.as_ref(),
        )?;
    }
    Ok(BlockingReport {
        transition: Some(transition),
        threads: scan.threads,
        incomplete,
        why,
    })
}

/// The fexit tracer of the kernel's stack checks, when eBPF may be used and
/// its task ids are those of /proc; else `None`, said with `-v`.
fn start_tracer(ctx: &mut Context) -> Option<StackCheckTracer> {
    let attached = ebpf::precheck(ctx.root.is_live(), ctx.no_ebpf)
        .and_then(|()| ebpf::pid_view_trusted(&ebpf::PidNamespace::read()))
        .and_then(|()| StackCheckTracer::attach());
    match attached {
        Ok(tracer) => Some(tracer),
        Err(ebpf::Unavailable::ForeignRoot) => None,
        Err(why) => {
            ctx.note(format!("--why: the kernel's verdicts not used: {why}"));
            None
        }
    }
}

/// The objects of the transitioning patch (none on kGraft).
pub fn patch_objects<'a>(system: &'a Livepatching, patch: Option<&str>) -> &'a [PatchObject] {
    match (system, patch) {
        (Livepatching::Livepatch(patches), Some(name)) => patches
            .iter()
            .find(|p| p.name == name)
            .map_or(&[], |p| &p.objects[..]),
        _ => &[],
    }
}

/// kgr's inference from procfs of why threads block (`blocking --why`, and
/// `monitor`'s blocker samples): the patched function on each stack, matched
/// by address through `/proc/kallsyms`. Kept across samples, it reads
/// kallsyms again only when a stack names a symbol not looked up yet.
pub struct ProcfsWhy {
    objects: Vec<PatchObject>,
    replacements: Option<String>,
    /// The names looked up in kallsyms so far.
    wanted: HashSet<String>,
    symbols: SymbolTable,
    patched: PatchedAddresses,
    read_once: bool,
}

impl ProcfsWhy {
    /// For the patch's `objects`; `replacements`: the patch's module when
    /// the transition unpatches (the stacks then hold its replacements).
    pub fn new(objects: &[PatchObject], replacements: Option<&str>) -> ProcfsWhy {
        let mut wanted = HashSet::new();
        for object in objects {
            wanted.extend(object.functions.iter().map(|f| f.name.clone()));
        }
        ProcfsWhy {
            objects: objects.to_vec(),
            replacements: replacements.map(str::to_owned),
            wanted,
            symbols: SymbolTable::new(),
            patched: PatchedAddresses::default(),
            read_once: false,
        }
    }

    /// Fills each thread's `why` (`source: procfs`).
    pub fn explain(&mut self, ctx: &mut Context, threads: &mut [Thread]) -> Result<()> {
        let mut new = false;
        for thread in threads.iter() {
            for symbol in frame_symbols(thread.stack.as_deref().unwrap_or_default()) {
                if !self.wanted.contains(symbol) {
                    self.wanted.insert(symbol.to_owned());
                    new = true;
                }
            }
        }
        if new || !self.read_once {
            self.read_once = true;
            let wanted: HashSet<&str> = self.wanted.iter().map(String::as_str).collect();
            let symbols = kallsyms::read(&ctx.root, &wanted)?;
            if symbols.is_none() {
                ctx.note("--why: no /proc/kallsyms under the root: frames matched by name".into());
            }
            self.symbols = symbols.unwrap_or_default();
            self.patched = PatchedAddresses::resolve(
                &self.objects,
                &self.symbols,
                self.replacements.as_deref(),
            );
            if !self.patched.by_address() && !self.objects.is_empty() && !self.symbols.is_empty() {
                ctx.note(
                    "--why: kallsyms gives no addresses (run as root): frames matched by name"
                        .into(),
                );
            }
        }
        for thread in threads.iter_mut() {
            let function = self
                .patched
                .on_stack(thread.stack.as_deref().unwrap_or_default(), &self.symbols);
            let syscall = procfs::read_syscall(&ctx.root, thread.pid, thread.tid)
                .as_deref()
                .and_then(syscall_name);
            thread.why = Some(Why {
                reason: infer(thread, function.clone()),
                function,
                syscall,
                in_kernel_s: None,
                pokeable: pokeable(thread),
                source: Source::Procfs,
            });
        }
        Ok(())
    }
}

/// Fills each thread's `why`: kgr's inference from procfs, replaced by the
/// kernel's verdict where the tracer caught one.
fn explain(
    ctx: &mut Context,
    threads: &mut [Thread],
    objects: &[PatchObject],
    replacements: Option<&str>,
    tracer: Option<&StackCheckTracer>,
) -> Result<()> {
    let start = Instant::now();
    ProcfsWhy::new(objects, replacements).explain(ctx, threads)?;
    let procfs_ms = start.elapsed().as_millis();
    let Some(tracer) = tracer else {
        ctx.note(format!("--why: inferred from procfs in {procfs_ms} ms"));
        return Ok(());
    };
    // Wait for the kernel's next round to check every blocker.
    while tracer.attached_for_s() < VERDICT_WAIT.as_secs_f64()
        && !threads.iter().all(|t| tracer.verdict(t.tid).is_some())
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut verdicts = 0;
    for thread in threads.iter_mut() {
        let Some(why) = thread.why.as_mut() else {
            continue;
        };
        why.in_kernel_s = tracer.in_kernel_s(thread.tid);
        let Some(verdict) = tracer.verdict(thread.tid) else {
            continue;
        };
        // A 0 means it switched after the scan: the inference stands.
        let Some(reason) = verdict.reason else {
            continue;
        };
        verdicts += 1;
        why.reason = reason;
        if verdict.function.is_some() {
            why.function = verdict.function;
        }
        why.source = Source::Ebpf;
    }
    ctx.note(format!(
        "--why: the kernel's verdicts for {verdicts} of {} threads after {} ms (procfs inference: {procfs_ms} ms)",
        threads.len(),
        start.elapsed().as_millis()
    ));
    Ok(())
}
