//! The injectable root: `/sys` and `/proc`, or a captured tree under `--root DIR`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;

/// Where kgr reads the kernel's state from.
#[derive(Debug, Clone)]
pub struct Root {
    base: Option<PathBuf>,
    /// Keeps an unpacked snapshot alive as long as the root is used.
    _unpacked: Option<Arc<tempfile::TempDir>>,
}

impl Root {
    /// The running system.
    pub fn live() -> Root {
        Root {
            base: None,
            _unpacked: None,
        }
    }

    /// A captured tree: reads `dir/sys/...` and `dir/proc/...`.
    pub fn at(dir: &Path) -> Root {
        Root {
            base: Some(dir.to_path_buf()),
            _unpacked: None,
        }
    }

    /// `--root PATH`: a captured directory tree, or a `kgr snapshot` archive.
    pub fn open(path: &Path) -> Result<Root> {
        if path.is_file() {
            let (dir, guard) = super::capture::unpack(path)?;
            return Ok(Root {
                base: Some(dir),
                _unpacked: Some(guard),
            });
        }
        Ok(Root::at(path))
    }

    /// True when reading the running system (eBPF, packages and signals allowed).
    pub fn is_live(&self) -> bool {
        self.base.is_none()
    }

    /// `/sys/<rel>` under this root.
    pub fn sys(&self, rel: &str) -> PathBuf {
        self.join("sys", rel)
    }

    /// `/proc` under this root.
    pub fn proc(&self) -> PathBuf {
        self.join("proc", "")
    }

    fn join(&self, top: &str, rel: &str) -> PathBuf {
        let mut path = match &self.base {
            Some(base) => base.join(top),
            None => Path::new("/").join(top),
        };
        if !rel.is_empty() {
            path.push(rel);
        }
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            Root::live().sys("kernel/livepatch"),
            Path::new("/sys/kernel/livepatch")
        );
        assert_eq!(Root::live().proc(), Path::new("/proc"));
        let r = Root::at(Path::new("/tmp/x"));
        assert_eq!(
            r.sys("kernel/livepatch"),
            Path::new("/tmp/x/sys/kernel/livepatch")
        );
        assert_eq!(r.proc(), Path::new("/tmp/x/proc"));
        assert!(!r.is_live());
    }
}
