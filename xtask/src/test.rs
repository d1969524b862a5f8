//! `cargo xtask test`: every check the project has, in one command.

use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::bench;
use crate::dist;
use crate::docs;
use crate::vm::{self, LabOutcome};

#[derive(Args)]
pub struct TestArgs {
    /// Skip the VM lab scenarios (reported as skipped).
    #[arg(long)]
    pub no_vm: bool,
    /// Skip building and checking the .deb/.rpm packages (reported as skipped).
    #[arg(long)]
    pub no_dist: bool,
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

/// Lints kgr-ebpf for the target it runs on. The workspace clippy above
/// sees it as a host crate; this one builds it as aya-build does (the
/// nightly of its rust-toolchain.toml, `bpfel-unknown-none`, core from
/// source), in its own target directory.
fn clippy_ebpf() -> Result<()> {
    let root = docs::workspace_root();
    let target_dir = root.join("target").join("bpf-clippy");
    let args = [
        "run",
        "nightly",
        "cargo",
        "clippy",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
        "--bins",
        "--target-dir",
        target_dir.to_str().context("non-UTF-8 target directory")?,
        "--",
        "-D",
        "warnings",
    ];
    eprintln!("xtask: (in kgr-ebpf) rustup {}", args.join(" "));
    let status = Command::new("rustup")
        .args(args)
        .current_dir(root.join("kgr-ebpf"))
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .context("running rustup")?;
    if !status.success() {
        bail!("clippy for kgr-ebpf on bpfel-unknown-none failed ({status})");
    }
    Ok(())
}

/// Real tools the tests check kgr against, as (binary, Debian package).
const TEST_TOOLS: &[(&str, &str)] = &[("promtool", "prometheus"), ("setpriv", "util-linux")];

fn on_path(binary: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {binary} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs the tools tests compare against; without root the tests that
/// need them report themselves skipped.
fn install_test_tools() -> Result<()> {
    let missing: Vec<&str> = TEST_TOOLS
        .iter()
        .filter(|(binary, _)| !on_path(binary))
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    eprintln!("xtask: installing test tools: {}", missing.join(" "));
    let install: Vec<&str> = ["install", "-y", "--no-install-recommends"]
        .into_iter()
        .chain(missing.iter().copied())
        .collect();
    let installed = apt(&install) || (apt(&["update"]) && apt(&install));
    if !installed {
        eprintln!(
            "xtask: could not install {} (not root?); the tests that need them will say SKIPPED",
            missing.join(" ")
        );
    }
    Ok(())
}

/// Mounts the BPF filesystem at /sys/fs/bpf where the machine has not (as
/// systemd does at boot), for the test of the pinned task iterator; without
/// root that test says SKIPPED.
pub fn mount_bpf_fs() {
    let mounted = std::fs::read_to_string("/proc/self/mounts").is_ok_and(|m| {
        m.lines()
            .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf"))
    });
    if mounted || !is_root() {
        return;
    }
    let ok = Command::new("mount")
        .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("xtask: could not mount the BPF filesystem at /sys/fs/bpf; the pin test will say SKIPPED");
    }
}

pub fn run(args: &TestArgs) -> Result<()> {
    install_test_tools()?;
    mount_bpf_fs();
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    clippy_ebpf()?;
    cargo(&["test", "--workspace"])?;
    packages(args)?;
    let outcome = if args.no_vm {
        LabOutcome::Skipped("--no-vm given".into())
    } else {
        vm::test_all()?
    };
    match outcome {
        LabOutcome::Ran { passed, failed } => {
            println!("vm: {passed} passed, {failed} failed");
            if failed > 0 {
                bail!("{failed} VM lab checks failed");
            }
            // The benchmark's smoke run: it works end to end, no time judged.
            bench::smoke()?;
            println!("bench --quick: every tool measured at every count, the answers agreed");
        }
        LabOutcome::Skipped(why) => {
            println!("vm lab SKIPPED: {why}");
            println!("vm: 0 passed, 0 failed, 1 skipped");
        }
    }
    Ok(())
}

/// Builds the packages and checks them with dpkg, rpm and systemd-analyze
/// (installing the .deb needs root; otherwise reported as skipped).
fn packages(args: &TestArgs) -> Result<()> {
    if args.no_dist {
        println!("packages SKIPPED: --no-dist given");
        return Ok(());
    }
    if !is_root() {
        println!("packages SKIPPED: installing the .deb needs root");
        return Ok(());
    }
    let (deb, rpm) = dist::build()?;
    dist::check(&deb, &rpm)?;
    println!("packages: .deb installed and checked, .rpm file list checked, units verified");
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
