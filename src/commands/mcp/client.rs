//! The MCP server's way to the runner: the worker protocol (manifests/worker-protocol.md), served
//! in-process by `capsule_runner::worker::serve` on its own thread, over a pair of OS pipes.
//!
//! Requests get unique numeric ids; a reader thread routes each answer line to the request that
//! waits for it (one oneshot per request). Every MCP connection of the process shares this one
//! worker, so its sessions outlive any single connection.

use capsule_runner::Runner;
use capsule_runner::worker::{self, WorkerOptions};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// Requests waiting for their answer, by id.
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
#[error("the in-process worker stopped before answering")]
pub struct WorkerGone;

/// A running in-process worker and the client side of its streams.
pub struct WorkerClient {
    /// Request lines for the writer thread (`None` once shut down).
    lines: Mutex<Option<mpsc::Sender<String>>>,
    pending: Pending,
    next_id: AtomicU64,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl WorkerClient {
    /// Starts `worker::serve(runner, options)` on its own thread, connected by pipes.
    pub fn start(runner: Runner, options: WorkerOptions) -> std::io::Result<Arc<Self>> {
        let (worker_in, requests_out) = std::io::pipe()?;
        let (answers_in, worker_out) = std::io::pipe()?;
        let worker = std::thread::Builder::new()
            .name("capsule-mcp-worker".into())
            .spawn(move || {
                if let Err(error) =
                    worker::serve(runner, options, BufReader::new(worker_in), worker_out)
                {
                    eprintln!("capsule mcp: the worker's streams failed: {error}");
                }
            })?;
        let (lines, to_write) = mpsc::channel::<String>();
        let writer = std::thread::Builder::new()
            .name("capsule-mcp-requests".into())
            .spawn(move || write_requests(to_write, requests_out))?;
        let pending: Pending = Arc::default();
        let reader = {
            let pending = pending.clone();
            std::thread::Builder::new()
                .name("capsule-mcp-answers".into())
                .spawn(move || route_answers(BufReader::new(answers_in), &pending))?
        };
        Ok(Arc::new(WorkerClient {
            lines: Mutex::new(Some(lines)),
            pending,
            next_id: AtomicU64::new(1),
            threads: Mutex::new(vec![worker, writer, reader]),
        }))
    }

    /// Sends `request` (an object without `id`) and waits for its answer. Should the caller stop
    /// waiting (the MCP request was cancelled), the worker is told to cancel the call.
    pub async fn call(&self, mut request: Value) -> Result<Value, WorkerGone> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Value::Object(fields) = &mut request {
            fields.insert("id".into(), id.into());
        }
        let (sender, answer) = oneshot::channel();
        lock(&self.pending).insert(id, sender);
        if !self.send(request.to_string()) {
            lock(&self.pending).remove(&id);
            return Err(WorkerGone);
        }
        let mut guard = CancelOnDrop {
            client: self,
            target: id,
            armed: true,
        };
        let answer = answer.await.map_err(|_| WorkerGone);
        guard.armed = false;
        answer
    }

    fn cancel(&self, target: u64) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let cancel = serde_json::json!({"id": id, "op": "cancel", "target": target});
        self.send(cancel.to_string());
    }

    fn send(&self, line: String) -> bool {
        lock(&self.lines)
            .as_ref()
            .is_some_and(|lines| lines.send(line).is_ok())
    }

    /// Cancels what is still running, closes the worker's input (it answers what is running,
    /// closes its sessions, deleting their workspaces, and returns) and waits for its threads.
    pub fn shut_down(&self) {
        let running: Vec<u64> = lock(&self.pending).keys().copied().collect();
        for target in running {
            self.cancel(target);
        }
        lock(&self.lines).take();
        let threads = std::mem::take(&mut *lock(&self.threads));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// Sends `cancel` for a request whose caller stopped waiting.
struct CancelOnDrop<'a> {
    client: &'a WorkerClient,
    target: u64,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            lock(&self.client.pending).remove(&self.target);
            self.client.cancel(self.target);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere cannot leave these maps half-updated: each update is one call.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The writer thread: one request per line; ends (closing the worker's input) when every sender
/// is gone.
fn write_requests(lines: mpsc::Receiver<String>, output: std::io::PipeWriter) {
    let mut output = std::io::BufWriter::new(output);
    while let Ok(line) = lines.recv() {
        let mut batch = Some(line);
        while let Some(line) = batch {
            if output.write_all(line.as_bytes()).is_err() || output.write_all(b"\n").is_err() {
                return;
            }
            batch = lines.try_recv().ok();
        }
        if output.flush().is_err() {
            return;
        }
    }
}

/// The reader thread: hands each answer to the request with its id. Output events (`"event"`)
/// are not asked for and are skipped; an answer nobody waits for (a cancelled call, a cancel's
/// own answer) is dropped. At EOF every waiting request learns the worker is gone.
fn route_answers(input: impl BufRead, pending: &Pending) {
    for line in input.lines() {
        let Ok(line) = line else { break };
        let Ok(answer) = serde_json::from_str::<Value>(&line) else {
            eprintln!("capsule mcp: the worker wrote a line that is not JSON: {line}");
            continue;
        };
        if answer.get("event").is_some() {
            continue;
        }
        let Some(id) = answer.get("id").and_then(Value::as_u64) else {
            continue;
        };
        if let Some(waiting) = lock(pending).remove(&id) {
            let _ = waiting.send(answer);
        }
    }
    lock(pending).clear();
}
