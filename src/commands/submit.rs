use anyhow::{Context, bail};
use capsule_runner::cli::args::{QueueArgs, client_runtime};
use capsule_runner::cli::report::{EXIT_BUNDLE, EXIT_TASK_FAILED};
use capsule_runner::queue::job::{self, JOB_VERSION};
use capsule_runner::queue::{Job, Limits, Status, client};
use serde_json::{Map, Value};
use std::time::{Duration, SystemTime};

/// Put a job on a work queue: run a task of a bundle in a registry on whichever worker takes it.
///
/// Prints the job id. With `--wait`, waits for the job's final result and prints it instead (one
/// JSON document: `{job_id, status, attempt, worker, envelope}`).
#[derive(clap::Parser)]
#[command(after_help = SUBMIT_HELP)]
pub struct SubmitCommand {
    #[command(flatten)]
    queue: QueueArgs,

    /// The bundle: `oci://HOST[:PORT]/REPO[:TAG]@sha256:HEX` (a digest pins exactly what runs).
    reference: String,

    /// The job id (letters, digits, `-`, `_`; default: a fresh one). Submitting an id again
    /// within two minutes is a no-op, and a job whose id has a final result does not run again.
    #[arg(long, value_name = "ID")]
    id: Option<String>,

    /// Run this task instead of the bundle's entry task.
    #[arg(long, value_name = "NAME")]
    task: Option<String>,

    /// Arguments as JSON: an array of positional arguments, or `{"args": [...], "kwargs": {...}}`.
    #[arg(long, value_name = "JSON")]
    args_json: Option<String>,

    /// Keyword arguments as a JSON object.
    #[arg(long, value_name = "JSON")]
    kwargs_json: Option<String>,

    /// Stop the task after this long (`500ms`, `30s`); at most what the task declares.
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,

    /// Cap the task's memory (`64MB`); at most what the task declares.
    #[arg(long, value_name = "SIZE")]
    ram: Option<String>,

    /// Fuel budget (`LOW`, `MEDIUM`, `HIGH` or a count); at most what the task declares.
    #[arg(long, value_name = "LEVEL")]
    compute: Option<String>,

    /// Cap the bytes the task may add to its writable directories (`100MB`); at most what the
    /// task declares.
    #[arg(long, value_name = "SIZE")]
    disk: Option<String>,

    /// Do not start the job after this: a duration from now (`30s`, `10m`) or a unix time in
    /// milliseconds. A job still queued then ends `expired` without running.
    #[arg(long, value_name = "WHEN")]
    deadline: Option<String>,

    /// Wait for the final result, print it, and exit with its status.
    #[arg(long)]
    wait: bool,

    /// With `--wait`: give up after this long (`30s`, `10m`; default: wait forever).
    #[arg(long, value_name = "DURATION", requires = "wait")]
    wait_timeout: Option<String>,
}

const SUBMIT_HELP: &str = "Examples:\n  capsule submit --nats nats://10.0.0.5:4222 --queue builds oci://10.0.0.7:5000/tasks/report@sha256:9c1f...\n  \
capsule submit --nats nats://127.0.0.1:4222 --queue q oci://127.0.0.1:5000/echo:1 --args-json '[1, 2]' --deadline 30s --wait\n\n\
Exit status:\n  0  the job was queued (with --wait: its result is `ok`)\n  1  with --wait: `task_failed`, `expired` or `lost`\n  \
2  usage error, or the server could not be reached\n  3  with --wait: `bundle_invalid`";

impl SubmitCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let job = self.job()?;
        let wait_timeout = self
            .wait_timeout
            .as_ref()
            .map(|t| parse_duration(t, "--wait-timeout"))
            .transpose()?;
        client_runtime()?.block_on(async {
            let queue = self.queue.connect().await?;
            // Listen before submitting, so that a quick result is not missed.
            let watch = match self.wait {
                true => Some(client::ResultWatch::new(&queue, &job.job_id).await?),
                false => None,
            };
            client::submit(&queue, &job).await?;
            let Some(watch) = watch else {
                println!("{}", job.job_id);
                return Ok(0);
            };
            let result = client::wait_result(&queue, watch, wait_timeout).await?;
            println!("{}", serde_json::to_string(&result)?);
            Ok(match result.status {
                Status::Ok => 0,
                Status::BundleInvalid => EXIT_BUNDLE,
                Status::TaskFailed | Status::Expired | Status::Lost => EXIT_TASK_FAILED,
            })
        })
    }

    /// The job document from the flags; an error names the flag.
    fn job(&self) -> anyhow::Result<Job> {
        let job_id = match &self.id {
            Some(id) => {
                job::check_job_id(id).map_err(|e| anyhow::anyhow!("invalid `--id` {e}"))?;
                id.clone()
            }
            None => job::new_job_id(),
        };
        let (args, mut kwargs) = match &self.args_json {
            None => (None, Map::new()),
            Some(text) => match serde_json::from_str::<Value>(text)
                .context("`--args-json` is not valid JSON")?
            {
                Value::Array(items) => (Some(Value::Array(items)), Map::new()),
                Value::Object(mut object) => {
                    if let Some(key) = object.keys().find(|k| *k != "args" && *k != "kwargs") {
                        bail!(
                            "`--args-json` has an unknown key `{key}`; expected `args` and/or `kwargs`"
                        );
                    }
                    let args = object.remove("args");
                    let kwargs = match object.remove("kwargs") {
                        None => Map::new(),
                        Some(Value::Object(map)) => map,
                        Some(other) => {
                            bail!("`--args-json`: `kwargs` must be an object, found `{other}`")
                        }
                    };
                    (args, kwargs)
                }
                other => bail!("`--args-json` must be an array or an object, found `{other}`"),
            },
        };
        if let Some(text) = &self.kwargs_json {
            match serde_json::from_str::<Value>(text)
                .context("`--kwargs-json` is not valid JSON")?
            {
                Value::Object(map) => kwargs.extend(map),
                other => bail!("`--kwargs-json` must be a JSON object, found `{other}`"),
            }
        }
        let limits = Limits {
            timeout: self.timeout.clone().map(Value::String),
            ram: self.ram.clone().map(Value::String),
            compute: self.compute.clone().map(Value::String),
            disk: self.disk.clone().map(Value::String),
        };
        // Each limit is checked here so that the error names the flag.
        limits
            .narrowing()
            .map_err(|e| anyhow::anyhow!("{}", e.replace("`limits.", "`--")))?;
        let has_limits = limits.timeout.is_some()
            || limits.ram.is_some()
            || limits.compute.is_some()
            || limits.disk.is_some();
        let deadline = self
            .deadline
            .as_ref()
            .map(|text| job::parse_deadline(text, SystemTime::now()))
            .transpose()
            .map_err(anyhow::Error::msg)?;
        let job = Job {
            v: JOB_VERSION,
            job_id,
            bundle: self.reference.clone(),
            task: self.task.clone(),
            args,
            kwargs: (!kwargs.is_empty()).then_some(kwargs),
            limits: has_limits.then_some(limits),
            deadline,
        };
        job.validate().map_err(|e| {
            anyhow::anyhow!(
                "{}",
                e.replace("`bundle`", "reference")
                    .replace("`task`", "`--task`")
            )
        })?;
        Ok(job)
    }
}

fn parse_duration(text: &str, flag: &str) -> anyhow::Result<Duration> {
    capsule_packager::policy::parse_timeout(&Value::String(text.to_string()))
        .map_err(|e| anyhow::anyhow!("invalid `{flag}`: {e}"))
}
