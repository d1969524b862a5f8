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
    /// The arguments joined by spaces; empty for kernel threads and zombies.
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

impl Thread {
    /// A thread known only by its ids and state (a scan without details).
    pub fn bare(pid: i32, tid: i32, patch_state: PatchState) -> Thread {
        Thread {
            tid,
            pid,
            comm: String::new(),
            cmdline: String::new(),
            kthread: false,
            state: TaskState('?'),
            patch_state,
            stack: None,
            starttime: 0,
        }
    }

    /// The command line as ps prints it: `[comm]` for kernel threads and
    /// empty command lines.
    pub fn display_cmdline(&self) -> String {
        if self.kthread || self.cmdline.is_empty() {
            format!("[{}]", self.comm)
        } else {
            self.cmdline.clone()
        }
    }
}

/// Joins a raw `cmdline` (NUL-separated, NUL-terminated) with spaces.
pub fn join_cmdline(raw: &[u8]) -> String {
    let trimmed = raw.strip_suffix(b"\0").unwrap_or(raw);
    String::from_utf8_lossy(trimmed).replace('\0', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_like_ps() {
        assert_eq!(join_cmdline(b"sleep\x00100\x00"), "sleep 100");
        assert_eq!(join_cmdline(b"x\x00\x00"), "x ");
        let mut t = Thread::bare(5, 5, PatchState::Unpatched);
        t.comm = "kworker/0:1".into();
        t.kthread = true;
        assert_eq!(t.display_cmdline(), "[kworker/0:1]");
        t.kthread = false;
        assert_eq!(t.display_cmdline(), "[kworker/0:1]");
        t.cmdline = "sleep 100".into();
        assert_eq!(t.display_cmdline(), "sleep 100");
    }

    #[test]
    fn patch_state_values() {
        assert_eq!(PatchState::parse("-1\n"), Some(PatchState::Idle));
        assert_eq!(PatchState::parse("1"), Some(PatchState::Patched));
        assert_eq!(PatchState::parse("2"), None);
        assert_eq!(PatchState::parse(""), None);
    }
}
