//! `cargo xtask bench` (issue 5): how fast `kgr blocking` answers next to
//! the tools it replaces, measured side by side in one run, repeated,
//! medians and ratios reported. Never a timed test: `--quick` is CI's smoke
//! run and only checks that the benchmark works end to end.
//!
//! Two places:
//! - the VM lab (`tests/bench/bench.sh` in the guest, `kgrlab_mode=bench`):
//!   a real patching transition held by the blocker kthread, N sleeping
//!   threads; (a) the klp-style shell scan, (b) the plain Rust procfs scan,
//!   (c) `kgr blocking`, (d) the eBPF task iterator's read as kgr reports it;
//! - the host: real threads and the real /proc, but no live patching, so
//!   (b) and (c) run under `--root DIR` where DIR/sys is a small livepatch
//!   tree with a transition and DIR/proc links to /proc (every
//!   `patch_state` open then fails with ENOENT; `--root` disables eBPF).
//!
//! Timing is `tests/bench/bench_time.c` in both places: fork, exec, wait4,
//! CLOCK_MONOTONIC, ru_maxrss.

mod report;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::vm::{self, Lab};

#[derive(Args)]
pub struct BenchArgs {
    /// Thread counts to measure (sleeping threads added to the system).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,50000")]
    pub counts: Vec<usize>,
    /// Rounds of measurements per count (medians are reported).
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// CI's smoke run: counts 1000 and 6000, one round, shell scan capped;
    /// checks that the benchmark works end to end, judges no time.
    #[arg(long)]
    pub quick: bool,
    /// Only the host part.
    #[arg(long, conflicts_with = "vm_only")]
    pub host_only: bool,
    /// Only the VM part.
    #[arg(long)]
    pub vm_only: bool,
    /// Guest memory of the benchmark boot (qemu -m).
    #[arg(long, default_value = "4G")]
    pub memory: String,
    /// Time limit of the benchmark boot, in seconds (default: from the
    /// counts and repeats).
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Seconds of shell scan (a) per count in the guest: (a) repeats only
    /// while it has spent less than this.
    #[arg(long, default_value_t = 60)]
    pub shell_budget: u64,
    /// (a) is skipped at a count where one run is predicted (linearly from
    /// the previous count) to take longer than this many seconds.
    #[arg(long, default_value_t = 300)]
    pub shell_cap: u64,
}

/// One timed run: wall time, peak RSS, exit status, lines on stdout.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub ns: u64,
    pub rss_kb: u64,
    pub rc: i32,
    pub lines: usize,
}

/// Everything measured at one thread count in one place.
#[derive(Debug, Default)]
pub struct Point {
    /// The count asked for (threads added).
    pub n: usize,
    /// Threads in the system while measuring (/proc/loadavg).
    pub threads: usize,
    /// Samples per tool key (`a`, `b`, `c`, `cp`, `cm`, `s`, `w`, `d`,
    /// `dload`).
    pub samples: BTreeMap<String, Vec<Sample>>,
    /// Why a tool was not measured here.
    pub missing: BTreeMap<String, String>,
    /// Did the answers agree (every round)? With what was found otherwise.
    pub disagreements: Vec<String>,
    /// The blocking threads (c's answer), for the record.
    pub blocking: String,
    /// What `kgr -v blocking` said on stderr (distinct lines).
    pub notes: Vec<String>,
}

impl Point {
    pub fn median_ns(&self, tool: &str) -> Option<u64> {
        let mut v: Vec<u64> = self.samples.get(tool)?.iter().map(|s| s.ns).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let m = v.len() / 2;
        Some(if v.len() % 2 == 1 {
            v[m]
        } else {
            (v[m - 1] + v[m]) / 2
        })
    }

    pub fn max_rss_kb(&self, tool: &str) -> Option<u64> {
        self.samples.get(tool)?.iter().map(|s| s.rss_kb).max()
    }

    pub fn runs(&self, tool: &str) -> usize {
        self.samples.get(tool).map_or(0, Vec::len)
    }

    fn push(&mut self, tool: &str, s: Sample) {
        self.samples.entry(tool.to_string()).or_default().push(s);
    }

    fn note(&mut self, line: &str) {
        if !self.notes.iter().any(|n| n == line) {
            self.notes.push(line.to_string());
        }
    }
}

/// One place's results.
#[derive(Debug, Default)]
pub struct Place {
    /// `vm` or `host`.
    pub name: &'static str,
    /// Kernel, CPUs, memory.
    pub machine: String,
    pub points: Vec<Point>,
    /// Why this place was not measured at all, or broke half-way.
    pub error: Option<String>,
    /// Wall time of this part.
    pub secs: f64,
    /// Facts worth a line in the report.
    pub remarks: Vec<String>,
    /// The getppid loop's ns per call, by (phase, condition): phase `idle`
    /// or `transition`, condition `none` or `monitor`.
    pub overhead: BTreeMap<(String, String), Vec<f64>>,
    /// The monitor's wakeups and CPU ticks (USER_HZ) during each of its
    /// getppid loops, by phase.
    pub monitor_activity: BTreeMap<String, Vec<(u64, u64)>>,
}

impl Place {
    /// The median ns per getppid call in `phase` under `cond`.
    pub fn overhead_median(&self, phase: &str, cond: &str) -> Option<f64> {
        let mut v = self
            .overhead
            .get(&(phase.to_string(), cond.to_string()))?
            .clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let m = v.len() / 2;
        Some(if v.len() % 2 == 1 {
            v[m]
        } else {
            (v[m - 1] + v[m]) / 2.0
        })
    }
}

/// Runs the benchmark and writes `target/bench/report.{md,json}`.
pub fn run(args: &BenchArgs) -> Result<()> {
    let started = Instant::now();
    let lab = Lab::new();
    let (counts, repeat) = if args.quick {
        (vec![1000, 6000], 1)
    } else {
        (args.counts.clone(), args.repeat.max(1))
    };
    if counts.is_empty() {
        bail!("--counts: no thread counts");
    }
    let kernel = vm::K612;
    if let Some(why) = vm::bench_setup(&lab, kernel)? {
        bail!("{why}");
    }
    let out_dir = lab.root.join("target").join("bench");
    fs::create_dir_all(&out_dir)?;
    let mut places = Vec::new();
    if !args.vm_only {
        progress("host part");
        places.push(host(&lab, &out_dir, &counts, repeat));
    }
    if !args.host_only {
        progress("VM part");
        places.push(guest(&lab, kernel, args, &counts, repeat));
    }
    let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let report = report::Report {
        command: format!("cargo xtask {command}"),
        quick: args.quick,
        repeat,
        counts,
        places,
        total_secs: started.elapsed().as_secs_f64(),
        host: report::host_facts(&lab.root),
    };
    let md = report.markdown();
    print!("{md}");
    fs::write(out_dir.join("report.md"), &md)?;
    fs::write(out_dir.join("report.json"), report.json())?;
    progress(&format!(
        "report: target/bench/report.md, target/bench/report.json ({:.0} s)",
        started.elapsed().as_secs_f64()
    ));
    for p in &report.places {
        if let Some(e) = &p.error {
            bail!("the {} part did not complete: {e}", p.name);
        }
        if args.quick {
            smoke_check(p)?;
        }
        for pt in &p.points {
            if !pt.disagreements.is_empty() {
                bail!(
                    "{} at {} threads: the tools disagree: {}",
                    p.name,
                    pt.n,
                    pt.disagreements.join("; ")
                );
            }
        }
    }
    Ok(())
}

/// The tools every place must have measured at least once.
fn expected_tools(place: &str) -> &'static [&'static str] {
    match place {
        "vm" => &["a", "b", "c", "cp", "cm", "d", "dload", "s", "w"],
        _ => &["b", "c", "cp", "d", "dload", "s"],
    }
}

/// `--quick` judges no time, but every part of the benchmark must have run:
/// each tool at each count, and (in the VM) the getppid loop both ways.
fn smoke_check(place: &Place) -> Result<()> {
    for pt in &place.points {
        for tool in expected_tools(place.name) {
            // (a) stops at the shell cap by design.
            if pt.runs(tool) == 0 && !(*tool == "a" && pt.n > 1000) {
                let why = pt.missing.get(*tool).map_or("no samples", String::as_str);
                bail!(
                    "bench --quick: {} at {} threads: {tool} was not measured: {why}",
                    place.name,
                    pt.n
                );
            }
        }
    }
    if place.name == "vm" {
        for phase in ["idle", "transition"] {
            for cond in ["none", "monitor"] {
                if place.overhead_median(phase, cond).is_none() {
                    bail!("bench --quick: vm: no getppid loop samples for {phase}/{cond}");
                }
            }
        }
    }
    Ok(())
}

/// CI's smoke run of the whole benchmark (`cargo xtask test`).
pub fn smoke() -> Result<()> {
    let args = BenchArgs {
        counts: Vec::new(),
        repeat: 1,
        quick: true,
        host_only: false,
        vm_only: false,
        memory: "4G".into(),
        timeout: None,
        shell_budget: 60,
        shell_cap: 300,
    };
    run(&args)
}

fn progress(msg: &str) {
    eprintln!("bench: {msg}");
}

// ------------------------------------------------------------------ host

fn host(lab: &Lab, out_dir: &Path, counts: &[usize], repeat: usize) -> Place {
    let started = Instant::now();
    let mut place = Place {
        name: "host",
        machine: machine_line(),
        ..Place::default()
    };
    if let Err(e) = host_points(lab, out_dir, counts, repeat, &mut place) {
        place.error = Some(format!("{e:#}"));
    }
    place.secs = started.elapsed().as_secs_f64();
    place
}

/// The host's `--root` tree: one patch `bench_patch` in a patching
/// transition, /proc linked to the real one.
fn host_tree(out_dir: &Path) -> Result<PathBuf> {
    let root = out_dir.join("host-root");
    let _ = fs::remove_dir_all(&root);
    let patch = root.join("sys/kernel/livepatch/bench_patch");
    fs::create_dir_all(&patch)?;
    fs::write(patch.join("enabled"), "1\n")?;
    fs::write(patch.join("transition"), "1\n")?;
    std::os::unix::fs::symlink("/proc", root.join("proc"))?;
    Ok(root)
}

fn threads_now() -> usize {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().nth(3)?.split_once('/')?.1.parse().ok())
        .unwrap_or(0)
}

fn read_num(path: &str) -> Option<usize> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `bench_threads N`, once every thread exists.
struct Sleepers(Child);

impl Sleepers {
    fn spawn(prog: &Path, n: usize) -> Result<Sleepers> {
        let mut child = Command::new(prog)
            .arg(n.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", prog.display()))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            BufReader::new(out).read_line(&mut line)?;
        }
        if !line.starts_with("ready") {
            let _ = child.kill();
            let out = child.wait_with_output()?;
            bail!(
                "bench_threads {n} did not get ready: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(Sleepers(child))
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        // The children follow (PR_SET_PDEATHSIG).
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn timed(bench_time: &Path, out: &Path, cmd: &[&str]) -> Result<Sample> {
    let o = Command::new(bench_time)
        .arg(out)
        .args(cmd)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", bench_time.display()))?;
    let text = String::from_utf8_lossy(&o.stdout);
    let f: Vec<&str> = text.split_whitespace().collect();
    let [ns, rss, rc] = f.as_slice() else {
        bail!("bench_time {cmd:?}: unexpected output {text:?}");
    };
    let lines = fs::read_to_string(out).map_or(0, |s| s.lines().count());
    Ok(Sample {
        ns: ns.parse()?,
        rss_kb: rss.parse()?,
        rc: rc.parse()?,
        lines,
    })
}

fn host_points(
    lab: &Lab,
    out_dir: &Path,
    counts: &[usize],
    repeat: usize,
    place: &mut Place,
) -> Result<()> {
    let kgr = vm::bench_program(lab, "kgr");
    let scan = vm::bench_program(lab, "bench-scan");
    let bench_time = vm::bench_program(lab, "bench_time");
    let threads = vm::bench_program(lab, "bench_threads");
    let root = host_tree(out_dir)?;
    let root_s = root.display().to_string();
    let (kgr_s, scan_s) = (kgr.display().to_string(), scan.display().to_string());
    let tmp = out_dir.join("host-tmp");
    fs::create_dir_all(&tmp)?;
    // Room for the largest count (restored when done): pids are handed out
    // cyclically and the previous count's threads may still be exiting.
    let largest = counts.iter().max().copied().unwrap_or(0);
    let _pid_max = PidMax::raise(2 * largest + threads_now() + 10_000);
    let pid_max = read_num("/proc/sys/kernel/pid_max").unwrap_or(32768);
    let threads_max = read_num("/proc/sys/kernel/threads-max").unwrap_or(usize::MAX);
    place.remarks.push(format!(
        "host: no live patching in this kernel; (b) and (c) read `--root {}` (DIR/sys: one patch in a patching transition; DIR/proc -> /proc), so every patch_state open fails with ENOENT and both print nothing; --root disables eBPF in kgr",
        root.strip_prefix(&lab.root).unwrap_or(&root).display()
    ));
    place.remarks.push(
        "host: (d) is `kgr bench-iterator`: the task iterator without patch_state (this kernel has none), loaded once, then bare passes; (c) with a monitor running is not measured here: `kgr monitor` needs live patching".into(),
    );
    let has_no_ebpf = Command::new(&kgr)
        .arg("--help")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--no-ebpf"));
    for &n in counts {
        let mut pt = Point {
            n,
            ..Point::default()
        };
        let base = threads_now();
        let limit = pid_max.min(threads_max);
        if base + n + 1000 > limit {
            let why = format!(
                "not measured: {n} more threads do not fit (kernel.pid_max {pid_max}, threads-max {threads_max}, {base} threads running); raise kernel.pid_max to measure"
            );
            for t in ["b", "c", "s"] {
                pt.missing.insert(t.into(), why.clone());
            }
            place.points.push(pt);
            continue;
        }
        progress(&format!("host: {n} sleeping threads"));
        let _sleepers = Sleepers::spawn(&threads, n)?;
        pt.threads = threads_now();
        let out = |t: &str| tmp.join(format!("{t}.out"));
        // Warm-up, not recorded.
        timed(&bench_time, &out("w"), &[&scan_s, "--root", &root_s])?;
        for _ in 0..repeat {
            let b = timed(&bench_time, &out("b"), &[&scan_s, "--root", &root_s])?;
            pt.push("b", b);
            let c = timed(
                &bench_time,
                &out("c"),
                &[&kgr_s, "--root", &root_s, "blocking"],
            )?;
            pt.push("c", c);
            if has_no_ebpf {
                let cp = timed(
                    &bench_time,
                    &out("cp"),
                    &[&kgr_s, "--no-ebpf", "--root", &root_s, "blocking"],
                )?;
                pt.push("cp", cp);
            }
            let s = timed(&bench_time, &out("s"), &[&kgr_s, "status"])?;
            pt.push("s", s);
            let b_out = fs::read_to_string(out("b")).unwrap_or_default();
            let c_out = fs::read_to_string(out("c")).unwrap_or_default();
            if b_out != c_out {
                pt.disagreements
                    .push(format!("b printed {b_out:?}, c printed {c_out:?}"));
            }
            for (t, path) in [("b", out("b")), ("c", out("c")), ("s", out("s"))] {
                let err = fs::read_to_string(path.with_extension("out.err")).unwrap_or_default();
                if let Some(last) = pt.samples.get(t).and_then(|v| v.last()) {
                    if last.rc != 0 {
                        pt.disagreements
                            .push(format!("{t} exited {}: {}", last.rc, err.trim()));
                    }
                }
            }
        }
        host_floor(&kgr_s, repeat, &tmp, &mut pt);
        pt.missing.insert(
            "cm".into(),
            "not measured: `kgr monitor` needs live patching, which the host kernel lacks".into(),
        );
        pt.missing
            .insert("a".into(), "not part of the host bench (issue 5)".into());
        place.points.push(pt);
    }
    Ok(())
}

/// (d) on the host: `kgr bench-iterator`, whose passes become samples.
fn host_floor(kgr: &str, repeat: usize, tmp: &Path, pt: &mut Point) {
    let o = Command::new(kgr)
        .args(["bench-iterator", "--repeat", &repeat.to_string()])
        .stdin(Stdio::null())
        .output();
    let o = match o {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            pt.missing.insert(
                "d".into(),
                format!(
                    "not measured: kgr bench-iterator failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
            );
            return;
        }
        Err(e) => {
            pt.missing
                .insert("d".into(), format!("not measured: running {kgr}: {e}"));
            return;
        }
    };
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let _ = fs::write(tmp.join("d.out"), &text);
    for line in text.lines() {
        let f = kv(line);
        let num = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok());
        if let Some(ns) = num("load_ns") {
            pt.push(
                "dload",
                Sample {
                    ns,
                    ..Sample::default()
                },
            );
        }
        if let (Some(ns), Some(records)) = (num("read_ns"), num("records")) {
            pt.push(
                "d",
                Sample {
                    ns,
                    lines: usize::try_from(records).unwrap_or(0),
                    ..Sample::default()
                },
            );
        }
    }
}

/// kernel.pid_max raised for the bench, put back on drop.
struct PidMax(Option<usize>);

impl PidMax {
    const PATH: &'static str = "/proc/sys/kernel/pid_max";

    fn raise(wanted: usize) -> PidMax {
        let Some(old) = read_num(Self::PATH) else {
            return PidMax(None);
        };
        if old >= wanted {
            return PidMax(None);
        }
        // The kernel's upper limit (PID_MAX_LIMIT on 64-bit).
        let new = wanted.min(4_194_304);
        match fs::write(Self::PATH, new.to_string()) {
            Ok(()) => {
                progress(&format!(
                    "host: kernel.pid_max {old} -> {new} for the bench"
                ));
                PidMax(Some(old))
            }
            Err(e) => {
                progress(&format!("host: cannot raise kernel.pid_max ({e})"));
                PidMax(None)
            }
        }
    }
}

impl Drop for PidMax {
    fn drop(&mut self) {
        if let Some(old) = self.0 {
            let _ = fs::write(Self::PATH, old.to_string());
        }
    }
}

fn machine_line() -> String {
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let mem = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    format!(
        "kernel {}, {cpus} CPUs ({model}), {} MiB",
        kernel.trim(),
        mem / 1024
    )
}

// ------------------------------------------------------------------- VM

fn guest(
    lab: &Lab,
    kernel: vm::Kernel,
    args: &BenchArgs,
    counts: &[usize],
    repeat: usize,
) -> Place {
    let started = Instant::now();
    let mut place = Place {
        name: "vm",
        ..Place::default()
    };
    if let Err(e) = guest_points(lab, kernel, args, counts, repeat, &mut place) {
        place.error = Some(format!("{e:#}"));
    }
    place.secs = started.elapsed().as_secs_f64();
    place
}

fn guest_points(
    lab: &Lab,
    kernel: vm::Kernel,
    args: &BenchArgs,
    counts: &[usize],
    repeat: usize,
    place: &mut Place,
) -> Result<()> {
    let list = counts
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let (budget, cap) = if args.quick {
        (10, 60)
    } else {
        (args.shell_budget, args.shell_cap)
    };
    // getppid calls per loop: ~1 s each under TCG, a fifth of it for --quick.
    let calls = if args.quick { 40_000 } else { 200_000 };
    let append = format!(
        "kgrlab_counts={list} kgrlab_repeat={repeat} kgrlab_abudget={budget} kgrlab_acap={cap} kgrlab_calls={calls}"
    );
    // Boot and setup ~60 s, the getppid loops (two phases, each round a
    // monitor start, 9 s of settling and two loops), thread spawning, and
    // per count the rounds plus the shell scan's budget (or one capped run)
    // and a monitor start.
    let max = counts.iter().copied().max().unwrap_or(0) as u64;
    let repeat_s = repeat as u64;
    let timeout = args.timeout.unwrap_or(
        300 + 2 * repeat_s * 25
            + counts.len() as u64 * (budget + cap + 30)
            + max / 50 * repeat_s / 10
            + max / 100,
    );
    progress(&format!(
        "booting the lab kernel {} with {} and {append} (time limit {timeout} s)",
        kernel.key, args.memory
    ));
    let run = vm::bench_boot(lab, kernel, &args.memory, &append, timeout, |l| {
        if let Some(rest) = l.strip_prefix("BENCH ") {
            if !rest.starts_with("run ") && !rest.starts_with("note ") {
                progress(&format!("vm: {rest}"));
            }
        }
    })?;
    parse_guest(&run.lines, place);
    let log = run
        .log
        .strip_prefix(&lab.root)
        .unwrap_or(&run.log)
        .display()
        .to_string();
    place
        .remarks
        .push(format!("vm: guest ran {:.0} s; serial log {log}", run.secs));
    let done = run.lines.iter().any(|l| l.starts_with("BENCH done"));
    if !done {
        let tail: Vec<&String> = run.lines.iter().rev().take(15).collect();
        let tail: Vec<&str> = tail.iter().rev().map(|s| s.as_str()).collect();
        bail!(
            "the guest did not finish the benchmark{} (log {log}); last lines:\n{}",
            if run.timed_out { " (time limit)" } else { "" },
            tail.join("\n")
        );
    }
    Ok(())
}

/// `key=value` words of a BENCH line.
fn kv(rest: &str) -> BTreeMap<&str, &str> {
    rest.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect()
}

/// Parses the guest's `BENCH ...` lines into `place`.
pub(crate) fn parse_guest(lines: &[String], place: &mut Place) {
    let mut features = BTreeMap::new();
    for line in lines {
        let Some(rest) = line.strip_prefix("BENCH ") else {
            continue;
        };
        let (kind, body) = rest.split_once(' ').unwrap_or((rest, ""));
        let f = kv(body);
        let n: usize = f.get("n").and_then(|v| v.parse().ok()).unwrap_or(0);
        let point = |place: &mut Place| -> usize {
            if let Some(i) = place.points.iter().position(|p| p.n == n) {
                return i;
            }
            place.points.push(Point {
                n,
                ..Point::default()
            });
            place.points.len() - 1
        };
        match kind {
            "info" => {
                place.machine = format!(
                    "qemu TCG guest: kernel {}, {} vCPUs, {} MiB",
                    f.get("kernel").unwrap_or(&"?"),
                    f.get("nproc").unwrap_or(&"?"),
                    f.get("memkb")
                        .and_then(|v| v.parse::<u64>().ok())
                        .map_or(0, |k| k / 1024)
                );
            }
            "features" => {
                for (k, v) in f {
                    features.insert(k.to_string(), v.to_string());
                }
            }
            "transition" => place.remarks.push(format!("vm: {body}")),
            "point" => {
                let i = point(place);
                place.points[i].threads =
                    f.get("threads").and_then(|v| v.parse().ok()).unwrap_or(0);
            }
            "run" => {
                let i = point(place);
                let num = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                let tool = f.get("tool").copied().unwrap_or("?");
                let s = Sample {
                    ns: num("ns"),
                    rss_kb: num("rsskb"),
                    rc: f.get("rc").and_then(|v| v.parse().ok()).unwrap_or(-1),
                    lines: usize::try_from(num("lines")).unwrap_or(0),
                };
                if s.rc != 0 {
                    place.points[i]
                        .disagreements
                        .push(format!("{tool} exited {}", s.rc));
                }
                place.points[i].push(tool, s);
            }
            "stderr" => {
                let i = point(place);
                place.points[i].disagreements.push(body.to_string());
            }
            "note" => {
                let i = point(place);
                let (tool, text) = body
                    .split_once(" tool=")
                    .and_then(|(_, t)| t.split_once(' '))
                    .unwrap_or(("cv", body));
                let text = if tool == "cmv" {
                    format!("(monitor running) {text}")
                } else {
                    text.to_string()
                };
                place.points[i].note(&text);
            }
            "overhead" => {
                let per_call = f.get("ns_per_call").and_then(|v| v.parse::<f64>().ok());
                if let (Some(phase), Some(cond), Some(ns)) =
                    (f.get("phase"), f.get("cond"), per_call)
                {
                    place
                        .overhead
                        .entry((phase.to_string(), cond.to_string()))
                        .or_default()
                        .push(ns);
                    let num = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok());
                    if let (Some(w), Some(t)) = (num("wakeups"), num("cpu_ticks")) {
                        place
                            .monitor_activity
                            .entry(phase.to_string())
                            .or_default()
                            .push((w, t));
                    }
                }
            }
            "monitor" => place.remarks.push(format!("vm: kgr -v monitor ({body})")),
            "skip" => {
                let i = point(place);
                let pred = f
                    .get("predicted_ns")
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
                let cap = f
                    .get("cap_ns")
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
                place.points[i].missing.insert(
                    f.get("tool").unwrap_or(&"?").to_string(),
                    format!(
                        "not measured: one run predicted at {:.0} s (linear from the previous count) > cap {:.0} s",
                        pred as f64 / 1e9,
                        cap as f64 / 1e9
                    ),
                );
            }
            "check" => {
                let i = point(place);
                let agree = body
                    .split_once("agree=")
                    .map_or("", |(_, r)| r.split(" blocking=").next().unwrap_or(""));
                if agree != "yes" {
                    place.points[i]
                        .disagreements
                        .push(format!("round {}: {agree}", f.get("round").unwrap_or(&"?")));
                }
                // c's answer (the cm rounds are checked against b above).
                if !f.get("round").is_some_and(|r| r.starts_with("cm")) {
                    place.points[i].blocking = f
                        .get("blocking")
                        .unwrap_or(&"")
                        .trim_end_matches(',')
                        .to_string();
                }
            }
            "error" => place.error = Some(body.to_string()),
            _ => {}
        }
    }
    for pt in &mut place.points {
        if features.get("no_ebpf").map(String::as_str) != Some("yes") {
            pt.missing
                .insert("cp".into(), "kgr has no --no-ebpf".into());
        }
        if features.get("why").map(String::as_str) != Some("yes") {
            pt.missing.insert(
                "w".into(),
                "not measured yet: kgr has no `blocking --why`".into(),
            );
        }
        if pt.runs("d") == 0 {
            let why = if features.get("iterator").map(String::as_str) == Some("yes") {
                "kgr bench-iterator failed (see the problems)"
            } else {
                "kgr has no `bench-iterator`"
            };
            pt.missing
                .insert("d".into(), format!("not measured: {why}"));
        }
        if pt.runs("cm") == 0 {
            pt.missing.insert(
                "cm".into(),
                "not measured: kgr monitor has no --no-pin (pins nothing)".into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_lines() {
        let lines: Vec<String> = [
            "BENCH info kernel=6.12.1 nproc=2 memkb=4000000 repeat=1",
            "BENCH features no_ebpf=yes why=no iterator=yes pin=yes",
            "BENCH overhead phase=idle cond=none ns_per_call=1000.000",
            "BENCH overhead phase=idle cond=monitor ns_per_call=1010.500 wakeups=0 cpu_ticks=1",
            "BENCH overhead phase=idle cond=none ns_per_call=1200.000",
            "BENCH point n=1000 threads=1100",
            "BENCH run n=1000 tool=b ns=5000000 rsskb=900 rc=0 lines=2",
            "BENCH run n=1000 tool=c ns=4000000 rsskb=2000 rc=0 lines=2",
            "BENCH note n=1000 tool=cv kgr: eBPF not used: 1100 threads, procfs is faster below 5000",
            "BENCH check n=1000 round=1 agree=yes blocking=12,13,",
            "BENCH run n=1000 tool=dload ns=90000000 rsskb=0 rc=0 lines=0",
            "BENCH run n=1000 tool=d ns=3000000 rsskb=0 rc=0 lines=1100",
            "BENCH run n=1000 tool=d ns=2000000 rsskb=0 rc=0 lines=1100",
            "BENCH note n=1000 tool=cmv kgr: eBPF task snapshot (iterator pinned by kgr monitor 77): 1100 threads",
            "BENCH check n=1000 round=cm1 agree=no: b and cm differ blocking=12,",
            "BENCH done threads=1100",
        ]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
        let mut place = Place::default();
        parse_guest(&lines, &mut place);
        assert_eq!(place.points.len(), 1);
        let p = &place.points[0];
        assert_eq!(p.threads, 1100);
        assert_eq!(p.median_ns("b"), Some(5_000_000));
        assert_eq!(p.blocking, "12,13");
        assert_eq!(p.median_ns("d"), Some(2_500_000));
        assert_eq!(p.median_ns("dload"), Some(90_000_000));
        assert!(!p.missing.contains_key("d"));
        assert_eq!(p.disagreements, ["round cm1: no: b and cm differ"]);
        assert!(p.notes[0].contains("procfs is faster below 5000"));
        assert!(
            p.notes[1].starts_with("(monitor running) kgr: eBPF task snapshot (iterator pinned")
        );
        assert!(p.missing["w"].contains("--why"));
        assert!(p.missing["cm"].contains("not measured"));
        assert_eq!(place.overhead_median("idle", "none"), Some(1100.0));
        assert_eq!(place.overhead_median("idle", "monitor"), Some(1010.5));
        assert_eq!(place.overhead_median("transition", "none"), None);
        assert_eq!(place.monitor_activity["idle"], [(0, 1)]);
    }
}
