use capsule_runner::cli::args::{QueueArgs, client_runtime};
use capsule_runner::queue::JobResult;

/// Print every final result of a work queue, one line per job, in the order they were stored.
///
/// Text lines: `JOB_ID STATUS attempt=N worker=NAME` and the task's result (or its error).
#[derive(clap::Parser)]
#[command(
    after_help = "Examples:\n  capsule results --nats nats://127.0.0.1:4222 --queue builds\n  \
capsule results --nats nats://127.0.0.1:4222 --queue builds --json | jq -r 'select(.status != \"ok\") | .job_id'\n\n\
Exit status:\n  0  the results were printed\n  2  usage error, or the server could not be reached"
)]
pub struct ResultsCommand {
    #[command(flatten)]
    queue: QueueArgs,

    /// One JSON document per line: `{"v", "job_id", "status", "attempt", "worker", "envelope"}`.
    #[arg(long)]
    json: bool,
}

impl ResultsCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let results = client_runtime()?.block_on(async {
            let queue = self.queue.connect().await?;
            anyhow::Ok(queue.all_results().await?)
        })?;
        let mut stdout = std::io::stdout().lock();
        for result in &results {
            let line = if self.json {
                serde_json::to_string(result)?
            } else {
                text_line(result)
            };
            if std::io::Write::write_all(&mut stdout, format!("{line}\n").as_bytes()).is_err() {
                break; // stdout closed (`| head`): nothing more to say
            }
        }
        Ok(0)
    }
}

/// `JOB_ID STATUS attempt=N worker=NAME RESULT-OR-ERROR`.
fn text_line(result: &JobResult) -> String {
    let envelope = &result.envelope;
    let detail = if envelope["success"] == true {
        envelope["result"].to_string()
    } else {
        format!(
            "{}: {}",
            envelope["error"]["error_type"].as_str().unwrap_or("error"),
            envelope["error"]["message"]
                .as_str()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
        )
    };
    format!(
        "{} {} attempt={} worker={} {}",
        result.job_id,
        result.status.as_str(),
        result.attempt,
        result.worker,
        detail
    )
}
