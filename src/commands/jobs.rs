use capsule_runner::cli::args::{QueueArgs, client_runtime};
use capsule_runner::queue::client;

/// Count a work queue's jobs by state: queued, running, done, failed, lost.
///
/// `queued`: submitted, not yet taken by a worker; `running`: taken and not yet acknowledged
/// (running, or waiting to be redelivered); `done`: final result `ok`; `failed`: final result
/// `task_failed`, `bundle_invalid` or `expired`; `lost`: final result `lost`.
#[derive(clap::Parser)]
#[command(
    after_help = "Examples:\n  capsule jobs --nats nats://127.0.0.1:4222 --queue builds\n  \
capsule jobs --nats nats://127.0.0.1:4222 --queue builds --json\n\n\
Exit status:\n  0  the counts were printed\n  2  usage error, or the server could not be reached"
)]
pub struct JobsCommand {
    #[command(flatten)]
    queue: QueueArgs,

    /// Print one JSON object: `{"queued", "running", "done", "failed", "lost"}`.
    #[arg(long)]
    json: bool,
}

impl JobsCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let counts = client_runtime()?.block_on(async {
            let queue = self.queue.connect().await?;
            anyhow::Ok(client::counts(&queue).await?)
        })?;
        if self.json {
            println!("{}", serde_json::to_string(&counts)?);
        } else {
            println!(
                "queued {}\nrunning {}\ndone {}\nfailed {}\nlost {}",
                counts.queued, counts.running, counts.done, counts.failed, counts.lost
            );
        }
        Ok(0)
    }
}
