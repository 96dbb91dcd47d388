//! Bounding Capsule's caches: the runner store, the `run` bundle cache and the compiler caches.
//!
//! [`collect`] removes least recently used entries (files or directories directly under an
//! area) until the areas fit a size. What keeps an entry in use safe is a lock, never a
//! timestamp (see [`capsule_packager::lease`]):
//! - runner store entries and cached `run` bundles are leased one by one by the processes using
//!   them; the collector takes an entry's exclusive lock, renames it out of the way, then deletes
//!   it, and skips what it cannot lock;
//! - the compiler's caches are leased as a whole by every process that compiles, for as long as its
//!   compiler exists; the collector touches them only while it holds their exclusive lock, so it
//!   never runs beside a build.
//!
//! One collector runs at a time (`gc.lock`). Guest images, CPython build trees, downloaded sources
//! and `run-code` interpreters are never touched. A removed store entry only costs speed: the next
//! `exec` verifies the bundle in full again.

use capsule_packager::lease::{self, Exclusive};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Areas whose entries are leased one by one, relative to the cache directory.
fn leased_areas() -> Vec<String> {
    let mut areas: Vec<String> = crate::store::AREAS
        .iter()
        .map(|area| format!("{STORE_DIR}/{area}"))
        .collect();
    areas.push(BUNDLES_DIR.into());
    areas
}

/// The runner store, relative to the cache directory.
pub const STORE_DIR: &str = "store";

/// Bundles `capsule run` built, relative to the cache directory.
pub const BUNDLES_DIR: &str = "bundles";

/// The compiler's cache directory, relative to the cache directory; its lock file is
/// `compiler/.lock` ([`compiler_lock`]).
pub const COMPILER_DIR: &str = "compiler";

/// Areas of the compiler's cache (relative to [`COMPILER_DIR`]), all under its one lock.
const COMPILER_AREAS: &[&str] = &["incremental", "modules", "store/layers-v2", "python-deps"];

/// Size past which caches are evicted automatically (`$CAPSULE_CACHE_MAX_SIZE` overrides it):
/// room for a few dozen Python bundles with their layers and the compiler's caches.
pub const DEFAULT_MAX_SIZE: u64 = 2 << 30;

/// How often [`auto`] measures the caches at most: measuring stats every cached file (the
/// compiler's incremental cache alone holds 10^4–10^5), 0.1–0.5 s.
pub const AUTO_INTERVAL: Duration = Duration::from_secs(3600);

/// The collector's own lock: one collector at a time.
const GC_LOCK: &str = "gc.lock";

/// When [`auto`] last measured, and against which limit.
const STAMP: &str = "gc.stamp";

/// Prefix of entries renamed out of the way before they are deleted.
const TRASH: &str = ".trash-";

/// Why collecting failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another collector is running on this cache.
    #[error("another `capsule gc` is collecting `{0}`")]
    Busy(PathBuf),
    /// A cache directory could not be read or locked.
    #[error("cannot {action} `{path}`")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An environment variable holds a bad value.
    #[error("invalid `{name}`")]
    Env {
        /// The variable.
        name: &'static str,
        /// What is wrong with its value.
        #[source]
        source: Box<Error>,
    },
    /// A size that does not parse.
    #[error(
        "invalid size `{found}`: expected a byte count or a number with `KB`, `MB`, `GB`, `KiB`, `MiB` or `GiB`, such as `500MB` or `2GiB`"
    )]
    Size {
        /// The text given.
        found: String,
    },
}

/// What [`collect`] did.
#[derive(Debug, Default)]
pub struct Report {
    /// Bytes in the areas before.
    pub before: u64,
    /// Bytes in the areas after.
    pub after: u64,
    /// Entries removed.
    pub removed: usize,
    /// Entries kept because a running process leases them.
    pub kept_in_use: usize,
    /// Whether the compiler's caches were left alone because a process was compiling.
    pub compiler_in_use: bool,
}

/// One removable entry.
struct Entry {
    path: PathBuf,
    bytes: u64,
    last_use: SystemTime,
    /// Leased one by one (else covered by the compiler's area lock, held by the collector).
    leased: bool,
}

/// The lock file every compiling process holds shared ([`capsule_packager::lease::Lease::area`]).
pub fn compiler_lock(cache: &Path) -> PathBuf {
    cache.join(COMPILER_DIR).join(lease::AREA_LOCK)
}

/// Removes least recently used entries of `cache`'s areas until they hold at most `max_size`
/// bytes; never an entry a running process uses.
pub fn collect(cache: &Path, max_size: u64) -> Result<Report, Error> {
    let lock = cache.join(GC_LOCK);
    let _collector = Exclusive::area(&lock)
        .map_err(|source| Error::Io {
            action: "lock",
            path: lock.clone(),
            source,
        })?
        .ok_or_else(|| Error::Busy(cache.to_path_buf()))?;
    collect_locked(cache, max_size)
}

fn collect_locked(cache: &Path, max_size: u64) -> Result<Report, Error> {
    let compiler_lock = compiler_lock(cache);
    // Held until we are done: no process compiles meanwhile.
    let compiler = if cache.join(COMPILER_DIR).is_dir() {
        Exclusive::area(&compiler_lock).map_err(|source| Error::Io {
            action: "lock",
            path: compiler_lock.clone(),
            source,
        })?
    } else {
        None
    };
    let mut report = Report {
        compiler_in_use: compiler.is_none() && cache.join(COMPILER_DIR).is_dir(),
        ..Report::default()
    };
    let mut entries = Vec::new();
    let mut pinned = 0u64;
    for area in leased_areas() {
        list(&cache.join(area), true, &mut entries)?;
    }
    for area in COMPILER_AREAS {
        let dir = cache.join(COMPILER_DIR).join(area);
        if compiler.is_some() {
            list(&dir, false, &mut entries)?;
        } else {
            pinned += size_of(&dir);
        }
    }
    report.before = pinned + entries.iter().map(|e| e.bytes).sum::<u64>();
    report.after = report.before;
    entries.sort_by_key(|e| e.last_use);
    for entry in entries {
        if report.after <= max_size {
            break;
        }
        let lock = if entry.leased {
            match Exclusive::entry(&entry.path) {
                Some(lock) => Some(lock),
                None => {
                    report.kept_in_use += 1;
                    continue;
                }
            }
        } else {
            None
        };
        if remove(&entry.path, lock) {
            report.after = report.after.saturating_sub(entry.bytes);
            report.removed += 1;
        }
    }
    Ok(report)
}

/// Adds the entries of `area` to `entries`; clears trash a collector left behind.
fn list(area: &Path, leased: bool, entries: &mut Vec<Entry>) -> Result<(), Error> {
    let listing = match fs::read_dir(area) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Io {
                action: "list",
                path: area.to_path_buf(),
                source,
            });
        }
    };
    for item in listing.flatten() {
        let name = item.file_name();
        let name = name.to_string_lossy();
        let path = item.path();
        if name.starts_with(TRASH) {
            // Renamed by a collector that died before deleting it; nobody can lease this name.
            delete_tree(&path);
            continue;
        }
        // Staging files, lock files and use markers.
        if name.starts_with('.') {
            continue;
        }
        let modified = fs::symlink_metadata(&path).and_then(|m| m.modified()).ok();
        entries.push(Entry {
            bytes: size_of(&path),
            // The use marker when there is one; else the entry's own time, which may be the epoch
            // (unpacked layers): it only orders eviction, it never makes removing safe.
            last_use: lease::last_use(&path)
                .or(modified)
                .unwrap_or(SystemTime::UNIX_EPOCH),
            path,
            leased,
        });
    }
    Ok(())
}

/// Removes an entry: renamed out of the way while its lock is held (a process that opened it just
/// before then sees that its name is gone), then deleted. True if it is gone.
fn remove(path: &Path, lock: Option<Exclusive>) -> bool {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return false;
    };
    let trash = dir.join(format!(
        "{TRASH}{}-{}",
        std::process::id(),
        name.to_string_lossy()
    ));
    if fs::rename(path, &trash).is_err() {
        return false;
    }
    drop(lock);
    if let Some(marker) = lease::marker(path) {
        let _ = fs::remove_file(marker);
    }
    delete_tree(&trash);
    true
}

/// Deletes a file or a tree of read-only files (the store makes its entries read-only).
fn delete_tree(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if !meta.is_dir() {
        let _ = fs::remove_file(path);
        return;
    }
    make_writable(path);
    let _ = fs::remove_dir_all(path);
}

fn make_writable(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        if let Ok(items) = fs::read_dir(dir) {
            for item in items.flatten() {
                if item.file_type().is_ok_and(|t| t.is_dir()) {
                    make_writable(&item.path());
                }
            }
        }
    }
}

fn size_of(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path)
        .map(|items| items.flatten().map(|item| size_of(&item.path())).sum())
        .unwrap_or(0)
}

/// The limit automatic eviction applies: `$CAPSULE_CACHE_MAX_SIZE` (`off` disables it), else
/// [`DEFAULT_MAX_SIZE`].
pub fn configured_max_size() -> Result<Option<u64>, Error> {
    match std::env::var("CAPSULE_CACHE_MAX_SIZE") {
        Ok(text) if text.trim() == "off" => Ok(None),
        Ok(text) if !text.trim().is_empty() => {
            parse_size(&text).map(Some).map_err(|source| Error::Env {
                name: "CAPSULE_CACHE_MAX_SIZE",
                source: Box::new(source),
            })
        }
        _ => Ok(Some(DEFAULT_MAX_SIZE)),
    }
}

/// Automatic eviction, called after a command wrote to the caches: [`collect`] down to
/// [`configured_max_size`] if the caches hold more. The caches are measured at most once per
/// [`AUTO_INTERVAL`] (and again whenever the limit changes); nothing happens while another
/// collector runs. Failures only cost disk space, and are returned for the caller to mention.
pub fn auto(cache: &Path) -> Result<Option<Report>, Error> {
    let Some(max_size) = configured_max_size()? else {
        return Ok(None);
    };
    let stamp = cache.join(STAMP);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    if let Ok(text) = fs::read_to_string(&stamp)
        && let Some((at, limit)) = text.trim().split_once(' ')
        && limit.parse() == Ok(max_size)
        && at
            .parse::<u64>()
            .is_ok_and(|at| now.saturating_sub(at) < AUTO_INTERVAL.as_secs())
    {
        return Ok(None);
    }
    if !cache.is_dir() {
        return Ok(None);
    }
    let lock = cache.join(GC_LOCK);
    let io = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    };
    let Some(_collector) = Exclusive::area(&lock).map_err(io("lock", &lock))? else {
        return Ok(None);
    };
    fs::write(&stamp, format!("{now} {max_size}\n")).map_err(io("write", &stamp))?;
    collect_locked(cache, max_size).map(Some)
}

/// A cache size: a byte count, or a number with `KB`, `MB`, `GB`, `TB` (powers of 1000) or
/// `KiB`, `MiB`, `GiB` (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, Error> {
    let bad = || Error::Size {
        found: text.to_string(),
    };
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let bytes = value * scale;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use capsule_packager::lease::Lease;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("0").ok(), Some(0));
        assert_eq!(parse_size("1MB").ok(), Some(1_000_000));
        assert_eq!(parse_size("2GiB").ok(), Some(2 << 30));
        assert_eq!(parse_size(" 500 kb ").ok(), Some(500_000));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("-1MB").is_err());
    }

    fn put(path: &Path, bytes: usize) {
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, vec![0u8; bytes]).expect("write");
    }

    #[test]
    fn leased_entries_and_a_leased_compiler_survive_and_the_rest_goes() {
        let cache = tempfile::tempdir().expect("tempdir");
        let cache = cache.path();
        let blob = |name: &str| cache.join("store/blobs").join(name);
        for name in ["a", "b", "c"] {
            put(&blob(name), 1000);
        }
        let layer = cache.join("store/layers-v2/l1");
        put(&layer.join("lib/os.py"), 1000);
        put(&cache.join("compiler/incremental/x"), 1000);
        let held = Lease::entry(&blob("b")).expect("lease b");
        let held_layer = Lease::entry(&layer).expect("lease layer");
        let building = Lease::area(&compiler_lock(cache)).expect("lease compiler");

        let report = collect(cache, 0).expect("collect");
        assert!(blob("b").is_file() && layer.join("lib/os.py").is_file());
        assert!(!blob("a").exists() && !blob("c").exists());
        assert!(cache.join("compiler/incremental/x").is_file());
        assert_eq!((report.removed, report.kept_in_use), (2, 2), "{report:?}");
        assert!(report.compiler_in_use);
        assert_eq!(report.after, 3000);

        drop((held, held_layer, building));
        let report = collect(cache, 0).expect("collect");
        assert_eq!((report.removed, report.after), (3, 0), "{report:?}");
        assert!(!layer.exists() && !cache.join("compiler/incremental/x").exists());
    }

    #[test]
    fn least_recently_used_goes_first_and_collecting_stops_at_the_limit() {
        let cache = tempfile::tempdir().expect("tempdir");
        let cache = cache.path();
        let blob = |name: &str| cache.join("store/blobs").join(name);
        for name in ["old", "new"] {
            put(&blob(name), 1000);
        }
        // Reproducible builds give files epoch times: the use marker decides, not the mtime.
        for name in ["old", "new"] {
            fs::File::options()
                .write(true)
                .open(blob(name))
                .and_then(|f| f.set_modified(SystemTime::UNIX_EPOCH))
                .expect("mtime");
        }
        lease::mark_used(&blob("old"));
        let marker = lease::marker(&blob("old")).expect("marker");
        fs::File::options()
            .write(true)
            .open(&marker)
            .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(60)))
            .expect("age marker");
        lease::mark_used(&blob("new"));
        let report = collect(cache, 1500).expect("collect");
        assert_eq!(report.removed, 1, "{report:?}");
        assert!(blob("new").is_file() && !blob("old").exists());
    }

    #[test]
    fn one_collector_at_a_time() {
        let cache = tempfile::tempdir().expect("tempdir");
        let _other = Exclusive::area(&cache.path().join(GC_LOCK))
            .expect("lock")
            .expect("free");
        assert!(matches!(collect(cache.path(), 0), Err(Error::Busy(_))));
    }
}
