//! Pre-initialization: Wizer runs the guest's `wizer.initialize` with the user's module on stdin.
//!
//! Contract with the user: **the module's top level runs here, at build time**, once; its effects
//! (imports, constants, loaded data) are frozen into the snapshot, and tasks run later in fresh
//! instances of it. Clocks and randomness seen during init are fixed, so snapshots are reproducible.

use crate::{Error, Prepared, TaskSource};
use std::path::Path;
use std::time::Duration;
use wasmtime::{Engine, Linker, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, HostMonotonicClock, HostWallClock, WasiCtxBuilder};

/// The user's top level gets this long at build time.
const INIT_TIMEOUT: Duration = Duration::from_secs(120);
/// And this much memory.
const INIT_MEMORY_BYTES: usize = 2 << 30;
/// Cap on what init may print (the task table plus the user's prints).
const INIT_OUTPUT_BYTES: usize = 16 << 20;

/// The result of pre-initialization.
#[derive(Debug)]
pub struct Snapshot {
    /// The pre-initialized core module.
    pub wasm: Vec<u8>,
    /// The task table the guest printed (JSON).
    pub task_table: Vec<u8>,
    /// What the user's top level printed.
    pub stderr: String,
}

/// Runs Wizer on guest images.
#[derive(Debug)]
pub struct Snapshotter {
    engine_cache: std::path::PathBuf,
    module_cache: std::path::PathBuf,
    wall_clock: Duration,
}

struct InitState {
    wasi: WasiP1Ctx,
    limits: StoreLimits,
}

/// A clock frozen at one instant: init must not capture the build's real time.
struct FixedClock(Duration);

impl HostWallClock for FixedClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
    fn now(&self) -> Duration {
        self.0
    }
}

impl HostMonotonicClock for FixedClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        self.0.as_nanos() as u64
    }
}

impl Snapshotter {
    /// A snapshotter keeping its incremental compilation cache under `cache_dir`.
    pub fn new(cache_dir: &Path) -> Self {
        Snapshotter {
            engine_cache: cache_dir.join("incremental"),
            module_cache: cache_dir.join("modules"),
            wall_clock: Duration::ZERO,
        }
    }

    /// The wall-clock time (seconds since the epoch) the guest sees during init.
    pub fn wall_clock_seconds(mut self, seconds: u64) -> Self {
        self.wall_clock = Duration::from_secs(seconds);
        self
    }

    /// Pre-initializes `guest_wasm` with `source` as `prepared` (its stdin and environment);
    /// `layers` (host directory, guest mount point) are preopened read-only.
    pub fn run(
        &self,
        guest_wasm: &[u8],
        source: &TaskSource,
        prepared: &Prepared,
        layers: &[(std::path::PathBuf, String)],
    ) -> Result<Snapshot, Error> {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        // The instrumented guest is the same for every task: its functions come from the cache.
        crate::precompile::enable_incremental_cache(&mut config, &self.engine_cache)?;
        // Wizer compiles the instrumented guest, which is the same for every task of a guest:
        // wasmtime's whole-module cache turns that compile into a load after the first build.
        let mut modules = wasmtime::CacheConfig::new();
        modules.with_directory(&self.module_cache);
        let cache = wasmtime::Cache::new(modules)
            .map_err(|e| Error::toolchain("opening the module cache", e))?;
        config.cache(Some(cache));
        let engine =
            Engine::new(&config).map_err(|e| Error::toolchain("creating the Wizer engine", e))?;

        let stdout = MemoryOutputPipe::new(INIT_OUTPUT_BYTES);
        let stderr = MemoryOutputPipe::new(INIT_OUTPUT_BYTES);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdin(MemoryInputPipe::new(prepared.init_input.clone()))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .env("CAPSULE_TASK_FILE", source.file_name())
            .wall_clock(FixedClock(self.wall_clock))
            .monotonic_clock(FixedClock(Duration::ZERO))
            .secure_random(wasmtime_wasi::Deterministic::new(vec![0x5a; 32]))
            .insecure_random(wasmtime_wasi::Deterministic::new(vec![0xa5; 32]))
            .insecure_random_seed(0)
            .allow_blocking_current_thread(true);
        for (key, value) in &prepared.init_env {
            wasi.env(key, value);
        }
        for (dir, mount) in layers {
            wasi.preopened_dir(dir, mount, FsPerms::ReadOnly)
                .map_err(|e| Error::toolchain("preopening a layer", e))?;
        }
        let state = InitState {
            wasi: wasi.build_p1(),
            limits: StoreLimitsBuilder::new()
                .memory_size(INIT_MEMORY_BYTES)
                .build(),
        };
        let mut store = Store::new(&engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(1);
        let ticker = engine.clone();
        std::thread::spawn(move || {
            std::thread::sleep(INIT_TIMEOUT);
            ticker.increment_epoch();
        });

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut InitState| &mut s.wasi)
            .map_err(|e| Error::toolchain("linking WASI for Wizer", e))?;
        // The world's import: a sub-task cannot run while the module is being snapshotted (the
        // SDKs call the task's function directly then).
        linker
            .func_wrap(
                "$root",
                "call-task",
                |_: wasmtime::Caller<'_, InitState>,
                 _: i32,
                 _: i32,
                 _: i32,
                 _: i32,
                 _: i32|
                 -> wasmtime::Result<()> {
                    wasmtime::bail!(
                        "a sub-task cannot be called at build time (the module's top level)"
                    )
                },
            )
            .map_err(|e| Error::toolchain("linking call-task for Wizer", e))?;

        let mut wizer = wasmtime_wizer::Wizer::new();
        wizer.init_func("wizer.initialize");
        let result = wasmtime_wasi::runtime::in_tokio(wizer.run(
            &mut store,
            guest_wasm,
            async |store, module| {
                // wasi:http (the guests' HTTP client) and anything else beyond WASI preview1:
                // present in the module, never callable at build time.
                let mut linker = linker.clone();
                linker.define_unknown_imports_as_traps(module)?;
                linker.instantiate_async(store, module).await
            },
        ));
        let printed = String::from_utf8_lossy(&stderr.contents()).into_owned();
        match result {
            Ok(wasm) => Ok(Snapshot {
                wasm,
                task_table: stdout.contents().to_vec(),
                stderr: printed,
            }),
            Err(error) => {
                // The Python SDK's verdict on a package whose compiled extension was dropped.
                if let Some(line) = printed
                    .lines()
                    .find_map(|l| l.strip_prefix("capsule: unusable package: "))
                {
                    return Err(Error::Unsupported(line.to_string()));
                }
                let trap = error.downcast_ref::<wasmtime::Trap>().copied();
                let output = match trap {
                    Some(wasmtime::Trap::Interrupt) => {
                        format!(
                            "{printed}\nits top level ran for more than {}s",
                            INIT_TIMEOUT.as_secs()
                        )
                    }
                    Some(_) if !printed.trim().is_empty() => printed,
                    _ => format!("{printed}\n{error:#}"),
                };
                Err(Error::ModuleFailed {
                    file: source.file_name(),
                    output: output.trim().to_string(),
                })
            }
        }
    }
}
