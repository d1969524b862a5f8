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
/// Memory and time go to BTF: aya's `EbpfLoader::new()` parses the whole of
/// vmlinux's BTF itself (`Btf::from_sys_fs`, no way around it), so kgr
/// gives aya only a cut copy for the attach ids, and for the one-shot task
/// snapshot keeps no two big copies at once (`read_offsets`,
/// `load_for_snapshot`, `attach_btf`). Measured on the 2-core host with
/// `kgr bench-iterator` (5 runs each): three whole parses 56-75 ms and
/// 41.4 MiB peak RSS; the cut copy with the loader on a thread of its own
/// 32-34 ms and 37.5 MiB; one at a time, as now, 43-44 ms and 28.2 MiB.
pub struct Kernel {
    pub offsets: TaskOffsets,
    pub ours: btf::Btf,
    /// For aya: read with `read`, or later with `attach_btf`.
    aya: Option<Btf>,
}

impl Kernel {
    /// Reads `/sys/kernel/btf/vmlinux`, the offsets the programs need, and
    /// for aya the types up to the last of `functions`, the kernel functions
    /// programs will attach to.
    pub fn read(functions: &[&str]) -> Result<Kernel, Unavailable> {
        let mut kernel = Kernel::read_offsets()?;
        kernel.aya = Some(kernel.cut(functions)?);
        Ok(kernel)
    }

    /// Reads `/sys/kernel/btf/vmlinux` and the offsets only.
    pub fn read_offsets() -> Result<Kernel, Unavailable> {
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
        Ok(Kernel {
            offsets,
            ours,
            aya: None,
        })
    }

    /// aya's copy: the types through the last of `functions`.
    fn cut(&self, functions: &[&str]) -> Result<Btf, Unavailable> {
        Btf::parse(
            &self.ours.prefix_through(functions),
            aya::Endianness::default(),
        )
        .map_err(|e| unavailable("reading BTF (aya)", &e))
    }

    /// The BTF aya finds attach ids in (read by `read` or `attach_btf`).
    pub fn aya(&self) -> Result<&Btf, Unavailable> {
        self.aya.as_ref().ok_or_else(|| Unavailable::Failed {
            what: "reading BTF (aya)".into(),
            error: "not read".into(),
        })
    }

    /// After `load_for_snapshot`: aya's copy for `functions`; our reader's
    /// memory is released (nothing else is looked up in it).
    pub fn attach_btf(&mut self, functions: &[&str]) -> Result<&Btf, Unavailable> {
        let cut = self.cut(functions)?;
        self.ours.release();
        Ok(self.aya.insert(cut))
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
    /// aya gets no BTF for this load (the object has no CO-RE relocations:
    /// offsets are globals), so its own whole copy is gone before kgr cuts
    /// one for the attach id (`attach_btf`).
    pub fn load_for_snapshot(&mut self) -> Result<Ebpf, Unavailable> {
        self.load_sized(&[], SNAPSHOT_UNUSED_MAPS, false)
    }

    /// As `load`, with more globals set (`kgr_common::GLOBAL_*`).
    pub fn load_with(&mut self, extra: &[(&str, u32)]) -> Result<Ebpf, Unavailable> {
        self.load_sized(extra, &[], true)
    }

    /// As `load_with`, with some maps' `max_entries` overridden; with
    /// `target_btf`, aya relocates against the cut BTF (read by `read`).
    fn load_sized(
        &mut self,
        extra: &[(&str, u32)],
        max_entries: &[(&'static str, u32)],
        target_btf: bool,
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
        // Drops aya's own copy of the whole BTF.
        loader.btf(if target_btf { Some(self.aya()?) } else { None });
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
