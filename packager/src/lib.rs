//! The Capsule bundle format, and everything build and run must agree on.
//!
//! A bundle (`task.capsule`) is a deterministic tar, zstd-compressed, holding `manifest.json` first and
//! then `blobs/sha256/<hex>` entries: the component `.wasm`, one `.cwasm` per target, and layers such
//! as the Python stdlib. The [`Manifest`] names every blob by digest, media type and size, and records
//! each task's validated [`Policy`]. This crate owns:
//!
//! - [`Digest`]: sha256 content addresses;
//! - [`policy`]: the raw task configuration (as the SDKs and `capsule.toml` give it) and its one
//!   conversion into a typed [`Policy`], which is the only place a limit value is judged;
//! - [`Manifest`] and its schema version;
//! - [`archive`]: writing bundles byte-for-byte reproducibly, and reading them with hard caps;
//! - [`engine`]: the one wasmtime `Config` shared by the compiler and the runner, and the
//!   compatibility fingerprint recorded per target;
//! - [`sign`]: Ed25519 keys and the signature over a manifest;
//! - [`layer`]: unpacking a verified layer into a runner-owned content store;
//! - [`lease`]: advisory locks that keep cache entries in use from being collected;
//! - [`oci`]: the mapping of a bundle onto an OCI image manifest (the network side is the runner's).
//!
//! It depends on no other Capsule crate, so the runner stays small.
//!
//! ```no_run
//! use capsule_packager::archive::{BundleReader, ReadLimits};
//! let bundle = BundleReader::new(ReadLimits::default()).read_file("hello.capsule".as_ref())?;
//! println!("entry task: {}", bundle.manifest.entry);
//! # Ok::<(), capsule_packager::Error>(())
//! ```
#![deny(missing_docs)]

pub mod archive;
pub mod boot;
mod digest;
pub mod engine;
mod error;
pub mod layer;
pub mod lease;
pub mod manifest;
pub mod oci;
pub mod policy;
pub mod sign;
pub mod staging;

pub use digest::Digest;
pub use error::Error;
pub use manifest::Manifest;
pub use policy::Policy;
