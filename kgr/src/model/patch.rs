//! A loaded live patch as `/sys/kernel/livepatch/<patch>` describes it.

use serde::Serialize;

/// One live patch (one livepatch module).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Patch {
    /// The sysfs directory name (the module's KBUILD_MODNAME).
    pub name: String,
    pub enabled: bool,
    /// In transition now (`transition`, 4.12+; false where absent).
    pub transition: bool,
    /// Atomic-replace patch (`replace`, 6.11+).
    pub replace: Option<bool>,
    /// 1-based position on the patch stack (`stack_order`, 6.13+).
    pub stack_order: Option<u32>,
    pub objects: Vec<PatchObject>,
}

/// A patched object: `vmlinux` or a module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PatchObject {
    pub name: String,
    /// `<object>/patched` (6.0+).
    pub patched: Option<bool>,
    pub functions: Vec<PatchedFunction>,
}

/// A function the patch replaces, from its `<function>,<sympos>` directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PatchedFunction {
    pub name: String,
    pub sympos: u32,
}

impl PatchedFunction {
    /// Parses a sysfs function directory name, `name,sympos`.
    pub fn from_dir_name(dir: &str) -> Option<Self> {
        let (name, sympos) = dir.rsplit_once(',')?;
        if name.is_empty() {
            return None;
        }
        Some(PatchedFunction {
            name: name.to_owned(),
            sympos: sympos.parse().ok()?,
        })
    }
}

/// Puts patches in stack order: by `stack_order` when every patch has it,
/// else by name. Objects go `vmlinux` first, then by name; functions by name.
pub fn order_patches(patches: &mut [Patch]) {
    if patches.iter().all(|p| p.stack_order.is_some()) {
        patches.sort_by(|a, b| a.stack_order.cmp(&b.stack_order).then(a.name.cmp(&b.name)));
    } else {
        patches.sort_by(|a, b| a.name.cmp(&b.name));
    }
    for patch in patches {
        patch
            .objects
            .sort_by(|a, b| (a.name != "vmlinux", &a.name).cmp(&(b.name != "vmlinux", &b.name)));
        for object in &mut patch.objects {
            object
                .functions
                .sort_by(|a, b| (&a.name, a.sympos).cmp(&(&b.name, b.sympos)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(name: &str, stack_order: Option<u32>) -> Patch {
        Patch {
            name: name.into(),
            enabled: true,
            transition: false,
            replace: None,
            stack_order,
            objects: vec![],
        }
    }

    #[test]
    fn function_dir_names() {
        assert_eq!(
            PatchedFunction::from_dir_name("cmdline_proc_show,1"),
            Some(PatchedFunction {
                name: "cmdline_proc_show".into(),
                sympos: 1
            })
        );
        assert_eq!(PatchedFunction::from_dir_name("no_sympos"), None);
        assert_eq!(PatchedFunction::from_dir_name(",1"), None);
        assert_eq!(PatchedFunction::from_dir_name("f,x"), None);
    }

    #[test]
    fn stack_order_wins_when_all_have_it() {
        let mut ps = vec![patch("a", Some(2)), patch("b", Some(1))];
        order_patches(&mut ps);
        assert_eq!(ps[0].name, "b");
        let mut ps = vec![patch("b", Some(1)), patch("a", None)];
        order_patches(&mut ps);
        assert_eq!(ps[0].name, "a");
    }
}
