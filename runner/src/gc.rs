//! Bounding Capsule's caches: the runner store, the `run` bundle cache and the compiler caches.
//!
//! Every entry directly under one of [`AREAS`] (a file or a directory, relative to the cache
//! directory) is a unit of eviction; its last use is its modification time (the runner touches
//! what it uses). [`collect`] removes the least recently used entries until the areas fit a size,
//! and never removes an entry that
//! - a running process uses: each process that uses the caches lists what it uses in its own file
//!   under `in-use/` and holds an exclusive lock on it for as long as it runs ([`mark_in_use`]);
//!   a listed entry is kept while that lock is held, and a marker whose lock is free is stale;
//! - changed within `min_age` (an entry being written, or found a moment before it is marked).
//!
//! Guest images and the CPython build tree are build inputs, not caches: they are never touched.
//! Removing a store entry only costs speed: the next `exec` verifies the bundle in full again.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The cache areas, relative to the cache directory, whose entries [`collect`] may remove.
pub const AREAS: &[&str] = &[
    "store/bundles-id",
    "store/bundles-b3",
    "store/blobs",
    "store/layers-v2",
    "bundles",
    "compiler/incremental",
    "compiler/modules",
    "compiler/store/layers-v2",
    "compiler/python-deps",
];

/// Size past which caches are evicted automatically (`$CAPSULE_CACHE_MAX_SIZE` overrides it):
/// room for a few dozen Python bundles with their layers and compiler caches.
pub const DEFAULT_MAX_SIZE: u64 = 2 << 30;

/// How recent a change protects an entry from automatic eviction.
pub const DEFAULT_MIN_AGE: Duration = Duration::from_secs(60);

const IN_USE_DIR: &str = "in-use";

/// The file whose modification time says when [`auto`] last measured the caches.
const STAMP: &str = "gc.stamp";

/// How often [`auto`] measures the caches at most.
pub const AUTO_INTERVAL: Duration = Duration::from_secs(3600);

/// One removable entry.
#[derive(Debug)]
struct Entry {
    /// Relative to the cache directory, `/`-separated.
    name: String,
    path: PathBuf,
    bytes: u64,
    last_use: SystemTime,
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
    /// Entries kept because a running process uses them.
    pub kept_in_use: usize,
    /// Entries kept because they changed within `min_age`.
    pub kept_recent: usize,
}

/// Removes least recently used entries of `cache`'s areas until they hold at most `max_size`
/// bytes, sparing what running processes use and what changed within `min_age`.
pub fn collect(cache: &Path, max_size: u64, min_age: Duration) -> std::io::Result<Report> {
    let in_use = in_use(cache)?;
    let mut entries = Vec::new();
    for area in AREAS {
        let dir = cache.join(area);
        let Ok(listing) = fs::read_dir(&dir) else {
            continue;
        };
        for item in listing.flatten() {
            let file_name = item.file_name().to_string_lossy().into_owned();
            if file_name.starts_with(".tmp") {
                continue;
            }
            let path = item.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            entries.push(Entry {
                name: format!("{area}/{file_name}"),
                bytes: size_of(&path),
                last_use: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                path,
            });
        }
    }
    let before: u64 = entries.iter().map(|e| e.bytes).sum();
    let mut report = Report {
        before,
        after: before,
        ..Report::default()
    };
    entries.sort_by_key(|e| e.last_use);
    let now = SystemTime::now();
    for entry in entries {
        if report.after <= max_size {
            break;
        }
        if in_use.iter().any(|used| {
            entry.name == *used
                || entry.name.starts_with(&format!("{used}/"))
                || used.starts_with(&format!("{}/", entry.name))
        }) {
            report.kept_in_use += 1;
            continue;
        }
        if now.duration_since(entry.last_use).unwrap_or_default() < min_age {
            report.kept_recent += 1;
            continue;
        }
        if remove(&entry.path).is_ok() {
            report.after = report.after.saturating_sub(entry.bytes);
            report.removed += 1;
        }
    }
    Ok(report)
}

/// [`collect`] down to `$CAPSULE_CACHE_MAX_SIZE` (default [`DEFAULT_MAX_SIZE`]; `off` disables it)
/// if the areas hold more; called after something new was written to the caches, and measuring
/// at most once per [`AUTO_INTERVAL`]. Failures only cost disk space.
pub fn auto(cache: &Path) {
    let max_size = match std::env::var("CAPSULE_CACHE_MAX_SIZE") {
        Ok(text) if text.trim() == "off" => return,
        Ok(text) if !text.trim().is_empty() => match parse_size(&text) {
            Ok(bytes) => bytes,
            Err(e) => {
                eprintln!("warning: ignoring `CAPSULE_CACHE_MAX_SIZE={text}`: {e}");
                DEFAULT_MAX_SIZE
            }
        },
        _ => DEFAULT_MAX_SIZE,
    };
    // Measuring the caches means a stat of every file (the compiler's incremental cache alone can
    // hold 10^5): done at most once per AUTO_INTERVAL, not by every command that writes.
    let stamp = cache.join(STAMP);
    let recent = fs::metadata(&stamp)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|at| SystemTime::now().duration_since(at).ok())
        .is_some_and(|age| age < AUTO_INTERVAL);
    if recent || fs::write(&stamp, b"").is_err() {
        return;
    }
    if total_size(cache) > max_size {
        let _ = collect(cache, max_size, DEFAULT_MIN_AGE);
    }
}

/// A cache size: `0`, a byte count, or a number with `KB`, `MB`, `GB` (powers of 1000) or `KiB`,
/// `MiB`, `GiB` (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let expected = "expected a size such as `500MB`, `2GiB` or a byte count";
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("found `{text}`; {expected}"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "found `{text}`: unknown unit `{other}`; {expected}"
            ));
        }
    };
    let bytes = value * scale;
    if !bytes.is_finite() || bytes < 0.0 {
        return Err(format!("found `{text}`; {expected}"));
    }
    Ok(bytes as u64)
}

/// Bytes held in `cache`'s areas.
pub fn total_size(cache: &Path) -> u64 {
    AREAS.iter().map(|area| size_of(&cache.join(area))).sum()
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

/// Removes a file or a tree of read-only files (the store makes its entries read-only).
fn remove(path: &Path) -> std::io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return fs::remove_file(path);
    }
    make_writable(path);
    fs::remove_dir_all(path)
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

/// The entries listed by live processes; stale markers are removed on the way.
fn in_use(cache: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    let Ok(markers) = fs::read_dir(cache.join(IN_USE_DIR)) else {
        return Ok(names);
    };
    for marker in markers.flatten() {
        let path = marker.path();
        let Ok(file) = fs::File::open(&path) else {
            continue;
        };
        match file.try_lock_shared() {
            // Nobody holds it: the process that wrote it is gone.
            Ok(()) => {
                let _ = fs::remove_file(&path);
            }
            Err(_) => {
                let text = fs::read_to_string(&path).unwrap_or_default();
                names.extend(text.lines().filter(|l| !l.is_empty()).map(String::from));
            }
        }
    }
    Ok(names)
}

/// This process's marker: its file, locked for the life of the process.
static MARKER: Mutex<Option<(PathBuf, PathBuf, fs::File)>> = Mutex::new(None);

/// Records that this process uses `names` (relative to `cache`, e.g. `store/blobs/<hex>`, or a
/// whole area such as `compiler`) until it exits, and touches them so that they count as recently
/// used. Best effort: a cache that cannot be written is only slower.
pub fn mark_in_use(cache: &Path, names: &[String]) {
    let mut marker = MARKER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if marker.as_ref().is_none_or(|(dir, _, _)| dir != cache)
        && let Some((path, file)) = open_marker(cache)
    {
        *marker = Some((cache.to_path_buf(), path, file));
    }
    let Some((_, _, file)) = marker.as_mut() else {
        return;
    };
    let mut text = String::new();
    for name in names {
        text.push_str(name);
        text.push('\n');
        touch(&cache.join(name));
    }
    let _ = file.write_all(text.as_bytes());
}

fn open_marker(cache: &Path) -> Option<(PathBuf, fs::File)> {
    let dir = cache.join(IN_USE_DIR);
    fs::create_dir_all(&dir).ok()?;
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let path = dir.join(format!("{}-{nanos}", std::process::id()));
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .ok()?;
    file.lock().ok()?;
    Some((path, file))
}

/// Sets an entry's modification time to now: its last use.
fn touch(path: &Path) {
    if let Ok(file) = fs::File::open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// Removes this process's marker, at the end of a command (a killed process leaves a stale one
/// that the next [`collect`] removes).
pub fn release() {
    let mut marker = MARKER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, path, file)) = marker.take() {
        let _ = fs::remove_file(&path);
        drop(file);
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size(" 500 kb "), Ok(500_000));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
    }
}
