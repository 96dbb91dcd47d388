//! The command-line front end of running, shared by `capsule exec` and the minimal
//! `capsule-runner` binary so that both behave exactly alike: the same flags, trust rules,
//! envelope and exit codes.

pub mod args;
mod exec;
pub mod report;

pub use exec::{ExecCommand, ExecHow, exec_bundle};
