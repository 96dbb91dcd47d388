//! Deadlines: how a `timeout` stops a task, whether it computes or waits in the host.
//!
//! Every store yields to the async executor every [`FUEL_YIELD_INTERVAL`] units of fuel
//! (`Store::fuel_async_yield_interval`), and [`UntilDeadline`] checks the deadline each time the
//! call is suspended: at a fuel yield when the guest computes (`while True: pass` reaches one
//! every millisecond or so), in the host when it waits (a sleep, an HTTP request). So a CPU loop
//! is stopped preemptively without epoch interruption, whose checks at every loop head and
//! function entry cost compiled code 10–20% on tight loops (compiler/benches/instrumentation.rs),
//! and the same yields are the time slices that let calls on one worker thread interleave.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// The guest saves its fuel counter (kept in a register while wasm runs) and yields every this
/// many units of fuel, which is where a deadline stops it: `fuel_consumed` is then exact. 10^7
/// fuel is about 1.5 ms of CPython and 0.8 ms of QuickJS work: the yield costs a few
/// microseconds, a task stops at most that long after its deadline, and a computing call gives
/// the other calls on its thread a turn that often.
pub const FUEL_YIELD_INTERVAL: u64 = 10_000_000;

/// Runs `inner` until it finishes, or until the first time it is suspended (a fuel yield or a
/// wait in the host) at or past `deadline`. `None` means the deadline stopped it.
pub struct UntilDeadline<F> {
    inner: Pin<Box<F>>,
    wake: Pin<Box<tokio::time::Sleep>>,
    deadline: Instant,
}

impl<F: Future> UntilDeadline<F> {
    /// Wraps `inner`, a call on a store whose fuel yields are on (`instance::new_store`).
    pub fn new(inner: F, deadline: Instant) -> Self {
        UntilDeadline {
            inner: Box::pin(inner),
            wake: Box::pin(tokio::time::sleep_until(deadline.into())),
            deadline,
        }
    }
}

impl<F: Future> Future for UntilDeadline<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(output) = self.inner.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if Instant::now() >= self.deadline {
            return Poll::Ready(None);
        }
        // Be polled again at the deadline even if the guest waits in the host until then.
        let _ = self.wake.as_mut().poll(cx);
        Poll::Pending
    }
}
