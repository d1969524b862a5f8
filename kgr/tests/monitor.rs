//! `kgr monitor`: the exit statuses of docs/output.md on this host and on
//! fixture trees, where it polls sysfs (no eBPF under `--root`).

mod common;

use common::{fixture, kgr};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

fn events(lines: &[Value]) -> Vec<&str> {
    lines
        .iter()
        .map(|l| l["event"].as_str().expect("an event name"))
        .collect()
}

#[test]
fn on_this_host_it_ends_promptly() {
    let started = Instant::now();
    let out = kgr(&["monitor", "--once", "--timeout", "1"]);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    if Path::new("/sys/kernel/livepatch").exists() {
        // A live-patching host: it timed out (1) or saw a transition end (0).
        assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
    } else {
        assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
        assert!(out.stdout.is_empty());
        assert_eq!(
            stderr.trim_end(),
            "kgr: no live patching in this kernel (/sys/kernel/livepatch not found): no transition to follow"
        );
    }
}

#[test]
fn a_running_transition_times_out_with_a_summary() {
    let root = fixture("patching-6.12");
    let root = root.to_str().expect("utf-8");
    let out = kgr(&["--root", root, "monitor", "--once", "--timeout", "1"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[..2],
        [
            "following live patch transitions (polling sysfs)",
            "   0.000s  livepatch_test: patching in progress",
        ],
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("livepatch_test: patching still running after 1.0")
            && lines[2].ends_with("s (timed out)"),
        "{stdout}"
    );

    let out = kgr(&[
        "--root",
        root,
        "--json",
        "monitor",
        "--once",
        "--timeout",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines = json_lines(&out);
    assert_eq!(events(&lines), ["monitoring", "start", "summary"]);
    assert_eq!(lines[0]["source"], "sysfs");
    assert_eq!(lines[1]["patch"], "livepatch_test");
    assert_eq!(lines[1]["target"], "patched");
    assert_eq!(lines[1]["already_running"], true);
    let summary = &lines[2];
    assert_eq!(summary["outcome"], "timed_out");
    assert_eq!(summary["source"], "sysfs");
    assert!(summary["duration_s"].as_f64().expect("a duration") >= 1.0);
    // Polling sysfs cannot see threads, rounds nor force.
    assert_eq!(summary["threads_switched"], Value::Null);
    assert_eq!(summary["forced"], Value::Null);
}

#[test]
fn no_transition_is_not_a_completion() {
    let root = fixture("idle-6.12");
    let out = kgr(&[
        "--root",
        root.to_str().expect("utf-8"),
        "--json",
        "monitor",
        "--once",
        "--timeout",
        "0.3",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines = json_lines(&out);
    assert_eq!(events(&lines), ["monitoring", "summary"]);
    assert_eq!(lines[1]["outcome"], "no_transition");
}

#[test]
fn timeout_needs_once() {
    let out = kgr(&["monitor", "--timeout", "1"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

/// Polling follows a real change of the tree: a reversal, then the end.
#[test]
fn polling_sees_a_reversal_and_the_completion() {
    let dir = tempfile::tempdir().expect("a temp dir");
    copy_tree(&fixture("patching-6.12"), dir.path());
    let patch = dir.path().join("sys/kernel/livepatch/livepatch_test");
    let child = Command::new(env!("CARGO_BIN_EXE_kgr"))
        .args(["--root", dir.path().to_str().expect("utf-8")])
        .args(["--json", "monitor", "--once", "--timeout", "10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kgr");
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(patch.join("enabled"), "0\n").expect("writing enabled");
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(patch.join("transition"), "0\n").expect("writing transition");
    let out = child.wait_with_output().expect("kgr ends");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let lines = json_lines(&out);
    assert_eq!(
        events(&lines),
        ["monitoring", "start", "reverse", "complete", "summary"]
    );
    assert_eq!(lines[2]["target"], "unpatched");
    let summary = &lines[4];
    assert_eq!(summary["outcome"], "completed");
    assert_eq!(summary["reversals"], 1);
    assert_eq!(summary["target"], "unpatched");
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("reading the fixture") {
        let entry = entry.expect("an entry");
        let target = to.join(entry.file_name());
        let kind = entry.file_type().expect("a type");
        if kind.is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_tree(&entry.path(), &target);
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// The summary lists the blockers sampled each second (procfs inference,
/// as `blocking --why`), and polling sysfs infers no signals.
#[test]
fn the_summary_lists_the_last_blockers() {
    let root = fixture("patching-6.12");
    let root = root.to_str().expect("utf-8");
    let out = kgr(&[
        "--root",
        root,
        "--json",
        "monitor",
        "--once",
        "--timeout",
        "1.5",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines = json_lines(&out);
    let summary = lines.last().expect("a summary");
    assert_eq!(summary["signals_sent"], Value::Null);
    let blockers = summary["blockers"].as_array().expect("blockers");
    let kthread = blockers
        .iter()
        .find(|b| b["tid"] == 412)
        .unwrap_or_else(|| panic!("the kthread 412 among {blockers:?}"));
    assert_eq!(kthread["function"], "klp_busy_sleeper");
    assert_eq!(kthread["reason"], "sleeping_on_patched_function");
    assert_eq!(kthread["kthread"], true);
    assert!(kthread["held_s"].as_f64().expect("held_s") >= 0.0);

    let out = kgr(&["--root", root, "monitor", "--once", "--timeout", "1.5"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("\n  last blockers:\n")
            && stdout.contains(
                "    412 [kworker/1:2+events]: sleeping_on_patched_function on klp_busy_sleeper, held it up "
            ),
        "{stdout}"
    );
}
