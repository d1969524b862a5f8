//! Builds kgr-ebpf for the BPF target (aya-build) when the `ebpf` feature is
//! on, and leaves the object in `OUT_DIR/kgr-ebpf` for `include_bytes!`.
//! `AYA_BUILD_SKIP=1` (clippy, check) leaves an empty object: kgr then runs
//! without eBPF and says so with `-v`.

fn main() {
    #[cfg(feature = "ebpf")]
    ebpf::build();
}

#[cfg(feature = "ebpf")]
mod ebpf {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// The toolchain that compiles the eBPF crate: the image's nightly, whose
    /// LLVM (22) is not newer than bpf-linker's.
    const TOOLCHAIN: &str = "nightly";
    /// The LLVM `cargo xtask setup` builds bpf-linker against.
    const BPF_LINKER_LLVM_MAJOR: u32 = 22;
    /// The object's name in OUT_DIR: aya-build names it after the bin target.
    const OBJECT: &str = "kgr-ebpf";

    pub fn build() {
        let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
        let workspace = manifest_dir.parent().expect("kgr/ has a parent");
        let out_dir = PathBuf::from(env("OUT_DIR"));
        let common = workspace.join("kgr-common");
        println!("cargo::rerun-if-changed={}", common.display());
        println!("cargo::rerun-if-env-changed=PATH");

        let skip = std::env::var("AYA_BUILD_SKIP")
            .is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        if !skip {
            if let Err(missing) = precheck() {
                fail(&format!(
                    "cannot build kgr's eBPF programs: {missing}. Run `cargo xtask setup`, \
                     or build without eBPF: `cargo build --no-default-features`"
                ));
            }
        }
        let ebpf_dir = workspace.join("kgr-ebpf");
        let package = aya_build::Package {
            name: "kgr-ebpf",
            root_dir: ebpf_dir.to_str().expect("UTF-8 path"),
            ..Default::default()
        };
        if let Err(err) = aya_build::build_ebpf([package], aya_build::Toolchain::Custom(TOOLCHAIN))
        {
            fail(&format!(
                "building kgr-ebpf failed: {err:#} (see the warnings above; `cargo xtask setup` \
                 installs the toolchain)"
            ));
        }
        let object = out_dir.join(OBJECT);
        if skip && !object.exists() {
            // Skipped: an empty object means "built without eBPF programs".
            std::fs::write(&object, b"").expect("writing the placeholder object");
        }
    }

    /// What the eBPF build needs and is missing, named.
    fn precheck() -> Result<(), String> {
        let which_linker = Command::new("bpf-linker").arg("--version").output();
        if !which_linker.is_ok_and(|o| o.status.success()) {
            return Err("bpf-linker is not on PATH".into());
        }
        let version = Command::new("rustup")
            .args(["run", TOOLCHAIN, "rustc", "-vV"])
            .output()
            .map_err(|e| format!("rustup: {e}"))?;
        if !version.status.success() {
            return Err(format!("the `{TOOLCHAIN}` toolchain is not installed"));
        }
        let text = String::from_utf8_lossy(&version.stdout);
        let llvm_major = text
            .lines()
            .find_map(|l| l.strip_prefix("LLVM version: "))
            .and_then(|v| v.split('.').next())
            .and_then(|m| m.parse::<u32>().ok());
        if let Some(major) = llvm_major {
            if major > BPF_LINKER_LLVM_MAJOR {
                return Err(format!(
                    "`{TOOLCHAIN}` uses LLVM {major}, newer than bpf-linker's \
                     LLVM {BPF_LINKER_LLVM_MAJOR} (the link would fail with `Invalid record`)"
                ));
            }
        }
        let sysroot = Command::new("rustup")
            .args(["run", TOOLCHAIN, "rustc", "--print", "sysroot"])
            .output()
            .map_err(|e| format!("rustup: {e}"))?;
        let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
        if !has_rust_src(&sysroot) {
            return Err(format!("the `{TOOLCHAIN}` toolchain lacks rust-src"));
        }
        Ok(())
    }

    fn has_rust_src(sysroot: &Path) -> bool {
        sysroot.join("lib/rustlib/src/rust/library/core").is_dir()
    }

    fn env(name: &str) -> String {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} is set by cargo"))
    }

    /// One clear error line from cargo, then stop.
    fn fail(message: &str) -> ! {
        println!("cargo::error={message}");
        std::process::exit(1);
    }
}
