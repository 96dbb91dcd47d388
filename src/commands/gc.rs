use anyhow::Context;
use capsule_runner::cli::args::cache_dir;
use capsule_runner::gc;
use serde_json::Value;
use std::time::Duration;

/// Remove the least recently used entries of Capsule's caches (the runner store, the `run`
/// bundle cache, the compiler caches) until they fit a size.
///
/// What a running capsule process uses is never removed, nor anything that changed within
/// `--min-age`. Guest images and the CPython build tree are never touched. The caches are also
/// bounded automatically: past `$CAPSULE_CACHE_MAX_SIZE` (default 2 GiB), whatever writes to them
/// evicts the oldest entries.
#[derive(clap::Parser)]
#[command(after_help = GC_HELP)]
pub struct GcCommand {
    /// Shrink the caches to at most this size (`500MB`, `1GiB`, `0` for everything not in use);
    /// default `$CAPSULE_CACHE_MAX_SIZE`, else 2 GiB.
    #[arg(long, value_name = "SIZE")]
    max_size: Option<String>,

    /// Spare entries written or used within this long (`0s`, `30s`, `10m`).
    #[arg(long, value_name = "DURATION", default_value = "1m")]
    min_age: String,
}

const GC_HELP: &str = "Examples:\n  capsule gc\n  capsule gc --max-size 500MB\n  capsule gc --max-size 0 --min-age 0s\n\n\
Exit status:\n  0  done (entries in use are kept, and counted)\n  2  usage error, or the cache could not be read";

impl GcCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let size_text = self
            .max_size
            .or_else(|| std::env::var("CAPSULE_CACHE_MAX_SIZE").ok())
            .filter(|t| !t.trim().is_empty());
        let max_size = match size_text.as_deref() {
            None => gc::DEFAULT_MAX_SIZE,
            Some(text) => {
                gc::parse_size(text).map_err(|e| anyhow::anyhow!("invalid `--max-size`: {e}"))?
            }
        };
        let min_age = match self.min_age.trim() {
            "0" | "0s" | "0ms" => Duration::ZERO,
            text => capsule_packager::policy::parse_timeout(&Value::String(text.into()))
                .map_err(|e| anyhow::anyhow!("invalid `--min-age`: {e}"))?,
        };
        let cache = cache_dir()?;
        let report = gc::collect(&cache, max_size, min_age)
            .with_context(|| format!("cannot collect the caches in `{}`", cache.display()))?;
        let mb = |bytes: u64| bytes as f64 / 1e6;
        println!(
            "removed {} entries ({:.1} MB); caches now hold {:.1} MB (limit {:.1} MB); kept {} in use by running processes and {} changed within {}",
            report.removed,
            mb(report.before - report.after),
            mb(report.after),
            mb(max_size),
            report.kept_in_use,
            report.kept_recent,
            self.min_age.trim()
        );
        Ok(0)
    }
}
