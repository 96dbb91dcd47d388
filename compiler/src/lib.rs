//! Turns a task file into everything a bundle holds.
//!
//! The pipeline, one module per stage: [`guest`] (the embedded CPython / QuickJS images) →
//! [`snapshot`] (Wizer runs the guest's init with the user's module: the interpreter is up, the SDK
//! imported, **the module's top level executed**, and the task table read back) → [`tasks`] (the
//! table becomes validated [`capsule_packager::Policy`]s and an entry task) → [`componentize`] (the
//! snapshot becomes a component of the `capsule:task` world with the WASI preview1 adapter) →
//! [`precompile`] (one `.cwasm` per target, with the runner's exact engine settings and an
//! incremental cache shared by all tasks of a guest).
//!
//! ```no_run
//! use capsule_compiler::{Compiler, TaskSource};
//! let source = TaskSource::read("hello.py".as_ref())?;
//! let bundle = Compiler::new("/tmp/capsule-cache".into()).compile(&source)?;
//! std::fs::write("hello.capsule", bundle.to_bytes(None)?)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod componentize;
mod error;
pub mod guest;
pub mod precompile;
pub mod snapshot;
pub mod tasks;

pub use error::Error;
pub use guest::Guest;

use capsule_packager::engine::{self, Target};
use capsule_packager::manifest::{
    self, BlobEntry, GuestInfo, LayerEntry, Manifest, SourceInfo, TargetEntry,
};
use capsule_packager::sign::SecretKey;
use capsule_packager::{Digest, archive};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A task file as the user gave it.
#[derive(Clone, Debug)]
pub struct TaskSource {
    /// The path as given (its file name appears in tracebacks and the manifest).
    pub path: PathBuf,
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// The guest that runs it, from the extension.
    pub guest: Guest,
}

impl TaskSource {
    /// Reads a `.py`, `.js` or `.mjs` file.
    pub fn read(path: &Path) -> Result<Self, Error> {
        let guest = Guest::for_path(path)?;
        let bytes = std::fs::read(path)
            .map_err(|e| Error::Io(format!("cannot read `{}`", path.display()), e))?;
        Ok(TaskSource {
            path: path.to_path_buf(),
            bytes,
            guest,
        })
    }

    /// The file name without directories.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "task".into())
    }
}

/// Builds bundles; configure it, then call [`Compiler::compile`].
#[derive(Clone, Debug)]
pub struct Compiler {
    cache_dir: PathBuf,
    targets: Vec<Target>,
    mtime: u64,
    defaults: BTreeMap<String, serde_json::Value>,
}

/// Everything a bundle holds, before it is written.
#[derive(Debug)]
pub struct CompiledBundle {
    /// The manifest.
    pub manifest: Manifest,
    /// The blobs, by digest.
    pub blobs: BTreeMap<Digest, Vec<u8>>,
    /// Timestamp for archive entries.
    pub mtime: u64,
    /// What the user's top level printed while it ran at build time.
    pub build_output: String,
    /// How long each stage took.
    pub timings: Vec<(String, std::time::Duration)>,
}

/// Stage timings, for `capsule build --verbose` and the benchmarks.
#[derive(Debug)]
struct Timings {
    last: std::time::Instant,
    done: Vec<(String, std::time::Duration)>,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            last: std::time::Instant::now(),
            done: Vec::new(),
        }
    }
}

impl Timings {
    fn mark(&mut self, stage: &str) {
        let now = std::time::Instant::now();
        self.done.push((stage.to_string(), now - self.last));
        self.last = now;
    }
}

impl CompiledBundle {
    /// The bundle file's bytes, signed with `key` if given.
    pub fn to_bytes(&self, key: Option<&SecretKey>) -> Result<Vec<u8>, Error> {
        let signature = key.map(|k| k.sign(&self.manifest.to_bytes()));
        Ok(archive::write_bundle(
            &self.manifest,
            &self.blobs,
            signature.as_ref(),
            self.mtime,
        )?)
    }
}

impl Compiler {
    /// A compiler for every target Capsule knows (x86_64 and aarch64), keeping its caches under
    /// `cache_dir`.
    pub fn new(cache_dir: PathBuf) -> Self {
        Compiler {
            cache_dir,
            targets: engine::TARGETS.to_vec(),
            mtime: 0,
            defaults: BTreeMap::new(),
        }
    }

    /// Targets to precompile for.
    pub fn targets(mut self, targets: Vec<Target>) -> Self {
        self.targets = targets;
        self
    }

    /// Timestamp stored in the archive (e.g. `SOURCE_DATE_EPOCH`); also the wall clock the guest
    /// sees while its top level runs, so snapshots are reproducible.
    pub fn source_date_epoch(mut self, seconds: u64) -> Self {
        self.mtime = seconds;
        self
    }

    /// Task defaults (from `capsule.toml`); a task's own values win.
    pub fn defaults(mut self, defaults: BTreeMap<String, serde_json::Value>) -> Self {
        self.defaults = defaults;
        self
    }

    /// Runs the whole pipeline on `source`.
    pub fn compile(&self, source: &TaskSource) -> Result<CompiledBundle, Error> {
        let mut timings = Timings::default();
        let image = source.guest.image()?;
        let store = self.cache_dir.join("store");
        let stdlib = match image.stdlib {
            Some(layer) => {
                let digest = Digest::of(layer);
                Some((
                    digest,
                    capsule_packager::layer::materialize(&store, &digest, layer)?,
                ))
            }
            None => None,
        };
        let snapshot = snapshot::Snapshotter::new(&self.cache_dir)
            .wall_clock_seconds(self.mtime)
            .run(
                image.wasm,
                source,
                stdlib.as_ref().map(|(_, dir)| dir.as_path()),
            )?;
        timings.mark("snapshot (Wizer: the module's top level)");
        let table = tasks::TaskTable::parse(&snapshot.task_table, &source.file_name())?;
        let (task_entries, entry) = table.validate(&source.file_name(), &self.defaults)?;
        let component = componentize::componentize(&snapshot.wasm)?;
        timings.mark("componentize");

        let mut blobs = BTreeMap::new();
        let mut blob_entries = Vec::new();
        let mut add_blob = |bytes: Vec<u8>, media_type: &str| {
            let digest = Digest::of(&bytes);
            blob_entries.push(BlobEntry {
                digest,
                media_type: media_type.to_string(),
                size: bytes.len() as u64,
            });
            blobs.insert(digest, bytes);
            digest
        };
        let precompiler = precompile::Precompiler::new(&self.cache_dir.join("incremental"));
        let mut seen = BTreeSet::new();
        let wanted: Vec<&Target> = self
            .targets
            .iter()
            .filter(|t| seen.insert(t.triple))
            .collect();
        // One thread per target: each compile is parallel already, but a warm incremental cache
        // leaves most of the time in serial work (hashing, copying data segments).
        let compiled: Vec<Result<Vec<u8>, Error>> = std::thread::scope(|scope| {
            let jobs: Vec<_> = wanted
                .iter()
                .map(|target| scope.spawn(|| precompiler.precompile(&component, target)))
                .collect();
            jobs.into_iter()
                .map(|job| {
                    job.join().unwrap_or_else(|_| {
                        Err(Error::toolchain(
                            "precompiling",
                            "the compiler thread panicked",
                        ))
                    })
                })
                .collect()
        });
        let names: Vec<_> = wanted.iter().map(|t| t.name).collect();
        timings.mark(&format!("precompile {}", names.join(" + ")));
        let mut targets = Vec::new();
        for (target, cwasm) in wanted.into_iter().zip(compiled) {
            targets.push(TargetEntry {
                triple: target.triple.to_string(),
                cpu_baseline: target.cpu_baseline.to_string(),
                wasmtime: engine::WASMTIME_VERSION.to_string(),
                engine_fingerprint: engine::fingerprint(target),
                cwasm: add_blob(cwasm?, manifest::MEDIA_CWASM),
            });
        }
        let component_digest = add_blob(component, manifest::MEDIA_COMPONENT);
        let mut layers = Vec::new();
        if let (Some(layer), Some((digest, _))) = (image.stdlib, &stdlib) {
            add_blob(layer.to_vec(), manifest::MEDIA_LAYER);
            layers.push(LayerEntry {
                digest: *digest,
                mount: guest::PYTHON_STDLIB_MOUNT.to_string(),
            });
        }
        blob_entries.sort_by_key(|b| b.digest);
        let manifest = Manifest {
            format: manifest::FORMAT.to_string(),
            language: source.guest.language(),
            entry,
            tasks: task_entries,
            blobs: blob_entries,
            component: component_digest,
            layers,
            targets,
            guest: GuestInfo {
                name: source.guest.name().to_string(),
                image: Digest::of(image.wasm),
            },
            toolchain: BTreeMap::from([
                ("capsule".to_string(), env!("CARGO_PKG_VERSION").to_string()),
                ("wasmtime".to_string(), engine::WASMTIME_VERSION.to_string()),
                ("guest-image-key".to_string(), image.key.clone()),
            ]),
            source: SourceInfo {
                file: source.file_name(),
                digest: Digest::of(&source.bytes),
            },
        };
        Ok(CompiledBundle {
            manifest,
            blobs,
            mtime: self.mtime,
            build_output: snapshot.stderr,
            timings: timings.done,
        })
    }
}
