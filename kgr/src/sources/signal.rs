//! The one place kgr sends a signal: SIGSTOP, a pause, SIGCONT, through a pidfd.

use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use rustix::fd::OwnedFd;
use rustix::io::Errno;
use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};

use crate::model::TaskState;

use super::procfs::process_identity;
use super::Root;

/// What happened to one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PokeOutcome {
    Sent,
    /// The process is gone, or its pid now names another process.
    Exited,
    /// It became stopped, traced or a zombie since the scan.
    NowStopped(TaskState),
    /// Not this user's process.
    NotPermitted,
}

/// A process to poke, as the scan saw it.
#[derive(Debug, Clone, Copy)]
pub struct PokeTarget {
    pub pid: i32,
    /// One of its blocking threads, and that thread's start time at the
    /// scan: a recycled pid has no such thread.
    pub tid: i32,
    pub starttime: u64,
}

/// Sends SIGSTOP to every target, waits `pause` once, then SIGCONT to each
/// that was stopped — only where the pid still names the process that was
/// scanned and it is not stopped, traced or dead. Each pidfd is opened first
/// and the identity checked after, so the signals reach that process and
/// never one that recycled its pid. Outcomes come back in target order.
pub fn stop_cont(root: &Root, targets: &[PokeTarget], pause: Duration) -> Result<Vec<PokeOutcome>> {
    let mut outcomes = Vec::with_capacity(targets.len());
    let mut stopped = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        let outcome = match open_checked(root, *target)? {
            Ok(pidfd) => match pidfd_send_signal(&pidfd, Signal::STOP) {
                Ok(()) => {
                    stopped.push((i, pidfd));
                    PokeOutcome::Sent
                }
                Err(Errno::SRCH) => PokeOutcome::Exited,
                Err(Errno::PERM) => PokeOutcome::NotPermitted,
                Err(err) => {
                    return Err(err).with_context(|| format!("sending SIGSTOP to {}", target.pid))
                }
            },
            Err(outcome) => outcome,
        };
        outcomes.push(outcome);
    }
    if !stopped.is_empty() {
        thread::sleep(pause);
    }
    for (i, pidfd) in stopped {
        match pidfd_send_signal(&pidfd, Signal::CONT) {
            Ok(()) => {}
            Err(Errno::SRCH) => outcomes[i] = PokeOutcome::Exited,
            Err(err) => {
                return Err(err).with_context(|| format!("sending SIGCONT to {}", targets[i].pid))
            }
        }
    }
    Ok(outcomes)
}

/// Opens a pidfd and checks that it names the scanned process in a state
/// that may be signalled; otherwise says why not.
fn open_checked(root: &Root, target: PokeTarget) -> Result<Result<OwnedFd, PokeOutcome>> {
    let Some(raw) = Pid::from_raw(target.pid) else {
        return Ok(Err(PokeOutcome::Exited));
    };
    let pidfd = match pidfd_open(raw, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(Errno::SRCH) => return Ok(Err(PokeOutcome::Exited)),
        Err(err) => return Err(err).with_context(|| format!("opening a pidfd for {}", target.pid)),
    };
    Ok(match process_identity(root, target.pid, target.tid)? {
        None => Err(PokeOutcome::Exited),
        Some((_, start)) if start != target.starttime => Err(PokeOutcome::Exited),
        Some((state, _)) if state.is_stopped() || state.is_traced() || state.is_zombie() => {
            Err(PokeOutcome::NowStopped(state))
        }
        Some(_) => Ok(pidfd),
    })
}

/// True when kgr runs as root (signals and per-task files need it).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
