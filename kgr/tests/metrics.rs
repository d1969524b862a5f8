//! `kgr metrics`: the exposition is checked by Prometheus' own `promtool`
//! (Debian's `prometheus` package; `cargo xtask test` installs it), and the
//! textfile is written atomically.

mod common;

use common::{fixture, kgr};
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn fixture_str(case: &str) -> String {
    fixture(case).to_string_lossy().into_owned()
}

fn promtool_check(text: &[u8]) -> Option<Output> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text)
        .expect("feeding promtool");
    Some(child.wait_with_output().expect("promtool"))
}

fn value(text: &str, series: &str) -> Option<String> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .map(|l| l[series.len() + 1..].to_owned())
}

#[test]
fn metrics_of_a_blocked_transition() {
    let out = kgr(&["--root", &fixture_str("patching-6.12"), "metrics"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout.clone()).expect("utf-8");
    assert_eq!(
        value(&text, "kgr_livepatch_supported").as_deref(),
        Some("1")
    );
    assert_eq!(value(&text, "kgr_patches_loaded").as_deref(), Some("2"));
    assert_eq!(
        value(&text, "kgr_transition_in_progress").as_deref(),
        Some("1")
    );
    assert_eq!(value(&text, "kgr_blocking_threads").as_deref(), Some("8"));
    assert_eq!(
        value(&text, r#"kgr_patch_transition{patch="livepatch_test"}"#).as_deref(),
        Some("1")
    );
    assert_eq!(
        value(&text, r#"kgr_patch_enabled{patch="livepatch_test"}"#).as_deref(),
        Some("1")
    );
    match promtool_check(&out.stdout) {
        None => println!(
            "SKIPPED: promtool check: promtool not installed (cargo xtask test installs it)"
        ),
        Some(check) => assert!(
            check.status.success(),
            "promtool rejects the exposition: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        ),
    }
}

#[test]
fn metrics_without_live_patching() {
    let out = kgr(&["--root", &fixture_str("no-livepatch"), "metrics"]);
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(
        value(&text, "kgr_livepatch_supported").as_deref(),
        Some("0")
    );
    assert_eq!(
        value(&text, "kgr_transition_in_progress").as_deref(),
        Some("0")
    );
    assert_eq!(value(&text, "kgr_blocking_threads").as_deref(), Some("0"));
}

#[test]
fn textfile_is_written_whole_and_alone() {
    let dir = std::env::temp_dir().join(format!("kgr-textfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = kgr(&[
        "--root",
        &fixture_str("unpatching-6.12"),
        "metrics",
        "--textfile",
        dir.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "--textfile prints nothing");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .expect("listing")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["kgr.prom"], "only kgr.prom, no temporary file left");
    let text = std::fs::read(dir.join("kgr.prom")).expect("reading kgr.prom");
    let printed = kgr(&["--root", &fixture_str("unpatching-6.12"), "metrics"]).stdout;
    assert_eq!(
        text.len(),
        printed.len(),
        "the textfile holds what metrics prints"
    );
    if let Some(check) = promtool_check(&text) {
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
    let bad = kgr(&["metrics", "--textfile", "/nonexistent/dir"]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.starts_with("kgr: creating a temporary file in /nonexistent/dir"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
