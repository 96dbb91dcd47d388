//! Bundles in OCI registries: references (`oci://HOST/REPO[:TAG][@sha256:...]`), credentials, the
//! transport (oci-client), and opening a bundle from a registry into the runner's store. The
//! mapping of a bundle onto an OCI manifest is the packager's ([`capsule_packager::oci`]).

mod auth;
mod client;
mod open;
mod reference;

pub use client::{PushOutcome, RegistryClient};
pub use reference::{Reference, SCHEME};
