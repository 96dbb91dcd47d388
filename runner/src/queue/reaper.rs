//! The reaper: when a job's last allowed delivery ends without an ack (its worker died), the
//! server announces it on the consumer's max-deliveries advisory and leaves the job in the
//! stream. Every worker listens; the first to see it stores a `lost` result for the job (the
//! others' are deduplicated by job id) and deletes the job from the stream.

use super::consumer::WorkerContext;
use super::{JobResult, Status};
use crate::{Envelope, ErrorType};
use futures_util::StreamExt;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// The fields of `io.nats.jetstream.advisory.v1.max_deliver` this needs.
#[derive(Deserialize)]
struct MaxDeliveries {
    stream_seq: u64,
    deliveries: u64,
}

/// Listens until the process ends (the client resubscribes after reconnecting).
pub(super) async fn run(context: Arc<WorkerContext>) {
    let subject = context.queue.names.max_deliveries_advisory();
    loop {
        let mut advisories = match context.queue.client.subscribe(subject.clone()).await {
            Ok(subscriber) => subscriber,
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(message) = advisories.next().await {
            if let Ok(advisory) = serde_json::from_slice::<MaxDeliveries>(&message.payload) {
                reap(&context, advisory).await;
            }
        }
    }
}

async fn reap(context: &WorkerContext, advisory: MaxDeliveries) {
    let queue = &context.queue;
    // Gone already: acked late, or reaped by another worker.
    let Ok(job) = queue.jobs.get_raw_message(advisory.stream_seq).await else {
        return;
    };
    let Some(job_id) = queue.names.job_id_of(&job.subject) else {
        return;
    };
    match queue.final_result(job_id).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            let task = super::Job::parse(&job.payload)
                .ok()
                .and_then(|job| job.task)
                .unwrap_or_default();
            let envelope = Envelope::refused(
                &task,
                ErrorType::Lost,
                format!(
                    "job `{job_id}` was delivered {} times (the queue's max_deliver) and no delivery ended with a result; it is given up",
                    advisory.deliveries
                ),
            );
            let result = JobResult {
                v: super::results::RESULT_VERSION,
                job_id: job_id.to_string(),
                status: Status::Lost,
                attempt: advisory.deliveries,
                worker: context.name.clone(),
                envelope: serde_json::to_value(&envelope).unwrap_or_default(),
            };
            if queue.publish_result(&result).await.is_err() {
                return;
            }
        }
        Err(_) => return,
    }
    let _ = queue.jobs.delete_message(advisory.stream_seq).await;
}
