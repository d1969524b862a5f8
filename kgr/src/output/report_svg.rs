//! `monitor --report FILE.svg`: a picture of the followed transition —
//! threads left over time, markers for its events (start, the kernel's
//! automatic signals, reversal, force, completion), and the last blockers
//! labelled with the patched function they sleep on.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, Context as _, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::model::{Record, RecordKind, Summary};

/// At most this many blockers are labelled.
const MAX_LABELS: usize = 6;

/// What happened at a marker.
#[derive(Debug, Clone, PartialEq)]
enum Mark {
    Start,
    /// A retry round of the kernel (`klp_try_complete_transition`); `signal`
    /// when the kernel sent its fake signal to the blockers in it.
    Round {
        signal: bool,
    },
    Reverse,
    Force,
    Cancel,
    Complete,
}

/// A blocking thread as labelled: tid, comm, the patched function on its
/// stack (when the procfs inference found one).
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub tid: i32,
    pub comm: String,
    pub function: Option<String>,
}

/// The followed transition as `monitor` saw it, for the picture.
#[derive(Debug, Default)]
pub struct Timeline {
    patch: Option<String>,
    /// (seconds, threads left) of each blocker sample.
    samples: Vec<(f64, usize)>,
    marks: Vec<(f64, Mark)>,
    /// The kernel's signals so far, as `Follow::signals_sent` inferred them.
    signals: u32,
    /// The patched function each blocker was last seen sleeping on, by tid:
    /// a blocker woken just before the end keeps the function it held the
    /// transition up on.
    functions: BTreeMap<i32, String>,
}

impl Timeline {
    /// Takes in one record of the followed transition; `signals_sent`: the
    /// fake signals the kernel sent so far, after it (`Follow`'s inference).
    pub fn record(&mut self, record: &Record, signals_sent: u32) {
        let t = record.time_s;
        if signals_sent < self.signals {
            // The round that would have signalled completed instead.
            if let Some((_, Mark::Round { signal })) = self
                .marks
                .iter_mut()
                .rev()
                .find(|m| m.1 == Mark::Round { signal: true })
            {
                *signal = false;
            }
        }
        let signal = signals_sent > self.signals;
        self.signals = signals_sent;
        let mark = match record.event {
            RecordKind::Start => {
                if record.patch.is_some() {
                    self.patch.clone_from(&record.patch);
                }
                Mark::Start
            }
            RecordKind::Reverse => Mark::Reverse,
            RecordKind::Force => Mark::Force,
            RecordKind::Cancel => Mark::Cancel,
            RecordKind::Complete => {
                self.samples.push((t, 0));
                Mark::Complete
            }
            RecordKind::Round => Mark::Round { signal },
            RecordKind::Switch => return,
        };
        self.marks.push((t, mark));
    }

    /// Takes in one count of the threads left (`None`: some unreadable),
    /// and the blockers `seen` so far.
    pub fn sample(&mut self, now_s: f64, threads_left: Option<usize>, seen: &Summary) {
        if let Some(n) = threads_left {
            self.samples.push((now_s, n));
        }
        for b in &seen.blockers {
            if let Some(f) = &b.function {
                self.functions.insert(b.tid, f.clone());
            }
        }
    }
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing the report: {e}")
}

/// Draws `timeline` into the SVG file `path`, with the last blockers of
/// `summary` labelled.
pub fn write(path: &Path, timeline: &Timeline, summary: &Summary) -> Result<()> {
    let labels: Vec<Label> = summary
        .blockers
        .iter()
        .map(|b| Label {
            tid: b.tid,
            comm: b.comm.clone(),
            function: b
                .function
                .clone()
                .or_else(|| timeline.functions.get(&b.tid).cloned()),
        })
        .collect();
    let svg = render(timeline, &labels)?;
    std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))
}

/// The SVG text of the picture.
pub fn render(timeline: &Timeline, labels: &[Label]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 520)).into_drawing_area();
        draw(&root, timeline, labels)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn draw(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    tl: &Timeline,
    labels: &[Label],
) -> Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let x_end = tl
        .samples
        .iter()
        .map(|s| s.0)
        .chain(tl.marks.iter().map(|m| m.0))
        .fold(1.0_f64, f64::max);
    let x_max = x_end * 1.05;
    let most = tl.samples.iter().map(|s| s.1).max().unwrap_or(0);
    // Whole threads: a top that is a whole number, so are the labels.
    let y_max = (most as f64 * 1.4).max(4.0).ceil();
    let caption = match &tl.patch {
        Some(p) => format!("live patch transition of {p}: threads left"),
        None => "live patch transition: threads left".to_string(),
    };
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds since kgr monitor started")
        .y_desc("threads left")
        .y_labels((y_max as usize + 1).min(11))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(err)?;

    // The kernel's retry rounds: ticks at the bottom; its fake signals:
    // labelled lines.
    for (t, mark) in &tl.marks {
        let Mark::Round { signal } = mark else {
            continue;
        };
        let (color, top, width) = if *signal {
            (RGBColor(230, 140, 0), y_max * 0.7, 2)
        } else {
            (RGBColor(150, 150, 150), y_max * 0.03, 1)
        };
        vline(&mut chart, *t, top, color, width)?;
        if *signal {
            label(&mut chart, *t, top, "signal", color)?;
        }
    }

    // The events: vertical lines with their names, at alternating heights
    // so that close ones stay readable.
    for (i, (t, mark)) in tl.marks.iter().enumerate() {
        let (name, color) = match mark {
            Mark::Round { .. } => continue,
            Mark::Start => ("start", RGBColor(0, 140, 60)),
            Mark::Reverse => ("reversal", RGBColor(150, 60, 200)),
            Mark::Force => ("force", RGBColor(200, 0, 0)),
            Mark::Cancel => ("cancel", RGBColor(120, 120, 120)),
            Mark::Complete => ("completion", RGBColor(0, 90, 200)),
        };
        vline(&mut chart, *t, y_max * 0.95, color, 2)?;
        let y = if i % 2 == 0 { 0.95 } else { 0.88 };
        label(&mut chart, *t, y_max * y, name, color)?;
    }

    // Threads left, as steps: a count holds until the next one.
    let mut steps = Vec::with_capacity(tl.samples.len() * 2);
    for (i, &(t, n)) in tl.samples.iter().enumerate() {
        if i > 0 {
            steps.push((t, tl.samples[i - 1].1 as f64));
        }
        steps.push((t, n as f64));
    }
    let line = RGBColor(20, 60, 160);
    chart
        .draw_series(LineSeries::new(steps, line.stroke_width(3)))
        .map_err(err)?;
    chart
        .draw_series(
            tl.samples
                .iter()
                .map(|&(t, n)| Circle::new((t, n as f64), 3, line.filled())),
        )
        .map_err(err)?;

    // The last blockers, at the last sample that saw any, each with the
    // patched function it sleeps on.
    let last = tl.samples.iter().rev().find(|s| s.1 > 0);
    if let (Some(&(t, n)), false) = (last, labels.is_empty()) {
        let red = RGBColor(200, 30, 30);
        chart
            .draw_series(std::iter::once(Circle::new(
                (t, n as f64),
                8,
                red.stroke_width(2),
            )))
            .map_err(err)?;
        let mut lines = vec![format!("last blockers (at {t:.1} s):")];
        for b in labels.iter().take(MAX_LABELS) {
            lines.push(format!(
                "{} {}: {}",
                b.tid,
                b.comm,
                b.function
                    .as_deref()
                    .unwrap_or("(no patched function found)")
            ));
        }
        if labels.len() > MAX_LABELS {
            lines.push(format!("... and {} more", labels.len() - MAX_LABELS));
        }
        // Left of the point when it is in the right half.
        let left = t > x_max / 2.0;
        let (x, hpos) = if left {
            (t - x_max * 0.015, HPos::Right)
        } else {
            (t + x_max * 0.015, HPos::Left)
        };
        let step = y_max * 0.06;
        let top = (n as f64 + step * lines.len() as f64).min(y_max * 0.8);
        for (i, text) in lines.iter().enumerate() {
            let style = TextStyle::from(("sans-serif", 15).into_font())
                .color(&red)
                .pos(Pos::new(hpos, VPos::Top));
            chart
                .draw_series(std::iter::once(Text::new(
                    text.clone(),
                    (x, top - step * i as f64),
                    style,
                )))
                .map_err(err)?;
        }
    }
    Ok(())
}

/// A marker's line from the x axis up to `top`.
fn vline(chart: &mut Chart<'_, '_>, t: f64, top: f64, color: RGBColor, width: u32) -> Result<()> {
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(t, 0.0), (t, top)],
            color.stroke_width(width),
        )))
        .map_err(err)?;
    Ok(())
}

/// A marker's name, just right of its line (left of it near the right
/// edge).
fn label(chart: &mut Chart<'_, '_>, t: f64, y: f64, text: &str, color: RGBColor) -> Result<()> {
    let right_edge = chart.x_range().end * 0.88;
    let (text, hpos) = if t > right_edge {
        (format!("{text} "), HPos::Right)
    } else {
        (format!(" {text}"), HPos::Left)
    };
    let style = TextStyle::from(("sans-serif", 14).into_font())
        .color(&color)
        .pos(Pos::new(hpos, VPos::Top));
    chart
        .draw_series(std::iter::once(Text::new(text, (t, y), style)))
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventSource, Follow, Outcome, Target};

    fn rec(event: RecordKind, time_s: f64) -> Record {
        Record {
            event,
            time_s,
            source: EventSource::Ebpf,
            patch: Some("p".into()),
            target: Some(Target::Patched),
            already_running: None,
            round: None,
            tid: None,
            tgid: None,
            via: None,
        }
    }

    #[test]
    fn signal_marks_follow_the_inferred_count() {
        let mut tl = Timeline::default();
        tl.record(&rec(RecordKind::Start, 0.0), 0);
        tl.record(&rec(RecordKind::Round, 1.0), 0);
        tl.record(&rec(RecordKind::Round, 2.0), 1);
        tl.record(&rec(RecordKind::Round, 3.0), 1);
        tl.record(&rec(RecordKind::Round, 4.0), 2);
        // The last round completed: no signal after all.
        tl.record(&rec(RecordKind::Complete, 4.0), 1);
        let signals: Vec<f64> = tl
            .marks
            .iter()
            .filter(|m| m.1 == Mark::Round { signal: true })
            .map(|m| m.0)
            .collect();
        assert_eq!(signals, [2.0]);
        assert_eq!(tl.samples, [(4.0, 0)]);
    }

    #[test]
    fn draws_an_svg_with_the_markers_and_labels() {
        let mut tl = Timeline::default();
        tl.record(&rec(RecordKind::Start, 0.5), 0);
        let none = Follow::default().summary(0.0, Outcome::Interrupted, EventSource::Ebpf, None);
        tl.sample(0.6, Some(5), &none);
        tl.sample(1.6, Some(3), &none);
        tl.sample(1.7, None, &none);
        tl.record(&rec(RecordKind::Round, 1.8), 1);
        tl.record(&rec(RecordKind::Reverse, 2.0), 1);
        tl.record(&rec(RecordKind::Force, 2.5), 1);
        tl.record(&rec(RecordKind::Complete, 3.0), 1);
        let labels = [Label {
            tid: 42,
            comm: "klp_busy".into(),
            function: Some("klp_busy_sleeper".into()),
        }];
        let svg = render(&tl, &labels).expect("render");
        assert!(svg.starts_with("<svg"), "{svg}");
        for want in [
            "threads left",
            "start",
            "signal",
            "reversal",
            "force",
            "completion",
            "42 klp_busy: klp_busy_sleeper",
            "last blockers (at 1.6 s)",
        ] {
            assert!(svg.contains(want), "no {want} in the SVG");
        }
    }
}
