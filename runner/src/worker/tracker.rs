//! Lifecycle tracking: which requests are running (for `status` and `cancel`), and how many
//! completed or failed since the worker started.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::Notify;

/// The running requests and the counters.
pub struct Tracker {
    started: Instant,
    next: AtomicU64,
    running: Mutex<HashMap<u64, Running>>,
    completed: AtomicU64,
    failed: AtomicU64,
}

/// One running request.
struct Running {
    id: Value,
    op: &'static str,
    /// The task, or the language of a `run_code`.
    what: String,
    session: Option<String>,
    started: Instant,
    cancel: Arc<Notify>,
}

/// A request's registration, from the moment it was read; unregisters it when dropped.
pub struct Ticket {
    tracker: Arc<Tracker>,
    key: u64,
    /// Notified when a `cancel` names this request.
    pub cancel: Arc<Notify>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.tracker.lock().remove(&self.key);
    }
}

impl Tracker {
    pub fn new() -> Self {
        Tracker {
            started: Instant::now(),
            next: AtomicU64::new(0),
            running: Mutex::default(),
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a request that runs code (a task call or `run_code`) until the ticket drops.
    pub fn start(
        self: &Arc<Self>,
        id: &Value,
        op: &'static str,
        what: String,
        session: Option<String>,
    ) -> Ticket {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        let cancel = Arc::new(Notify::new());
        self.lock().insert(
            key,
            Running {
                id: id.clone(),
                op,
                what,
                session,
                started: Instant::now(),
                cancel: cancel.clone(),
            },
        );
        Ticket {
            tracker: self.clone(),
            key,
            cancel,
        }
    }

    /// Counts an answered request.
    pub fn finished(&self, success: bool) {
        let counter = if success {
            &self.completed
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Cancels the running requests whose id is `target`; whether there was one.
    pub fn cancel(&self, target: &Value) -> bool {
        let running = self.lock();
        let mut found = false;
        for request in running.values().filter(|r| &r.id == target) {
            // A stored permit: the request sees it even if it is not waiting at this instant.
            request.cancel.notify_one();
            found = true;
        }
        found
    }

    /// `status`'s fields but `sessions`.
    pub fn status(&self) -> serde_json::Map<String, Value> {
        let mut running: Vec<(Instant, Value)> = self
            .lock()
            .values()
            .map(|r| {
                let mut entry = json!({
                    "id": r.id,
                    "op": r.op,
                    "elapsed_ms": r.started.elapsed().as_millis() as u64,
                });
                let key = if r.op == "task" { "task" } else { "language" };
                entry[key] = Value::String(r.what.clone());
                if let Some(session) = &r.session {
                    entry["session"] = Value::String(session.clone());
                }
                (r.started, entry)
            })
            .collect();
        running.sort_by_key(|(started, _)| *started);
        let mut status = serde_json::Map::new();
        status.insert(
            "uptime_ms".into(),
            json!(self.started.elapsed().as_millis() as u64),
        );
        status.insert(
            "running".into(),
            Value::Array(running.into_iter().map(|(_, entry)| entry).collect()),
        );
        status.insert(
            "completed".into(),
            json!(self.completed.load(Ordering::Relaxed)),
        );
        status.insert("failed".into(), json!(self.failed.load(Ordering::Relaxed)));
        status
    }
}
