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

/// The kernel's BTF, parsed twice over: our reader for the offsets, aya's
/// for program loading.
pub struct Kernel {
    pub offsets: TaskOffsets,
    pub ours: btf::Btf,
    pub aya: Btf,
}

impl Kernel {
    /// Reads `/sys/kernel/btf/vmlinux` and the offsets the programs need.
    pub fn read() -> Result<Kernel, Unavailable> {
        if OBJECT.is_empty() {
            return Err(Unavailable::NotBuiltIn);
        }
        let path = std::path::Path::new(btf::VMLINUX);
        if !path.exists() {
            return Err(Unavailable::NoBtf);
        }
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
        // aya parses the bytes ours already read (as `Btf::from_sys_fs`
        // would after reading the file a second time).
        let aya = Btf::parse(ours.bytes(), aya::Endianness::default())
            .map_err(|e| unavailable("reading BTF (aya)", &e))?;
        Ok(Kernel { offsets, ours, aya })
    }

    /// Loads the object (maps created, no program loaded yet) with the
    /// offsets injected.
    pub fn load(&self) -> Result<Ebpf, Unavailable> {
        self.load_with(&[])
    }

    /// As `load`, for the task snapshot alone: the maps only the tracers
    /// use are created with one entry (the ring buffer with one page)
    /// instead of their full size. The 65,536-entry preallocated hash of the
    /// syscall tracker was most of the object's load time (host: ~7 ms of
    /// ~8 ms; under TCG far more), for a map the iterator never touches.
    pub fn load_for_snapshot(&self) -> Result<Ebpf, Unavailable> {
        self.load_sized(&[], SNAPSHOT_UNUSED_MAPS)
    }

    /// As `load`, with more globals set (`kgr_common::GLOBAL_*`).
    pub fn load_with(&self, extra: &[(&str, u32)]) -> Result<Ebpf, Unavailable> {
        self.load_sized(extra, &[])
    }

    /// As `load_with`, with some maps' `max_entries` overridden.
    fn load_sized(
        &self,
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
        let mut loader = EbpfLoader::new();
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
