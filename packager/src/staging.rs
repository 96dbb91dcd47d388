//! Names for files and directories written before being renamed into place: unique per process
//! *and* per write, so that two threads of one process (a worker's) never share one.

use std::sync::atomic::{AtomicU64, Ordering};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// `<pid>.<n>`, never the same twice in this process.
pub fn unique_suffix() -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{}.{n}", std::process::id())
}
