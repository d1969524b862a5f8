//! `cargo xtask setup`: installs what the eBPF build needs, only what is missing.
//!
//! The eBPF crate is built by the image's `nightly` (LLVM 22) and linked by
//! bpf-linker built against LLVM 22: the compiler's LLVM must not be newer
//! than the linker's, so this never installs or updates a nightly toolchain.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// Debian packages bpf-linker links against (LLVM 22 and what it needs).
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "zlib1g-dev",
    "libzstd-dev",
];
/// Where Debian's LLVM 22 lives: bpf-linker's build script would otherwise
/// take the first `llvm-config` on PATH (LLVM 14 here).
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
/// The toolchain aya-build runs (kgr/build.rs); its LLVM is 22.
const EBPF_TOOLCHAIN: &str = "nightly";

/// Installs the eBPF toolchain pieces that are missing; does nothing when
/// everything is there.
pub fn run() -> Result<()> {
    apt_packages()?;
    rust_src()?;
    bpf_linker()?;
    eprintln!("xtask: setup: eBPF toolchain ready");
    Ok(())
}

fn apt_packages() -> Result<()> {
    apt_install(APT_PACKAGES)
}

/// Installs those of Debian's `packages` that are not installed yet.
pub fn apt_install(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: setup: installing {}", missing.join(" "));
    // A fresh image may not know the packages yet: update the lists first
    // when apt cannot place one of them.
    if missing.iter().any(|p| !apt_knows(p)) {
        run_cmd(Command::new("apt-get").arg("update"))?;
    }
    run_cmd(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.ends_with(b"install ok installed"))
}

fn apt_knows(package: &str) -> bool {
    Command::new("apt-cache")
        .args(["show", package])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn rust_src() -> Result<()> {
    let sysroot = Command::new("rustup")
        .args(["run", EBPF_TOOLCHAIN, "rustc", "--print", "sysroot"])
        .output()
        .context("running rustup (is rustup installed?)")?;
    if !sysroot.status.success() {
        bail!(
            "the `{EBPF_TOOLCHAIN}` toolchain is not installed; install the image's \
             toolchain (not a newer nightly: its LLVM must not be newer than bpf-linker's)"
        );
    }
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib/src/rust/library/core").is_dir() {
        return Ok(());
    }
    eprintln!("xtask: setup: adding rust-src to {EBPF_TOOLCHAIN}");
    run_cmd(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        EBPF_TOOLCHAIN,
    ]))
}

fn bpf_linker() -> Result<()> {
    let on_path = Command::new("bpf-linker")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if on_path {
        return Ok(());
    }
    eprintln!("xtask: setup: building bpf-linker against LLVM 22 (about a minute)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run_cmd(
        Command::new(cargo)
            .args([
                "install",
                "--locked",
                "bpf-linker",
                "--no-default-features",
                "--features",
                "llvm-22",
            ])
            .env("LLVM_PREFIX", LLVM_PREFIX),
    )
}

fn run_cmd(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("running {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}
