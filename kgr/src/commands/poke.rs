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
        Some(view) => view.blockers(ctx, true, false)?,
        None => Default::default(),
    };
    poke_threads(ctx, &scan.threads, dry_run)
}

/// Pokes the processes of `threads` (the blocking set), or says what it would do.
pub fn poke_threads(ctx: &Context, threads: &[Thread], dry_run: bool) -> Result<PokeReport> {
    let mut by_process: BTreeMap<i32, Vec<&Thread>> = BTreeMap::new();
    for thread in threads {
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
                // Any blocking thread witnesses the process's identity.
                let witness = blockers[0];
                actions.push(PokeAction::Send(*pid));
                targets.push(PokeTarget {
                    pid: *pid,
                    tid: witness.tid,
                    starttime: witness.starttime,
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

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::thread::sleep;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::model::{PatchState, TaskState};
    use crate::sources::procfs::read_thread;
    use crate::sources::Root;

    fn ctx() -> Context {
        Context {
            root: Root::live(),
            verbose: 1,
            json: false,
            no_ebpf: false,
            force_ebpf: false,
            warnings: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Kills and reaps the test's children however the test ends.
    struct Children(Vec<Child>);

    impl Drop for Children {
        fn drop(&mut self) {
            for child in &mut self.0 {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// A real process that appends a line to `log` each time it gets SIGCONT.
    fn cont_logger(log: &PathBuf) -> Child {
        let script = format!(
            "trap 'echo cont >> {}' CONT; echo ready >> {0}; while :; do sleep 0.05; done",
            log.display()
        );
        let child = Command::new("bash")
            .args(["-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning bash");
        let deadline = Instant::now() + Duration::from_secs(5);
        while fs::read_to_string(log).unwrap_or_default().is_empty() {
            assert!(Instant::now() < deadline, "child never became ready");
            sleep(Duration::from_millis(10));
        }
        child
    }

    fn thread_of(child: &Child) -> Thread {
        let pid = child.id() as i32;
        read_thread(&Root::live(), pid, pid, PatchState::Unpatched)
            .expect("reading child")
            .expect("child exists")
    }

    fn conts(log: &PathBuf) -> usize {
        fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == "cont")
            .count()
    }

    fn state(pid: u32) -> char {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let after = stat.rsplit_once(") ").expect("stat shape").1;
        after.chars().next().expect("state letter")
    }

    #[test]
    fn pokes_only_what_it_may_on_real_processes() {
        let dir = std::env::temp_dir().join(format!("kgr-poke-test-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        let (sleeping_log, stopped_log, recycled_log) = (
            dir.join("sleeping"),
            dir.join("stopped"),
            dir.join("recycled"),
        );
        let sleeping = cont_logger(&sleeping_log);
        let stopped = cont_logger(&stopped_log);
        let recycled = cont_logger(&recycled_log);
        let mut exited = Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawning sleep");
        let (sleeping_pid, stopped_pid, recycled_pid, exited_pid) =
            (sleeping.id(), stopped.id(), recycled.id(), exited.id());

        // A job stopped on purpose: CONT would resume it.
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(stopped_pid as i32).expect("pid"),
            rustix::process::Signal::STOP,
        )
        .expect("stopping child");
        while state(stopped_pid) != 'T' {
            sleep(Duration::from_millis(10));
        }

        // Scanned while alive, gone (and reaped) before the poke.
        let exited_thread = thread_of(&exited);
        exited.kill().expect("killing sleep");
        exited.wait().expect("reaping");
        // The scan saw another process under this pid: a recycled pid must not be hit.
        let mut recycled_thread = thread_of(&recycled);
        recycled_thread.starttime += 1;
        let sleeping_thread = thread_of(&sleeping);
        let stopped_thread = thread_of(&stopped);
        let _children = Children(vec![sleeping, stopped, recycled]);

        let mut threads = vec![
            sleeping_thread.clone(),
            stopped_thread,
            recycled_thread,
            exited_thread,
        ];
        threads.sort_by_key(|t| t.pid);
        let report = poke_threads(&ctx(), &threads, false).expect("poke");

        sleep(Duration::from_millis(300));
        assert_eq!(
            report.poked,
            vec![sleeping_pid as i32],
            "only the sleeper is poked: {report:?}"
        );
        assert_eq!(
            conts(&sleeping_log),
            1,
            "the sleeper got exactly one SIGCONT"
        );
        assert_eq!(conts(&stopped_log), 0, "the stopped job got no SIGCONT");
        assert_eq!(state(stopped_pid), 'T', "the stopped job stays stopped");
        assert_eq!(
            conts(&recycled_log),
            0,
            "the recycled pid's process got no signal"
        );
        let reason = |pid: u32| {
            report
                .skipped
                .iter()
                .find(|s| s.pid == pid as i32)
                .map(|s| s.reason)
        };
        assert_eq!(reason(stopped_pid), Some(SkipReason::Stopped));
        assert_eq!(reason(recycled_pid), Some(SkipReason::Exited));
        assert_eq!(reason(exited_pid), Some(SkipReason::Exited));

        // A dry run signals nobody.
        let report = poke_threads(&ctx(), &[sleeping_thread], true).expect("dry run");
        assert!(report.dry_run);
        assert_eq!(report.poked, vec![sleeping_pid as i32]);
        sleep(Duration::from_millis(200));
        assert_eq!(conts(&sleeping_log), 1, "a dry run sends nothing");
        let _ = fs::remove_dir_all(&dir);
    }

    fn blocker(pid: i32, state: char, kthread: bool) -> Thread {
        Thread {
            tid: pid,
            pid,
            comm: "x".into(),
            cmdline: "x".into(),
            kthread,
            state: TaskState(state),
            patch_state: PatchState::Unpatched,
            stack: None,
            why: None,
            starttime: 0,
        }
    }

    #[test]
    fn verdicts() {
        let t = |state, kthread| blocker(10, state, kthread);
        assert_eq!(
            verdict(1, &[&blocker(1, 'S', false)], &[]),
            Some(SkipReason::Init)
        );
        assert_eq!(
            verdict(10, &[&t('I', true)], &[]),
            Some(SkipReason::KernelThread)
        );
        assert_eq!(
            verdict(10, &[&t('D', false)], &[]),
            Some(SkipReason::UninterruptibleSleep)
        );
        assert_eq!(
            verdict(10, &[&t('S', false)], &['S', 'T']),
            Some(SkipReason::Stopped)
        );
        assert_eq!(
            verdict(10, &[&t('t', false)], &[]),
            Some(SkipReason::Traced)
        );
        assert_eq!(
            verdict(10, &[&t('Z', false)], &[]),
            Some(SkipReason::Zombie)
        );
        assert_eq!(
            verdict(10, &[&t('S', false), &t('D', false)], &['S', 'D']),
            None
        );
    }
}
