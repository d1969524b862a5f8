//! `poke`: SIGSTOP + SIGCONT to the processes of blocking threads, so they
//! cross the kernel/user boundary and switch. Never signals kthreads, D-state
//! sleepers, stopped or traced tasks (a CONT would resume them), zombies or init.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use serde::{Serialize, Serializer};

use crate::model::Thread;
use crate::sources::signal::{self, PokeOutcome, PokeTarget};
use crate::sources::sysfs::Depth;

use super::{current_transition, read_system, Context};

/// The pause between SIGSTOP and SIGCONT.
const PAUSE: Duration = Duration::from_millis(100);

/// Why a process is not signalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    KernelThread,
    Init,
    Zombie,
    Stopped,
    Traced,
    UninterruptibleSleep,
    Exited,
    NotPermitted,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::KernelThread => "kernel thread",
            SkipReason::Init => "init",
            SkipReason::Zombie => "zombie",
            SkipReason::Stopped => "stopped",
            SkipReason::Traced => "traced",
            SkipReason::UninterruptibleSleep => "uninterruptible sleep",
            SkipReason::Exited => "exited",
            SkipReason::NotPermitted => "not permitted",
        }
    }
}

impl Serialize for SkipReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub pid: i32,
    pub reason: SkipReason,
}

/// One line of the human output, in pid order.
#[derive(Debug, Clone)]
pub enum PokeAction {
    Send(i32),
    Skip(Skipped),
}

#[derive(Debug, Serialize)]
pub struct PokeReport {
    pub poked: Vec<i32>,
    pub skipped: Vec<Skipped>,
    pub dry_run: bool,
    #[serde(skip)]
    pub actions: Vec<PokeAction>,
}

/// Decides, from the scan alone, whether a process may be poked.
/// `all_states` are the states of every thread of the process now.
pub fn verdict(pid: i32, blockers: &[&Thread], all_states: &[char]) -> Option<SkipReason> {
    if pid == 1 {
        return Some(SkipReason::Init);
    }
    if blockers.iter().any(|t| t.kthread) {
        return Some(SkipReason::KernelThread);
    }
    if blockers.iter().any(|t| t.state.is_zombie()) {
        return Some(SkipReason::Zombie);
    }
    let states = blockers
        .iter()
        .map(|t| t.state.0)
        .chain(all_states.iter().copied());
    let mut traced = false;
    for state in states {
        match state {
            'T' => return Some(SkipReason::Stopped),
            't' => traced = true,
            _ => {}
        }
    }
    if traced {
        return Some(SkipReason::Traced);
    }
    if blockers.iter().all(|t| t.state.is_uninterruptible()) {
        return Some(SkipReason::UninterruptibleSleep);
    }
    None
}

pub fn run(ctx: &mut Context, dry_run_asked: bool) -> Result<PokeReport> {
    let dry_run = dry_run_asked || !ctx.root.is_live();
    let system = read_system(ctx, Depth::States)?;
    let scan = match current_transition(&system) {
        Some(view) => view.blockers(ctx, false)?,
        None => Default::default(),
    };
    let mut by_process: BTreeMap<i32, Vec<&Thread>> = BTreeMap::new();
    for thread in &scan.threads {
        by_process.entry(thread.pid).or_default().push(thread);
    }
    let mut actions = Vec::new();
    let mut targets = Vec::new();
    for (pid, blockers) in &by_process {
        let all_states: Vec<char> = crate::sources::procfs::process_thread_states(&ctx.root, *pid)
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.0)
            .collect();
        match verdict(*pid, blockers, &all_states) {
            Some(reason) => actions.push(PokeAction::Skip(Skipped { pid: *pid, reason })),
            None => {
                let leader = blockers
                    .iter()
                    .find(|t| t.tid == *pid)
                    .unwrap_or(&blockers[0]);
                actions.push(PokeAction::Send(*pid));
                targets.push(PokeTarget {
                    pid: *pid,
                    starttime: leader.starttime,
                });
            }
        }
    }
    if !dry_run && !targets.is_empty() {
        let outcomes = signal::stop_cont(&ctx.root, &targets, PAUSE)?;
        for (target, outcome) in targets.iter().zip(outcomes) {
            let reason = match outcome {
                PokeOutcome::Sent => continue,
                PokeOutcome::Exited => SkipReason::Exited,
                PokeOutcome::NotPermitted => SkipReason::NotPermitted,
                PokeOutcome::NowStopped(state) if state.is_traced() => SkipReason::Traced,
                PokeOutcome::NowStopped(state) if state.is_zombie() => SkipReason::Zombie,
                PokeOutcome::NowStopped(_) => SkipReason::Stopped,
            };
            for action in &mut actions {
                if matches!(action, PokeAction::Send(pid) if *pid == target.pid) {
                    *action = PokeAction::Skip(Skipped {
                        pid: target.pid,
                        reason,
                    });
                }
            }
        }
    }
    let poked = actions
        .iter()
        .filter_map(|a| match a {
            PokeAction::Send(pid) => Some(*pid),
            PokeAction::Skip(_) => None,
        })
        .collect();
    let skipped = actions
        .iter()
        .filter_map(|a| match a {
            PokeAction::Skip(s) => Some(s.clone()),
            PokeAction::Send(_) => None,
        })
        .collect();
    Ok(PokeReport {
        poked,
        skipped,
        dry_run,
        actions,
    })
}
