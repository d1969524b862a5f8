//! `cargo xtask docs`: the man page and shell completions, generated from
//! kgr's clap definitions (`kgr/src/cli.rs`) into `doc/`. A test fails when
//! the committed files are stale.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use roff::{bold, roman, Roff};

#[path = "../../kgr/src/cli.rs"]
mod kgr_cli;

/// Where the generated files live, relative to the workspace root.
const DOC_DIR: &str = "doc";

/// The workspace root (xtask's parent).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Every generated file: path relative to the root, and its content.
pub fn generate() -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut files = vec![(PathBuf::from(DOC_DIR).join("kgr.8"), man_page()?)];
    for (shell, name) in [
        (Shell::Bash, "kgr.bash"),
        (Shell::Zsh, "_kgr"),
        (Shell::Fish, "kgr.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(
            shell,
            &mut without_hidden(kgr_cli::Cli::command()),
            "kgr",
            &mut buf,
        );
        files.push((PathBuf::from(DOC_DIR).join("completions").join(name), buf));
    }
    Ok(files)
}

/// The command with its hidden subcommands left out: clap_complete's
/// generators list every subcommand, hidden or not, and a hidden one (kgr's
/// `bench-iterator`, for `cargo xtask bench`) is not for users to complete.
fn without_hidden(cmd: clap::Command) -> clap::Command {
    let visible: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set())
        .cloned()
        .collect();
    let mut out = clap::Command::new(cmd.get_name().to_owned())
        .disable_help_subcommand(cmd.is_disable_help_subcommand_set())
        .args(cmd.get_arguments().cloned())
        .subcommands(visible);
    if let Some(version) = cmd.get_version() {
        out = out.version(version.to_owned());
    }
    if let Some(about) = cmd.get_about() {
        out = out.about(about.clone());
    }
    if let Some(long_about) = cmd.get_long_about() {
        out = out.long_about(long_about.clone());
    }
    out
}

/// Writes the files, or with `check` fails when any differs from what is committed.
pub fn run(check: bool) -> Result<()> {
    let root = workspace_root();
    let mut stale = Vec::new();
    for (rel, content) in generate()? {
        let path = root.join(&rel);
        let current = fs::read(&path).unwrap_or_default();
        if current == content {
            continue;
        }
        if check {
            stale.push(rel.display().to_string());
        } else {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            fs::write(&path, &content).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("xtask: docs: wrote {}", rel.display());
        }
    }
    if !stale.is_empty() {
        bail!(
            "stale generated docs: {} (run `cargo xtask docs`)",
            stale.join(", ")
        );
    }
    Ok(())
}

fn man_page() -> Result<Vec<u8>> {
    let cmd = kgr_cli::Cli::command();
    let man = clap_mangen::Man::new(cmd.clone())
        .title("KGR")
        .section("8")
        .source(format!("kgr {}", env!("CARGO_PKG_VERSION")))
        .manual("System Administration");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;

    let mut roff = Roff::new();
    section(&mut roff, "COMMANDS");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let about = sub
            .get_long_about()
            .or(sub.get_about())
            .map(|a| a.to_string())
            .unwrap_or_default();
        let options: Vec<String> = sub
            .get_arguments()
            .filter(|a| !a.is_global_set() && !a.is_hide_set())
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .filter(|l| l != "--help")
            .collect();
        let about = if options.is_empty() {
            about
        } else {
            format!("{about} Options: {}.", options.join(", "))
        };
        tagged(&mut roff, sub.get_name(), &about);
    }
    section(&mut roff, "EXIT STATUS");
    tagged(
        &mut roff,
        "check",
        "0 ready, 1 transition in progress, 2 could not tell (an error).",
    );
    tagged(&mut roff, "every other command", "0 success, 1 error.");
    para(
        &mut roff,
        "A closed pipe (kgr blocking | head -1) is not an error. Errors are one line on \
         standard error, \"kgr: <what failed>: <why>\", with \"(run as root)\" where that is the fix.",
    );
    section(&mut roff, "COMPATIBILITY");
    para(
        &mut roff,
        "The default output of status, check, patches and blocking (with -v and -vv) is that \
         of SUSE's kgr, byte for byte: scripts, openQA tests and SUSE Manager parse it. \
         blocking_threads is an obsolete alias of blocking; poke is obsolete (kernels since 5.1 \
         signal blocking tasks by themselves) and kept working. New information is behind new \
         options and in --json, whose field names are stable.",
    );
    para(
        &mut roff,
        "poke never signals init, kernel threads, tasks in uninterruptible sleep (D), stopped or \
         traced processes (a SIGCONT would resume them) or zombies, and signals through pidfds \
         after checking that the pid still names the process it scanned.",
    );
    section(&mut roff, "EXAMPLES");
    example(
        &mut roff,
        "kgr status",
        "ready, or in_progress while a transition runs.",
    );
    example(
        &mut roff,
        "kgr check && echo done",
        "exit status only: 0 ready, 1 in progress.",
    );
    example(
        &mut roff,
        "kgr -v blocking",
        "each blocking thread with its command line.",
    );
    example(
        &mut roff,
        "kgr -vv blocking",
        "and each one's kernel stack.",
    );
    example(
        &mut roff,
        "kgr -v patches",
        "loaded patches with their package, CVEs and bug references.",
    );
    example(
        &mut roff,
        "kgr --json blocking",
        "the same as one JSON document.",
    );
    example(
        &mut roff,
        "kgr --root /tmp/capture blocking",
        "examine a tree captured on another machine.",
    );
    section(&mut roff, "FILES");
    tagged(
        &mut roff,
        "/sys/kernel/livepatch/",
        "the loaded live patches and the transition flag.",
    );
    tagged(
        &mut roff,
        "/proc/<pid>/task/<tid>/patch_state",
        "each thread's patch state (root only).",
    );
    tagged(
        &mut roff,
        "/sys/kernel/kgraft/, /proc/<pid>/kgr_in_progress",
        "the SLE 12 kGraft interface.",
    );
    out.extend_from_slice(roff.render().as_bytes());
    man.render_version_section(&mut out)?;
    Ok(out)
}

fn section(roff: &mut Roff, title: &str) {
    roff.control("SH", [title]);
}

fn para(roff: &mut Roff, text: &str) {
    roff.control("PP", []);
    roff.text([roman(text)]);
}

fn tagged(roff: &mut Roff, tag: &str, text: &str) {
    roff.control("TP", []);
    roff.text([bold(tag)]);
    roff.text([roman(text)]);
}

fn example(roff: &mut Roff, command: &str, what: &str) {
    tagged(roff, command, what);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed man page and completions are what the CLI generates now.
    #[test]
    fn generated_docs_are_fresh() {
        let root = workspace_root();
        for (rel, content) in generate().expect("generating docs") {
            let committed = fs::read(root.join(&rel)).unwrap_or_default();
            assert!(
                committed == content,
                "{} is stale: run `cargo xtask docs`",
                rel.display()
            );
        }
    }

    #[test]
    fn man_page_has_the_contract_sections() {
        let page = String::from_utf8(man_page().expect("man page")).expect("utf-8");
        for needle in [
            "EXIT STATUS",
            "COMPATIBILITY",
            "EXAMPLES",
            "blocking_threads",
            "poke",
            "DIR/sys",
        ] {
            assert!(page.contains(needle), "man page lacks {needle}");
        }
    }

    /// Every shell completes each visible command and none that is hidden.
    #[test]
    fn completions_offer_the_visible_commands_only() {
        let cmd = kgr_cli::Cli::command();
        let (hidden, visible): (Vec<_>, Vec<_>) =
            cmd.get_subcommands().partition(|sub| sub.is_hide_set());
        assert!(!hidden.is_empty(), "kgr has a hidden command to leave out");
        for (rel, content) in generate().expect("generating docs") {
            if !rel.starts_with(Path::new(DOC_DIR).join("completions")) {
                continue;
            }
            let text = String::from_utf8(content).expect("utf-8");
            for sub in &visible {
                assert!(
                    text.contains(sub.get_name()),
                    "{} lacks {}",
                    rel.display(),
                    sub.get_name()
                );
            }
            for sub in &hidden {
                assert!(
                    !text.contains(sub.get_name()),
                    "{} offers hidden {}",
                    rel.display(),
                    sub.get_name()
                );
            }
            // `--version` in bash and zsh, `-l version` in fish.
            assert!(
                text.contains("version"),
                "{} lacks --version",
                rel.display()
            );
        }
    }
}
