//! Opening bundles and running their tasks.

use crate::disk::DiskBudget;
use crate::error::Error;
use crate::instance::{self, AttemptState, Environment, GrantedDir, Outputs, TaskPre};
use crate::outcome::{Envelope, ErrorInfo, ErrorType, Execution, GuestOutput};
use crate::store::{BundleKey, FileIdentity, Staged, Store};
use crate::subtask::{CallLog, SubTaskScope};
use crate::trace::Trace;
use capsule_packager::archive::{self, BundleReader, ReadLimits};
use capsule_packager::engine::{self, Target};
use capsule_packager::lease::Lease;
use capsule_packager::manifest::TargetEntry;
use capsule_packager::policy::FileMode;
use capsule_packager::sign::{Signer, Trust};
use capsule_packager::{Digest, Manifest, Policy, layer};
use serde_json::value::RawValue;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::Component;
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Runs bundles; one engine, shared by every bundle it opens.
pub struct Runner {
    pub(crate) engine: Engine,
    pub(crate) store: Store,
    pub(crate) compiler: Option<Arc<dyn LocalCompiler>>,
    pub(crate) trace: Trace,
    /// See [`Runner::ending_the_process`].
    ends_with_process: bool,
}

/// Compiles a bundle's portable component for this host when the bundle has no `.cwasm` this
/// runner can load. The full `capsule` provides one; the minimal runner has no compiler.
pub trait LocalCompiler: Send + Sync {
    /// Precompiles `component` (verified bytes) with exactly [`engine::config`]'s settings for
    /// this host.
    fn precompile(&self, component: &[u8]) -> Result<Vec<u8>, String>;
}

/// A verified bundle whose code is loaded and ready to instantiate.
pub struct LoadedBundle {
    pub(crate) core: Arc<BundleCore>,
    signer: Signer,
    pub(crate) compiled_locally: bool,
}

/// What every call of a bundle, and of its sub-tasks, needs.
pub(crate) struct BundleCore {
    pub manifest: Manifest,
    /// The component, linked and type-checked once: an attempt only instantiates it.
    pub pre: TaskPre<AttemptState>,
    /// Read-only layers: (host directory, guest mount point).
    pub layers: Vec<(PathBuf, String)>,
    /// Where `--verbose` lines go.
    pub trace: Trace,
    /// Keep the store entries this bundle uses (`.cwasm`, layers) from `capsule gc` while loaded.
    pub _leases: Vec<Lease>,
    /// The process exits after its call: a top-level attempt leaves its instance to the kernel.
    pub ends_with_process: bool,
}

/// What to run and with what.
#[derive(Clone, Debug)]
pub struct CallOptions {
    /// Task name; `None` runs the bundle's entry task.
    pub task: Option<String>,
    /// `{"args": [...], "kwargs": {...}}`.
    pub args_json: String,
    /// Where the task's declared `allowed_files` directories are found on this host
    /// (`<files_root>/<path>`); `None` means the current directory.
    pub files_root: Option<PathBuf>,
    /// Exec-time limits: each may only narrow the task's declared policy.
    pub narrow: Narrowing,
    /// Host directories bound to declared guest directories (`--mount`).
    pub mounts: Vec<Mount>,
}

/// `--mount HOST:GUEST[:ro|:rw]`: binds a declared directory to another host directory, and may
/// make it read-only; it can neither add a directory nor widen a read-only one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Host directory.
    pub host: PathBuf,
    /// The declared guest directory, as declared (`data`) or as the guest sees it (`/data`).
    pub guest: String,
    /// `Some(true)` for `:ro`, `Some(false)` for `:rw`, `None` to keep the declared mode.
    pub read_only: Option<bool>,
}

impl Mount {
    /// Parses `HOST:GUEST[:ro|:rw]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (rest, read_only) = match text.rsplit_once(':') {
            Some((rest, "ro")) => (rest, Some(true)),
            Some((rest, "rw")) => (rest, Some(false)),
            _ => (text, None),
        };
        match rest.rsplit_once(':') {
            Some((host, guest)) if !host.is_empty() && !guest.trim_matches('/').is_empty() => {
                Ok(Mount {
                    host: PathBuf::from(host),
                    guest: guest.to_string(),
                    read_only,
                })
            }
            _ => Err(format!("`{text}` is not HOST:GUEST[:ro|:rw]")),
        }
    }

    fn guest_dir(&self) -> &str {
        self.guest.trim_matches('/')
    }
}

/// Limits given at exec time (`--timeout`, `--ram`, `--compute`, `--disk`). They can only make
/// the declared policy stricter; a wider value is refused.
#[derive(Clone, Copy, Debug, Default)]
pub struct Narrowing {
    /// Wall-clock limit.
    pub timeout: Option<std::time::Duration>,
    /// Memory cap, bytes.
    pub ram_bytes: Option<u64>,
    /// Fuel.
    pub fuel: Option<u64>,
    /// Bytes the task may add to its writable directories (any value narrows a task that
    /// declares no `disk`).
    pub disk_bytes: Option<u64>,
}

impl Narrowing {
    /// `declared`, narrowed; an error names the first flag that would widen it.
    pub fn apply(&self, task: &str, declared: &Policy) -> Result<Policy, Error> {
        let mut policy = declared.clone();
        // `given` if it is within `limit`, else the error naming the flag.
        let within = |flag: &str, given: u64, limit: u64, unit: &str| {
            if given > limit {
                return Err(Error::Usage(format!(
                    "{flag} {given} {unit} is wider than task `{task}` declares ({limit} {unit}); exec-time limits may only narrow"
                )));
            }
            Ok(given)
        };
        if let Some(timeout) = self.timeout {
            policy.timeout_ms = within(
                "--timeout",
                timeout.as_millis() as u64,
                declared.timeout_ms,
                "ms",
            )?;
        }
        if let Some(ram) = self.ram_bytes {
            policy.ram_bytes = within("--ram", ram, declared.ram_bytes, "bytes")?;
        }
        if let Some(disk) = self.disk_bytes {
            policy.disk_bytes = Some(match declared.disk_bytes {
                Some(limit) => within("--disk", disk, limit, "bytes")?,
                None => disk,
            });
        }
        if let Some(fuel) = self.fuel {
            policy.compute = capsule_packager::policy::Compute::Fuel(within(
                "--compute",
                fuel,
                declared.fuel(),
                "fuel",
            )?);
        }
        Ok(policy)
    }
}

impl CallOptions {
    /// Runs the entry task with these arguments.
    pub fn entry(args_json: &str) -> Self {
        CallOptions {
            task: None,
            args_json: args_json.to_string(),
            files_root: None,
            narrow: Narrowing::default(),
            mounts: Vec::new(),
        }
    }
}

impl Runner {
    /// A runner keeping its content store (verified code, unpacked layers) under `store_dir`, a
    /// directory only Capsule writes.
    pub fn new(store_dir: PathBuf) -> Result<Self, Error> {
        Self::with_config(store_dir, engine::config())
    }

    /// A runner for many calls (the worker): instances come from a pool of preallocated slots
    /// whose memories are reset copy-on-write to the snapshot, so that an instantiation costs
    /// microseconds. The pool holds `concurrent_calls` calls with their sub-tasks; callers bound
    /// their concurrency to it.
    pub fn pooled(store_dir: PathBuf, concurrent_calls: u32) -> Result<Self, Error> {
        // A call holds one instance per level of sub-tasks it is in.
        let slots = concurrent_calls.saturating_mul(1 + crate::subtask::MAX_DEPTH);
        let mut config = engine::config();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool_config(slots)));
        Self::with_config(store_dir, config)
    }

    fn with_config(store_dir: PathBuf, config: wasmtime::Config) -> Result<Self, Error> {
        // Precompiled code only; a bundle without any for this host goes to the LocalCompiler.
        #[cfg(feature = "host-compiler")]
        let config = {
            let mut config = config;
            config.enable_compiler(false);
            config
        };
        let engine = Engine::new(&config)
            .map_err(|e| Error::Internal(format!("cannot create the engine: {e:#}")))?;
        Ok(Runner {
            engine,
            store: Store::new(store_dir),
            compiler: None,
            trace: Trace::default(),
            ends_with_process: false,
        })
    }

    /// For a process that exits right after one call (`capsule exec`): the stores and instances of
    /// the call's attempts are left for the kernel to unmap at exit instead of being torn down
    /// (about 0.1 ms: unmapping the instance's reservations, freeing its tables). Sub-tasks'
    /// instances are still freed, however many a task calls.
    pub fn ending_the_process(mut self) -> Self {
        self.ends_with_process = true;
        self
    }

    /// Compiles bundles that carry no code for this host with `compiler` (results are kept in the
    /// store, keyed by the component's digest and this engine's fingerprint).
    pub fn with_local_compiler(mut self, compiler: Arc<dyn LocalCompiler>) -> Self {
        self.compiler = Some(compiler);
        self
    }

    /// Reports stage timings, attempts and sub-tasks to `trace` (`--verbose`).
    pub fn with_trace(mut self, trace: Trace) -> Self {
        self.trace = trace;
        self
    }

    /// Reads, verifies and loads the bundle at `path`. Order: bounded read and manifest parse →
    /// signature against `trust` → every blob's sha256 → engine compatibility → only then native code is deserialized. A bundle
    /// whose exact bytes were verified before is loaded from the runner's store.
    pub fn open(&self, path: &Path, trust: &Trust) -> Result<LoadedBundle, Error> {
        let started = Instant::now();
        let limits = ReadLimits::default();
        let host = host_target()?;
        let size = std::fs::metadata(path)
            .map_err(|source| capsule_packager::Error::Io {
                action: "open",
                path: path.into(),
                source,
            })?
            .len();
        // An unchanged file (same identity) was hashed before: skip reading it at all.
        let identity = FileIdentity::of(path);
        if size <= limits.max_bundle_bytes
            && let Some(key) = identity
                .as_ref()
                .and_then(|id| self.store.key_by_identity(id))
            && let Some(loaded) = self.open_verified_before(&key, &host, trust, started)?
        {
            return Ok(loaded);
        }
        // Everything below works on this one in-memory copy: what is checked is what is run.
        let bytes = archive::read_capped(path, limits.max_bundle_bytes)?;
        let bundle_digest = BundleKey::of_bytes(&bytes);
        if let Some(loaded) = self.open_verified_before(&bundle_digest, &host, trust, started)? {
            // These bytes were verified before; the file's identity stands for them from now on
            // if it did not change while they were read.
            if let Some(identity) = identity
                && FileIdentity::of(path).as_ref() == Some(&identity)
            {
                self.store.record_identity(&identity, &bundle_digest);
            }
            return Ok(loaded);
        }
        let reader = BundleReader::new(limits);
        if let Some(framed) = reader.index(&bytes)?
            && let Some(loaded) =
                self.open_framed(framed, bytes.len(), &bundle_digest, &host, trust, started)?
        {
            return Ok(loaded);
        }
        let unverified = reader.read_unverified(&bytes)?;
        let signer = trust.check(&unverified.manifest_bytes, unverified.signature.as_ref())?;
        let bundle = unverified.verify_blobs()?;
        self.trace.stage("verify", started.elapsed(), || {
            format!(
                "read {} bytes, signature ({}), sha256 of every blob",
                bytes.len(),
                signer_text(signer)
            )
        });
        let loading = Instant::now();
        let manifest = bundle.manifest.clone();
        let entry = match (select_target(&manifest, &host), &self.compiler) {
            (Ok(entry), _) => entry,
            (Err(_), Some(compiler)) => {
                return self.compile_locally(&bundle, &host, compiler.as_ref(), signer);
            }
            (Err(error), None) => return Err(error),
        };
        let cwasm = bundle
            .blob(&entry.cwasm)
            .ok_or_else(|| Error::Incompatible(format!("blob {} is missing", entry.cwasm)))?;
        // SAFETY: `cwasm` is in memory (it cannot change under us), and its sha256 matched the
        // manifest when the bundle was read; wasmtime checks version and settings again here.
        let component = unsafe { Component::deserialize(&self.engine, cwasm) }
            .map_err(|e| Error::Incompatible(format!("{e:#}")))?;
        let mut layers = Vec::new();
        let mut leases = Vec::new();
        for layer in &manifest.layers {
            let blob = bundle
                .blob(&layer.digest)
                .ok_or_else(|| Error::Internal(format!("layer {} is missing", layer.digest)))?;
            let (dir, lease) = layer::materialize_leased(self.store.root(), &layer.digest, blob)?;
            layers.push((dir, layer.mount.clone()));
            leases.push(lease);
        }
        // Remember the verification; a store that cannot be written only costs speed. (The code
        // runs from memory here, so the stored copy needs no lease.)
        if self.store.put_blob(&entry.cwasm, cwasm).is_ok() {
            let _ = self.store.record_bundle(
                &bundle_digest,
                &bundle.manifest_bytes,
                bundle.signature.as_ref(),
            );
        }
        let loaded = self.loaded(manifest, signer, component, layers, leases)?;
        self.trace.stage("load", loading.elapsed(), || {
            "deserialized the .cwasm, unpacked layers into the store, linked".into()
        });
        Ok(loaded)
    }

    /// A bundle seen for the first time, written one frame per entry: only what this host needs
    /// is decompressed and hashed (the manifest and signature, this host's code, the layers the
    /// store does not hold). The code is decompressed straight into its
    /// file in the store and mapped from there, as on the warm path. `None` when the bundle has
    /// no code for this host (the full path may compile its component here).
    fn open_framed(
        &self,
        framed: archive::FramedBundle<'_>,
        size: usize,
        bundle_digest: &BundleKey,
        host: &Target,
        trust: &Trust,
        started: Instant,
    ) -> Result<Option<LoadedBundle>, Error> {
        let signer = trust.check(&framed.manifest_bytes, framed.signature.as_ref())?;
        let manifest = framed.manifest.clone();
        let entry = match select_target(&manifest, host) {
            Ok(entry) => entry,
            Err(_) if self.compiler.is_some() => return Ok(None),
            Err(error) => return Err(error),
        };
        let code = match self.store.stage_blob(&entry.cwasm) {
            // Stored from an earlier bundle; this bundle's copy must be sound all the same (a
            // tampered bundle is refused, even where what would run is intact).
            Ok(Staged::Stored(path, lease)) => {
                framed.check_blob(&entry.cwasm)?;
                Code::Stored(path, lease)
            }
            Ok(Staged::New(mut staged)) => {
                let mut store_error = None;
                let checked = decompress_in_place(&framed, &entry.cwasm, &mut |part| {
                    staged.fill(part).map_err(|e| {
                        let text = e.to_string();
                        store_error = Some(e);
                        capsule_packager::Error::Malformed(text)
                    })
                });
                match store_error {
                    // The store could not take it: as below, the code runs from memory.
                    Some(_) => Code::InMemory(framed.verified_blob(&entry.cwasm)?),
                    None => {
                        checked?;
                        Code::Staged(staged)
                    }
                }
            }
            // A store that cannot be written only costs speed: the code runs from memory.
            Err(_) => Code::InMemory(framed.verified_blob(&entry.cwasm)?),
        };
        // Each layer in manifest order: stored already (leased), or its verified blob.
        let mut sources = Vec::new();
        for layer in &manifest.layers {
            sources.push(
                match layer::lookup_leased(self.store.root(), &layer.digest) {
                    Some((dir, lease)) => LayerSource::Stored(dir, lease),
                    None => LayerSource::Verified(framed.verified_blob(&layer.digest)?),
                },
            );
        }
        self.trace.stage("verify", started.elapsed(), || {
            let new = sources
                .iter()
                .filter(|s| matches!(s, LayerSource::Verified(_)))
                .count();
            format!(
                "read {size} bytes, signature ({}), sha256 of this host's code and of {new} layer(s) not stored yet ({} stored)",
                signer_text(signer),
                sources.len() - new
            )
        });
        let loading = Instant::now();
        let mut leases = Vec::new();
        // Verified for this host: the warm path needs nothing the other targets hold.
        let record = || {
            let _ = self.store.record_bundle(
                bundle_digest,
                &framed.manifest_bytes,
                framed.signature.as_ref(),
            );
        };
        let component = match code {
            Code::Stored(path, lease) => {
                leases.push(lease);
                record();
                // SAFETY: as on the warm path: the file is in the runner-owned store, written
                // read-only after its digest was checked; wasmtime checks version and settings.
                unsafe { Component::deserialize_file(&self.engine, &path) }
            }
            Code::Staged(staged) => {
                let (path, lease) = staged.commit()?;
                leases.push(lease);
                record();
                // SAFETY: the file was just filled from bytes whose sha256 matched the signed
                // manifest, and made read-only in the runner-owned store.
                unsafe { Component::deserialize_file(&self.engine, &path) }
            }
            // SAFETY: `cwasm` is in memory (it cannot change under us), and its sha256 matched
            // the signed manifest just now; wasmtime checks version and settings again here.
            Code::InMemory(cwasm) => unsafe { Component::deserialize(&self.engine, &cwasm) },
        }
        .map_err(|e| Error::Incompatible(format!("{e:#}")))?;
        let mut layers = Vec::new();
        for (layer, source) in manifest.layers.iter().zip(sources) {
            let (dir, lease) = match source {
                LayerSource::Stored(dir, lease) => (dir, lease),
                LayerSource::Verified(blob) => {
                    layer::materialize_leased(self.store.root(), &layer.digest, &blob)?
                }
            };
            layers.push((dir, layer.mount.clone()));
            leases.push(lease);
        }
        let loaded = self.loaded(manifest, signer, component, layers, leases)?;
        self.trace.stage("load", loading.elapsed(), || {
            "mapped this host's .cwasm from the runner store, linked".into()
        });
        Ok(Some(loaded))
    }

    /// The fast path: these exact bundle bytes were fully verified by an earlier `open`.
    fn open_verified_before(
        &self,
        bundle: &BundleKey,
        host: &Target,
        trust: &Trust,
        started: Instant,
    ) -> Result<Option<LoadedBundle>, Error> {
        let Some((manifest_bytes, signature)) = self.store.verified_manifest(bundle) else {
            return Ok(None);
        };
        let signer = trust.check(&manifest_bytes, signature.as_ref())?;
        let manifest = Manifest::from_bytes(&manifest_bytes)?;
        let entry = match select_target(&manifest, host) {
            Ok(entry) => entry,
            // Bundles compiled here go through full verification each time (the slow path).
            Err(_) if self.compiler.is_some() => return Ok(None),
            Err(error) => return Err(error),
        };
        // Leased before use: a store entry collected meanwhile sends us down the full path.
        let Some((cwasm, cwasm_lease)) = self.store.blob(&entry.cwasm) else {
            return Ok(None);
        };
        let mut layers = Vec::new();
        let mut leases = vec![cwasm_lease];
        for layer in &manifest.layers {
            let Some((dir, lease)) = layer::lookup_leased(self.store.root(), &layer.digest) else {
                return Ok(None);
            };
            layers.push((dir, layer.mount.clone()));
            leases.push(lease);
        }
        self.trace.stage("verify", started.elapsed(), || {
            format!(
                "bundle digest seen before, signature ({})",
                signer_text(signer)
            )
        });
        let loading = Instant::now();
        // SAFETY: the file is in the runner-owned store, written read-only after its digest was
        // checked against a manifest; wasmtime checks version and settings again here.
        let component = unsafe { Component::deserialize_file(&self.engine, &cwasm) }
            .map_err(|e| Error::Incompatible(format!("{e:#}")))?;
        let loaded = self.loaded(manifest, signer, component, layers, leases)?;
        self.trace.stage("load", loading.elapsed(), || {
            "mapped the .cwasm from the runner store, linked".into()
        });
        Ok(Some(loaded))
    }

    /// The fallback: compile the verified component for this host, or reuse an earlier result.
    fn compile_locally(
        &self,
        bundle: &capsule_packager::archive::Bundle,
        host: &Target,
        compiler: &dyn LocalCompiler,
        signer: Signer,
    ) -> Result<LoadedBundle, Error> {
        let manifest = bundle.manifest.clone();
        let component = bundle.blob(&manifest.component).ok_or_else(|| {
            Error::Internal(format!("component {} is missing", manifest.component))
        })?;
        let key = local_code_key(&manifest, host);
        let (path, cwasm_lease) = match self.store.blob(&key) {
            Some(stored) => stored,
            None => self.compile_and_store(&key, component, compiler)?,
        };
        let loading = Instant::now();
        // SAFETY: the code was compiled by the local compiler (in this process or an earlier
        // one) from a verified component, and kept in the runner-owned store.
        let compiled = unsafe { Component::deserialize_file(&self.engine, &path) }
            .map_err(|e| Error::Incompatible(format!("{e:#}")))?;
        let mut layers = Vec::new();
        let mut leases = vec![cwasm_lease];
        for layer in &manifest.layers {
            let blob = bundle
                .blob(&layer.digest)
                .ok_or_else(|| Error::Internal(format!("layer {} is missing", layer.digest)))?;
            let (dir, lease) = layer::materialize_leased(self.store.root(), &layer.digest, blob)?;
            layers.push((dir, layer.mount.clone()));
            leases.push(lease);
        }
        let mut loaded = self.loaded(manifest, signer, compiled, layers, leases)?;
        loaded.compiled_locally = true;
        self.trace.stage("load", loading.elapsed(), || {
            "code compiled on this host, from the runner store, linked".into()
        });
        Ok(loaded)
    }

    /// Compiles `component` here and keeps the code in the store under `key`
    /// ([`local_code_key`]).
    pub(crate) fn compile_and_store(
        &self,
        key: &Digest,
        component: &[u8],
        compiler: &dyn LocalCompiler,
    ) -> Result<(PathBuf, Lease), Error> {
        let compiling = Instant::now();
        let cwasm = compiler.precompile(component).map_err(|e| {
            Error::Incompatible(format!(
                "no precompiled code for this host, and compiling it here failed: {e}"
            ))
        })?;
        let stored = self.store.put_blob(key, &cwasm)?;
        self.trace.stage("compile", compiling.elapsed(), || {
            "no code for this host in the bundle: compiled its component here".into()
        });
        Ok(stored)
    }

    pub(crate) fn loaded(
        &self,
        manifest: Manifest,
        signer: Signer,
        component: Component,
        layers: Vec<(PathBuf, String)>,
        leases: Vec<Lease>,
    ) -> Result<LoadedBundle, Error> {
        let pre = instance::prepare(&self.engine, &component).map_err(Error::Internal)?;
        Ok(LoadedBundle {
            core: Arc::new(BundleCore {
                manifest,
                pre,
                layers,
                trace: self.trace.clone(),
                _leases: leases,
                ends_with_process: self.ends_with_process,
            }),
            signer,
            compiled_locally: false,
        })
    }
}

/// Decompresses and checks blob `digest` in a fresh anonymous map as large as its frame, which
/// zstd uses as its window ([`archive::FramedBundle::verify_blob_in_frame`]), handing it to
/// `sink` a part at a time as it is checked (the store's file is written on another thread
/// while decompression goes on: a write into the page cache can stall for tens of milliseconds
/// on a busy disk). Not huge pages: right after a build, with memory fragmented, the kernel's
/// compaction for them made a first exec 2-3 times slower.
fn decompress_in_place(
    framed: &archive::FramedBundle<'_>,
    digest: &capsule_packager::Digest,
    sink: &mut (dyn FnMut(&[u8]) -> Result<(), capsule_packager::Error> + Send),
) -> Result<(), Error> {
    let (data_offset, content) = framed
        .blob_place(digest)
        .ok_or_else(|| Error::Incompatible(format!("blob {digest} is missing")))?;
    let mut window = memmap2::MmapMut::map_anon(content.max(1)).map_err(|e| {
        Error::Internal(format!(
            "cannot map {content} bytes to decompress into: {e}"
        ))
    })?;
    // The part zstd will write (up to the blob's end and one block past it), faulted in with one
    // call rather than one fault per page (7,500 of them for a Python bundle's code).
    #[cfg(target_os = "linux")]
    {
        let blob_end = framed
            .blob_size(digest)
            .and_then(|size| usize::try_from(size).ok())
            .and_then(|size| data_offset.checked_add(size));
        if let Some(blob_end) = blob_end {
            let written = blob_end.saturating_add(ZSTD_BLOCK_MAX).min(content) & !(PAGE - 1);
            let _ = window.advise_range(memmap2::Advice::PopulateWrite, 0, written);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = data_offset;
    framed.verify_blob_in_frame(digest, &mut window, sink)?;
    Ok(())
}

/// The largest block zstd decompresses at once: how far past a blob's end it may write.
#[cfg(target_os = "linux")]
const ZSTD_BLOCK_MAX: usize = 128 << 10;
#[cfg(target_os = "linux")]
const PAGE: usize = 4096;

/// Where a never-seen bundle's layer comes from ([`Runner::open_framed`]).
enum LayerSource {
    /// Unpacked in the store already: its directory, leased.
    Stored(PathBuf, Lease),
    /// Not stored: its blob, checked against the manifest, to unpack.
    Verified(Vec<u8>),
}

/// Where a never-seen bundle's verified code is ([`Runner::open_framed`]).
enum Code {
    /// In the store already, from an earlier verification.
    Stored(PathBuf, Lease),
    /// Written into the store and checked, not yet committed.
    Staged(crate::store::StagedBlob),
    /// Checked in memory (the store could not be written).
    InMemory(Vec<u8>),
}

pub(crate) fn signer_text(signer: Signer) -> String {
    match signer {
        Signer::Trusted(key) => format!("trusted key {}", key.key_id()),
        Signer::Untrusted(key) => format!("untrusted key {}, allowed", key.key_id()),
        Signer::Unsigned => "unsigned, allowed".into(),
    }
}

/// The pool behind [`Runner::pooled`]. Sized for our guests: a guest component has a handful of
/// core instances (the guest, the WASI adapter, shims), one or two memories and a few tables.
fn pool_config(slots: u32) -> PoolingAllocationConfig {
    const CORE_INSTANCES_PER_COMPONENT: u32 = 16;
    const MEMORIES_PER_COMPONENT: u32 = 4;
    const TABLES_PER_COMPONENT: u32 = 8;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        .total_core_instances(slots * CORE_INSTANCES_PER_COMPONENT)
        .total_memories(slots * MEMORIES_PER_COMPONENT)
        .total_tables(slots * TABLES_PER_COMPONENT)
        .total_stacks(slots)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        // The whole 32-bit space: `ram` is enforced by the store's limiter, not by slot size.
        .max_memory_size(4 << 30)
        // CPython's function table has some 10^4 entries.
        .table_elements(1 << 17)
        .max_core_instance_size(1 << 20)
        .max_component_instance_size(1 << 20);
    // Resetting a slot by unmapping its memory makes the next instance page-fault the whole
    // working set back in, and the unmapping itself shoots down TLBs across threads: most of a
    // Python call's cost. With PAGEMAP_SCAN (Linux 6.7+) wasmtime finds the pages an instance
    // dirtied and copies the snapshot back over just those, keeping them resident. Without it,
    // keeping memory resident would mean copying the whole region on every reset: not done.
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(wasmtime::Enabled::Yes)
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(KEEP_RESIDENT_BYTES);
    }
    pool
}

/// Memory of a pool slot that stays mapped between instances (see [`pool_config`]): more than
/// a Python call's working set.
const KEEP_RESIDENT_BYTES: usize = 64 << 20;

/// The `.cwasm` entry this runner's engine can load on `host`.
/// The store key of code compiled here: what went in, the component and the engine settings it is
/// compiled for.
pub(crate) fn local_code_key(manifest: &Manifest, host: &Target) -> Digest {
    Digest::of(format!("{}\n{}", manifest.component, engine::fingerprint(host)).as_bytes())
}

/// This host's target, or why it has none.
pub(crate) fn host_target() -> Result<Target, Error> {
    Target::host().ok_or_else(|| {
        Error::Incompatible(format!(
            "this host's architecture `{}` has no Capsule target",
            std::env::consts::ARCH
        ))
    })
}

pub(crate) fn select_target<'m>(
    manifest: &'m Manifest,
    host: &Target,
) -> Result<&'m TargetEntry, Error> {
    let fingerprint = engine::fingerprint(host);
    manifest
        .targets
        .iter()
        .find(|t| t.triple == host.triple && t.engine_fingerprint == fingerprint && t.wasmtime == engine::WASMTIME_VERSION)
        .ok_or_else(|| {
            let present: Vec<_> = manifest.targets.iter().map(|t| format!("{} (wasmtime {})", t.triple, t.wasmtime)).collect();
            Error::Incompatible(format!(
                "no precompiled code for {} with wasmtime {} and this engine's settings; the bundle has: {}",
                host.triple,
                engine::WASMTIME_VERSION,
                if present.is_empty() { "none".to_string() } else { present.join(", ") }
            ))
        })
}

impl LoadedBundle {
    /// The bundle's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.core.manifest
    }

    /// Who signed the bundle.
    pub fn signer(&self) -> Signer {
        self.signer
    }

    /// Whether the code was compiled on this host because the bundle had none for it.
    pub fn compiled_locally(&self) -> bool {
        self.compiled_locally
    }

    /// Runs a task with retries, in a fresh instance per attempt, under its recorded policy.
    pub fn call(&self, options: &CallOptions) -> Result<Envelope, Error> {
        let mut builder = tokio::runtime::Builder::new_current_thread();
        builder.enable_time();
        // wasi:http's client is the I/O driver's only user (an epoll instance, a waker and
        // tokio's signal pipe, set up and torn down around every exec). A request to a host no
        // policy allows is refused before any I/O, and sub-tasks only narrow hosts: a bundle none
        // of whose tasks may reach a host does without.
        let tasks = &self.core.manifest.tasks;
        let reaches_hosts = tasks.iter().any(|t| !t.policy.allowed_hosts.is_empty());
        if reaches_hosts {
            builder.enable_io();
        }
        let runtime = builder
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
        let envelope = runtime.block_on(self.call_async(options));
        if self.core.ends_with_process {
            // As its instances: shutting it down is the exit's job.
            std::mem::forget(runtime);
        }
        envelope
    }

    /// [`LoadedBundle::call`] on the caller's tokio runtime (which must have time enabled);
    /// a task that computes yields at every fuel yield (about a millisecond), so calls on one
    /// thread interleave.
    pub async fn call_async(&self, options: &CallOptions) -> Result<Envelope, Error> {
        let task_name = options
            .task
            .clone()
            .unwrap_or_else(|| self.core.manifest.entry.clone());
        let task = self.core.manifest.task(&task_name).ok_or_else(|| {
            Error::Usage(format!(
                "the bundle has no task `{task_name}` (tasks: {})",
                self.core.manifest.task_names()
            ))
        })?;
        let root = match &options.files_root {
            Some(root) => root.clone(),
            None => std::env::current_dir()
                .map_err(|e| Error::Internal(format!("cannot read the current directory: {e}")))?,
        };
        let policy = options.narrow.apply(&task_name, &task.policy)?;
        let dirs = granted_dirs(&root, &policy, &options.mounts)?;
        let log = CallLog::default();
        let started = Instant::now();
        let call = TaskCall {
            task: &task_name,
            policy: &policy,
            args_json: &options.args_json,
            dirs: &dirs,
            depth: 0,
            caller_disk: &DiskBudget::default(),
        };
        let run = run_with_retries(&self.core, call, &log, None).await;
        let (subtasks, host_requests) = log.take();
        let execution = Execution {
            task_name,
            duration_ms: (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
            attempts: run.attempts,
            fuel_consumed: run.fuel_consumed,
            peak_memory_bytes: run.peak_memory_bytes,
            host_requests,
            subtasks,
        };
        Ok(envelope(run.result, execution, run.output))
    }
}

/// A task run to its end, retries included.
pub(crate) struct TaskRun {
    pub result: Result<String, ErrorInfo>,
    pub attempts: u32,
    /// Fuel of the last attempt.
    pub fuel_consumed: u64,
    /// Fuel of all attempts.
    pub fuel_total: u64,
    pub peak_memory_bytes: u64,
    /// Output of the last attempt (for a sub-task: of all, appended to its caller's).
    pub output: GuestOutput,
}

/// One task to run: which, under what policy, with what arguments and directories.
pub(crate) struct TaskCall<'a> {
    pub task: &'a str,
    pub policy: &'a Policy,
    pub args_json: &'a str,
    pub dirs: &'a [GrantedDir],
    /// 0 for the task the runner was asked to run, 1 for its sub-tasks...
    pub depth: u32,
    /// The caller's `disk` budget (none at the top).
    pub caller_disk: &'a DiskBudget,
}

/// Runs `call`, retrying as its policy allows, each attempt in a fresh instance. `inherited` is
/// the caller's output for a sub-task; a top-level call gets fresh buffers per attempt.
pub(crate) async fn run_with_retries(
    core: &Arc<BundleCore>,
    call: TaskCall<'_>,
    log: &CallLog,
    inherited: Option<Outputs>,
) -> TaskRun {
    let TaskCall {
        task,
        policy,
        args_json,
        dirs,
        depth,
        caller_disk,
    } = call;
    // One budget for every attempt: what a failed attempt wrote is still there.
    let disk = DiskBudget::new(policy.disk_bytes, caller_disk);
    let env: Vec<(String, String)> = policy
        .env_variables
        .iter()
        .filter_map(|name| std::env::var(name).ok().map(|value| (name.clone(), value)))
        .collect();
    let environment = Environment {
        layers: &core.layers,
        env: &env,
        dirs,
    };
    let mut attempts = 0;
    let mut fuel_total = 0u64;
    loop {
        attempts += 1;
        let scope = SubTaskScope {
            core: core.clone(),
            task: task.to_string(),
            policy: policy.clone(),
            dirs: dirs.to_vec(),
            deadline: Instant::now() + policy.timeout(),
            depth,
            log: log.clone(),
            disk: disk.clone(),
        };
        let output = inherited.clone().unwrap_or_else(Outputs::new);
        let outcome = instance::attempt(
            &core.pre,
            task,
            policy,
            args_json,
            &environment,
            scope,
            output,
        )
        .await;
        fuel_total = fuel_total.saturating_add(outcome.fuel_consumed);
        let retry = match &outcome.result {
            Err(error) => error.error_type.is_retryable() && attempts <= policy.max_retries,
            Ok(_) => false,
        };
        if let Err(error) = &outcome.result {
            core.trace.line(|| {
                format!(
                    "{}attempt {attempts} of `{task}` failed: {}{}",
                    indent(depth),
                    error.error_type.as_str(),
                    if retry { "; retrying" } else { "" }
                )
            });
        }
        if !retry {
            return TaskRun {
                result: outcome.result,
                attempts,
                fuel_consumed: outcome.fuel_consumed,
                fuel_total,
                peak_memory_bytes: outcome.peak_memory_bytes,
                output: outcome.output,
            };
        }
    }
}

/// Trace lines of sub-tasks are indented by their depth.
pub(crate) fn indent(depth: u32) -> String {
    "  ".repeat(depth as usize)
}

/// Resolves the policy's `allowed_files` under `root`; a declared directory that is missing is
/// an error (a silently missing grant would only surface as a confusing failure in the task).
fn granted_dirs(root: &Path, policy: &Policy, mounts: &[Mount]) -> Result<Vec<GrantedDir>, Error> {
    let declared: Vec<&str> = policy
        .allowed_files
        .iter()
        .map(|g| g.path.as_str())
        .collect();
    for mount in mounts {
        if !declared.contains(&mount.guest_dir()) {
            return Err(Error::Usage(format!(
                "`--mount` binds `/{}`, which the task does not declare (declared: {})",
                mount.guest_dir(),
                if declared.is_empty() {
                    "none".to_string()
                } else {
                    declared.join(", ")
                }
            )));
        }
    }
    policy
        .allowed_files
        .iter()
        .map(|grant| {
            let mount = mounts.iter().find(|m| m.guest_dir() == grant.path);
            let writable = grant.mode == FileMode::Rw;
            if let Some(Mount { read_only: Some(false), .. }) = mount
                && !writable
            {
                return Err(Error::Usage(format!(
                    "`--mount` asks read-write for `/{}`, which the task declares read-only; a mount can only narrow",
                    grant.path
                )));
            }
            let host = mount.map_or_else(|| root.join(&grant.path), |m| m.host.clone());
            if !host.is_dir() {
                return Err(Error::Usage(format!(
                    "the task's allowed directory `{}` does not exist at `{}`",
                    grant.path,
                    host.display()
                )));
            }
            Ok(GrantedDir {
                host,
                guest: format!("/{}", grant.path),
                writable: writable && mount.and_then(|m| m.read_only) != Some(true),
            })
        })
        .collect()
}

pub(crate) fn envelope(
    result: Result<String, ErrorInfo>,
    execution: Execution,
    output: GuestOutput,
) -> Envelope {
    let failed = |error| Envelope {
        success: false,
        result: None,
        error: Some(error),
        execution: execution.clone(),
        output: output.clone(),
    };
    match result {
        Ok(json) => match RawValue::from_string(json) {
            Ok(value) => Envelope {
                success: true,
                result: Some(value),
                error: None,
                execution: execution.clone(),
                output: output.clone(),
            },
            Err(e) => failed(ErrorInfo {
                error_type: ErrorType::Internal,
                message: format!("the guest returned a result that is not valid JSON: {e}"),
                traceback: None,
            }),
        },
        Err(error) => failed(error),
    }
}
