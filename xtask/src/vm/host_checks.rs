//! Checks the host runs on what the guest handed out (`artifact.rs`),
//! counted with the guest's: a snapshot taken in the guest during a blocked
//! transition must read back on the host exactly as the guest answered live,
//! and the `monitor --report` picture must rasterise into a real PNG.

use std::path::Path;
use std::process::Command;

use super::{bench_program, Lab};

/// What the guest ran right after `kgr snapshot -o snap.tar.gz`, and the
/// artifact holding its live output: (check name, kgr arguments, artifact).
const SNAPSHOT_SAME: &[(&str, &[&str], &str)] = &[
    (
        "snapshot.host_same_vv",
        &["-vv", "blocking"],
        "blocking-vv.out",
    ),
    (
        "snapshot.host_same_json_vv",
        &["--json", "-vv", "blocking"],
        "blocking-json-vv.out",
    ),
];

/// Smallest PNG taken for a real picture: width, height, bytes.
const MIN_PICTURE: (u32, u32, usize) = (600, 300, 2048);

/// Runs the host checks on the artifacts in `dir`; `say` gets each
/// `PASS name` / `FAIL name: why` line. Returns (passed, failed).
pub(crate) fn run(lab: &Lab, dir: &Path, mut say: impl FnMut(&str)) -> (u32, u32) {
    let (mut passed, mut failed) = (0, 0);
    let mut verdict = |name: &str, r: Result<(), String>| match r {
        Ok(()) => {
            passed += 1;
            say(&format!("PASS {name}"));
        }
        Err(why) => {
            failed += 1;
            say(&format!("FAIL {name}: {why}"));
        }
    };
    let kgr = bench_program(lab, "kgr");
    let snap = dir.join("snap.tar.gz");
    for (name, args, live) in SNAPSHOT_SAME {
        verdict(name, same_from_snapshot(&kgr, &snap, args, &dir.join(live)));
    }
    let svg = dir.join("transition.svg");
    let png = dir.join("transition.png");
    let rasterised = rasterise(&svg, &png);
    let ok = rasterised.is_ok();
    verdict("report.rasterised", rasterised);
    verdict(
        "report.png_is_a_picture",
        if ok {
            is_a_picture(&png)
        } else {
            Err("not rasterised".into())
        },
    );
    (passed, failed)
}

/// `kgr --root SNAP ARGS` prints what the guest printed live (file `live`).
fn same_from_snapshot(kgr: &Path, snap: &Path, args: &[&str], live: &Path) -> Result<(), String> {
    let want =
        std::fs::read(live).map_err(|e| format!("no guest output {}: {e}", live.display()))?;
    if !snap.exists() {
        return Err(format!("the guest handed out no {}", snap.display()));
    }
    let out = Command::new(kgr)
        .arg("--root")
        .arg(snap)
        .args(args)
        .output()
        .map_err(|e| format!("running {}: {e}", kgr.display()))?;
    if !out.status.success() {
        return Err(format!(
            "kgr --root {} {} exited with {}: {}",
            snap.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if out.stdout == want {
        return Ok(());
    }
    let (w, g) = (
        String::from_utf8_lossy(&want),
        String::from_utf8_lossy(&out.stdout),
    );
    let first = w
        .lines()
        .zip(g.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| w.lines().count().min(g.lines().count()));
    Err(format!(
        "`kgr --root snap.tar.gz {}` differs from the guest's live output at line {}: guest '{}', host '{}'",
        args.join(" "),
        first + 1,
        w.lines().nth(first).unwrap_or("(end)"),
        g.lines().nth(first).unwrap_or("(end)")
    ))
}

/// `rsvg-convert` turns the guest's `monitor --report` SVG into a PNG.
fn rasterise(svg: &Path, png: &Path) -> Result<(), String> {
    if !svg.exists() {
        return Err(format!("the guest handed out no {}", svg.display()));
    }
    let out = Command::new("rsvg-convert")
        .arg("-o")
        .arg(png)
        .arg(svg)
        .output()
        .map_err(|e| format!("running rsvg-convert (librsvg2-bin): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "rsvg-convert exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// `png` is a PNG of at least `MIN_PICTURE` (its IHDR chunk's size, and
/// enough bytes to hold more than a blank page).
fn is_a_picture(png: &Path) -> Result<(), String> {
    let data = std::fs::read(png).map_err(|e| format!("reading {}: {e}", png.display()))?;
    let be32 = |at: usize| -> Option<u32> {
        let b = data.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (w, h) = match (data.get(..8), data.get(12..16), be32(16), be32(20)) {
        (Some(b"\x89PNG\r\n\x1a\n"), Some(b"IHDR"), Some(w), Some(h)) => (w, h),
        _ => return Err(format!("{} is not a PNG", png.display())),
    };
    let (min_w, min_h, min_len) = MIN_PICTURE;
    if w < min_w || h < min_h || data.len() <= min_len {
        return Err(format!(
            "{w}x{h}, {} bytes: expected at least {min_w}x{min_h} and more than {min_len} bytes",
            data.len()
        ));
    }
    Ok(())
}
