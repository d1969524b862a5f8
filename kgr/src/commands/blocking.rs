//! `blocking` (and `blocking_threads`): the threads that hold the transition up.

use anyhow::Result;
use serde::Serialize;

use crate::model::{Thread, Transition};
use crate::sources::sysfs::Depth;

use super::{current_transition, read_system, Context};

#[derive(Debug, Serialize)]
pub struct BlockingReport {
    pub transition: Option<Transition>,
    pub threads: Vec<Thread>,
    /// Some threads could not be examined (not root): the list may be short.
    #[serde(skip)]
    pub incomplete: bool,
}

pub fn run(ctx: &mut Context, details: bool, stacks: bool) -> Result<BlockingReport> {
    let system = read_system(ctx, Depth::States)?;
    let Some(view) = current_transition(&system) else {
        return Ok(BlockingReport {
            transition: None,
            threads: Vec::new(),
            incomplete: false,
        });
    };
    let scan = view.blockers(ctx, details, stacks)?;
    let mut transition = view.transition.clone();
    let incomplete = scan.unreadable > 0;
    if !incomplete {
        transition.threads_left = Some(scan.threads.len());
    }
    Ok(BlockingReport {
        transition: Some(transition),
        threads: scan.threads,
        incomplete,
    })
}
