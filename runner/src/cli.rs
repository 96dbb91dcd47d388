//! The command-line front end of running, shared by `capsule exec` and the minimal
//! `capsule-runner` binary so that both behave exactly alike: the same flags, trust rules,
//! envelope and exit codes.

pub mod args;
pub(crate) mod exec;
pub mod report;
mod worker;
mod worker_pool;

pub use exec::{ExecCommand, ExecHow, exec_bundle};
pub use worker::WorkerCommand;
