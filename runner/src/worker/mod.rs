//! The worker: many calls over one NDJSON stream, with a warm engine: task calls (each in a fresh
//! instance), and, in protocol version 2 (manifests/worker-protocol.md), LLM-written code in the
//! built-in interpreters, statelessly or in live sessions with a workspace, plus cancel, status
//! and streamed output.
//!
//! ```text
//! -> {"id": 7, "bundle": "hello.capsule", "task": "main", "args": ["world"], "kwargs": {}, "timeout": "500ms"}
//! <- {"id": 7, "envelope": {...the envelope `capsule exec --json` prints...}}
//! -> {"id": 8, "op": "run_code", "language": "python", "code": "sum(range(10))"}
//! <- {"id": 8, "envelope": {"success": true, "result": {"format": "json", "value": 45, "repr": "45"}, ...}}
//! ```
//!
//! Answers come in completion order, not request order; `id` is echoed verbatim. A line that is
//! not a valid request is answered with an `invalid_args` error carrying its `id` when one could
//! be read (`null` otherwise).
//!
//! What makes a call cheap: the engine allocates instances from a pool whose memories are reset
//! copy-on-write to the snapshot, each bundle is verified and linked once (its [`crate::LoadedBundle`]
//! is cached by file identity), and requests run concurrently on a small tokio runtime, bounded
//! by `max_in_flight`. Guest output is captured inside each envelope (or sent as `event` lines);
//! the only writer of the output stream is the worker's writer thread, one line per message.

mod bundles;
mod code;
mod protocol;
mod sessions;
mod tasks;
mod tracker;
mod workspace;

pub(crate) use bundles::BundleCache;
pub use bundles::InterpreterBundles;

use crate::{Envelope, ErrorType, Runner};
use capsule_packager::sign::Trust;
use protocol::Request;
use serde_json::{Value, json};
use sessions::Sessions;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tracker::Tracker;

/// Sessions open at once unless the worker is told otherwise.
pub const DEFAULT_MAX_SESSIONS: usize = 32;
/// How long a session may stay idle unless the worker is told otherwise.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(600);

/// How the worker runs requests.
pub struct WorkerOptions {
    /// Requests running at once; reading pauses while this many task calls are in flight.
    pub max_in_flight: usize,
    /// Threads running requests (`None`: one per core).
    pub threads: Option<usize>,
    /// A deadline for every task call, narrowing (never widening) each task's own `timeout`.
    pub request_timeout: Option<Duration>,
    /// Whose signatures are accepted.
    pub trust: Trust,
    /// Where tasks' declared directories are found (`None`: the current directory).
    pub files_root: Option<PathBuf>,
    /// The built-in code interpreters (`None`: `run_code` and sessions are refused).
    pub interpreters: Option<Arc<dyn InterpreterBundles>>,
    /// Sessions open at once; opening one more evicts the least recently used idle one.
    pub max_sessions: usize,
    /// Idle time after which a session is closed.
    pub session_ttl: Duration,
}

/// What a worker run did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    /// Lines answered.
    pub answered: u64,
    /// Of those, lines that were not valid requests.
    pub malformed: u64,
}

/// Where task calls find their directories.
struct CallSettings {
    request_timeout: Option<Duration>,
    files_root: Option<PathBuf>,
}

/// The answer of an op that is not a call: its fields, or a typed error.
type Answer = Result<Value, (ErrorType, String)>;

/// Everything the requests of one worker share.
struct Worker {
    bundles: BundleCache,
    sessions: Sessions,
    tracker: Arc<Tracker>,
    settings: CallSettings,
    /// Lines for the writer thread.
    answers: mpsc::Sender<String>,
    /// Calls running code at once.
    in_flight: Arc<Semaphore>,
    /// Requests spawned and not yet answered (EOF waits for them).
    outstanding: Outstanding,
}

/// A count of unanswered requests that can be waited on until it is zero.
#[derive(Default)]
struct Outstanding {
    count: AtomicUsize,
    zero: Notify,
}

impl Outstanding {
    fn add(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    fn done(&self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.zero.notify_waiters();
        }
    }

    async fn wait_zero(&self) {
        loop {
            let notified = self.zero.notified();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// The runtime a long-running worker (NDJSON or queue) serves on: `threads` threads (default: one
/// per CPU), with time and I/O.
pub(crate) fn multi_thread_runtime(
    threads: Option<usize>,
    name: &str,
) -> std::io::Result<tokio::runtime::Runtime> {
    let threads = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
}

/// Serves requests from `input` until EOF, answering on `output`; returns once every request has
/// been answered (sessions are then closed). Only I/O errors on the streams themselves end it
/// early.
pub fn serve(
    runner: Runner,
    options: WorkerOptions,
    input: impl BufRead,
    output: impl Write + Send + 'static,
) -> std::io::Result<Summary> {
    let runtime = multi_thread_runtime(options.threads, "capsule-worker")?;
    let _entered = runtime.enter();
    let (answers, answer_lines) = mpsc::channel::<String>();
    let writer = std::thread::Builder::new()
        .name("capsule-worker-out".into())
        .spawn(move || write_answers(answer_lines, output))?;
    let max_in_flight = options.max_in_flight.max(1);
    let worker = Arc::new(Worker {
        bundles: BundleCache::new(runner, options.trust, options.interpreters),
        sessions: Sessions::new(options.max_sessions.max(1), options.session_ttl),
        tracker: Arc::new(Tracker::new()),
        settings: CallSettings {
            request_timeout: options.request_timeout,
            files_root: options.files_root,
        },
        answers,
        in_flight: Arc::new(Semaphore::new(max_in_flight)),
        outstanding: Outstanding::default(),
    });
    let preload = {
        let worker = worker.clone();
        runtime.spawn(async move { worker.bundles.preload().await })
    };
    let sweeper = {
        let worker = worker.clone();
        let every =
            (worker.sessions.ttl() / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                worker.sessions.expire();
            }
        })
    };
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
        let (id, request) = match protocol::parse(&line) {
            Ok(parsed) => parsed,
            Err(malformed) => {
                summary.malformed += 1;
                let (id, message) = (malformed.id, malformed.message);
                if malformed.task_call {
                    let envelope = Envelope::refused("", ErrorType::InvalidArgs, message);
                    worker.answer_envelope(&id, &envelope);
                } else {
                    worker.answer(&id, Err((ErrorType::InvalidArgs, message)));
                }
                continue;
            }
        };
        if !dispatch(&worker, &runtime, id, request) {
            break;
        }
    }
    // EOF: answer every request still running, close the sessions, let the writer finish.
    runtime.block_on(worker.outstanding.wait_zero());
    sweeper.abort();
    preload.abort();
    worker.sessions.end_all();
    drop(worker);
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

impl Worker {
    fn send(&self, line: String) {
        let _ = self.answers.send(line);
    }

    /// Sends an op's answer and counts it.
    fn answer(&self, id: &Value, answer: Answer) {
        self.tracker.finished(answer.is_ok());
        self.send(match answer {
            Ok(fields) => protocol::answer(id, fields),
            Err((error_type, message)) => protocol::error_answer(id, error_type, &message),
        });
    }

    /// Sends an envelope answer and counts it.
    fn answer_envelope(&self, id: &Value, envelope: &Envelope) {
        self.tracker.finished(envelope.success);
        self.send(protocol::envelope_line(id, envelope));
    }

    fn hello(&self) -> Value {
        json!({
            "protocol": protocol::PROTOCOL_VERSION,
            "version": env!("CARGO_PKG_VERSION"),
            "ops": protocol::OPS,
            "languages": crate::Language::ALL.map(|l| l.name()),
            "defaults": code::defaults_document(),
            "max_sessions": self.sessions.max(),
            "session_ttl_ms": self.sessions.ttl().as_millis() as u64,
        })
    }

    fn status(&self) -> Value {
        let mut status = self.tracker.status();
        status.insert("sessions".into(), self.sessions.status());
        json!({"status": status})
    }
}

/// Starts or answers one request; `false` when the worker cannot go on.
fn dispatch(
    worker: &Arc<Worker>,
    runtime: &tokio::runtime::Runtime,
    id: Value,
    request: Request,
) -> bool {
    let op = request.op();
    match request {
        // Answered at once, in order: they never wait behind running calls.
        Request::Hello => {
            worker.send(protocol::answer(&id, worker.hello()));
            return true;
        }
        Request::Status => {
            worker.send(protocol::answer(&id, worker.status()));
            return true;
        }
        Request::Cancel(cancel) => {
            let found = worker.tracker.cancel(&cancel.target);
            worker.send(protocol::answer(&id, json!({"cancelled": found})));
            return true;
        }
        Request::SessionClose(request) => {
            worker.answer(&id, code::close(worker, &request.session));
            return true;
        }
        Request::Task(request) => {
            // Back-pressure: stop reading while `max_in_flight` task calls run.
            let Ok(permit) = runtime.block_on(worker.in_flight.clone().acquire_owned()) else {
                return false;
            };
            // Registered now, so that a `cancel` read right after finds it.
            let label = request.bundle.display().to_string();
            let ticket = worker.tracker.start(&id, op, label, None);
            spawn(worker, runtime, move |worker: Arc<Worker>| async move {
                let envelope = tokio::select! {
                    biased;
                    () = ticket.cancel.notified() => Envelope::refused(
                        request.task.as_deref().unwrap_or_default(),
                        ErrorType::Cancelled,
                        "cancelled by a `cancel` request while it ran".into(),
                    ),
                    envelope = tasks::call(&worker.bundles, &worker.settings, &request) => envelope,
                };
                drop(permit);
                drop(ticket);
                worker.answer_envelope(&id, &envelope);
            });
        }
        Request::RunCode(request) => {
            let turn = request.session.as_deref().map(|s| worker.sessions.queue(s));
            let language = match (&request.language, &turn) {
                (Some(language), _) => language.clone(),
                (None, Some(Ok(turn))) => turn.session.language.name().to_string(),
                _ => String::new(),
            };
            // Registered now, so that a `cancel` read right after finds it.
            let ticket = worker
                .tracker
                .start(&id, op, language, request.session.clone());
            spawn(worker, runtime, move |worker: Arc<Worker>| async move {
                let envelope =
                    code::run_code(&worker, &id, request, turn, ticket.cancel.clone()).await;
                drop(ticket);
                worker.answer_envelope(&id, &envelope);
            });
        }
        Request::SessionOpen(request) => {
            spawn(worker, runtime, move |worker: Arc<Worker>| async move {
                let answer = code::open(&worker, request).await;
                worker.answer(&id, answer);
            });
        }
        Request::SessionReset(request) => {
            let turn = worker.sessions.queue(&request.session);
            spawn(worker, runtime, move |worker: Arc<Worker>| async move {
                let answer = code::reset(&worker, &request.session, turn).await;
                worker.answer(&id, answer);
            });
        }
        Request::Files(file_op, request) => {
            let turn = worker.sessions.queue(&request.session);
            spawn(worker, runtime, move |worker: Arc<Worker>| async move {
                let answer = code::files(&worker, file_op, request, turn).await;
                worker.answer(&id, answer);
            });
        }
    }
    true
}

/// Runs `handle` on the runtime, counted as outstanding until it has answered.
fn spawn<F, Fut>(worker: &Arc<Worker>, runtime: &tokio::runtime::Runtime, handle: F)
where
    F: FnOnce(Arc<Worker>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    worker.outstanding.add();
    let running = handle(worker.clone());
    let worker = worker.clone();
    runtime.spawn(async move {
        running.await;
        worker.outstanding.done();
    });
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
