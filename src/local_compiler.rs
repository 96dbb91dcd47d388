//! The full `capsule` can compile a bundle's portable component when the bundle has no code for
//! this host; the minimal `capsule-runner` cannot (it has no compiler) and refuses such bundles.

use capsule_runner::LocalCompiler;
use std::path::PathBuf;
use std::sync::Arc;

/// Cranelift, sharing the compiler's incremental cache.
struct HostCompiler {
    /// The compiler's cache directory (`<cache>/compiler`).
    dir: PathBuf,
}

impl LocalCompiler for HostCompiler {
    fn precompile(&self, component: &[u8]) -> Result<Vec<u8>, String> {
        // Leased while compiling, as every build does: `capsule gc` waits for us.
        let lock = self.dir.join(capsule_packager::lease::AREA_LOCK);
        let _lease = capsule_packager::lease::Lease::area(&lock)
            .map_err(|e| format!("cannot lock the compiler cache `{}`: {e}", lock.display()))?;
        capsule_compiler::precompile::precompile_for_host(component, &self.dir.join("incremental"))
            .map_err(|e| e.to_string())
    }
}

/// The compiler `capsule exec` and `capsule run` fall back on.
pub fn host_compiler() -> anyhow::Result<Arc<dyn LocalCompiler>> {
    let dir = capsule_runner::cli::args::cache_dir()?.join(capsule_runner::gc::COMPILER_DIR);
    Ok(Arc::new(HostCompiler { dir }))
}

/// `capsule-full precompile-for-host`: the component on stdin, its `.cwasm` for this host on stdout.
pub fn precompile_stdin_to_stdout() -> anyhow::Result<u8> {
    use anyhow::Context;
    use std::io::{Read, Write};
    let mut component = Vec::new();
    std::io::stdin()
        .read_to_end(&mut component)
        .context("cannot read the component from stdin")?;
    let cwasm = host_compiler()?
        .precompile(&component)
        .map_err(anyhow::Error::msg)?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&cwasm)
        .and_then(|()| stdout.flush())
        .context("cannot write the compiled code to stdout")?;
    Ok(0)
}
