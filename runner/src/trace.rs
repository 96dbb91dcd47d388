//! `--verbose`: what the runner is doing, one line per event (stage timings, attempts, sub-task
//! lifecycle), for a person reading stderr. Off by default, and then free: lines are only
//! formatted when a sink is set.

use std::sync::Arc;
use std::time::Duration;

/// A function receiving each trace line.
type Sink = Arc<dyn Fn(&str) + Send + Sync>;

/// Where trace lines go; the CLI sets a sink that prints them on stderr.
#[derive(Clone, Default)]
pub struct Trace(Option<Sink>);

impl Trace {
    /// Sends every line to `sink`.
    pub fn new(sink: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Trace(Some(Arc::new(sink)))
    }

    /// Whether lines are wanted.
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Emits the line `make` formats, if a sink is set.
    pub fn line(&self, make: impl FnOnce() -> String) {
        if let Some(sink) = &self.0 {
            sink(&make());
        }
    }

    /// Emits `stage took X ms (detail)`.
    pub fn stage(&self, stage: &str, took: Duration, detail: impl FnOnce() -> String) {
        self.line(|| format!("{stage:<11} {:>9.3} ms  {}", millis(took), detail()));
    }
}

/// A duration in milliseconds, for trace lines.
pub fn millis(took: Duration) -> f64 {
    took.as_secs_f64() * 1e3
}
