//! The engine's epoch clock, and per-store deadlines on top of it.
//!
//! Epoch interruption is how a `timeout` stops a task that never calls the host (`while True:
//! pass`). The epoch is engine-wide, so it cannot itself be a task's deadline when several tasks
//! run at once (the worker): a single thread advances it every [`TICK`], and each store checks its
//! own deadline in the epoch callback: past it, the task traps; before it, the task yields to the
//! async executor so that other requests on the same thread get their turn.

use std::sync::mpsc;
use std::time::{Duration, Instant};
use wasmtime::{Engine, UpdateDeadline};

/// How often the epoch advances: the precision of a timeout, and the time slice of a task that
/// computes while others wait.
pub const TICK: Duration = Duration::from_millis(2);

/// Advances `engine`'s epoch every [`TICK`] until dropped.
pub struct EpochTicker {
    _stop: mpsc::Sender<()>,
}

impl EpochTicker {
    /// Starts the ticking thread.
    pub fn start(engine: &Engine) -> Result<Self, String> {
        let (stop, stopped) = mpsc::channel::<()>();
        let engine = engine.clone();
        std::thread::Builder::new()
            .name("capsule-epoch".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(TICK) {
                    engine.increment_epoch();
                }
            })
            .map_err(|e| format!("cannot start the epoch thread: {e}"))?;
        Ok(EpochTicker { _stop: stop })
    }
}

/// Arms `store` so that it traps with [`wasmtime::Trap::Interrupt`] once `deadline` has passed,
/// and yields to the executor at every tick before that.
pub fn arm<T: 'static>(store: &mut wasmtime::Store<T>, deadline: Instant) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        Ok(if Instant::now() >= deadline {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::Yield(1)
        })
    });
}
