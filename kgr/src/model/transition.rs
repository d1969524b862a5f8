//! The running transition and the blocking rule.

use serde::Serialize;

use super::{Patch, PatchState};

/// Where the running transition takes the tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Patched,
    Unpatched,
}

impl Target {
    /// The per-task `patch_state` value of this target.
    pub fn state(self) -> PatchState {
        match self {
            Target::Patched => PatchState::Patched,
            Target::Unpatched => PatchState::Unpatched,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Target::Patched => "patched",
            Target::Unpatched => "unpatched",
        }
    }
}

/// A transition in progress.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    /// The transitioning patch; `None` on kGraft, whose flag is global.
    pub patch: Option<String>,
    /// `None` on kGraft.
    pub target: Option<Target>,
    /// Only known when the eBPF tracer saw the transition start.
    pub elapsed_s: Option<f64>,
    /// Threads not yet at the target; `None` when not counted or not all readable.
    pub threads_left: Option<usize>,
}

impl Transition {
    /// The transition of a livepatch kernel: the one patch whose `transition`
    /// is 1; its `enabled` is the target (a reversed transition flips `enabled`).
    pub fn from_patches(patches: &[Patch]) -> Option<Transition> {
        let patch = patches.iter().find(|p| p.transition)?;
        Some(Transition {
            patch: Some(patch.name.clone()),
            target: Some(if patch.enabled {
                Target::Patched
            } else {
                Target::Unpatched
            }),
            elapsed_s: None,
            threads_left: None,
        })
    }
}

/// The blocking rule: during a transition to `target`, a thread blocks when
/// its state is set and is not the target.
pub fn blocks(state: PatchState, target: Target) -> bool {
    state != PatchState::Idle && state != target.state()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_rule() {
        assert!(blocks(PatchState::Unpatched, Target::Patched));
        assert!(!blocks(PatchState::Patched, Target::Patched));
        assert!(!blocks(PatchState::Idle, Target::Patched));
        assert!(blocks(PatchState::Patched, Target::Unpatched));
        assert!(!blocks(PatchState::Unpatched, Target::Unpatched));
    }
}
