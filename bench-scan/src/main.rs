//! Reference (b) of the kgr benchmark (issue 5): the straightforward
//! single-threaded Rust rewrite of the shell scan. Finds the patch in
//! transition and its target in sysfs, reads every
//! `/proc/<pid>/task/<tid>/patch_state` with `std::fs`, and prints the tids
//! whose state is neither -1 nor the target, ascending.
//!
//! `bench-scan [--root DIR]`: read DIR/sys and DIR/proc instead (the host
//! bench points DIR/proc at the real /proc).

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn target(sys: &Path) -> io::Result<Option<String>> {
    for patch in fs::read_dir(sys.join("kernel/livepatch"))? {
        let patch = patch?.path();
        let Ok(transition) = fs::read_to_string(patch.join("transition")) else {
            continue;
        };
        if transition.trim() == "1" {
            return Ok(Some(
                fs::read_to_string(patch.join("enabled"))?.trim().to_owned(),
            ));
        }
    }
    Ok(None)
}

fn is_pid(name: &std::ffi::OsStr) -> bool {
    name.to_str()
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn scan(root: &Path) -> io::Result<Vec<u32>> {
    let Some(target) = target(&root.join("sys"))? else {
        return Ok(Vec::new());
    };
    let mut blocking = Vec::new();
    for process in fs::read_dir(root.join("proc"))? {
        let process = process?;
        if !is_pid(&process.file_name()) {
            continue;
        }
        let Ok(tasks) = fs::read_dir(process.path().join("task")) else {
            continue; // exited
        };
        for task in tasks {
            let Ok(task) = task else { continue };
            let Ok(state) = fs::read_to_string(task.path().join("patch_state")) else {
                continue; // exited, or no live patching
            };
            let state = state.trim();
            if state != "-1" && state != target {
                if let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) {
                    blocking.push(tid);
                }
            }
        }
    }
    blocking.sort_unstable();
    Ok(blocking)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = match args.as_slice() {
        [] => PathBuf::from("/"),
        [flag, dir] if flag == "--root" => PathBuf::from(dir),
        _ => {
            eprintln!("usage: bench-scan [--root DIR]");
            return ExitCode::from(2);
        }
    };
    match scan(&root) {
        Ok(tids) => {
            let mut out = BufWriter::new(io::stdout().lock());
            for tid in tids {
                if writeln!(out, "{tid}").is_err() {
                    break;
                }
            }
            let _ = out.flush();
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("bench-scan: {err}");
            ExitCode::FAILURE
        }
    }
}
