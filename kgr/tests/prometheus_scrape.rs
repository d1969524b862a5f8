//! `kgr monitor --listen`: Debian's Prometheus server, started on loopback,
//! scrapes kgr, and its HTTP API returns kgr's metrics — including a
//! transition that completed while kgr watched. Skipped (with the reason)
//! where `prometheus` or `curl` is not installed.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("read fixture") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn curl(url: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "5", url])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Polls `what` until it gives a value or `secs` pass.
fn eventually<T>(secs: u64, what: impl Fn() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = what() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        sleep(Duration::from_millis(250));
    }
}

#[test]
fn prometheus_scrapes_kgr_monitor() {
    for tool in ["prometheus", "curl"] {
        if !have(tool) {
            println!(
                "SKIPPED: {tool} not installed (cargo xtask test installs Debian's prometheus)"
            );
            return;
        }
    }
    let dir: PathBuf = std::env::temp_dir().join(format!("kgr-scrape-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let root = dir.join("root");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/patching-6.12"),
        &root,
    );

    let kgr_port = free_port();
    let kgr = Killed(
        Command::new(env!("CARGO_BIN_EXE_kgr"))
            .arg("--root")
            .arg(&root)
            .args(["monitor", "--listen", &format!("127.0.0.1:{kgr_port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting kgr monitor"),
    );
    let metrics_url = format!("http://127.0.0.1:{kgr_port}/metrics");
    let first = eventually(10, || curl(&metrics_url)).expect("kgr serves /metrics");
    assert!(first.contains("kgr_blocking_threads 8"), "{first}");

    let prom_port = free_port();
    let config = dir.join("prometheus.yml");
    fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: kgr\n    static_configs:\n      - targets: ['127.0.0.1:{kgr_port}']\n"
        ),
    )
    .expect("writing prometheus.yml");
    let _prometheus = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting prometheus"),
    );
    let query = |q: &str| {
        let body = curl(&format!(
            "http://127.0.0.1:{prom_port}/api/v1/query?query={q}"
        ))?;
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        let value = json["data"]["result"][0]["value"][1].as_str()?.to_owned();
        Some(value)
    };
    let blocking = eventually(30, || query("kgr_blocking_threads"));
    assert_eq!(
        blocking.as_deref(),
        Some("8"),
        "Prometheus scraped kgr_blocking_threads"
    );
    assert_eq!(query("kgr_transition_in_progress").as_deref(), Some("1"));

    // The transition completes while kgr watches (sysfs polling under --root).
    fs::write(
        root.join("sys/kernel/livepatch/livepatch_test/transition"),
        "0\n",
    )
    .expect("ending the transition");
    let completed = eventually(30, || {
        query("kgr_transitions_total%7Bresult%3D%22completed%22%7D").filter(|v| v == "1")
    });
    assert_eq!(
        completed.as_deref(),
        Some("1"),
        "the completed transition reached Prometheus"
    );
    assert_eq!(query("kgr_transition_in_progress").as_deref(), Some("0"));
    drop(kgr);
    let _ = fs::remove_dir_all(&dir);
}
