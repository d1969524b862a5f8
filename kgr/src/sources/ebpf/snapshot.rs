//! The `iter/task` snapshot: one pass over every task in the kernel, read
//! from the iterator link's file and turned into model threads right here.

use std::fs::File;
use std::io::Read;
use std::time::{Duration, Instant};

use aya::programs::iter::IterLink;
use aya::programs::Iter;
use aya::Ebpf;
use kgr_common::{
    TaskRecord, MARK_CURRENT, MARK_PID_MISMATCH, MARK_READ_FAILED, PATCH_STATE_ABSENT,
};

use crate::model::{PatchState, TaskState, Thread};

use super::object::Kernel;
use super::{typed_program, unavailable, Keep, TaskSnapshot, Unavailable};

/// The iterator program in the object, and the step that finds it.
const TASK_ITER: &str = "task_iter";
const FINDING: &str = "finding the task iterator";

/// The kernel function an `iter/task` program attaches to.
const ITER_FUNCTION: &str = "bpf_iter_task";

/// `PF_KTHREAD` (include/linux/sched.h).
const PF_KTHREAD: u32 = 0x0020_0000;

/// The loaded iterator program, ready to take snapshots.
pub struct TaskIterator {
    ebpf: Ebpf,
    live_patching: bool,
    /// Time spent reading BTF and loading, for the record.
    load_time: Duration,
}

impl TaskIterator {
    /// Reads the offsets from BTF and loads the program. With
    /// `need_live_patching`, stops before loading on a kernel without
    /// `task_struct.patch_state`.
    pub fn load(need_live_patching: bool) -> Result<TaskIterator, Unavailable> {
        let start = Instant::now();
        let mut kernel = Kernel::read_offsets()?;
        let live_patching = kernel.offsets.patch_state.is_some();
        if need_live_patching && !live_patching {
            return Err(Unavailable::NoLivePatching);
        }
        let mut ebpf = kernel.load_for_snapshot()?;
        let attach_btf = kernel.attach_btf(&[ITER_FUNCTION])?;
        let program: &mut Iter = typed_program(&mut ebpf, TASK_ITER, FINDING)?;
        program
            .load("task", attach_btf)
            .map_err(|e| unavailable("loading the task iterator", &e))?;
        Ok(TaskIterator {
            ebpf,
            live_patching,
            load_time: start.elapsed(),
        })
    }

    /// A new link of the loaded program: each link's file is one pass.
    pub fn link(&mut self) -> Result<IterLink, Unavailable> {
        let program: &mut Iter = typed_program(&mut self.ebpf, TASK_ITER, FINDING)?;
        let link_id = program
            .attach()
            .map_err(|e| unavailable("attaching the task iterator", &e))?;
        program
            .take_link(link_id)
            .map_err(|e| unavailable("attaching the task iterator", &e))
    }

    /// One pass over all tasks. Fails (with a reason) when the injected
    /// offsets turn out wrong: the reading thread must find itself.
    pub fn snapshot(&mut self, keep: Keep) -> Result<TaskSnapshot, Unavailable> {
        let file = self
            .link()?
            .into_file()
            .map_err(|e| unavailable("opening the task iterator", &e))?;
        let mut snapshot = read_snapshot(file, self.live_patching, keep)?;
        snapshot.load_time = self.load_time;
        Ok(snapshot)
    }
}

/// Reads one pass from an iterator's file and converts it; `pass_time` is
/// the read and the conversion.
pub fn read_snapshot(
    mut file: File,
    live_patching: bool,
    keep: Keep,
) -> Result<TaskSnapshot, Unavailable> {
    let start = Instant::now();
    let bytes = read_all(&mut file)?;
    let mut snapshot = convert(&bytes, live_patching, keep)?;
    snapshot.pass_time = start.elapsed();
    Ok(snapshot)
}

/// The raw records of one pass (the bench's floor reads only this).
pub fn read_all(file: &mut File) -> Result<Vec<u8>, Unavailable> {
    // Whole pages per read: the seq_file fills one buffer per read call.
    let mut bytes = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = file
            .read(&mut chunk)
            .map_err(|e| unavailable("reading the task iterator", &e))?;
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
    Ok(bytes)
}

fn convert(bytes: &[u8], live_patching: bool, keep: Keep) -> Result<TaskSnapshot, Unavailable> {
    let size = std::mem::size_of::<TaskRecord>();
    if !bytes.len().is_multiple_of(size) {
        return Err(Unavailable::Failed {
            what: "reading the task iterator".into(),
            error: format!("{} bytes is not a whole number of records", bytes.len()),
        });
    }
    let mut threads = Vec::new();
    let mut seen = 0;
    let mut incomplete = 0;
    let mut found_self = false;
    for chunk in bytes.chunks_exact(size) {
        // SAFETY: `chunk` holds `size_of::<TaskRecord>()` bytes and
        // TaskRecord is plain integers (any bit pattern is valid).
        let record: TaskRecord = unsafe { chunk.as_ptr().cast::<TaskRecord>().read_unaligned() };
        if record.marks & MARK_CURRENT != 0 {
            if record.marks & MARK_PID_MISMATCH != 0 {
                return Err(Unavailable::Failed {
                    what: "checking task_struct offsets".into(),
                    error: format!(
                        "read pid {} tgid {} for this thread, the kernel says otherwise",
                        record.tid, record.tgid
                    ),
                });
            }
            found_self = true;
        }
        if record.marks & MARK_READ_FAILED != 0 {
            incomplete += 1;
            continue;
        }
        seen += 1;
        let state = patch_state(&record, live_patching);
        // Only the kept threads are worth their comm's allocation: at 50k
        // threads under TCG, converting all of them cost as much as the pass.
        if keep(state) {
            threads.push(thread(&record, state));
        }
    }
    if !found_self {
        return Err(Unavailable::Failed {
            what: "checking task_struct offsets".into(),
            error: "the iterator did not see the thread running it".into(),
        });
    }
    threads.sort_by_key(|t| t.tid);
    Ok(TaskSnapshot {
        threads,
        seen,
        incomplete,
        load_time: Duration::ZERO,
        pass_time: Duration::ZERO,
        pinned_by: None,
    })
}

/// A record's patch state (idle where the kernel has none).
fn patch_state(record: &TaskRecord, live_patching: bool) -> PatchState {
    match record.patch_state {
        _ if !live_patching => PatchState::Idle,
        PATCH_STATE_ABSENT | -1 => PatchState::Idle,
        0 => PatchState::Unpatched,
        _ => PatchState::Patched,
    }
}

/// A wire record as a model thread.
fn thread(record: &TaskRecord, patch_state: PatchState) -> Thread {
    let comm_len = record.comm.iter().position(|&b| b == 0).unwrap_or(16);
    let mut thread = Thread::bare(record.tgid, record.tid, patch_state);
    thread.comm = String::from_utf8_lossy(&record.comm[..comm_len]).into_owned();
    thread.kthread = record.flags & PF_KTHREAD != 0;
    thread.state = TaskState::from_kernel(record.state, record.exit_state);
    thread
}
