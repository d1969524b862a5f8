//! Offline snapshots: what kgr reads, captured into one `.tar.gz`, and read
//! back as a `--root`.

use std::fs::{self, File};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::Serialize;

use super::Root;

/// Per-process and per-thread files captured (those kgr reads, and what a
/// support engineer wants beside them).
const TASK_FILES: &[&str] = &[
    "patch_state",
    "kgr_in_progress",
    "comm",
    "cmdline",
    "stat",
    "status",
    "stack",
    "syscall",
    "wchan",
];

/// Where kgr's own notes go inside the archive.
const META_DIR: &str = "kgr-snapshot";

/// Kernel config options that matter for live patching and eBPF.
const CONFIG_KEYS: &[&str] = &[
    "CONFIG_LIVEPATCH",
    "CONFIG_HAVE_RELIABLE_STACKTRACE",
    "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS",
    "CONFIG_DEBUG_INFO_BTF",
    "CONFIG_BPF_SYSCALL",
    "CONFIG_KPROBES",
    "CONFIG_STACKTRACE",
    "CONFIG_MODULE_SIG_FORCE",
];

/// What a snapshot holds.
#[derive(Debug, Serialize)]
pub struct CaptureSummary {
    pub path: PathBuf,
    pub bytes: u64,
    pub files: usize,
    pub threads: usize,
    /// Files that could not be read, with why (also inside the archive).
    pub unreadable: Vec<String>,
}

struct Writer {
    tar: tar::Builder<GzEncoder<File>>,
    files: usize,
    unreadable: Vec<String>,
}

impl Writer {
    fn add(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o444);
        header.set_entry_type(tar::EntryType::Regular);
        self.tar
            .append_data(&mut header, name, data)
            .with_context(|| format!("writing {name} into the snapshot"))?;
        self.files += 1;
        Ok(())
    }

    fn add_dir(&mut self, name: &str) -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(0);
        header.set_mode(0o755);
        header.set_entry_type(tar::EntryType::Directory);
        self.tar
            .append_data(&mut header, format!("{name}/"), io::empty())
            .with_context(|| format!("writing {name} into the snapshot"))
    }

    /// Copies one file; a missing file is skipped (`None`), any other failure noted.
    fn copy(&mut self, source: &Path, name: &str) -> Result<Option<Vec<u8>>> {
        match fs::read(source) {
            Ok(data) => {
                self.add(name, &data)?;
                Ok(Some(data))
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => {
                self.unreadable.push(format!("{name}: {err}"));
                Ok(None)
            }
        }
    }
}

/// Captures the live-patching state under `root` into `out` (gzip'd tar).
pub fn capture(root: &Root, out: &Path) -> Result<CaptureSummary> {
    let file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = Writer {
        tar: tar::Builder::new(GzEncoder::new(file, Compression::default())),
        files: 0,
        unreadable: Vec::new(),
    };
    let mut functions = Vec::new();
    for tree in ["kernel/livepatch", "kernel/kgraft"] {
        copy_tree(
            &mut w,
            &root.sys(tree),
            &format!("sys/{tree}"),
            &mut functions,
        )?;
    }
    let threads = copy_tasks(&mut w, root)?;
    copy_kallsyms(&mut w, root, &functions)?;
    for file in ["sys/kernel/osrelease", "version", "cmdline"] {
        w.copy(&root.proc().join(file), &format!("proc/{file}"))?;
    }
    copy_config(&mut w, root)?;

    let mut notes = w.unreadable.join("\n");
    if !notes.is_empty() {
        notes.push('\n');
    }
    w.add(&format!("{META_DIR}/unreadable.txt"), notes.as_bytes())?;
    let meta = serde_json::json!({
        "kgr_version": env!("CARGO_PKG_VERSION"),
        "threads": threads,
        "files": w.files,
        "unreadable": w.unreadable.len(),
    });
    w.add(
        &format!("{META_DIR}/meta.json"),
        meta.to_string().as_bytes(),
    )?;
    let Writer {
        tar,
        files,
        unreadable,
    } = w;
    let encoder = tar.into_inner().context("finishing the snapshot archive")?;
    let file = encoder.finish().context("compressing the snapshot")?;
    file.sync_all()
        .with_context(|| format!("writing {}", out.display()))?;
    let bytes = fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    Ok(CaptureSummary {
        path: out.to_path_buf(),
        bytes,
        files,
        threads,
        unreadable,
    })
}

/// Copies a sysfs tree; collects patched function names (`name,sympos` dirs).
fn copy_tree(w: &mut Writer, dir: &Path, name: &str, functions: &mut Vec<String>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => {
            w.unreadable.push(format!("{name}: {err}"));
            return Ok(());
        }
    };
    w.add_dir(name)?;
    let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let child = format!("{name}/{file_name}");
        if path.is_dir() {
            if let Some((function, _)) = file_name.rsplit_once(',') {
                functions.push(function.to_owned());
            }
            copy_tree(w, &path, &child, functions)?;
        } else {
            w.copy(&path, &child)?;
        }
    }
    Ok(())
}

fn numeric_dirs(dir: &Path) -> Vec<(u32, PathBuf)> {
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path())))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Copies every process's and thread's files; returns the thread count.
fn copy_tasks(w: &mut Writer, root: &Root) -> Result<usize> {
    let progress = io::stderr().is_terminal();
    let mut threads = 0;
    for (pid, pdir) in numeric_dirs(&root.proc()) {
        let mut seen = false;
        for file in TASK_FILES {
            seen |= w
                .copy(&pdir.join(file), &format!("proc/{pid}/{file}"))?
                .is_some();
        }
        if !seen {
            continue; // exited before we looked
        }
        for (tid, tdir) in numeric_dirs(&pdir.join("task")) {
            for file in TASK_FILES {
                w.copy(&tdir.join(file), &format!("proc/{pid}/task/{tid}/{file}"))?;
            }
            threads += 1;
            if progress && threads % 1000 == 0 {
                eprint!("\rkgr: snapshot: {threads} threads");
            }
        }
    }
    if progress && threads >= 1000 {
        eprintln!("\rkgr: snapshot: {threads} threads");
    }
    Ok(threads)
}

/// Keeps the kallsyms lines of patched functions (and their aliases'
/// addresses are resolvable offline).
fn copy_kallsyms(w: &mut Writer, root: &Root, functions: &[String]) -> Result<()> {
    if functions.is_empty() {
        return Ok(());
    }
    let path = root.proc().join("kallsyms");
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => {
            w.unreadable.push(format!("proc/kallsyms: {err}"));
            return Ok(());
        }
    };
    let is_patched = |line: &str| {
        let symbol = line.split_whitespace().nth(2).unwrap_or("");
        functions.iter().any(|f| f == symbol)
    };
    // Aliases share a patched function's address (`__do_sys_pause` for
    // `__x64_sys_pause`): `blocking --why` matches frames by address.
    let addresses: std::collections::HashSet<&str> = text
        .lines()
        .filter(|line| is_patched(line))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|a| a.bytes().any(|b| b != b'0'))
        .collect();
    let kept: String = text
        .lines()
        .filter(|line| {
            is_patched(line)
                || line
                    .split_whitespace()
                    .next()
                    .is_some_and(|a| addresses.contains(a))
        })
        .map(|line| format!("{line}\n"))
        .collect();
    w.add("proc/kallsyms", kept.as_bytes())
}

/// The config lines that matter, from /proc/config.gz's plain twin in /boot.
fn copy_config(w: &mut Writer, root: &Root) -> Result<()> {
    if !root.is_live() {
        return Ok(());
    }
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let path = PathBuf::from(format!("/boot/config-{}", release.trim()));
    let Ok(text) = fs::read_to_string(&path) else {
        w.unreadable.push(format!(
            "{META_DIR}/config: {} not readable",
            path.display()
        ));
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            CONFIG_KEYS
                .iter()
                .any(|k| l.starts_with(&format!("{k}=")) || l.contains(&format!("{k} is not set")))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    w.add(&format!("{META_DIR}/config"), kept.as_bytes())
}

/// A snapshot unpacked for reading; the directory goes when the last user does.
pub fn unpack(archive: &Path) -> Result<(PathBuf, Arc<tempfile::TempDir>)> {
    let file = File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
    let dir = tempfile::Builder::new()
        .prefix("kgr-snapshot-")
        .tempdir()
        .context("creating a directory to unpack the snapshot")?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    tar.unpack(dir.path())
        .with_context(|| format!("unpacking {} (not a kgr snapshot?)", archive.display()))?;
    if !dir.path().join(META_DIR).is_dir() {
        bail!(
            "reading {}: not a kgr snapshot (no {META_DIR}/ inside)",
            archive.display()
        );
    }
    Ok((dir.path().to_path_buf(), Arc::new(dir)))
}

/// Flushes a progress line before other output.
pub fn end_progress() {
    let _ = io::stderr().flush();
}
