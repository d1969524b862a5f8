//! Project tasks: the test command of the README, the VM lab and the demo.

mod bench;
mod dist;
mod docs;
mod setup;
mod test;
mod vm;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "kgr project tasks (run as `cargo xtask ...`)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Benchmarks: `blocking` against the shell scan, a plain Rust scan and
    /// the bare eBPF iterator, in the VM lab and on the host.
    Bench(bench::BenchArgs),
    /// Build the .deb and .rpm packages (target/debian, target/generate-rpm).
    Dist {
        /// Also install the .deb here and check both packages with dpkg, rpm
        /// and systemd-analyze.
        #[arg(long)]
        check: bool,
    },
    /// Generate the man page and shell completions into doc/.
    Docs {
        /// Fail when the committed files are stale instead of writing them.
        #[arg(long)]
        check: bool,
    },
    /// Install what building kgr needs (the eBPF toolchain); idempotent.
    Setup,
    /// The project's one test command: format, lints, unit and fixture
    /// tests, then the VM lab scenarios on every lab kernel.
    Test(test::TestArgs),
    /// The real-kernel lab: a live-patching kernel in qemu.
    #[command(subcommand)]
    Vm(vm::VmCommand),
    /// The README's main job: a real stuck live patch transition in the
    /// lab, diagnosed by kgr, step by step.
    Demo(vm::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => setup::run().and_then(|()| bench::run(&args)),
        Command::Docs { check } => docs::run(check),
        Command::Dist { check } => setup::run().and_then(|()| {
            let (deb, rpm) = dist::build()?;
            if check {
                dist::check(&deb, &rpm)?;
            }
            Ok(())
        }),
        Command::Setup => setup::run(),
        Command::Test(args) => setup::run().and_then(|()| test::run(&args)),
        Command::Vm(cmd) => setup::run().and_then(|()| vm::run(cmd)),
        Command::Demo(args) => setup::run().and_then(|()| vm::demo(&args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}
