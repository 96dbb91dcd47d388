//! The queue worker: pulls jobs from the queue's durable consumer (no more than it has free
//! slots), keeps each delivery alive with progress acks while it runs, stores the final result
//! and only then acks. Every path through a job ends in exactly one of: a stored result and an
//! ack (or a term, for a bundle that failed verification), a delayed nak (a transient failure,
//! redelivered), or nothing (the worker died or the server is gone: redelivered after `ack_wait`).

use super::job::Job;
use super::{ConsumerSettings, Error, JobResult, Queue, Status, reaper};
use crate::worker::BundleCache;
use crate::{CallOptions, Envelope, ErrorType, LoadedBundle, Runner};
use async_nats::jetstream::{self, AckKind};
use capsule_packager::sign::Trust;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long one pull request waits for jobs before it is renewed.
const FETCH_WAIT: Duration = Duration::from_secs(1);
/// Pause after a failed pull (server unreachable) before the next one.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// How long a job's result is retried when the server does not confirm it (it restarts, say);
/// after that the delivery is left to be redelivered.
const PUBLISH_PATIENCE: Duration = Duration::from_secs(60);
/// Redelivery delay after a transient failure (the bundle could not be fetched, say).
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// How the queue worker runs.
pub struct QueueWorkerOptions {
    /// `nats://HOST:PORT`.
    pub url: String,
    /// The queue name.
    pub queue: String,
    /// Jobs running at once in this worker.
    pub concurrency: usize,
    /// Threads running jobs (`None`: one per core).
    pub threads: Option<usize>,
    /// Redelivery settings to apply to the consumer (`None`: keep what it has, or the defaults).
    pub consumer: Option<ConsumerSettings>,
    /// This worker's name in results.
    pub name: String,
    /// Whose signatures are accepted.
    pub trust: Trust,
}

/// What the jobs of one worker share.
pub(super) struct WorkerContext {
    pub queue: Queue,
    pub bundles: BundleCache,
    pub name: String,
    pub ack_wait: Duration,
    pub max_deliver: i64,
}

/// Runs the worker until the process is stopped; an error means it could not start (the server
/// is unreachable, or refused to create the streams).
pub fn serve(runner: Runner, options: QueueWorkerOptions) -> Result<(), Error> {
    let runtime = crate::worker::multi_thread_runtime(options.threads, "capsule-queue")
        .map_err(|e| Error::Invalid(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(run(runner, options))
}

async fn run(runner: Runner, options: QueueWorkerOptions) -> Result<(), Error> {
    let queue = Queue::connect(&options.url, &options.queue).await?;
    let consumer = queue.consumer(options.consumer).await?;
    let config = &consumer.cached_info().config;
    let context = Arc::new(WorkerContext {
        bundles: BundleCache::new(runner, options.trust, None),
        name: options.name,
        ack_wait: config.ack_wait,
        max_deliver: config.max_deliver,
        queue,
    });
    eprintln!(
        "capsule worker `{}`: queue `{}` at {} ({} jobs at once, ack wait {:?}, max deliver {})",
        context.name,
        context.queue.names.queue,
        options.url,
        options.concurrency,
        context.ack_wait,
        context.max_deliver
    );
    tokio::spawn(reaper::run(context.clone()));
    let concurrency = options.concurrency.max(1);
    let slots = Arc::new(Semaphore::new(concurrency));
    // Listening from here on, so that a signal during a fetch is not missed.
    let stop = stop_signal()?;
    let mut failing = false;
    loop {
        // Ask for as many jobs as there are free slots, waiting for at least one.
        let first = tokio::select! {
            permit = slots.clone().acquire_owned() => permit,
            _ = stop.notified() => break,
        };
        if stop.is_set() {
            break;
        }
        let Ok(first) = first else { break };
        let mut permits = vec![first];
        while let Ok(permit) = slots.clone().try_acquire_owned() {
            permits.push(permit);
        }
        let mut batch = match consumer
            .batch()
            .max_messages(permits.len())
            .expires(FETCH_WAIT)
            .messages()
            .await
        {
            Ok(batch) => batch,
            Err(error) => {
                if !failing {
                    eprintln!("capsule worker: cannot fetch jobs (retrying): {error}");
                    failing = true;
                }
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        if failing {
            eprintln!("capsule worker: fetching jobs again");
            failing = false;
        }
        while let Some(item) = batch.next().await {
            match item {
                Ok(message) => {
                    let Some(permit) = permits.pop() else { break };
                    tokio::spawn(handle(context.clone(), message, permit));
                    if permits.is_empty() {
                        break;
                    }
                }
                Err(error) => {
                    eprintln!("capsule worker: a pull request failed: {error}");
                    tokio::time::sleep(RETRY_PAUSE).await;
                    break;
                }
            }
        }
    }
    // Stopped: take no more jobs, finish (and ack) the running ones.
    let running = concurrency - slots.available_permits();
    eprintln!("capsule worker: stopping after the {running} running job(s)");
    let _ = slots.acquire_many(concurrency as u32).await;
    Ok(())
}

/// Set once SIGTERM or SIGINT arrives.
struct Stop {
    set: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl Stop {
    fn is_set(&self) -> bool {
        self.set.load(std::sync::atomic::Ordering::Acquire)
    }

    async fn notified(&self) {
        let notified = self.notify.notified();
        if !self.is_set() {
            notified.await;
        }
    }
}

/// Starts listening for SIGTERM and SIGINT.
fn stop_signal() -> Result<Arc<Stop>, Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let listen =
        |kind| signal(kind).map_err(|e| Error::Invalid(format!("cannot listen for signals: {e}")));
    let (mut term, mut int) = (
        listen(SignalKind::terminate())?,
        listen(SignalKind::interrupt())?,
    );
    let stop = Arc::new(Stop {
        set: false.into(),
        notify: tokio::sync::Notify::new(),
    });
    let setter = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        setter.set.store(true, std::sync::atomic::Ordering::Release);
        setter.notify.notify_waiters();
    });
    Ok(stop)
}

/// What to tell the server about a delivery once the worker is done with it.
enum Disposition {
    /// The job has its final result: remove it from the queue.
    Ack,
    /// The job can never run (its bundle failed verification); its result is stored.
    Term,
    /// A transient failure: deliver it again after a pause.
    Retry,
    /// Nothing: the result could not be stored; it is redelivered after `ack_wait`.
    Leave,
}

async fn handle(
    context: Arc<WorkerContext>,
    message: jetstream::Message,
    _slot: OwnedSemaphorePermit,
) {
    let Some(job_id) = context
        .queue
        .names
        .job_id_of(&message.subject)
        .map(str::to_string)
    else {
        // Not a job subject of this queue: nothing can answer it.
        let _ = message.ack_with(AckKind::Term).await;
        return;
    };
    let attempt = message
        .info()
        .map_or(1, |info| info.delivered.max(1) as u64);
    // Progress acks keep this delivery ours for as long as the job runs.
    let progress = {
        let message = message.clone();
        let every = (context.ack_wait / 3).max(Duration::from_millis(100));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let _ = message.ack_with(AckKind::Progress).await;
            }
        })
    };
    let disposition = process(&context, &message, &job_id, attempt).await;
    progress.abort();
    let acked = match disposition {
        Disposition::Ack => ack(&message, AckKind::Ack).await,
        Disposition::Term => ack(&message, AckKind::Term).await,
        Disposition::Retry => message
            .ack_with(AckKind::Nak(Some(RETRY_DELAY)))
            .await
            .map_err(|e| e.to_string()),
        Disposition::Leave => Ok(()),
    };
    if let Err(error) = acked {
        // Redelivered later; the worker that gets it finds the stored result and only acks.
        eprintln!(
            "capsule worker: job `{job_id}`: cannot acknowledge it ({error}); it will be redelivered"
        );
    }
}

/// Runs one delivery of a job and stores its result when it has a final one.
async fn process(
    context: &WorkerContext,
    message: &jetstream::Message,
    job_id: &str,
    attempt: u64,
) -> Disposition {
    // A redelivered job may have finished already (its worker died between result and ack).
    match context.queue.final_result(job_id).await {
        Ok(Some(_)) => return Disposition::Ack,
        Ok(None) => {}
        Err(error) => {
            eprintln!("capsule worker: job `{job_id}`: {error}; retrying");
            return Disposition::Retry;
        }
    }
    let result = |status: Status, envelope: Envelope| JobResult {
        v: super::results::RESULT_VERSION,
        job_id: job_id.to_string(),
        status,
        attempt,
        worker: context.name.clone(),
        envelope: serde_json::to_value(&envelope).unwrap_or_default(),
    };
    let job = match Job::parse(&message.payload).and_then(|job| {
        if job.job_id == job_id {
            Ok(job)
        } else {
            Err(format!(
                "invalid `job_id` `{}`: the job was published on the subject of job `{job_id}`",
                job.job_id.escape_debug()
            ))
        }
    }) {
        Ok(job) => job,
        Err(reason) => {
            let envelope = Envelope::refused("", ErrorType::InvalidArgs, reason);
            return store(
                context,
                result(Status::TaskFailed, envelope),
                Disposition::Ack,
            )
            .await;
        }
    };
    let task = job.task.clone().unwrap_or_default();
    if job.expired_at(SystemTime::now()) {
        let envelope = Envelope::refused(
            &task,
            ErrorType::Expired,
            format!(
                "the job's deadline ({} ms since the epoch) passed before it started; nothing ran",
                job.deadline.unwrap_or_default()
            ),
        );
        return store(context, result(Status::Expired, envelope), Disposition::Ack).await;
    }
    let bundle = match resolve_bundle(&context.bundles, &job.bundle).await {
        Ok(bundle) => bundle,
        Err(error) => {
            let refusal = Envelope::refused(
                &task,
                error.error_type(),
                format!(
                    "refusing to run `{}`: {}",
                    job.bundle,
                    crate::cli::exec::describe(&error)
                ),
            );
            // Verification failed, the reference is malformed, or there is no code for this host:
            // no other delivery can do better. Anything else (the registry unreachable, the
            // reference missing from it) may pass: retried, and `lost` on the last delivery.
            let permanent = matches!(
                error,
                crate::Error::Bundle(_) | crate::Error::Incompatible(_) | crate::Error::Usage(_)
            );
            return if permanent {
                store(
                    context,
                    result(Status::BundleInvalid, refusal),
                    Disposition::Term,
                )
                .await
            } else if attempt >= context.max_deliver.max(1) as u64 {
                let envelope = Envelope::refused(
                    &task,
                    ErrorType::Lost,
                    format!(
                        "delivery {attempt} of {} failed too: {}",
                        context.max_deliver,
                        crate::cli::exec::describe(&error)
                    ),
                );
                store(context, result(Status::Lost, envelope), Disposition::Ack).await
            } else {
                eprintln!(
                    "capsule worker: job `{job_id}`: {}; retrying",
                    crate::cli::exec::describe(&error)
                );
                Disposition::Retry
            };
        }
    };
    let envelope = match call_options(&job) {
        Ok(options) => match bundle.call_async(&options).await {
            Ok(envelope) => envelope,
            Err(error) => Envelope::refused(&task, error.error_type(), error.to_string()),
        },
        Err(reason) => Envelope::refused(&task, ErrorType::InvalidArgs, reason),
    };
    let status = if envelope.success {
        Status::Ok
    } else {
        Status::TaskFailed
    };
    store(context, result(status, envelope), Disposition::Ack).await
}

/// The one place a job's bundle reference becomes a verified, loaded bundle: fetched from its
/// registry once per worker and kept in the worker's cache.
async fn resolve_bundle(
    cache: &BundleCache,
    reference: &str,
) -> Result<Arc<LoadedBundle>, crate::Error> {
    cache.get_reference(reference).await
}

fn call_options(job: &Job) -> Result<CallOptions, String> {
    Ok(CallOptions {
        task: job.task.clone(),
        args_json: job.args_json()?,
        files_root: None,
        narrow: match &job.limits {
            Some(limits) => limits.narrowing()?,
            None => crate::Narrowing::default(),
        },
        mounts: Vec::new(),
    })
}

/// Stores `result` (retrying while the server does not confirm it), then `then`; if it cannot
/// be stored, the delivery is left to be redelivered.
async fn store(context: &WorkerContext, result: JobResult, then: Disposition) -> Disposition {
    let started = Instant::now();
    loop {
        match context.queue.publish_result(&result).await {
            Ok(()) => return then,
            Err(error) if started.elapsed() > PUBLISH_PATIENCE => {
                eprintln!(
                    "capsule worker: job `{}`: {error}; giving up, it will be redelivered",
                    result.job_id
                );
                return Disposition::Leave;
            }
            Err(_) => tokio::time::sleep(RETRY_PAUSE).await,
        }
    }
}

/// Acks (or terms) and waits for the server to confirm it, retrying a little.
async fn ack(message: &jetstream::Message, kind: AckKind) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..3 {
        match message.double_ack_with(kind).await {
            Ok(()) => return Ok(()),
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    Err(last)
}

/// `HOST-PID`: the default worker name.
pub fn default_worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_string());
    format!("{host}-{}", std::process::id())
}
