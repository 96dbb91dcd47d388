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
//! It also starts without std's runtime set-up (`no_main`): that set-up reads `/proc/self/maps` to
//! find the main thread's stack and maps an alternate signal stack, about 0.1 ms of every exec
//! here, for a stack-overflow message this binary does not need (wasmtime installs its own signal
//! handlers and stacks). What of it matters is done in [`main`].

#![cfg_attr(not(test), no_main)]

use capsule_runner::cli::{ExecCommand, bound_caches, full_capsule, report};
use clap::Parser;

/// `capsule exec`, parsed exactly as `capsule-full` parses it.
#[derive(Parser)]
#[command(name = "capsule", version, after_help = report::EXIT_STATUS_HELP)]
enum Exec {
    Exec(ExecCommand),
}

/// The process's entry point, called by the C runtime (std reads the arguments on its own).
#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    keep_standard_streams_open();
    // SAFETY: called before any other thread exists; a closed pipe on stdout then fails the write
    // with EPIPE (reported) instead of killing the process, as under std's own start-up.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    // A panic has printed its message; 101 is the status std gives it.
    let code = std::panic::catch_unwind(run).unwrap_or(101);
    // Flushes stdout, as returning from std's `main` would.
    std::process::exit(code.into())
}

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

/// Opens `/dev/null` on any of descriptors 0-2 the parent left closed (as std's start-up does), so
/// that no file this process opens takes one's place and receives the envelope.
#[cfg_attr(
    test,
    expect(dead_code, reason = "the test harness has its own entry point")
)]
fn keep_standard_streams_open() {
    let mut streams = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `streams` is a valid array of 3 pollfds; a zero timeout does not block.
    if unsafe { libc::poll(streams.as_mut_ptr(), 3, 0) } < 0 {
        return;
    }
    for stream in streams {
        if stream.revents & libc::POLLNVAL != 0 {
            // SAFETY: a NUL-terminated path; the lowest free descriptor is the closed one.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn verify_cli() {
        use clap::CommandFactory;
        super::Exec::command().debug_assert();
    }
}
