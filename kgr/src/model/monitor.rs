//! Following one live patch transition: the kernel's events (from eBPF or
//! from polling sysfs) folded into what `monitor` prints and its summary.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{Reason, Target, Thread};

/// Where the events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    /// fentry/fexit on the kernel's klp functions.
    Ebpf,
    /// `transition`/`enabled` read every 200 ms.
    Sysfs,
}

/// How a task reached the target state.
#[cfg_attr(
    all(not(feature = "ebpf"), not(test)),
    expect(dead_code, reason = "only the eBPF tracer sees these")
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SwitchVia {
    /// `klp_update_patch_state`: on its way back to user space, or idle.
    Exit,
    /// The retry round's stack check (`klp_check_and_switch_task`).
    StackCheck,
}

/// One thing the kernel did, as a source saw it.
#[cfg_attr(
    not(feature = "ebpf"),
    expect(dead_code, reason = "only the eBPF tracer sees these")
)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelEvent {
    /// A transition is set up (`klp_init_transition`); `patch` when known.
    Init {
        patch: Option<String>,
        target: Option<Target>,
    },
    Start,
    Reverse,
    Force,
    Cancel,
    Complete,
    /// One retry round (`klp_try_complete_transition`).
    Round,
    /// A task switched to the target state.
    Switch {
        tid: i32,
        tgid: i32,
        via: SwitchVia,
    },
}

/// What kind of line a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// The transition started (or was already running when kgr began).
    Start,
    Reverse,
    Force,
    Cancel,
    Complete,
    Round,
    Switch,
}

/// One event of the followed transition, as `monitor` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub event: RecordKind,
    /// Seconds since kgr started following.
    pub time_s: f64,
    pub source: EventSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// The target after this event (start, reverse).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// Start only: the transition was already running when kgr began.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub already_running: Option<bool>,
    /// Round only: its number in this transition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tgid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<SwitchVia>,
}

/// How following a transition ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// All tasks reached the target (`transition` back to 0).
    Completed,
    /// Enabling failed before the transition started.
    Cancelled,
    /// `--timeout` passed first.
    TimedOut,
    /// Ctrl-C.
    Interrupted,
    /// No transition was seen (timeout or Ctrl-C before any started).
    NoTransition,
}

/// The end of a followed transition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Always `"summary"` (one JSON line among the events).
    pub event: &'static str,
    pub outcome: Outcome,
    pub source: EventSource,
    pub patch: Option<String>,
    /// The final target (after reversals).
    pub target: Option<Target>,
    /// From the start kgr saw (or from when it began following) to the end.
    pub duration_s: f64,
    /// Whether kgr saw the start (else the transition was already running).
    pub saw_start: bool,
    /// Threads seen switching (eBPF only; kgr's own left out; each idle
    /// task counts, though they all have tid 0).
    pub threads_switched: Option<usize>,
    /// Of those switches: at kernel exit/idle, by the retry round's stack check.
    pub switched_at_exit: Option<usize>,
    pub switched_by_stack_check: Option<usize>,
    /// Retry rounds (eBPF only).
    pub rounds: Option<u32>,
    /// The kernel's automatic fake signals, inferred from the rounds (eBPF
    /// only; see `Follow::signals_sent`).
    pub signals_sent: Option<u32>,
    pub reversals: u32,
    /// Forced (eBPF only: sysfs cannot tell).
    pub forced: Option<bool>,
    /// Events the kernel could not deliver (ring buffer full); eBPF only.
    pub lost_events: Option<u64>,
    /// The last blockers kgr sampled (each second, procfs inference), the
    /// longest held first, at most `MAX_BLOCKERS`.
    pub blockers: Vec<Blocker>,
}

/// How many of the last blockers the summary lists.
pub const MAX_BLOCKERS: usize = 10;

/// The kernel sends its fake signals every this many failed retry rounds
/// (kernel/livepatch/transition.c `SIGNALS_TIMEOUT`).
pub const SIGNALS_TIMEOUT: u32 = 15;

/// A thread that held the transition up, as the samples saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Blocker {
    pub tid: i32,
    pub pid: i32,
    pub comm: String,
    pub kthread: bool,
    pub reason: Reason,
    /// The patched function on its stack, when one is.
    pub function: Option<String>,
    /// Seconds from the start of the transition (or of its last reversal,
    /// or the sample that first saw it, for a thread that came later) to
    /// the last sample that saw it block.
    pub held_s: f64,
    #[serde(skip)]
    first_s: f64,
}

/// The transition being followed.
#[derive(Debug, Default)]
pub struct Follow {
    active: bool,
    ended: bool,
    saw_start: bool,
    started_s: f64,
    patch: Option<String>,
    target: Option<Target>,
    rounds: u32,
    /// Rounds since the last (re)start: the kernel counts its signals so.
    rounds_since_start: u32,
    signals: u32,
    /// The last round was one that sends the signals if it fails.
    signal_round_last: bool,
    reversals: u32,
    forced: bool,
    cancelled: bool,
    switched: BTreeSet<i32>,
    idle_switched: usize,
    at_exit: usize,
    by_check: usize,
    /// Each thread seen blocking in this direction, by tid.
    blockers: BTreeMap<i32, Blocker>,
    /// When the current direction began (start or last reversal).
    phase_s: f64,
    /// Whether a sample was taken in this direction.
    sampled: bool,
    /// The tids of the last sample that saw blockers.
    last_blockers: Vec<i32>,
}

impl Follow {
    /// Whether a transition is being followed now.
    pub fn active(&self) -> bool {
        self.active
    }

    /// Whether the followed transition has ended (completed or cancelled).
    pub fn ended(&self) -> bool {
        self.ended
    }

    pub fn patch(&self) -> Option<&str> {
        self.patch.as_deref()
    }

    pub fn target(&self) -> Option<Target> {
        self.target
    }

    pub fn rounds(&self) -> u32 {
        self.rounds
    }

    pub fn started_s(&self) -> f64 {
        self.started_s
    }

    /// The fake signals the kernel sent so far, inferred: it sends them in
    /// a failed round when the rounds before it since the (re)start are a
    /// non-zero multiple of 15 (`klp_signals_cnt % SIGNALS_TIMEOUT`).
    pub fn signals_sent(&self) -> u32 {
        self.signals
    }

    /// When the current direction began (the start, or the last reversal).
    pub fn phase_s(&self) -> f64 {
        self.phase_s
    }

    /// Folds in one sample of the blockers (threads with their `why`).
    pub fn sample_blockers(&mut self, now_s: f64, threads: &[Thread]) {
        if !self.active {
            return;
        }
        let since = if self.sampled { now_s } else { self.phase_s };
        self.sampled = true;
        for thread in threads {
            let why = thread.why.as_ref();
            let blocker = self.blockers.entry(thread.tid).or_insert_with(|| Blocker {
                tid: thread.tid,
                pid: thread.pid,
                comm: thread.comm.clone(),
                kthread: thread.kthread,
                reason: Reason::Unknown,
                function: None,
                held_s: 0.0,
                first_s: since,
            });
            // What held it stays: once woken it shows nothing on its
            // stack until the next round switches it.
            let reason = why.map_or(Reason::Unknown, |w| w.reason);
            let holding = |r: Reason| !matches!(r, Reason::NotCheckedYet | Reason::Unknown);
            if holding(reason) || !holding(blocker.reason) {
                blocker.reason = reason;
                blocker.function = why.and_then(|w| w.function.clone());
            }
            blocker.held_s = round_ms(now_s - blocker.first_s);
        }
        if !threads.is_empty() {
            self.last_blockers = threads.iter().map(|t| t.tid).collect();
        }
    }

    /// A transition found running when kgr began.
    pub fn already_running(
        &mut self,
        patch: Option<String>,
        target: Option<Target>,
        now_s: f64,
        source: EventSource,
    ) -> Record {
        self.active = true;
        self.started_s = now_s;
        self.phase_s = now_s;
        self.patch = patch;
        self.target = target;
        let mut record = self.record(RecordKind::Start, now_s, source);
        record.already_running = Some(true);
        record
    }

    /// Folds in one kernel event; returns the record to print, if any.
    /// Events before a transition starts, and after it ended, are dropped.
    pub fn apply(&mut self, event: KernelEvent, now_s: f64, source: EventSource) -> Option<Record> {
        if self.ended {
            return None;
        }
        match event {
            KernelEvent::Init { patch, target } => {
                if self.active {
                    // Seen in sysfs already (kgr began just after the init).
                    if self.patch.is_none() {
                        self.patch = patch;
                    }
                    return None;
                }
                self.patch = patch;
                self.target = target;
                self.started_s = now_s;
                None
            }
            KernelEvent::Start => {
                // klp_reverse_transition calls klp_start_transition again.
                if self.active {
                    return None;
                }
                self.active = true;
                self.saw_start = true;
                self.phase_s = now_s;
                let mut record = self.record(RecordKind::Start, now_s, source);
                record.already_running = Some(false);
                Some(record)
            }
            _ if !self.active => None,
            KernelEvent::Reverse => {
                self.reversals += 1;
                // klp_reverse_transition starts again: the kernel's signal
                // count restarts, and other threads block now.
                self.rounds_since_start = 0;
                self.signal_round_last = false;
                self.phase_s = now_s;
                self.sampled = false;
                self.blockers.clear();
                self.last_blockers.clear();
                self.target = self.target.map(|t| match t {
                    Target::Patched => Target::Unpatched,
                    Target::Unpatched => Target::Patched,
                });
                Some(self.record(RecordKind::Reverse, now_s, source))
            }
            KernelEvent::Force => {
                self.forced = true;
                Some(self.record(RecordKind::Force, now_s, source))
            }
            KernelEvent::Cancel => {
                self.cancelled = true;
                Some(self.record(RecordKind::Cancel, now_s, source))
            }
            KernelEvent::Complete => {
                // The round that would have signalled found no task left.
                if self.signal_round_last {
                    self.signals -= 1;
                }
                self.ended = true;
                self.active = false;
                // klp_cancel_transition ends in klp_complete_transition.
                (!self.cancelled).then(|| self.record(RecordKind::Complete, now_s, source))
            }
            KernelEvent::Round => {
                self.rounds += 1;
                self.rounds_since_start += 1;
                // Until the next round: the switches it makes come first.
                self.signal_round_last = self.rounds_since_start > 1
                    && (self.rounds_since_start - 1).is_multiple_of(SIGNALS_TIMEOUT);
                if self.signal_round_last {
                    self.signals += 1;
                }
                let mut record = self.record(RecordKind::Round, now_s, source);
                record.round = Some(self.rounds);
                Some(record)
            }
            KernelEvent::Switch { tid, tgid, via } => {
                // The idle tasks all have tid 0: each switches once.
                if tid == 0 {
                    self.idle_switched += 1;
                } else {
                    self.switched.insert(tid);
                }
                match via {
                    SwitchVia::Exit => self.at_exit += 1,
                    SwitchVia::StackCheck => self.by_check += 1,
                }
                let mut record = self.record(RecordKind::Switch, now_s, source);
                record.patch = None;
                record.tid = Some(tid);
                record.tgid = Some(tgid);
                record.via = Some(via);
                Some(record)
            }
        }
    }

    fn record(&self, event: RecordKind, now_s: f64, source: EventSource) -> Record {
        let with_target = matches!(event, RecordKind::Start | RecordKind::Reverse);
        Record {
            event,
            time_s: now_s,
            source,
            patch: self.patch.clone(),
            target: if with_target { self.target } else { None },
            already_running: None,
            round: None,
            tid: None,
            tgid: None,
            via: None,
        }
    }

    /// The summary so far; `interrupted`/`timed_out` say why kgr stopped
    /// when the transition had not ended.
    pub fn summary(
        &self,
        now_s: f64,
        stopped: Outcome,
        source: EventSource,
        lost_events: Option<u64>,
    ) -> Summary {
        let outcome = if self.ended {
            if self.cancelled {
                Outcome::Cancelled
            } else {
                Outcome::Completed
            }
        } else if !self.active {
            Outcome::NoTransition
        } else {
            stopped
        };
        let ebpf = source == EventSource::Ebpf;
        Summary {
            event: "summary",
            outcome,
            source,
            patch: self.patch.clone(),
            target: self.target,
            duration_s: if self.active || self.ended {
                round_ms(now_s - self.started_s)
            } else {
                0.0
            },
            saw_start: self.saw_start,
            threads_switched: ebpf.then_some(self.switched.len() + self.idle_switched),
            switched_at_exit: ebpf.then_some(self.at_exit),
            switched_by_stack_check: ebpf.then_some(self.by_check),
            rounds: ebpf.then_some(self.rounds),
            signals_sent: ebpf.then_some(self.signals),
            reversals: self.reversals,
            forced: ebpf.then_some(self.forced),
            lost_events,
            blockers: self.last_blockers(),
        }
    }
}

impl Follow {
    /// The blockers of the last sample that saw any, longest held first.
    fn last_blockers(&self) -> Vec<Blocker> {
        let mut out: Vec<Blocker> = self
            .last_blockers
            .iter()
            .filter_map(|tid| self.blockers.get(tid).cloned())
            .collect();
        out.sort_by(|a, b| b.held_s.total_cmp(&a.held_s).then(a.tid.cmp(&b.tid)));
        out.truncate(MAX_BLOCKERS);
        out
    }
}

/// Seconds rounded to the millisecond.
pub fn round_ms(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

/// What one sysfs read shows: the patch in transition and its target, or
/// `None` when no transition runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Polled {
    pub patch: Option<String>,
    pub target: Option<Target>,
}

/// The events between two sysfs reads: a transition appeared (start), its
/// target flipped (reverse), or it is gone (complete).
pub fn polled_events(before: Option<&Polled>, now: Option<&Polled>) -> Vec<KernelEvent> {
    match (before, now) {
        (None, Some(now)) => vec![
            KernelEvent::Init {
                patch: now.patch.clone(),
                target: now.target,
            },
            KernelEvent::Start,
        ],
        (Some(_), None) => vec![KernelEvent::Complete],
        (Some(before), Some(now)) if before.patch != now.patch => vec![
            KernelEvent::Complete,
            KernelEvent::Init {
                patch: now.patch.clone(),
                target: now.target,
            },
            KernelEvent::Start,
        ],
        (Some(before), Some(now)) if before.target != now.target => vec![KernelEvent::Reverse],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn polled(target: Target) -> Polled {
        Polled {
            patch: Some("p".into()),
            target: Some(target),
        }
    }

    #[test]
    fn a_reversed_transition_is_one_transition() {
        let mut f = Follow::default();
        let src = EventSource::Ebpf;
        assert!(f
            .apply(
                KernelEvent::Init {
                    patch: Some("p".into()),
                    target: Some(Target::Patched)
                },
                0.0,
                src
            )
            .is_none());
        let start = f.apply(KernelEvent::Start, 0.0, src).expect("a start");
        assert_eq!(start.target, Some(Target::Patched));
        f.apply(KernelEvent::Round, 0.5, src);
        let rev = f.apply(KernelEvent::Reverse, 1.0, src).expect("a reversal");
        assert_eq!(rev.target, Some(Target::Unpatched));
        // klp_reverse_transition starts again: not a new transition.
        assert!(f.apply(KernelEvent::Start, 1.0, src).is_none());
        for tid in [5, 6, 5, 0, 0] {
            f.apply(
                KernelEvent::Switch {
                    tid,
                    tgid: tid,
                    via: SwitchVia::Exit,
                },
                1.5,
                src,
            );
        }
        assert!(f.apply(KernelEvent::Complete, 2.0, src).is_some());
        assert!(f.ended());
        let s = f.summary(2.5, Outcome::Interrupted, src, Some(0));
        assert_eq!(s.outcome, Outcome::Completed);
        assert_eq!(s.duration_s, 2.5);
        assert_eq!(s.threads_switched, Some(4));
        assert_eq!((s.rounds, s.reversals), (Some(1), 1));
        assert_eq!(s.target, Some(Target::Unpatched));
    }

    #[test]
    fn a_cancel_ends_without_a_completion() {
        let mut f = Follow::default();
        let src = EventSource::Ebpf;
        f.apply(KernelEvent::Start, 0.0, src);
        assert!(f.apply(KernelEvent::Cancel, 0.1, src).is_some());
        assert!(f.apply(KernelEvent::Complete, 0.1, src).is_none());
        let s = f.summary(0.2, Outcome::TimedOut, src, None);
        assert_eq!(s.outcome, Outcome::Cancelled);
    }

    #[test]
    fn nothing_seen_is_no_transition() {
        let f = Follow::default();
        let s = f.summary(1.0, Outcome::TimedOut, EventSource::Sysfs, None);
        assert_eq!(s.outcome, Outcome::NoTransition);
        assert_eq!(s.threads_switched, None);
    }

    #[test]
    fn signals_are_inferred_from_the_rounds() {
        let mut f = Follow::default();
        let src = EventSource::Ebpf;
        f.apply(KernelEvent::Start, 0.0, src);
        // Rounds 1..=15 fail without a signal; the 16th sends them.
        for i in 0..15 {
            f.apply(KernelEvent::Round, f64::from(i), src);
        }
        assert_eq!(f.signals_sent(), 0);
        f.apply(KernelEvent::Round, 15.0, src);
        assert_eq!(f.signals_sent(), 1);
        // A reversal starts the kernel's count again.
        f.apply(KernelEvent::Reverse, 15.5, src);
        for i in 0..16 {
            f.apply(KernelEvent::Round, 16.0 + f64::from(i), src);
        }
        assert_eq!(f.signals_sent(), 2);
        for i in 0..15 {
            f.apply(KernelEvent::Round, 40.0 + f64::from(i), src);
        }
        assert_eq!(f.signals_sent(), 3);
        // The 31st round since the reversal completed: it sent nothing.
        f.apply(
            KernelEvent::Switch {
                tid: 7,
                tgid: 7,
                via: SwitchVia::StackCheck,
            },
            55.0,
            src,
        );
        f.apply(KernelEvent::Complete, 55.0, src);
        let s = f.summary(55.0, Outcome::Interrupted, src, Some(0));
        assert_eq!(s.signals_sent, Some(2));
        assert_eq!(s.rounds, Some(47));
    }

    fn blocker(tid: i32, function: Option<&str>) -> Thread {
        let mut t = Thread::bare(tid, tid, super::super::PatchState::Unpatched);
        t.comm = format!("t{tid}");
        t.why = Some(super::super::Why {
            function: function.map(str::to_owned),
            reason: if function.is_some() {
                Reason::SleepingOnPatchedFunction
            } else {
                Reason::NotCheckedYet
            },
            syscall: None,
            in_kernel_s: None,
            pokeable: true,
            source: super::super::Source::Procfs,
        });
        t
    }

    #[test]
    fn the_last_blockers_and_how_long_they_held_it() {
        let mut f = Follow::default();
        let src = EventSource::Ebpf;
        f.apply(KernelEvent::Start, 1.0, src);
        f.sample_blockers(1.5, &[blocker(5, Some("f")), blocker(6, None)]);
        f.sample_blockers(2.5, &[blocker(5, Some("f")), blocker(9, None)]);
        // Woken: nothing on its stack any more, but "f" held it.
        f.sample_blockers(3.5, &[blocker(5, None)]);
        // All switched: the last sample that saw blockers stands.
        f.sample_blockers(4.5, &[]);
        f.apply(KernelEvent::Complete, 5.0, src);
        let s = f.summary(5.0, Outcome::Interrupted, src, None);
        assert_eq!(s.blockers.len(), 1);
        let b = &s.blockers[0];
        assert_eq!((b.tid, b.function.as_deref()), (5, Some("f")));
        assert_eq!(b.reason, Reason::SleepingOnPatchedFunction);
        // From the start to the last sample that saw it.
        assert_eq!(b.held_s, 2.5);

        // After a reversal only the new direction's blockers count.
        let mut f = Follow::default();
        f.apply(KernelEvent::Start, 0.0, src);
        f.sample_blockers(0.5, &[blocker(5, Some("f"))]);
        f.apply(KernelEvent::Reverse, 1.0, src);
        let s = f.summary(1.2, Outcome::Interrupted, src, None);
        assert!(s.blockers.is_empty());
        f.sample_blockers(1.5, &[blocker(6, None)]);
        f.sample_blockers(2.5, &[blocker(6, None), blocker(7, None)]);
        let s = f.summary(3.0, Outcome::Interrupted, src, None);
        let held: Vec<(i32, f64)> = s.blockers.iter().map(|b| (b.tid, b.held_s)).collect();
        assert_eq!(held, [(6, 1.5), (7, 0.0)]);
    }

    #[test]
    fn polling_sees_start_reversal_and_completion() {
        let p = polled(Target::Patched);
        let u = polled(Target::Unpatched);
        assert_eq!(polled_events(None, None), vec![]);
        assert_eq!(
            polled_events(None, Some(&p)),
            vec![
                KernelEvent::Init {
                    patch: Some("p".into()),
                    target: Some(Target::Patched)
                },
                KernelEvent::Start
            ]
        );
        assert_eq!(polled_events(Some(&p), Some(&p)), vec![]);
        assert_eq!(
            polled_events(Some(&p), Some(&u)),
            vec![KernelEvent::Reverse]
        );
        assert_eq!(polled_events(Some(&u), None), vec![KernelEvent::Complete]);
    }
}
