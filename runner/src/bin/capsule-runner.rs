//! `capsule-runner`: the minimal runner for production hosts. It executes verified, signed
//! bundles from their precompiled code and nothing else; it has no compiler in it, so a bundle
//! without code for this host is refused rather than compiled. It starts without std's runtime
//! set-up ([`capsule_runner::cli::entry`]).

#![cfg_attr(not(test), no_main)]

use capsule_runner::cli::{ExecCommand, WorkerCommand, report};
use clap::Parser;

/// Run Capsule bundles (precompiled code only; no compiler).
#[derive(Parser)]
#[command(name = "capsule-runner", version, after_help = report::EXIT_STATUS_HELP)]
enum Cli {
    Exec(ExecCommand),
    Worker(WorkerCommand),
}

capsule_runner::c_main!(run);

#[cfg_attr(
    test,
    expect(dead_code, reason = "the test harness has its own entry point")
)]
fn run() -> u8 {
    // No compiler: a bundle without code for this host is refused.
    let cli = Cli::parse();
    let bounds_caches = matches!(cli, Cli::Exec(_));
    let outcome = match cli {
        Cli::Exec(command) => command.execute(None),
        Cli::Worker(command) => command.execute(None, None),
    };
    if bounds_caches {
        capsule_runner::cli::bound_caches();
    }
    report::exit_code(outcome)
}

#[cfg(test)]
mod tests {
    #[test]
    fn verify_cli() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
