//! kgr run as an unprivileged user: per-task `patch_state` is mode 0400 and
//! root's, so kgr answers what it can read and says once what it could not.
//! Needs root to switch to `nobody` (setpriv); otherwise reports itself skipped.

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const NOBODY: u32 = 65534;

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("creating copy");
    fs::set_permissions(to, fs::Permissions::from_mode(0o755)).expect("chmod dir");
    for entry in fs::read_dir(from).expect("reading fixture") {
        let entry = entry.expect("fixture entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copying file");
            let mode = if entry.file_name() == "patch_state" || entry.file_name() == "stack" {
                0o400
            } else {
                0o444
            };
            fs::set_permissions(&target, fs::Permissions::from_mode(mode)).expect("chmod file");
        }
    }
}

fn chown_tree(dir: &Path) {
    chown(dir, Some(NOBODY), Some(NOBODY)).expect("chown");
    for entry in fs::read_dir(dir).expect("reading copy") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            chown_tree(&path);
        } else {
            chown(&path, Some(NOBODY), Some(NOBODY)).expect("chown");
        }
    }
}

fn as_nobody(root: &Path, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_kgr"),
            "--root",
        ])
        .arg(root)
        .args(args)
        .output()
        .expect("running kgr through setpriv")
}

fn can_switch_user() -> Option<&'static str> {
    if !rustix::process::geteuid().is_root() {
        return Some("not root: cannot switch to nobody");
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        return Some("setpriv (util-linux) not installed");
    }
    None
}

#[test]
fn unprivileged_blocking_answers_what_it_can_and_warns_once() {
    if let Some(why) = can_switch_user() {
        println!("SKIPPED: {why}");
        return;
    }
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/patching-6.12");
    let tmp: PathBuf = std::env::temp_dir().join(format!("kgr-nonroot-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    copy_tree(&fixture, &tmp);
    // The python monitor (threads 1730 and 1733) is nobody's own process.
    chown_tree(&tmp.join("proc/1730"));

    let out = as_nobody(&tmp, &["blocking"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stdout, "1730\n1733\n",
        "only the readable blockers; stderr: {stderr}"
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "an incomplete list is not success"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one warning line, got: {stderr}");
    assert!(
        lines[0].starts_with("kgr: warning: could not read the state of "),
        "{stderr}"
    );
    assert!(
        lines[0].ends_with("permission denied (run as root)"),
        "{stderr}"
    );

    // status needs no per-task file: it answers in full.
    let out = as_nobody(&tmp, &["status"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "in_progress\n");
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty());

    // status -v cannot count the threads left: it leaves the line out and says why.
    let out = as_nobody(&tmp, &["-v", "status"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "in_progress\npatch: livepatch_test\ntarget: patched\n"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("(run as root)"));

    let out = as_nobody(&tmp, &["check"]);
    assert_eq!(out.status.code(), Some(1));
    let _ = fs::remove_dir_all(&tmp);
}
