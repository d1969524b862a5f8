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

/// CLOCK_MONOTONIC in ns: the clock of `bpf_ktime_get_ns`, so eBPF events
/// and sysfs polls share one time line.
pub fn monotonic_ns() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (now.tv_sec as u64) * 1_000_000_000 + now.tv_nsec as u64
}
