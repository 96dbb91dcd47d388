//! Names derived from a queue name, the connection, and the streams and consumer behind a queue,
//! created idempotently by whichever side (worker or client) comes first.

use super::Error;
use async_nats::jetstream::{self, consumer, stream};
use std::time::Duration;

/// Longest queue name: it appears in subjects and in stream names.
const MAX_QUEUE_NAME: usize = 64;
/// How long the server remembers a `Nats-Msg-Id`: a job submitted twice, or a result published
/// twice, within this window is stored once.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Jobs held at once; past this, `submit` is refused (back-pressure) rather than dropping old jobs.
const MAX_QUEUED_JOBS: i64 = 1_000_000;
/// A job document's largest size (arguments included).
const MAX_JOB_BYTES: i32 = 1 << 20;
/// Consumer defaults when no worker says otherwise: a job not acked (nor progress-acked) for
/// `ack_wait` is redelivered, at most `max_deliver` deliveries in all.
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
/// See [`DEFAULT_ACK_WAIT`].
pub const DEFAULT_MAX_DELIVER: i64 = 5;
/// How long a connection attempt may take before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Every name a queue uses (see `manifests/queue.md`).
#[derive(Clone, Debug)]
pub struct QueueNames {
    /// The queue name as given.
    pub queue: String,
    /// The work-queue stream: `CAPSULE_JOBS_<queue>`.
    pub jobs_stream: String,
    /// Its subjects: `capsule.<queue>.jobs.<job_id>`.
    pub jobs_prefix: String,
    /// The workers' durable pull consumer: `workers`.
    pub consumer: String,
    /// The results stream: `CAPSULE_RESULTS_<queue>`, one message per subject.
    pub results_stream: String,
    /// Its subjects: `capsule.<queue>.results.<job_id>`.
    pub results_prefix: String,
}

impl QueueNames {
    /// The names of queue `queue`: letters, digits, `-` and `_`, at most 64 characters.
    pub fn new(queue: &str) -> Result<Self, Error> {
        if queue.is_empty()
            || queue.len() > MAX_QUEUE_NAME
            || !queue
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::Invalid(format!(
                "invalid `--queue` `{}`: expected 1 to {MAX_QUEUE_NAME} letters, digits, `-` or `_`",
                queue.escape_debug()
            )));
        }
        Ok(QueueNames {
            queue: queue.to_string(),
            jobs_stream: format!("CAPSULE_JOBS_{queue}"),
            jobs_prefix: format!("capsule.{queue}.jobs."),
            consumer: "workers".to_string(),
            results_stream: format!("CAPSULE_RESULTS_{queue}"),
            results_prefix: format!("capsule.{queue}.results."),
        })
    }

    /// The subject job `job_id` is published on.
    pub fn job_subject(&self, job_id: &str) -> String {
        format!("{}{job_id}", self.jobs_prefix)
    }

    /// The subject job `job_id`'s final result is stored under.
    pub fn result_subject(&self, job_id: &str) -> String {
        format!("{}{job_id}", self.results_prefix)
    }

    /// The job id of a job subject.
    pub fn job_id_of<'s>(&self, subject: &'s str) -> Option<&'s str> {
        subject.strip_prefix(&self.jobs_prefix)
    }

    /// Where the server announces a job that reached `max_deliver`.
    pub fn max_deliveries_advisory(&self) -> String {
        format!(
            "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{}",
            self.jobs_stream, self.consumer
        )
    }
}

/// How the workers' consumer redelivers: set by `capsule worker --ack-wait/--max-deliver`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsumerSettings {
    /// A delivery not acked, nor progress-acked, for this long is redelivered.
    pub ack_wait: Duration,
    /// Deliveries of a job in all; then it is `lost`.
    pub max_deliver: i64,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        ConsumerSettings {
            ack_wait: DEFAULT_ACK_WAIT,
            max_deliver: DEFAULT_MAX_DELIVER,
        }
    }
}

/// A connection to one queue, its streams ensured.
pub struct Queue {
    /// The names.
    pub names: QueueNames,
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) jobs: stream::Stream,
    pub(crate) results: stream::Stream,
}

impl Queue {
    /// Connects to `url` and creates queue `queue`'s streams unless they exist.
    pub async fn connect(url: &str, queue: &str) -> Result<Queue, Error> {
        let names = QueueNames::new(queue)?;
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(CONNECT_TIMEOUT)
            .name("capsule")
            .connect(url)
            .await
            .map_err(|source| Error::Connect {
                url: url.to_string(),
                source,
            })?;
        let js = jetstream::new(client.clone());
        let jobs = ensure_stream(
            &js,
            stream::Config {
                name: names.jobs_stream.clone(),
                description: Some(format!("capsule queue `{queue}`: jobs")),
                subjects: vec![format!("{}*", names.jobs_prefix)],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                duplicate_window: DUPLICATE_WINDOW,
                max_messages: MAX_QUEUED_JOBS,
                max_message_size: MAX_JOB_BYTES,
                discard: stream::DiscardPolicy::New,
                ..Default::default()
            },
        )
        .await?;
        let results = ensure_stream(
            &js,
            stream::Config {
                name: names.results_stream.clone(),
                description: Some(format!("capsule queue `{queue}`: final results by job id")),
                subjects: vec![format!("{}*", names.results_prefix)],
                retention: stream::RetentionPolicy::Limits,
                storage: stream::StorageType::File,
                duplicate_window: DUPLICATE_WINDOW,
                // Keyed by job id: one final result per job, whatever happens.
                max_messages_per_subject: 1,
                ..Default::default()
            },
        )
        .await?;
        Ok(Queue {
            names,
            client,
            js,
            jobs,
            results,
        })
    }

    /// The workers' durable pull consumer, created with `settings` (or the defaults) if missing;
    /// an existing one is updated to `settings` when given and different.
    pub async fn consumer(
        &self,
        settings: Option<ConsumerSettings>,
    ) -> Result<consumer::PullConsumer, Error> {
        let wanted = settings.unwrap_or_default();
        let config = consumer::pull::Config {
            durable_name: Some(self.names.consumer.clone()),
            description: Some(format!("capsule workers of queue `{}`", self.names.queue)),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: wanted.ack_wait,
            max_deliver: wanted.max_deliver,
            ..Default::default()
        };
        let action = || {
            format!(
                "cannot create consumer `{}` on stream `{}`",
                self.names.consumer, self.names.jobs_stream
            )
        };
        let mut existing = match self
            .jobs
            .get_consumer::<consumer::pull::Config>(&self.names.consumer)
            .await
        {
            Ok(existing) => existing,
            Err(_) => match self.jobs.create_consumer(config.clone()).await {
                Ok(created) => return Ok(created),
                // Created meanwhile by another worker or client.
                Err(create_error) => self
                    .jobs
                    .get_consumer(&self.names.consumer)
                    .await
                    .map_err(|_| Error::js(action(), create_error))?,
            },
        };
        let current = ConsumerSettings {
            ack_wait: existing.cached_info().config.ack_wait,
            max_deliver: existing.cached_info().config.max_deliver,
        };
        if settings.is_some() && current != wanted {
            // Create-or-update: a 2.9 server updates the editable fields of a durable consumer.
            self.jobs
                .create_consumer(config)
                .await
                .map_err(|e| Error::js(action(), e))?;
            existing
                .info()
                .await
                .map_err(|e| Error::js("cannot read the consumer after updating it", e))?;
        }
        Ok(existing)
    }

    /// The server, for subscriptions.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }
}

/// The stream named in `config`, created with it if missing (another process may create it at
/// the same time: then theirs is used).
async fn ensure_stream(
    js: &jetstream::Context,
    config: stream::Config,
) -> Result<stream::Stream, Error> {
    let name = config.name.clone();
    match js.get_or_create_stream(config).await {
        Ok(stream) => Ok(stream),
        Err(create_error) => js
            .get_stream(&name)
            .await
            .map_err(|_| Error::js(format!("cannot create stream `{name}`"), create_error)),
    }
}

#[cfg(test)]
mod tests {
    use super::QueueNames;

    #[test]
    fn queue_names_are_checked_and_derived() {
        let names = QueueNames::new("ci-builds_2").expect("valid");
        assert_eq!(names.jobs_stream, "CAPSULE_JOBS_ci-builds_2");
        assert_eq!(names.job_subject("j1"), "capsule.ci-builds_2.jobs.j1");
        assert_eq!(names.result_subject("j1"), "capsule.ci-builds_2.results.j1");
        assert_eq!(names.job_id_of("capsule.ci-builds_2.jobs.j1"), Some("j1"));
        for bad in ["", "a.b", "a*", "a b", ">", &"x".repeat(65)] {
            let error = QueueNames::new(bad).expect_err(bad).to_string();
            assert!(error.contains("`--queue`"), "{error}");
        }
    }
}
