//! The only code that reads the system: sysfs, procfs, packages, signals, eBPF.

pub mod capture;
pub mod ebpf;
pub mod kallsyms;
pub mod package;
pub mod procfs;
pub mod root;
pub mod signal;
pub mod sysfs;

pub use root::Root;
