//! Following one live patch transition: the kernel's events (from eBPF or
//! from polling sysfs) folded into what `monitor` prints and its summary.

use std::collections::BTreeSet;

use serde::Serialize;

use super::Target;

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
    not(feature = "ebpf"),
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
    pub reversals: u32,
    /// Forced (eBPF only: sysfs cannot tell).
    pub forced: Option<bool>,
    /// Events the kernel could not deliver (ring buffer full); eBPF only.
    pub lost_events: Option<u64>,
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
    reversals: u32,
    forced: bool,
    cancelled: bool,
    switched: BTreeSet<i32>,
    idle_switched: usize,
    at_exit: usize,
    by_check: usize,
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
                let mut record = self.record(RecordKind::Start, now_s, source);
                record.already_running = Some(false);
                Some(record)
            }
            _ if !self.active => None,
            KernelEvent::Reverse => {
                self.reversals += 1;
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
                self.ended = true;
                self.active = false;
                // klp_cancel_transition ends in klp_complete_transition.
                (!self.cancelled).then(|| self.record(RecordKind::Complete, now_s, source))
            }
            KernelEvent::Round => {
                self.rounds += 1;
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
            reversals: self.reversals,
            forced: ebpf.then_some(self.forced),
            lost_events,
        }
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
