//! Per-thread state under `/proc/<pid>/task/<tid>`.
//!
//! Every thread is scanned, not only `/proc/<pid>`: a multi-threaded process
//! can block while its leader has switched.

use std::fmt::Write as _;
use std::io::Read;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use procfs::process::{Process, Task};
use procfs::{FromRead, ProcError, ProcResult};
use rustix::fs::{Mode, OFlags, RawDir};
use rustix::io::Errno;

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
///
/// The pass is the hot path of `blocking` on small systems, so it stays
/// close to the syscalls: one `getdents64` buffer reused for every directory,
/// one `openat` of `<pid>/task` per process, and per thread one `openat` of
/// `<tid>/<state file>` relative to it, one `read` into a reused buffer and
/// one `close`. The procfs crate's `Process`/`Task` objects (an `O_PATH` fd
/// each) are built only for the selected threads that need details.
pub fn scan_threads(
    root: &Root,
    request: ScanRequest,
    select: impl Fn(PatchState) -> bool,
) -> Result<ThreadScan> {
    let proc = root.proc();
    let listing = || format!("listing {}", proc.display());
    let proc_dir = open_dir(&proc).with_context(listing)?;
    let mut dirents = vec![MaybeUninit::<u8>::uninit(); 32 * 1024];
    let mut pids = Vec::new();
    list_ids(&proc_dir, &mut dirents, &mut pids).with_context(listing)?;
    let mut scanner = Scanner {
        proc: &proc,
        request,
        buf: Vec::with_capacity(64),
        name: String::with_capacity(64),
        scan: ThreadScan::default(),
    };
    let mut tids = Vec::new();
    for pid in pids {
        scanner.name.clear();
        let _ = write!(scanner.name, "{pid}/task");
        let Ok(task_dir) =
            rustix::fs::openat(&proc_dir, scanner.name.as_str(), DIR_FLAGS, Mode::empty())
        else {
            // Gone, or a tree without task/: the process is its only thread.
            scanner.examine(&proc_dir, true, pid, pid, &select)?;
            continue;
        };
        tids.clear();
        if list_ids(&task_dir, &mut dirents, &mut tids).is_err() {
            // The process exited while we listed it.
            continue;
        }
        for &tid in &tids {
            scanner.examine(&task_dir, false, pid, tid, &select)?;
        }
    }
    let mut scan = scanner.scan;
    scan.threads.sort_by_key(|t| t.tid);
    Ok(scan)
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);

fn open_dir(path: &Path) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        rustix::fs::CWD,
        path,
        DIR_FLAGS,
        Mode::empty(),
    )?)
}

/// The numeric entries of a directory (pids, tids), through `getdents64`
/// into `buf` (reused for every directory; 32 KiB holds hundreds of entries,
/// one entry is under 300 bytes).
fn list_ids(
    dir: &OwnedFd,
    buf: &mut Vec<MaybeUninit<u8>>,
    ids: &mut Vec<i32>,
) -> std::io::Result<()> {
    let mut raw = RawDir::new(dir, buf.as_mut_slice());
    while let Some(entry) = raw.next() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name.first().is_some_and(u8::is_ascii_digit) {
            if let Some(id) = std::str::from_utf8(name).ok().and_then(|n| n.parse().ok()) {
                ids.push(id);
            }
        }
    }
    Ok(())
}

/// The state of one scan pass: reused buffers and what was found.
struct Scanner<'a> {
    proc: &'a Path,
    request: ScanRequest,
    /// The state file's bytes.
    buf: Vec<u8>,
    /// The relative path being opened.
    name: String,
    scan: ThreadScan,
}

impl Scanner<'_> {
    /// Reads thread `tid`'s state file, relative to `dir`: the process'
    /// `task` directory, or `/proc` itself when `from_proc`.
    fn examine(
        &mut self,
        dir: &OwnedFd,
        from_proc: bool,
        pid: i32,
        tid: i32,
        select: &impl Fn(PatchState) -> bool,
    ) -> Result<()> {
        let state_file = self.request.state_file;
        let file = state_file.name();
        let path = || self.proc.join(format!("{pid}/task/{tid}/{file}"));
        self.name.clear();
        if from_proc {
            let _ = write!(self.name, "{pid}/task/");
        }
        let _ = write!(self.name, "{tid}/{file}");
        let mut result = read_small(dir, &self.name, &mut self.buf);
        if state_file == StateFile::KgrInProgress
            && pid == tid
            && matches!(&result, Err(e) if e == &Errno::NOENT)
        {
            // kGraft kernels may have `kgr_in_progress` only per process:
            // the leader then stands for its process.
            let path = self.proc.join(pid.to_string()).join(file);
            result = read_small_at(None, &path, &mut self.buf);
        }
        if let Err(errno) = result {
            return match classify_errno(errno, &path()) {
                ReadFailure::Vanished => Ok(()),
                ReadFailure::Denied => {
                    self.scan.unreadable += 1;
                    self.scan.first_unreadable.get_or_insert_with(path);
                    Ok(())
                }
                ReadFailure::Error(err) => Err(err),
            };
        }
        let text = String::from_utf8_lossy(&self.buf);
        let state = state_file.parse(&text).ok_or_else(|| {
            anyhow!(
                "reading {}: invalid content {:?} (expected -1, 0 or 1)",
                path().display(),
                shorten(text.trim_end_matches('\n'))
            )
        })?;
        let scan = &mut self.scan;
        scan.examined += 1;
        if !select(state) {
            return Ok(());
        }
        if !self.request.details {
            scan.threads.push(Thread::bare(pid, tid, state));
            return Ok(());
        }
        let Ok(task) = Process::new_with_root(self.proc.join(pid.to_string()))
            .and_then(|p| p.task_from_tid(tid))
        else {
            // Gone since its state was read.
            return Ok(());
        };
        match describe(self.proc, &task, state, self.request.stacks) {
            Ok(thread) => scan.threads.push(thread),
            Err(ReadFailure::Vanished) => {}
            Err(ReadFailure::Denied) => {
                scan.unreadable += 1;
                scan.first_unreadable
                    .get_or_insert_with(|| task_path(self.proc, &task, "stat"));
            }
            Err(ReadFailure::Error(err)) => return Err(err),
        }
        Ok(())
    }
}

/// Reads a one-line file at `name` relative to `dir` into `buf`: one
/// `openat`, `read`s until EOF or a final newline (the state files are one
/// line, written whole by one `read`), one `close`.
fn read_small(dir: &OwnedFd, name: &str, buf: &mut Vec<u8>) -> Result<(), Errno> {
    read_small_at(Some(dir), Path::new(name), buf)
}

/// `read_small` of `path`, relative to `dir` or to the working directory.
fn read_small_at(dir: Option<&OwnedFd>, path: &Path, buf: &mut Vec<u8>) -> Result<(), Errno> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC;
    let fd = match dir {
        Some(dir) => rustix::fs::openat(dir, path, flags, Mode::empty())?,
        None => rustix::fs::openat(rustix::fs::CWD, path, flags, Mode::empty())?,
    };
    buf.clear();
    let mut chunk = [0u8; 64];
    loop {
        let n = rustix::io::read(&fd, &mut chunk)?;
        buf.extend_from_slice(&chunk[..n]);
        if n == 0 || buf.last() == Some(&b'\n') {
            return Ok(());
        }
    }
}

fn classify_errno(errno: Errno, path: &Path) -> ReadFailure {
    match errno {
        // ESRCH: the task died between open and read. ENOTDIR: an entry of
        // `/proc` that is no process directory (as the procfs crate skips).
        Errno::NOENT | Errno::SRCH | Errno::NOTDIR => ReadFailure::Vanished,
        Errno::ACCESS | Errno::PERM => ReadFailure::Denied,
        e => ReadFailure::Error(
            anyhow!(std::io::Error::from(e)).context(format!("reading {}", path.display())),
        ),
    }
}

fn task_path(proc: &Path, task: &Task, file: &str) -> PathBuf {
    proc.join(format!("{}/task/{}/{file}", task.pid, task.tid))
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
