//! Final results: their schema, publishing one (deduplicated by job id, confirmed by the server's
//! PubAck), looking one up, and reading them all.

use super::{Error, Queue};
use async_nats::jetstream::consumer;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// The result schema version.
pub const RESULT_VERSION: u32 = 1;

/// How a job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The task ran and returned a result.
    Ok,
    /// The task ran and failed (exception, limit), or the job's fields do not fit the task.
    TaskFailed,
    /// The bundle failed verification (untrusted, tampered) or cannot run here: never retried.
    BundleInvalid,
    /// The deadline passed before the job started: it did not run.
    Expired,
    /// Every delivery allowed (`max_deliver`) ended without a result (workers died, or the
    /// bundle could not be fetched).
    Lost,
}

impl Status {
    /// The name used in results (`ok`, `task_failed`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::TaskFailed => "task_failed",
            Status::BundleInvalid => "bundle_invalid",
            Status::Expired => "expired",
            Status::Lost => "lost",
        }
    }
}

/// One job's final result, stored on `capsule.<queue>.results.<job_id>`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobResult {
    /// Schema version, [`RESULT_VERSION`].
    pub v: u32,
    /// The job.
    pub job_id: String,
    /// How it ended.
    pub status: Status,
    /// The delivery that produced this result (1 for the first).
    pub attempt: u64,
    /// The worker that produced it (`--name`, default `HOST-PID`).
    pub worker: String,
    /// The envelope `capsule exec --json` prints (for jobs that did not run: its refusal).
    pub envelope: Value,
}

impl Queue {
    /// Publishes `result` under its job id and waits for the server to store it. A second
    /// publish for the same job within the duplicate window is dropped by the server.
    pub async fn publish_result(&self, result: &JobResult) -> Result<(), Error> {
        let subject = self.names.result_subject(&result.job_id);
        let payload = serde_json::to_vec(result)
            .map_err(|e| Error::Invalid(format!("cannot encode the result: {e}")))?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, result.job_id.as_str());
        let action = || format!("cannot publish the result of job `{}`", result.job_id);
        self.js
            .publish_with_headers(subject, headers, payload.into())
            .await
            .map_err(|e| Error::js(action(), e))?
            .await
            .map_err(|e| Error::js(action(), e))?;
        Ok(())
    }

    /// The final result of `job_id`, if there is one.
    pub async fn final_result(&self, job_id: &str) -> Result<Option<JobResult>, Error> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        match self
            .results
            .get_last_raw_message_by_subject(&self.names.result_subject(job_id))
            .await
        {
            Ok(message) => parse_result(&message.payload).map(Some),
            Err(error) if error.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(error) => Err(Error::js(
                format!("cannot look up the result of job `{job_id}`"),
                error,
            )),
        }
    }

    /// Every final result, in the order they were stored.
    pub async fn all_results(&self) -> Result<Vec<JobResult>, Error> {
        let action = |what: &str| format!("cannot {what} stream `{}`", self.names.results_stream);
        let mut results_stream = self.results.clone();
        let stored = results_stream
            .info()
            .await
            .map_err(|e| Error::js(action("read"), e))?
            .state
            .messages;
        if stored == 0 {
            return Ok(Vec::new());
        }
        // An ephemeral consumer reading everything once, without acks.
        let reader = self
            .results
            .create_consumer(consumer::pull::Config {
                deliver_policy: consumer::DeliverPolicy::All,
                ack_policy: consumer::AckPolicy::None,
                inactive_threshold: Duration::from_secs(30),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::js(action("read"), e))?;
        let mut results = Vec::new();
        'batches: loop {
            let mut batch = reader
                .batch()
                .max_messages(1000)
                .expires(Duration::from_secs(2))
                .messages()
                .await
                .map_err(|e| Error::js(action("read"), e))?;
            let mut got = 0;
            while let Some(message) = batch.next().await {
                let message = message.map_err(|source| Error::JetStream {
                    action: action("read"),
                    source,
                })?;
                got += 1;
                results.push(parse_result(&message.payload)?);
                let pending = message.info().map(|i| i.pending).unwrap_or(0);
                if pending == 0 {
                    break 'batches;
                }
            }
            if got == 0 {
                break;
            }
        }
        // It expires on its own after `inactive_threshold` too.
        let _ = self
            .results
            .delete_consumer(&reader.cached_info().name)
            .await;
        Ok(results)
    }
}

fn parse_result(payload: &[u8]) -> Result<JobResult, Error> {
    serde_json::from_slice(payload).map_err(|e| {
        Error::Invalid(format!(
            "a stored result is not a valid result document: {e}"
        ))
    })
}
