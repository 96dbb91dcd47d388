//! The Capsule runner: runs one task of a verified bundle under the limits the bundle declares.
//!
//! [`Runner::open`] reads a bundle with the packager's hardened reader (every blob's sha256 is
//! checked against the manifest before anything else looks at it), picks the `.cwasm` whose engine
//! fingerprint matches this runner's engine, and only then deserializes it. The signature is
//! checked against the caller's [`capsule_packager::sign::Trust`] before any blob is hashed. [`LoadedBundle::call`]
//! runs a task in a fresh instance per attempt: fuel for `compute`, a resource limiter for `ram`,
//! fuel yields for `timeout` (preemptive, so a CPU loop stops too), a byte budget on file growth
//! for `disk` (src/disk.rs), retries, and a WASI
//! context that grants nothing by default: no files but read-only guest layers, only the declared
//! environment variables, no sockets (HTTP only through `wasi:http`, to the hosts the task allows),
//! stdin closed and stdout/stderr captured (bounded) apart from the result. A task may call another
//! task of its bundle (a sub-task, in a fresh instance, under the narrower of both policies). The
//! outcome is an [`Envelope`]. The [`worker`] module serves many calls over NDJSON; the [`queue`]
//! module takes jobs from a NATS JetStream work queue.
//!
//! ```no_run
//! use capsule_packager::sign::{PublicKey, Trust};
//! use capsule_runner::{CallOptions, Runner};
//! let trust = Trust::new(vec![PublicKey::parse("capsule-ed25519:…").unwrap()], false);
//! let runner = Runner::new("/tmp/capsule-store".into())?;
//! let bundle = runner.open("hello.capsule".as_ref(), &trust)?;
//! let envelope = bundle.call(&CallOptions::entry(r#"{"args": ["world"]}"#))?;
//! println!("{}", serde_json::to_string(&envelope).unwrap());
//! # Ok::<(), capsule_runner::Error>(())
//! ```
#![deny(missing_docs)]

pub mod cli;
mod deadline;
mod disk;
mod error;
pub mod gc;
mod http;
mod instance;
mod language;
mod limits;
mod live;
mod outcome;
mod output;
pub mod queue;
pub mod registry;
mod runner;
mod store;
mod subtask;
mod trace;
pub mod worker;

pub use error::Error;
pub use http::HostRequest;
pub use instance::GrantedDir;
pub use language::Language;
pub use live::{CallLimits, LiveCall, LiveGrants, LiveInstance, OutputListeners};
pub use outcome::{Envelope, ErrorInfo, ErrorType, Execution, GuestOutput, SubTaskRecord};
pub use output::Listener;
pub use runner::{CallOptions, LoadedBundle, LocalCompiler, Mount, Narrowing, Runner};
pub use trace::Trace;
