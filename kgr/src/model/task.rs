//! A thread as kgr reports it.

use serde::{Serialize, Serializer};

/// `/proc/<pid>/task/<tid>/patch_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchState {
    /// -1: no transition (KLP_TRANSITION_IDLE).
    Idle,
    /// 0: runs unpatched code.
    Unpatched,
    /// 1: runs patched code.
    Patched,
}

impl PatchState {
    pub fn parse(text: &str) -> Option<PatchState> {
        match text.trim() {
            "-1" => Some(PatchState::Idle),
            "0" => Some(PatchState::Unpatched),
            "1" => Some(PatchState::Patched),
            _ => None,
        }
    }

    pub fn value(self) -> i32 {
        match self {
            PatchState::Idle => -1,
            PatchState::Unpatched => 0,
            PatchState::Patched => 1,
        }
    }
}

impl Serialize for PatchState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(self.value())
    }
}

/// The scheduler state letter of `stat`, as far as kgr cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskState(pub char);

impl TaskState {
    /// Uninterruptible sleep: a signal will not move it.
    pub fn is_uninterruptible(self) -> bool {
        self.0 == 'D'
    }
    /// Stopped by job control: a SIGCONT would resume it against its owner's will.
    pub fn is_stopped(self) -> bool {
        self.0 == 'T'
    }
    pub fn is_traced(self) -> bool {
        self.0 == 't'
    }
    pub fn is_zombie(self) -> bool {
        self.0 == 'Z' || self.0 == 'X'
    }
}

impl Serialize for TaskState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// A thread found blocking (or examined) during a transition.
#[derive(Debug, Clone, Serialize)]
pub struct Thread {
    pub tid: i32,
    pub pid: i32,
    pub comm: String,
    /// As ps prints it: arguments joined by spaces, `[comm]` when empty.
    pub cmdline: String,
    pub kthread: bool,
    pub state: TaskState,
    pub patch_state: PatchState,
    /// Kernel stack frames, verbatim; read only when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<Vec<String>>,
    /// Process start time (clock ticks since boot): tells a recycled pid apart.
    #[serde(skip)]
    pub starttime: u64,
}

/// Renders `cmdline` as ps does: NULs as spaces, the trailing NUL dropped,
/// `[comm]` for kernel threads and empty command lines.
pub fn display_cmdline(raw: &[u8], comm: &str, kthread: bool) -> String {
    let trimmed = raw.strip_suffix(b"\0").unwrap_or(raw);
    if kthread || trimmed.is_empty() {
        return format!("[{comm}]");
    }
    let text = String::from_utf8_lossy(trimmed);
    text.replace('\0', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_like_ps() {
        assert_eq!(
            display_cmdline(b"sleep\x00100\x00", "sleep", false),
            "sleep 100"
        );
        assert_eq!(display_cmdline(b"", "kworker/0:1", true), "[kworker/0:1]");
        assert_eq!(display_cmdline(b"", "zomb", false), "[zomb]");
        assert_eq!(display_cmdline(b"x\x00\x00", "x", false), "x ");
    }

    #[test]
    fn patch_state_values() {
        assert_eq!(PatchState::parse("-1\n"), Some(PatchState::Idle));
        assert_eq!(PatchState::parse("1"), Some(PatchState::Patched));
        assert_eq!(PatchState::parse("2"), None);
        assert_eq!(PatchState::parse(""), None);
    }
}
