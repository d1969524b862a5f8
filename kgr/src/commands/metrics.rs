//! `metrics`: the live patching state as Prometheus metrics (for
//! node_exporter's textfile collector, or scraped from `kgr monitor`).

use anyhow::Result;
use serde::Serialize;

use crate::sources::sysfs::{Depth, Livepatching};

use super::{current_transition, read_system, Context};

#[derive(Debug, Serialize)]
pub struct PatchMetric {
    pub name: String,
    pub enabled: bool,
    pub transition: bool,
}

#[derive(Debug, Serialize)]
pub struct MetricsReport {
    /// The kernel can live patch (livepatch or kGraft interface present).
    pub supported: bool,
    pub patches: Vec<PatchMetric>,
    pub transition_in_progress: bool,
    /// Known only when the tracer saw the transition start.
    pub transition_seconds: Option<f64>,
    /// Threads blocking the running transition; `None` when not all readable.
    pub blocking_threads: Option<usize>,
}

pub fn run(ctx: &mut Context) -> Result<MetricsReport> {
    let system = read_system(ctx, Depth::States)?;
    let (supported, patches) = match &system {
        Livepatching::Unsupported => (false, Vec::new()),
        Livepatching::Livepatch(patches) | Livepatching::Kgraft { patches, .. } => {
            (true, patches.clone())
        }
    };
    let mut report = MetricsReport {
        supported,
        patches: patches
            .into_iter()
            .map(|p| PatchMetric {
                name: p.name,
                enabled: p.enabled,
                transition: p.transition,
            })
            .collect(),
        transition_in_progress: false,
        transition_seconds: None,
        blocking_threads: Some(0),
    };
    if let Some(view) = current_transition(&system) {
        report.transition_in_progress = true;
        report.transition_seconds = view.transition.elapsed_s;
        let scan = view.blockers(ctx, false, false)?;
        report.blocking_threads = (scan.unreadable == 0).then_some(scan.threads.len());
    }
    Ok(report)
}
