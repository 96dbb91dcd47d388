//! The full `capsule` can compile a bundle's portable component when the bundle has no code for
//! this host; the minimal `capsule-runner` cannot (it has no compiler) and refuses such bundles.

use capsule_runner::LocalCompiler;
use std::path::PathBuf;
use std::sync::Arc;

/// Cranelift, sharing the compiler's incremental cache.
struct HostCompiler {
    cache: PathBuf,
}

impl LocalCompiler for HostCompiler {
    fn precompile(&self, component: &[u8]) -> Result<Vec<u8>, String> {
        capsule_compiler::precompile::precompile_for_host(component, &self.cache)
            .map_err(|e| e.to_string())
    }
}

/// The compiler `capsule exec` and `capsule run` fall back on.
pub fn host_compiler() -> anyhow::Result<Arc<dyn LocalCompiler>> {
    let cache = capsule_runner::cli::args::cache_dir()?
        .join("compiler")
        .join("incremental");
    Ok(Arc::new(HostCompiler { cache }))
}
