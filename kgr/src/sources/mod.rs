//! The only code that reads the system: sysfs, procfs, packages, signals.

pub mod package;
pub mod procfs;
pub mod root;
pub mod signal;
pub mod sysfs;

pub use root::Root;
