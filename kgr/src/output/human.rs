//! The human output. Default layouts are the compat.md contract, byte for byte.

use std::io::{self, Write};

use crate::commands::blocking::BlockingReport;
use crate::commands::patches::{PatchEntry, PatchesReport};
use crate::commands::poke::{PokeAction, PokeReport};
use crate::commands::status::StatusReport;
use crate::sources::capture::CaptureSummary;
use crate::sources::package::{Manager, PackageInfo};

/// `status`: one line; `-v` adds the transition's facts.
pub fn status<W: Write>(out: &mut W, report: &StatusReport, verbose: u8) -> io::Result<()> {
    writeln!(out, "{}", report.status)?;
    if verbose == 0 {
        return Ok(());
    }
    if let Some(t) = &report.transition {
        if let Some(patch) = &t.patch {
            writeln!(out, "patch: {patch}")?;
        }
        if let Some(target) = t.target {
            writeln!(out, "target: {}", target.as_str())?;
        }
        if let Some(left) = t.threads_left {
            writeln!(out, "threads left: {left}")?;
        }
        if let Some(elapsed) = t.elapsed_s {
            writeln!(out, "elapsed: {elapsed:.0}s")?;
        }
    }
    Ok(())
}

/// `check`: silent; `-v` prints the status line, `-vv` what `status -v` prints.
pub fn check<W: Write>(out: &mut W, report: &StatusReport, verbose: u8) -> io::Result<()> {
    match verbose {
        0 => Ok(()),
        v => status(out, report, v - 1),
    }
}

/// `patches`: names; `-v` blocks with package facts; `-vv` kernel facts too.
pub fn patches<W: Write>(out: &mut W, report: &PatchesReport, verbose: u8) -> io::Result<()> {
    for (i, entry) in report.patches.iter().enumerate() {
        if verbose > 0 && i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "{}", entry.patch.name)?;
        if verbose > 0 {
            patch_block(out, entry, verbose)?;
        }
    }
    Ok(())
}

fn patch_block<W: Write>(out: &mut W, entry: &PatchEntry, verbose: u8) -> io::Result<()> {
    let patch = &entry.patch;
    writeln!(out, "    active: {}", u8::from(patch.enabled))?;
    if patch.enabled {
        if let Some(package) = &entry.package {
            package_lines(out, package)?;
        }
    }
    if verbose < 2 {
        return Ok(());
    }
    writeln!(out, "    transition: {}", u8::from(patch.transition))?;
    if let Some(replace) = patch.replace {
        writeln!(out, "    replace: {}", u8::from(replace))?;
    }
    if let Some(order) = patch.stack_order {
        writeln!(out, "    stack order: {order}")?;
    }
    for object in &patch.objects {
        let patched = match object.patched {
            Some(true) => " (patched)",
            Some(false) => " (not patched)",
            None => "",
        };
        writeln!(out, "    object: {}{patched}", object.name)?;
        for function in &object.functions {
            writeln!(out, "        {},{}", function.name, function.sympos)?;
        }
    }
    Ok(())
}

fn package_lines<W: Write>(out: &mut W, package: &PackageInfo) -> io::Result<()> {
    let key = match package.manager {
        Manager::Rpm => "RPM",
        Manager::Dpkg => "package",
    };
    writeln!(out, "    {key}: {}", package.name)?;
    let refs = |list: &[String]| {
        if !list.is_empty() {
            list.join(" ")
        } else if package.initial {
            "(none - this is an initial kernel live patch)".to_owned()
        } else {
            "(none)".to_owned()
        }
    };
    writeln!(out, "    CVE: {}", refs(&package.cves))?;
    writeln!(
        out,
        "    bug fixes and enhancements: {}",
        refs(&package.bugs)
    )
}

/// `blocking`: tids; `-v` with command lines; `-vv` with kernel stacks.
pub fn blocking<W: Write>(out: &mut W, report: &BlockingReport, verbose: u8) -> io::Result<()> {
    if report.threads.is_empty() {
        if verbose > 0 {
            writeln!(out, "no threads with klp_in_progress set")?;
        }
        return Ok(());
    }
    if report.why {
        return blocking_why(out, report);
    }
    for thread in &report.threads {
        if verbose == 0 {
            writeln!(out, "{}", thread.tid)?;
            continue;
        }
        writeln!(out, "{} {}", thread.tid, thread.display_cmdline())?;
        if verbose > 1 {
            for frame in thread.stack.iter().flatten() {
                writeln!(out, "    {frame}")?;
            }
        }
    }
    Ok(())
}

/// `blocking --why`: one row per thread, columns as wide as their widest cell.
fn blocking_why<W: Write>(out: &mut W, report: &BlockingReport) -> io::Result<()> {
    const HEADER: [&str; 9] = [
        "TID",
        "COMM",
        "S",
        "FUNCTION",
        "REASON",
        "SYSCALL",
        "IN-KERNEL",
        "POKE",
        "SOURCE",
    ];
    let rows: Vec<[String; 9]> = report
        .threads
        .iter()
        .map(|t| {
            let dash = || "-".to_owned();
            let why = t.why.as_ref();
            [
                t.tid.to_string(),
                if t.kthread {
                    format!("[{}]", t.comm)
                } else {
                    t.comm.clone()
                },
                t.state.0.to_string(),
                why.and_then(|w| w.function.clone()).unwrap_or_else(dash),
                why.map_or_else(dash, |w| w.reason.as_str().to_owned()),
                why.and_then(|w| w.syscall.clone()).unwrap_or_else(dash),
                why.and_then(|w| w.in_kernel_s)
                    .map_or_else(dash, |s| format!("{s:.1}s")),
                why.map_or_else(dash, |w| if w.pokeable { "yes" } else { "no" }.to_owned()),
                why.map_or_else(dash, |w| w.source.as_str().to_owned()),
            ]
        })
        .collect();
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else if i == 0 {
                // Ids right-aligned, as ps does.
                text.push_str(&format!("{cell:>w$}  "));
            } else {
                text.push_str(&format!("{cell:<w$}  "));
            }
        }
        text
    };
    writeln!(out, "{}", line(&HEADER))?;
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        writeln!(out, "{}", line(&cells))?;
    }
    Ok(())
}

/// `poke`: `-v` one line per process; a dry run always says what it would send.
pub fn poke<W: Write>(out: &mut W, report: &PokeReport, verbose: u8) -> io::Result<()> {
    for action in &report.actions {
        match action {
            PokeAction::Send(pid) if report.dry_run => writeln!(out, "would send {pid} STOP/CONT")?,
            PokeAction::Send(pid) if verbose > 0 => writeln!(out, "sending {pid} STOP/CONT")?,
            PokeAction::Skip(skip) if verbose > 0 => {
                writeln!(out, "skipping {} ({})", skip.pid, skip.reason.as_str())?
            }
            _ => {}
        }
    }
    Ok(())
}

/// `snapshot`: where it went, how big, what could not be read.
pub fn snapshot<W: Write>(out: &mut W, report: &CaptureSummary) -> io::Result<()> {
    writeln!(
        out,
        "wrote {}: {} threads, {} files, {:.1} KiB",
        report.path.display(),
        report.threads,
        report.files,
        report.bytes as f64 / 1024.0
    )?;
    if !report.unreadable.is_empty() {
        writeln!(
            out,
            "{} files could not be read (listed in kgr-snapshot/unreadable.txt), e.g. {}",
            report.unreadable.len(),
            report.unreadable[0]
        )?;
    }
    Ok(())
}
