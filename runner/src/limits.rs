//! The memory side of a task's policy: a resource limiter that caps linear memory, tables and
//! instances, remembers the peak, and remembers a refused growth so that the failure it causes
//! (a trap, or Python's `MemoryError`) is reported as `memory_limit` rather than as a task error.

use wasmtime::ResourceLimiter;

/// Tables and instances a guest component may create; ours need a handful.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;
const MAX_INSTANCES: usize = 64;
const MAX_TABLES: usize = 64;
const MAX_MEMORIES: usize = 16;

/// Per-store memory accounting.
#[derive(Debug)]
pub struct MemoryLimiter {
    cap: usize,
    total: usize,
    /// Highest total linear memory seen, in bytes.
    pub peak: usize,
    /// The size a refused growth asked for, if any.
    pub refused: Option<usize>,
}

impl MemoryLimiter {
    /// Linear memory in use now, in bytes.
    pub fn in_use(&self) -> usize {
        self.total
    }

    /// Caps the sum of all linear memories at `cap` bytes.
    pub fn new(cap: u64) -> Self {
        MemoryLimiter {
            cap: usize::try_from(cap).unwrap_or(usize::MAX),
            total: 0,
            peak: 0,
            refused: None,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.total - current.min(self.total) + desired;
        if total > self.cap {
            self.refused = Some(total);
            return Ok(false);
        }
        self.total = total;
        self.peak = self.peak.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}
