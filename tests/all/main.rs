//! End-to-end tests: they drive the real `capsule` binary on real task files, with the real
//! guests (built by guest-images/build.sh) and the real runner. Nothing is mocked.

mod cli;
mod gc;
mod guests;
mod hosts;
mod interpreter;
mod javascript;
mod limits;
mod mcp;
mod projects;
mod queue;
mod registry;
mod servers;
mod sessions;
mod subtasks;
mod support;
mod tamper;
mod targets;
mod worker;
