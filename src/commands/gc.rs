use anyhow::Context;
use capsule_runner::cli::args::cache_dir;
use capsule_runner::gc;

/// Remove the least recently used entries of Capsule's caches (the runner store, the `run`
/// bundle cache, the compiler's caches) until they fit a size.
///
/// Nothing a running capsule process uses is removed: a bundle being executed keeps its code and
/// layers, and while any process compiles, the compiler's caches are left alone. Guest images,
/// CPython build trees and `run-code` interpreters are never touched. The caches are also bounded
/// automatically: past `$CAPSULE_CACHE_MAX_SIZE` (default 2 GiB), `build`, `run` and `exec` evict
/// the oldest entries.
#[derive(clap::Parser)]
#[command(after_help = GC_HELP)]
pub struct GcCommand {
    /// Shrink the caches to at most this size (`500MB`, `1GiB`, `0` for everything not in use);
    /// default `$CAPSULE_CACHE_MAX_SIZE`, else 2 GiB.
    #[arg(long, value_name = "SIZE")]
    max_size: Option<String>,
}

const GC_HELP: &str = "Examples:\n  capsule gc\n  capsule gc --max-size 500MB\n  capsule gc --max-size 0\n\n\
Exit status:\n  0  done (entries in use are kept, and counted)\n  2  bad size, the cache could not be read, or another gc is running";

impl GcCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let max_size = match &self.max_size {
            Some(text) => gc::parse_size(text).context("invalid `--max-size`")?,
            None => gc::configured_max_size()?.unwrap_or(gc::DEFAULT_MAX_SIZE),
        };
        let cache = cache_dir()?;
        let report = gc::collect(&cache, max_size)
            .with_context(|| format!("cannot collect the caches in `{}`", cache.display()))?;
        let mb = |bytes: u64| bytes as f64 / 1e6;
        println!(
            "removed {} entries ({:.1} MB); the caches hold {:.1} MB (limit {:.1} MB); kept {} in use by running processes",
            report.removed,
            mb(report.before - report.after),
            mb(report.after),
            mb(max_size),
            report.kept_in_use,
        );
        if report.compiler_in_use {
            println!("the compiler's caches were left alone: a build is running");
        }
        Ok(0)
    }
}
