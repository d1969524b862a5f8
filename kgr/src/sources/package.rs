//! The package that owns a patch module: rpm, else dpkg, with its changelog.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;

/// What the package manager knows of a patch's module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageInfo {
    /// `name-version-release.arch` (rpm) or `name` (dpkg).
    pub name: String,
    #[serde(skip)]
    pub manager: Manager,
    pub cves: Vec<String>,
    pub bugs: Vec<String>,
    /// The package's changelog has one entry: the first version of the patch.
    pub initial: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    Rpm,
    Dpkg,
}

/// Looks up the package of the module `module` on the running system.
/// Every missing piece (no module file, no rpm/dpkg, no owner) gives `None`.
pub fn lookup(module: &str) -> Option<PackageInfo> {
    let file = module_file(module)?;
    if let Some(owner) = run(
        "rpm",
        &["-qf", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\\n"],
        &file,
    ) {
        let name = owner.lines().next()?.trim().to_owned();
        let changelog = run("rpm", &["-q", "--changelog"], Path::new(&name)).unwrap_or_default();
        let (cves, bugs, initial) = rpm_changelog_refs(&changelog);
        return Some(PackageInfo {
            name,
            manager: Manager::Rpm,
            cves,
            bugs,
            initial,
        });
    }
    let owner = run("dpkg", &["-S"], &file)?;
    let name = owner.lines().next()?.split(':').next()?.trim().to_owned();
    let changelog = Command::new("zcat")
        .arg(format!("/usr/share/doc/{name}/changelog.Debian.gz"))
        .stderr(Stdio::null())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let (cves, bugs, initial) = debian_changelog_refs(&changelog);
    Some(PackageInfo {
        name,
        manager: Manager::Dpkg,
        cves,
        bugs,
        initial,
    })
}

fn run(program: &str, args: &[&str], target: &Path) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .arg(target)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The module's file, from `modules.dep` of the running kernel.
fn module_file(module: &str) -> Option<PathBuf> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let base = PathBuf::from("/lib/modules").join(release.trim());
    let dep = std::fs::read_to_string(base.join("modules.dep")).ok()?;
    let wanted = normalize(module);
    dep.lines()
        .filter_map(|line| line.split(':').next())
        .find(|path| {
            let file = path.rsplit('/').next().unwrap_or(path);
            let stem = file.split(".ko").next().unwrap_or(file);
            normalize(stem) == wanted
        })
        .map(|path| {
            if path.starts_with('/') {
                PathBuf::from(path)
            } else {
                base.join(path)
            }
        })
}

/// Module names treat `-` and `_` alike.
fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// CVE and bsc#/boo# references of the newest rpm changelog entry (entries
/// start with `* `); `initial` when the changelog has a single entry.
fn rpm_changelog_refs(changelog: &str) -> (Vec<String>, Vec<String>, bool) {
    newest_entry_refs(changelog, |line| line.starts_with("* "))
}

/// The same for a Debian changelog (entries start with `name (version)`).
fn debian_changelog_refs(changelog: &str) -> (Vec<String>, Vec<String>, bool) {
    newest_entry_refs(changelog, |line| {
        !line.starts_with(' ') && !line.is_empty() && line.contains(" (") && line.contains(';')
    })
}

fn newest_entry_refs(
    changelog: &str,
    is_header: impl Fn(&str) -> bool,
) -> (Vec<String>, Vec<String>, bool) {
    let headers = changelog.lines().filter(|l| is_header(l)).count();
    let newest: Vec<&str> = changelog
        .lines()
        .skip_while(|l| !is_header(l))
        .enumerate()
        .take_while(|(i, l)| *i == 0 || !is_header(l))
        .map(|(_, l)| l)
        .collect();
    let mut cves = Vec::new();
    let mut bugs = Vec::new();
    for line in newest {
        for word in line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '#')) {
            if is_cve(word) && !cves.iter().any(|c| c == word) {
                cves.push(word.to_owned());
            }
            let lower = word.to_ascii_lowercase();
            if (lower.starts_with("bsc#") || lower.starts_with("boo#"))
                && word.len() > 4
                && word[4..].bytes().all(|b| b.is_ascii_digit())
                && !bugs.iter().any(|b| b == word)
            {
                bugs.push(word.to_owned());
            }
        }
    }
    (cves, bugs, headers == 1)
}

fn is_cve(word: &str) -> bool {
    let mut parts = word.split('-');
    parts.next() == Some("CVE")
        && parts
            .next()
            .is_some_and(|y| y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit()))
        && parts
            .next()
            .is_some_and(|n| n.len() >= 4 && n.bytes().all(|b| b.is_ascii_digit()))
        && parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RPM_LOG: &str = "\
* Wed Oct 14 2020 nstange@suse.de
- Fix for CVE-2020-14386 (bsc#1176069, bsc#1176072).
- Fix for CVE-2020-25212 (bsc#1176381).
- bsc#1171732: bug fixes and enhancements.

* Tue Sep 01 2020 mbenes@suse.cz
- Fix for CVE-2020-1749 (bsc#1165631).
";

    #[test]
    fn rpm_newest_entry_only() {
        let (cves, bugs, initial) = rpm_changelog_refs(RPM_LOG);
        assert_eq!(cves, ["CVE-2020-14386", "CVE-2020-25212"]);
        assert_eq!(
            bugs,
            ["bsc#1176069", "bsc#1176072", "bsc#1176381", "bsc#1171732"]
        );
        assert!(!initial);
    }

    #[test]
    fn single_entry_is_initial() {
        let (cves, bugs, initial) =
            rpm_changelog_refs("* Mon Jan 01 2024 a@b\n- Initial livepatch.\n");
        assert!(cves.is_empty() && bugs.is_empty());
        assert!(initial);
    }

    #[test]
    fn debian_changelog() {
        let log = "kgr-test-patch (1.2) unstable; urgency=medium\n\n  * Fix CVE-2024-1234.\n\n -- A <a@b>  Mon, 01 Jan 2024 00:00:00 +0000\n\nkgr-test-patch (1.1) unstable; urgency=medium\n\n  * CVE-2023-9999\n";
        let (cves, _, initial) = debian_changelog_refs(log);
        assert_eq!(cves, ["CVE-2024-1234"]);
        assert!(!initial);
    }

    #[test]
    fn cve_shape() {
        assert!(is_cve("CVE-2020-14386"));
        assert!(!is_cve("CVE-20-1"));
        assert!(!is_cve("CVE-2020-14386-x"));
    }
}
