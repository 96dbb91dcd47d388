//! One attempt: a fresh store and instance of the component, under the task's limits.

use crate::limits::MemoryLimiter;
use crate::outcome::{ErrorInfo, ErrorType, GuestOutput};
use crate::output::CapturedOutput;
use capsule_packager::Policy;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

// Async, so that a deadline also ends a task that waits in the host (a sleep), not only one
// that computes (the epoch deadline stops those).
wasmtime::component::bindgen!({
    path: "../manifests/wit/world.wit",
    world: "task",
    imports: { default: async },
    exports: { default: async },
});

/// Bytes of guest stdout and of stderr kept per attempt.
const OUTPUT_CAP: usize = 1 << 20;

/// Store data of one attempt.
pub struct AttemptState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
}

impl WasiView for AttemptState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Everything an attempt needs besides the policy.
pub struct Environment<'a> {
    /// Read-only layers: (host dir, guest mount point).
    pub layers: &'a [(PathBuf, String)],
    /// Environment variables granted (already filtered by the policy).
    pub env: &'a [(String, String)],
    /// Directories granted by the policy.
    pub dirs: &'a [GrantedDir],
}

/// A host directory the task may use, and where the guest sees it.
#[derive(Clone, Debug)]
pub struct GrantedDir {
    /// Host path.
    pub host: PathBuf,
    /// Absolute guest path.
    pub guest: String,
    /// Read-write (else read-only).
    pub writable: bool,
}

/// What one attempt produced.
pub struct AttemptOutcome {
    /// The result JSON, or the failure.
    pub result: Result<String, ErrorInfo>,
    /// Fuel used.
    pub fuel_consumed: u64,
    /// Peak linear memory.
    pub peak_memory_bytes: u64,
    /// What the guest printed.
    pub output: GuestOutput,
}

/// Builds the linker once per bundle: WASI preview2, nothing else.
pub fn linker(engine: &Engine) -> Result<Linker<AttemptState>, String> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .map_err(|e| format!("cannot link WASI: {e:#}"))?;
    Ok(linker)
}

/// Increments the engine's epoch when `timeout` passes, unless dropped first.
struct Deadline {
    _cancel: mpsc::Sender<()>,
}

impl Deadline {
    fn start(engine: &Engine, timeout: Duration) -> Self {
        let (cancel, cancelled) = mpsc::channel::<()>();
        let engine = engine.clone();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = cancelled.recv_timeout(timeout) {
                engine.increment_epoch();
            }
        });
        Deadline { _cancel: cancel }
    }
}

fn limit_text(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    if bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// Runs task `task` once in a fresh instance.
pub fn attempt(
    engine: &Engine,
    linker: &Linker<AttemptState>,
    component: &Component,
    task: &str,
    policy: &Policy,
    args_json: &str,
    environment: &Environment<'_>,
) -> AttemptOutcome {
    let stdout = CapturedOutput::new(OUTPUT_CAP);
    let stderr = CapturedOutput::new(OUTPUT_CAP);
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .allow_blocking_current_thread(true);
    for (key, value) in environment.env {
        builder.env(key, value);
    }
    let mut setup_error = None;
    for (dir, mount) in environment.layers {
        if let Err(e) = builder.preopened_dir(dir, mount, FsPerms::ReadOnly) {
            setup_error = Some(format!("cannot open layer `{}`: {e:#}", dir.display()));
        }
    }
    for dir in environment.dirs {
        let perms = if dir.writable {
            FsPerms::ReadWrite
        } else {
            FsPerms::ReadOnly
        };
        if let Err(e) = builder.preopened_dir(&dir.host, &dir.guest, perms) {
            setup_error = Some(format!(
                "cannot open granted directory `{}`: {e:#}",
                dir.host.display()
            ));
        }
    }
    let state = AttemptState {
        wasi: builder.build(),
        table: ResourceTable::new(),
        limiter: MemoryLimiter::new(policy.ram_bytes),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    let fuel = policy.fuel();
    let mut result = match setup_error {
        Some(message) => Err(ErrorInfo {
            error_type: ErrorType::Internal,
            message,
            traceback: None,
        }),
        None => Ok(()),
    };
    if result.is_ok() {
        if let Err(e) = store.set_fuel(fuel) {
            result = Err(ErrorInfo {
                error_type: ErrorType::Internal,
                message: format!("cannot set fuel: {e:#}"),
                traceback: None,
            });
        }
    }
    store.set_epoch_deadline(1);
    let called = result.and_then(|()| {
        let _deadline = Deadline::start(engine, policy.timeout());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| ErrorInfo {
                error_type: ErrorType::Internal,
                message: format!("cannot start the async runtime: {e}"),
                traceback: None,
            })?;
        let call = runtime.block_on(async {
            let run = async {
                let instance = Task::instantiate_async(&mut store, component, linker).await?;
                instance.call_run(&mut store, task, args_json).await
            };
            tokio::time::timeout(policy.timeout(), run).await
        });
        match call {
            Err(_elapsed) => Err(ErrorInfo {
                error_type: ErrorType::Timeout,
                message: format!(
                    "task `{task}` exceeded its timeout of {} ms (while waiting in the host)",
                    policy.timeout_ms
                ),
                traceback: None,
            }),
            Ok(Ok(Ok(json))) => Ok(json),
            Ok(Ok(Err(guest))) => Err(ErrorInfo {
                error_type: ErrorType::from_guest(&guest.error_type),
                message: guest.message,
                traceback: Some(guest.traceback).filter(|t| !t.is_empty()),
            }),
            Ok(Err(trap)) => Err(classify_trap(&trap, task, policy)),
        }
    });
    let fuel_consumed = fuel.saturating_sub(store.get_fuel().unwrap_or(fuel));
    let limiter = &store.data().limiter;
    let peak_memory_bytes = limiter.peak as u64;
    // A refused growth explains whatever failure followed it (a trap, or Python's MemoryError).
    let result = match (called, limiter.refused) {
        (Err(error), Some(wanted))
            if matches!(error.error_type, ErrorType::TaskError | ErrorType::Internal) =>
        {
            Err(ErrorInfo {
                error_type: ErrorType::MemoryLimit,
                message: format!(
                    "task `{task}` exceeded its memory limit (ram = {}): it tried to grow to {wanted} bytes",
                    limit_text(policy.ram_bytes)
                ),
                traceback: error.traceback,
            })
        }
        (other, _) => other,
    };
    let (out, dropped_out) = stdout.contents();
    let (err, dropped_err) = stderr.contents();
    AttemptOutcome {
        result,
        fuel_consumed,
        peak_memory_bytes,
        output: GuestOutput {
            stdout: out,
            stderr: err,
            dropped_bytes: dropped_out + dropped_err,
        },
    }
}

fn classify_trap(error: &wasmtime::Error, task: &str, policy: &Policy) -> ErrorInfo {
    let (error_type, message) = match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => (
            ErrorType::OutOfFuel,
            format!(
                "task `{task}` ran out of fuel: its compute budget is {} fuel",
                policy.fuel()
            ),
        ),
        Some(Trap::Interrupt) => (
            ErrorType::Timeout,
            format!(
                "task `{task}` exceeded its timeout of {} ms",
                policy.timeout_ms
            ),
        ),
        Some(trap) => (
            ErrorType::Internal,
            format!("task `{task}` trapped: {trap}"),
        ),
        None => (
            ErrorType::Internal,
            format!("task `{task}` could not run: {error:#}"),
        ),
    };
    ErrorInfo {
        error_type,
        message,
        traceback: None,
    }
}
