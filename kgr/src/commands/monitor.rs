//! `monitor`: follows the running or next transition, event by event, from
//! the kernel's klp functions (eBPF) or by polling sysfs every 200 ms, until
//! it ends (`--once`), `--timeout` passes, or Ctrl-C; then a summary.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::model::{polled_events, EventSource, Follow, KernelEvent, Outcome, Polled, Transition};
use crate::output::metrics_server::MetricsServer;
use crate::output::monitor::{self as render, Progress};
use crate::output::prometheus::{self, MonitorCounters};
use crate::sources::ebpf::{self, TimedEvent, TransitionTracer};
use crate::sources::sysfs::{Depth, Livepatching};
use crate::sources::{monotonic_ns, signal};

use super::{current_transition, metrics, read_system, Context};

/// How often sysfs is read without eBPF.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How long to wait for an event before looking at the clock, Ctrl-C and
/// the progress line again.
const TICK: Duration = Duration::from_millis(100);
/// How often the progress line counts the threads left.
const COUNT_INTERVAL_NS: u64 = 1_000_000_000;

/// What `monitor` was asked to do.
#[derive(Debug, Clone)]
pub struct MonitorOptions {
    /// Stop when the followed transition ends.
    pub once: bool,
    pub timeout: Option<Duration>,
    /// stdout is a terminal: draw the progress line.
    pub tty: bool,
    /// Serve `/metrics` at this address while following.
    pub listen: Option<String>,
}

/// Follows transitions; returns how the last followed one ended.
pub fn run(ctx: &mut Context, opts: MonitorOptions, out: &mut impl Write) -> Result<Outcome> {
    let system = read_system(ctx, Depth::States)?;
    if matches!(system, Livepatching::Unsupported) {
        bail!(
            "no live patching in this kernel ({} not found): no transition to follow",
            ctx.root.sys("kernel/livepatch").display()
        );
    }
    let mut tracer = attach(ctx);
    // Long-running: say now, not at exit, what is (not) used.
    for note in ctx.notes.drain(..) {
        eprintln!("kgr: {note}");
    }
    let source = if tracer.is_some() {
        EventSource::Ebpf
    } else {
        EventSource::Sysfs
    };
    let counters = Arc::new(Mutex::new(MonitorCounters::default()));
    if let Some(addr) = &opts.listen {
        let server = MetricsServer::bind(addr)?;
        if ctx.verbose > 0 {
            eprintln!("kgr: serving metrics at http://{}/metrics", server.addr());
        }
        let root = ctx.root.clone();
        let counters = Arc::clone(&counters);
        thread::spawn(move || {
            server.serve(|| {
                let mut ctx = Context {
                    root: root.clone(),
                    verbose: 0,
                    json: false,
                    no_ebpf: true,
                    force_ebpf: false,
                    warnings: Vec::new(),
                    notes: Vec::new(),
                };
                let report = metrics::run(&mut ctx)?;
                let counters = *counters
                    .lock()
                    .map_err(|_| anyhow::anyhow!("metrics counters poisoned"))?;
                prometheus::exposition(&report, Some(&counters))
            })
        });
    }
    signal::catch_interrupt();
    let json = ctx.json;
    let progress_line = opts.tty && !json;
    render::header(out, source, json)?;

    let start_ns = monotonic_ns();
    let since = |ns: u64| ns.saturating_sub(start_ns) as f64 / 1e9;
    let deadline_ns = opts.timeout.map(|t| start_ns + t.as_nanos() as u64);
    let mut follow = Follow::default();
    let mut polled = polled_of(&system);
    if let Some(p) = &polled {
        let record = follow.already_running(p.patch.clone(), p.target, 0.0, source);
        render::record(out, &record, json, ctx.verbose, progress_line)?;
    }
    let mut events: Vec<TimedEvent> = Vec::new();
    let mut last_poll_ns = start_ns;
    let mut last_count_ns = 0;
    let mut threads_left = None;
    let stopped = loop {
        let now_ns = monotonic_ns();
        if signal::interrupted() {
            break Outcome::Interrupted;
        }
        if deadline_ns.is_some_and(|d| now_ns >= d) {
            break Outcome::TimedOut;
        }
        events.clear();
        match tracer.as_mut() {
            Some(tracer) => tracer.drain(&mut events),
            None => {
                if now_ns - last_poll_ns >= POLL_INTERVAL.as_nanos() as u64 {
                    last_poll_ns = now_ns;
                    let now = polled_of(&read_system(ctx, Depth::States)?);
                    for event in polled_events(polled.as_ref(), now.as_ref()) {
                        events.push((now_ns, event));
                    }
                    polled = now;
                }
            }
        }
        let mut ended = false;
        for (ns, event) in events.drain(..) {
            let event = match event {
                // Where BTF did not say where the patch's name is: sysfs.
                KernelEvent::Init {
                    patch: None,
                    target,
                } => KernelEvent::Init {
                    patch: polled_of(&read_system(ctx, Depth::States)?).and_then(|p| p.patch),
                    target,
                },
                event => event,
            };
            if let Some(record) = follow.apply(event, since(ns), source) {
                render::record(out, &record, json, ctx.verbose, progress_line)?;
            }
            if follow.ended() {
                let lost = tracer.as_ref().map(TransitionTracer::lost);
                let summary = follow.summary(since(ns), Outcome::Completed, source, lost);
                if let Ok(mut c) = counters.lock() {
                    c.count(&summary);
                }
                render::summary(out, &summary, json, progress_line)?;
                if opts.once {
                    return Ok(summary.outcome);
                }
                follow = Follow::default();
                threads_left = None;
                ended = true;
            }
        }
        if progress_line && follow.active() && !ended {
            if now_ns - last_count_ns >= COUNT_INTERVAL_NS {
                last_count_ns = now_ns;
                threads_left = count_threads_left(ctx);
            }
            let progress = Progress {
                patch: follow.patch(),
                target: follow.target(),
                threads_left,
                elapsed_s: since(now_ns) - follow.started_s(),
                rounds: tracer.is_some().then(|| follow.rounds()),
            };
            render::progress(out, &progress)?;
        }
        if let (Some(tracer), Ok(mut c)) = (tracer.as_ref(), counters.lock()) {
            c.lost_events = Some(tracer.lost());
        }
        match tracer.as_ref() {
            Some(tracer) => tracer.wait(TICK),
            None => thread::sleep(POLL_INTERVAL),
        }
    };
    let lost = tracer.as_ref().map(TransitionTracer::lost);
    let summary = follow.summary(since(monotonic_ns()), stopped, source, lost);
    render::summary(out, &summary, json, progress_line)?;
    Ok(summary.outcome)
}

/// The eBPF tracer, or `None` with a `-v` note saying why not.
fn attach(ctx: &mut Context) -> Option<TransitionTracer> {
    let fallback = "polling sysfs every 200 ms";
    if let Err(why) = ebpf::precheck(ctx.root.is_live(), ctx.no_ebpf) {
        ctx.note(format!("eBPF not used: {why}; {fallback}"));
        return None;
    }
    match TransitionTracer::attach() {
        Ok(tracer) => {
            let (attached, skipped) = tracer.hooks();
            ctx.note(format!("eBPF: following {}", attached.join(", ")));
            let skipped: Vec<String> = skipped.iter().map(ToString::to_string).collect();
            for why in skipped {
                ctx.note(format!("eBPF hook skipped: {why}"));
            }
            Some(tracer)
        }
        Err(why) => {
            ctx.note(format!("eBPF not used: {why}; {fallback}"));
            None
        }
    }
}

/// The transition sysfs shows now, if any.
fn polled_of(system: &Livepatching) -> Option<Polled> {
    match system {
        Livepatching::Unsupported => None,
        Livepatching::Livepatch(patches) => Transition::from_patches(patches).map(|t| Polled {
            patch: t.patch,
            target: t.target,
        }),
        Livepatching::Kgraft { in_progress, .. } => in_progress.then_some(Polled {
            patch: None,
            target: None,
        }),
    }
}

/// Threads not yet switched, for the progress line (a procfs scan).
fn count_threads_left(ctx: &mut Context) -> Option<usize> {
    let system = read_system(ctx, Depth::States).ok()?;
    let view = current_transition(&system)?;
    let scan = view.blockers(ctx, false, false).ok()?;
    (scan.unreadable == 0).then_some(scan.threads.len())
}
