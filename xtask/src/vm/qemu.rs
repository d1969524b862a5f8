//! Booting the lab guest: qemu (TCG) under a hard timeout, serial console
//! captured to a log file, lines handed to the caller as they come.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::artifact::{self, Artifacts};
use super::setup::{initramfs_path, vmlinuz};
use super::{host_checks, progress, Kernel, Lab};

/// The guest ran: its serial lines, how qemu ended, where the log is.
struct Run {
    lines: Vec<String>,
    timed_out: bool,
    log: PathBuf,
    secs: f64,
    /// The files the guest handed out (their lines are not in `lines`).
    artifacts: Artifacts,
}

/// Guest memory of the test and demo boots.
const MEMORY: &str = "1G";

/// Boots kernel `k` with `kgrlab_mode=mode` (and `append`, more kernel
/// parameters), `memory` of RAM, at most `timeout` seconds; `on_line` sees
/// each serial line (carriage returns stripped).
fn boot(
    lab: &Lab,
    k: Kernel,
    mode: &str,
    (memory, append): (&str, &str),
    timeout: u64,
    mut on_line: impl FnMut(&str),
) -> Result<Run> {
    let (kernel, version) = vmlinuz(lab, k)?;
    let initrd = initramfs_path(lab, k);
    let log = lab.cache.join(format!("{mode}-{}.log", k.key));
    let errlog = lab.cache.join(format!("{mode}-{}.qemu-stderr", k.key));
    progress(&format!(
        "booting kernel {} ({version}) in qemu (TCG), {mode}; serial log: {}",
        k.key,
        rel(lab, &log)
    ));
    let mut child = Command::new("timeout")
        .args(["-k", "5", &timeout.to_string(), "qemu-system-x86_64"])
        .args(["-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", memory])
        .args(["-nographic", "-no-reboot", "-nic", "none"])
        .arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(&initrd)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 panic=-1 loglevel=3 kgrlab_mode={mode}{}{append}",
            if append.is_empty() { "" } else { " " }
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(&errlog).with_context(|| format!("creating {}", errlog.display()))?)
        .spawn()
        .context("running timeout qemu-system-x86_64")?;
    let started = Instant::now();
    let mut logf = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut lines = Vec::new();
    let mut artifacts = Artifacts::default();
    if let Some(out) = child.stdout.take() {
        let mut r = BufReader::new(out);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if r.read_until(b'\n', &mut buf)? == 0 {
                break;
            }
            logf.write_all(&buf)?;
            let line = String::from_utf8_lossy(&buf);
            let line = strip_escapes(line.trim_end_matches(['\n', '\r']));
            if artifacts.take(&line) {
                continue;
            }
            on_line(&line);
            lines.push(line);
        }
    }
    let status = child.wait()?;
    let secs = started.elapsed().as_secs_f64();
    let timed_out = matches!(status.code(), Some(124 | 137));
    if !status.success() && !timed_out {
        let err = std::fs::read_to_string(&errlog).unwrap_or_default();
        eprintln!("vm: qemu ended with {status}: {}", err.trim());
    }
    Ok(Run {
        lines,
        timed_out,
        log,
        secs,
        artifacts,
    })
}

/// A serial line without carriage returns and terminal escape sequences
/// (the firmware clears the screen).
fn strip_escapes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {}
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    // CSI: parameters, then one final byte in @..~
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn rel(lab: &Lab, p: &Path) -> String {
    p.strip_prefix(&lab.root).unwrap_or(p).display().to_string()
}

fn print_tail(lab: &Lab, run: &Run, n: usize) {
    eprintln!("vm: last lines of {}:", rel(lab, &run.log));
    for l in &run.lines[run.lines.len().saturating_sub(n)..] {
        eprintln!("    {l}");
    }
}

/// `N passed, N failed` in a line.
fn result_line(line: &str) -> Option<(u32, u32)> {
    let w: Vec<&str> = line.split_whitespace().collect();
    match w.as_slice() {
        [p, "passed,", f, "failed"] => Some((p.parse().ok()?, f.parse().ok()?)),
        _ => None,
    }
}

/// Runs the scenarios on kernel `k`: (passed, failed).
pub fn test(lab: &Lab, k: Kernel, timeout: u64) -> Result<(u32, u32)> {
    let tag = k.key;
    let mut run = boot(lab, k, "test", (MEMORY, ""), timeout, |l| {
        if l.starts_with("PASS ") || l.starts_with("FAIL ") || l.starts_with("lab: ") {
            println!("vm {tag}: {l}");
        }
    })?;
    let fails = run.lines.iter().filter(|l| l.starts_with("FAIL ")).count();
    let result = run.lines.iter().rev().find_map(|l| result_line(l));
    let Some((passed, failed)) = result else {
        print_tail(lab, &run, 40);
        if run.timed_out {
            bail!("the guest timed out after {timeout} s without a result line");
        }
        bail!("the guest printed no `N passed, N failed` line");
    };
    let failed = failed.max(u32::try_from(fails).unwrap_or(u32::MAX));
    let dir = artifact::dir(&lab.cache, tag);
    let broken = run.artifacts.save(&dir)?;
    for b in &broken {
        println!("vm {tag}: broken artifact {b}");
    }
    println!(
        "vm {tag}: guest {passed} passed, {failed} failed; artifacts in {}",
        rel(lab, &dir)
    );
    let (hp, hf) = host_checks::run(lab, &dir, |l| println!("vm {tag}: {l}"));
    let (passed, failed) = (passed + hp, failed + hf);
    println!(
        "vm {tag}: {passed} passed, {failed} failed ({:.0} s; log {})",
        run.secs,
        rel(lab, &run.log)
    );
    Ok((passed, failed))
}

/// The demo on kernel `k`: prints the guest's demo section; fails when a
/// piece is missing.
pub fn demo(lab: &Lab, k: Kernel) -> Result<()> {
    let mut on = false;
    let run = boot(lab, k, "demo", (MEMORY, ""), 240, |l| {
        if let Some(m) = l.strip_prefix("lab: ") {
            progress(m);
        }
        if l == "---- demo ----" {
            on = true;
            println!();
            return;
        }
        if l == "---- end ----" {
            on = false;
            return;
        }
        if on {
            println!("{l}");
        }
    })?;
    let lines = &run.lines;
    let after = |from: usize, pred: &dyn Fn(&str) -> bool| -> Option<usize> {
        lines
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, l)| pred(l))
            .map(|(i, _)| i)
    };
    let check = || -> Option<()> {
        let start = after(0, &|l| l == "---- demo ----")?;
        let s1 = after(start, &|l| l == "$ kgr status")?;
        after(s1 + 1, &|l| l == "in_progress").filter(|&i| i == s1 + 1)?;
        let b = after(s1, &|l| l == "$ kgr -vv blocking")?;
        let kstack = after(b, &|l| l.contains("klp_busy_sleeper"))?;
        let p = after(b, &|l| l == "$ kgr poke -v")?;
        if kstack > p {
            return None;
        }
        after(p, &|l| l.starts_with("sending "))?;
        let r = after(p, &|l| {
            l.starts_with("$ echo 1 > /proc/klp_blocker/release")
        })?;
        let s2 = after(r, &|l| l == "$ kgr status")?;
        after(s2 + 1, &|l| l == "ready").filter(|&i| i == s2 + 1)?;
        after(s2, &|l| l == "---- end ----")?;
        Some(())
    };
    if check().is_none() {
        print_tail(lab, &run, 40);
        bail!(
            "the demo output lacks an expected piece (in_progress, the kthread's stack, a poke, ready at the end){}",
            if run.timed_out { "; the guest timed out" } else { "" }
        );
    }
    progress(&format!(
        "demo done ({:.0} s in the guest; log {})",
        run.secs,
        rel(lab, &run.log)
    ));
    Ok(())
}

/// What a benchmark boot printed: every serial line, whether the time ran
/// out, the serial log, how long the guest ran.
pub struct BenchRun {
    pub lines: Vec<String>,
    pub timed_out: bool,
    pub log: PathBuf,
    pub secs: f64,
}

/// Boots kernel `k` with `kgrlab_mode=bench` and the benchmark's own
/// `memory`, kernel parameters `append` and `timeout`; `on_line` sees each
/// serial line.
pub fn bench(
    lab: &Lab,
    k: Kernel,
    memory: &str,
    append: &str,
    timeout: u64,
    on_line: impl FnMut(&str),
) -> Result<BenchRun> {
    let run = boot(lab, k, "bench", (memory, append), timeout, on_line)?;
    Ok(BenchRun {
        lines: run.lines,
        timed_out: run.timed_out,
        log: run.log,
        secs: run.secs,
    })
}
