//! `status` and `check`: is a transition running?

use anyhow::Result;
use serde::Serialize;

use crate::model::Transition;
use crate::sources::sysfs::Depth;

use super::{current_transition, read_system, Context};

#[derive(Debug, Serialize)]
pub struct StatusReport {
    /// `ready` or `in_progress`.
    pub status: &'static str,
    pub transition: Option<Transition>,
}

impl StatusReport {
    pub fn in_progress(&self) -> bool {
        self.transition.is_some()
    }
}

/// Reads `enabled`/`transition` of every patch; with `-v` or `--json` it
/// also counts the threads left (a full thread scan).
pub fn run(ctx: &mut Context, count_threads: bool) -> Result<StatusReport> {
    let system = read_system(ctx, Depth::States)?;
    let Some(view) = current_transition(&system) else {
        return Ok(StatusReport {
            status: "ready",
            transition: None,
        });
    };
    let mut transition = view.transition.clone();
    if count_threads {
        let scan = view.blockers(ctx, false, false)?;
        if scan.unreadable == 0 {
            transition.threads_left = Some(scan.threads.len());
        }
    }
    Ok(StatusReport {
        status: "in_progress",
        transition: Some(transition),
    })
}
