//! `capsule-full`: the whole `capsule` CLI, with the compiler (Cranelift, Wizer, the guest images,
//! the TypeScript transpiler), the MCP server and the worker. Users type `capsule`: that lean
//! front (runner/src/bin/capsule.rs) runs `exec` itself and hands every other command to this
//! binary, installed beside it. `main` only parses, dispatches and turns the outcome into an exit
//! code.

mod commands;
mod config;
mod local_compiler;

use clap::Parser;
use std::process::ExitCode;

/// Build Python and JavaScript tasks into sandboxed, content-addressed bundles, and run them under
/// the limits they declare.
#[derive(Parser)]
#[command(name = "capsule", version, after_help = capsule_runner::cli::report::EXIT_STATUS_HELP)]
enum Cli {
    Build(commands::BuildCommand),
    Exec(capsule_runner::cli::ExecCommand),
    Push(commands::PushCommand),
    Pull(commands::PullCommand),
    Run(commands::RunCommand),
    RunCode(commands::RunCodeCommand),
    Worker(capsule_runner::cli::WorkerCommand),
    Mcp(commands::McpCommand),
    Inspect(commands::InspectCommand),
    Interpreters(commands::InterpretersCommand),
    Keygen(commands::KeygenCommand),
    Verify(commands::VerifyCommand),
    Gc(commands::GcCommand),
    Submit(commands::SubmitCommand),
    Jobs(commands::JobsCommand),
    Results(commands::ResultsCommand),
    /// Compile a portable component read from stdin for this host, `.cwasm` on stdout (how the
    /// lean `capsule exec` runs a bundle that has no code for this host).
    #[command(hide = true)]
    PrecompileForHost,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands that write to the caches bound them afterwards (when nothing of theirs is in use).
    let bounds_caches = matches!(
        cli,
        Cli::Build(_) | Cli::Exec(_) | Cli::Run(_) | Cli::RunCode(_) | Cli::Pull(_)
    );
    let outcome = match cli {
        Cli::Build(c) => c.execute(),
        Cli::Exec(c) => {
            local_compiler::host_compiler().and_then(|compiler| c.execute(Some(compiler)))
        }
        Cli::Run(c) => c.execute(),
        Cli::Push(c) => c.execute(),
        Cli::Pull(c) => c.execute(),
        Cli::RunCode(c) => c.execute(),
        Cli::Worker(c) => local_compiler::host_compiler().and_then(|compiler| {
            c.execute(Some(compiler), Some(commands::interpreters_for_worker()))
        }),
        Cli::Mcp(c) => local_compiler::host_compiler().and_then(|compiler| c.execute(compiler)),
        Cli::Inspect(c) => c.execute(),
        Cli::Interpreters(c) => c.execute(),
        Cli::Keygen(c) => c.execute(),
        Cli::Verify(c) => c.execute(),
        Cli::Gc(c) => c.execute(),
        Cli::Submit(c) => c.execute(),
        Cli::Jobs(c) => c.execute(),
        Cli::Results(c) => c.execute(),
        Cli::PrecompileForHost => local_compiler::precompile_stdin_to_stdout(),
    };
    if bounds_caches {
        capsule_runner::cli::bound_caches();
    }
    capsule_runner::cli::report::exit_status(outcome)
}

#[cfg(test)]
mod tests {
    #[test]
    fn verify_cli() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
