//! One file per command; each reads through `sources`, decides with `model`
//! and returns a report (data) for `output` to render.

pub mod blocking;
pub mod patches;
pub mod poke;
pub mod status;

use anyhow::Result;

use crate::model::{blocks, PatchState, Target, Transition};
use crate::sources::procfs::{scan_threads, ScanRequest, StateFile, ThreadScan};
use crate::sources::sysfs::{self, Depth, Livepatching};
use crate::sources::Root;

/// What every command gets: where to read, how much to say.
#[derive(Debug)]
pub struct Context {
    pub root: Root,
    pub verbose: u8,
    pub json: bool,
    /// Things kgr could not see, said once on stderr.
    pub warnings: Vec<String>,
}

impl Context {
    pub fn warn(&mut self, message: String) {
        if !self.warnings.contains(&message) {
            self.warnings.push(message);
        }
    }
}

/// The running transition, if any, and how to scan tasks for it.
pub struct TransitionView {
    pub transition: Transition,
    state_file: StateFile,
    target: Target,
}

/// Reads the transition that runs now, if one does.
pub fn current_transition(system: &Livepatching) -> Option<TransitionView> {
    match system {
        Livepatching::Unsupported => None,
        Livepatching::Livepatch(patches) => {
            let transition = Transition::from_patches(patches)?;
            let target = transition.target?;
            Some(TransitionView {
                transition,
                state_file: StateFile::PatchState,
                target,
            })
        }
        Livepatching::Kgraft { in_progress, .. } => in_progress.then(|| TransitionView {
            transition: Transition {
                patch: None,
                target: None,
                elapsed_s: None,
                threads_left: None,
            },
            state_file: StateFile::KgrInProgress,
            target: Target::Patched,
        }),
    }
}

impl TransitionView {
    /// Every thread that blocks this transition.
    /// `details`: each blocker's `stat` and `cmdline`; `stacks`: its kernel stack.
    pub fn blockers(&self, ctx: &mut Context, details: bool, stacks: bool) -> Result<ThreadScan> {
        let target = self.target;
        let request = ScanRequest {
            state_file: self.state_file,
            details: details || stacks,
            stacks,
        };
        let scan = scan_threads(&ctx.root, request, |state: PatchState| {
            blocks(state, target)
        })?;
        if scan.unreadable > 0 {
            let example = scan
                .first_unreadable
                .as_ref()
                .map(|p| format!(", e.g. {}", p.display()))
                .unwrap_or_default();
            ctx.warn(format!(
                "could not read the state of {} threads{example}: permission denied (run as root)",
                scan.unreadable
            ));
        }
        Ok(scan)
    }
}

/// Reads the live patching state, shallow or deep.
pub fn read_system(ctx: &Context, depth: Depth) -> Result<Livepatching> {
    sysfs::read(&ctx.root, depth)
}
