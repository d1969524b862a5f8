//! The task iterator pinned in the BPF filesystem by a running `kgr monitor`,
//! so that `kgr blocking` takes its snapshot without loading anything: no
//! BTF to parse, no program to verify, only `BPF_OBJ_GET`,
//! `BPF_ITER_CREATE` and the read (under TCG the load is ~0.6 s, the read of
//! 15k tasks ~0.1 s).
//!
//! A pin is `/sys/fs/bpf/kgr/task_iter-v<TASK_RECORD_VERSION>-<pid>`: the
//! record version keeps kgr builds with another wire format away from it,
//! the pid of the monitor that pinned it lets the next monitor remove the
//! pins of monitors that are gone (a monitor removes its own at exit).

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use aya::programs::iter::IterLink;
use aya::programs::links::{FdLink, PinnedLink};
use kgr_common::TASK_RECORD_VERSION;

use super::snapshot::TaskIterator;
use super::{unavailable, Unavailable};

/// Where the BPF filesystem is mounted (systemd mounts it at boot).
const BPF_FS: &str = "/sys/fs/bpf";
/// kgr's directory in it.
pub const PIN_DIR: &str = "/sys/fs/bpf/kgr";
/// `BPF_FS_MAGIC` (include/uapi/linux/magic.h).
const BPF_FS_MAGIC: u64 = 0xcafe_4a11;

fn prefix() -> String {
    format!("task_iter-v{TASK_RECORD_VERSION}-")
}

/// The pid in a pin's file name, when the name is one of this version's.
fn pinned_by(name: &str) -> Option<i32> {
    name.strip_prefix(&prefix())?.parse().ok()
}

fn alive(pid: i32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// The task iterator's link, pinned while this lives; the pin is removed on
/// drop (and by the next monitor when this one was killed).
pub struct PinnedIterator {
    path: PathBuf,
    _link: PinnedLink,
}

impl PinnedIterator {
    /// Loads the task iterator and pins its link for `kgr blocking`.
    pub fn pin() -> Result<PinnedIterator, Unavailable> {
        let what = "pinning the task iterator";
        let failed = |error: String| Unavailable::Failed {
            what: what.into(),
            error,
        };
        let fs = rustix::fs::statfs(BPF_FS).map_err(|e| failed(format!("{BPF_FS}: {e}")))?;
        // f_type's width differs between architectures.
        #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
        if fs.f_type as u64 != BPF_FS_MAGIC {
            return Err(failed(format!("no BPF filesystem mounted at {BPF_FS}")));
        }
        match std::fs::DirBuilder::new().mode(0o700).create(PIN_DIR) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => trusted_dir()?,
            Err(e) => return Err(unavailable(what, &e)),
        }
        remove_stale();
        let mut iterator = TaskIterator::load(false)?;
        let link = iterator.link()?;
        let link: FdLink = link.try_into().map_err(|e| unavailable(what, &e))?;
        let path = Path::new(PIN_DIR).join(format!("{}{}", prefix(), std::process::id()));
        // A pin of a monitor that had this pid before (removed above only
        // when its name was of this version).
        let _ = std::fs::remove_file(&path);
        let pinned = link.pin(&path).map_err(|e| unavailable(what, &e))?;
        // The link holds the program: the object's own handles can go.
        drop(iterator);
        Ok(PinnedIterator {
            path,
            _link: pinned,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PinnedIterator {
    fn drop(&mut self) {
        // Removing the last pin detaches the link (the fd goes right after).
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The directory is root's and nobody else may write to it: whoever can
/// place a pin there decides what `kgr blocking` reads.
fn trusted_dir() -> Result<(), Unavailable> {
    let meta =
        std::fs::metadata(PIN_DIR).map_err(|e| unavailable("reading the pin directory", &e))?;
    if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(Unavailable::Untrusted(format!(
            "{PIN_DIR} is not a directory only root can write to"
        )));
    }
    Ok(())
}

/// Removes the pins of this version whose monitor is gone.
fn remove_stale() {
    let Ok(entries) = std::fs::read_dir(PIN_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if let Some(pid) = name.to_str().and_then(pinned_by) {
            if !alive(pid) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// A pin to read: one whose monitor still runs if there is one, else any of
/// this version (a killed monitor's link still works: same boot, same
/// kernel). `Ok(None)`: no pin at all.
fn find_pin() -> Result<Option<(PathBuf, i32)>, Unavailable> {
    let entries = match std::fs::read_dir(PIN_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unavailable("reading the pin directory", &e)),
    };
    let mut pins: Vec<(PathBuf, i32)> = entries
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str().and_then(pinned_by)?;
            Some((e.path(), pid))
        })
        .collect();
    if pins.is_empty() {
        return Ok(None);
    }
    trusted_dir()?;
    pins.sort_by_key(|(_, pid)| !alive(*pid));
    Ok(pins.into_iter().next())
}

/// The pinned iterator's output to read, and the pid of the monitor that
/// pinned it; `Ok(None)` when no monitor pinned one. `trusted` is asked
/// only when there is a pin.
pub fn open_pinned(
    trusted: impl FnOnce() -> Result<(), Unavailable>,
) -> Result<Option<(File, i32)>, Unavailable> {
    let Some((path, pid)) = find_pin()? else {
        return Ok(None);
    };
    trusted()?;
    let what = format!("opening the pinned task iterator {}", path.display());
    let link = PinnedLink::from_pin(&path).map_err(|e| unavailable(&what, &e))?;
    // Refuses a link of another type than an iterator.
    let link = IterLink::try_from(FdLink::from(link)).map_err(|e| unavailable(&what, &e))?;
    let file = link.into_file().map_err(|e| unavailable(&what, &e))?;
    Ok(Some((file, pid)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_names_carry_version_and_pid() {
        let name = format!("task_iter-v{TASK_RECORD_VERSION}-4242");
        assert_eq!(pinned_by(&name), Some(4242));
        let older = format!("task_iter-v{}-4242", TASK_RECORD_VERSION + 1);
        assert_eq!(pinned_by(&older), None);
        assert_eq!(pinned_by("task_iter-v1-"), None);
        assert_eq!(pinned_by("something-else"), None);
    }
}
