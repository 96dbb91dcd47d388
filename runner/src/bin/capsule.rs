//! `capsule`: build Python/JavaScript tasks into signed, content-addressed Wasm bundles and run them
//! under hard limits.
//!
//! This is the lean front. It runs `capsule exec` of a bundle file itself and hands every other
//! command (and `exec` of an `oci://` reference), unchanged, to `capsule-full` (the workspace
//! root's binary) installed beside it. Exec is what a fleet runs thousands of times, and a process
//! pays for every page of its binary it touches (relocated pointers at start, code spread among the
//! compiler's): with the compiler linked in, each exec took about 1.1 ms more, and the registry
//! client another 0.1 ms. Built on its own (`cargo build -p capsule-runner`) it has no code
//! generator; built together with the root package, cargo's feature unification gives its wasmtime
//! Cranelift, unused but loaded.
//!
//! It starts without std's runtime set-up ([`capsule_runner::cli::entry`]).

#![cfg_attr(not(test), no_main)]

use capsule_runner::cli::{ExecCommand, bound_caches, full_capsule, report};
use clap::Parser;

/// `capsule exec`, parsed exactly as `capsule-full` parses it.
#[derive(Parser)]
#[command(name = "capsule", version, after_help = report::EXIT_STATUS_HELP)]
enum Exec {
    Exec(ExecCommand),
}

capsule_runner::c_main!(run);

#[cfg_attr(
    test,
    expect(dead_code, reason = "the test harness has its own entry point")
)]
fn run() -> u8 {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_none_or(|command| command != "exec") {
        return full_capsule::hand_over(&args);
    }
    let Exec::Exec(command) = Exec::parse_from(&args);
    // Registry pulls are network-bound: `capsule-full` has the client.
    if command.names_a_registry() {
        return full_capsule::hand_over(&args);
    }
    // A bundle without code for this host is compiled by `capsule-full`, once: the runner store
    // keeps the code.
    let outcome = command.execute_file(Some(full_capsule::compiler()));
    bound_caches();
    report::exit_code(outcome)
}

#[cfg(test)]
mod tests {
    #[test]
    fn verify_cli() {
        use clap::CommandFactory;
        super::Exec::command().debug_assert();
    }
}
