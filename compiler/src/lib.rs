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
//! Before the pipeline, [`Compiler::prepare`] collects what the guest needs from the task's
//! [`project`]: the Python app and site-packages layers ([`python`]) or the JavaScript module graph
//! ([`javascript`]).
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
pub mod javascript;
pub mod precompile;
pub mod project;
pub mod python;
pub mod snapshot;
pub mod tasks;

pub use error::Error;
pub use guest::Guest;
pub use project::Project;

use capsule_packager::engine::{self, Target};
use capsule_packager::lease::Lease;
use capsule_packager::manifest::{
    self, BlobEntry, GuestInfo, LayerEntry, Manifest, SourceInfo, TargetEntry,
};
use capsule_packager::sign::SecretKey;
use capsule_packager::{Digest, archive};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// A task file as the user gave it, and the project it belongs to.
#[derive(Clone, Debug)]
pub struct TaskSource {
    /// The path as given.
    pub path: PathBuf,
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// The guest that runs it, from the extension.
    pub guest: Guest,
    /// Its project (root directory, and the task file's name relative to it, which appears in
    /// tracebacks and the manifest).
    pub project: Project,
}

impl TaskSource {
    /// Reads a task file (see [`Guest::for_path`]) and finds its project.
    pub fn read(path: &Path) -> Result<Self, Error> {
        let guest = Guest::for_path(path)?;
        let bytes = std::fs::read(path)
            .map_err(|e| Error::Io(format!("cannot read `{}`", path.display()), e))?;
        let project = Project::discover(path, guest.project_markers())?;
        Ok(TaskSource {
            path: path.to_path_buf(),
            bytes,
            guest,
            project,
        })
    }

    /// The task file's name relative to its project root (`task.py`, `src/main.ts`).
    pub fn file_name(&self) -> String {
        self.project.entry.clone()
    }
}

/// What a guest's pre-initialization needs besides the guest image: prepared from the task's
/// project by the guest's own module ([`python`], [`javascript`]) before anything runs.
#[derive(Debug, Default)]
pub struct Prepared {
    /// What the guest reads on stdin at build time (the module source, or a module map).
    pub init_input: Vec<u8>,
    /// Environment variables the guest sees at build time only.
    pub init_env: Vec<(String, String)>,
    /// Read-only layers mounted both at build time and at run time (besides the guest's own).
    pub layers: Vec<PreparedLayer>,
    /// Installed third-party distributions, for the manifest.
    pub dependencies: Vec<manifest::Dependency>,
    /// Things the user should know (printed by `capsule build`).
    pub warnings: Vec<String>,
}

/// A layer blob and where the guest sees it.
#[derive(Debug)]
pub struct PreparedLayer {
    /// Absolute guest path, mounted read-only.
    pub mount: String,
    /// The tar+zstd blob ([`capsule_packager::layer::pack`]).
    pub blob: Vec<u8>,
    /// Its digest.
    pub digest: Digest,
}

impl PreparedLayer {
    /// A layer of `blob` mounted at `mount`.
    pub fn new(mount: &str, blob: Vec<u8>) -> Self {
        PreparedLayer {
            mount: mount.to_string(),
            digest: Digest::of(&blob),
            blob,
        }
    }
}

/// Builds bundles; configure it, then call [`Compiler::compile`].
#[derive(Clone, Debug)]
pub struct Compiler {
    cache_dir: PathBuf,
    targets: Vec<Target>,
    mtime: u64,
    defaults: BTreeMap<String, serde_json::Value>,
    exclude: Vec<String>,
    skip: Vec<PathBuf>,
    site_packages: Option<PathBuf>,
    /// The shared lock on the cache directory, taken at first use and held for the compiler's
    /// life, so that `capsule gc` never removes a cache entry under a build.
    cache_lease: Arc<OnceLock<Lease>>,
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
    /// Things the user should know about the build (large files included, packages adjusted).
    pub warnings: Vec<String>,
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
            exclude: Vec::new(),
            skip: Vec::new(),
            site_packages: None,
            cache_lease: Arc::default(),
        }
    }

    /// Leases the cache directory for this compiler's life (see [`capsule_packager::lease`]);
    /// waits while a collector works on it.
    fn hold_cache(&self) -> Result<(), Error> {
        if self.cache_lease.get().is_some() {
            return Ok(());
        }
        let lock = self.cache_dir.join(capsule_packager::lease::AREA_LOCK);
        let lease = Lease::area(&lock).map_err(|e| {
            Error::Io(
                format!("cannot lock the compiler cache `{}`", lock.display()),
                e,
            )
        })?;
        let _ = self.cache_lease.set(lease);
        Ok(())
    }

    /// Globs (relative to the project root) of files to leave out of the app layer
    /// (`[build] exclude` in capsule.toml).
    pub fn exclude(mut self, globs: Vec<String>) -> Self {
        self.exclude = globs;
        self
    }

    /// A path never to put into the app layer (the bundle being written).
    pub fn skip_path(mut self, path: PathBuf) -> Self {
        self.skip.push(path);
        self
    }

    /// A site-packages directory to take Python packages from when the project declares none
    /// (`--site-packages`; otherwise the active virtualenv's).
    pub fn site_packages(mut self, dir: Option<PathBuf>) -> Self {
        self.site_packages = dir;
        self
    }

    /// The compiler's cache directory.
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// Collects what the guest needs from the task's project (files, dependencies, module
    /// graph), without running anything: cheap enough to key a cache of built bundles on.
    pub fn prepare(&self, source: &TaskSource) -> Result<Prepared, Error> {
        self.hold_cache()?;
        match source.guest {
            Guest::Python => python::prepare(self, source),
            Guest::Quickjs => javascript::prepare(self, source),
        }
    }

    /// A key for everything that goes into the bundle of `source` prepared as `prepared`: the
    /// same key means the same bundle bytes.
    pub fn input_key(&self, source: &TaskSource, prepared: &Prepared) -> Digest {
        let image_key = source.guest.image().map(|i| i.key).unwrap_or_default();
        // Each target's engine fingerprint: a change of engine settings changes the `.cwasm`.
        let targets: Vec<String> = self
            .targets
            .iter()
            .map(|t| format!("{}={}", t.triple, engine::fingerprint(t)))
            .collect();
        let mut parts: Vec<Vec<u8>> = vec![
            env!("CARGO_PKG_VERSION").into(),
            image_key.into(),
            targets.join(",").into(),
            self.mtime.to_le_bytes().to_vec(),
            serde_json::to_vec(&self.defaults).unwrap_or_default(),
            source.project.entry.clone().into(),
            prepared.init_input.clone(),
        ];
        for (key, value) in &prepared.init_env {
            parts.push(format!("{key}={value}").into());
        }
        for layer in &prepared.layers {
            parts.push(format!("{}={}", layer.mount, layer.digest).into());
        }
        let mut framed = Vec::new();
        for part in parts {
            framed.extend_from_slice(&(part.len() as u64).to_le_bytes());
            framed.extend_from_slice(&part);
        }
        Digest::of(&framed)
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
        let prepared = self.prepare(source)?;
        self.compile_prepared(source, prepared)
    }

    /// Runs the pipeline on `source` as [`Compiler::prepare`] prepared it.
    pub fn compile_prepared(
        &self,
        source: &TaskSource,
        prepared: Prepared,
    ) -> Result<CompiledBundle, Error> {
        self.hold_cache()?;
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
        let mut mounts: Vec<(PathBuf, String)> = Vec::new();
        if let Some((_, dir)) = &stdlib {
            mounts.push((dir.clone(), guest::PYTHON_STDLIB_MOUNT.to_string()));
        }
        for layer in &prepared.layers {
            let dir = capsule_packager::layer::materialize(&store, &layer.digest, &layer.blob)?;
            mounts.push((dir, layer.mount.clone()));
        }
        let snapshot = snapshot::Snapshotter::new(&self.cache_dir)
            .wall_clock_seconds(self.mtime)
            .run(image.wasm, source, &prepared, &mounts)?;
        timings.mark("snapshot (Wizer: the module's top level)");
        let table = tasks::TaskTable::parse(&snapshot.task_table, &source.file_name())?;
        let (task_entries, entry) = table.validate(&source.file_name(), &self.defaults)?;
        let mut prepared = prepared;
        prepared.warnings.extend(table.warnings.iter().cloned());
        let component = componentize::componentize(&snapshot.wasm)?;
        timings.mark("componentize");

        let mut blobs = BTreeMap::new();
        let mut blob_entries = Vec::new();
        let mut add_blob = |bytes: Vec<u8>, media_type: &str| {
            let digest = Digest::of(&bytes);
            if blobs.contains_key(&digest) {
                return digest; // two layers with the same contents (say, two empty ones)
            }
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
        for layer in prepared.layers {
            layers.push(LayerEntry {
                digest: layer.digest,
                mount: layer.mount,
            });
            add_blob(layer.blob, manifest::MEDIA_LAYER);
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
            dependencies: prepared.dependencies,
        };
        Ok(CompiledBundle {
            manifest,
            blobs,
            mtime: self.mtime,
            build_output: snapshot.stderr,
            warnings: prepared.warnings,
            timings: timings.done,
        })
    }
}
