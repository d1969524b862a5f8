//! `monitor`'s lines: one per event (human or JSON), the TTY progress line,
//! and the summary.

use std::io::{self, Write};

use crate::model::{EventSource, Outcome, Record, RecordKind, Summary, SwitchVia, Target};

/// Erases the progress line (on a TTY, before any other line).
const CLEAR_LINE: &str = "\r\x1b[K";

/// What the progress line shows.
#[derive(Debug)]
pub struct Progress<'a> {
    pub patch: Option<&'a str>,
    pub target: Option<Target>,
    pub threads_left: Option<usize>,
    pub elapsed_s: f64,
    pub rounds: Option<u32>,
    /// The kernel's fake signals, inferred from the rounds.
    pub signals: Option<u32>,
}

fn direction(target: Option<Target>) -> &'static str {
    match target {
        Some(Target::Patched) => "patching",
        Some(Target::Unpatched) => "unpatching",
        None => "transition",
    }
}

fn source_name(source: EventSource) -> &'static str {
    match source {
        EventSource::Ebpf => "eBPF",
        EventSource::Sysfs => "polling sysfs",
    }
}

/// The first line: what is followed and how.
pub fn header<W: Write>(out: &mut W, source: EventSource, json: bool) -> io::Result<()> {
    if json {
        let line = serde_json::json!({ "event": "monitoring", "source": source });
        writeln!(out, "{line}")?;
    } else {
        writeln!(
            out,
            "following live patch transitions ({})",
            source_name(source)
        )?;
    }
    out.flush()
}

/// One event. Human: switches and rounds only with `-v`.
pub fn record<W: Write>(
    out: &mut W,
    record: &Record,
    json: bool,
    verbose: u8,
    tty: bool,
) -> io::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, record)?;
        writeln!(out)?;
        return out.flush();
    }
    let patch = record.patch.as_deref().unwrap_or("?");
    let text = match record.event {
        RecordKind::Start if record.already_running == Some(true) => {
            format!("{patch}: {} in progress", direction(record.target))
        }
        RecordKind::Start => format!("{patch}: {} started", direction(record.target)),
        RecordKind::Reverse => format!("{patch}: reversed, now {}", direction(record.target)),
        RecordKind::Force => format!("{patch}: forced"),
        RecordKind::Cancel => format!("{patch}: cancelled"),
        RecordKind::Complete => format!("{patch}: completed"),
        RecordKind::Round if verbose > 0 => {
            format!("{patch}: round {}", record.round.unwrap_or(0))
        }
        RecordKind::Switch if verbose > 0 => format!(
            "switched: tid {} (pid {}) {}",
            record.tid.unwrap_or(0),
            record.tgid.unwrap_or(0),
            match record.via {
                Some(SwitchVia::StackCheck) => "by the stack check",
                _ => "at kernel exit",
            }
        ),
        RecordKind::Round | RecordKind::Switch => return Ok(()),
    };
    if tty {
        write!(out, "{CLEAR_LINE}")?;
    }
    writeln!(out, "{:>8.3}s  {text}", record.time_s)?;
    out.flush()
}

/// The TTY progress line, rewritten in place.
pub fn progress<W: Write>(out: &mut W, p: &Progress) -> io::Result<()> {
    write!(
        out,
        "{CLEAR_LINE}{}: {}",
        p.patch.unwrap_or("?"),
        direction(p.target)
    )?;
    if let Some(left) = p.threads_left {
        write!(out, ", {left} threads left")?;
    }
    write!(out, ", {:.1}s", p.elapsed_s)?;
    if let Some(rounds) = p.rounds {
        write!(out, ", {rounds} rounds")?;
    }
    if let Some(signals) = p.signals {
        write!(out, ", signals sent: {signals} (inferred)")?;
    }
    out.flush()
}

/// The end: one JSON line, or a few human lines.
pub fn summary<W: Write>(out: &mut W, s: &Summary, json: bool, tty: bool) -> io::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, s)?;
        writeln!(out)?;
        return out.flush();
    }
    if tty {
        write!(out, "{CLEAR_LINE}")?;
    }
    let patch = s.patch.as_deref().unwrap_or("?");
    let what = direction(s.target);
    match s.outcome {
        Outcome::Completed => writeln!(out, "{patch}: {what} completed in {:.3}s", s.duration_s)?,
        Outcome::Cancelled => {
            writeln!(out, "{patch}: {what} cancelled after {:.3}s", s.duration_s)?
        }
        Outcome::TimedOut => writeln!(
            out,
            "{patch}: {what} still running after {:.3}s (timed out)",
            s.duration_s
        )?,
        Outcome::Interrupted => writeln!(
            out,
            "{patch}: {what} still running after {:.3}s (interrupted)",
            s.duration_s
        )?,
        Outcome::NoTransition => {
            writeln!(out, "no transition seen")?;
            return out.flush();
        }
    }
    if !s.saw_start {
        writeln!(out, "  (already running when kgr began)")?;
    }
    if let Some(n) = s.threads_switched {
        writeln!(
            out,
            "  threads switched: {n} (at kernel exit: {}, by the stack check: {})",
            s.switched_at_exit.unwrap_or(0),
            s.switched_by_stack_check.unwrap_or(0)
        )?;
    }
    if let Some(rounds) = s.rounds {
        writeln!(out, "  rounds: {rounds}")?;
    }
    if let Some(signals) = s.signals_sent {
        writeln!(
            out,
            "  signals sent: {signals} (inferred: every 15th failed round)"
        )?;
    }
    writeln!(out, "  reversals: {}", s.reversals)?;
    if let Some(forced) = s.forced {
        writeln!(out, "  forced: {}", if forced { "yes" } else { "no" })?;
    }
    if let Some(lost) = s.lost_events {
        if lost > 0 {
            writeln!(out, "  lost events: {lost} (ring buffer full)")?;
        }
    }
    if !s.blockers.is_empty() {
        writeln!(out, "  last blockers:")?;
        for b in &s.blockers {
            let comm = if b.kthread {
                format!("[{}]", b.comm)
            } else {
                b.comm.clone()
            };
            writeln!(
                out,
                "    {} {comm}: {} on {}, held it up {:.1}s",
                b.tid,
                b.reason.as_str(),
                b.function.as_deref().unwrap_or("-"),
                b.held_s
            )?;
        }
    }
    out.flush()
}
