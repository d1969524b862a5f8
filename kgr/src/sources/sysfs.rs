//! `/sys/kernel/livepatch` (and the legacy `/sys/kernel/kgraft`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::model::{order_patches, Patch, PatchObject, PatchedFunction};

use super::Root;

/// Which live patching interface this kernel has, with its patches.
#[derive(Debug)]
pub enum Livepatching {
    /// No `/sys/kernel/livepatch` nor kGraft: the kernel cannot live patch.
    Unsupported,
    /// Upstream livepatch, patches in stack order.
    Livepatch(Vec<Patch>),
    /// SLE 12's kGraft.
    Kgraft {
        in_progress: bool,
        patches: Vec<Patch>,
    },
}

/// How much of each patch to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// `enabled` and `transition` only (what `status` needs).
    States,
    /// Every attribute, object and function.
    Full,
}

/// Reads the live patching state under `root`.
pub fn read(root: &Root, depth: Depth) -> Result<Livepatching> {
    let dir = root.sys("kernel/livepatch");
    if let Some(entries) = list_dirs(&dir)? {
        let mut patches = Vec::with_capacity(entries.len());
        for (name, path) in entries {
            // A patch removed while we read it has simply gone.
            if let Some(patch) = read_patch(name, &path, depth)? {
                patches.push(patch);
            }
        }
        order_patches(&mut patches);
        return Ok(Livepatching::Livepatch(patches));
    }
    let kgraft = root.sys("kernel/kgraft");
    if let Some(entries) = list_dirs(&kgraft)? {
        let in_progress = read_bool(&kgraft.join("in_progress"))?.unwrap_or(false);
        let mut patches: Vec<Patch> = entries
            .into_iter()
            .map(|(name, _)| Patch {
                name,
                enabled: true,
                transition: in_progress,
                replace: None,
                stack_order: None,
                objects: Vec::new(),
            })
            .collect();
        order_patches(&mut patches);
        return Ok(Livepatching::Kgraft {
            in_progress,
            patches,
        });
    }
    Ok(Livepatching::Unsupported)
}

fn read_patch(name: String, dir: &Path, depth: Depth) -> Result<Option<Patch>> {
    let Some(enabled) = read_bool(&dir.join("enabled"))? else {
        return Ok(None);
    };
    let transition = read_bool(&dir.join("transition"))?.unwrap_or(false);
    let mut patch = Patch {
        name,
        enabled,
        transition,
        replace: None,
        stack_order: None,
        objects: Vec::new(),
    };
    if depth == Depth::Full {
        patch.replace = read_bool(&dir.join("replace"))?;
        patch.stack_order = read_number(&dir.join("stack_order"))?;
        for (object, path) in list_dirs(dir)?.unwrap_or_default() {
            patch.objects.push(read_object(object, &path)?);
        }
    }
    Ok(Some(patch))
}

fn read_object(name: String, dir: &Path) -> Result<PatchObject> {
    let patched = read_bool(&dir.join("patched"))?;
    let mut functions = Vec::new();
    for (entry, path) in list_dirs(dir)?.unwrap_or_default() {
        match PatchedFunction::from_dir_name(&entry) {
            Some(function) => functions.push(function),
            None => bail!(
                "reading {}: not a <function>,<sympos> directory",
                path.display()
            ),
        }
    }
    Ok(PatchObject {
        name,
        patched,
        functions,
    })
}

/// The subdirectories of `dir` (dot-files skipped), or `None` when `dir` does not exist.
fn list_dirs(dir: &Path) -> Result<Option<Vec<(String, PathBuf)>>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("reading {}", dir.display())),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        // sysfs kobject directories are real directories; follow links in captured trees.
        if fs::metadata(&path).map(|m| m.is_dir()).unwrap_or(false) {
            dirs.push((name, path));
        }
    }
    dirs.sort();
    Ok(Some(dirs))
}

/// Reads a sysfs attribute; `None` when the kernel does not have it.
pub fn read_attr(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

fn read_bool(path: &Path) -> Result<Option<bool>> {
    let Some(text) = read_attr(path)? else {
        return Ok(None);
    };
    match text.trim_end_matches('\n') {
        "0" => Ok(Some(false)),
        "1" => Ok(Some(true)),
        other => bail!(
            "reading {}: invalid content {:?} (expected 0 or 1)",
            path.display(),
            shorten(other)
        ),
    }
}

fn read_number(path: &Path) -> Result<Option<u32>> {
    let Some(text) = read_attr(path)? else {
        return Ok(None);
    };
    match text.trim_end_matches('\n').parse() {
        Ok(n) => Ok(Some(n)),
        Err(_) => bail!(
            "reading {}: invalid content {:?} (expected a number)",
            path.display(),
            shorten(text.trim_end_matches('\n'))
        ),
    }
}

/// Keeps error lines to one readable line whatever a file holds.
pub fn shorten(text: &str) -> String {
    let mut out: String = text.chars().take(40).collect();
    if text.chars().count() > 40 {
        out.push_str("...");
    }
    out
}
