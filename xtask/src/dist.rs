//! `cargo xtask dist`: the .deb (cargo-deb) and .rpm (cargo-generate-rpm)
//! with the binary, man page, completions and systemd units; and the check
//! that installs the .deb and inspects both packages with the real tools.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::docs;
use crate::setup;

/// The cargo subcommands that build the packages, as (binary, crate).
const PACKAGERS: &[(&str, &str)] = &[
    ("cargo-deb", "cargo-deb"),
    ("cargo-generate-rpm", "cargo-generate-rpm"),
];

/// Files every package must install.
pub const PACKAGED: &[&str] = &[
    "/usr/sbin/kgr",
    "kgr.8",
    "completions/kgr",
    "_kgr",
    "kgr.fish",
    "/systemd/system/kgr-metrics.service",
    "/systemd/system/kgr-metrics.timer",
    "/systemd/system/kgr-monitor.service",
];

/// The Debian packages of the tools `check` inspects the packages with.
const CHECK_TOOLS: &[&str] = &["rpm", "man-db", "systemd"];

fn run(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().with_context(|| format!("running {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn has_cargo_subcommand(binary: &str) -> bool {
    Command::new(binary)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        || Command::new("cargo")
            .args([binary.trim_start_matches("cargo-"), "--version"])
            .output()
            .is_ok_and(|o| o.status.success())
}

/// Builds both packages; returns their paths (.deb, .rpm).
pub fn build() -> Result<(PathBuf, PathBuf)> {
    let root = docs::workspace_root();
    for (binary, krate) in PACKAGERS {
        if !has_cargo_subcommand(binary) {
            eprintln!("xtask: dist: installing {krate}");
            run(Command::new("cargo").args(["install", "--locked", krate]))?;
        }
    }
    docs::run(true).context("the packaged docs must be fresh")?;
    eprintln!("xtask: dist: building kgr (release)");
    let status = Command::new("cargo")
        .args(["build", "--release", "-p", "kgr"])
        .current_dir(&root)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release -p kgr failed");
    }
    let deb_out = run(Command::new("cargo")
        .args(["deb", "-p", "kgr", "--no-build"])
        .current_dir(&root))?;
    let deb = PathBuf::from(deb_out.lines().last().unwrap_or_default().trim());
    run(Command::new("cargo")
        .args(["generate-rpm", "-p", "kgr"])
        .current_dir(&root))?;
    let rpm_dir = root.join("target/generate-rpm");
    let rpm = std::fs::read_dir(&rpm_dir)
        .with_context(|| format!("listing {}", rpm_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "rpm"))
        .with_context(|| format!("no .rpm in {}", rpm_dir.display()))?;
    if !deb.is_file() {
        bail!(
            "cargo deb did not say where the .deb went (got {:?})",
            deb_out.trim()
        );
    }
    eprintln!("xtask: dist: {}", deb.display());
    eprintln!("xtask: dist: {}", rpm.display());
    Ok((deb, rpm))
}

fn listed(list: &str, needle: &str) -> bool {
    list.lines()
        .any(|l| l.trim().ends_with(needle) || l.contains(needle))
}

/// Installs the .deb and checks the installed kgr, the man page, the units
/// (systemd-analyze verify) and the .rpm's file list (rpm -qpl).
pub fn check(deb: &Path, rpm: &Path) -> Result<()> {
    setup::apt_install(CHECK_TOOLS)
        .with_context(|| format!("installing {}", CHECK_TOOLS.join(" ")))?;
    run(Command::new("dpkg").arg("-i").arg(deb))?;
    let version = run(Command::new("/usr/sbin/kgr").arg("--version"))?;
    if version.trim() != format!("kgr {}", env!("CARGO_PKG_VERSION")) {
        bail!("the installed kgr says {:?}", version.trim());
    }
    let status = run(Command::new("/usr/sbin/kgr").arg("status"))?;
    if status.trim() != "ready" && status.trim() != "in_progress" {
        bail!("the installed kgr answers status with {:?}", status.trim());
    }
    let deb_files = run(Command::new("dpkg").args(["-L", "kgr"]))?;
    let rpm_files = run(Command::new("rpm").arg("-qpl").arg(rpm))?;
    for needle in PACKAGED {
        if !listed(&deb_files, needle) {
            bail!("the .deb does not install {needle}:\n{deb_files}");
        }
        if !listed(&rpm_files, needle) {
            bail!("the .rpm does not install {needle}:\n{rpm_files}");
        }
    }
    run(Command::new("man").args(["-w", "kgr"]))?;
    for unit in [
        "kgr-metrics.service",
        "kgr-metrics.timer",
        "kgr-monitor.service",
    ] {
        let out = Command::new("systemd-analyze")
            .args(["verify", &format!("/lib/systemd/system/{unit}")])
            .output()
            .context("running systemd-analyze")?;
        let said = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() || said.lines().any(|l| l.contains(unit)) {
            bail!("systemd-analyze verify {unit}: {said}");
        }
    }
    eprintln!(
        "xtask: dist: installed .deb works; .rpm lists {} files; units verify",
        rpm_files.lines().count()
    );
    Ok(())
}
