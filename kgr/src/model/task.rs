//! A thread as kgr reports it.

use serde::{Serialize, Serializer};

use super::Why;

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

impl TaskState {
    /// The letter `/proc/<pid>/stat` shows for a task's `__state` and
    /// `exit_state` (include/linux/sched.h `__task_state_index`).
    #[cfg_attr(
        all(not(feature = "ebpf"), not(test)),
        expect(dead_code, reason = "read from the eBPF snapshot only")
    )]
    pub fn from_kernel(state: u32, exit_state: u32) -> TaskState {
        // TASK_REPORT: RUNNING..PARKED; the letters of fs/proc/array.c.
        const REPORT: u32 = 0x7f;
        const UNINTERRUPTIBLE: u32 = 0x2;
        const IDLE: u32 = UNINTERRUPTIBLE | 0x400;
        const RTLOCK_WAIT: u32 = 0x1000;
        const FROZEN: u32 = 0x8000;
        const LETTERS: &[u8; 9] = b"RSDTtXZPI";
        let mut report = (state | exit_state) & REPORT;
        if state & IDLE == IDLE {
            report = 0x80;
        }
        if state & (RTLOCK_WAIT | FROZEN) != 0 {
            report = UNINTERRUPTIBLE;
        }
        // fls(): 0 for RUNNING, else the highest set bit's position.
        let index = 32 - report.leading_zeros();
        TaskState(char::from(LETTERS[index as usize]))
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
    /// Why it blocks (`blocking --why`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<Why>,
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
            why: None,
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
    fn state_letters_like_proc() {
        let letter = |state, exit| TaskState::from_kernel(state, exit).0;
        assert_eq!(letter(0, 0), 'R');
        assert_eq!(letter(0x1, 0), 'S');
        assert_eq!(letter(0x2, 0), 'D');
        assert_eq!(letter(0x402, 0), 'I');
        assert_eq!(letter(0x4, 0), 'T');
        assert_eq!(letter(0x8, 0), 't');
        assert_eq!(letter(0x0, 0x20), 'Z');
        assert_eq!(letter(0x0, 0x10), 'X');
        assert_eq!(letter(0x40, 0), 'P');
        assert_eq!(letter(0x8001, 0), 'D');
        assert_eq!(letter(0x1000, 0), 'D');
    }

    #[test]
    fn patch_state_values() {
        assert_eq!(PatchState::parse("-1\n"), Some(PatchState::Idle));
        assert_eq!(PatchState::parse("1"), Some(PatchState::Patched));
        assert_eq!(PatchState::parse("2"), None);
        assert_eq!(PatchState::parse(""), None);
    }
}
