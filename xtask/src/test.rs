//! `cargo xtask test`: every check the project has, in one command.

use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::vm::{self, LabOutcome};

#[derive(Args)]
pub struct TestArgs {
    /// Skip the VM lab scenarios (reported as skipped).
    #[arg(long)]
    pub no_vm: bool,
}

fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .status()
        .with_context(|| format!("running {cargo}"))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

pub fn run(args: &TestArgs) -> Result<()> {
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo(&["test", "--workspace"])?;
    let outcome = if args.no_vm {
        LabOutcome::Skipped("--no-vm given".into())
    } else {
        vm::test_all()?
    };
    match outcome {
        LabOutcome::Ran { passed, failed } => {
            println!("vm lab: {passed} passed, {failed} failed");
            if failed > 0 {
                bail!("{failed} VM lab checks failed");
            }
        }
        LabOutcome::Skipped(why) => println!("vm lab: SKIPPED: {why}"),
    }
    Ok(())
}
