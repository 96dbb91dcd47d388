//! The engine's epoch clock, and per-store deadlines on top of it.
//!
//! Epoch interruption is how a `timeout` stops a task that never calls the host (`while True:
//! pass`). The epoch is engine-wide, so it cannot itself be a task's deadline when several tasks
//! run at once (the worker): a single thread advances it every [`TICK`], and each store checks its
//! own deadline in the epoch callback: before it, the task yields to the async executor so that
//! other requests on the same thread get their turn; past it, the task runs on to its next fuel
//! yield, where [`UntilDeadline`] stops it with its fuel counter exact.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll};
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

/// The guest's fuel counter lives in a register while wasm runs and is written back to the store
/// only at calls, returns and fuel yields; an epoch trap in a tight loop would lose what the loop
/// burnt since. So every [`FUEL_YIELD_INTERVAL`] units of fuel the guest saves its counter and
/// yields, and that is where a deadline stops it ([`UntilDeadline`]): `fuel_consumed` is then
/// exact. 10^7 fuel is about 1.5 ms of CPython and 0.8 ms of QuickJS work: the yield costs a few
/// microseconds, and a task stops at most that long after its deadline.
pub const FUEL_YIELD_INTERVAL: u64 = 10_000_000;

/// How long past its deadline a task may run before the epoch callback traps it anyway, for code
/// that would somehow never reach a fuel yield.
const BACKSTOP: Duration = Duration::from_millis(250);

/// Arms `store` so that it yields to the executor at every tick before `deadline` (other requests
/// on the thread get their turn) and traps with [`wasmtime::Trap::Interrupt`] only well past it;
/// the stop at the deadline itself is [`UntilDeadline`]'s. The flag returned is set at every such
/// epoch yield: there, the store's fuel counter is stale, so the task is not stopped.
pub fn arm<T: 'static>(store: &mut wasmtime::Store<T>, deadline: Instant) -> Arc<AtomicBool> {
    let epoch_yield = Arc::new(AtomicBool::new(false));
    let flag = epoch_yield.clone();
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        let now = Instant::now();
        Ok(if now >= deadline + BACKSTOP {
            UpdateDeadline::Interrupt
        } else if now >= deadline {
            // Run on to the next fuel yield, where the fuel counter is exact.
            UpdateDeadline::Continue(1)
        } else {
            flag.store(true, Ordering::Release);
            UpdateDeadline::Yield(1)
        })
    });
    epoch_yield
}

/// Runs `inner` until it finishes, or until the first time it is suspended past `deadline` at a
/// point where the guest's fuel is up to date: a fuel yield or a wait in the host (not an epoch
/// yield, see [`arm`]). `None` means the deadline stopped it.
pub struct UntilDeadline<F> {
    inner: Pin<Box<F>>,
    wake: Pin<Box<tokio::time::Sleep>>,
    deadline: Instant,
    epoch_yield: Arc<AtomicBool>,
}

impl<F: Future> UntilDeadline<F> {
    /// Wraps `inner`, whose store [`arm`] returned `epoch_yield` for.
    pub fn new(inner: F, deadline: Instant, epoch_yield: Arc<AtomicBool>) -> Self {
        UntilDeadline {
            inner: Box::pin(inner),
            wake: Box::pin(tokio::time::sleep_until(deadline.into())),
            deadline,
            epoch_yield,
        }
    }
}

impl<F: Future> Future for UntilDeadline<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(output) = self.inner.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        let at_epoch_yield = self.epoch_yield.swap(false, Ordering::AcqRel);
        if !at_epoch_yield && Instant::now() >= self.deadline {
            return Poll::Ready(None);
        }
        // Be polled again at the deadline even if the guest waits in the host until then.
        let _ = self.wake.as_mut().poll(cx);
        Poll::Pending
    }
}
