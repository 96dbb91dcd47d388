//! The command-line front end of running, shared by `capsule exec` (the lean `capsule` front,
//! src/bin/capsule.rs), `capsule-full` and the minimal `capsule-runner`, so that all behave
//! exactly alike: the same flags, trust rules, envelope and exit codes.

pub mod args;
pub mod entry;
pub(crate) mod exec;
pub mod full_capsule;
pub mod report;
mod worker;
mod worker_pool;

pub use exec::{ExecCommand, ExecHow, describe, exec_bundle};
pub use worker::WorkerCommand;

/// Automatic eviction at the end of a command that wrote to the caches (see
/// [`crate::gc::auto`]); a failure only costs disk space, so it is a warning.
pub fn bound_caches() {
    let Ok(cache) = args::cache_dir() else {
        return;
    };
    if let Err(error) = crate::gc::auto(&cache) {
        let mut text = format!("warning: cannot bound the caches in `{}`", cache.display());
        let mut cause: Option<&dyn std::error::Error> = Some(&error);
        while let Some(e) = cause {
            text.push_str(&format!("\n  cause: {e}"));
            cause = e.source();
        }
        eprintln!("{text}");
    }
}
