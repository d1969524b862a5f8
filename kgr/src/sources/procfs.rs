//! Per-thread state under `/proc/<pid>/task/<tid>`.
//!
//! Every thread is scanned, not only `/proc/<pid>`: a multi-threaded process
//! can block while its leader has switched.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use procfs::process::{all_processes_with_root, Process, Task};
use procfs::{FromRead, ProcError, ProcResult};

use crate::model::{join_cmdline, PatchState, TaskState, Thread};

use super::sysfs::shorten;
use super::Root;

/// `PF_KTHREAD` in `stat`'s flags (include/linux/sched.h).
const PF_KTHREAD: u32 = 0x0020_0000;

/// Which per-task file carries the patch state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFile {
    /// `patch_state`: -1, 0 or 1 (upstream livepatch).
    PatchState,
    /// `kgr_in_progress`: 1 while the task has not migrated (SLE 12 kGraft).
    /// Mapped to `Unpatched` (1) and `Patched` (0), with the target `Patched`.
    KgrInProgress,
}

impl StateFile {
    fn name(self) -> &'static str {
        match self {
            StateFile::PatchState => "patch_state",
            StateFile::KgrInProgress => "kgr_in_progress",
        }
    }

    fn parse(self, text: &str) -> Option<PatchState> {
        match self {
            StateFile::PatchState => PatchState::parse(text),
            StateFile::KgrInProgress => match text.trim() {
                "0" => Some(PatchState::Patched),
                "1" => Some(PatchState::Unpatched),
                _ => None,
            },
        }
    }
}

/// What to read for the threads that are selected.
#[derive(Debug, Clone, Copy)]
pub struct ScanRequest {
    pub state_file: StateFile,
    /// Read each selected thread's `stat` and `cmdline` (else only its tid).
    pub details: bool,
    /// Read the kernel stack of each selected thread.
    pub stacks: bool,
}

/// The outcome of one pass over all threads.
#[derive(Debug, Default)]
pub struct ThreadScan {
    /// Selected threads, by tid.
    pub threads: Vec<Thread>,
    /// Threads whose state was read.
    pub examined: usize,
    /// Threads whose state file could not be read (permission).
    pub unreadable: usize,
    /// One of them, for the warning.
    pub first_unreadable: Option<PathBuf>,
}

/// A file's bytes, read through procfs' `FromRead`.
struct Raw(Vec<u8>);

impl FromRead for Raw {
    fn from_read<R: Read>(mut r: R) -> ProcResult<Self> {
        let mut buf = Vec::new();
        r.read_to_end(&mut buf)?;
        Ok(Raw(buf))
    }
}

/// A read that failed in a way the scan must tell apart.
enum ReadFailure {
    /// The task exited while we looked: skip it.
    Vanished,
    /// Not ours to read (not root).
    Denied,
    /// Anything else: a real error.
    Error(anyhow::Error),
}

fn classify(err: ProcError, path: &Path) -> ReadFailure {
    match err {
        ProcError::NotFound(_) => ReadFailure::Vanished,
        // ESRCH: the task died between open and read.
        ProcError::Io(e, _) if e.raw_os_error() == Some(libc_esrch()) => ReadFailure::Vanished,
        ProcError::PermissionDenied(_) => ReadFailure::Denied,
        ProcError::Io(e, _) => {
            ReadFailure::Error(anyhow!(e).context(format!("reading {}", path.display())))
        }
        ProcError::Incomplete(_) | ProcError::Other(_) | ProcError::InternalError(_) => {
            ReadFailure::Error(anyhow!("reading {}: malformed content", path.display()))
        }
    }
}

fn libc_esrch() -> i32 {
    rustix::io::Errno::SRCH.raw_os_error()
}

/// Scans every thread under `root`'s `/proc` and keeps those whose state
/// `select` picks, with their details.
pub fn scan_threads(
    root: &Root,
    request: ScanRequest,
    select: impl Fn(PatchState) -> bool,
) -> Result<ThreadScan> {
    let proc = root.proc();
    let processes = all_processes_with_root(&proc)
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("listing {}", proc.display()))?;
    let mut scan = ThreadScan::default();
    for process in processes {
        let Ok(process) = process else {
            // The process exited between listing and opening.
            continue;
        };
        scan_process(&proc, &process, request, &select, &mut scan)?;
    }
    scan.threads.sort_by_key(|t| t.tid);
    Ok(scan)
}

fn scan_process(
    proc: &Path,
    process: &Process,
    request: ScanRequest,
    select: &impl Fn(PatchState) -> bool,
    scan: &mut ThreadScan,
) -> Result<()> {
    let Ok(tasks) = process.tasks() else {
        // Gone, or a tree without task/ (then the process is its only thread).
        if let Ok(task) = process.task_main_thread() {
            examine(proc, &task, request, select, scan)?;
        }
        return Ok(());
    };
    for task in tasks {
        let Ok(task) = task else { continue };
        examine(proc, &task, request, select, scan)?;
    }
    Ok(())
}

fn task_path(proc: &Path, task: &Task, file: &str) -> PathBuf {
    proc.join(format!("{}/task/{}/{file}", task.pid, task.tid))
}

fn examine(
    proc: &Path,
    task: &Task,
    request: ScanRequest,
    select: &impl Fn(PatchState) -> bool,
    scan: &mut ThreadScan,
) -> Result<()> {
    let file = request.state_file.name();
    let raw = match read_state(proc, task, request.state_file) {
        Ok(raw) => raw,
        Err(err) => {
            return match classify(err, &task_path(proc, task, file)) {
                ReadFailure::Vanished => Ok(()),
                ReadFailure::Denied => {
                    scan.unreadable += 1;
                    scan.first_unreadable
                        .get_or_insert_with(|| task_path(proc, task, file));
                    Ok(())
                }
                ReadFailure::Error(err) => Err(err),
            };
        }
    };
    let text = String::from_utf8_lossy(&raw.0);
    let state = request.state_file.parse(&text).ok_or_else(|| {
        anyhow!(
            "reading {}: invalid content {:?} (expected -1, 0 or 1)",
            task_path(proc, task, file).display(),
            shorten(text.trim_end_matches('\n'))
        )
    })?;
    scan.examined += 1;
    if !select(state) {
        return Ok(());
    }
    if !request.details {
        scan.threads.push(Thread::bare(task.pid, task.tid, state));
        return Ok(());
    }
    match describe(proc, task, state, request.stacks) {
        Ok(thread) => scan.threads.push(thread),
        Err(ReadFailure::Vanished) => {}
        Err(ReadFailure::Denied) => {
            scan.unreadable += 1;
            scan.first_unreadable
                .get_or_insert_with(|| task_path(proc, task, "stat"));
        }
        Err(ReadFailure::Error(err)) => return Err(err),
    }
    Ok(())
}

/// Reads a task's state file. kGraft kernels may have `kgr_in_progress` only
/// per process: the leader then stands for its process.
fn read_state(proc: &Path, task: &Task, state_file: StateFile) -> ProcResult<Raw> {
    let result = task.read::<_, Raw>(state_file.name());
    match result {
        Err(ProcError::NotFound(_))
            if state_file == StateFile::KgrInProgress && task.pid == task.tid =>
        {
            let path = proc.join(task.pid.to_string()).join(state_file.name());
            Raw::from_file(&path)
        }
        other => other,
    }
}

fn read_raw(proc: &Path, task: &Task, file: &str) -> Result<Vec<u8>, ReadFailure> {
    task.read::<_, Raw>(file)
        .map(|r| r.0)
        .map_err(|e| classify(e, &task_path(proc, task, file)))
}

/// Reads what kgr shows of one selected thread.
fn describe(
    proc: &Path,
    task: &Task,
    patch_state: PatchState,
    stacks: bool,
) -> Result<Thread, ReadFailure> {
    let stat = task
        .stat()
        .map_err(|e| classify(e, &task_path(proc, task, "stat")))?;
    let kthread = stat.flags & PF_KTHREAD != 0;
    let cmdline = read_raw(proc, task, "cmdline")?;
    let stack = if stacks {
        let raw = read_raw(proc, task, "stack")?;
        Some(
            String::from_utf8_lossy(&raw)
                .lines()
                .map(str::to_owned)
                .collect(),
        )
    } else {
        None
    };
    Ok(Thread {
        tid: task.tid,
        pid: task.pid,
        cmdline: join_cmdline(&cmdline),
        comm: stat.comm,
        kthread,
        state: TaskState(stat.state),
        patch_state,
        stack,
        why: None,
        starttime: stat.starttime,
    })
}

/// The leader's state letter and the start time of thread `tid` of process
/// `pid` now, `None` when either is gone. `poke` checks this after opening a
/// pidfd: a thread with the scanned start time still in that process proves
/// the pidfd names the process that was scanned.
pub fn process_identity(root: &Root, pid: i32, tid: i32) -> Result<Option<(TaskState, u64)>> {
    let path = root.proc().join(pid.to_string());
    let Ok(process) = Process::new_with_root(path.clone()) else {
        return Ok(None);
    };
    let leader = match process.stat() {
        Ok(stat) => stat,
        Err(err) => return vanished_or_error(err, &path.join("stat")),
    };
    let Ok(task) = process.task_from_tid(tid) else {
        return Ok(None);
    };
    match task.stat() {
        Ok(stat) => Ok(Some((TaskState(leader.state), stat.starttime))),
        Err(err) => vanished_or_error(err, &task_path(&root.proc(), &task, "stat")),
    }
}

fn vanished_or_error<T>(err: ProcError, path: &Path) -> Result<Option<T>> {
    match classify(err, path) {
        ReadFailure::Vanished => Ok(None),
        ReadFailure::Denied => Err(anyhow!("reading {}: permission denied", path.display())),
        ReadFailure::Error(err) => Err(err),
    }
}

/// Every thread of a process (for poke's stopped/traced check), `None` when gone.
pub fn process_thread_states(root: &Root, pid: i32) -> Option<Vec<TaskState>> {
    let process = Process::new_with_root(root.proc().join(pid.to_string())).ok()?;
    let tasks = process.tasks().ok()?;
    Some(
        tasks
            .flatten()
            .filter_map(|t| t.stat().ok())
            .map(|s| TaskState(s.state))
            .collect(),
    )
}

/// One thread as `blocking` would report it, `None` when it is gone
/// (for tests that feed real processes to the commands).
#[cfg(test)]
pub fn read_thread(
    root: &Root,
    pid: i32,
    tid: i32,
    patch_state: PatchState,
) -> Result<Option<Thread>> {
    describe_thread(root, pid, tid, patch_state, false)
}

/// One thread's details (and kernel stack with `stacks`) as the scan reads
/// them, for a thread selected elsewhere (the eBPF snapshot); `None` when gone.
pub fn describe_thread(
    root: &Root,
    pid: i32,
    tid: i32,
    patch_state: PatchState,
    stacks: bool,
) -> Result<Option<Thread>> {
    let proc = root.proc();
    let Ok(process) = Process::new_with_root(proc.join(pid.to_string())) else {
        return Ok(None);
    };
    let Ok(task) = process.task_from_tid(tid) else {
        return Ok(None);
    };
    match describe(&proc, &task, patch_state, stacks) {
        Ok(thread) => Ok(Some(thread)),
        Err(ReadFailure::Vanished) => Ok(None),
        Err(ReadFailure::Denied) => Err(anyhow!(
            "reading {}: permission denied",
            task_path(&proc, &task, "stat").display()
        )),
        Err(ReadFailure::Error(err)) => Err(err),
    }
}

/// The first field of `/proc/<pid>/task/<tid>/syscall` and the rest, as the
/// kernel wrote it; `None` when unreadable or gone.
pub fn read_syscall(root: &Root, pid: i32, tid: i32) -> Option<String> {
    let path = root.proc().join(format!("{pid}/task/{tid}/syscall"));
    std::fs::read_to_string(path).ok()
}

/// How many threads the system has: the denominator of `/proc/loadavg`'s
/// fourth field (`nr_threads`, kernel/fork.c), one small read.
pub fn thread_count(root: &Root) -> Option<usize> {
    let text = std::fs::read_to_string(root.proc().join("loadavg")).ok()?;
    parse_thread_count(&text)
}

fn parse_thread_count(loadavg: &str) -> Option<usize> {
    let field = loadavg.split_whitespace().nth(3)?;
    field.split_once('/')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_count_from_loadavg() {
        assert_eq!(parse_thread_count("0.75 0.48 0.52 1/123 7965\n"), Some(123));
        assert_eq!(parse_thread_count("0.75 0.48 0.52"), None);
        assert_eq!(parse_thread_count(""), None);
    }
}
