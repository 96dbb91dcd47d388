//! The client side: submitting a job, waiting for its final result, counting jobs by state.

use super::{Error, Job, JobResult, Queue, Status};
use futures_util::StreamExt;
use serde::Serialize;
use std::time::{Duration, Instant};

/// How often `wait_result` also looks the result up in the stream, besides listening for it (a
/// result stored while the connection was down is only found that way).
const POLL_EVERY: Duration = Duration::from_secs(1);

/// Publishes `job` on its subject and waits for the server to store it. Submitting the same job
/// id again within the duplicate window stores it once.
pub async fn submit(queue: &Queue, job: &Job) -> Result<(), Error> {
    job.validate().map_err(Error::Invalid)?;
    let payload = serde_json::to_vec(job)
        .map_err(|e| Error::Invalid(format!("cannot encode the job: {e}")))?;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, job.job_id.as_str());
    let action = || {
        format!(
            "cannot submit job `{}` to stream `{}`",
            job.job_id, queue.names.jobs_stream
        )
    };
    queue
        .js
        .publish_with_headers(
            queue.names.job_subject(&job.job_id),
            headers,
            payload.into(),
        )
        .await
        .map_err(|e| Error::js(action(), e))?
        .await
        .map_err(|e| Error::js(action(), e))?;
    Ok(())
}

/// A subscription to one job's result subject, made before the job is submitted so that a fast
/// result is not missed.
pub struct ResultWatch {
    job_id: String,
    subscriber: async_nats::Subscriber,
}

impl ResultWatch {
    /// Listens for `job_id`'s result.
    pub async fn new(queue: &Queue, job_id: &str) -> Result<Self, Error> {
        let subscriber = queue
            .client
            .subscribe(queue.names.result_subject(job_id))
            .await
            .map_err(|e| Error::js(format!("cannot listen for the result of job `{job_id}`"), e))?;
        Ok(ResultWatch {
            job_id: job_id.to_string(),
            subscriber,
        })
    }
}

/// The final result of the watched job, waiting at most `timeout` (`None`: forever).
pub async fn wait_result(
    queue: &Queue,
    mut watch: ResultWatch,
    timeout: Option<Duration>,
) -> Result<JobResult, Error> {
    let started = Instant::now();
    loop {
        if let Some(result) = queue.final_result(&watch.job_id).await? {
            return Ok(result);
        }
        let mut wait = POLL_EVERY;
        if let Some(timeout) = timeout {
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(Error::WaitTimedOut {
                    job_id: watch.job_id,
                    seconds: timeout.as_secs(),
                });
            }
            wait = wait.min(left);
        }
        if let Ok(Some(message)) = tokio::time::timeout(wait, watch.subscriber.next()).await
            && let Ok(result) = serde_json::from_slice::<JobResult>(&message.payload)
        {
            return Ok(result);
        }
    }
}

/// Jobs by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Submitted and not yet delivered to a worker.
    pub queued: u64,
    /// Delivered to a worker and not yet acknowledged (running, or waiting for redelivery).
    pub running: u64,
    /// Final result `ok`.
    pub done: u64,
    /// Final result `task_failed`, `bundle_invalid` or `expired`.
    pub failed: u64,
    /// Final result `lost`.
    pub lost: u64,
}

/// Counts the queue's jobs by state: queued and running from the consumer (or the stream, before
/// any consumer exists), the rest from the final results.
pub async fn counts(queue: &Queue) -> Result<Counts, Error> {
    let mut counts = Counts::default();
    let mut jobs = queue.jobs.clone();
    match jobs.consumer_info(&queue.names.consumer).await {
        Ok(info) => {
            counts.queued = info.num_pending;
            counts.running = info.num_ack_pending as u64;
        }
        Err(_) => {
            counts.queued = jobs
                .info()
                .await
                .map_err(|e| {
                    Error::js(
                        format!("cannot read stream `{}`", queue.names.jobs_stream),
                        e,
                    )
                })?
                .state
                .messages;
        }
    }
    for result in queue.all_results().await? {
        match result.status {
            Status::Ok => counts.done += 1,
            Status::TaskFailed | Status::BundleInvalid | Status::Expired => counts.failed += 1,
            Status::Lost => counts.lost += 1,
        }
    }
    Ok(counts)
}
