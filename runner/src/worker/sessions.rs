//! Code interpreter sessions: a live interpreter instance and a workspace per session, addressed
//! by id, bounded in number (least recently used idle session evicted) and in idle time (TTL).
//!
//! A session's cells run one at a time, in arrival order: its state sits behind a fair async
//! mutex, and each request takes its place in the mutex's queue when the reader sees it
//! ([`Sessions::queue`]), not when its task first runs. A session that ends (closed, evicted, expired, or lost to a cell stopped
//! midway) leaves a tombstone so that later requests naming it learn why (`session_lost`).

use super::workspace::Workspace;
use crate::{CallLimits, Language, LiveInstance};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io::Read;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Ended sessions remembered, so that a late request gets `session_lost` and a reason.
const TOMBSTONES: usize = 1024;

/// The open sessions and the bounds on them.
pub struct Sessions {
    max: usize,
    ttl: Duration,
    registry: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    open: HashMap<String, Arc<Session>>,
    /// Opens in progress: they count against `max` before they are open.
    opening: usize,
    /// (session id, why it ended), oldest first.
    ended: VecDeque<(String, String)>,
}

/// One session.
pub struct Session {
    pub id: String,
    pub language: Language,
    /// Limits of a cell that gives none.
    pub cell_limits: CallLimits,
    /// The instance and workspace; `None` once the session ended.
    state: Arc<tokio::sync::Mutex<Option<Live>>>,
    activity: Mutex<Activity>,
    cells: AtomicU64,
    memory_bytes: AtomicU64,
}

/// What a live session holds.
pub struct Live {
    pub instance: LiveInstance,
    pub workspace: Workspace,
}

struct Activity {
    /// Requests using the session now (running or queued).
    busy: usize,
    last_used: Instant,
}

/// A place among the open sessions, held while one opens; given back if the open fails.
pub struct Reservation<'s> {
    sessions: &'s Sessions,
    used: bool,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.used {
            self.sessions.lock().opening -= 1;
        }
    }
}

/// A request's use of a session, from its arrival; marks the session idle again when dropped.
struct InUse(Arc<Session>);

impl Drop for InUse {
    fn drop(&mut self) {
        let mut activity = self.0.activity();
        activity.busy -= 1;
        activity.last_used = Instant::now();
    }
}

/// The session's state, held by one request at a time.
pub type StateGuard = tokio::sync::OwnedMutexGuard<Option<Live>>;

/// A request's place in its session's queue, taken when it arrived.
pub struct Turn {
    pub session: Arc<Session>,
    wait: Pin<Box<dyn Future<Output = StateGuard> + Send>>,
    _in_use: InUse,
}

impl Turn {
    fn take(session: Arc<Session>) -> Self {
        session.activity().busy += 1;
        let in_use = InUse(session.clone());
        let mut wait: Pin<Box<dyn Future<Output = StateGuard> + Send>> =
            Box::pin(session.state.clone().lock_owned());
        // Polled once now, so that the mutex queues this request behind those that came before.
        if let Poll::Ready(guard) = wait.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            wait = Box::pin(std::future::ready(guard));
        }
        Turn {
            session,
            wait,
            _in_use: in_use,
        }
    }

    /// Waits for the requests before this one; the session is marked busy until `self` drops,
    /// so keep the turn alive while using the state.
    pub async fn state(&mut self) -> StateGuard {
        (&mut self.wait).await
    }
}

impl Session {
    fn activity(&self) -> std::sync::MutexGuard<'_, Activity> {
        self.activity.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a finished cell and the memory the instance holds after it.
    pub fn record_cell(&self, memory_bytes: u64) {
        self.cells.fetch_add(1, Ordering::Relaxed);
        self.memory_bytes.store(memory_bytes, Ordering::Relaxed);
    }

    /// Records a reset.
    pub fn record_reset(&self, memory_bytes: u64) {
        self.cells.store(0, Ordering::Relaxed);
        self.memory_bytes.store(memory_bytes, Ordering::Relaxed);
    }

    fn status(&self) -> Value {
        let activity = self.activity();
        json!({
            "session": self.id,
            "language": self.language.name(),
            "cells": self.cells.load(Ordering::Relaxed),
            "busy": activity.busy > 0,
            "idle_ms": if activity.busy > 0 { 0 } else { activity.last_used.elapsed().as_millis() as u64 },
            "memory_bytes": self.memory_bytes.load(Ordering::Relaxed),
        })
    }

    fn idle_since(&self) -> Option<Instant> {
        let activity = self.activity();
        (activity.busy == 0).then_some(activity.last_used)
    }
}

/// Why a session cannot be used: it never existed, or it ended.
pub enum Missing {
    Unknown(String),
    Lost(String),
}

impl Sessions {
    pub fn new(max: usize, ttl: Duration) -> Self {
        Sessions {
            max,
            ttl,
            registry: Mutex::default(),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for a new session, evicting the least recently used idle session if all are
    /// taken. Fails when every session is busy.
    pub fn reserve(&self) -> Result<Reservation<'_>, String> {
        let evicted = {
            let mut registry = self.lock();
            let mut evicted = None;
            if registry.open.len() + registry.opening >= self.max {
                let oldest = registry
                    .open
                    .values()
                    .filter_map(|s| s.idle_since().map(|idle| (idle, s.id.clone())))
                    .min();
                let Some((_, id)) = oldest else {
                    return Err(format!(
                        "{} sessions are open and all are busy (the worker's --max-sessions); close one or wait",
                        self.max
                    ));
                };
                evicted = self.remove(
                    &mut registry,
                    &id,
                    format!(
                        "evicted: it was the least recently used of {} open sessions (the worker's --max-sessions) when another opened",
                        self.max
                    ),
                );
            }
            registry.opening += 1;
            evicted
        };
        if let Some(session) = evicted {
            release(session);
        }
        Ok(Reservation {
            sessions: self,
            used: false,
        })
    }

    /// Opens a session in a reserved place: returns its new id.
    pub fn insert(
        &self,
        mut reservation: Reservation<'_>,
        language: Language,
        cell_limits: CallLimits,
        live: Live,
    ) -> String {
        let id = new_session_id();
        let memory = live.instance.memory_bytes();
        let session = Arc::new(Session {
            id: id.clone(),
            language,
            cell_limits,
            state: Arc::new(tokio::sync::Mutex::new(Some(live))),
            activity: Mutex::new(Activity {
                busy: 0,
                last_used: Instant::now(),
            }),
            cells: AtomicU64::new(0),
            memory_bytes: AtomicU64::new(memory),
        });
        let mut registry = self.lock();
        registry.opening -= 1;
        reservation.used = true;
        registry.open.insert(id.clone(), session);
        id
    }

    /// A place in session `id`'s queue for a request that just arrived.
    pub fn queue(&self, id: &str) -> Result<Turn, Missing> {
        self.get(id).map(Turn::take)
    }

    /// Whether `session` is still open (a request queued before it was closed must not run).
    pub fn is_open(&self, session: &Arc<Session>) -> bool {
        self.lock()
            .open
            .get(&session.id)
            .is_some_and(|open| Arc::ptr_eq(open, session))
    }

    /// The open session `id`.
    pub fn get(&self, id: &str) -> Result<Arc<Session>, Missing> {
        let registry = self.lock();
        if let Some(session) = registry.open.get(id) {
            return Ok(session.clone());
        }
        match registry.ended.iter().rev().find(|(ended, _)| ended == id) {
            Some((_, reason)) => Err(Missing::Lost(format!("session `{id}` ended: {reason}"))),
            None => Err(Missing::Unknown(format!(
                "no session `{id}` (open one with session.open)"
            ))),
        }
    }

    /// Ends session `id` for `reason`: later requests get `session_lost`; its instance and
    /// workspace go once no cell uses them. Whether it was open.
    pub fn end(&self, id: &str, reason: String) -> bool {
        let removed = {
            let mut registry = self.lock();
            self.remove(&mut registry, id, reason)
        };
        match removed {
            Some(session) => {
                release(session);
                true
            }
            None => false,
        }
    }

    fn remove(&self, registry: &mut Registry, id: &str, reason: String) -> Option<Arc<Session>> {
        let session = registry.open.remove(id)?;
        if registry.ended.len() >= TOMBSTONES {
            registry.ended.pop_front();
        }
        registry.ended.push_back((id.to_string(), reason));
        Some(session)
    }

    /// Ends every session idle for longer than the TTL.
    pub fn expire(&self) {
        let now = Instant::now();
        let expired: Vec<String> = self
            .lock()
            .open
            .values()
            .filter(|s| {
                s.idle_since()
                    .is_some_and(|idle| now.duration_since(idle) > self.ttl)
            })
            .map(|s| s.id.clone())
            .collect();
        for id in expired {
            self.end(
                &id,
                format!(
                    "expired: idle for longer than the worker's session TTL ({} ms)",
                    self.ttl.as_millis()
                ),
            );
        }
    }

    /// Ends every session (the worker is stopping).
    pub fn end_all(&self) {
        let ids: Vec<String> = self.lock().open.keys().cloned().collect();
        for id in ids {
            self.end(&id, "the worker stopped".into());
        }
    }

    /// `status`'s `sessions`, oldest id first.
    pub fn status(&self) -> Value {
        let mut sessions: Vec<Arc<Session>> = self.lock().open.values().cloned().collect();
        sessions.sort_by(|a, b| a.id.cmp(&b.id));
        Value::Array(sessions.iter().map(|s| s.status()).collect())
    }
}

/// Drops a removed session's instance and workspace now if no cell holds them, else when the
/// cell using them finishes (it finds the session gone from the registry and its state taken).
fn release(session: Arc<Session>) {
    if let Ok(mut state) = session.state.try_lock() {
        drop(state.take());
        return;
    }
    // In use: taken once the cell (or file op) holding it is done.
    tokio::spawn(async move {
        session.state.lock().await.take();
    });
}

/// `s-` and 128 random bits: ids are hard to guess (an MCP server hands them to clients).
fn new_session_id() -> String {
    let mut bytes = [0u8; 16];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if random.is_err() {
        // No /dev/urandom: std's per-process random hash keys, over a counter and the clock.
        use std::hash::{BuildHasher, RandomState};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let state = RandomState::new();
        bytes[..8].copy_from_slice(&state.hash_one((n, now, 1u8)).to_le_bytes());
        bytes[8..].copy_from_slice(&state.hash_one((n, now, 2u8)).to_le_bytes());
    }
    format!("s-{}", hex::encode(bytes))
}
