//! The worker: many task calls over one NDJSON stream, each in a fresh instance, with a warm engine.
//!
//! Protocol (one JSON object per line, both ways):
//!
//! ```text
//! -> {"id": 7, "bundle": "hello.capsule", "task": "main", "args": ["world"], "kwargs": {}, "timeout": "500ms"}
//! <- {"id": 7, "envelope": {...the envelope `capsule exec --json` prints...}}
//! ```
//!
//! `task`, `args` (an array, or `{"args": [...], "kwargs": {...}}`), `kwargs` and `timeout` (which
//! may only narrow the task's own) are optional. Answers come in completion order, not request
//! order; `id` is echoed verbatim. A line that is not a valid request is answered with an
//! `invalid_args` envelope carrying its `id` when one could be read (`null` otherwise).
//!
//! What makes a call cheap: the engine allocates instances from a pool whose memories are reset
//! copy-on-write to the snapshot, each bundle is verified and linked once (its [`LoadedBundle`]
//! is cached by file identity), and requests run concurrently on a small tokio runtime, bounded
//! by `max_in_flight`. Guest output is captured inside each envelope; the only writer of the
//! output stream is the worker's writer thread, one line per answer.

use crate::cli::args::args_document;
use crate::cli::exec::{describe, warn_if_unsigned};
use crate::{CallOptions, Envelope, ErrorType, LoadedBundle, Narrowing, Runner};
use capsule_packager::sign::Trust;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;
use tokio::sync::{OnceCell, Semaphore};

/// Bundles kept loaded at once; the least recently opened one is dropped past this.
const MAX_CACHED_BUNDLES: usize = 64;

/// How the worker runs requests.
pub struct WorkerOptions {
    /// Requests running at once; reading pauses while this many are in flight.
    pub max_in_flight: usize,
    /// Threads running requests (`None`: one per core).
    pub threads: Option<usize>,
    /// A deadline for every request, narrowing (never widening) each task's own `timeout`.
    pub request_timeout: Option<Duration>,
    /// Whose signatures are accepted.
    pub trust: Trust,
    /// Where tasks' declared directories are found (`None`: the current directory).
    pub files_root: Option<PathBuf>,
}

/// What a worker session did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    /// Lines answered.
    pub answered: u64,
    /// Of those, lines that were not valid requests.
    pub malformed: u64,
}

/// One request line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    id: Value,
    bundle: PathBuf,
    #[serde(default)]
    task: Option<String>,
    #[serde(default)]
    args: Option<Value>,
    #[serde(default)]
    kwargs: Option<Map<String, Value>>,
    #[serde(default)]
    timeout: Option<String>,
}

/// The identity of a bundle file: a rewritten or replaced file is a new bundle, verified again.
#[derive(Clone, PartialEq, Eq, Hash)]
struct FileIdentity {
    path: PathBuf,
    device: u64,
    inode: u64,
    size: u64,
    modified_ns: i128,
    changed_ns: i128,
}

impl FileIdentity {
    fn of(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path)?;
        Ok(FileIdentity {
            path: path.to_path_buf(),
            device: meta.dev(),
            inode: meta.ino(),
            size: meta.size(),
            modified_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            changed_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        })
    }
}

type CachedBundle = Arc<OnceCell<Arc<LoadedBundle>>>;

/// Verified, linked bundles by file identity; each is opened once even when many requests for it
/// arrive together.
struct BundleCache {
    runner: Runner,
    trust: Trust,
    entries: Mutex<Entries>,
}

/// The cache's table, with a use counter for evicting the least recently used bundle.
#[derive(Default)]
struct Entries {
    clock: u64,
    by_file: HashMap<FileIdentity, (u64, CachedBundle)>,
}

impl BundleCache {
    async fn get(&self, path: &Path) -> Result<Arc<LoadedBundle>, crate::Error> {
        let identity = FileIdentity::of(path).map_err(|source| {
            crate::Error::Bundle(capsule_packager::Error::Io {
                action: "open",
                path: path.into(),
                source,
            })
        })?;
        let cell = {
            let mut guard = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            guard.clock += 1;
            let now = guard.clock;
            let entries = &mut guard.by_file;
            if entries.len() >= MAX_CACHED_BUNDLES
                && !entries.contains_key(&identity)
                && let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, (used, _))| *used)
                    .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
            let entry = entries
                .entry(identity)
                .or_insert_with(|| (now, Arc::new(OnceCell::new())));
            entry.0 = now;
            entry.1.clone()
        };
        let loaded = cell
            .get_or_try_init(|| async {
                // Verification is CPU work: let the runtime move other tasks off this thread.
                let loaded = tokio::task::block_in_place(|| self.runner.open(path, &self.trust))?;
                warn_if_unsigned(path, loaded.signer());
                Ok::<_, crate::Error>(Arc::new(loaded))
            })
            .await?;
        Ok(loaded.clone())
    }
}

/// Serves requests from `input` until EOF, answering on `output`; returns once every request has
/// been answered. Only I/O errors on the streams themselves end it early.
pub fn serve(
    runner: Runner,
    options: WorkerOptions,
    input: impl BufRead,
    output: impl Write + Send + 'static,
) -> std::io::Result<Summary> {
    let threads = options
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("capsule-worker")
        .enable_time()
        .enable_io()
        .build()?;
    let cache = Arc::new(BundleCache {
        runner,
        trust: options.trust,
        entries: Mutex::new(Entries::default()),
    });
    let settings = Arc::new(CallSettings {
        request_timeout: options.request_timeout,
        files_root: options.files_root,
    });
    let (answers, answer_lines) = mpsc::channel::<String>();
    let writer = std::thread::Builder::new()
        .name("capsule-worker-out".into())
        .spawn(move || write_answers(answer_lines, output))?;
    let max_in_flight = options.max_in_flight.max(1);
    let in_flight = Arc::new(Semaphore::new(max_in_flight));
    let mut summary = Summary::default();
    let mut read_error = None;
    for line in input.lines() {
        let line = match line {
            Ok(line) => line,
            Err(error) => {
                read_error = Some(error);
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        summary.answered += 1;
        let request = match parse_request(&line) {
            Ok(request) => request,
            Err((id, message)) => {
                summary.malformed += 1;
                let envelope = Envelope::refused("", ErrorType::InvalidArgs, message);
                let _ = answers.send(answer_line(&id, &envelope));
                continue;
            }
        };
        // Back-pressure: stop reading while `max_in_flight` requests run.
        let Ok(permit) = runtime.block_on(in_flight.clone().acquire_owned()) else {
            break;
        };
        let (cache, settings, answers) = (cache.clone(), settings.clone(), answers.clone());
        runtime.spawn(async move {
            let envelope = handle(&cache, &settings, &request).await;
            let _ = answers.send(answer_line(&request.id, &envelope));
            drop(permit);
        });
    }
    // EOF: drain every request still running, then let the writer finish.
    let all = u32::try_from(max_in_flight).unwrap_or(u32::MAX);
    let _ = runtime.block_on(in_flight.acquire_many(all));
    drop(answers);
    let written = writer
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the writer thread panicked")));
    runtime.shutdown_timeout(Duration::from_secs(1));
    written?;
    match read_error {
        Some(error) => Err(error),
        None => Ok(summary),
    }
}

struct CallSettings {
    request_timeout: Option<Duration>,
    files_root: Option<PathBuf>,
}

/// Runs one request; every failure becomes an envelope.
async fn handle(cache: &BundleCache, settings: &CallSettings, request: &Request) -> Envelope {
    let task_label = request.task.clone().unwrap_or_default();
    let refused = |error: crate::Error| {
        Envelope::refused(
            &task_label,
            error.error_type(),
            format!(
                "refusing to run `{}`: {}",
                request.bundle.display(),
                describe(&error)
            ),
        )
    };
    let bundle = match cache.get(&request.bundle).await {
        Ok(bundle) => bundle,
        Err(error) => return refused(error),
    };
    let options = match call_options(&bundle, settings, request) {
        Ok(options) => options,
        Err(message) => return Envelope::refused(&task_label, ErrorType::InvalidArgs, message),
    };
    match bundle.call_async(&options).await {
        Ok(envelope) => envelope,
        Err(error) => refused(error),
    }
}

fn call_options(
    bundle: &LoadedBundle,
    settings: &CallSettings,
    request: &Request,
) -> Result<CallOptions, String> {
    let mut timeout = match &request.timeout {
        Some(text) => Some(
            capsule_packager::policy::parse_timeout(&Value::String(text.clone()))
                .map_err(|e| format!("invalid `timeout`: {e}"))?,
        ),
        None => None,
    };
    // The worker's own deadline clamps quietly: it is the host's setting, not the caller's ask.
    if let Some(limit) = settings.request_timeout {
        let task = request.task.as_deref().unwrap_or(&bundle.manifest().entry);
        if let Some(declared) = bundle.manifest().task(task).map(|t| t.policy.timeout()) {
            let clamped = limit.min(declared);
            timeout = match timeout {
                // Wider than declared: left for `Narrowing::apply` to refuse.
                Some(asked) if asked > declared => Some(asked),
                Some(asked) => Some(asked.min(clamped)),
                None => Some(clamped),
            };
        }
    }
    Ok(CallOptions {
        task: request.task.clone(),
        args_json: args_document(
            request.args.as_ref().filter(|v| !v.is_null()),
            request.kwargs.as_ref(),
            "`args`",
        )?,
        files_root: settings.files_root.clone(),
        narrow: Narrowing {
            timeout,
            ..Narrowing::default()
        },
        mounts: Vec::new(),
    })
}

/// A request, or the id (when readable) and why the line is not one.
fn parse_request(line: &str) -> Result<Request, (Value, String)> {
    serde_json::from_str::<Request>(line).map_err(|error| {
        let id = serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| v.get("id").cloned())
            .unwrap_or(Value::Null);
        (
            id,
            format!(
                "not a valid request ({error}); expected {{\"id\", \"bundle\", \"task\"?, \"args\"?, \"kwargs\"?, \"timeout\"?}}"
            ),
        )
    })
}

/// One answer line: fields in protocol order.
#[derive(serde::Serialize)]
struct Answer<'a> {
    id: &'a Value,
    envelope: &'a Envelope,
}

/// One answer, on one line. The guest's result is embedded as the JSON text it returned; should
/// that text contain a line break (valid JSON whitespace), the answer is re-encoded compactly so
/// the stream stays one answer per line whatever a guest does.
fn answer_line(id: &Value, envelope: &Envelope) -> String {
    let line = serde_json::to_string(&Answer { id, envelope });
    match line {
        Ok(line) if !line.contains(['\n', '\r']) => line,
        _ => {
            let compact = serde_json::to_value(envelope)
                .map(|envelope| serde_json::json!({ "id": id, "envelope": envelope }).to_string());
            compact.unwrap_or_else(|e| {
                let failed = Envelope::refused(
                    &envelope.execution.task_name,
                    ErrorType::Internal,
                    format!("cannot encode the envelope: {e}"),
                );
                serde_json::json!({ "id": id, "envelope": serde_json::to_value(&failed).unwrap_or_default() }).to_string()
            })
        }
    }
}

/// The writer thread: the only thing that writes to the protocol stream.
fn write_answers(lines: mpsc::Receiver<String>, output: impl Write) -> std::io::Result<()> {
    let mut output = std::io::BufWriter::new(output);
    while let Ok(line) = lines.recv() {
        output.write_all(line.as_bytes())?;
        output.write_all(b"\n")?;
        // Flush once nothing else is queued: one write per burst, no answer left waiting.
        let mut more = lines.try_recv();
        while let Ok(line) = more {
            output.write_all(line.as_bytes())?;
            output.write_all(b"\n")?;
            more = lines.try_recv();
        }
        output.flush()?;
        if matches!(more, Err(mpsc::TryRecvError::Disconnected)) {
            break;
        }
    }
    output.flush()
}
