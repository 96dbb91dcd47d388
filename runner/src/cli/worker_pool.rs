//! `worker --processes N`: the same protocol, served by N single-threaded worker processes.
//!
//! Why processes: a call's first writes to its instance's memory are copy-on-write (or
//! write-protect) faults, and in a multi-threaded process each one must flush the other CPUs'
//! TLBs; on virtual machines that is an exit to the hypervisor per fault, which made two threads
//! slower than one for short calls. Separate processes share no address space, so they scale.
//!
//! The parent only routes lines: each request goes to the child with the fewest unanswered ones,
//! answers are copied to stdout as they come, one line at a time. When a child dies (killed,
//! crashed), its reader answers every request it held with an `internal` envelope at once, and the
//! next request finds the slot replaced by a fresh child, so later requests succeed.

use crate::{Envelope, ErrorType};
use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A slot whose children die this many times in a row without answering anything stays down
/// (its requests go to the other slots): a child that cannot start must not be restarted forever.
const MAX_FAILED_STARTS: u32 = 3;

type Stdout = Arc<Mutex<std::io::Stdout>>;

/// Unanswered requests of one child: how many in all (for routing), and by id text (to answer
/// for them if the child dies).
#[derive(Default)]
struct Pending {
    total: usize,
    by_id: HashMap<String, u32>,
    /// The child's stdout ended (it exited): nothing more may be routed to it.
    closed: bool,
    /// The child answered at least one request.
    answered_any: bool,
}

impl Pending {
    fn add(&mut self, id: String) {
        self.total += 1;
        *self.by_id.entry(id).or_default() += 1;
    }

    fn answered(&mut self, id: &str) {
        self.answered_any = true;
        if let Some(count) = self.by_id.get_mut(id) {
            self.total -= 1;
            *count -= 1;
            if *count == 0 {
                self.by_id.remove(id);
            }
        }
    }
}

/// One child worker process, its input, and the thread copying its answers.
struct Worker {
    child: Child,
    input: Option<ChildStdin>,
    pending: Arc<Mutex<Pending>>,
    reader: Option<JoinHandle<()>>,
}

impl Worker {
    fn spawn(program: &Path, args: &[String], stdout: &Stdout) -> anyhow::Result<Self> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start a worker process")?;
        let output = BufReader::new(child.stdout.take().context("worker stdout")?);
        let pending: Arc<Mutex<Pending>> = Arc::default();
        let (answered, out) = (pending.clone(), stdout.clone());
        let reader = std::thread::spawn(move || forward(output, &answered, &out));
        Ok(Worker {
            input: child.stdin.take(),
            child,
            pending,
            reader: Some(reader),
        })
    }

    /// Stops feeding the child, waits for its answers and for it; true if it exited with 0.
    fn finish(&mut self) -> bool {
        drop(self.input.take());
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.child.wait().is_ok_and(|status| status.success())
    }
}

/// A place for one child, replaced when it dies.
struct Slot {
    worker: Option<Worker>,
    failed_starts: u32,
}

/// Runs `processes` children (`child_args` after the program) and routes stdin/stdout through
/// them until EOF; returns the exit code.
pub fn serve(processes: usize, child_args: &[String]) -> anyhow::Result<u8> {
    let program = std::env::current_exe().context("cannot find this program to start workers")?;
    let stdout: Stdout = Arc::new(Mutex::new(std::io::stdout()));
    let mut slots = Vec::new();
    for _ in 0..processes {
        slots.push(Slot {
            worker: Some(Worker::spawn(&program, child_args, &stdout)?),
            failed_starts: 0,
        });
    }
    let pool = Pool {
        program,
        args: child_args.to_vec(),
        stdout,
    };
    for line in std::io::stdin().lock().lines() {
        let line = line.context("cannot read stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        for slot in &mut slots {
            pool.replace_if_dead(slot);
        }
        pool.route(&mut slots, &line);
    }
    let mut all_ok = true;
    for slot in &mut slots {
        if let Some(worker) = &mut slot.worker {
            all_ok &= worker.finish();
        }
    }
    if !all_ok {
        bail!("a worker process failed (its unanswered requests were answered as `internal`)");
    }
    Ok(0)
}

/// What it takes to start a child.
struct Pool {
    program: PathBuf,
    args: Vec<String>,
    stdout: Stdout,
}

impl Pool {
    /// Sends `line` to the live child with the fewest unanswered requests, or answers it as lost
    /// when no child is left.
    fn route(&self, slots: &mut [Slot], line: &str) {
        let id = id_of(line);
        let routing = Routing::of(line);
        if let Routing::Refuse(message) = &routing {
            answer_error(&self.stdout, &id, message);
            return;
        }
        // The child with the fewest unanswered requests (a full pipe blocks here: back-pressure);
        // a cancel goes to the child running its target.
        let chosen = slots
            .iter_mut()
            .filter_map(|slot| slot.worker.as_mut())
            .filter(|w| w.input.is_some())
            .filter_map(|w| {
                let (closed, total, holds) = {
                    let pending = lock(&w.pending);
                    let holds = match &routing {
                        Routing::Cancel(target) => pending.by_id.contains_key(target),
                        _ => true,
                    };
                    (pending.closed, pending.total, holds)
                };
                (!closed && holds).then_some((total, w))
            })
            .min_by_key(|(total, _)| *total)
            .map(|(_, w)| w);
        if chosen.is_none() && matches!(routing, Routing::Cancel(_)) {
            let id: Value = serde_json::from_str(&id).unwrap_or(Value::Null);
            let mut out = lock(&self.stdout);
            let _ = writeln!(out, "{}", serde_json::json!({"id": id, "cancelled": false}))
                .and_then(|()| out.flush());
            return;
        }
        let Some(worker) = chosen else {
            answer_lost(&self.stdout, &id);
            return;
        };
        {
            // Checked again under the lock the reader takes when the child's output ends: either
            // the line is recorded before (and the reader answers it) or it is not sent at all.
            let mut pending = lock(&worker.pending);
            if pending.closed {
                drop(pending);
                answer_lost(&self.stdout, &id);
                return;
            }
            pending.add(id);
        }
        let sent = worker
            .input
            .as_mut()
            .map(|input| writeln!(input, "{line}").and_then(|()| input.flush()));
        if !matches!(sent, Some(Ok(()))) {
            // That child is gone; its reader answers what it left, this line included.
            worker.input = None;
        }
    }

    /// Replaces the slot's child if it has exited (its reader already answered what it held).
    fn replace_if_dead(&self, slot: &mut Slot) {
        let Some(worker) = &mut slot.worker else {
            return;
        };
        let (closed, answered_any) = {
            let pending = lock(&worker.pending);
            (pending.closed, pending.answered_any)
        };
        if !closed {
            return;
        }
        let pid = worker.child.id();
        drop(worker.input.take());
        if let Some(reader) = worker.reader.take() {
            let _ = reader.join();
        }
        let status = worker
            .child
            .wait()
            .map(|s| s.to_string())
            .unwrap_or_else(|e| format!("unknown status ({e})"));
        slot.failed_starts = if answered_any {
            0
        } else {
            slot.failed_starts + 1
        };
        slot.worker = None;
        if slot.failed_starts >= MAX_FAILED_STARTS {
            eprintln!(
                "error: worker process {pid} exited ({status}); its slot failed {MAX_FAILED_STARTS} times in a row and stays down"
            );
            return;
        }
        match Worker::spawn(&self.program, &self.args, &self.stdout) {
            Ok(fresh) => {
                eprintln!(
                    "warning: worker process {pid} exited ({status}); its unanswered requests were answered as `internal`, process {} replaces it",
                    fresh.child.id()
                );
                slot.worker = Some(fresh);
            }
            Err(e) => eprintln!(
                "error: worker process {pid} exited ({status}) and could not be replaced: {e:#}"
            ),
        }
    }
}

/// Only the `id` of a line, to keep track of what is answered.
#[derive(Deserialize)]
struct IdOnly {
    #[serde(default)]
    id: Value,
}

/// An event line: `{"id", "event", "data"}`.
#[derive(Deserialize)]
struct EventOnly {
    #[allow(dead_code, reason = "only its presence is checked")]
    event: String,
}

/// What the parent must know of a request to route it.
#[derive(Deserialize)]
struct RouteFields {
    #[serde(default)]
    op: Option<String>,
    #[serde(default)]
    session: Option<Value>,
    #[serde(default)]
    target: Option<Value>,
}

/// Where a request goes.
enum Routing {
    /// To any child.
    Any,
    /// To the child running the request whose id text this is.
    Cancel(String),
    /// Answered by the parent with this `invalid_args` message.
    Refuse(String),
}

impl Routing {
    /// Sessions live in one process, and `status` would describe one child only: both need a
    /// single worker process.
    fn of(line: &str) -> Routing {
        let Ok(fields) = serde_json::from_str::<RouteFields>(line) else {
            return Routing::Any;
        };
        let op = fields.op.as_deref().unwrap_or_default();
        let stateful = op.starts_with("session.")
            || op.starts_with("files.")
            || op == "status"
            || (op == "run_code" && fields.session.is_some());
        if stateful {
            return Routing::Refuse(format!(
                "`{op}`{} needs a single worker process: sessions and status live in one process; run `capsule worker` without --processes",
                if op == "run_code" {
                    " in a session"
                } else {
                    ""
                }
            ));
        }
        match (op, fields.target) {
            ("cancel", Some(target)) => Routing::Cancel(target.to_string()),
            _ => Routing::Any,
        }
    }
}

fn answer_error(stdout: &Mutex<std::io::Stdout>, id: &str, message: &str) {
    let id: Value = serde_json::from_str(id).unwrap_or(Value::Null);
    let line =
        serde_json::json!({"id": id, "error": {"error_type": "invalid_args", "message": message}});
    let mut out = lock(stdout);
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

fn id_of(line: &str) -> String {
    serde_json::from_str::<IdOnly>(line)
        .map(|i| i.id.to_string())
        .unwrap_or_else(|_| Value::Null.to_string())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Copies a child's answers to stdout, a whole line at a time; when the child's output ends,
/// answers every request it still held with an `internal` envelope.
fn forward(output: impl BufRead, pending: &Mutex<Pending>, stdout: &Mutex<std::io::Stdout>) {
    for line in output.lines() {
        let Ok(line) = line else { break };
        // Event lines (streamed output) come before their request's answer, which they are not.
        if !line.contains("\"event\"") || serde_json::from_str::<EventOnly>(&line).is_err() {
            let id = id_of(&line);
            lock(pending).answered(&id);
        }
        let mut out = lock(stdout);
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }
    let left = {
        let mut pending = lock(pending);
        pending.closed = true;
        pending.total = 0;
        std::mem::take(&mut pending.by_id)
    };
    for (id, count) in left {
        for _ in 0..count {
            answer_lost(stdout, &id);
        }
    }
}

fn answer_lost(stdout: &Mutex<std::io::Stdout>, id: &str) {
    let envelope = Envelope::refused(
        "",
        ErrorType::Internal,
        "the worker process running this request exited before answering".into(),
    );
    let id: Value = serde_json::from_str(id).unwrap_or(Value::Null);
    let line = serde_json::json!({ "id": id, "envelope": serde_json::to_value(&envelope).unwrap_or_default() });
    let mut out = lock(stdout);
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}
