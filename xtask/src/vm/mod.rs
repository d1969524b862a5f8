//! The real-kernel lab (placeholder until the lab lands: every entry fails loudly).

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum VmCommand {
    /// Install host packages, fetch kernels, build modules and a static kgr.
    Setup,
    /// Boot the guest and run the scenarios.
    Test,
}

#[derive(Args)]
pub struct DemoArgs {}

/// What running the lab scenarios came to.
pub enum LabOutcome {
    /// The scenarios ran on every kernel; counts summed.
    Ran { passed: u32, failed: u32 },
    /// The lab could not run here, and why.
    Skipped(String),
}

pub fn run(_cmd: VmCommand) -> Result<()> {
    bail!("the VM lab is not built yet")
}

pub fn demo(_args: &DemoArgs) -> Result<()> {
    bail!("the VM lab is not built yet")
}

/// Runs the lab scenarios on every lab kernel, for `cargo xtask test`.
pub fn test_all() -> Result<LabOutcome> {
    Ok(LabOutcome::Skipped("the VM lab is not built yet".into()))
}
