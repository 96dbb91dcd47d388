//! The worker's loaded bundles: task bundles by file identity or registry digest, and the
//! built-in interpreters.

use crate::cli::exec::warn_if_unsigned;
use crate::registry::Reference;
use crate::{Language, LoadedBundle, Runner};
use capsule_packager::Digest;
use capsule_packager::sign::Trust;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// Bundles kept loaded at once; the least recently opened one is dropped past this.
const MAX_CACHED_BUNDLES: usize = 64;

/// Where the worker finds the built-in interpreters' bundles. The CLI builds them with the
/// compiler, which the runner does not depend on.
pub trait InterpreterBundles: Send + Sync {
    /// The bundle of `language`'s interpreter, built first if need be (seconds, once per machine).
    fn bundle(&self, language: Language) -> Result<PathBuf, String>;
    /// The bundle if it exists already (nothing is built).
    fn existing(&self, language: Language) -> Option<PathBuf>;
}

/// The identity of a bundle file: a rewritten or replaced file is a new bundle, verified again.
#[derive(Clone, PartialEq, Eq, Hash)]
struct FileIdentity {
    path: PathBuf,
    device: u64,
    inode: u64,
    size: u64,
    modified_ns: i128,
    changed_ns: i128,
}

impl FileIdentity {
    fn of(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path)?;
        Ok(FileIdentity {
            path: path.to_path_buf(),
            device: meta.dev(),
            inode: meta.ino(),
            size: meta.size(),
            modified_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            changed_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        })
    }
}

type CachedBundle = Arc<OnceCell<Arc<LoadedBundle>>>;

/// Verified, linked bundles by file identity; each is opened once even when many requests for it
/// arrive together. The interpreters are opened once each, on first use or by [`Self::preload`].
pub struct BundleCache {
    runner: Runner,
    trust: Trust,
    entries: Mutex<Entries>,
    interpreters: Option<Arc<dyn InterpreterBundles>>,
    builtin: [OnceCell<Arc<LoadedBundle>>; 2],
}

/// What a cached bundle is known by: a file's identity, or a registry manifest's digest.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    File(FileIdentity),
    Oci(Digest),
}

/// The cache's table, with a use counter for evicting the least recently used bundle.
#[derive(Default)]
struct Entries {
    clock: u64,
    by_key: HashMap<Key, (u64, CachedBundle)>,
}

impl BundleCache {
    pub fn new(
        runner: Runner,
        trust: Trust,
        interpreters: Option<Arc<dyn InterpreterBundles>>,
    ) -> Self {
        BundleCache {
            runner,
            trust,
            entries: Mutex::default(),
            interpreters,
            builtin: [OnceCell::new(), OnceCell::new()],
        }
    }

    /// The bundle a task call names: a file, or an `oci://` reference (see
    /// [`Self::get_reference`]), verified against the worker's trust.
    pub async fn get(&self, path: &Path) -> Result<Arc<LoadedBundle>, crate::Error> {
        let text = path.to_string_lossy();
        if Reference::is_reference(&text) {
            return self.get_reference(&text).await;
        }
        let identity = FileIdentity::of(path).map_err(|source| {
            crate::Error::Bundle(capsule_packager::Error::Io {
                action: "open",
                path: path.into(),
                source,
            })
        })?;
        let cell = self.cell(Key::File(identity));
        let loaded = cell
            .get_or_try_init(|| async {
                // Verification is CPU work: let the runtime move other tasks off this thread.
                let loaded = tokio::task::block_in_place(|| self.runner.open(path, &self.trust))?;
                warn_if_unsigned(path, loaded.signer());
                Ok::<_, crate::Error>(Arc::new(loaded))
            })
            .await?;
        Ok(loaded.clone())
    }

    /// The bundle at `oci://HOST/REPO[:TAG][@sha256:...]`: a tag is resolved by the registry at
    /// every call (one manifest request), and each manifest digest is fetched, verified and
    /// loaded once; a pinned reference that is loaded already needs no network at all.
    pub async fn get_reference(&self, text: &str) -> Result<Arc<LoadedBundle>, crate::Error> {
        let reference = Reference::parse(text)?;
        let pinned = self.runner.resolve_reference(&reference).await?;
        let digest = pinned.digest().ok_or_else(|| {
            crate::Error::Internal(format!("{pinned} was not resolved to a digest"))
        })?;
        let cell = self.cell(Key::Oci(digest));
        let loaded = cell
            .get_or_try_init(|| async {
                let loaded = self.runner.open_reference(&pinned, &self.trust).await?;
                warn_if_unsigned(Path::new(text), loaded.signer());
                Ok::<_, crate::Error>(Arc::new(loaded))
            })
            .await?;
        Ok(loaded.clone())
    }

    /// The cache slot for `key`, made the most recently used; the least recently used entry is
    /// dropped when the cache is full.
    fn cell(&self, key: Key) -> CachedBundle {
        let mut guard = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        guard.clock += 1;
        let now = guard.clock;
        let entries = &mut guard.by_key;
        if entries.len() >= MAX_CACHED_BUNDLES
            && !entries.contains_key(&key)
            && let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(k, _)| k.clone())
        {
            entries.remove(&oldest);
        }
        let entry = entries
            .entry(key)
            .or_insert_with(|| (now, Arc::new(OnceCell::new())));
        entry.0 = now;
        entry.1.clone()
    }

    /// `language`'s interpreter, loaded. Built by this Capsule (or shipped with it), it is trusted
    /// without a signature; its blobs are still verified against its manifest.
    pub async fn interpreter(&self, language: Language) -> Result<Arc<LoadedBundle>, String> {
        self.load_interpreter(language, true).await
    }

    async fn load_interpreter(
        &self,
        language: Language,
        build: bool,
    ) -> Result<Arc<LoadedBundle>, String> {
        let source = self
            .interpreters
            .as_ref()
            .ok_or_else(|| "this worker has no code interpreters".to_string())?;
        let slot = &self.builtin[language as usize];
        let loaded = slot
            .get_or_try_init(|| async {
                tokio::task::block_in_place(|| {
                    let path = if build {
                        source.bundle(language)?
                    } else {
                        source
                            .existing(language)
                            .ok_or_else(|| format!("the {language} interpreter is not built yet"))?
                    };
                    let loaded = self
                        .runner
                        .open(&path, &Trust::new(Vec::new(), true))
                        .map_err(|e| format!("cannot load the {language} interpreter: {e}"))?;
                    Ok::<_, String>(Arc::new(loaded))
                })
            })
            .await?;
        Ok(loaded.clone())
    }

    /// Loads the interpreters that are built already, so that the first `run_code` does not
    /// wait for it.
    pub async fn preload(&self) {
        for language in Language::ALL {
            let _ = self.load_interpreter(language, false).await;
        }
    }
}
