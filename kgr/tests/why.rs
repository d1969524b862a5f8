//! `kgr blocking --why` on fixture trees: the procfs source (no eBPF under
//! `--root`), frames matched against the patch's functions by address
//! through `proc/kallsyms`.

mod common;

use common::{fixture, kgr};
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn why_json(root: &Path) -> Value {
    let out = kgr(&[
        "--root",
        root.to_str().expect("utf-8"),
        "blocking",
        "--why",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "kgr failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

/// The `why` of thread `tid`, with the thread's stack checked present.
fn why_of(report: &Value, tid: i64) -> Value {
    let thread = report["threads"]
        .as_array()
        .expect("threads")
        .iter()
        .find(|t| t["tid"] == tid)
        .unwrap_or_else(|| panic!("thread {tid} listed"));
    assert!(thread["stack"].is_array(), "--why includes the stack");
    thread["why"].clone()
}

#[test]
fn patching_names_the_patched_function_each_thread_sleeps_on() {
    let report = why_json(&fixture("patching-6.12"));
    let dd = why_of(&report, 2045);
    assert_eq!(dd["function"], "klp_busy_user_wait");
    assert_eq!(dd["reason"], "sleeping_on_patched_function");
    assert_eq!(dd["syscall"], "read");
    assert_eq!(dd["pokeable"], false, "D state");
    assert_eq!(dd["source"], "procfs");
    assert_eq!(dd["in_kernel_s"], Value::Null);
    let kworker = why_of(&report, 412);
    assert_eq!(kworker["function"], "klp_busy_sleeper");
    assert_eq!(
        kworker["syscall"],
        Value::Null,
        "kthreads are in no syscall"
    );
    assert_eq!(kworker["pokeable"], false);
    let python = why_of(&report, 1730);
    assert_eq!(python["function"], "do_sys_poll");
    assert_eq!(python["syscall"], "poll");
    assert_eq!(python["pokeable"], true);
    assert_eq!(why_of(&report, 1)["pokeable"], false, "pid 1");
    assert_eq!(why_of(&report, 2101)["pokeable"], false, "stopped");
    assert_eq!(why_of(&report, 2150)["pokeable"], false, "traced");
}

#[test]
fn unpatching_names_the_patch_s_replacement() {
    let report = why_json(&fixture("unpatching-6.12"));
    assert_eq!(report["transition"]["target"], "unpatched");
    let poller = why_of(&report, 2633);
    assert_eq!(poller["function"], "livepatch_ep_poll");
    assert_eq!(poller["reason"], "sleeping_on_patched_function");
    assert_eq!(poller["syscall"], "epoll_wait");
    let zombie = why_of(&report, 2790);
    assert_eq!(zombie["reason"], "unknown", "a zombie has no stack");
    assert_eq!(zombie["pokeable"], false);
}

/// A copy of `case` under cargo's temporary directory, to change a file.
fn copy_fixture(case: &str, name: &str) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        fs::create_dir_all(to).expect("mkdir");
        for entry in fs::read_dir(from).expect("read_dir") {
            let entry = entry.expect("entry");
            let target = to.join(entry.file_name());
            if entry.file_type().expect("type").is_dir() {
                copy(&entry.path(), &target);
            } else {
                fs::copy(entry.path(), &target).expect("copy");
            }
        }
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("why-{name}"));
    let _ = fs::remove_dir_all(&dir);
    copy(&fixture(case), &dir);
    dir
}

#[test]
fn an_alias_of_a_patched_function_is_matched_by_address() {
    // python3 (1730) now sleeps in pause(): the stack names the alias
    // __do_sys_pause, sysfs the patched __x64_sys_pause (same address).
    let root = copy_fixture("patching-6.12", "alias");
    let task = root.join("proc/1730/task/1730");
    fs::write(
        task.join("stack"),
        "[<0>] __do_sys_pause+0x1f/0x30\n[<0>] do_syscall_64+0x82/0x190\n\
         [<0>] entry_SYSCALL_64_after_hwframe+0x76/0x7e\n",
    )
    .expect("write stack");
    fs::write(
        task.join("syscall"),
        "34 0x0 0x0 0x0 0x0 0x0 0x0 0x7ffd 0x7f3a\n",
    )
    .expect("write");
    let why = why_of(&why_json(&root), 1730);
    assert_eq!(why["function"], "__x64_sys_pause");
    assert_eq!(why["reason"], "sleeping_on_patched_function");
    assert_eq!(why["syscall"], "pause");
    assert_eq!(why["pokeable"], true);
    // Without kallsyms the alias is not recognised: names differ.
    fs::remove_file(root.join("proc/kallsyms")).expect("rm kallsyms");
    let why = why_of(&why_json(&root), 1730);
    assert_eq!(why["function"], Value::Null);
    assert_eq!(why["reason"], "not_checked_yet");
}

#[test]
fn the_human_table_has_a_header_and_one_row_per_thread() {
    let root = fixture("patching-6.12");
    let out = kgr(&["--root", root.to_str().expect("utf-8"), "blocking", "--why"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "TID",
            "COMM",
            "S",
            "FUNCTION",
            "REASON",
            "SYSCALL",
            "IN-KERNEL",
            "POKE",
            "SOURCE"
        ]
    );
    let plain = kgr(&["--root", root.to_str().expect("utf-8"), "blocking"]);
    let plain = String::from_utf8_lossy(&plain.stdout);
    let tids: Vec<&str> = plain.lines().collect();
    let rows: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().next().expect("tid"))
        .collect();
    assert_eq!(rows, tids);
    let dd = lines
        .iter()
        .find(|l| l.trim_start().starts_with("2045 "))
        .expect("dd row");
    let cells: Vec<&str> = dd.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "2045",
            "dd",
            "D",
            "klp_busy_user_wait",
            "sleeping_on_patched_function",
            "read",
            "-",
            "no",
            "procfs"
        ]
    );
    // One screen: no row wider than a wide (132-column) terminal.
    assert!(lines.iter().all(|l| l.len() <= 132), "{text}");
}

#[test]
fn without_why_the_output_is_unchanged() {
    // The contract layouts have no why, and --json no `why` key.
    let root = fixture("patching-6.12");
    let out = kgr(&[
        "--root",
        root.to_str().expect("utf-8"),
        "--json",
        "-vv",
        "blocking",
    ]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(report["threads"]
        .as_array()
        .expect("threads")
        .iter()
        .all(|t| t.get("why").is_none()));
}
