//! The work queue on NATS JetStream: `capsule worker --nats URL --queue NAME` takes jobs from the
//! queue's work-queue stream through a durable pull consumer, runs each one, and stores exactly
//! one final result per job id in the queue's results stream; `capsule submit`, `jobs` and
//! `results` are the clients. Subjects, stream and consumer names, the job and result schemas and
//! the delivery semantics are documented in `manifests/queue.md`.
//!
//! - [`streams`]: names derived from the queue name, and creating the streams and the consumer
//!   (idempotent: whichever side comes first creates them).
//! - [`job`]: the job schema and its validation.
//! - [`results`]: the result schema, publishing a result (deduplicated by job id) and reading them.
//! - [`consumer`]: the worker loop (fetch, progress acks, run, publish, ack).
//! - [`reaper`]: turns the server's max-deliveries advisories into `lost` results.
//! - [`client`]: submitting a job, waiting for its result, counting jobs by state.

pub mod client;
pub mod consumer;
mod error;
pub mod job;
mod reaper;
pub mod results;
pub mod streams;

pub use client::{Counts, counts, submit, wait_result};
pub use consumer::{QueueWorkerOptions, serve};
pub use error::Error;
pub use job::{Job, Limits};
pub use results::{JobResult, Status};
pub use streams::{ConsumerSettings, Queue, QueueNames};
