//! `monitor`: follows the running or next transition, event by event, from
//! the kernel's klp functions (eBPF) or by polling sysfs every 200 ms, until
//! it ends (`--once`), `--timeout` passes, or Ctrl-C; then a summary. It
//! waits on a current-thread tokio runtime of its own: the ring buffer as an
//! `AsyncFd`, the sysfs polling and the progress line as intervals, Ctrl-C
//! as a signal stream (one-shot commands run no runtime).

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::{interval_at, sleep_until, Instant, MissedTickBehavior};

use crate::model::{
    polled_events, EventSource, Follow, KernelEvent, Outcome, Polled, Summary, Target, Transition,
};
use crate::output::metrics_server::MetricsServer;
use crate::output::monitor::{self as render, Progress};
use crate::output::prometheus::{self, MonitorCounters};
use crate::output::report_svg::{self, Timeline};
use crate::sources::ebpf::{self, PinnedIterator, TimedEvent, TransitionTracer};
use crate::sources::monotonic_ns;
use crate::sources::sysfs::{Depth, Livepatching};

use super::blocking::{patch_objects, ProcfsWhy};
use super::{current_transition, metrics, read_system, Context};

/// How often sysfs is read without eBPF.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How often the progress line is redrawn with eBPF (events redraw it too).
const TICK: Duration = Duration::from_millis(100);
/// How often the blockers are sampled (procfs; also the progress line's
/// threads left).
const SAMPLE_INTERVAL_NS: u64 = 1_000_000_000;

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
    /// Draw the followed transition into this SVG file at the end.
    pub report: Option<PathBuf>,
    /// Pin the task iterator for `kgr blocking` while following.
    pub pin: bool,
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("starting the event loop")?;
    runtime.block_on(follow(ctx, opts, out, system))
}

/// The event loop.
async fn follow(
    ctx: &mut Context,
    opts: MonitorOptions,
    out: &mut impl Write,
    system: Livepatching,
) -> Result<Outcome> {
    let mut tracer = attach(ctx);
    // Unpinned when monitor ends (Ctrl-C and SIGTERM included).
    let _pinned = if opts.pin { pin(ctx) } else { None };
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
    // From now on Ctrl-C ends the loop with a summary instead of ending kgr.
    let mut interrupt = signal(SignalKind::interrupt()).context("catching Ctrl-C")?;
    // `systemctl stop`: the same, so the summary is logged and the pin goes.
    let mut terminate = signal(SignalKind::terminate()).context("catching SIGTERM")?;
    let json = ctx.json;
    let progress_line = opts.tty && !json;
    render::header(out, source, json)?;

    let start_ns = monotonic_ns();
    let since = |ns: u64| ns.saturating_sub(start_ns) as f64 / 1e9;
    let deadline = opts.timeout.map(|t| Instant::now() + t);
    let mut follow = Follow::default();
    let mut polled = polled_of(&system);
    let mut timeline = opts.report.is_some().then(Timeline::default);
    if let Some(p) = &polled {
        let record = follow.already_running(p.patch.clone(), p.target, 0.0, source);
        render::record(out, &record, json, ctx.verbose, progress_line)?;
        if let Some(t) = timeline.as_mut() {
            t.record(&record, follow.signals_sent());
        }
    }
    // With eBPF the ticks only redraw the progress line and sample the
    // blockers; polling, each tick reads sysfs.
    let period = if tracer.is_some() {
        TICK
    } else {
        POLL_INTERVAL
    };
    let mut ticks = interval_at(Instant::now() + period, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut events: Vec<TimedEvent> = Vec::new();
    let mut sampler = Sampler::default();
    let stopped = loop {
        events.clear();
        let mut ticked = false;
        tokio::select! {
            biased;
            _ = interrupt.recv() => break Outcome::Interrupted,
            _ = terminate.recv() => break Outcome::Interrupted,
            () = until(deadline) => break Outcome::TimedOut,
            read = next_events(tracer.as_mut(), &mut events) => {
                read.context("reading the transition events")?;
            }
            // With eBPF and no transition there is nothing to redraw or
            // sample: monitor sleeps until the kernel's next event.
            _ = ticks.tick(), if tracer.is_none() || follow.active() => ticked = true,
        }
        let now_ns = monotonic_ns();
        if ticked && tracer.is_none() {
            let now = polled_of(&read_system(ctx, Depth::States)?);
            for event in polled_events(polled.as_ref(), now.as_ref()) {
                events.push((now_ns, event));
            }
            polled = now;
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
                if let Some(t) = timeline.as_mut() {
                    t.record(&record, follow.signals_sent());
                }
            }
            if follow.ended() {
                let lost = tracer.as_ref().map(TransitionTracer::lost);
                let summary = follow.summary(since(ns), Outcome::Completed, source, lost);
                if let Ok(mut c) = counters.lock() {
                    c.count(&summary);
                }
                render::summary(out, &summary, json, progress_line)?;
                if opts.once {
                    write_report(&opts, timeline.as_ref(), &summary)?;
                    return Ok(summary.outcome);
                }
                follow = Follow::default();
                sampler = Sampler::default();
                ended = true;
            }
        }
        // Not in a direction's first second: most transitions end in it,
        // and then the sampling costs nothing.
        if follow.active()
            && !ended
            && since(now_ns) - follow.phase_s() >= 1.0
            && now_ns - sampler.last_ns >= SAMPLE_INTERVAL_NS
        {
            sampler.last_ns = now_ns;
            sampler.sample(ctx, &mut follow, since(now_ns));
            if let Some(t) = timeline.as_mut() {
                let seen = follow.summary(since(now_ns), Outcome::Interrupted, source, None);
                t.sample(since(now_ns), sampler.threads_left, &seen);
            }
        }
        if progress_line && follow.active() && !ended {
            let progress = Progress {
                patch: follow.patch(),
                target: follow.target(),
                threads_left: sampler.threads_left,
                elapsed_s: since(now_ns) - follow.started_s(),
                rounds: tracer.is_some().then(|| follow.rounds()),
                signals: tracer.is_some().then(|| follow.signals_sent()),
            };
            render::progress(out, &progress)?;
        }
        if let (Some(tracer), Ok(mut c)) = (tracer.as_ref(), counters.lock()) {
            c.lost_events = Some(tracer.lost());
        }
    };
    let lost = tracer.as_ref().map(TransitionTracer::lost);
    let summary = follow.summary(since(monotonic_ns()), stopped, source, lost);
    render::summary(out, &summary, json, progress_line)?;
    write_report(&opts, timeline.as_ref(), &summary)?;
    Ok(summary.outcome)
}

/// `--report`: the picture of the followed transition.
fn write_report(
    opts: &MonitorOptions,
    timeline: Option<&Timeline>,
    summary: &Summary,
) -> Result<()> {
    match (&opts.report, timeline) {
        (Some(path), Some(timeline)) => report_svg::write(path, timeline, summary),
        _ => Ok(()),
    }
}

/// Resolves at `deadline`; never without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The tracer's next events; never without a tracer.
async fn next_events(
    tracer: Option<&mut TransitionTracer>,
    into: &mut Vec<TimedEvent>,
) -> std::io::Result<()> {
    match tracer {
        Some(tracer) => tracer.next_events(into).await,
        None => std::future::pending().await,
    }
}

/// The blockers sampled each second from procfs, with `blocking --why`'s
/// inference (kallsyms read again only for new frames).
#[derive(Default)]
struct Sampler {
    last_ns: u64,
    /// For the progress line: `None` when some states were unreadable.
    threads_left: Option<usize>,
    /// The inference for this patch and target.
    why: Option<(Option<String>, Option<Target>, ProcfsWhy)>,
}

impl Sampler {
    /// One procfs scan of the blockers with their stacks; a failed read
    /// skips the sample.
    fn sample(&mut self, ctx: &mut Context, follow: &mut Follow, now_s: f64) {
        let Ok(system) = read_system(ctx, Depth::Full) else {
            return;
        };
        let Some(view) = current_transition(&system) else {
            return;
        };
        let patch = view.transition.patch.clone();
        let target = view.transition.target;
        // sysfs lags the kernel's events a little (`enabled` is set after
        // klp_start_transition): a sample of the other direction is wrong.
        if target.is_some() && follow.target().is_some() && target != follow.target() {
            return;
        }
        // How each sample was taken is not worth a -v line per second.
        let verbose = std::mem::replace(&mut ctx.verbose, 0);
        let scan = view.blockers(ctx, true, true);
        ctx.verbose = verbose;
        let Ok(mut scan) = scan else {
            return;
        };
        self.threads_left = (scan.unreadable == 0).then_some(scan.threads.len());
        // kgr's own threads block only while it samples.
        let own = i32::try_from(std::process::id()).unwrap_or(0);
        scan.threads.retain(|t| t.pid != own);
        let fresh = !matches!(&self.why, Some((p, t, _)) if *p == patch && *t == target);
        if fresh {
            let replacements = match target {
                Some(Target::Unpatched) => patch.as_deref(),
                _ => None,
            };
            let objects = patch_objects(&system, patch.as_deref());
            self.why = Some((patch.clone(), target, ProcfsWhy::new(objects, replacements)));
        }
        if let Some((_, _, why)) = self.why.as_mut() {
            if why.explain(ctx, &mut scan.threads).is_ok() {
                follow.sample_blockers(now_s, &scan.threads);
            }
        }
    }
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

/// The task iterator pinned for `kgr blocking`, or `None` with a `-v` note
/// saying why not.
fn pin(ctx: &mut Context) -> Option<PinnedIterator> {
    let pinned =
        ebpf::precheck(ctx.root.is_live(), ctx.no_ebpf).and_then(|()| PinnedIterator::pin());
    match pinned {
        Ok(pinned) => {
            ctx.note(format!(
                "eBPF: task iterator pinned at {} for kgr blocking",
                pinned.path().display()
            ));
            Some(pinned)
        }
        Err(why) => {
            ctx.note(format!(
                "task iterator not pinned: {why}; kgr blocking loads its own"
            ));
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
