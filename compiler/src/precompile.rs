//! Component → `.cwasm` for one target, with exactly the runner's engine settings
//! ([`capsule_packager::engine::config`]) and the target's portable CPU baseline.
//!
//! Cranelift's incremental compilation cache is kept on disk and shared by every build: the
//! interpreter's functions are the same in every task of a guest, so after the first build only
//! the functions that changed (the snapshot's data does not count) are compiled again.

use crate::Error;
use capsule_packager::engine::{self, Target};
use sha2::{Digest as _, Sha256};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::{CacheStore, Config, Engine};

/// A [`CacheStore`] of one file per entry, named by the sha256 of its key.
#[derive(Debug)]
struct DirCacheStore {
    dir: PathBuf,
}

impl DirCacheStore {
    fn path(&self, key: &[u8]) -> PathBuf {
        self.dir.join(hex::encode(Sha256::digest(key)))
    }
}

impl CacheStore for DirCacheStore {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        std::fs::read(self.path(key)).ok().map(Cow::Owned)
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        // Write then rename, so a concurrent reader never sees half an entry.
        let path = self.path(key);
        let staging = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&staging, value)
            .and_then(|()| std::fs::rename(&staging, &path))
            .is_ok()
    }
}

/// Turns `config` into one that reuses compiled functions from `dir`.
pub fn enable_incremental_cache(config: &mut Config, dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::Io(
            format!("cannot create the compilation cache `{}`", dir.display()),
            e,
        )
    })?;
    config
        .enable_incremental_compilation(Arc::new(DirCacheStore {
            dir: dir.to_path_buf(),
        }))
        .map_err(|e| Error::toolchain("enabling the incremental compilation cache", e))?;
    Ok(())
}

/// Precompiles components, sharing one incremental cache.
#[derive(Debug)]
pub struct Precompiler {
    cache_dir: PathBuf,
}

impl Precompiler {
    /// A precompiler keeping its incremental cache in `cache_dir`.
    pub fn new(cache_dir: &Path) -> Self {
        Precompiler {
            cache_dir: cache_dir.to_path_buf(),
        }
    }

    /// The engine configuration for `target`: the runner's settings plus the target and baseline.
    pub fn config(&self, target: &Target) -> Result<Config, Error> {
        let mut config = engine::config();
        config
            .target(target.triple)
            .map_err(|e| Error::toolchain("selecting the compilation target", e))?;
        for flag in target.cranelift_flags {
            // SAFETY: these flags only enable CPU features of the declared baseline; the runner's
            // engine refuses code that needs a feature its host lacks.
            unsafe {
                config.cranelift_flag_enable(flag);
            }
        }
        enable_incremental_cache(&mut config, &self.cache_dir)?;
        Ok(config)
    }

    /// Compiles `component` for `target`.
    pub fn precompile(&self, component: &[u8], target: &Target) -> Result<Vec<u8>, Error> {
        let engine = Engine::new(&self.config(target)?)
            .map_err(|e| Error::toolchain("creating the compilation engine", e))?;
        engine
            .precompile_component(component)
            .map_err(|e| Error::toolchain("precompiling the component", e))
    }
}

/// Compiles `component` for this very host with the runner's engine settings (native CPU
/// features, not a portable baseline): for bundles that carry no code for this host.
pub fn precompile_for_host(component: &[u8], cache_dir: &Path) -> Result<Vec<u8>, Error> {
    let mut config = engine::config();
    enable_incremental_cache(&mut config, cache_dir)?;
    Engine::new(&config)
        .map_err(|e| Error::toolchain("creating the compilation engine", e))?
        .precompile_component(component)
        .map_err(|e| Error::toolchain("precompiling the component", e))
}
