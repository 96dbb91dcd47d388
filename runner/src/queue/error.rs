//! What can go wrong talking to the queue (a job that runs and fails is a result, not an error).

/// A queue operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server could not be reached (or refused the connection).
    #[error("cannot connect to NATS at `{url}`")]
    Connect {
        /// The URL given.
        url: String,
        /// Why.
        #[source]
        source: async_nats::ConnectError,
    },
    /// A JetStream request failed (stream or consumer setup, publish, fetch).
    #[error("{action}")]
    JetStream {
        /// What was being done, naming the stream or subject.
        action: String,
        /// The client's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A value given by the caller is invalid; the message names the flag or field.
    #[error("{0}")]
    Invalid(String),
    /// `submit --wait` gave up.
    #[error("no final result for job `{job_id}` within {seconds} s")]
    WaitTimedOut {
        /// The job waited for.
        job_id: String,
        /// How long it waited.
        seconds: u64,
    },
}

impl Error {
    /// A JetStream error with what was being done.
    pub(crate) fn js(
        action: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::JetStream {
            action: action.into(),
            source: Box::new(source),
        }
    }
}
