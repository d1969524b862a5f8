//! A small reader of the kernel's BTF (`/sys/kernel/btf/vmlinux`): the byte
//! offsets of the `task_struct` members kgr's programs read, and whether a
//! function exists. It indexes type records by walking their headers and
//! decodes only the types it is asked about (include/uapi/linux/btf.h).

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};

pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// The `task_struct` members kgr reads, as byte offsets; `None` = absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskOffsets {
    pub pid: Option<u32>,
    pub tgid: Option<u32>,
    pub state: Option<u32>,
    pub exit_state: Option<u32>,
    pub flags: Option<u32>,
    pub comm: Option<u32>,
    /// Present only on CONFIG_LIVEPATCH kernels.
    pub patch_state: Option<u32>,
}

impl TaskOffsets {
    /// The first member the programs cannot do without, if one is missing.
    pub fn missing_required(&self) -> Option<&'static str> {
        [
            ("pid", self.pid),
            ("tgid", self.tgid),
            ("__state", self.state),
            ("exit_state", self.exit_state),
            ("flags", self.flags),
            ("comm", self.comm),
        ]
        .into_iter()
        .find_map(|(name, off)| off.is_none().then_some(name))
    }
}

/// One BTF blob, its type records indexed by id.
pub struct Btf {
    data: Vec<u8>,
    types: std::ops::Range<usize>,
    strings: std::ops::Range<usize>,
    /// Byte position of type `id` at `offsets[id - 1]`.
    offsets: Vec<u32>,
}

fn u16_at(data: &[u8], pos: usize) -> Option<u16> {
    Some(u16::from_le_bytes(data.get(pos..pos + 2)?.try_into().ok()?))
}

fn u32_at(data: &[u8], pos: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(pos..pos + 4)?.try_into().ok()?))
}

/// A type record's header: `struct btf_type`.
#[derive(Debug, Clone, Copy)]
struct TypeHeader {
    name_off: u32,
    kind: u32,
    vlen: u32,
    kind_flag: bool,
    /// `size` or `type`, depending on the kind.
    size_or_type: u32,
}

const HEADER_LEN: usize = 12;

impl Btf {
    /// Reads and indexes the kernel's BTF.
    pub fn read(path: &Path) -> Result<Btf> {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Btf::parse(data).with_context(|| format!("parsing {}", path.display()))
    }

    /// Indexes a little-endian BTF blob (the kernel's own byte order on
    /// every architecture kgr runs on).
    pub fn parse(data: Vec<u8>) -> Result<Btf> {
        ensure!(u16_at(&data, 0) == Some(MAGIC), "not BTF (bad magic)");
        let field = |pos| u32_at(&data, pos).context("truncated header");
        let hdr_len = field(4)? as usize;
        let (type_off, type_len) = (field(8)? as usize, field(12)? as usize);
        let (str_off, str_len) = (field(16)? as usize, field(20)? as usize);
        let types = hdr_len + type_off..hdr_len + type_off + type_len;
        let strings = hdr_len + str_off..hdr_len + str_off + str_len;
        ensure!(
            types.end <= data.len() && strings.end <= data.len(),
            "sections beyond the end"
        );
        let mut offsets = Vec::with_capacity(type_len / 24);
        let mut pos = types.start;
        while pos < types.end {
            let header = header_at(&data, pos).context("truncated type record")?;
            offsets.push(pos as u32);
            pos += HEADER_LEN + extra_len(&header)?;
        }
        ensure!(pos == types.end, "type records overrun their section");
        Ok(Btf {
            data,
            types,
            strings,
            offsets,
        })
    }

    /// How many types the blob has.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    fn header(&self, id: u32) -> Option<(usize, TypeHeader)> {
        let pos = *self.offsets.get((id as usize).checked_sub(1)?)? as usize;
        Some((pos, header_at(&self.data, pos)?))
    }

    fn name(&self, name_off: u32) -> &[u8] {
        let start = self.strings.start + name_off as usize;
        let tail = self.data.get(start..self.strings.end).unwrap_or_default();
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        &tail[..end]
    }

    /// The id of the first type of `kind` named `name` (a definition, not a
    /// forward declaration: kinds are exact).
    fn find(&self, kind: u32, name: &str) -> Option<u32> {
        let name = name.as_bytes();
        (1..=self.offsets.len() as u32).find(|&id| {
            self.header(id)
                .is_some_and(|(_, h)| h.kind == kind && self.name(h.name_off) == name)
        })
    }

    /// The blob cut after the last of `functions` (FUNC types; absent ones
    /// are left out): the same type ids up to there, every string. What aya
    /// needs to find the ids programs attach to, for a fraction of the
    /// parsing (aya reads every type record into memory).
    pub fn prefix_through(&self, functions: &[&str]) -> Vec<u8> {
        let last = functions
            .iter()
            .filter_map(|f| self.find(KIND_FUNC, f))
            .max()
            .unwrap_or(0);
        let types_end = self
            .header(last)
            .and_then(|(pos, h)| Some(pos + HEADER_LEN + extra_len(&h).ok()?))
            .unwrap_or(self.types.start);
        let hdr_len = u32_at(&self.data, 4).map_or(24, |l| l as usize);
        let type_len = types_end - self.types.start;
        let mut blob = Vec::with_capacity(hdr_len + type_len + self.strings.len());
        blob.extend_from_slice(&self.data[..hdr_len]);
        for (pos, value) in [
            (8, 0),
            (12, type_len),
            (16, type_len),
            (20, self.strings.len()),
        ] {
            let value = u32::try_from(value).unwrap_or(u32::MAX).to_le_bytes();
            blob[pos..pos + 4].copy_from_slice(&value);
        }
        blob.extend_from_slice(&self.data[self.types.start..types_end]);
        blob.extend_from_slice(&self.data[self.strings.clone()]);
        blob
    }

    /// Frees the blob and its index, once everything needed was looked up:
    /// later lookups find nothing.
    pub fn release(&mut self) {
        self.data = Vec::new();
        self.offsets = Vec::new();
        self.types = 0..0;
        self.strings = 0..0;
    }

    /// Whether the kernel has a function `name` (what fentry/fexit attach to).
    pub fn has_function(&self, name: &str) -> bool {
        self.find(KIND_FUNC, name).is_some()
    }

    /// The byte offset of each member of struct `name` asked for in `wanted`,
    /// looking into anonymous struct/union members; `None` for a struct or
    /// member this kernel lacks.
    pub fn member_offsets<const N: usize>(
        &self,
        name: &str,
        wanted: [&str; N],
    ) -> Result<Option<[Option<u32>; N]>> {
        let Some(id) = self.find(KIND_STRUCT, name) else {
            return Ok(None);
        };
        let mut found = [None; N];
        self.collect_members(id, 0, &wanted, &mut found, 0)?;
        Ok(Some(found))
    }

    fn collect_members<const N: usize>(
        &self,
        id: u32,
        base_bits: u32,
        wanted: &[&str; N],
        found: &mut [Option<u32>; N],
        depth: u32,
    ) -> Result<()> {
        // Anonymous members nest a few levels deep in task_struct; a loop
        // would be a corrupt blob.
        ensure!(depth < 16, "anonymous members nest too deep (type {id})");
        let (pos, header) = self.header(id).with_context(|| format!("no type {id}"))?;
        ensure!(
            matches!(header.kind, KIND_STRUCT | KIND_UNION),
            "type {id} is not a struct or union"
        );
        for i in 0..header.vlen as usize {
            let member = pos + HEADER_LEN + i * 12;
            let (Some(name_off), Some(ty), Some(offset)) = (
                u32_at(&self.data, member),
                u32_at(&self.data, member + 4),
                u32_at(&self.data, member + 8),
            ) else {
                bail!("truncated member {i} of type {id}");
            };
            // With kind_flag, the high 8 bits are a bitfield's size.
            let bits = if header.kind_flag {
                offset & 0x00ff_ffff
            } else {
                offset
            };
            let bits = base_bits + bits;
            let member_name = self.name(name_off);
            if member_name.is_empty() {
                if let Some(inner) = self.skip_modifiers(ty) {
                    self.collect_members(inner, bits, wanted, found, depth + 1)?;
                }
                continue;
            }
            if let Some(slot) = wanted.iter().position(|w| w.as_bytes() == member_name) {
                if found[slot].is_none() && bits.is_multiple_of(8) {
                    found[slot] = Some(bits / 8);
                }
            }
        }
        Ok(())
    }

    /// Follows typedef/const/volatile/restrict/type_tag to a struct or union.
    fn skip_modifiers(&self, mut id: u32) -> Option<u32> {
        for _ in 0..16 {
            let (_, header) = self.header(id)?;
            match header.kind {
                KIND_STRUCT | KIND_UNION => return Some(id),
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = header.size_or_type;
                }
                _ => return None,
            }
        }
        None
    }

    /// The `task_struct` members kgr's programs read.
    pub fn task_offsets(&self) -> Result<TaskOffsets> {
        let found = self
            .member_offsets(
                "task_struct",
                [
                    "pid",
                    "tgid",
                    "__state",
                    "exit_state",
                    "flags",
                    "comm",
                    "patch_state",
                ],
            )?
            .context("no struct task_struct in BTF")?;
        let [pid, tgid, state, exit_state, flags, comm, patch_state] = found;
        Ok(TaskOffsets {
            pid,
            tgid,
            state,
            exit_state,
            flags,
            comm,
            patch_state,
        })
    }
}

fn header_at(data: &[u8], pos: usize) -> Option<TypeHeader> {
    let info = u32_at(data, pos + 4)?;
    Some(TypeHeader {
        name_off: u32_at(data, pos)?,
        kind: (info >> 24) & 0x1f,
        vlen: info & 0xffff,
        kind_flag: info >> 31 == 1,
        size_or_type: u32_at(data, pos + 8)?,
    })
}

/// The bytes that follow a type record's header.
fn extra_len(header: &TypeHeader) -> Result<usize> {
    let vlen = header.vlen as usize;
    Ok(match header.kind {
        KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
        KIND_ARRAY => 12,
        KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen,
        KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
        KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
        | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
        kind => bail!("unknown BTF kind {kind}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob: `struct s { int a; union { int b; struct { int c; }; }; }`
    /// with c at byte 8.
    fn sample() -> Vec<u8> {
        let strings = b"\0s\0a\0b\0c\0int\0".to_vec();
        let (s, a, b, c, int) = (1u32, 3u32, 5u32, 7u32, 9u32);
        let mut types = Vec::new();
        let mut push = |words: &[u32]| {
            for w in words {
                types.extend_from_slice(&w.to_le_bytes());
            }
        };
        // 1: int
        push(&[int, KIND_INT << 24, 4, 32]);
        // 2: struct s, 2 members
        push(&[s, KIND_STRUCT << 24 | 2, 16, a, 1, 0, 0, 3, 32]);
        // 3: anonymous union, 2 members
        push(&[0, KIND_UNION << 24 | 2, 8, b, 1, 0, 0, 4, 32]);
        // 4: anonymous struct, 1 member
        push(&[0, KIND_STRUCT << 24 | 1, 4, c, 1, 0]);
        let mut blob = Vec::new();
        blob.extend_from_slice(&MAGIC.to_le_bytes());
        blob.extend_from_slice(&[1, 0]);
        for w in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            blob.extend_from_slice(&w.to_le_bytes());
        }
        blob.extend_from_slice(&types);
        blob.extend_from_slice(&strings);
        blob
    }

    #[test]
    fn members_through_anonymous_unions() {
        let btf = Btf::parse(sample()).expect("valid blob");
        assert_eq!(btf.len(), 4);
        let found = btf
            .member_offsets("s", ["a", "b", "c", "d"])
            .expect("parses");
        assert_eq!(found, Some([Some(0), Some(4), Some(8), None]));
        assert_eq!(btf.member_offsets("t", ["a"]).expect("parses"), None);
    }

    #[test]
    fn a_prefix_keeps_ids_and_strings() {
        let btf = Btf::parse(sample()).expect("sample parses");
        let whole = btf.prefix_through(&["no_such_function"]);
        let empty = Btf::parse(whole).expect("an empty prefix parses");
        assert_eq!(empty.len(), 0);
        assert_eq!(empty.strings.len(), btf.strings.len());
    }

    #[test]
    fn rejects_garbage() {
        assert!(Btf::parse(b"not btf at all, really".to_vec()).is_err());
        let mut truncated = sample();
        truncated.truncate(40);
        assert!(Btf::parse(truncated).is_err());
    }

    /// The host's own BTF cut after the iterator's function: the function
    /// keeps its id, and aya parses the cut blob.
    #[test]
    fn host_prefix_through_the_task_iterator() {
        let path = Path::new(VMLINUX);
        if !path.exists() {
            println!("SKIPPED: {VMLINUX} is absent (kernel without CONFIG_DEBUG_INFO_BTF)");
            return;
        }
        let btf = Btf::read(path).expect("host BTF parses");
        let id = btf
            .find(KIND_FUNC, "bpf_iter_task")
            .expect("the host kernel has bpf_iter_task");
        let prefix = btf.prefix_through(&["bpf_iter_task", "kgr_no_such_function"]);
        let cut = Btf::parse(prefix.clone()).expect("the prefix parses");
        assert_eq!(cut.len(), id as usize);
        assert_eq!(cut.find(KIND_FUNC, "bpf_iter_task"), Some(id));
        println!(
            "host BTF: {} types, {} bytes; prefix through bpf_iter_task (id {id}): {} bytes",
            btf.len(),
            btf.data.len(),
            prefix.len()
        );
        aya::Btf::parse(&prefix, aya::Endianness::default()).expect("aya parses the prefix");
    }

    /// The host's own BTF: task_struct's members are where the kernel puts them.
    #[test]
    fn host_task_struct() {
        let path = Path::new(VMLINUX);
        if !path.exists() {
            println!("SKIPPED: {VMLINUX} is absent (kernel without CONFIG_DEBUG_INFO_BTF)");
            return;
        }
        let start = std::time::Instant::now();
        let btf = Btf::read(path).expect("host BTF parses");
        let indexed = start.elapsed();
        let offsets = btf.task_offsets().expect("task_struct found");
        let total = start.elapsed();
        println!(
            "host BTF: {} types, read+index {indexed:?}, task_struct offsets {:?} (total {total:?})",
            btf.len(),
            offsets
        );
        assert_eq!(offsets.missing_required(), None, "{offsets:?}");
        let (pid, tgid) = (offsets.pid.unwrap_or(0), offsets.tgid.unwrap_or(0));
        // pid_t pid; pid_t tgid; are adjacent in every kernel since 2.6.
        assert_eq!(tgid, pid + 4);
        // `__state` is the first member after the thread_info (x86: 24 bytes).
        assert!(offsets.state.is_some_and(|s| s < 64));
        assert!(offsets.comm.is_some_and(|c| c > pid));
        assert!(btf.has_function("schedule"));
        assert!(!btf.has_function("kgr_no_such_function"));
    }
}
