//! `capsule-runner`: the minimal runner for production hosts. It executes verified, signed
//! bundles from their precompiled code and nothing else; it has no compiler in it, so a bundle
//! without code for this host is refused rather than compiled.

use capsule_runner::cli::{ExecCommand, WorkerCommand, report};
use clap::Parser;
use std::process::ExitCode;

/// Run Capsule bundles (precompiled code only; no compiler).
#[derive(Parser)]
#[command(name = "capsule-runner", version, after_help = report::EXIT_STATUS_HELP)]
enum Cli {
    Exec(ExecCommand),
    Worker(WorkerCommand),
}

fn main() -> ExitCode {
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
    report::exit_status(outcome)
}

#[cfg(test)]
mod tests {
    #[test]
    fn verify_cli() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
