//! Unpacking a verified filesystem layer into a runner-owned, content-addressed store.
//!
//! A layer (e.g. the Python stdlib) is unpacked once per digest into `<store>/layers/<hex>/`, made
//! read-only, and reused by every bundle that names the same digest. Every file and directory gets
//! the same fixed timestamp (the epoch): guests cache directory timestamps (CPython's import
//! system does), and a snapshot must not depend on when a layer happened to be unpacked. The directory is only renamed
//! into place once complete, so a crashed unpack is never mistaken for a good one.
//!
//! Nothing is fsynced (a Python bundle's first exec would wait for the disk): an unpacked layer is
//! trusted within the boot that unpacked it (see [`crate::boot`]). After a reboot it is moved aside
//! and unpacked again, once, from the bundle at hand, so a machine crash right after an unpack
//! never leaves a truncated file in a layer every later task reads.

use crate::boot::{boot_time, changed_after};
use crate::lease::Lease;
use crate::{Digest, Error};
use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

/// Where layers are unpacked. (Renamed when the unpacked form changes, so old unpackings are not
/// reused: v2 fixed every timestamp.)
pub const LAYERS_DIR: &str = "layers-v2";

/// Cap on a layer's unpacked size.
const MAX_LAYER_BYTES: u64 = 1 << 30;

/// Returns the directory holding layer `digest`, unpacking `blob` (already verified to hash to
/// `digest`) if it is not in the store yet. For callers that hold the whole store area (see
/// [`crate::lease`]); others use [`materialize_leased`].
pub fn materialize(store: &Path, digest: &Digest, blob: &[u8]) -> Result<PathBuf, Error> {
    materialize_leased(store, digest, blob).map(|(dir, _lease)| dir)
}

/// As [`materialize`], and leases the directory so that no collector removes it while the lease
/// is held.
pub fn materialize_leased(
    store: &Path,
    digest: &Digest,
    blob: &[u8],
) -> Result<(PathBuf, Lease), Error> {
    materialize_as_of(store, digest, blob, boot_time())
}

/// [`materialize_leased`] with this boot's start given (`None`: unknown, every layer trusted).
fn materialize_as_of(
    store: &Path,
    digest: &Digest,
    blob: &[u8],
    boot: Option<SystemTime>,
) -> Result<(PathBuf, Lease), Error> {
    let dir = store.join(LAYERS_DIR).join(digest.hex());
    let parent = store.join(LAYERS_DIR);
    if let Some(lease) = Lease::entry(&dir) {
        if unpacked_since(&dir, boot) {
            return Ok((dir, lease));
        }
        drop(lease);
        retire(&parent, &dir, digest)?;
    }
    fs::create_dir_all(&parent).map_err(|e| Error::io("create", &parent, e))?;
    let staging = parent.join(format!(
        ".{}.{}",
        digest.hex(),
        crate::staging::unique_suffix()
    ));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir(&staging).map_err(|e| Error::io("create", &staging, e))?;
    // Leased before it is renamed into place: a collector never sees it unleased.
    let lease = fs::File::open(&staging)
        .and_then(Lease::staged)
        .map_err(|e| Error::io("lock", &staging, e))?;
    unpack(blob, &staging)?;
    match fs::rename(&staging, &dir) {
        Ok(()) => {
            crate::lease::mark_used(&dir);
            Ok((dir, lease))
        }
        // Another process finished first: its copy is equally good.
        Err(_) if dir.is_dir() && unpacked_since(&dir, boot) => {
            let _ = fs::remove_dir_all(&staging);
            let lease = Lease::entry(&dir).ok_or_else(|| {
                Error::Malformed(format!("layer `{}` vanished while unpacked", dir.display()))
            })?;
            Ok((dir, lease))
        }
        Err(e) => Err(Error::io("rename", &staging, e)),
    }
}

/// Returns the directory holding layer `digest` if the store has it, leased (see
/// [`materialize_leased`]).
pub fn lookup_leased(store: &Path, digest: &Digest) -> Option<(PathBuf, Lease)> {
    lookup_as_of(store, digest, boot_time())
}

fn lookup_as_of(
    store: &Path,
    digest: &Digest,
    boot: Option<SystemTime>,
) -> Option<(PathBuf, Lease)> {
    let dir = store.join(LAYERS_DIR).join(digest.hex());
    let lease = Lease::entry(&dir)?;
    unpacked_since(&dir, boot).then_some((dir, lease))
}

/// Whether the unpacked layer `dir` was renamed into place after `boot` (its ctime: nothing
/// changes a layer's status afterwards).
fn unpacked_since(dir: &Path, boot: Option<SystemTime>) -> bool {
    match boot {
        Some(boot) => fs::metadata(dir).is_ok_and(|meta| changed_after(&meta, boot)),
        None => true,
    }
}

/// Moves the layer `dir`, unpacked before this boot, out of the way and removes it. Another
/// process may have done so first; a collector skips dot names.
fn retire(parent: &Path, dir: &Path, digest: &Digest) -> Result<(), Error> {
    let stale = parent.join(format!(
        ".{}.stale.{}",
        digest.hex(),
        crate::staging::unique_suffix()
    ));
    match fs::rename(dir, &stale) {
        Ok(()) => fs::remove_dir_all(&stale).map_err(|e| Error::io("remove", &stale, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("move aside", dir, e)),
    }
}

/// Packs `files` (`/`-separated relative names and contents) into a layer blob: a tar with fixed
/// modes, owners and timestamps, in the order given, compressed by zstd at `level`. The same files
/// always give the same bytes, so the same project or dependency set gives the same digest.
pub fn pack<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    level: i32,
) -> Result<Vec<u8>, Error> {
    let io = |e: std::io::Error| Error::Malformed(format!("cannot pack a layer: {e}"));
    let encoder = zstd::stream::Encoder::new(Vec::new(), level).map_err(io)?;
    let mut tar = tar::Builder::new(encoder);
    tar.mode(tar::HeaderMode::Deterministic);
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o444);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, name, data).map_err(io)?;
    }
    tar.into_inner().map_err(io)?.finish().map_err(io)
}

fn unpack(blob: &[u8], into: &Path) -> Result<(), Error> {
    let bad = |m: String| Error::Malformed(format!("layer: {m}"));
    let decoder = zstd::stream::Decoder::new(blob).map_err(|e| bad(e.to_string()))?;
    let mut archive = tar::Archive::new(decoder);
    fs::create_dir_all(into).map_err(|e| Error::io("create", into, e))?;
    let mut total = 0u64;
    for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let raw = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        let mut relative = PathBuf::new();
        for part in raw.components() {
            match part {
                Component::Normal(p) => relative.push(p),
                Component::CurDir => {}
                _ => return Err(bad(format!("entry `{}` escapes the layer", raw.display()))),
            }
        }
        let target = into.join(&relative);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                fs::create_dir_all(&target).map_err(|e| Error::io("create", &target, e))?
            }
            tar::EntryType::Regular => {
                total += entry.header().size().map_err(|e| bad(e.to_string()))?;
                if total > MAX_LAYER_BYTES {
                    return Err(bad(format!("unpacks to more than {MAX_LAYER_BYTES} bytes")));
                }
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
                }
                let mut data = Vec::new();
                entry
                    .read_to_end(&mut data)
                    .map_err(|e| bad(e.to_string()))?;
                fs::write(&target, &data).map_err(|e| Error::io("write", &target, e))?;
                set_read_only(&target)?;
            }
            other => {
                return Err(bad(format!(
                    "entry `{}` has unsupported type {other:?}",
                    raw.display()
                )));
            }
        }
    }
    fix_timestamps(into)
}

fn set_read_only(path: &Path) -> Result<(), Error> {
    let mut perms = fs::metadata(path)
        .map_err(|e| Error::io("stat", path, e))?
        .permissions();
    perms.set_readonly(true);
    fs::set_permissions(path, perms).map_err(|e| Error::io("chmod", path, e))
}

/// Sets the modification time of everything under `dir` (and `dir`) to the epoch; directories
/// after their contents, since creating a file touches its directory.
fn fix_timestamps(dir: &Path) -> Result<(), Error> {
    for entry in fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
        let path = entry.map_err(|e| Error::io("list", dir, e))?.path();
        if path.is_dir() {
            fix_timestamps(&path)?;
        } else {
            set_epoch_mtime(&path)?;
        }
    }
    set_epoch_mtime(dir)
}

fn set_epoch_mtime(path: &Path) -> Result<(), Error> {
    fs::File::open(path)
        .and_then(|f| f.set_modified(std::time::UNIX_EPOCH))
        .map_err(|e| Error::io("set the timestamp of", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[cfg(unix)]
    #[test]
    fn a_layer_unpacked_before_this_boot_is_unpacked_again() {
        use std::os::unix::fs::PermissionsExt;
        let store = tempfile::tempdir().expect("tempdir");
        let blob = pack([("lib/os.py", b"import sys\n".as_slice())], 3).expect("pack");
        let digest = Digest::of(&blob);
        let long_ago = Some(SystemTime::now() - Duration::from_secs(3600));
        let (dir, lease) =
            materialize_as_of(store.path(), &digest, &blob, long_ago).expect("materialize");
        drop(lease);
        assert!(lookup_as_of(store.path(), &digest, long_ago).is_some());

        // As a machine crash right after the unpack could leave it: the data never reached disk.
        let file = dir.join("lib/os.py");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).expect("chmod");
        fs::write(&file, b"").expect("truncate");
        let rebooted = Some(SystemTime::now() + Duration::from_secs(3600));
        assert!(
            lookup_as_of(store.path(), &digest, rebooted).is_none(),
            "unpacked before the boot: not trusted"
        );
        let (again, _lease) =
            materialize_as_of(store.path(), &digest, &blob, rebooted).expect("materialize");
        assert_eq!(again, dir);
        assert_eq!(
            fs::read(again.join("lib/os.py")).expect("read"),
            b"import sys\n"
        );
        let mut left: Vec<_> = fs::read_dir(store.path().join(LAYERS_DIR))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .filter(|name| name != ".used")
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from(digest.hex())],
            "nothing stale left"
        );
    }
}
