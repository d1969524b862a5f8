//! Plain data about live patching and pure functions over it: no I/O here.

mod monitor;
mod patch;
mod task;
mod transition;
mod why;

pub use monitor::{
    polled_events, EventSource, Follow, KernelEvent, Outcome, Polled, Record, RecordKind, Summary,
    SwitchVia,
};
pub use patch::{order_patches, Patch, PatchObject, PatchedFunction};
pub use task::{join_cmdline, PatchState, TaskState, Thread};
pub use transition::{blocks, Target, Transition};
pub use why::{
    frame_symbols, infer, parse_kallsyms_line, pokeable, syscall_name, PatchedAddresses, Reason,
    Source, SymbolTable, Why,
};
