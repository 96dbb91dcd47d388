//! What fuel metering and epoch interruption cost: one task of a bundle is compiled four times
//! (fuel and epochs on, as Capsule runs it; fuel only; epochs only; neither) and run in fresh
//! instances; the median wall time per configuration is printed, with its ratio to "neither".
//!
//!   cargo bench -p capsule-compiler --bench instrumentation -- BUNDLE TASK ARGS_JSON [RUNS]
//!
//! The epoch thread ticks as in the runner, so the "epochs" rows include the tick callbacks.

use capsule_packager::archive::{BundleReader, ReadLimits};
use capsule_packager::{engine, layer};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker, ResourceTable, Val};
use wasmtime::{Config, Engine, Store, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    http: wasmtime_wasi_http::WasiHttpCtx,
}

impl wasmtime_wasi_http::WasiHttpView for State {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn main() -> wasmtime::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [bundle, task, args_json, rest @ ..] = args.as_slice() else {
        wasmtime::bail!("usage: instrumentation BUNDLE TASK ARGS_JSON [RUNS]");
    };
    let runs: usize = rest.first().map_or(Ok(5), |r| r.parse())?;
    let bytes = std::fs::read(bundle)?;
    let verified = BundleReader::new(ReadLimits::default())
        .read_unverified(&bytes)?
        .verify_blobs()?;
    let manifest = &verified.manifest;
    let component = verified
        .blob(&manifest.component)
        .ok_or_else(|| wasmtime::format_err!("the bundle has no component"))?;
    let store_dir = tempfile::tempdir()?;
    let mut layers = Vec::new();
    for entry in &manifest.layers {
        let blob = verified
            .blob(&entry.digest)
            .ok_or_else(|| wasmtime::format_err!("layer missing"))?;
        layers.push((
            layer::materialize(store_dir.path(), &entry.digest, blob)?,
            entry.mount.clone(),
        ));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    println!(
        "{:<22} {:>12} {:>10}",
        "instrumentation", "median ms", "ratio"
    );
    let mut baseline = None;
    for (name, fuel, epoch) in [
        ("neither", false, false),
        ("fuel", true, false),
        ("epochs", false, true),
        ("fuel + epochs (Capsule)", true, true),
    ] {
        let mut config: Config = engine::config();
        config.consume_fuel(fuel).epoch_interruption(epoch);
        let engine = Engine::new(&config)?;
        let compiled = Component::new(&engine, component)?;
        let mut linker = Linker::<State>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        // The guests import wasi:http (unused by the workloads) and call-task (failing here).
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        linker.root().func_new("call-task", |_, _, _, _| {
            wasmtime::bail!("sub-tasks are not available in this benchmark")
        })?;
        let pre = linker.instantiate_pre(&compiled)?;
        let ticking = engine.clone();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let ticker = std::thread::spawn(move || {
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(2));
                ticking.increment_epoch();
            }
        });
        let mut times = Vec::new();
        for _ in 0..runs {
            let mut builder = WasiCtxBuilder::new();
            for (dir, mount) in &layers {
                builder.preopened_dir(dir, mount, FsPerms::ReadOnly)?;
            }
            let mut store = Store::new(
                &engine,
                State {
                    wasi: builder.build(),
                    table: ResourceTable::new(),
                    http: wasmtime_wasi_http::WasiHttpCtx::new(),
                },
            );
            if fuel {
                store.set_fuel(u64::MAX)?;
            }
            if epoch {
                store.set_epoch_deadline(1);
                store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Continue(1)));
            }
            let started = Instant::now();
            let outcome = runtime.block_on(async {
                let instance = pre.instantiate_async(&mut store).await?;
                let run = instance
                    .get_func(&mut store, "run")
                    .ok_or_else(|| wasmtime::format_err!("no `run` export"))?;
                let mut results = [Val::Bool(false)];
                run.call_async(
                    &mut store,
                    &[Val::String(task.clone()), Val::String(args_json.clone())],
                    &mut results,
                )
                .await?;
                Ok::<_, wasmtime::Error>(results)
            })?;
            times.push(started.elapsed().as_secs_f64() * 1e3);
            if let [Val::Result(Err(error))] = &outcome {
                wasmtime::bail!("the task failed: {error:?}");
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = ticker.join();
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let base = *baseline.get_or_insert(median);
        println!("{name:<22} {median:>12.1} {:>10.3}", median / base);
    }
    Ok(())
}
