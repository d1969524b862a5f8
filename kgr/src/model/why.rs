//! Why a thread blocks (`blocking --why`): the patched function on its
//! stack, the reason, the syscall it sleeps in, whether poke can help, and
//! who said so. Pure functions over what the sources read.

use std::collections::HashMap;

use serde::Serialize;

use super::{PatchObject, Thread};

/// Why a thread has not switched yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Why {
    /// The patched (when unpatching: the patch's) function on its stack.
    pub function: Option<String>,
    pub reason: Reason,
    /// The syscall it is in, from `/proc/<pid>/task/<tid>/syscall`.
    pub syscall: Option<String>,
    /// Seconds since it entered the kernel, when the tracer saw it enter.
    pub in_kernel_s: Option<f64>,
    /// Whether SIGSTOP/SIGCONT (`kgr poke`) can move it.
    pub pokeable: bool,
    pub source: Source,
}

/// The kernel's reasons of `klp_try_switch_task` (kernel/livepatch/transition.c),
/// or kgr's inference of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// -EADDRINUSE: a function of the patch is on its stack.
    SleepingOnPatchedFunction,
    /// -EBUSY: running on another CPU.
    Running,
    /// -EINVAL: its stack could not be walked reliably.
    UnreliableStack,
    /// Nothing on its stack holds it: the next check (each second) switches it.
    NotCheckedYet,
    /// Its stack could not be read.
    Unknown,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::SleepingOnPatchedFunction => "sleeping_on_patched_function",
            Reason::Running => "running",
            Reason::UnreliableStack => "unreliable_stack",
            Reason::NotCheckedYet => "not_checked_yet",
            Reason::Unknown => "unknown",
        }
    }

    /// The reason of a `klp_check_and_switch_task` return value; `None` for
    /// 0 (switched) and values it does not return.
    #[cfg_attr(
        all(not(feature = "ebpf"), not(test)),
        expect(dead_code, reason = "read from the eBPF verdicts only")
    )]
    pub fn from_kernel(ret: i32) -> Option<Reason> {
        const EINVAL: i32 = 22;
        const EBUSY: i32 = 16;
        const EADDRINUSE: i32 = 98;
        match -ret {
            EADDRINUSE => Some(Reason::SleepingOnPatchedFunction),
            EBUSY => Some(Reason::Running),
            EINVAL => Some(Reason::UnreliableStack),
            _ => None,
        }
    }
}

/// Who gave the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The kernel's own stack check, seen by the fexit program.
    Ebpf,
    /// kgr's inference from the stack in procfs and `/proc/kallsyms`.
    Procfs,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Ebpf => "ebpf",
            Source::Procfs => "procfs",
        }
    }
}

/// One line of `/proc/kallsyms`, as far as kgr needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSymbol {
    pub address: u64,
    /// `None` for vmlinux.
    pub module: Option<String>,
}

/// Symbols by name, each name's entries in file order (the order `sympos`
/// counts in).
pub type SymbolTable = HashMap<String, Vec<KernelSymbol>>;

/// Parses one kallsyms line: `ffffffff81234560 T name [module]`.
pub fn parse_kallsyms_line(line: &str) -> Option<(&str, KernelSymbol)> {
    let mut fields = line.split_whitespace();
    let address = u64::from_str_radix(fields.next()?, 16).ok()?;
    let _kind = fields.next()?;
    let name = fields.next()?;
    let module = fields
        .next()
        .and_then(|m| m.strip_prefix('['))
        .and_then(|m| m.strip_suffix(']'))
        .map(str::to_owned);
    Some((name, KernelSymbol { address, module }))
}

/// A frame of `/proc/<pid>/task/<tid>/stack`: `[<0>] sym+0x45/0x80 [module]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub symbol: &'a str,
    pub module: Option<&'a str>,
}

pub fn parse_frame(line: &str) -> Option<Frame<'_>> {
    let rest = line.trim_start();
    let rest = match rest.strip_prefix("[<") {
        Some(r) => r.split_once(">]")?.1,
        None => rest,
    };
    let mut fields = rest.split_whitespace();
    let location = fields.next()?;
    let symbol = location.split_once('+').map_or(location, |(s, _)| s);
    let module = fields
        .next()
        .and_then(|m| m.strip_prefix('['))
        .and_then(|m| m.strip_suffix(']'));
    (!symbol.is_empty()).then_some(Frame { symbol, module })
}

/// The names a stack check needs resolved: the frames' symbols.
pub fn frame_symbols(stack: &[String]) -> impl Iterator<Item = &str> {
    stack
        .iter()
        .filter_map(|l| parse_frame(l))
        .map(|f| f.symbol)
}

/// The patch's functions, by address where kallsyms gives one.
#[derive(Debug, Default)]
pub struct PatchedAddresses {
    /// Address → the function's name (as sysfs names it).
    by_address: HashMap<u64, String>,
    /// Functions kallsyms did not resolve (hidden addresses: not root, or a
    /// captured tree without them): matched by name instead.
    by_name: Vec<(String, Option<String>)>,
    /// When unpatching: the patch's own module, whose functions (the
    /// replacements) are what the kernel checks stacks for.
    replacements: Option<String>,
}

impl PatchedAddresses {
    /// Resolves each `<object>/<function>,<sympos>` through the symbol table.
    /// `replacements`: the patch's module when the transition unpatches.
    pub fn resolve(
        objects: &[PatchObject],
        symbols: &SymbolTable,
        replacements: Option<&str>,
    ) -> PatchedAddresses {
        let mut out = PatchedAddresses {
            replacements: replacements.map(str::to_owned),
            ..PatchedAddresses::default()
        };
        for object in objects {
            let module = (object.name != "vmlinux").then(|| object.name.clone());
            for function in &object.functions {
                let address = symbols.get(&function.name).and_then(|entries| {
                    entries
                        .iter()
                        .filter(|s| s.module == module)
                        .nth(function.sympos.max(1) as usize - 1)
                        .map(|s| s.address)
                        .filter(|&a| a != 0)
                });
                match address {
                    Some(a) => {
                        out.by_address.insert(a, function.name.clone());
                    }
                    None => out.by_name.push((function.name.clone(), module.clone())),
                }
            }
        }
        out
    }

    /// Whether addresses were used at all (else names only).
    pub fn by_address(&self) -> bool {
        !self.by_address.is_empty()
    }

    /// The first patched function on `stack` (innermost first), compared by
    /// address: an alias (`__do_sys_pause` for `__x64_sys_pause`) is found.
    pub fn on_stack(&self, stack: &[String], symbols: &SymbolTable) -> Option<String> {
        for frame in stack.iter().filter_map(|l| parse_frame(l)) {
            if frame.module.is_some() && frame.module == self.replacements.as_deref() {
                return Some(frame.symbol.to_owned());
            }
            let hit = symbols.get(frame.symbol).and_then(|entries| {
                entries
                    .iter()
                    .filter(|s| s.module.as_deref() == frame.module)
                    .find_map(|s| self.by_address.get(&s.address))
            });
            if let Some(name) = hit {
                return Some(name.clone());
            }
            if let Some((name, _)) = self
                .by_name
                .iter()
                .find(|(n, m)| n == frame.symbol && m.as_deref() == frame.module)
            {
                return Some(name.clone());
            }
        }
        None
    }
}

/// Whether SIGSTOP/SIGCONT can move the thread (the rules of `poke`).
pub fn pokeable(thread: &Thread) -> bool {
    let s = thread.state;
    !(thread.kthread
        || thread.pid == 1
        || s.is_uninterruptible()
        || s.is_stopped()
        || s.is_traced()
        || s.is_zombie())
}

/// kgr's inference from procfs: the patched function on the stack, else
/// running when the scheduler says R, else nothing holds it.
pub fn infer(thread: &Thread, function: Option<String>) -> Reason {
    match (&thread.stack, function) {
        (_, Some(_)) => Reason::SleepingOnPatchedFunction,
        _ if thread.state.0 == 'R' => Reason::Running,
        (Some(stack), None) if !stack.is_empty() => Reason::NotCheckedYet,
        _ => Reason::Unknown,
    }
}

/// The syscall named by the first field of `/proc/.../syscall`: `None` when
/// running, not in a syscall (-1: kthreads) or unreadable.
pub fn syscall_name(text: &str) -> Option<String> {
    let first = text.split_whitespace().next()?;
    let nr: i64 = first.parse().ok()?;
    if nr < 0 {
        return None;
    }
    Some(
        syscall_by_number(nr)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("syscall_{nr}")),
    )
}

/// The common x86-64 syscalls (arch/x86/entry/syscalls/syscall_64.tbl).
pub fn syscall_by_number(nr: i64) -> Option<&'static str> {
    if !cfg!(target_arch = "x86_64") {
        return None;
    }
    Some(match nr {
        0 => "read",
        1 => "write",
        2 => "open",
        3 => "close",
        7 => "poll",
        17 => "pread64",
        18 => "pwrite64",
        19 => "readv",
        20 => "writev",
        23 => "select",
        34 => "pause",
        35 => "nanosleep",
        43 => "accept",
        44 => "sendto",
        45 => "recvfrom",
        46 => "sendmsg",
        47 => "recvmsg",
        61 => "wait4",
        62 => "kill",
        72 => "fcntl",
        74 => "fsync",
        130 => "rt_sigsuspend",
        128 => "rt_sigtimedwait",
        202 => "futex",
        230 => "clock_nanosleep",
        232 => "epoll_wait",
        247 => "waitid",
        257 => "openat",
        270 => "pselect6",
        271 => "ppoll",
        281 => "epoll_pwait",
        288 => "accept4",
        441 => "epoll_pwait2",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PatchState, PatchedFunction, TaskState};

    fn table(lines: &str) -> SymbolTable {
        let mut t = SymbolTable::new();
        for line in lines.lines() {
            if let Some((name, sym)) = parse_kallsyms_line(line) {
                t.entry(name.to_owned()).or_default().push(sym);
            }
        }
        t
    }

    fn objects() -> Vec<PatchObject> {
        let f = |n: &str| PatchedFunction {
            name: n.into(),
            sympos: 1,
        };
        vec![
            PatchObject {
                name: "vmlinux".into(),
                patched: Some(true),
                functions: vec![f("__x64_sys_pause")],
            },
            PatchObject {
                name: "klp_blocker".into(),
                patched: Some(true),
                functions: vec![f("klp_busy_user_wait")],
            },
        ]
    }

    const KALLSYMS: &str = "\
ffffffff81100000 T __x64_sys_pause
ffffffff81100000 t __do_sys_pause
ffffffff81100100 T vfs_read
ffffffffc0001000 t klp_busy_user_wait\t[klp_blocker]
ffffffffc0002000 t klp_busy_user_wait\t[livepatch_test]
";

    fn stack(frames: &[&str]) -> Vec<String> {
        frames.iter().map(|f| (*f).to_owned()).collect()
    }

    #[test]
    fn frames_parse() {
        assert_eq!(
            parse_frame("[<0>] klp_busy_user_wait+0x45/0x80 [klp_blocker]"),
            Some(Frame {
                symbol: "klp_busy_user_wait",
                module: Some("klp_blocker")
            })
        );
        assert_eq!(
            parse_frame("[<ffffffff81100010>] __do_sys_pause+0x10/0x30"),
            Some(Frame {
                symbol: "__do_sys_pause",
                module: None
            })
        );
        assert_eq!(parse_frame(""), None);
    }

    #[test]
    fn an_alias_is_matched_by_address() {
        let t = table(KALLSYMS);
        let p = PatchedAddresses::resolve(&objects(), &t, None);
        assert!(p.by_address());
        let s = stack(&[
            "[<0>] __do_sys_pause+0x10/0x30",
            "[<0>] do_syscall_64+0x82/0x190",
        ]);
        assert_eq!(p.on_stack(&s, &t), Some("__x64_sys_pause".into()));
    }

    #[test]
    fn a_module_function_is_matched_in_its_module_only() {
        let t = table(KALLSYMS);
        let p = PatchedAddresses::resolve(&objects(), &t, None);
        let s = stack(&["[<0>] klp_busy_user_wait+0x45/0x80 [klp_blocker]"]);
        assert_eq!(p.on_stack(&s, &t), Some("klp_busy_user_wait".into()));
        let s = stack(&["[<0>] klp_busy_user_wait+0x45/0x80 [livepatch_test]"]);
        assert_eq!(p.on_stack(&s, &t), None);
        let s = stack(&["[<0>] vfs_read+0x4/0x80"]);
        assert_eq!(p.on_stack(&s, &t), None);
        // Unpatching: the patch's own functions hold the thread.
        let p = PatchedAddresses::resolve(&objects(), &t, Some("livepatch_test"));
        let s = stack(&["[<0>] livepatch_sys_pause+0x5/0x20 [livepatch_test]"]);
        assert_eq!(p.on_stack(&s, &t), Some("livepatch_sys_pause".into()));
    }

    #[test]
    fn hidden_addresses_fall_back_to_names() {
        // As kallsyms shows them to non-root: every address 0.
        let hidden: String = KALLSYMS
            .lines()
            .map(|l| format!("0000000000000000{}\n", &l[16..]))
            .collect();
        let t = table(&hidden);
        let p = PatchedAddresses::resolve(&objects(), &t, None);
        assert!(!p.by_address());
        let s = stack(&["[<0>] __x64_sys_pause+0x10/0x30"]);
        assert_eq!(p.on_stack(&s, &t), Some("__x64_sys_pause".into()));
    }

    #[test]
    fn reasons_and_pokeability() {
        let mut t = Thread::bare(40, 41, PatchState::Unpatched);
        t.state = TaskState('S');
        t.stack = Some(vec!["[<0>] ep_poll+0x1/0x2".into()]);
        assert_eq!(
            infer(&t, Some("f".into())),
            Reason::SleepingOnPatchedFunction
        );
        assert_eq!(infer(&t, None), Reason::NotCheckedYet);
        assert!(pokeable(&t));
        t.state = TaskState('R');
        assert_eq!(infer(&t, None), Reason::Running);
        t.state = TaskState('Z');
        t.stack = Some(vec![]);
        assert_eq!(infer(&t, None), Reason::Unknown);
        assert!(!pokeable(&t));
        t.state = TaskState('S');
        t.kthread = true;
        assert!(!pokeable(&t));
        t.kthread = false;
        t.pid = 1;
        assert!(!pokeable(&t));
        assert_eq!(
            Reason::from_kernel(-98),
            Some(Reason::SleepingOnPatchedFunction)
        );
        assert_eq!(Reason::from_kernel(-16), Some(Reason::Running));
        assert_eq!(Reason::from_kernel(-22), Some(Reason::UnreliableStack));
        assert_eq!(Reason::from_kernel(0), None);
    }

    #[test]
    fn syscalls_by_name() {
        assert_eq!(syscall_name("34 0x0 0x0 0x0"), Some("pause".into()));
        assert_eq!(syscall_name("0 0x3 0x7f 0x1000"), Some("read".into()));
        assert_eq!(syscall_name("running"), None);
        assert_eq!(syscall_name("-1 0x0 0x0"), None);
        assert_eq!(syscall_name("999 0x0"), Some("syscall_999".into()));
        assert_eq!(syscall_name(""), None);
    }
}
