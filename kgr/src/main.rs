//! kgr: parse the command line, run the command, render its report, map the
//! outcome to the exit status of compat.md.

mod cli;
mod commands;
mod model;
mod output;
mod sources;

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

use cli::{Cli, Command};
use commands::Context;
use sources::Root;

/// Exit statuses (compat.md): `check` answers 0/1 and 2 for "could not tell";
/// every other command 0 for success and 1 for an error.
const EXIT_OK: u8 = 0;
const EXIT_ERROR: u8 = 1;
const EXIT_CHECK_IN_PROGRESS: u8 = 1;
const EXIT_CHECK_UNKNOWN: u8 = 2;
/// `monitor --once`: the transition did not complete (timeout, cancel, Ctrl-C).
const EXIT_MONITOR_NOT_COMPLETED: u8 = 1;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    let is_check = args.iter().skip(1).any(|a| a == "check");
    let error_status = if is_check {
        EXIT_CHECK_UNKNOWN
    } else {
        EXIT_ERROR
    };
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) =>
        {
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("kgr: {} (see kgr --help)", usage_error_line(&err));
            return ExitCode::from(error_status);
        }
    };
    let root = match cli.root.as_deref().map(Root::open).transpose() {
        Ok(root) => root.unwrap_or_else(Root::live),
        Err(err) => {
            eprintln!("kgr: {}", error_line(&err));
            return ExitCode::from(error_status);
        }
    };
    let mut ctx = Context {
        root,
        verbose: cli.verbose,
        json: cli.json,
        no_ebpf: cli.no_ebpf,
        force_ebpf: cli.force_ebpf,
        warnings: Vec::new(),
        notes: Vec::new(),
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = run(&cli.command, &mut ctx, &mut out).and_then(|code| {
        out.flush()?;
        Ok(code)
    });
    for warning in &ctx.warnings {
        eprintln!("kgr: warning: {warning}");
    }
    for note in &ctx.notes {
        eprintln!("kgr: {note}");
    }
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kgr: {}", error_line(&err));
            ExitCode::from(error_status)
        }
    }
}

/// Runs one command and renders its report; returns the exit status.
fn run(command: &Command, ctx: &mut Context, out: &mut impl Write) -> anyhow::Result<u8> {
    let verbose = ctx.verbose;
    let json = ctx.json;
    match command {
        Command::Status => {
            let report = commands::status::run(ctx, verbose > 0 || json)?;
            if json {
                output::json(out, &report)?;
            } else {
                output::human::status(out, &report, verbose)?;
            }
            Ok(EXIT_OK)
        }
        Command::Check => {
            let report = commands::status::run(ctx, verbose > 1 || json)?;
            if json {
                output::json(out, &report)?;
            } else {
                output::human::check(out, &report, verbose)?;
            }
            Ok(if report.in_progress() {
                EXIT_CHECK_IN_PROGRESS
            } else {
                EXIT_OK
            })
        }
        Command::Patches => {
            let report = commands::patches::run(ctx)?;
            if json {
                output::json(out, &report)?;
            } else {
                output::human::patches(out, &report, verbose)?;
            }
            Ok(EXIT_OK)
        }
        Command::Blocking(args) | Command::BlockingThreads(args) => {
            let report = commands::blocking::run(ctx, verbose > 0 || json, verbose > 1, args.why)?;
            if json {
                output::json(out, &report)?;
            } else {
                output::human::blocking(out, &report, verbose)?;
            }
            Ok(if report.incomplete {
                EXIT_ERROR
            } else {
                EXIT_OK
            })
        }
        Command::Metrics(args) => {
            let report = commands::metrics::run(ctx)?;
            if json {
                output::json(out, &report)?;
            } else {
                let text = output::prometheus::exposition(&report, None)?;
                match &args.textfile {
                    Some(dir) => output::prometheus::write_textfile(dir, &text)?,
                    None => out.write_all(text.as_bytes())?,
                }
            }
            Ok(EXIT_OK)
        }
        Command::Monitor(args) => {
            use std::io::IsTerminal;
            let timeout = match args.timeout {
                Some(secs) if !(secs.is_finite() && secs >= 0.0) => {
                    anyhow::bail!("--timeout {secs}: expected a number of seconds")
                }
                secs => secs.map(std::time::Duration::from_secs_f64),
            };
            let options = commands::monitor::MonitorOptions {
                once: args.once,
                timeout,
                tty: io::stdout().is_terminal(),
                listen: args.listen.clone(),
                report: args.report.clone(),
                pin: !args.no_pin,
            };
            let outcome = commands::monitor::run(ctx, options, out)?;
            Ok(match outcome {
                model::Outcome::Completed => EXIT_OK,
                _ if args.once => EXIT_MONITOR_NOT_COMPLETED,
                _ => EXIT_OK,
            })
        }
        Command::BenchIterator(args) => {
            commands::bench_iterator::run(ctx, args.repeat, out)?;
            Ok(EXIT_OK)
        }
        Command::Snapshot(args) => {
            let report = commands::snapshot::run(ctx, &args.output)?;
            if json {
                output::json(out, &report)?;
            } else {
                output::human::snapshot(out, &report)?;
            }
            Ok(EXIT_OK)
        }
        Command::Poke(args) => {
            if ctx.root.is_live() && !args.dry_run && !sources::signal::is_root() {
                eprintln!(
                    "Warning: running as non-root user, only this user's processes will be poked"
                );
            }
            let report = commands::poke::run(ctx, args.dry_run)?;
            if json {
                output::json(out, &report)?;
            } else {
                output::human::poke(out, &report, verbose)?;
            }
            Ok(EXIT_OK)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

/// The error chain on one line, with a hint where one helps.
fn error_line(err: &anyhow::Error) -> String {
    let mut line = format!("{err:#}").replace('\n', " ");
    let denied = err
        .chain()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::PermissionDenied)
        || line.contains("permission denied");
    if denied && !sources::signal::is_root() {
        line.push_str(" (run as root)");
    }
    line
}

/// clap's message, reduced to its first line without the `error: ` prefix.
fn usage_error_line(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let first = text.lines().next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    format!("invalid arguments: {first}")
}
