//! Privileged tests on the running kernel: each needs root (and BTF, and a
//! kernel that allows the program); one that cannot run prints
//! `SKIPPED: <why>` and returns.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use procfs::process::all_processes;

use super::*;

/// Set in the helper process: how many sleeping threads to start.
const HELPER_ENV: &str = "KGR_TEST_HELPER_THREADS";

/// Why a privileged test cannot run here, if it cannot.
fn cannot_run() -> Option<String> {
    if let Err(why) = precheck(true, false) {
        return Some(why.to_string());
    }
    if !std::path::Path::new(btf::VMLINUX).exists() {
        return Some(Unavailable::NoBtf.to_string());
    }
    None
}

macro_rules! require_privileges {
    () => {
        if let Some(why) = cannot_run() {
            println!("SKIPPED: {why}");
            return;
        }
    };
}

/// Not a test of its own: the body of the helper process the tests spawn
/// (this test binary, re-run with `HELPER_ENV`). Without it, it does nothing.
#[test]
fn helper_process_with_threads() {
    let Some(count) = std::env::var(HELPER_ENV).ok().and_then(|n| n.parse().ok()) else {
        return;
    };
    for i in 0..count {
        std::thread::Builder::new()
            .name(format!("kgr-helper-{}", i % 10))
            .stack_size(64 * 1024)
            .spawn(|| loop {
                std::thread::park();
            })
            .expect("spawning a helper thread");
    }
    println!("ready");
    std::io::stdout().flush().expect("stdout");
    // Until the parent closes stdin (or kills us).
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

/// A process with `threads` extra threads, all asleep; killed on drop.
struct Helper(Child);

impl Helper {
    fn spawn(threads: usize) -> Helper {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "sources::ebpf::tests::helper_process_with_threads",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HELPER_ENV, threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning the helper process");
        let stdout = child.stdout.take().expect("piped");
        let ready = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("ready"));
        assert!(ready, "the helper process did not start");
        Helper(child)
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).expect("pid fits")
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What procfs says of every thread: tid → (tgid, state letter, kthread, comm).
fn procfs_view() -> HashMap<i32, (i32, char, bool, String)> {
    let mut view = HashMap::new();
    for process in all_processes().expect("listing /proc").flatten() {
        let Ok(tasks) = process.tasks() else { continue };
        for task in tasks.flatten() {
            if let Ok(stat) = task.stat() {
                let kthread = stat.flags & 0x0020_0000 != 0;
                view.insert(task.tid, (task.pid, stat.state, kthread, stat.comm));
            }
        }
    }
    view
}

#[test]
fn snapshot_equals_procfs_for_real_threads() {
    require_privileges!();
    let helper = Helper::spawn(4);
    let mut iterator = match TaskIterator::load(false) {
        Ok(it) => it,
        Err(why) => panic!("the task iterator does not load here: {why}"),
    };
    // Processes come, go and exec (comm changes) while we look: compare the
    // threads procfs showed the same before and after the snapshot.
    let before = procfs_view();
    let snapshot = iterator.snapshot(&|_| true).expect("a snapshot");
    let after = procfs_view();
    let procfs: HashMap<_, _> = before
        .into_iter()
        .filter(|(tid, (tgid, _, kthread, comm))| {
            after
                .get(tid)
                .is_some_and(|(t, _, k, c)| t == tgid && k == kthread && c == comm)
        })
        .collect();
    println!(
        "snapshot: {} threads ({} incomplete), procfs: {} threads, load {:?}, pass {:?}",
        snapshot.threads.len(),
        snapshot.incomplete,
        procfs.len(),
        snapshot.load_time,
        snapshot.pass_time
    );
    assert_eq!(snapshot.incomplete, 0);
    let mut compared = 0;
    for t in &snapshot.threads {
        let Some((tgid, _, kthread, comm)) = procfs.get(&t.tid) else {
            continue;
        };
        compared += 1;
        assert_eq!(t.pid, *tgid, "tgid of {}", t.tid);
        assert_eq!(t.kthread, *kthread, "kthread flag of {}", t.tid);
        // procfs adds a workqueue's name to a kworker's comm.
        assert!(
            comm.starts_with(&t.comm),
            "comm of {}: {:?} vs {comm:?}",
            t.tid,
            t.comm
        );
    }
    // Tasks procfs shows and the iterator does not: on this sandbox host the
    // threads of pid 1 (the sandbox's own init), reported, not hidden.
    let seen: std::collections::HashSet<i32> = snapshot.threads.iter().map(|t| t.tid).collect();
    let mut unseen: Vec<_> = procfs
        .iter()
        .filter(|(tid, _)| !seen.contains(tid))
        .map(|(tid, (tgid, ..))| (*tgid, *tid))
        .collect();
    unseen.sort_unstable();
    println!("compared {compared} threads; seen by procfs only (tgid, tid): {unseen:?}");
    assert!(compared > 0);
    // The helper's threads, asleep: the same in both views, state included.
    let ours: Vec<_> = snapshot
        .threads
        .iter()
        .filter(|t| t.pid == helper.pid())
        .collect();
    assert!(ours.len() >= 5, "helper threads seen: {}", ours.len());
    let mut helpers = 0;
    for t in ours {
        let (_, state, _, comm) = &procfs[&t.tid];
        assert_eq!(&t.comm, comm);
        if t.comm.starts_with("kgr-helper-") {
            helpers += 1;
            assert_eq!(t.state.0, 'S', "{} is asleep", t.tid);
            assert_eq!(*state, 'S');
        }
    }
    assert_eq!(helpers, 4);
}

#[test]
fn syscall_tracker_sees_a_blocked_read() {
    require_privileges!();
    let tracker = match SyscallTracker::attach() {
        Ok(t) => t,
        Err(why) => panic!("raw tracepoints do not attach here: {why}"),
    };
    let (reader, writer) = rustix::pipe::pipe().expect("pipe");
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        tid_tx
            .send(rustix::thread::gettid().as_raw_nonzero().get())
            .expect("send");
        let mut buf = [0u8; 1];
        std::fs::File::from(reader).read(&mut buf).expect("read")
    });
    let tid = tid_rx.recv().expect("tid");
    std::thread::sleep(Duration::from_millis(100));
    let first = tracker
        .in_kernel_since(tid)
        .expect("the reader is in the kernel");
    std::thread::sleep(Duration::from_millis(200));
    let second = tracker
        .in_kernel_since(tid)
        .expect("the reader is still in the kernel");
    println!("read() blocked: {first:?} then {second:?}");
    #[cfg(target_arch = "x86_64")]
    assert_eq!(first.syscall, 0, "SYS_read");
    #[cfg(target_arch = "aarch64")]
    assert_eq!(first.syscall, 63, "SYS_read");
    assert!(first.elapsed >= Duration::from_millis(90));
    assert!(second.elapsed >= first.elapsed + Duration::from_millis(190));
    rustix::io::write(&writer, b"x").expect("write");
    assert_eq!(thread.join().expect("reader"), 1);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        tracker.in_kernel_since(tid),
        None,
        "exited threads are dropped"
    );
    assert_eq!(tracker.untracked(), 0);
}

#[test]
fn fentry_refusal_is_a_fallback_reason() {
    require_privileges!();
    let kernel = match object::Kernel::read(&[]) {
        Ok(k) => k,
        Err(why) => panic!("BTF unreadable: {why}"),
    };
    let function = ["klp_init_transition", "vfs_fsync", "do_nanosleep"]
        .into_iter()
        .find(|f| kernel.ours.has_function(f))
        .expect("one of the candidate functions exists");
    assert_eq!(
        FentryProbe::attach("kgr_no_such_function").err(),
        Some(Unavailable::MissingHook("kgr_no_such_function".into()))
    );
    match FentryProbe::attach(function) {
        Ok(probe) => println!(
            "fentry on {} attached: this kernel allows trampolines",
            probe.function
        ),
        Err(why @ Unavailable::Refused { .. }) => {
            println!("fentry on {function}: fallback: eBPF not used: {why}");
            assert_eq!(why.to_string(), "fentry refused (EPERM)");
        }
        Err(why) => panic!("fentry on {function}: not mapped to a fallback reason: {why}"),
    }
}

/// The crossover of `commands::SNAPSHOT_MIN_THREADS`: a cold snapshot (BTF,
/// load, one pass) against a procfs pass that opens and reads one small file
/// per thread, as the `patch_state` scan does. Run in release, as root:
/// `cargo test --release -p kgr --bin kgr bench_snapshot_vs_procfs -- --ignored --nocapture`
#[test]
#[ignore = "a measurement, not a check: run by hand in release as root"]
fn bench_snapshot_vs_procfs() {
    require_privileges!();
    let sizes: Vec<usize> = std::env::var("KGR_BENCH_THREADS")
        .unwrap_or_else(|_| "0,1000,3000,10000".into())
        .split(',')
        .filter_map(|n| n.parse().ok())
        .collect();
    for extra in sizes {
        let _helper = (extra > 0).then(|| Helper::spawn(extra));
        let mut procfs_best = Duration::MAX;
        let mut ebpf_best = Duration::MAX;
        let (mut load, mut pass, mut threads) = (Duration::ZERO, Duration::ZERO, 0);
        for _ in 0..5 {
            let start = std::time::Instant::now();
            let mut read = 0usize;
            for process in all_processes().expect("listing /proc").flatten() {
                let Ok(tasks) = process.tasks() else { continue };
                for task in tasks.flatten() {
                    let path = format!("/proc/{}/task/{}/comm", task.pid, task.tid);
                    read += std::fs::read(path).map(|b| b.len()).unwrap_or(0);
                }
            }
            assert!(read > 0);
            procfs_best = procfs_best.min(start.elapsed());
            let start = std::time::Instant::now();
            let snapshot = TaskIterator::load(false)
                .and_then(|mut it| it.snapshot(&|_| true))
                .expect("snapshot");
            let took = start.elapsed();
            if took < ebpf_best {
                ebpf_best = took;
                (load, pass, threads) = (
                    snapshot.load_time,
                    snapshot.pass_time,
                    snapshot.threads.len(),
                );
            }
        }
        println!(
            "BENCH {threads} threads: procfs {procfs_best:?}, eBPF {ebpf_best:?} (load {load:?}, pass {pass:?})"
        );
    }
}

#[test]
fn a_pinned_iterator_is_read_by_others_and_removed_on_drop() {
    require_privileges!();
    if rustix::fs::statfs("/sys/fs/bpf").map_or(true, |fs| fs.f_type as u64 != 0xcafe_4a11) {
        println!("SKIPPED: no BPF filesystem mounted at /sys/fs/bpf");
        return;
    }
    let helper = Helper::spawn(3);
    let pinned = PinnedIterator::pin().expect("pinning the task iterator");
    let path = pinned.path().to_path_buf();
    assert!(path.starts_with(pinned::PIN_DIR), "{}", path.display());
    assert!(path.exists());
    let mut asked = false;
    let snapshot = pinned_snapshot(
        || {
            asked = true;
            Ok(())
        },
        &|_| true,
    )
    .expect("reading the pin")
    .expect("a pin to read");
    assert!(asked, "the pid view is checked before a pin is read");
    assert_eq!(
        snapshot.pinned_by,
        Some(i32::try_from(std::process::id()).expect("a pid fits i32"))
    );
    let ours = snapshot
        .threads
        .iter()
        .filter(|t| t.pid == helper.pid() && t.comm.starts_with("kgr-helper-"))
        .count();
    assert_eq!(ours, 3, "the helper's threads in the pinned snapshot");
    // An untrusted pid view refuses the pin.
    let refused = pinned_snapshot(|| Err(Unavailable::Untrusted("test".into())), &|_| true);
    // Kept: none (the host has no live patching: every thread is idle);
    // still every thread is counted.
    let none_kept = pinned_snapshot(|| Ok(()), &|state| state != crate::model::PatchState::Idle)
        .expect("reading the pin")
        .expect("a pin to read");
    assert!(none_kept.threads.is_empty());
    assert!(
        none_kept.seen >= snapshot.seen / 2,
        "{} vs {}",
        none_kept.seen,
        snapshot.seen
    );
    assert!(matches!(refused, Err(Unavailable::Untrusted(_))));
    drop(pinned);
    assert!(!path.exists(), "the pin is removed on drop");
    let none = pinned_snapshot(|| panic!("no pin, nothing to trust"), &|_| true)
        .expect("no pin is not an error");
    assert!(none.is_none());
}
