//! The benchmark's report: a markdown table per place, ratios, and each
//! target of issue 5 judged MET / NOT MET / NOT MEASURED from the numbers
//! of this one run; the same as JSON.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use super::{Place, Point};

/// Where and when the benchmark ran.
pub struct HostFacts {
    pub date: String,
    pub git: String,
    pub machine: String,
}

pub fn host_facts(root: &Path) -> HostFacts {
    let out = |cmd: &mut Command| {
        cmd.output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "?".into())
    };
    HostFacts {
        date: out(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])),
        git: out(Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["describe", "--always", "--dirty"])),
        machine: super::machine_line(),
    }
}

pub struct Report {
    pub command: String,
    pub quick: bool,
    pub repeat: usize,
    pub counts: Vec<usize>,
    pub places: Vec<Place>,
    pub total_secs: f64,
    pub host: HostFacts,
}

/// The table's columns: tool key, heading.
const COLUMNS: &[(&str, &str)] = &[
    ("a", "(a) shell scan"),
    ("b", "(b) Rust scan"),
    ("c", "(c) kgr blocking"),
    ("cm", "(c) kgr blocking, monitor running"),
    ("cp", "kgr --no-ebpf blocking"),
    ("d", "(d) iterator read"),
    ("dload", "kgr eBPF load"),
    ("w", "kgr blocking --why"),
    ("s", "kgr status"),
];

fn ms(ns: u64) -> String {
    let v = ns as f64 / 1e6;
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn ratio(num: Option<u64>, den: Option<u64>) -> Option<f64> {
    match (num, den) {
        (Some(n), Some(d)) if d > 0 => Some(n as f64 / d as f64),
        _ => None,
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{r:.1}x"))
}

/// A target's verdict.
struct Verdict {
    target: String,
    place: &'static str,
    status: &'static str,
    detail: String,
}

impl Report {
    fn verdicts(&self) -> Vec<Verdict> {
        let mut v = Vec::new();
        for place in &self.places {
            let name = place.name;
            let measured: Vec<&Point> = place.points.iter().filter(|p| p.runs("c") > 0).collect();
            let big: Vec<&&Point> = measured.iter().filter(|p| p.n >= 10_000).collect();
            let mut judge = |target: &str,
                             p: &Point,
                             num: &str,
                             den: &str,
                             pass: &dyn Fn(f64) -> bool,
                             what: &str| {
                let r = ratio(p.median_ns(num), p.median_ns(den));
                let (status, detail) = match r {
                    Some(r) => (
                        if pass(r) { "MET" } else { "NOT MET" },
                        format!(
                            "{} threads: {what} {r:.1}x ({num} {} ms, {den} {} ms)",
                            p.threads,
                            p.median_ns(num).map_or("-".into(), ms),
                            p.median_ns(den).map_or("-".into(), ms)
                        ),
                    ),
                    None => {
                        let why = p
                            .missing
                            .get(num)
                            .or_else(|| p.missing.get(den))
                            .cloned()
                            .unwrap_or_else(|| "no samples".into());
                        ("NOT MEASURED", format!("{} threads: {why}", p.n))
                    }
                };
                v.push(Verdict {
                    target: target.into(),
                    place: name,
                    status,
                    detail,
                });
            };
            // (c) as one-shot, and with a `kgr monitor` running (its
            // pinned task iterator): both are kgr blocking as shipped.
            for (c, how) in [("c", "one-shot"), ("cm", "monitor running")] {
                for p in &big {
                    // No monitor without live patching.
                    if c == "cm" && name == "host" {
                        continue;
                    }
                    if name == "vm" {
                        judge(
                            &format!("≥10k: kgr blocking ({how}) ≥100x faster than (a)"),
                            p,
                            "a",
                            c,
                            &|r| r >= 100.0,
                            &format!("a/{c}"),
                        );
                    }
                    judge(
                        &format!("≥10k: kgr blocking ({how}) ≥5x faster than (b)"),
                        p,
                        "b",
                        c,
                        &|r| r >= 5.0,
                        &format!("b/{c}"),
                    );
                    judge(
                        &format!("≥10k: kgr blocking ({how}) within 2x of (d)"),
                        p,
                        c,
                        "d",
                        &|r| r <= 2.0,
                        &format!("{c}/d"),
                    );
                }
                if let Some(p) = measured.iter().find(|p| p.n == 1000).or(measured.first()) {
                    if p.n < 10_000 && !(c == "cm" && name == "host") {
                        judge(
                            &format!("1k: kgr blocking ({how}) not slower than (b)"),
                            p,
                            c,
                            "b",
                            &|r| r <= 1.0,
                            &format!("{c}/b"),
                        );
                    }
                }
            }
            if name == "host" {
                let s = measured.iter().filter_map(|p| p.median_ns("s")).min();
                v.push(Verdict {
                    target: "kgr status well under 10 ms on the host".into(),
                    place: name,
                    status: match s {
                        Some(s) if s < 10_000_000 => "MET",
                        Some(_) => "NOT MET",
                        None => "NOT MEASURED",
                    },
                    detail: s.map_or_else(
                        || "no samples".into(),
                        |s| format!("median {} ms (live /sys, no transition)", ms(s)),
                    ),
                });
            }
            if let Some(p) = measured.iter().max_by_key(|p| p.n) {
                for (c, how) in [("c", "one-shot"), ("cm", "monitor running")] {
                    if c == "cm" && name == "host" {
                        continue;
                    }
                    let rss = p.max_rss_kb(c);
                    v.push(Verdict {
                        target: format!(
                            "peak RSS of kgr blocking ({how}) < 30 MB at the largest count"
                        ),
                        place: name,
                        status: match rss {
                            Some(r) if r < 30 * 1024 => "MET",
                            Some(_) => "NOT MET",
                            None => "NOT MEASURED",
                        },
                        detail: format!(
                            "{} threads: {} MiB (max ru_maxrss over {} runs)",
                            p.threads,
                            rss.map_or("-".into(), |r| format!("{:.1}", r as f64 / 1024.0)),
                            p.runs(c)
                        ),
                    });
                }
            }
        }
        let vm = self.places.iter().find(|p| p.name == "vm");
        for (phase, limit, target) in [
            (
                "idle",
                2.0,
                "kgr monitor overhead on a getppid loop < 2% with no transition",
            ),
            (
                "transition",
                10.0,
                "kgr monitor overhead on a getppid loop < 10% during a transition",
            ),
        ] {
            let none = vm.and_then(|p| p.overhead_median(phase, "none"));
            let with = vm.and_then(|p| p.overhead_median(phase, "monitor"));
            let runs = vm
                .and_then(|p| p.overhead.get(&(phase.to_string(), "monitor".to_string())))
                .map_or(0, Vec::len);
            let (status, detail) = match (none, with) {
                (Some(none), Some(with)) if none > 0.0 => {
                    let pct = (with / none - 1.0) * 100.0;
                    (
                        if pct < limit { "MET" } else { "NOT MET" },
                        format!(
                            "{pct:+.1}% (median ns per getppid: {none:.0} without kgr, {with:.0} with kgr monitor; {runs} alternating rounds)"
                        ),
                    )
                }
                _ => (
                    "NOT MEASURED",
                    "no getppid loop samples from the VM lab".to_string(),
                ),
            };
            v.push(Verdict {
                target: target.into(),
                place: "vm",
                status,
                detail,
            });
        }
        v
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# kgr benchmark{}\n",
            if self.quick {
                " (--quick smoke run: not a measurement)"
            } else {
                ""
            }
        );
        let _ = writeln!(s, "- date: {}", self.host.date);
        let _ = writeln!(s, "- command: `{}`", self.command);
        let _ = writeln!(s, "- source: {}", self.host.git);
        let _ = writeln!(s, "- host: {}", self.host.machine);
        let _ = writeln!(
            s,
            "- rounds: {} per count (tools interleaved in each round, after one warm-up); medians of wall time (fork to wait4, CLOCK_MONOTONIC, `tests/bench/bench_time.c`), in ms",
            self.repeat
        );
        let _ = writeln!(s, "- benchmark took {:.0} s\n", self.total_secs);
        for place in &self.places {
            let title = if place.name == "vm" { "VM lab" } else { "Host" };
            let _ = writeln!(s, "## {title}: {}\n", place.machine);
            if let Some(e) = &place.error {
                let _ = writeln!(s, "**did not complete**: {e}\n");
            }
            let cols: Vec<&(&str, &str)> = COLUMNS
                .iter()
                .filter(|(k, _)| place.points.iter().any(|p| p.runs(k) > 0))
                .collect();
            let mut head = String::from("| threads |");
            let mut rule = String::from("|---:|");
            for (_, h) in &cols {
                let _ = write!(head, " {h} |");
                rule.push_str("---:|");
            }
            head.push_str(" a/c | b/c | c/d | b/cm | cm/d | peak RSS (c) | peak RSS (cm) |");
            rule.push_str("---:|---:|---:|---:|---:|---:|---:|");
            let _ = writeln!(s, "{head}\n{rule}");
            for p in &place.points {
                let mut row = format!("| {} (+{}) |", p.threads, p.n);
                for (k, _) in &cols {
                    let cell = match p.median_ns(k) {
                        Some(m) if p.runs(k) != self.repeat && !k.starts_with('d') => {
                            format!(
                                "{} ({} run{})",
                                ms(m),
                                p.runs(k),
                                if p.runs(k) == 1 { "" } else { "s" }
                            )
                        }
                        Some(m) => ms(m),
                        None => "n/m".into(),
                    };
                    let _ = write!(row, " {cell} |");
                }
                let rss = |k: &str| {
                    p.max_rss_kb(k)
                        .map_or("-".into(), |r| format!("{:.1} MiB", r as f64 / 1024.0))
                };
                let _ = write!(
                    row,
                    " {} | {} | {} | {} | {} | {} | {} |",
                    fmt_ratio(ratio(p.median_ns("a"), p.median_ns("c"))),
                    fmt_ratio(ratio(p.median_ns("b"), p.median_ns("c"))),
                    fmt_ratio(ratio(p.median_ns("c"), p.median_ns("d"))),
                    fmt_ratio(ratio(p.median_ns("b"), p.median_ns("cm"))),
                    fmt_ratio(ratio(p.median_ns("cm"), p.median_ns("d"))),
                    rss("c"),
                    rss("cm")
                );
                let _ = writeln!(s, "{row}");
            }
            let _ = writeln!(s);
            let _ = writeln!(s, "n/m = not measured:");
            let mut seen = Vec::new();
            for p in &place.points {
                for (k, why) in &p.missing {
                    let heading = COLUMNS
                        .iter()
                        .find(|(c, _)| c == k)
                        .map_or(k.as_str(), |(_, h)| h);
                    let line = format!("- {heading} at +{}: {why}", p.n);
                    if !seen.contains(&line) {
                        seen.push(line);
                    }
                }
            }
            for l in seen {
                let _ = writeln!(s, "{l}");
            }
            for p in &place.points {
                for n in &p.notes {
                    let _ = writeln!(s, "- +{}: `kgr -v blocking` said: {n}", p.n);
                }
                if !p.blocking.is_empty() {
                    let _ = writeln!(
                        s,
                        "- +{}: blocking threads (every tool agreed): {}",
                        p.n, p.blocking
                    );
                }
                for d in &p.disagreements {
                    let _ = writeln!(s, "- **+{}: problem**: {d}", p.n);
                }
            }
            for r in &place.remarks {
                let _ = writeln!(s, "- {r}");
            }
            for phase in ["idle", "transition"] {
                if let (Some(none), Some(with)) = (
                    place.overhead_median(phase, "none"),
                    place.overhead_median(phase, "monitor"),
                ) {
                    let activity = place
                        .monitor_activity
                        .get(phase)
                        .map(|v| {
                            let wakeups: Vec<String> =
                                v.iter().map(|(w, _)| w.to_string()).collect();
                            let ticks: Vec<String> = v.iter().map(|(_, t)| t.to_string()).collect();
                            format!(
                                "; the monitor during each loop: {} wakeups, {} CPU ticks of 10 ms",
                                wakeups.join("/"),
                                ticks.join("/")
                            )
                        })
                        .unwrap_or_default();
                    let _ = writeln!(
                        s,
                        "- getppid loop, {}: {none:.0} ns per call without kgr, {with:.0} ns with `kgr monitor` running ({:+.1}%){activity}",
                        if phase == "idle" { "no transition" } else { "during a transition" },
                        (with / none - 1.0) * 100.0
                    );
                }
            }
            let _ = writeln!(s, "- this part took {:.0} s\n", place.secs);
        }
        let _ = writeln!(s, "## Targets (issue 5)\n");
        let _ = writeln!(
            s,
            "| target | where | verdict | measured |\n|---|---|---|---|"
        );
        for v in self.verdicts() {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                v.target, v.place, v.status, v.detail
            );
        }
        if self.quick {
            let _ = writeln!(
                s,
                "\n--quick: small counts, one round; the verdicts above say nothing."
            );
        }
        s
    }

    pub fn json(&self) -> String {
        let mut s = String::from("{\n");
        let _ = writeln!(s, "  \"date\": {},", q(&self.host.date));
        let _ = writeln!(s, "  \"command\": {},", q(&self.command));
        let _ = writeln!(s, "  \"source\": {},", q(&self.host.git));
        let _ = writeln!(s, "  \"host\": {},", q(&self.host.machine));
        let _ = writeln!(s, "  \"quick\": {},", self.quick);
        let _ = writeln!(s, "  \"repeat\": {},", self.repeat);
        let _ = writeln!(
            s,
            "  \"counts\": [{}],",
            self.counts
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(s, "  \"seconds\": {:.1},", self.total_secs);
        s.push_str("  \"places\": [\n");
        for (i, place) in self.places.iter().enumerate() {
            let _ = writeln!(s, "    {{\n      \"name\": {},", q(place.name));
            let _ = writeln!(s, "      \"machine\": {},", q(&place.machine));
            let _ = writeln!(
                s,
                "      \"error\": {},",
                place.error.as_deref().map_or_else(|| "null".into(), q)
            );
            let _ = writeln!(s, "      \"seconds\": {:.1},", place.secs);
            let overhead: Vec<String> = place
                .overhead
                .iter()
                .map(|((phase, cond), v)| {
                    format!(
                        "{}: [{}]",
                        q(&format!("{phase}/{cond}")),
                        v.iter()
                            .map(|x| format!("{x:.3}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
                .collect();
            let _ = writeln!(
                s,
                "      \"getppid_ns_per_call\": {{{}}},",
                overhead.join(", ")
            );
            let _ = writeln!(
                s,
                "      \"remarks\": [{}],",
                place
                    .remarks
                    .iter()
                    .map(|r| q(r))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            s.push_str("      \"points\": [\n");
            for (j, p) in place.points.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "        {{\n          \"n\": {}, \"threads\": {},",
                    p.n, p.threads
                );
                s.push_str("          \"median_ms\": {");
                let med: Vec<String> = p
                    .samples
                    .keys()
                    .filter_map(|k| Some(format!("{}: {:.3}", q(k), p.median_ns(k)? as f64 / 1e6)))
                    .collect();
                s.push_str(&med.join(", "));
                s.push_str("},\n          \"runs_ms\": {");
                let runs: Vec<String> = p
                    .samples
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{}: [{}]",
                            q(k),
                            v.iter()
                                .map(|x| format!("{:.3}", x.ns as f64 / 1e6))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })
                    .collect();
                s.push_str(&runs.join(", "));
                let _ = writeln!(s, "}},");
                let r = |a: &str, b: &str| {
                    ratio(p.median_ns(a), p.median_ns(b))
                        .map_or_else(|| "null".into(), |r| format!("{r:.2}"))
                };
                let _ = writeln!(
                    s,
                    "          \"ratios\": {{\"a/c\": {}, \"b/c\": {}, \"c/d\": {}, \"a/b\": {}, \"b/cm\": {}, \"cm/d\": {}}},",
                    r("a", "c"),
                    r("b", "c"),
                    r("c", "d"),
                    r("a", "b"),
                    r("b", "cm"),
                    r("cm", "d")
                );
                let rss = |k: &str| {
                    p.max_rss_kb(k)
                        .map_or_else(|| "null".into(), |x| x.to_string())
                };
                let _ = writeln!(
                    s,
                    "          \"peak_rss_kb_c\": {}, \"peak_rss_kb_cm\": {},",
                    rss("c"),
                    rss("cm")
                );
                let missing: Vec<String> = p
                    .missing
                    .iter()
                    .map(|(k, v)| format!("{}: {}", q(k), q(v)))
                    .collect();
                let _ = writeln!(s, "          \"not_measured\": {{{}}},", missing.join(", "));
                let _ = writeln!(
                    s,
                    "          \"notes\": [{}],",
                    p.notes.iter().map(|n| q(n)).collect::<Vec<_>>().join(", ")
                );
                let _ = writeln!(s, "          \"blocking\": {},", q(&p.blocking));
                let _ = writeln!(
                    s,
                    "          \"blocking_lines_c\": {},",
                    p.samples
                        .get("c")
                        .and_then(|v| v.last())
                        .map_or_else(|| "null".into(), |x| x.lines.to_string())
                );
                let _ = writeln!(
                    s,
                    "          \"problems\": [{}]",
                    p.disagreements
                        .iter()
                        .map(|n| q(n))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let _ = writeln!(
                    s,
                    "        }}{}",
                    if j + 1 < place.points.len() { "," } else { "" }
                );
            }
            let _ = writeln!(
                s,
                "      ]\n    }}{}",
                if i + 1 < self.places.len() { "," } else { "" }
            );
        }
        s.push_str("  ],\n  \"targets\": [\n");
        let verdicts = self.verdicts();
        for (i, v) in verdicts.iter().enumerate() {
            let _ = writeln!(
                s,
                "    {{\"target\": {}, \"where\": {}, \"verdict\": {}, \"measured\": {}}}{}",
                q(&v.target),
                q(v.place),
                q(v.status),
                q(&v.detail),
                if i + 1 < verdicts.len() { "," } else { "" }
            );
        }
        s.push_str("  ]\n}\n");
        s
    }
}

/// A JSON string.
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::q;

    #[test]
    fn json_strings() {
        assert_eq!(q("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }
}
