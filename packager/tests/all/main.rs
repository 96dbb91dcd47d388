//! The packager's own tests: the hardened reader against hostile archives, and a bounded fuzz run.

mod fuzz;
mod hardening;
mod support;
