//! `capsule`: build Python/JavaScript tasks into signed, content-addressed Wasm bundles and run them
//! under hard limits. `main` only parses, dispatches and turns the outcome into an exit code.

mod args;
mod commands;
mod config;
mod report;

use clap::Parser;
use std::process::ExitCode;

/// Build Python and JavaScript tasks into sandboxed, content-addressed bundles, and run them under
/// the limits they declare.
#[derive(Parser)]
#[command(name = "capsule", version, after_help = report::EXIT_STATUS_HELP)]
enum Cli {
    Build(commands::BuildCommand),
    Exec(commands::ExecCommand),
    Run(commands::RunCommand),
    Inspect(commands::InspectCommand),
    Keygen(commands::KeygenCommand),
    Verify(commands::VerifyCommand),
}

fn main() -> ExitCode {
    let outcome = match Cli::parse() {
        Cli::Build(c) => c.execute(),
        Cli::Exec(c) => c.execute(),
        Cli::Run(c) => c.execute(),
        Cli::Inspect(c) => c.execute(),
        Cli::Keygen(c) => c.execute(),
        Cli::Verify(c) => c.execute(),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(error) => ExitCode::from(report::print_error(&error)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn verify_cli() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
