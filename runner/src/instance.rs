//! One attempt: a fresh store and instance of the component, under the task's limits.

use crate::deadline;
use crate::disk;
use crate::limits::MemoryLimiter;
use crate::outcome::{ErrorInfo, ErrorType, GuestOutput};
use crate::output::CapturedOutput;
use crate::subtask::{self, SubTaskScope};
use capsule_packager::Policy;
use std::path::PathBuf;
use std::time::Instant;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi::filesystem::WasiFilesystemCtxView;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

// Async, so that a deadline ends a task that waits in the host (a sleep) as well as one that
// computes (stopped at a fuel yield, see src/deadline.rs).
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
    http: WasiHttpCtx,
    pub(crate) limiter: MemoryLimiter,
    /// Where this attempt's stdout and stderr go (its sub-tasks write there too).
    pub(crate) output: Outputs,
    /// What the task may pass on to the sub-tasks it calls.
    pub(crate) scope: SubTaskScope,
    /// Refused writes of `scope.disk` before the current call (see [`finish_call`]).
    disk_refusals_before: u64,
}

/// A task's captured stdout and stderr.
#[derive(Clone)]
pub struct Outputs {
    /// Guest stdout.
    pub stdout: CapturedOutput,
    /// Guest stderr.
    pub stderr: CapturedOutput,
}

impl Outputs {
    /// Empty buffers with the per-task cap.
    pub fn new() -> Self {
        Outputs {
            stdout: CapturedOutput::new(OUTPUT_CAP),
            stderr: CapturedOutput::new(OUTPUT_CAP),
        }
    }

    /// What was captured so far (a sub-task's attempt shares its caller's buffers, so this
    /// includes the caller's output).
    pub fn contents(&self) -> GuestOutput {
        let (stdout, dropped_out) = self.stdout.contents();
        let (stderr, dropped_err) = self.stderr.contents();
        GuestOutput {
            stdout,
            stderr,
            dropped_bytes: dropped_out + dropped_err,
        }
    }

    /// What was captured so far, leaving the buffers empty (a live session's next cell starts
    /// with nothing).
    pub fn take(&self) -> GuestOutput {
        let (stdout, dropped_out) = self.stdout.take();
        let (stderr, dropped_err) = self.stderr.take();
        GuestOutput {
            stdout,
            stderr,
            dropped_bytes: dropped_out + dropped_err,
        }
    }
}

impl WasiHttpView for AttemptState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            // The scope checks and records every outgoing HTTP request (src/http.rs).
            hooks: &mut self.scope,
        }
    }
}

impl AttemptState {
    /// `wasi:filesystem/types` with writes charged to the call's `disk` budget.
    fn disk_view(&mut self) -> disk::DiskView<'_> {
        disk::DiskView {
            fs: WasiFilesystemCtxView {
                ctx: self.wasi.filesystem(),
                table: &mut self.table,
            },
            budget: &self.scope.disk,
        }
    }
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

/// Links one import of the task world: a WASI 0.2 interface, a wasi:http one, or `call-task`.
type LinkImport = fn(&mut Linker<AttemptState>) -> wasmtime::Result<()>;

/// Every import the runner can give a component, by name without its version. File writes go
/// through the counting `wasi:filesystem/types` of [`disk`], outgoing HTTP through the checks of
/// src/http.rs; sockets are linked for a component that asks, and refuse every address (the WASI
/// context grants none).
const IMPORTS: &[(&str, LinkImport)] = {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, io, random, sockets};
    use wasmtime_wasi::random::WasiRandom;
    use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};
    use wasmtime_wasi_http::p2::bindings::http;
    type S = AttemptState;
    &[
        ("wasi:io/error", |l| {
            io::error::add_to_linker::<S, Table>(l, |t| &mut t.table)
        }),
        ("wasi:io/poll", |l| {
            io::poll::add_to_linker::<S, Table>(l, |t| &mut t.table)
        }),
        ("wasi:io/streams", |l| {
            io::streams::add_to_linker::<S, Table>(l, |t| &mut t.table)
        }),
        ("wasi:clocks/wall-clock", |l| {
            clocks::wall_clock::add_to_linker::<S, WasiClocks>(l, S::clocks)
        }),
        ("wasi:clocks/monotonic-clock", |l| {
            clocks::monotonic_clock::add_to_linker::<S, WasiClocks>(l, S::clocks)
        }),
        ("wasi:random/random", |l| {
            random::random::add_to_linker::<S, WasiRandom>(l, |t| t.wasi.random())
        }),
        ("wasi:random/insecure", |l| {
            random::insecure::add_to_linker::<S, WasiRandom>(l, |t| t.wasi.random())
        }),
        ("wasi:random/insecure-seed", |l| {
            random::insecure_seed::add_to_linker::<S, WasiRandom>(l, |t| t.wasi.random())
        }),
        ("wasi:cli/exit", |l| {
            cli::exit::add_to_linker::<S, WasiCli>(l, S::cli)
        }),
        ("wasi:cli/environment", |l| {
            cli::environment::add_to_linker::<S, WasiCli>(l, S::cli)
        }),
        ("wasi:cli/stdin", |l| {
            cli::stdin::add_to_linker::<S, WasiCli>(l, S::cli)
        }),
        ("wasi:cli/stdout", |l| {
            cli::stdout::add_to_linker::<S, WasiCli>(l, S::cli)
        }),
        ("wasi:cli/stderr", |l| {
            cli::stderr::add_to_linker::<S, WasiCli>(l, S::cli)
        }),
        ("wasi:cli/terminal-input", |l| {
            cli::terminal_input::add_to_linker::<S, WasiCli>(l, S::cli)
        }),
        ("wasi:cli/terminal-output", |l| {
            cli::terminal_output::add_to_linker::<S, WasiCli>(l, S::cli)
        }),
        ("wasi:cli/terminal-stdin", |l| {
            cli::terminal_stdin::add_to_linker::<S, WasiCli>(l, S::cli)
        }),
        ("wasi:cli/terminal-stdout", |l| {
            cli::terminal_stdout::add_to_linker::<S, WasiCli>(l, S::cli)
        }),
        ("wasi:cli/terminal-stderr", |l| {
            cli::terminal_stderr::add_to_linker::<S, WasiCli>(l, S::cli)
        }),
        ("wasi:filesystem/types", |l| {
            disk::add_to_linker(l, AttemptState::disk_view)
        }),
        ("wasi:filesystem/preopens", |l| {
            filesystem::preopens::add_to_linker::<S, WasiFilesystem>(l, S::filesystem)
        }),
        ("wasi:sockets/network", |l| {
            sockets::network::add_to_linker::<S, WasiSockets>(l, &Default::default(), S::sockets)
        }),
        ("wasi:sockets/instance-network", |l| {
            sockets::instance_network::add_to_linker::<S, WasiSockets>(l, S::sockets)
        }),
        ("wasi:sockets/tcp", |l| {
            sockets::tcp::add_to_linker::<S, WasiSockets>(l, S::sockets)
        }),
        ("wasi:sockets/tcp-create-socket", |l| {
            sockets::tcp_create_socket::add_to_linker::<S, WasiSockets>(l, S::sockets)
        }),
        ("wasi:sockets/udp", |l| {
            sockets::udp::add_to_linker::<S, WasiSockets>(l, S::sockets)
        }),
        ("wasi:sockets/udp-create-socket", |l| {
            sockets::udp_create_socket::add_to_linker::<S, WasiSockets>(l, S::sockets)
        }),
        ("wasi:sockets/ip-name-lookup", |l| {
            sockets::ip_name_lookup::add_to_linker::<S, WasiSockets>(l, S::sockets)
        }),
        ("wasi:http/types", |l| {
            http::types::add_to_linker::<S, WasiHttp>(l, &Default::default(), S::http)
        }),
        ("wasi:http/outgoing-handler", |l| {
            http::outgoing_handler::add_to_linker::<S, WasiHttp>(l, S::http)
        }),
        ("call-task", subtask::add_to_linker),
    ]
};

/// `wasi:io` reaches the store's resource table.
struct Table;

impl wasmtime::component::HasData for Table {
    type Data<'a> = &'a mut ResourceTable;
}

/// `wasi:http` through [`WasiHttpView`] (its checks are in src/http.rs).
struct WasiHttp;

impl wasmtime::component::HasData for WasiHttp {
    type Data<'a> = WasiHttpCtxView<'a>;
}

/// The linker for `component`: what it imports of [`IMPORTS`], nothing else. Linking every
/// interface took about 0.25 ms of each exec, more than instantiating; an import the runner does
/// not know is left out, and [`prepare`] names it.
pub fn linker(engine: &Engine, component: &Component) -> Result<Linker<AttemptState>, String> {
    let mut linker = Linker::new(engine);
    for (name, _) in component.component_type().imports(engine) {
        let unversioned = name.split_once('@').map_or(name, |(name, _)| name);
        if let Some((_, link)) = IMPORTS.iter().find(|(known, _)| *known == unversioned) {
            link(&mut linker).map_err(|e| format!("cannot link `{name}`: {e:#}"))?;
        }
    }
    Ok(linker)
}

/// Type-checks and links `component` once, so that each attempt only instantiates.
pub fn prepare(engine: &Engine, component: &Component) -> Result<TaskPre<AttemptState>, String> {
    let linker = linker(engine, component)?;
    let pre = linker
        .instantiate_pre(component)
        .map_err(|e| format!("the component does not fit the runner: {e:#}"))?;
    TaskPre::new(pre).map_err(|e| format!("the component does not export the task world: {e:#}"))
}

fn limit_text(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    if bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

fn internal(message: String) -> ErrorInfo {
    ErrorInfo {
        error_type: ErrorType::Internal,
        message,
        traceback: None,
    }
}

/// The WASI context of one attempt: stdout/stderr captured, the layers and granted directories
/// preopened, the granted environment, nothing else.
fn wasi_context(environment: &Environment<'_>, output: &Outputs) -> Result<WasiCtx, ErrorInfo> {
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdout(output.stdout.clone())
        .stderr(output.stderr.clone())
        .allow_blocking_current_thread(true);
    for (key, value) in environment.env {
        builder.env(key, value);
    }
    for (dir, mount) in environment.layers {
        builder
            .preopened_dir(dir, mount, FsPerms::ReadOnly)
            .map_err(|e| internal(format!("cannot open layer `{}`: {e:#}", dir.display())))?;
    }
    for dir in environment.dirs {
        let perms = if dir.writable {
            FsPerms::ReadWrite
        } else {
            FsPerms::ReadOnly
        };
        builder
            .preopened_dir(&dir.host, &dir.guest, perms)
            .map_err(|e| {
                internal(format!(
                    "cannot open granted directory `{}`: {e:#}",
                    dir.host.display()
                ))
            })?;
    }
    Ok(builder.build())
}

/// A fresh store for one instance of the bundle's component: its WASI context (see
/// [`wasi_context`]), a memory limiter for `policy.ram_bytes`, fuel yields where deadlines are
/// checked (see [`deadline`]).
pub(crate) fn new_store(
    pre: &TaskPre<AttemptState>,
    policy: &Policy,
    environment: &Environment<'_>,
    scope: SubTaskScope,
    output: Outputs,
) -> Result<Store<AttemptState>, ErrorInfo> {
    let wasi = wasi_context(environment, &output)?;
    let state = AttemptState {
        wasi,
        table: ResourceTable::new(),
        limiter: MemoryLimiter::new(policy.ram_bytes),
        http: WasiHttpCtx::new(),
        output,
        scope,
        disk_refusals_before: 0,
    };
    let mut store = Store::new(pre.engine(), state);
    store.limiter(|s| &mut s.limiter);
    store
        .fuel_async_yield_interval(Some(deadline::FUEL_YIELD_INTERVAL))
        .map_err(|e| internal(format!("cannot set fuel: {e:#}")))?;
    Ok(store)
}

/// Readies `store` for one call: `fuel` to spend, the memory limiter's peak and refusal reset to
/// this call, `deadline` for the sub-tasks it calls (the call itself runs under
/// [`deadline::UntilDeadline`]).
pub(crate) fn start_call(
    store: &mut Store<AttemptState>,
    fuel: u64,
    deadline: Instant,
) -> Result<(), ErrorInfo> {
    store
        .set_fuel(fuel)
        .map_err(|e| internal(format!("cannot set fuel: {e:#}")))?;
    let limiter = &mut store.data_mut().limiter;
    limiter.refused = None;
    limiter.peak = limiter.in_use();
    let state = store.data_mut();
    state.scope.deadline = deadline;
    state.disk_refusals_before = state.scope.disk.refusals();
    Ok(())
}

/// How a call on an instance ended, as [`deadline::UntilDeadline`] reports it: `None` when the
/// deadline stopped it.
pub(crate) type CallEnd = Option<wasmtime::Result<Result<String, TaskError>>>;

/// Whether the instance can be called again after a call that ended so: only when the guest
/// itself returned (a trap or a call stopped midway leaves it in no known state).
pub(crate) fn instance_survives(end: &CallEnd) -> bool {
    matches!(end, Some(Ok(_)))
}

/// The outcome of a call that ended with `end`: its result, or the failure typed (limits, traps,
/// guest errors; a refused memory growth explains whatever failure followed it).
pub(crate) fn finish_call(
    store: &Store<AttemptState>,
    end: CallEnd,
    task: &str,
    policy: &Policy,
) -> Result<String, ErrorInfo> {
    let called = match end {
        None => Err(ErrorInfo {
            error_type: ErrorType::Timeout,
            message: format!(
                "task `{task}` exceeded its timeout of {} ms",
                policy.timeout_ms
            ),
            traceback: None,
        }),
        Some(Ok(Ok(json))) => Ok(json),
        Some(Ok(Err(guest))) => Err(ErrorInfo {
            error_type: ErrorType::from_guest(&guest.error_type),
            message: guest.message,
            traceback: Some(guest.traceback).filter(|t| !t.is_empty()),
        }),
        Some(Err(trap)) => Err(classify_trap(&trap, task, policy)),
    };
    // A refused growth explains whatever failure followed it (a trap, or Python's MemoryError).
    match (called, store.data().limiter.refused) {
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
    }
    .map_err(|error| explained_by_disk(store.data(), error, task))
}

/// A refused write (ENOSPC) explains the task error or trap that followed it.
fn explained_by_disk(state: &AttemptState, error: ErrorInfo, task: &str) -> ErrorInfo {
    let refused = state.scope.disk.refusals() > state.disk_refusals_before;
    match state.scope.disk.last_refusal() {
        Some((limit, wanted))
            if refused
                && matches!(error.error_type, ErrorType::TaskError | ErrorType::Internal) =>
        {
            ErrorInfo {
                error_type: ErrorType::DiskLimit,
                message: format!(
                    "task `{task}` exceeded its disk limit (disk = {limit} bytes): a write adding {wanted} bytes was refused with ENOSPC ({})",
                    error.message
                ),
                traceback: error.traceback,
            }
        }
        _ => error,
    }
}

/// Fuel a call used, from what [`start_call`] gave it.
pub(crate) fn fuel_used(store: &Store<AttemptState>, given: u64) -> u64 {
    given.saturating_sub(store.get_fuel().unwrap_or(given))
}

/// Runs task `task` once in a fresh instance until `scope.deadline` (checked at every fuel yield
/// and every wait in the host, see [`deadline`]). Guest output goes to `output`.
pub async fn attempt(
    pre: &TaskPre<AttemptState>,
    task: &str,
    policy: &Policy,
    args_json: &str,
    environment: &Environment<'_>,
    scope: SubTaskScope,
    output: Outputs,
) -> AttemptOutcome {
    let fuel = policy.fuel();
    let deadline = scope.deadline;
    let trace = scope.core.trace.clone();
    let depth = scope.depth;
    let left_to_the_kernel = depth == 0 && scope.core.ends_with_process;
    let failed = |error| AttemptOutcome {
        result: Err(error),
        fuel_consumed: 0,
        peak_memory_bytes: 0,
        output: GuestOutput::default(),
    };
    let mut store = match new_store(pre, policy, environment, scope, output.clone()) {
        Ok(store) => store,
        Err(error) => return failed(error),
    };
    if let Err(error) = start_call(&mut store, fuel, deadline) {
        return failed(error);
    }
    let run = async {
        let started = Instant::now();
        let instance = pre.instantiate_async(&mut store).await?;
        let indent = crate::runner::indent(depth);
        trace.stage(&format!("{indent}instantiate"), started.elapsed(), || {
            format!("fresh instance of `{task}`")
        });
        let running = Instant::now();
        let result = instance.call_run(&mut store, task, args_json).await;
        trace.stage(&format!("{indent}run"), running.elapsed(), || {
            format!("task `{task}`")
        });
        result
    };
    let end = deadline::UntilDeadline::new(run, deadline).await;
    let result = finish_call(&store, end, task, policy);
    let outcome = AttemptOutcome {
        result,
        fuel_consumed: fuel_used(&store, fuel),
        peak_memory_bytes: store.data().limiter.peak as u64,
        output: output.contents(),
    };
    if left_to_the_kernel {
        // Retries are few (`max_retries`), so at most that many instances wait for the exit.
        std::mem::forget(store);
    }
    outcome
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
        Some(Trap::StackOverflow) => (
            ErrorType::StackOverflow,
            format!(
                "task `{task}` overflowed its call stack (runaway or too deep recursion): the wasm call stack is exhausted"
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
