//! `capsule`: build Python/JavaScript tasks into signed, content-addressed Wasm bundles and run them
//! under hard limits.
//!
//! This is the lean front. It runs `capsule exec` itself and hands every other command, unchanged,
//! to `capsule-full` (the workspace root's binary) installed beside it. Exec is what a fleet runs
//! thousands of times, and a process pays for every page of its binary it touches (relocated
//! pointers at start, code spread among the compiler's): with the compiler linked in, each exec
//! took about 1.1 ms more. Built on its own (`cargo build -p capsule-runner`) it has no code
//! generator; built together with the root package, cargo's feature unification gives its wasmtime
//! Cranelift, unused but loaded.

use capsule_runner::cli::{ExecCommand, bound_caches, full_capsule, report};
use clap::Parser;
use std::process::ExitCode;

/// `capsule exec`, parsed exactly as `capsule-full` parses it.
#[derive(Parser)]
#[command(name = "capsule", version, after_help = report::EXIT_STATUS_HELP)]
enum Exec {
    Exec(ExecCommand),
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_none_or(|command| command != "exec") {
        return full_capsule::hand_over(&args);
    }
    let Exec::Exec(command) = Exec::parse_from(&args);
    // A bundle without code for this host is compiled by `capsule-full`, once: the runner store
    // keeps the code.
    let outcome = command.execute(Some(full_capsule::compiler()));
    bound_caches();
    report::exit_status(outcome)
}

#[cfg(test)]
mod tests {
    #[test]
    fn verify_cli() {
        use clap::CommandFactory;
        super::Exec::command().debug_assert();
    }
}
