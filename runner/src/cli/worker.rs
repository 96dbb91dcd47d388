use super::args::{TrustArgs, cache_dir};
use crate::worker::{self, InterpreterBundles, WorkerOptions};
use crate::{LocalCompiler, Runner};
use anyhow::{Context, bail};
use std::sync::Arc;

/// Serve many task calls over NDJSON on stdin/stdout, each in a fresh instance of a warm engine.
///
/// Each line in is `{"id", "bundle", "task"?, "args"?, "kwargs"?, "timeout"?}`; each line out is
/// `{"id", "envelope"}`, in completion order. Bundles are verified once and kept loaded; guest
/// output is captured in the envelope and never written to stdout. At EOF the worker answers every
/// request still running and exits.
///
/// With `--nats URL --queue NAME` it takes jobs from a NATS JetStream work queue instead and
/// stores each job's final result there (manifests/queue.md); `capsule submit` sends jobs.
#[derive(clap::Parser)]
#[command(after_help = WORKER_HELP)]
pub struct WorkerCommand {
    /// Requests running at once (each holds one preallocated instance slot); reading stdin
    /// pauses while this many are in flight.
    #[arg(long, value_name = "N", default_value_t = 16)]
    max_in_flight: u32,

    /// Threads running requests (default: one per core). Calls interleave on a thread at every
    /// fuel yield (about a millisecond of compute), so one thread still runs many requests at once; on virtual machines where
    /// cross-CPU TLB flushes are costly, one thread can be faster (see ci/bench/worker.sh).
    #[arg(long, value_name = "N")]
    threads: Option<u16>,

    /// Worker processes (default 1). With more than one, requests are routed to single-threaded
    /// child workers (each with its share of `--max-in-flight`); separate address spaces avoid
    /// the cross-CPU TLB flushes that make threads slow for short calls on virtual machines.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        conflicts_with = "threads"
    )]
    processes: u16,

    /// Deadline of every request (`500ms`, `30s`); narrows each task's own `timeout`, never
    /// widens it.
    #[arg(long, value_name = "DURATION")]
    request_timeout: Option<String>,

    /// Code interpreter sessions open at once (protocol v2 `session.open`); opening one more
    /// closes the least recently used idle one.
    #[arg(long, value_name = "N", default_value_t = worker::DEFAULT_MAX_SESSIONS as u32)]
    max_sessions: u32,

    /// Idle time after which a session is closed (`90s`, `10m`).
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    session_ttl: String,

    /// Take jobs from a NATS JetStream work queue at this server (`nats://HOST:4222`) instead
    /// of reading requests on stdin; needs `--queue`. Runs until SIGTERM/SIGINT, then finishes the
    /// running jobs. See manifests/queue.md.
    #[arg(long, value_name = "URL", requires = "queue", conflicts_with_all = ["processes", "max_in_flight"])]
    nats: Option<String>,

    /// The queue to take jobs from (with `--nats`): letters, digits, `-` and `_`.
    #[arg(long, value_name = "NAME", requires = "nats")]
    queue: Option<String>,

    /// Jobs running at once in this worker (with `--nats`; default: one per core).
    #[arg(long, value_name = "N", requires = "nats")]
    concurrency: Option<u32>,

    /// Redeliver a job whose worker sent neither an ack nor a progress ack for this long (with
    /// `--nats`; default `30s`). Sets the queue's consumer, for every worker of the queue,
    /// together with `--max-deliver`.
    #[arg(long, value_name = "DURATION", requires = "nats")]
    ack_wait: Option<String>,

    /// Deliveries of a job in all before it is `lost` (with `--nats`; default 5). Sets the
    /// queue's consumer, together with `--ack-wait`.
    #[arg(long, value_name = "N", requires = "nats")]
    max_deliver: Option<u32>,

    /// This worker's name in the results it stores (with `--nats`; default `HOST-PID`).
    #[arg(long, value_name = "NAME", requires = "nats")]
    name: Option<String>,

    #[command(flatten)]
    trust: TrustArgs,
}

const WORKER_HELP: &str = "Examples:\n  echo '{\"id\": 1, \"bundle\": \"hello.capsule\", \"args\": [\"world\"]}' | capsule worker --trust ci.key.pub\n  \
capsule worker --nats nats://10.0.0.5:4222 --queue builds --trust ci.key.pub --concurrency 8\n\n\
Exit status:\n  0  every request was answered (failed tasks included: see each envelope)\n  2  usage error, the streams failed, or (with --nats) the server could not be reached";

/// Most slots a pool is sized for: each reserves address space for its memories.
const MAX_IN_FLIGHT: u32 = 256;
/// Most sessions: each holds a slot for its whole life.
const MAX_SESSIONS: u32 = 256;

impl WorkerCommand {
    /// Runs the worker until EOF on stdin; returns the exit code.
    pub fn execute(
        self,
        compiler: Option<Arc<dyn LocalCompiler>>,
        interpreters: Option<Arc<dyn InterpreterBundles>>,
    ) -> anyhow::Result<u8> {
        if self.max_in_flight == 0 || self.max_in_flight > MAX_IN_FLIGHT {
            bail!(
                "`--max-in-flight` must be between 1 and {MAX_IN_FLIGHT}, got {}",
                self.max_in_flight
            );
        }
        if self.threads == Some(0) {
            bail!("`--threads` must be at least 1");
        }
        if self.processes == 0 {
            bail!("`--processes` must be at least 1");
        }
        let request_timeout = self
            .request_timeout
            .as_ref()
            .map(|t| {
                capsule_packager::policy::parse_timeout(&serde_json::Value::String(t.clone()))
                    .map_err(|e| anyhow::anyhow!("invalid `--request-timeout`: {e}"))
            })
            .transpose()?;
        if self.max_sessions == 0 || self.max_sessions > MAX_SESSIONS {
            bail!(
                "`--max-sessions` must be between 1 and {MAX_SESSIONS}, got {}",
                self.max_sessions
            );
        }
        let session_ttl = capsule_packager::policy::parse_timeout(&serde_json::Value::String(
            self.session_ttl.clone(),
        ))
        .map_err(|e| anyhow::anyhow!("invalid `--session-ttl`: {e}"))?;
        if let Some(url) = &self.nats {
            return self.serve_queue(url, compiler);
        }
        if self.processes > 1 {
            return super::worker_pool::serve(usize::from(self.processes), &self.child_args());
        }
        // Each open session holds an instance slot besides those of the calls in flight.
        let mut runner = Runner::pooled(
            cache_dir()?.join("store"),
            self.max_in_flight + self.max_sessions,
        )?;
        if let Some(compiler) = compiler {
            runner = runner.with_local_compiler(compiler);
        }
        let options = WorkerOptions {
            max_in_flight: self.max_in_flight as usize,
            threads: self.threads.map(usize::from),
            request_timeout,
            trust: self.trust.trust()?,
            files_root: None,
            interpreters,
            max_sessions: self.max_sessions as usize,
            session_ttl,
        };
        let stdin = std::io::stdin().lock();
        worker::serve(runner, options, stdin, std::io::stdout())
            .context("the worker's streams failed")?;
        Ok(0)
    }
}

impl WorkerCommand {
    /// `--nats`: takes jobs from the queue until stopped.
    fn serve_queue(
        &self,
        url: &str,
        compiler: Option<Arc<dyn LocalCompiler>>,
    ) -> anyhow::Result<u8> {
        let queue = self.queue.clone().context("`--nats` needs `--queue`")?;
        let concurrency = match self.concurrency {
            Some(0) => bail!("`--concurrency` must be at least 1"),
            Some(n) if n > MAX_IN_FLIGHT => {
                bail!("`--concurrency` must be at most {MAX_IN_FLIGHT}, got {n}")
            }
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(2, |n| n.get() as u32),
        };
        let consumer = if self.ack_wait.is_some() || self.max_deliver.is_some() {
            let defaults = crate::queue::ConsumerSettings::default();
            let ack_wait = match &self.ack_wait {
                Some(text) => capsule_packager::policy::parse_timeout(&serde_json::Value::String(
                    text.clone(),
                ))
                .map_err(|e| anyhow::anyhow!("invalid `--ack-wait`: {e}"))?,
                None => defaults.ack_wait,
            };
            let max_deliver = match self.max_deliver {
                Some(0) => bail!("`--max-deliver` must be at least 1"),
                Some(n) => i64::from(n),
                None => defaults.max_deliver,
            };
            Some(crate::queue::ConsumerSettings {
                ack_wait,
                max_deliver,
            })
        } else {
            None
        };
        let mut runner = Runner::pooled(cache_dir()?.join("store"), concurrency)?;
        if let Some(compiler) = compiler {
            runner = runner.with_local_compiler(compiler);
        }
        let options = crate::queue::QueueWorkerOptions {
            url: url.to_string(),
            queue,
            concurrency: concurrency as usize,
            threads: self.threads.map(usize::from),
            consumer,
            name: self
                .name
                .clone()
                .unwrap_or_else(crate::queue::consumer::default_worker_name),
            trust: self.trust.trust()?,
        };
        crate::queue::serve(runner, options)?;
        Ok(0)
    }

    /// The command line of one child of `--processes`: one thread, its share of the in-flight
    /// bound, the same deadline and trust.
    fn child_args(&self) -> Vec<String> {
        let share = self
            .max_in_flight
            .div_ceil(u32::from(self.processes))
            .max(1);
        let mut args: Vec<String> = vec![
            "worker".into(),
            "--threads".into(),
            "1".into(),
            "--max-in-flight".into(),
            share.to_string(),
        ];
        if let Some(timeout) = &self.request_timeout {
            args.extend(["--request-timeout".into(), timeout.clone()]);
        }
        for key in &self.trust.trust {
            args.extend(["--trust".into(), key.clone()]);
        }
        if self.trust.allow_unsigned {
            args.push("--allow-unsigned".into());
        }
        args
    }
}
