//! `kgr snapshot` round trip: an archive taken of a tree answers every
//! command exactly as the tree itself does.

mod common;

use common::kgr;
use std::path::{Path, PathBuf};

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("kgr-snapshot-test-{}-{name}", std::process::id()))
}

const COMMANDS: &[&[&str]] = &[
    &["status"],
    &["-v", "status"],
    &["--json", "status"],
    &["check"],
    &["patches"],
    &["-vv", "patches"],
    &["--json", "patches"],
    &["blocking"],
    &["-v", "blocking"],
    &["-vv", "blocking"],
    &["--json", "-vv", "blocking"],
    &["-v", "poke"],
    &["--json", "poke"],
];

fn round_trip(case: &str) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(case);
    let fixture = fixture.to_str().expect("utf-8 path");
    let archive = tmp(&format!("{case}.tar.gz"));
    let archive_s = archive.to_str().expect("utf-8 path");
    let out = kgr(&["--root", fixture, "snapshot", "-o", archive_s]);
    assert!(
        out.status.success(),
        "snapshot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with(&format!("wrote {archive_s}: ")), "{said}");
    for args in COMMANDS {
        let live = kgr(&[&["--root", fixture][..], args].concat());
        let offline = kgr(&[&["--root", archive_s][..], args].concat());
        assert_eq!(
            String::from_utf8_lossy(&offline.stdout),
            String::from_utf8_lossy(&live.stdout),
            "{case}: kgr {args:?} differs between the tree and its snapshot"
        );
        assert_eq!(
            offline.status.code(),
            live.status.code(),
            "{case}: kgr {args:?} exit status"
        );
    }
    let _ = std::fs::remove_file(&archive);
}

#[test]
fn snapshot_of_a_patching_transition_answers_the_same() {
    round_trip("patching-6.12");
}

#[test]
fn snapshot_of_a_reversed_transition_answers_the_same() {
    round_trip("unpatching-6.12");
}

#[test]
fn snapshot_of_kgraft_answers_the_same() {
    round_trip("kgraft");
}

#[test]
fn snapshot_of_this_machine_answers_status() {
    let archive = tmp("live.tar.gz");
    let archive_s = archive.to_str().expect("utf-8 path");
    let out = kgr(&["snapshot", "-o", archive_s]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for args in [&["status"][..], &["patches"], &["blocking"]] {
        let live = kgr(args);
        let offline = kgr(&[&["--root", archive_s][..], args].concat());
        assert_eq!(offline.stdout, live.stdout, "kgr {args:?}");
    }
    let _ = std::fs::remove_file(&archive);
}

#[test]
fn a_file_that_is_no_snapshot_is_one_clear_error() {
    let out = kgr(&["--root", "/etc/hostname", "status"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("kgr: unpacking /etc/hostname (not a kgr snapshot?)"),
        "{err}"
    );
    let out = kgr(&["--root", "/etc/hostname", "check"]);
    assert_eq!(out.status.code(), Some(2));
}
