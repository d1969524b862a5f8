//! The embedded eBPF object and how it is loaded: member offsets from BTF
//! injected as globals.

use aya::{Btf, Ebpf, EbpfLoader};
use kgr_common::{
    GLOBAL_OFFSET_COMM, GLOBAL_OFFSET_EXIT_STATE, GLOBAL_OFFSET_FLAGS, GLOBAL_OFFSET_PATCH_STATE,
    GLOBAL_OFFSET_PID, GLOBAL_OFFSET_STATE, GLOBAL_OFFSET_TGID, OFFSET_ABSENT,
};

use super::btf::{self, TaskOffsets};
use super::{unavailable, Unavailable};

/// The object kgr/build.rs built (empty when the build was skipped), aligned
/// for the ELF parser.
static OBJECT: &[u8] = {
    #[repr(C, align(8))]
    struct Aligned<T: ?Sized>(T);
    static ALIGNED: &Aligned<[u8]> =
        &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/kgr-ebpf")));
    &ALIGNED.0
};

/// The maps of the object that the `iter/task` program does not use, and the
/// size they get when only the snapshot is loaded (aya rounds the ring
/// buffer up to a page). Names as in kgr-ebpf's `#[map]` statics.
const SNAPSHOT_UNUSED_MAPS: &[(&str, u32)] =
    &[("IN_KERNEL", 1), ("VERDICTS", 1), ("TRANSITION_EVENTS", 1)];

/// The kernel's BTF as kgr needs it: our reader for the offsets, and for
/// aya (which needs the ids programs attach to) the types only up to the
/// last function attached to.
///
/// aya's `EbpfLoader::new()` parses the whole of vmlinux's BTF itself
/// (`Btf::from_sys_fs`); kgr replaces that copy with the cut one, so it
/// starts the loader on a thread of its own while the main thread reads
/// BTF. On the 2-core host (`kgr bench-iterator`, 5 runs each) the load
/// went from 56-75 ms to 45-57 ms, peak RSS from 41.4 to 38.5 MiB.
pub struct Kernel {
    pub offsets: TaskOffsets,
    pub ours: btf::Btf,
    pub aya: Btf,
    /// The loader, being made on its own thread (taken by the first load).
    loader: Option<std::thread::JoinHandle<EbpfLoader<'static>>>,
}

impl Kernel {
    /// Reads `/sys/kernel/btf/vmlinux` and the offsets the programs need;
    /// `functions` are the kernel functions programs will attach to
    /// (`bpf_iter_task` for the task iterator).
    pub fn read(functions: &[&str]) -> Result<Kernel, Unavailable> {
        if OBJECT.is_empty() {
            return Err(Unavailable::NotBuiltIn);
        }
        let path = std::path::Path::new(btf::VMLINUX);
        if !path.exists() {
            return Err(Unavailable::NoBtf);
        }
        let loader = std::thread::Builder::new()
            .name("kgr-ebpf-loader".into())
            .spawn(EbpfLoader::new)
            .ok();
        let ours = btf::Btf::read(path).map_err(|e| Unavailable::Failed {
            what: "reading BTF".into(),
            error: format!("{e:#}"),
        })?;
        let offsets = ours.task_offsets().map_err(|e| Unavailable::Failed {
            what: "reading BTF".into(),
            error: format!("{e:#}"),
        })?;
        if let Some(member) = offsets.missing_required() {
            return Err(Unavailable::Failed {
                what: "reading BTF".into(),
                error: format!("task_struct has no {member}"),
            });
        }
        let aya = Btf::parse(&ours.prefix_through(functions), aya::Endianness::default())
            .map_err(|e| unavailable("reading BTF (aya)", &e))?;
        Ok(Kernel {
            offsets,
            ours,
            aya,
            loader,
        })
    }

    /// Loads the object (maps created, no program loaded yet) with the
    /// offsets injected.
    pub fn load(&mut self) -> Result<Ebpf, Unavailable> {
        self.load_with(&[])
    }

    /// As `load`, for the task snapshot alone: the maps only the tracers
    /// use are created with one entry (the ring buffer with one page)
    /// instead of their full size. The 65,536-entry preallocated hash of the
    /// syscall tracker was most of the object's load time (host: ~7 ms of
    /// ~8 ms; under TCG far more), for a map the iterator never touches.
    pub fn load_for_snapshot(&mut self) -> Result<Ebpf, Unavailable> {
        self.load_sized(&[], SNAPSHOT_UNUSED_MAPS)
    }

    /// As `load`, with more globals set (`kgr_common::GLOBAL_*`).
    pub fn load_with(&mut self, extra: &[(&str, u32)]) -> Result<Ebpf, Unavailable> {
        self.load_sized(extra, &[])
    }

    /// As `load_with`, with some maps' `max_entries` overridden.
    fn load_sized(
        &mut self,
        extra: &[(&str, u32)],
        max_entries: &[(&'static str, u32)],
    ) -> Result<Ebpf, Unavailable> {
        let o = &self.offsets;
        let globals = [
            (GLOBAL_OFFSET_PID, o.pid),
            (GLOBAL_OFFSET_TGID, o.tgid),
            (GLOBAL_OFFSET_STATE, o.state),
            (GLOBAL_OFFSET_EXIT_STATE, o.exit_state),
            (GLOBAL_OFFSET_FLAGS, o.flags),
            (GLOBAL_OFFSET_COMM, o.comm),
            (GLOBAL_OFFSET_PATCH_STATE, o.patch_state),
        ];
        let values: Vec<(&str, u32)> = globals
            .iter()
            .map(|&(name, off)| (name, off.unwrap_or(OFFSET_ABSENT)))
            .chain(extra.iter().copied())
            .collect();
        let mut loader: EbpfLoader<'_> = self
            .loader
            .take()
            .and_then(|thread| thread.join().ok())
            .unwrap_or_default();
        // Drops aya's own copy of the whole BTF. The object has no CO-RE
        // relocations (offsets are globals), so the cut BTF is enough.
        loader.btf(Some(&self.aya));
        for (name, value) in &values {
            loader.override_global(name, value, true);
        }
        for &(name, entries) in max_entries {
            loader.map_max_entries(name, entries);
        }
        loader
            .load(OBJECT)
            .map_err(|e| unavailable("loading the eBPF object", &e))
    }
}
