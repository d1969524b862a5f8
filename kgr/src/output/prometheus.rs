//! The Prometheus text exposition of a metrics report (prometheus-client),
//! and the atomic textfile for node_exporter.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::commands::metrics::MetricsReport;
use crate::model::{Outcome, Summary};

type Labels = Vec<(String, String)>;

/// What a running `kgr monitor` has counted since it started.
#[derive(Debug, Default, Clone, Copy)]
pub struct MonitorCounters {
    pub completed: u64,
    pub reversed: u64,
    pub forced: u64,
    /// Events the kernel could not deliver (eBPF only).
    pub lost_events: Option<u64>,
}

impl MonitorCounters {
    /// Counts one finished transition by how it ended.
    pub fn count(&mut self, summary: &Summary) {
        if summary.outcome != Outcome::Completed {
            return;
        }
        if summary.forced == Some(true) {
            self.forced += 1;
        } else if summary.reversals % 2 == 1 {
            self.reversed += 1;
        } else {
            self.completed += 1;
        }
    }
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let g = Gauge::<i64>::default();
    g.set(value);
    registry.register(name, help, g);
}

/// Renders the report in the Prometheus text format, with a monitor's
/// counters when one is running.
pub fn exposition(report: &MetricsReport, counters: Option<&MonitorCounters>) -> Result<String> {
    let mut registry = Registry::with_prefix("kgr");
    gauge(
        &mut registry,
        "livepatch_supported",
        "1 when the kernel has a live patching interface (livepatch or kGraft)",
        i64::from(report.supported),
    );
    gauge(
        &mut registry,
        "patches_loaded",
        "Live patches loaded",
        report.patches.len() as i64,
    );
    let enabled = Family::<Labels, Gauge>::default();
    let transition = Family::<Labels, Gauge>::default();
    for patch in &report.patches {
        let labels = vec![("patch".to_owned(), patch.name.clone())];
        enabled.get_or_create(&labels).set(i64::from(patch.enabled));
        transition
            .get_or_create(&labels)
            .set(i64::from(patch.transition));
    }
    registry.register(
        "patch_enabled",
        "1 when the patch is enabled (or being enabled)",
        enabled,
    );
    registry.register(
        "patch_transition",
        "1 while the patch is in transition",
        transition,
    );
    gauge(
        &mut registry,
        "transition_in_progress",
        "1 while a patch transition runs",
        i64::from(report.transition_in_progress),
    );
    if let Some(blocking) = report.blocking_threads {
        gauge(
            &mut registry,
            "blocking_threads",
            "Threads keeping the running transition from finishing",
            blocking as i64,
        );
    }
    if let Some(seconds) = report.transition_seconds {
        let g = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        g.set(seconds);
        registry.register(
            "transition_seconds",
            "Seconds since the running transition started",
            g,
        );
    }
    if let Some(c) = counters {
        let finished = Family::<Labels, Counter>::default();
        for (result, n) in [
            ("completed", c.completed),
            ("reversed", c.reversed),
            ("forced", c.forced),
        ] {
            finished
                .get_or_create(&vec![("result".to_owned(), result.to_owned())])
                .inc_by(n);
        }
        registry.register(
            "transitions",
            "Transitions kgr monitor saw finish, by how they ended",
            finished,
        );
        if let Some(lost) = c.lost_events {
            let counter = Counter::<u64>::default();
            counter.inc_by(lost);
            registry.register(
                "ebpf_lost_events",
                "Events the kernel could not deliver to kgr",
                counter,
            );
        }
    }
    let mut text = String::new();
    encode(&mut text, &registry).context("encoding metrics")?;
    Ok(text)
}

/// Writes `DIR/kgr.prom` atomically: a temporary file in DIR, then a rename,
/// so the collector never reads half a file.
pub fn write_textfile(dir: &Path, text: &str) -> Result<()> {
    let target = dir.join("kgr.prom");
    let mut tmp = tempfile::Builder::new()
        .prefix(".kgr.prom.")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", tmp.path().display()))?;
    tmp.as_file().sync_all().ok();
    let mut perms = tmp.as_file().metadata()?.permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    fs::set_permissions(tmp.path(), perms).ok();
    tmp.persist(&target)
        .with_context(|| format!("renaming into {}", target.display()))?;
    Ok(())
}
