//! `cargo xtask vm setup`: host packages, kernels, modules, guest programs,
//! static kgr, initramfs. Idempotent: a warm run only re-checks and rebuilds
//! what changed.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use anyhow::{anyhow, bail, Context, Result};

use super::cpio::Cpio;
use super::{progress, Kernel, Lab};

/// Host packages the lab needs (qemu comes from backports, see below).
const HOST_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "busybox-static",
    "dwarves",
    "gcc",
    "make",
    "libc6-dev",
    // rsvg-convert: rasterises the guest's `monitor --report` picture.
    "librsvg2-bin",
];

/// Where the static kgr lands.
const KGR_TARGET: &str = "x86_64-unknown-linux-gnu";

/// What a prepared kernel provides.
pub(crate) struct KernelFiles {
    pub vmlinuz: PathBuf,
    pub headers: PathBuf,
    pub version: String,
}

/// Prepares the lab for `kernels`. `Ok(Some(why))`: the lab cannot run on
/// this machine (not root and packages missing, not Debian).
pub fn setup(lab: &Lab, kernels: &[Kernel]) -> Result<Option<String>> {
    let started = std::time::Instant::now();
    if !Path::new("/usr/bin/dpkg-query").exists() {
        return Ok(Some(
            "the lab needs a Debian host (dpkg and apt not found)".into(),
        ));
    }
    let root = is_root();
    let codename = codename()?;
    let missing = missing_packages()?;
    let apt = Apt::new(lab, &codename);
    if !missing.is_empty() {
        let backports = format!("{codename}-backports");
        let others: Vec<&str> = missing
            .iter()
            .map(String::as_str)
            .filter(|p| *p != "qemu-system-x86")
            .collect();
        if !root {
            let mut how = String::from("not root and host packages are missing; as root run");
            if missing.iter().any(|p| p == "qemu-system-x86") {
                how.push_str(&format!(
                    " (with {backports} in the apt sources): apt-get install --no-install-recommends -t {backports} qemu-system-x86"
                ));
                if !others.is_empty() {
                    how.push_str(" &&");
                } else {
                    how.push(':');
                }
            } else {
                how.push(':');
            }
            if !others.is_empty() {
                how.push_str(&format!(
                    " apt-get install --no-install-recommends {}",
                    others.join(" ")
                ));
            }
            how.push_str(" (or run `cargo xtask vm setup` as root)");
            eprintln!("vm: {how}");
            return Ok(Some(how));
        }
        apt.prepare()?;
        if !others.is_empty() {
            progress(&format!("installing host packages: {}", others.join(" ")));
            apt.install(&others, None)?;
        }
        if missing.iter().any(|p| p == "qemu-system-x86") {
            progress(&format!("installing qemu-system-x86 from {backports}"));
            apt.install(&["qemu-system-x86"], Some(&backports))?;
        }
        let still = missing_packages()?;
        if !still.is_empty() {
            bail!(
                "host packages still missing after apt-get install: {}",
                still.join(" ")
            );
        }
    }
    fs::create_dir_all(&lab.cache).with_context(|| format!("creating {}", lab.cache.display()))?;

    let mut files = Vec::new();
    for &k in kernels {
        files.push((k, ensure_kernel(lab, &apt, k)?));
    }
    let mut guest_bins = build_guest_programs(lab)?;
    let kgr = build_static_kgr(lab)?;
    guest_bins.push(build_static_bench_scan(lab)?);
    for (k, kf) in &files {
        let modules = build_modules(lab, *k, kf)?;
        write_initramfs(lab, *k, &guest_bins, &kgr, &modules)?;
    }
    progress(&format!(
        "lab ready ({:.1} s)",
        started.elapsed().as_secs_f64()
    ));
    Ok(None)
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn codename() -> Result<String> {
    let os = fs::read_to_string("/etc/os-release").context("reading /etc/os-release")?;
    os.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| anyhow!("no VERSION_CODENAME in /etc/os-release"))
}

fn missing_packages() -> Result<Vec<String>> {
    let mut missing = Vec::new();
    for p in HOST_PACKAGES {
        let out = Command::new("dpkg-query")
            .args(["-W", "-f", "${db:Status-Abbrev}", p])
            .stderr(Stdio::null())
            .output()
            .context("running dpkg-query")?;
        if !String::from_utf8_lossy(&out.stdout).starts_with("ii") {
            missing.push((*p).to_string());
        }
    }
    Ok(missing)
}

/// Runs a command, returns its stdout; on failure, an error with its stderr.
fn output(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{what}: cannot run {:?}", cmd.get_program()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let so = String::from_utf8_lossy(&out.stdout);
        let tail: Vec<&str> = so.lines().chain(err.lines()).collect();
        let tail = tail[tail.len().saturating_sub(25)..].join("\n");
        bail!("{what} failed ({}):\n{tail}", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn newest_mtime(paths: &[PathBuf]) -> Option<SystemTime> {
    paths
        .iter()
        .filter_map(|p| fs::metadata(p).and_then(|m| m.modified()).ok())
        .max()
}

/// True when `out` is missing or older than one of `inputs`.
fn stale(out: &Path, inputs: &[PathBuf]) -> bool {
    let Ok(t) = fs::metadata(out).and_then(|m| m.modified()) else {
        return true;
    };
    newest_mtime(inputs).is_some_and(|n| n > t)
}

fn files_in(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.file_name().and_then(|n| n.to_str()).is_some_and(&keep) {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

// ------------------------------------------------------------------ APT

/// A private APT configuration (own sources list and lists dir under
/// `target/vm-lab/apt`): the host's Debian sources plus backports, without
/// touching the system's sources.
struct Apt {
    dir: PathBuf,
    codename: String,
}

/// One entry of the system's APT sources.
struct Source {
    uris: Vec<String>,
    suites: Vec<String>,
    components: Vec<String>,
    signed_by: Option<String>,
}

impl Apt {
    fn new(lab: &Lab, codename: &str) -> Apt {
        Apt {
            dir: lab.cache.join("apt"),
            codename: codename.to_string(),
        }
    }

    fn conf(&self) -> PathBuf {
        self.dir.join("apt.conf")
    }

    fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        c.env("APT_CONFIG", self.conf())
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("LC_ALL", "C");
        c
    }

    /// Writes the private configuration; runs `apt-get update` when the
    /// lists are missing or the sources changed.
    fn prepare(&self) -> Result<()> {
        for d in ["lists/partial", "cache/archives/partial", "sources.list.d"] {
            fs::create_dir_all(self.dir.join(d))?;
        }
        let list = self.sources_list()?;
        let list_path = self.dir.join("sources.list");
        let changed = fs::read_to_string(&list_path).ok().as_deref() != Some(list.as_str());
        if changed {
            fs::write(&list_path, &list)?;
        }
        let d = self.dir.display();
        let conf = format!(
            "// kgr lab: private APT configuration (generated by cargo xtask vm setup)\n\
             Dir::Etc::sourcelist \"{d}/sources.list\";\n\
             Dir::Etc::sourceparts \"{d}/sources.list.d\";\n\
             Dir::State::lists \"{d}/lists\";\n\
             Dir::Cache \"{d}/cache\";\n\
             APT::Sandbox::User \"root\";\n\
             DPkg::Lock::Timeout \"300\";\n"
        );
        if fs::read_to_string(self.conf()).ok().as_deref() != Some(conf.as_str()) {
            fs::write(self.conf(), conf)?;
        }
        let have_lists =
            !files_in(&self.dir.join("lists"), |n| n.contains("_Packages"))?.is_empty();
        if changed || !have_lists {
            self.update()?;
        }
        Ok(())
    }

    fn update(&self) -> Result<()> {
        progress("apt-get update (private lists under target/vm-lab/apt)");
        output(self.cmd("apt-get").arg("update"), "apt-get update")?;
        Ok(())
    }

    /// The private sources: the host's entries for this release, plus
    /// backports from the host's own mirror.
    fn sources_list(&self) -> Result<String> {
        let sources = system_sources()?;
        let mut lines = BTreeSet::new();
        let mut backports = Vec::new();
        let cn = &self.codename;
        for s in &sources {
            let opts = s
                .signed_by
                .as_ref()
                .map(|k| format!("[signed-by={k}] "))
                .unwrap_or_default();
            for suite in &s.suites {
                let base = suite.split('-').next() == Some(cn.as_str());
                if !base {
                    continue;
                }
                for uri in &s.uris {
                    lines.insert(format!(
                        "deb {opts}{uri} {suite} {}",
                        s.components.join(" ")
                    ));
                    if suite == cn {
                        backports.push(format!(
                            "deb {opts}{uri} {cn}-backports {}",
                            s.components.join(" ")
                        ));
                    }
                }
            }
        }
        if backports.is_empty() {
            bail!("no Debian mirror for {cn} found in the host's APT sources (/etc/apt)");
        }
        lines.extend(backports);
        let mut out = String::from("# kgr lab: the host's Debian sources plus backports\n");
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
        Ok(out)
    }

    fn install(&self, pkgs: &[&str], release: Option<&str>) -> Result<()> {
        let run = || {
            let mut c = self.cmd("apt-get");
            c.args(["install", "-y", "--no-install-recommends"]);
            if let Some(r) = release {
                c.args(["-t", r]);
            }
            c.args(pkgs);
            output(&mut c, &format!("apt-get install {}", pkgs.join(" ")))
        };
        if run().is_err() {
            self.update()?;
            run()?;
        }
        Ok(())
    }

    fn cache_cmd(&self, release: Option<&str>) -> Command {
        let mut c = self.cmd("apt-cache");
        if let Some(r) = release {
            c.arg("-o").arg(format!("APT::Default-Release={r}"));
        }
        c
    }

    fn candidate(&self, pkg: &str, release: Option<&str>) -> Result<String> {
        let out = output(
            self.cache_cmd(release).args(["policy", pkg]),
            &format!("apt-cache policy {pkg}"),
        )?;
        out.lines()
            .find_map(|l| l.trim().strip_prefix("Candidate:"))
            .map(|v| v.trim().to_string())
            .filter(|v| v != "(none)")
            .ok_or_else(|| anyhow!("no candidate for {pkg} in the APT sources"))
    }

    /// Package names in the Depends of `pkg`'s candidate (first alternative).
    fn depends(&self, pkg: &str, release: Option<&str>) -> Result<Vec<String>> {
        let v = self.candidate(pkg, release)?;
        let out = output(
            self.cache_cmd(release)
                .args(["show", &format!("{pkg}={v}")]),
            &format!("apt-cache show {pkg}={v}"),
        )?;
        let deps = out
            .lines()
            .find_map(|l| l.strip_prefix("Depends:"))
            .unwrap_or("");
        Ok(deps
            .split(',')
            .filter_map(|d| d.split('|').next())
            .filter_map(|d| d.split_whitespace().next())
            .map(str::to_string)
            .collect())
    }
}

/// The host's APT sources (deb822 `.sources` and one-line `.list`).
fn system_sources() -> Result<Vec<Source>> {
    let mut files = Vec::new();
    if Path::new("/etc/apt/sources.list").exists() {
        files.push(PathBuf::from("/etc/apt/sources.list"));
    }
    if let Ok(v) = files_in(Path::new("/etc/apt/sources.list.d"), |n| {
        n.ends_with(".list") || n.ends_with(".sources")
    }) {
        files.extend(v);
    }
    let mut out = Vec::new();
    for f in files {
        let text = fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        if f.extension().is_some_and(|e| e == "sources") {
            out.extend(parse_deb822(&text));
        } else {
            out.extend(parse_one_line(&text));
        }
    }
    Ok(out)
}

fn parse_deb822(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in para.lines() {
            if line.starts_with('#') {
                continue;
            }
            if line.starts_with(' ') || line.starts_with('\t') {
                if let Some(last) = fields.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |k: &str| {
            fields
                .iter()
                .find(|(f, _)| f == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let words =
            |k: &str| -> Vec<String> { get(k).split_whitespace().map(str::to_string).collect() };
        if !words("types").iter().any(|t| t == "deb") || get("enabled") == "no" {
            continue;
        }
        let signed = get("signed-by");
        out.push(Source {
            uris: words("uris"),
            suites: words("suites"),
            components: words("components"),
            // An inline key block cannot go into a one-line entry.
            signed_by: (!signed.is_empty() && !signed.contains(' ')).then_some(signed),
        });
    }
    out
}

fn parse_one_line(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix("deb ") else {
            continue;
        };
        let mut rest = rest.trim();
        let mut signed_by = None;
        if let Some(r) = rest.strip_prefix('[') {
            let Some((opts, after)) = r.split_once(']') else {
                continue;
            };
            signed_by = opts
                .split_whitespace()
                .find_map(|o| o.strip_prefix("signed-by="))
                .map(str::to_string);
            rest = after.trim();
        }
        let w: Vec<&str> = rest.split_whitespace().collect();
        if w.len() < 3 {
            continue;
        }
        out.push(Source {
            uris: vec![w[0].to_string()],
            suites: vec![w[1].to_string()],
            components: w[2..].iter().map(|s| (*s).to_string()).collect(),
            signed_by,
        });
    }
    out
}

// --------------------------------------------------------------- kernels

/// Downloads and unpacks kernel `k` (image and headers) unless cached.
fn ensure_kernel(lab: &Lab, apt: &Apt, k: Kernel) -> Result<KernelFiles> {
    let dir = lab.kernel_dir(k);
    let stamp = dir.join("kernel.txt");
    if let Ok(text) = fs::read_to_string(&stamp) {
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .map(str::to_string)
        };
        if let (Some(v), Some(z), Some(h)) = (get("version="), get("vmlinuz="), get("headers=")) {
            let kf = KernelFiles {
                vmlinuz: dir.join(z),
                headers: dir.join(h),
                version: v,
            };
            if kf.vmlinuz.exists() && kf.headers.join("Makefile").exists() {
                return Ok(kf);
            }
        }
    }
    apt.prepare()?;
    let release = k.backports.then(|| format!("{}-backports", apt.codename));
    let release = release.as_deref();
    let resolve = || -> Result<Vec<String>> {
        let image = apt
            .depends("linux-image-amd64", release)?
            .into_iter()
            .find(|d| d.starts_with("linux-image-"))
            .ok_or_else(|| anyhow!("linux-image-amd64 depends on no linux-image-*"))?;
        let headers = apt
            .depends("linux-headers-amd64", release)?
            .into_iter()
            .find(|d| d.starts_with("linux-headers-"))
            .ok_or_else(|| anyhow!("linux-headers-amd64 depends on no linux-headers-*"))?;
        let mut pkgs = vec![image, headers.clone()];
        pkgs.extend(
            apt.depends(&headers, release)?
                .into_iter()
                .filter(|d| d.starts_with("linux-headers-") || d.starts_with("linux-kbuild-")),
        );
        Ok(pkgs)
    };
    let debs = dir.join("debs");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&debs)?;
    let download = |pkgs: &[String]| -> Result<()> {
        let mut c = apt.cmd("apt-get");
        if let Some(r) = release {
            c.arg("-o").arg(format!("APT::Default-Release={r}"));
        }
        c.arg("download").args(pkgs).current_dir(&debs);
        output(&mut c, &format!("apt-get download {}", pkgs.join(" "))).map(drop)
    };
    let mut pkgs = resolve()?;
    progress(&format!(
        "downloading kernel {} ({}): {} (~130 MB)",
        k.key,
        release.unwrap_or("default release"),
        pkgs.join(" ")
    ));
    if download(&pkgs).is_err() {
        // Stale lists: the archive moved on to a newer kernel.
        apt.update()?;
        pkgs = resolve()?;
        download(&pkgs)?;
    }
    progress(&format!("unpacking kernel {}", k.key));
    let root = dir.join("root");
    for deb in files_in(&debs, |n| n.ends_with(".deb"))? {
        output(
            Command::new("dpkg").arg("-x").arg(&deb).arg(&root),
            &format!("dpkg -x {}", deb.display()),
        )?;
    }
    // The image's modules are not needed (the guest loads only ours).
    for m in ["lib/modules", "usr/lib/modules"] {
        let _ = fs::remove_dir_all(root.join(m));
    }
    fs::remove_dir_all(&debs)?;
    let vmlinuz = files_in(&root.join("boot"), |n| n.starts_with("vmlinuz-"))?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no /boot/vmlinuz-* in {}", pkgs[0]))?;
    let src = root.join("usr/src");
    let headers = files_in(&src, |n| {
        n.starts_with("linux-headers-") && !n.ends_with("-common")
    })?
    .into_iter()
    .next()
    .ok_or_else(|| anyhow!("no arch headers in {}", src.display()))?;
    // The arch headers' Makefile includes the -common tree by absolute
    // path (/usr/src/...): point it at the unpacked sibling.
    let mk = headers.join("Makefile");
    let text = fs::read_to_string(&mk)?;
    fs::write(&mk, text.replace("include /usr/src/", "include ../"))?;
    let version = vmlinuz
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .unwrap_or("?")
        .to_string();
    let rel = |p: &Path| p.strip_prefix(&dir).unwrap_or(p).display().to_string();
    fs::write(
        &stamp,
        format!(
            "version={version}\nvmlinuz={}\nheaders={}\npackages={}\n",
            rel(&vmlinuz),
            rel(&headers),
            pkgs.join(" ")
        ),
    )?;
    progress(&format!("kernel {} ready: {version}", k.key));
    Ok(KernelFiles {
        vmlinuz,
        headers,
        version,
    })
}

// ---------------------------------------------------------------- builds

/// The test modules for kernel `k`: `klp_blocker.ko`, `livepatch_test.ko`.
fn build_modules(lab: &Lab, k: Kernel, kf: &KernelFiles) -> Result<Vec<PathBuf>> {
    let src = lab.tests().join("modules");
    let inputs = files_in(&src, |n| {
        n.ends_with(".c") || n.ends_with(".h") || n == "Kbuild"
    })?;
    let build = lab.kernel_dir(k).join("modules");
    fs::create_dir_all(&build)?;
    let kos: Vec<PathBuf> = ["klp_blocker.ko", "livepatch_test.ko"]
        .iter()
        .map(|m| build.join(m))
        .collect();
    if kos.iter().any(|ko| stale(ko, &inputs)) {
        progress(&format!(
            "building test modules for kernel {} ({})",
            k.key, kf.version
        ));
        for f in &inputs {
            if let Some(name) = f.file_name() {
                fs::copy(f, build.join(name))?;
            }
        }
        output(
            Command::new("make")
                .arg("-C")
                .arg(&kf.headers)
                .arg(format!("M={}", build.display()))
                .arg("modules"),
            &format!("building the test modules for {}", kf.version),
        )?;
        for ko in &kos {
            if !ko.exists() {
                bail!("make left no {}", ko.display());
            }
        }
    }
    Ok(kos)
}

/// The static guest programs: lab_pause, lab_threads, jsonck; and the
/// benchmark's bench_threads, bench_time, bench_getppid (`tests/bench/`, also run on the
/// host by `cargo xtask bench`).
pub(crate) fn build_guest_programs(lab: &Lab) -> Result<Vec<PathBuf>> {
    let out = lab.cache.join("guest");
    fs::create_dir_all(&out)?;
    let mut bins = Vec::new();
    let guest = lab.tests().join("guest");
    let bench = lab.root.join("tests").join("bench");
    for (src, name) in [
        (&guest, "lab_pause"),
        (&guest, "lab_threads"),
        (&guest, "jsonck"),
        (&bench, "bench_threads"),
        (&bench, "bench_time"),
        (&bench, "bench_getppid"),
    ] {
        let c = src.join(format!("{name}.c"));
        let bin = out.join(name);
        if stale(&bin, std::slice::from_ref(&c)) {
            progress(&format!("building guest program {name}"));
            output(
                Command::new("gcc")
                    .args(["-static", "-O2", "-Wall", "-pthread", "-o"])
                    .arg(&bin)
                    .arg(&c),
                &format!("gcc {}", c.display()),
            )?;
        }
        bins.push(bin);
    }
    Ok(bins)
}

/// A static kgr (glibc, crt-static), in its own target dir so that it does
/// not contend with the main build for the lock.
fn build_static_kgr(lab: &Lab) -> Result<PathBuf> {
    progress("building static kgr (cargo build --release -p kgr, crt-static)");
    build_static(lab, "kgr")
}

/// The benchmark's plain Rust procfs scan (`bench-scan`), static like kgr
/// and in kgr's target dir (it shares no dependencies with kgr).
pub(crate) fn build_static_bench_scan(lab: &Lab) -> Result<PathBuf> {
    build_static(lab, "bench-scan")
}

/// Builds the workspace package `package` (whose binary has its name)
/// statically for the guest, in the lab's own target dir.
fn build_static(lab: &Lab, package: &str) -> Result<PathBuf> {
    let target_dir = lab.cache.join("kgr-build");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            package,
            "--target",
            KGR_TARGET,
        ])
        .current_dir(&lab.root)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env("CARGO_TARGET_DIR", &target_dir)
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("running {cargo}"))?;
    if !status.success() {
        bail!("building the static {package} failed ({status})");
    }
    let bin = target_dir.join(KGR_TARGET).join("release").join(package);
    if !bin.exists() {
        bail!("cargo left no {}", bin.display());
    }
    Ok(bin)
}

/// The guest's initramfs for kernel `k` (uncompressed newc cpio).
fn write_initramfs(
    lab: &Lab,
    k: Kernel,
    guest_bins: &[PathBuf],
    kgr: &Path,
    modules: &[PathBuf],
) -> Result<()> {
    let read = |p: &Path| fs::read(p).with_context(|| format!("reading {}", p.display()));
    let busybox = Path::new("/bin/busybox");
    let mut c = Cpio::default();
    for d in [
        "bin",
        "sbin",
        "usr",
        "usr/bin",
        "usr/sbin",
        "dev",
        "proc",
        "sys",
        "tmp",
        "root",
        "lab",
        "lab/bin",
        "lab/modules",
        "lab/bench",
    ] {
        c.dir(d);
    }
    c.chardev("dev/console", 0o600, 5, 1);
    c.chardev("dev/null", 0o666, 1, 3);
    c.file("bin/busybox", 0o755, &read(busybox)?);
    c.symlink("bin/sh", "busybox");
    let guest = lab.tests().join("guest");
    c.file("init", 0o755, &read(&guest.join("init"))?);
    for s in ["lib.sh", "test.sh", "demo.sh"] {
        c.file(&format!("lab/{s}"), 0o644, &read(&guest.join(s))?);
    }
    let bench = lab.root.join("tests").join("bench");
    for s in ["bench.sh", "klp_scan.sh"] {
        c.file(&format!("lab/bench/{s}"), 0o755, &read(&bench.join(s))?);
    }
    for b in guest_bins.iter().chain(std::iter::once(&kgr.to_path_buf())) {
        let name = b.file_name().and_then(|n| n.to_str()).unwrap_or("x");
        c.file(&format!("lab/bin/{name}"), 0o755, &read(b)?);
    }
    for m in modules {
        let name = m.file_name().and_then(|n| n.to_str()).unwrap_or("x.ko");
        c.file(&format!("lab/modules/{name}"), 0o644, &read(m)?);
    }
    let out = initramfs_path(lab, k);
    let data = c.finish();
    if fs::read(&out).ok().as_deref() != Some(data.as_slice()) {
        progress(&format!(
            "writing initramfs for kernel {} ({} KiB)",
            k.key,
            data.len() / 1024
        ));
        fs::write(&out, data)?;
    }
    Ok(())
}

pub(crate) fn initramfs_path(lab: &Lab, k: Kernel) -> PathBuf {
    lab.kernel_dir(k).join("initramfs.cpio")
}

/// The kernel image of a prepared kernel.
pub(crate) fn vmlinuz(lab: &Lab, k: Kernel) -> Result<(PathBuf, String)> {
    let dir = lab.kernel_dir(k);
    let text = fs::read_to_string(dir.join("kernel.txt"))
        .with_context(|| format!("kernel {} is not set up (cargo xtask vm setup)", k.key))?;
    let get = |key: &str| text.lines().find_map(|l| l.strip_prefix(key));
    let z = get("vmlinuz=").ok_or_else(|| anyhow!("bad kernel.txt of {}", k.key))?;
    Ok((dir.join(z), get("version=").unwrap_or("?").to_string()))
}
