//! Advisory locks that keep cache entries from being removed while a process uses them.
//!
//! Safety never rests on timestamps (layers are unpacked with epoch mtimes, and a build may take
//! minutes): it rests on `flock`-style locks, which the kernel drops when a process dies.
//!
//! - A process using an entry of a cache area (a store blob, an unpacked layer, a cached bundle)
//!   holds a shared lock on the entry itself, a [`Lease`], for as long as it uses it. An entry is
//!   born leased: its writer locks the staging file or directory before renaming it into place.
//! - A process using a whole area whose entries it cannot name in advance (the compiler's caches)
//!   holds a shared lock on the area's lock file ([`Lease::area`]).
//! - The collector removes an entry only while it holds the exclusive lock ([`Exclusive`]); it first
//!   renames the entry out of the way, so that a process that opened the entry just before sees
//!   that its path no longer names what it locked and treats the entry as missing.
//!
//! Each use also refreshes a marker (`<area>/.used/<name>`) whose time orders eviction, least
//! recently used first; a missing or wrong marker only changes the order, never what is safe.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Directory, inside an area, of the markers recording each entry's last use.
pub const USED_DIR: &str = ".used";

/// Name of an area's lock file (inside the area directory).
pub const AREA_LOCK: &str = ".lock";

/// A shared lock on a cache entry or area; the entry is not removed while it is held.
#[derive(Debug)]
pub struct Lease {
    _file: File,
}

impl Lease {
    /// Leases the entry at `path` (a file or a directory) and records its use; `None` if it does
    /// not exist (or was being removed when we looked). Blocks only while a collector renames it.
    pub fn entry(path: &Path) -> Option<Lease> {
        let file = File::open(path).ok()?;
        file.lock_shared().ok()?;
        // Locked: a collector removes only what it locked exclusively, and renames it first.
        if !same_file(&file, path) {
            return None;
        }
        mark_used(path);
        Some(Lease { _file: file })
    }

    /// Leases what `file` (open on a staging file or directory, before it is renamed into place)
    /// refers to, so that the entry is leased from the moment it appears.
    pub fn staged(file: File) -> io::Result<Lease> {
        file.lock_shared()?;
        Ok(Lease { _file: file })
    }

    /// Leases the area whose lock file is `lock` (created if missing), waiting while a collector
    /// works on it.
    pub fn area(lock: &Path) -> io::Result<Lease> {
        let file = open_lock_file(lock)?;
        file.lock_shared()?;
        Ok(Lease { _file: file })
    }
}

/// An exclusive lock: what it covers is used by no process.
#[derive(Debug)]
pub struct Exclusive {
    _file: File,
}

impl Exclusive {
    /// The exclusive lock on the entry at `path`, if nobody leases it; `None` if it is in use or
    /// gone.
    pub fn entry(path: &Path) -> Option<Exclusive> {
        let file = File::open(path).ok()?;
        file.try_lock().ok()?;
        same_file(&file, path).then_some(Exclusive { _file: file })
    }

    /// The exclusive lock on the area (or the collector's own lock) whose lock file is `lock`;
    /// `Ok(None)` if a process holds it.
    pub fn area(lock: &Path) -> io::Result<Option<Exclusive>> {
        let file = open_lock_file(lock)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Exclusive { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// Records that the entry at `path` was used now (see [`last_use`]). Best effort.
pub fn mark_used(path: &Path) {
    let Some(marker) = marker(path) else {
        return;
    };
    let touch = |m: &Path| {
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(m)
            .and_then(|f| f.set_modified(SystemTime::now()))
    };
    if touch(&marker).is_err()
        && let Some(dir) = marker.parent()
        && fs::create_dir_all(dir).is_ok()
    {
        let _ = touch(&marker);
    }
}

/// When the entry at `path` was last used, from its marker (`None` if never recorded).
pub fn last_use(path: &Path) -> Option<SystemTime> {
    fs::metadata(marker(path)?).and_then(|m| m.modified()).ok()
}

/// The use marker of the entry at `path`: `<area>/.used/<name>`.
pub fn marker(path: &Path) -> Option<PathBuf> {
    Some(path.parent()?.join(USED_DIR).join(path.file_name()?))
}

fn open_lock_file(lock: &Path) -> io::Result<File> {
    if let Some(dir) = lock.parent() {
        fs::create_dir_all(dir)?;
    }
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock)
}

/// Whether `path` still names the file `file` has open.
fn same_file(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), fs::metadata(path)) {
            (Ok(held), Ok(named)) => held.dev() == named.dev() && held.ino() == named.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        path.exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leased_entry_cannot_be_locked_exclusively_and_a_free_one_can() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("blob");
        let layer = dir.path().join("layer");
        fs::write(&file, b"x").expect("write");
        fs::create_dir(&layer).expect("mkdir");
        for path in [&file, &layer] {
            let lease = Lease::entry(path).expect("lease");
            assert!(Exclusive::entry(path).is_none(), "{}", path.display());
            drop(lease);
            assert!(Exclusive::entry(path).is_some(), "{}", path.display());
        }
        assert!(last_use(&file).is_some());
        assert!(Lease::entry(&dir.path().join("missing")).is_none());
    }

    #[test]
    fn a_lease_on_a_renamed_entry_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("blob");
        fs::write(&path, b"x").expect("write");
        let held = File::open(&path).expect("open");
        fs::rename(&path, dir.path().join(".trash")).expect("rename");
        fs::write(&path, b"y").expect("write");
        assert!(!same_file(&held, &path));
    }

    #[test]
    fn an_area_lease_excludes_the_collector() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = dir.path().join("area").join(AREA_LOCK);
        let lease = Lease::area(&lock).expect("lease");
        assert!(Exclusive::area(&lock).expect("lock").is_none());
        drop(lease);
        assert!(Exclusive::area(&lock).expect("lock").is_some());
    }
}
