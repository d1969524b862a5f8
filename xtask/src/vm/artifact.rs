//! Files the guest hands out through the serial console (it has no
//! network): `lib.sh`'s `artifact NAME FILE` prints `ARTIFACT-BEGIN NAME`,
//! the file in base64 lines, `ARTIFACT-END NAME`; the host decodes them into
//! `target/vm-lab/artifacts/<kernel>/NAME`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine;

const BEGIN: &str = "ARTIFACT-BEGIN ";
const END: &str = "ARTIFACT-END ";

/// Collects the artifacts in a stream of serial lines.
#[derive(Default)]
pub(crate) struct Artifacts {
    /// The artifact being received: its name and base64 text so far.
    open: Option<(String, String)>,
    /// Complete artifacts, decoded (or why not).
    pub done: BTreeMap<String, Result<Vec<u8>, String>>,
}

impl Artifacts {
    /// Takes `line` when it belongs to an artifact (true); other lines,
    /// even in the middle of one (a kernel message), are left to the caller.
    pub fn take(&mut self, line: &str) -> bool {
        if let Some(name) = line.strip_prefix(BEGIN) {
            if let Some((old, _)) = self.open.take() {
                self.done.insert(old, Err("no ARTIFACT-END line".into()));
            }
            self.open = Some((name.trim().to_string(), String::new()));
            return true;
        }
        let Some((name, text)) = self.open.as_mut() else {
            return false;
        };
        if let Some(end) = line.strip_prefix(END) {
            if end.trim() != name {
                return false;
            }
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map_err(|e| format!("bad base64: {e}"));
            let name = name.clone();
            self.open = None;
            self.done.insert(name, decoded);
            return true;
        }
        let l = line.trim();
        if !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        {
            text.push_str(l);
            return true;
        }
        false
    }

    /// Writes the complete artifacts under `dir` (emptied first); returns
    /// the broken ones, each with why.
    pub fn save(&mut self, dir: &Path) -> Result<Vec<String>> {
        if let Some((name, _)) = self.open.take() {
            self.done.insert(name, Err("no ARTIFACT-END line".into()));
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut broken = Vec::new();
        for (name, data) in &self.done {
            match data {
                Ok(bytes) if safe_name(name) => {
                    let p = dir.join(name);
                    std::fs::write(&p, bytes)
                        .with_context(|| format!("writing {}", p.display()))?;
                }
                Ok(_) => broken.push(format!("{name}: not a plain file name")),
                Err(why) => broken.push(format!("{name}: {why}")),
            }
        }
        Ok(broken)
    }
}

/// A name that stays inside the artifact directory.
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `target/vm-lab/artifacts/<kernel>`.
pub(crate) fn dir(cache: &Path, kernel: &str) -> PathBuf {
    cache.join("artifacts").join(kernel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_leaves_other_lines() {
        let mut a = Artifacts::default();
        let lines = [
            "PASS x",
            "ARTIFACT-BEGIN f.txt",
            "aGVsbG8g",
            "[   1.0] some kernel message",
            "d29ybGQK",
            "ARTIFACT-END f.txt",
            "FAIL y: z",
        ];
        let kept: Vec<&str> = lines.iter().copied().filter(|l| !a.take(l)).collect();
        assert_eq!(
            kept,
            ["PASS x", "[   1.0] some kernel message", "FAIL y: z"]
        );
        assert_eq!(a.done["f.txt"].as_deref(), Ok(&b"hello world\n"[..]));
    }

    #[test]
    fn unfinished_is_broken() {
        let mut a = Artifacts::default();
        assert!(a.take("ARTIFACT-BEGIN a"));
        assert!(a.take("aGVsbG8="));
        let dir = std::env::temp_dir().join(format!("kgr-artifact-test-{}", std::process::id()));
        let broken = a.save(&dir).expect("save");
        assert_eq!(broken, ["a: no ARTIFACT-END line"]);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
