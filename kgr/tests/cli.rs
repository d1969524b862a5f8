//! Golden-output tests: the real `kgr` binary, run with `--root` on the
//! real-shaped fixture trees under `tests/fixtures/<case>/{sys,proc}`, its
//! stdout and exit status compared with the expected files beside them in
//! `tests/fixtures/<case>/expected/`.
//!
//! Expected files:
//! - `<label>.out`: the exact stdout, byte for byte.
//! - `<label>.json`: a subset of the JSON document on stdout. Every key
//!   written must be in the output with that value (kgr may add fields);
//!   arrays match element by element and have the same length. Where the
//!   contract leaves the shape open, a one-key object is a matcher:
//!   `{"$args": [...]}` (a command line: the arguments joined by spaces, or
//!   the array itself), `{"$frames": [...]}` (a kernel stack: the frames as
//!   `/proc/.../stack` gives them, or objects naming each frame's function),
//!   `{"$one_of": [...]}`, `{"$absent": true}` (missing or null).
//! - `<label>.err`: the one-line stderr of an error, the fixture's path
//!   written as `<root>`.
//!
//! The `.out` and `.json` files are written by hand from
//! `../shared/docs/compat.md` and `docs/output.md`: they are the independent
//! check of the implementation, and nothing here rewrites them.
//! `KGR_BLESS=1 cargo test -p kgr --test cli` (re)writes only the `.err`
//! files, and only from an error that already has the contract's shape.
//!
//! A fixture keeps `.keep` files in directories that are empty on a real
//! system (sysfs function directories, a vanished task's directory), because
//! git stores no empty directory: kgr must ignore dot-files.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

// ---------------------------------------------------------------- the table

/// What every well-formed fixture answers: the arguments after
/// `--root <fixture>`, and the expected file. The exit status is 0, except
/// for `check`, which is 1 while a transition is in progress.
const STANDARD: &[(&[&str], &str)] = &[
    (&["status"], "status.out"),
    (&["-v", "status"], "v_status.out"),
    (&["status", "-v"], "v_status.out"),
    (&["check"], "check.out"),
    (&["-v", "check"], "status.out"),
    (&["check", "-vv"], "v_status.out"),
    (&["patches"], "patches.out"),
    (&["-v", "patches"], "v_patches.out"),
    (&["patches", "-v"], "v_patches.out"),
    (&["-vv", "patches"], "vv_patches.out"),
    (&["patches", "-v", "-v"], "vv_patches.out"),
    (&["blocking"], "blocking.out"),
    (&["-v", "blocking"], "v_blocking.out"),
    (&["blocking", "-v"], "v_blocking.out"),
    (&["-vv", "blocking"], "vv_blocking.out"),
    (&["blocking", "-vv"], "vv_blocking.out"),
    (&["-v", "-v", "blocking"], "vv_blocking.out"),
    (&["blocking_threads"], "blocking.out"),
    (&["-v", "blocking_threads"], "v_blocking.out"),
    (&["blocking_threads", "-vv"], "vv_blocking.out"),
    (&["poke"], "poke.out"),
    (&["poke", "--dry-run"], "poke.out"),
    (&["-v", "poke"], "v_poke.out"),
    (&["poke", "-v"], "v_poke.out"),
    (&["--json", "status"], "status.json"),
    (&["status", "-v", "--json"], "status.json"),
    (&["check", "--json"], "status.json"),
    (&["patches", "--json"], "patches.json"),
    (&["--json", "-v", "patches"], "patches.json"),
    (&["--json", "blocking"], "blocking.json"),
    (&["blocking_threads", "--json"], "blocking.json"),
    (&["blocking", "-vv", "--json"], "vv_blocking.json"),
    (&["poke", "--json"], "poke.json"),
];

/// `check` prints nothing: its answer is the exit status.
const CHECK_OUT: &str = "check.out";

struct Fixture {
    name: &'static str,
    in_progress: bool,
    /// Expected files this fixture does not have (the contract does not say).
    skip: &'static [&'static str],
}

const WELL_FORMED: &[Fixture] = &[
    ready("no-livepatch"),
    ready("empty-6.12"),
    ready("idle-5.14"),
    ready("idle-6.12"),
    ready("idle-6.13"),
    in_progress("patching-6.12"),
    in_progress("unpatching-6.12"),
    in_progress("finishing-6.12"),
    in_progress("vanished-task"),
    // kGraft: what `patches -v` shows for a kGraft patch (it has no
    // `enabled`) is not written down anywhere.
    Fixture {
        skip: &["v_patches.out", "vv_patches.out"],
        ..in_progress("kgraft")
    },
];

const fn ready(name: &'static str) -> Fixture {
    Fixture {
        name,
        in_progress: false,
        skip: &[],
    }
}

const fn in_progress(name: &'static str) -> Fixture {
    Fixture {
        name,
        in_progress: true,
        skip: &[],
    }
}

/// Commands that must fail on a malformed fixture: arguments, exit status,
/// what the one stderr line must mention, and its blessed `.err` file.
struct ErrorCase {
    fixture: &'static str,
    args: &'static [&'static str],
    code: i32,
    mentions: &'static [&'static str],
    err: &'static str,
}

const ERRORS: &[ErrorCase] = &[
    // Every command needs the transitioning patch's `transition`.
    bad_transition(&["status"], 1, "status.err"),
    bad_transition(&["-v", "status"], 1, "status.err"),
    bad_transition(&["--json", "status"], 1, "status.err"),
    bad_transition(&["check"], 2, "status.err"),
    bad_transition(&["check", "-v"], 2, "status.err"),
    bad_transition(&["check", "--json"], 2, "status.err"),
    bad_transition(&["blocking"], 1, "blocking.err"),
    bad_transition(&["-vv", "patches"], 1, "vv_patches.err"),
    bad_transition(&["poke"], 1, "poke.err"),
    // The blocking thread's state and kthread flag are in its `stat`.
    bad_stat(&["-v", "blocking"], 1, "v_blocking.err"),
    bad_stat(&["blocking", "-vv"], 1, "v_blocking.err"),
    bad_stat(&["blocking", "--json"], 1, "v_blocking.err"),
    bad_stat(&["poke"], 1, "poke.err"),
];

const fn bad_transition(args: &'static [&'static str], code: i32, err: &'static str) -> ErrorCase {
    ErrorCase {
        fixture: "malformed-transition",
        args,
        code,
        mentions: &["livepatch_test/transition"],
        err,
    }
}

const fn bad_stat(args: &'static [&'static str], code: i32, err: &'static str) -> ErrorCase {
    ErrorCase {
        fixture: "malformed-stat",
        args,
        code,
        mentions: &["2045", "stat"],
        err,
    }
}

/// What a malformed fixture still answers: a file no command needs for this
/// answer is no reason to fail (the truncated `stat` is not read by
/// `status`).
const PARTIAL: &[(&str, &[&str], &str, i32)] = &[
    ("malformed-stat", &["status"], "status.out", 0),
    ("malformed-stat", &["status", "-v"], "v_status.out", 0),
    ("malformed-stat", &["check"], CHECK_OUT, 1),
];

// ---------------------------------------------------------------- tests

#[test]
fn no_livepatch() {
    well_formed("no-livepatch");
}

#[test]
fn empty_6_12() {
    well_formed("empty-6.12");
}

#[test]
fn idle_5_14() {
    well_formed("idle-5.14");
}

#[test]
fn idle_6_12() {
    well_formed("idle-6.12");
}

#[test]
fn idle_6_13() {
    well_formed("idle-6.13");
}

#[test]
fn patching_6_12() {
    well_formed("patching-6.12");
}

#[test]
fn unpatching_6_12() {
    well_formed("unpatching-6.12");
}

#[test]
fn finishing_6_12() {
    well_formed("finishing-6.12");
}

#[test]
fn vanished_task() {
    well_formed("vanished-task");
}

#[test]
fn kgraft() {
    well_formed("kgraft");
}

#[test]
fn malformed_transition() {
    report(errors("malformed-transition"));
}

#[test]
fn malformed_stat() {
    let mut failures = Vec::new();
    for (fixture, args, file, code) in PARTIAL {
        let dir = fixture_dir(fixture);
        let expected = read_expected(&dir, file);
        failures.extend(compare_stdout(&dir, args, &expected, *code));
    }
    failures.extend(errors("malformed-stat"));
    report(failures);
}

/// Every expected file is used by a row, and every row's file exists: a
/// typo in the table must not turn into a check that never runs.
#[test]
fn expected_files_match_the_table() {
    let mut failures = Vec::new();
    for fixture in WELL_FORMED {
        let wanted: BTreeSet<&str> = STANDARD
            .iter()
            .map(|(_, file)| *file)
            .filter(|file| !fixture.skip.contains(file))
            .filter(|file| *file != CHECK_OUT)
            .collect();
        let present = expected_files(fixture.name);
        for missing in wanted.iter().filter(|f| !present.contains(**f)) {
            failures.push(format!("{}: expected/{missing} is missing", fixture.name));
        }
        for extra in present.iter().filter(|f| !wanted.contains(f.as_str())) {
            failures.push(format!(
                "{}: expected/{extra} is used by no row",
                fixture.name
            ));
        }
    }
    for name in ["malformed-transition", "malformed-stat"] {
        let wanted: BTreeSet<&str> = ERRORS
            .iter()
            .filter(|e| e.fixture == name)
            .map(|e| e.err)
            .chain(
                PARTIAL
                    .iter()
                    .filter(|(f, ..)| *f == name)
                    .map(|(_, _, file, _)| *file)
                    .filter(|file| *file != CHECK_OUT),
            )
            .collect();
        let present = expected_files(name);
        for extra in present.iter().filter(|f| !wanted.contains(f.as_str())) {
            failures.push(format!("{name}: expected/{extra} is used by no row"));
        }
        // `.err` files are blessed: their absence is reported by `errors()`.
        for missing in wanted
            .iter()
            .filter(|f| !f.ends_with(".err") && !present.contains(**f))
        {
            failures.push(format!("{name}: expected/{missing} is missing"));
        }
    }
    report(failures);
}

#[test]
fn version() {
    let out = run(None, &["--version"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        describe(&["--version"], &out)
    );
    assert_eq!(
        stdout(&out),
        format!("kgr {}\n", env!("CARGO_PKG_VERSION")),
        "`kgr --version` prints `kgr <version>`"
    );
}

#[test]
fn help_lists_every_command_option_and_exit_status() {
    for flag in ["-h", "--help"] {
        let out = run(None, &[flag]);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&[flag], &out));
        let text = stdout(&out);
        for word in [
            "status",
            "check",
            "patches",
            "blocking",
            "blocking_threads",
            "poke",
            "-v",
            "--verbose",
            "--json",
            "--version",
            "-h",
            "--help",
        ] {
            assert!(
                text.contains(word),
                "`kgr {flag}` does not mention {word}:\n{text}"
            );
        }
        let lower = text.to_lowercase();
        assert!(
            lower.contains("exit status"),
            "`kgr {flag}` lists no exit statuses:\n{text}"
        );
        for status in ["0", "1", "2"] {
            assert!(
                text.contains(status),
                "`kgr {flag}` does not mention exit status {status}"
            );
        }
    }
}

#[test]
fn usage_errors_are_short_and_not_success() {
    let root = fixture_dir("idle-6.12");
    for args in [
        &["--bogus", "status"][..],
        &["status", "--bogus"],
        &["frobnicate"],
        &[],
    ] {
        let out = run(Some(&root), args);
        let err = stderr(&out);
        let what = describe(args, &out);
        assert!(!out.status.success(), "usage error exited 0\n{what}");
        assert!(
            stdout(&out).is_empty(),
            "usage error printed on stdout\n{what}"
        );
        assert!(!err.contains("panicked"), "usage error panicked\n{what}");
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error:") || first.starts_with("kgr:") || first.starts_with("Usage:"),
            "first stderr line does not say what is wrong\n{what}"
        );
        if let Some(flag) = args.iter().find(|a| a.starts_with("--")) {
            assert!(
                first.contains(flag),
                "the error does not name {flag}\n{what}"
            );
        }
        let lines = err.lines().filter(|l| !l.trim().is_empty()).count();
        assert!(lines <= 5, "usage error is not short\n{what}");
    }
}

#[test]
fn root_may_follow_the_command() {
    let dir = fixture_dir("patching-6.12");
    let expected = read_expected(&dir, "v_status.out");
    let arg = dir.to_str().expect("fixture path is UTF-8");
    for args in [
        &["status", "-v", "--root", arg][..],
        &["-v", "status", "--root", arg],
    ] {
        let out = run(None, args);
        let mut failures = Vec::new();
        check_output(args, &out, &expected, 0, &mut failures);
        report(failures);
    }
}

// ---------------------------------------------------------------- 10,000 threads

/// 100 processes of 100 threads each, plus ten kworkers, in a transition
/// to `patched`; generated at test time (10,000 task directories are not
/// worth committing).
mod big {
    use super::*;

    pub const PROCS: u32 = 100;
    pub const THREADS: u32 = 100;
    pub const KWORKERS: u32 = 10;

    pub fn pid(proc: u32) -> u32 {
        10_000 + proc * THREADS
    }

    /// Thread `thread` of process `proc` blocks (still unpatched).
    pub fn blocks(proc: u32, thread: u32) -> bool {
        matches!((proc * THREADS + thread) % 3, 0)
    }

    /// Processes stopped by job control: blocking, but never poked.
    pub fn stopped(proc: u32) -> bool {
        proc % 10 == 7
    }

    pub fn kworker_pid(k: u32) -> u32 {
        100 + k
    }

    pub fn kworker_comm(k: u32) -> String {
        format!("kworker/{k}:1-events")
    }

    pub fn kworker_blocks(k: u32) -> bool {
        matches!(k % 2, 0)
    }

    pub fn args(proc: u32) -> String {
        format!("/usr/bin/worker --id {proc}")
    }

    const STACK: &str = "[<0>] ep_poll+0x4b6/0x4f0\n\
                         [<0>] do_epoll_wait+0x58/0xd0\n\
                         [<0>] __x64_sys_epoll_wait+0x66/0x100\n\
                         [<0>] do_syscall_64+0x82/0x190\n\
                         [<0>] entry_SYSCALL_64_after_hwframe+0x76/0x7e\n";

    const KSTACK: &str = "[<0>] klp_busy_sleeper+0x2d/0x50 [klp_blocker]\n\
                          [<0>] process_one_work+0x17e/0x330\n\
                          [<0>] worker_thread+0x24f/0x360\n\
                          [<0>] kthread+0xcf/0x100\n\
                          [<0>] ret_from_fork+0x31/0x50\n\
                          [<0>] ret_from_fork_asm+0x1a/0x30\n";

    /// The 52 fields of `/proc/<pid>/task/<tid>/stat`.
    fn stat(
        tid: u32,
        comm: &str,
        state: char,
        pgrp: u32,
        flags: u32,
        threads: u32,
        leader: bool,
    ) -> String {
        let exit_signal = if leader { 17 } else { -1 };
        if flags & 0x0020_0000 != 0 {
            let ppid = 2;
            format!(
                "{tid} ({comm}) {state} {ppid} 0 0 0 -1 {flags} 0 0 0 0 0 {} 0 0 20 0 1 0 {} 0 0 \
                 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 {exit_signal} 1 0 0 0 0 0 0 \
                 0 0 0 0 0 0 0\n",
                tid % 97,
                tid / 10
            )
        } else {
            let ppid = 1;
            format!(
                "{tid} ({comm}) {state} {ppid} {pgrp} {pgrp} 0 -1 {flags} {} 0 3 0 {} {} 0 0 20 0 \
                 {threads} 0 {} 26214400 1200 18446744073709551615 94233411674112 94233412757397 \
                 140731867428864 0 0 0 0 4096 671173123 1 0 0 {exit_signal} {} 0 0 0 0 0 \
                 94233413079536 94233413379024 94233430745088 140731867434738 140731867434795 \
                 140731867434795 140731867434941 0\n",
                tid % 4000,
                tid % 300,
                tid % 200,
                tid / 10,
                tid % 2
            )
        }
    }

    fn task(dir: &Path, files: &[(&str, &[u8])]) {
        fs::create_dir_all(dir).expect("create task directory");
        for (name, content) in files {
            fs::write(dir.join(name), content).expect("write task file");
        }
    }

    fn write_patch(root: &Path) {
        let patch = root.join("sys/kernel/livepatch/big_patch");
        for func in ["vmlinux/ep_poll,1", "klp_blocker/klp_busy_sleeper,1"] {
            let dir = patch.join(func);
            fs::create_dir_all(&dir).expect("create function directory");
            fs::write(dir.join(".keep"), "").expect("write .keep");
        }
        for (file, content) in [
            ("enabled", "1\n"),
            ("transition", "1\n"),
            ("replace", "1\n"),
            ("stack_order", "1\n"),
            ("vmlinux/patched", "1\n"),
            ("klp_blocker/patched", "1\n"),
        ] {
            fs::write(patch.join(file), content).expect("write patch attribute");
        }
    }

    fn generate(root: &Path) {
        if root.exists() {
            fs::remove_dir_all(root).expect("remove the old tree");
        }
        write_patch(root);
        let proc_dir = root.join("proc");
        for k in 0..KWORKERS {
            let pid = kworker_pid(k);
            let comm = kworker_comm(k);
            let ps = if kworker_blocks(k) { "0\n" } else { "1\n" };
            let stat = stat(pid, &comm, 'S', 0, 69_238_880, 1, true);
            let comm_line = format!("{comm}\n");
            let files: &[(&str, &[u8])] = &[
                ("stat", stat.as_bytes()),
                ("comm", comm_line.as_bytes()),
                ("cmdline", b""),
                ("patch_state", ps.as_bytes()),
                ("stack", KSTACK.as_bytes()),
            ];
            task(&proc_dir.join(pid.to_string()), files);
            task(&proc_dir.join(format!("{pid}/task/{pid}")), files);
        }
        for proc in 0..PROCS {
            let pid = pid(proc);
            let state = if stopped(proc) { 'T' } else { 'S' };
            let cmdline = format!("/usr/bin/worker\0--id\0{proc}\0");
            for thread in 0..THREADS {
                let tid = pid + thread;
                let comm = if thread == 0 {
                    "worker".to_owned()
                } else {
                    format!("worker-{thread}")
                };
                let ps = if blocks(proc, thread) { "0\n" } else { "1\n" };
                let stat = stat(tid, &comm, state, pid, 4_194_304, THREADS, thread == 0);
                let comm_line = format!("{comm}\n");
                let files: &[(&str, &[u8])] = &[
                    ("stat", stat.as_bytes()),
                    ("comm", comm_line.as_bytes()),
                    ("cmdline", cmdline.as_bytes()),
                    ("patch_state", ps.as_bytes()),
                    ("stack", STACK.as_bytes()),
                ];
                if thread == 0 {
                    task(&proc_dir.join(pid.to_string()), files);
                }
                task(&proc_dir.join(format!("{pid}/task/{tid}")), files);
            }
        }
    }

    /// Names the generation rule; change it when `generate` changes.
    const STAMP: &str = "kgr-10k-threads v1: 100x100 threads, 10 kworkers\n";

    /// The tree, generated when missing or stale (writing its 50,000 files
    /// takes tens of seconds on a slow filesystem, so it is kept between
    /// runs in cargo's per-target temporary directory).
    pub fn root() -> &'static Path {
        static ROOT: OnceLock<PathBuf> = OnceLock::new();
        ROOT.get_or_init(|| {
            let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kgr-10k-threads");
            let stamp = root.join(".generated");
            if fs::read_to_string(&stamp).ok().as_deref() != Some(STAMP) {
                generate(&root);
                fs::write(&stamp, STAMP).expect("write the stamp");
            }
            root
        })
    }

    /// (tid, `-v` line) of every blocking thread, in tid order.
    pub fn blockers() -> Vec<(u32, String)> {
        let mut out: Vec<(u32, String)> = (0..KWORKERS)
            .filter(|k| kworker_blocks(*k))
            .map(|k| (kworker_pid(k), format!("[{}]", kworker_comm(k))))
            .collect();
        for proc in 0..PROCS {
            for thread in (0..THREADS).filter(|t| blocks(proc, *t)) {
                out.push((pid(proc) + thread, args(proc)));
            }
        }
        out.sort();
        out
    }
}

#[test]
fn ten_thousand_threads_blocking() {
    let root = big::root();
    let blockers = big::blockers();
    assert!(
        blockers.len() > 3000,
        "the generation rule should block a third of the threads"
    );
    let mut failures = Vec::new();

    let tids: String = blockers.iter().map(|(tid, _)| format!("{tid}\n")).collect();
    failures.extend(compare_stdout(root, &["blocking"], &tids, 0));

    let verbose: String = blockers
        .iter()
        .map(|(tid, cmd)| format!("{tid} {cmd}\n"))
        .collect();
    failures.extend(compare_stdout(root, &["blocking", "-v"], &verbose, 0));

    let status = format!(
        "in_progress\npatch: big_patch\ntarget: patched\nthreads left: {}\n",
        blockers.len()
    );
    failures.extend(compare_stdout(root, &["-v", "status"], &status, 0));
    failures.extend(compare_stdout(root, &["check"], "", 1));

    let poke: String = (0..big::PROCS)
        .filter(|p| !big::stopped(*p))
        .map(|p| format!("would send {} STOP/CONT\n", big::pid(p)))
        .collect();
    failures.extend(compare_stdout(root, &["poke"], &poke, 0));

    let out = run(Some(root), &["blocking", "--json"]);
    match serde_json::from_slice::<Value>(&out.stdout) {
        Ok(doc) => {
            let got: Vec<u64> = doc["threads"]
                .as_array()
                .map(|threads| threads.iter().filter_map(|t| t["tid"].as_u64()).collect())
                .unwrap_or_default();
            let want: Vec<u64> = blockers.iter().map(|(tid, _)| u64::from(*tid)).collect();
            if got != want {
                failures.push(format!(
                    "`blocking --json` on the 10k tree: {} tids, expected {}",
                    got.len(),
                    want.len()
                ));
            }
            if doc["transition"]["threads_left"].as_u64() != Some(blockers.len() as u64) {
                failures.push(format!(
                    "`blocking --json` on the 10k tree: threads_left is {}, expected {}",
                    doc["transition"]["threads_left"],
                    blockers.len()
                ));
            }
        }
        Err(e) => failures.push(format!(
            "`blocking --json` on the 10k tree is not JSON: {e}\n{}",
            describe(&["blocking", "--json"], &out)
        )),
    }
    report(failures);
}

/// `kgr blocking | head -1`: the reader goes away after one line; kgr
/// exits 0 and says nothing.
#[test]
fn closed_pipe_after_the_first_line_is_success() {
    let root = big::root();
    // -vv: about 300 KiB, far more than a pipe buffers, so kgr is still
    // writing when the reader closes.
    let args = ["--root", path_str(root), "blocking", "-vv"];
    let mut child = Command::new(env!("CARGO_BIN_EXE_kgr"))
        .args(args)
        .env("LC_ALL", "C")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kgr");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout is piped"));
    let mut first = String::new();
    reader.read_line(&mut first).expect("read the first line");
    drop(reader);
    let out = child.wait_with_output().expect("wait for kgr");
    let first_tid = big::blockers()
        .first()
        .map(|(tid, _)| *tid)
        .unwrap_or_default();
    assert!(
        first.starts_with(&format!("{first_tid} ")),
        "first line: {first:?}"
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "closed pipe\n{}",
        describe(&args, &out)
    );
    assert_eq!(stderr(&out), "", "closed pipe\n{}", describe(&args, &out));
}

/// The reader is gone before kgr writes anything.
#[test]
fn closed_pipe_before_the_first_write_is_success() {
    let root = big::root();
    for cmd in [
        &["blocking"][..],
        &["-v", "blocking"],
        &["patches"],
        &["status"],
    ] {
        let mut args = vec!["--root", path_str(root)];
        args.extend_from_slice(cmd);
        let mut child = Command::new(env!("CARGO_BIN_EXE_kgr"))
            .args(&args)
            .env("LC_ALL", "C")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kgr");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait for kgr");
        assert_eq!(
            out.status.code(),
            Some(0),
            "closed pipe\n{}",
            describe(&args, &out)
        );
        assert_eq!(stderr(&out), "", "closed pipe\n{}", describe(&args, &out));
    }
}

/// Under `--root`, poke is a dry run: a live child of this test, listed as
/// blocking in the tree, is neither stopped nor continued.
#[test]
fn poke_under_root_signals_nothing() {
    use rustix::process::{waitpid, Pid, WaitOptions};

    let mut child = Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("spawn sleep");
    let pid = child.id();
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kgr-poke-dry-run");
    if root.exists() {
        fs::remove_dir_all(&root).expect("remove the old tree");
    }
    let patch = root.join("sys/kernel/livepatch/livepatch_test");
    fs::create_dir_all(patch.join("vmlinux/do_nanosleep,1")).expect("create patch");
    fs::write(patch.join("enabled"), "1\n").expect("write enabled");
    fs::write(patch.join("transition"), "1\n").expect("write transition");
    let stat = format!(
        "{pid} (sleep) S 1 {pid} {pid} 0 -1 4194304 90 0 0 0 0 0 0 0 20 0 1 0 5000 2306048 \
         256 18446744073709551615 94544221450240 94544221466369 140727064385472 0 0 0 0 0 0 1 \
         0 0 17 1 0 0 0 0 0 94544221478896 94544221480480 94544252583936 140727064392406 \
         140727064392415 140727064392415 140727064395755 0\n"
    );
    for dir in [format!("proc/{pid}"), format!("proc/{pid}/task/{pid}")] {
        let dir = root.join(dir);
        fs::create_dir_all(&dir).expect("create task directory");
        fs::write(dir.join("stat"), &stat).expect("write stat");
        fs::write(dir.join("comm"), "sleep\n").expect("write comm");
        fs::write(dir.join("cmdline"), "sleep\x0060\x00").expect("write cmdline");
        fs::write(dir.join("patch_state"), "0\n").expect("write patch_state");
    }

    let out = run(Some(&root), &["poke"]);
    // kgr has exited: a STOP/CONT it sent has been delivered by now.
    let seen = waitpid(
        Some(Pid::from_child(&child)),
        WaitOptions::NOHANG | WaitOptions::UNTRACED | WaitOptions::CONTINUED,
    );
    let _ = child.kill();
    let _ = child.wait();
    let mut failures = Vec::new();
    check_output(
        &["--root", "<tree>", "poke"],
        &out,
        &format!("would send {pid} STOP/CONT\n"),
        0,
        &mut failures,
    );
    report(failures);
    assert!(
        matches!(seen, Ok(None)),
        "poke under --root signalled the live process {pid}: {seen:?}"
    );
}

// ---------------------------------------------------------------- machinery

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixture_dir(name: &str) -> PathBuf {
    fixtures().join(name)
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("paths are UTF-8")
}

fn expected_files(fixture: &str) -> BTreeSet<String> {
    let dir = fixture_dir(fixture).join("expected");
    fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn read_expected(fixture: &Path, file: &str) -> String {
    if file == CHECK_OUT {
        return String::new();
    }
    let path = fixture.join("expected").join(file);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Runs kgr, with `--root <root>` first when a root is given.
fn run(root: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kgr"));
    if let Some(root) = root {
        cmd.arg("--root").arg(root);
    }
    cmd.args(args)
        .env("LC_ALL", "C")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .output()
        .expect("run kgr")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn describe(args: &[&str], out: &Output) -> String {
    let mut text = format!(
        "$ kgr {}\nexit status: {:?}\n",
        args.join(" "),
        out.status.code()
    );
    let err = stderr(out);
    if !err.is_empty() {
        let _ = writeln!(text, "stderr:\n{}", indent(&err));
    }
    text
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  | {l}\n")).collect()
}

fn diff(expected: &str, actual: &str) -> String {
    let diff = similar::TextDiff::from_lines(expected, actual);
    let mut text = diff
        .unified_diff()
        .context_radius(4)
        .header("expected", "actual")
        .to_string();
    if text.is_empty() {
        text = format!("(no line differs)\nexpected: {expected:?}\nactual:   {actual:?}\n");
    }
    text
}

fn report(failures: Vec<String>) {
    if !failures.is_empty() {
        let mut text = format!("{} mismatch(es):\n", failures.len());
        for failure in &failures {
            let _ = writeln!(text, "\n{failure}");
        }
        panic!("{text}");
    }
}

/// Runs `kgr --root <root> args` and compares stdout and exit status.
fn compare_stdout(root: &Path, args: &[&str], expected: &str, code: i32) -> Vec<String> {
    let out = run(Some(root), args);
    let mut shown = vec!["--root", "<root>"];
    shown.extend_from_slice(args);
    let mut failures = Vec::new();
    check_output(&shown, &out, expected, code, &mut failures);
    failures
}

fn check_output(
    args: &[&str],
    out: &Output,
    expected: &str,
    code: i32,
    failures: &mut Vec<String>,
) {
    let actual = stdout(out);
    let err = stderr(out);
    let mut problems = String::new();
    if out.status.code() != Some(code) {
        let _ = writeln!(
            problems,
            "exit status {:?}, expected {code}",
            out.status.code()
        );
    }
    if actual != expected {
        let _ = write!(problems, "stdout differs:\n{}", diff(expected, &actual));
    }
    if err.contains("panicked") {
        problems.push_str("kgr panicked\n");
    }
    // Without -v a successful run has nothing to say on stderr; poke may
    // warn about running as non-root.
    let verbose = args
        .iter()
        .any(|a| a.starts_with("-v") || *a == "--verbose");
    let poke = args.contains(&"poke");
    if code != 2 && !verbose && !poke && !err.is_empty() {
        problems.push_str("unexpected stderr\n");
    }
    if !problems.is_empty() {
        failures.push(format!("{}{problems}", describe(args, out)));
    }
}

fn well_formed(name: &str) {
    let fixture = WELL_FORMED
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("{name} is not in WELL_FORMED"));
    let dir = fixture_dir(name);
    let mut failures = Vec::new();
    for (args, file) in STANDARD {
        if fixture.skip.contains(file) {
            continue;
        }
        let code = if args.contains(&"check") && fixture.in_progress {
            1
        } else {
            0
        };
        if file.ends_with(".json") {
            failures.extend(compare_json(&dir, args, file, code));
        } else {
            let expected = read_expected(&dir, file);
            failures.extend(compare_stdout(&dir, args, &expected, code));
        }
    }
    report(failures);
}

fn compare_json(root: &Path, args: &[&str], file: &str, code: i32) -> Vec<String> {
    let path = root.join("expected").join(file);
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let expected: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    let out = run(Some(root), args);
    let mut shown = vec!["--root", "<root>"];
    shown.extend_from_slice(args);
    let mut problems = String::new();
    if out.status.code() != Some(code) {
        let _ = writeln!(
            problems,
            "exit status {:?}, expected {code}",
            out.status.code()
        );
    }
    match serde_json::from_slice::<Value>(&out.stdout) {
        Ok(actual) => {
            let mut mismatches = Vec::new();
            json_includes(&expected, &actual, "$", &mut mismatches);
            if !mismatches.is_empty() {
                let _ = writeln!(problems, "JSON differs from expected/{file}:");
                for m in &mismatches {
                    let _ = writeln!(problems, "  {m}");
                }
                let pretty = serde_json::to_string_pretty(&actual).unwrap_or_default();
                let _ = writeln!(problems, "actual document:\n{}", indent(&pretty));
            }
        }
        Err(e) => {
            let _ = writeln!(
                problems,
                "stdout is not one JSON document ({e}):\n{}",
                indent(&stdout(&out))
            );
        }
    }
    if !problems.is_empty() {
        return vec![format!("{}{problems}", describe(&shown, &out))];
    }
    Vec::new()
}

/// `actual` has everything `expected` has (see the module comment for the
/// matchers).
fn json_includes(expected: &Value, actual: &Value, path: &str, out: &mut Vec<String>) {
    if let Some((matcher, arg)) = as_matcher(expected) {
        match_special(matcher, arg, actual, path, out);
        return;
    }
    match (expected, actual) {
        (Value::Object(want), Value::Object(got)) => {
            for (key, value) in want {
                let here = format!("{path}.{key}");
                match got.get(key) {
                    Some(v) => json_includes(value, v, &here, out),
                    None if is_absent_matcher(value) => {}
                    None => out.push(format!("{here}: missing, expected {value}")),
                }
            }
        }
        (Value::Array(want), Value::Array(got)) => {
            if want.len() != got.len() {
                out.push(format!(
                    "{path}: {} elements, expected {}",
                    got.len(),
                    want.len()
                ));
            }
            for (i, (w, g)) in want.iter().zip(got).enumerate() {
                json_includes(w, g, &format!("{path}[{i}]"), out);
            }
        }
        _ if expected == actual => {}
        _ => out.push(format!("{path}: {actual}, expected {expected}")),
    }
}

fn as_matcher(value: &Value) -> Option<(&str, &Value)> {
    let map = value.as_object()?;
    let (key, arg) = map.iter().next()?;
    (map.len() == 1 && key.starts_with('$')).then_some((key.as_str(), arg))
}

fn is_absent_matcher(value: &Value) -> bool {
    matches!(as_matcher(value), Some(("$absent", _)))
}

fn match_special(matcher: &str, arg: &Value, actual: &Value, path: &str, out: &mut Vec<String>) {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let ok = match matcher {
        "$absent" => actual.is_null(),
        "$one_of" => arg
            .as_array()
            .is_some_and(|options| options.contains(actual)),
        "$args" => {
            let args = strings(arg);
            match actual {
                Value::String(s) => *s == args.join(" "),
                Value::Array(_) => {
                    strings(actual) == args && actual.as_array().map(Vec::len) == Some(args.len())
                }
                _ => false,
            }
        }
        "$frames" => {
            let frames = strings(arg);
            actual.as_array().is_some_and(|got| {
                got.len() == frames.len()
                    && got.iter().zip(&frames).all(|(g, f)| frame_matches(g, f))
            })
        }
        other => panic!("unknown matcher {other} at {path}"),
    };
    if !ok {
        out.push(format!("{path}: {actual}, expected {matcher} {arg}"));
    }
}

/// A frame as `/proc/<pid>/task/<tid>/stack` gives it (`[<0>] fn+0x1/0x2
/// [mod]`), with or without the `[<0>] ` prefix; or an object that names
/// the function.
fn frame_matches(actual: &Value, verbatim: &str) -> bool {
    let bare = verbatim.strip_prefix("[<0>] ").unwrap_or(verbatim);
    let function = bare.split('+').next().unwrap_or(bare);
    match actual {
        Value::String(s) => s == verbatim || s == bare,
        Value::Object(_) => actual.to_string().contains(&format!("\"{function}\"")),
        _ => false,
    }
}

fn errors(name: &str) -> Vec<String> {
    let dir = fixture_dir(name);
    let bless = std::env::var_os("KGR_BLESS").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for case in ERRORS.iter().filter(|e| e.fixture == name) {
        let out = run(Some(&dir), case.args);
        let mut shown = vec!["--root", "<root>"];
        shown.extend_from_slice(case.args);
        let err = stderr(&out).replace(path_str(&dir), "<root>");
        let mut problems = String::new();
        if out.status.code() != Some(case.code) {
            let _ = writeln!(
                problems,
                "exit status {:?}, expected {}",
                out.status.code(),
                case.code
            );
        }
        if !out.stdout.is_empty() {
            let _ = writeln!(problems, "stdout is not empty:\n{}", indent(&stdout(&out)));
        }
        let lines: Vec<&str> = err.lines().collect();
        let shape_ok = lines.len() == 1
            && lines[0].starts_with("kgr: ")
            && !err.contains("panicked")
            && case.mentions.iter().all(|m| lines[0].contains(m));
        if !shape_ok {
            let _ = writeln!(
                problems,
                "stderr is not one line `kgr: <what failed>: <why>` mentioning {:?}",
                case.mentions
            );
        }
        let err_path = dir.join("expected").join(case.err);
        if shape_ok && problems.is_empty() {
            match fs::read_to_string(&err_path) {
                Ok(expected) if expected == err => {}
                _ if bless => {
                    fs::create_dir_all(dir.join("expected")).expect("create expected/");
                    fs::write(&err_path, &err).expect("write .err file");
                }
                Ok(expected) => {
                    let _ = write!(
                        problems,
                        "stderr differs from expected/{}:\n{}",
                        case.err,
                        diff(&expected, &err)
                    );
                }
                Err(_) => {
                    let _ = writeln!(
                        problems,
                        "expected/{} is missing: run with KGR_BLESS=1",
                        case.err
                    );
                }
            }
        }
        if !problems.is_empty() {
            failures.push(format!("{}{problems}", describe(&shown, &out)));
        }
    }
    failures
}
