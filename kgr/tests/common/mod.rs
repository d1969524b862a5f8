//! What the integration tests share: running the built kgr, and the path of
//! a fixture tree.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the kgr binary under test with `args`.
pub fn kgr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kgr"))
        .args(args)
        .output()
        .expect("running kgr")
}

/// `kgr/tests/fixtures/<case>`.
#[allow(
    dead_code,
    reason = "each test file uses its own subset of these helpers"
)]
pub fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(case)
}
