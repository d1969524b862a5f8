//! The real-kernel lab: Debian kernels with live patching in a qemu guest
//! (TCG), our own test modules, and the freshly built kgr inside, checked
//! against ground truth the guest reads itself (`tests/vm/`).
//!
//! Everything is cached under `target/vm-lab/`: a private APT configuration
//! and lists, the kernels (downloaded with `apt-get download`, unpacked with
//! `dpkg -x`), the built modules, guest programs, static kgr and initramfs.

mod artifact;
mod cpio;
mod host_checks;
mod qemu;
mod setup;

/// For `cargo xtask bench`: one benchmark boot of a lab kernel.
pub(crate) use qemu::bench as bench_boot;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};

/// A lab kernel: which Debian suite its `linux-image-amd64` comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Kernel {
    /// Short name, also the cache directory: `6.12`, `6.1`.
    pub key: &'static str,
    /// Suite suffix added to the host's codename for APT's default release
    /// (`-backports`), or none: the release's own newest kernel.
    pub backports: bool,
}

pub(crate) const K612: Kernel = Kernel {
    key: "6.12",
    backports: true,
};
pub(crate) const K61: Kernel = Kernel {
    key: "6.1",
    backports: false,
};

/// Which lab kernels a command uses.
#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum KernelChoice {
    /// 6.12 from bookworm-backports.
    #[value(name = "6.12")]
    K612,
    /// 6.1 from bookworm.
    #[value(name = "6.1")]
    K61,
    /// Both.
    #[default]
    All,
}

impl KernelChoice {
    fn kernels(self) -> Vec<Kernel> {
        match self {
            KernelChoice::K612 => vec![K612],
            KernelChoice::K61 => vec![K61],
            KernelChoice::All => vec![K612, K61],
        }
    }
}

#[derive(Subcommand)]
pub enum VmCommand {
    /// Install host packages, fetch kernels, build modules, guest programs,
    /// a static kgr and the initramfs (idempotent; warm runs take seconds).
    Setup {
        /// Which kernels to prepare.
        #[arg(long, value_enum, default_value = "all")]
        kernel: KernelChoice,
    },
    /// Boot the guest and run the scenarios (sets up what is missing).
    Test {
        /// Which kernels to test.
        #[arg(long, value_enum, default_value = "all")]
        kernel: KernelChoice,
        /// Overall time limit of one guest run, in seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
}

#[derive(Args)]
pub struct DemoArgs {
    /// Which kernel to boot for the demo.
    #[arg(long, value_enum, default_value = "6.12")]
    kernel: KernelChoice,
}

/// What running the lab scenarios came to.
pub enum LabOutcome {
    /// The scenarios ran on every kernel; counts summed.
    Ran { passed: u32, failed: u32 },
    /// The lab could not run here, and why.
    Skipped(String),
}

/// The lab's directories.
pub(crate) struct Lab {
    /// The workspace root.
    pub root: PathBuf,
    /// `target/vm-lab`.
    pub cache: PathBuf,
}

impl Lab {
    pub(crate) fn new() -> Lab {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let cache = root.join("target").join("vm-lab");
        Lab { root, cache }
    }

    pub fn kernel_dir(&self, k: Kernel) -> PathBuf {
        self.cache.join("kernels").join(k.key)
    }

    pub fn tests(&self) -> PathBuf {
        self.root.join("tests").join("vm")
    }
}

pub(crate) fn progress(msg: &str) {
    eprintln!("vm: {msg}");
}

pub fn run(cmd: VmCommand) -> Result<()> {
    let lab = Lab::new();
    match cmd {
        VmCommand::Setup { kernel } => {
            if let Some(why) = setup::setup(&lab, &kernel.kernels())? {
                bail!("{why}");
            }
            Ok(())
        }
        VmCommand::Test { kernel, timeout } => {
            let (passed, failed) = match test_kernels(&lab, &kernel.kernels(), timeout)? {
                LabOutcome::Ran { passed, failed } => (passed, failed),
                LabOutcome::Skipped(why) => bail!("{why}"),
            };
            println!("{passed} passed, {failed} failed");
            if failed > 0 {
                bail!("{failed} VM lab checks failed");
            }
            Ok(())
        }
    }
}

pub fn demo(args: &DemoArgs) -> Result<()> {
    let lab = Lab::new();
    let kernel = match args.kernel {
        KernelChoice::K61 => K61,
        KernelChoice::K612 | KernelChoice::All => K612,
    };
    if let Some(why) = setup::setup(&lab, &[kernel])? {
        bail!("{why}");
    }
    qemu::demo(&lab, kernel)
}

/// For `cargo xtask bench`: prepares the lab for kernel `k` (as `vm setup`);
/// `Ok(Some(why))` when the lab cannot run here.
pub(crate) fn bench_setup(lab: &Lab, k: Kernel) -> Result<Option<String>> {
    setup::setup(lab, &[k])
}

/// For `cargo xtask bench`: the static programs the lab built (`kgr`,
/// `bench-scan`, `bench_threads`, `bench_time`), which run on the host too.
pub(crate) fn bench_program(lab: &Lab, name: &str) -> PathBuf {
    match name {
        "kgr" | "bench-scan" => lab
            .cache
            .join("kgr-build")
            .join("x86_64-unknown-linux-gnu")
            .join("release")
            .join(name),
        _ => lab.cache.join("guest").join(name),
    }
}

/// Runs the lab scenarios on every lab kernel, for `cargo xtask test`.
pub fn test_all() -> Result<LabOutcome> {
    test_kernels(&Lab::new(), &KernelChoice::All.kernels(), 300)
}

fn test_kernels(lab: &Lab, kernels: &[Kernel], timeout: u64) -> Result<LabOutcome> {
    if let Some(why) = setup::setup(lab, kernels)? {
        return Ok(LabOutcome::Skipped(why));
    }
    let (mut passed, mut failed) = (0, 0);
    let mut broken = Vec::new();
    for &k in kernels {
        match qemu::test(lab, k, timeout) {
            Ok((p, f)) => {
                passed += p;
                failed += f;
            }
            Err(err) => {
                eprintln!("vm: kernel {}: {err:#}", k.key);
                broken.push(k.key);
            }
        }
    }
    if !broken.is_empty() {
        bail!(
            "the lab run failed on kernel {} (after {passed} passed, {failed} failed)",
            broken.join(", ")
        );
    }
    Ok(LabOutcome::Ran { passed, failed })
}
