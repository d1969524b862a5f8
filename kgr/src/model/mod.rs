//! Plain data about live patching and pure functions over it: no I/O here.

mod patch;
mod task;
mod transition;

pub use patch::{order_patches, Patch, PatchObject, PatchedFunction};
pub use task::{join_cmdline, PatchState, TaskState, Thread};
pub use transition::{blocks, Target, Transition};
