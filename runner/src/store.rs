//! The runner's content store: what a full verification of a bundle established, kept so the next
//! `exec` of the same bundle bytes skips decompressing and re-hashing every blob.
//!
//! Layout under the store directory (created `0700`; files are written once, atomically, and made
//! read-only; every name is a sha256):
//!
//! - `bundles-id/<BLAKE3 of a file identity>`: the BLAKE3 key of a bundle file whose identity
//!   (device, inode, size, mtime, ctime, its first 64 KiB; see [`FileIdentity`]) was the same before and after it was
//!   hashed, so a warm `exec` of an unchanged file skips hashing it;
//! - `bundles-b3/<BLAKE3 of the bundle file>`: the digest of that bundle's manifest and its signature
//!   entry, written only after every blob this host runs (its `.cwasm`, the layers) matched the
//!   manifest (the signature is checked again, against the trust of the moment, at every use);
//! - `blobs/<hex>`: the manifest and the host's `.cwasm` of verified bundles, and for bundles
//!   pulled from a registry their OCI image manifest and signature;
//! - `layers-v2/<hex>/`: unpacked filesystem layers (see [`capsule_packager::layer`]).
//!
//! What a loaded bundle uses (its `.cwasm`, its layers) is leased ([`capsule_packager::lease`])
//! for as long as it is loaded, so `capsule gc` leaves it alone.
//!
//! On Linux nothing is written with an fsync (for hello.py's 30 MB of code that wait was a fifth
//! of a first exec). Instead a file written without one is marked (mode `0400`, where a synced
//! file is `0444`) and a `.cwasm`, the one file loaded without re-hashing, is trusted only if it
//! was written since this boot: a crash can leave a renamed file with missing or stale bytes, but
//! only across a reboot. Such a file is ignored and written again from the bundle, checked. The
//! other entries are checked when read (parsed, or re-hashed).
//!
//! The fast path hashes the whole bundle file (BLAKE3, as read into memory: a few milliseconds for a
//! 20 MB bundle, where SHA-256 took 15), so a changed byte anywhere misses the index and
//! goes through full verification again. The manifest is re-hashed on every use; the `.cwasm` is
//! trusted because only this runner writes the store (as for wasmtime's own compilation cache).

use crate::Error;
use capsule_packager::Digest;
use capsule_packager::boot::boot_time;
use capsule_packager::lease::Lease;
use capsule_packager::sign::Signature;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

const BUNDLES_DIR: &str = "bundles-b3";
const IDENTITIES_DIR: &str = "bundles-id";
const BLOBS_DIR: &str = "blobs";

/// The store's areas (directories whose entries a collector may remove, see [`crate::gc`]).
pub const AREAS: &[&str] = &[
    IDENTITIES_DIR,
    BUNDLES_DIR,
    BLOBS_DIR,
    capsule_packager::layer::LAYERS_DIR,
];

/// A file's identity as the kernel keeps it: device, inode, size, modification and status-change
/// times (nanoseconds). Any write to the file, a rename over it or a `touch` changes the
/// status-change time, which no user can set back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileIdentity(String);

impl FileIdentity {
    /// The identity of the file at `path`, or `None` where the platform does not give one or the
    /// file changed within the last [`SETTLED`] (timestamps come from a coarse clock, so a change
    /// right after this look might keep them).
    pub fn of(path: &Path) -> Option<Self> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let meta = fs::metadata(path).ok()?;
            let changed = std::time::UNIX_EPOCH
                + std::time::Duration::new(
                    meta.ctime().try_into().ok()?,
                    meta.ctime_nsec().try_into().ok()?,
                );
            if std::time::SystemTime::now().duration_since(changed).ok()? < SETTLED {
                return None;
            }
            Some(FileIdentity(format!(
                "{}:{}:{}:{}.{}:{}.{}:{}",
                meta.dev(),
                meta.ino(),
                meta.size(),
                meta.mtime(),
                meta.mtime_nsec(),
                meta.ctime(),
                meta.ctime_nsec(),
                head_hash(path)?
            )))
        }
        #[cfg(not(unix))]
        {
            let _ = path;
            None
        }
    }

    fn name(&self) -> String {
        blake3::hash(self.0.as_bytes()).to_hex().to_string()
    }
}

/// Bytes at the start of a bundle file that take part in its identity.
const HEAD_BYTES: u64 = 64 << 10;

/// BLAKE3 of the file's first [`HEAD_BYTES`], where a bundle keeps its manifest (the first archive
/// entry, naming every blob). Kernel timestamps come from a coarse clock and a deleted file's inode
/// is reused, so two different files of one size, created in one clock tick by a tool that sets
/// mtimes (npm extracts everything as of 1985), can share device, inode, size and times; their
/// manifests differ.
#[cfg(unix)]
fn head_hash(path: &Path) -> Option<String> {
    use std::io::Read;
    // Streamed through a stack buffer: no heap to grow and fault in on every exec.
    let mut hasher = blake3::Hasher::new();
    std::io::copy(
        &mut fs::File::open(path).ok()?.take(HEAD_BYTES),
        &mut hasher,
    )
    .ok()?;
    Some(hasher.finalize().to_hex().to_string())
}

/// How long a file must have been left alone before its identity stands for its bytes.
pub const SETTLED: std::time::Duration = std::time::Duration::from_secs(2);

/// The store's name for a bundle file: the BLAKE3 hash of its bytes. It only names entries of this
/// store; what verification checks are the manifest's sha256 digests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BundleKey(blake3::Hash);

impl BundleKey {
    /// The key of bundle bytes held in memory.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        BundleKey(blake3::hash(bytes))
    }

    fn hex(&self) -> String {
        self.0.to_hex().to_string()
    }

    fn from_hex(text: &str) -> Option<Self> {
        blake3::Hash::from_hex(text.trim()).ok().map(BundleKey)
    }
}

/// A runner-owned store directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Internal(format!(
        "cannot {what} `{}` in the runner store: {e}",
        path.display()
    ))
}

impl Store {
    /// The store at `root` (created on first write).
    pub fn new(root: PathBuf) -> Self {
        Store { root }
    }

    /// The directory layers are unpacked under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The bundle key recorded for a file with this identity: its bytes were hashed to that key
    /// while it had exactly this identity.
    pub fn key_by_identity(&self, identity: &FileIdentity) -> Option<BundleKey> {
        let text = fs::read_to_string(self.root.join(IDENTITIES_DIR).join(identity.name())).ok()?;
        BundleKey::from_hex(&text)
    }

    /// Records that the file with `identity` hashes to `bundle` (taken before and after hashing).
    pub fn record_identity(&self, identity: &FileIdentity, bundle: &BundleKey) {
        let path = self.root.join(IDENTITIES_DIR).join(identity.name());
        if !path.is_file() {
            let _ = self.write_once(&path, bundle.hex().as_bytes());
        }
    }

    /// Blob `digest`, if stored (and, if written without an fsync, written since this boot),
    /// leased so that no collector removes it while in use.
    pub fn blob(&self, digest: &Digest) -> Option<(PathBuf, Lease)> {
        let path = self.root.join(BLOBS_DIR).join(digest.hex());
        let lease = Lease::entry(&path)?;
        durable_since_boot(&path).then_some((path, lease))
    }

    /// The bytes of blob `digest`, if stored and still hashing to it (for small metadata blobs:
    /// manifests, signatures, OCI image manifests).
    pub fn read_blob(&self, digest: &Digest) -> Option<Vec<u8>> {
        let bytes = fs::read(self.root.join(BLOBS_DIR).join(digest.hex())).ok()?;
        (Digest::of(&bytes) == *digest).then_some(bytes)
    }

    /// The manifest bytes (re-hashed) and signature recorded for the bundle whose file hashes to
    /// `bundle`.
    pub fn verified_manifest(&self, bundle: &BundleKey) -> Option<(Vec<u8>, Option<Signature>)> {
        let index = fs::read(self.root.join(BUNDLES_DIR).join(bundle.hex())).ok()?;
        let index: IndexEntry = serde_json::from_slice(&index).ok()?;
        let path = self.root.join(BLOBS_DIR).join(index.manifest.hex());
        let bytes = fs::read(path).ok()?;
        (Digest::of(&bytes) == index.manifest).then_some((bytes, index.signature))
    }

    /// Stores a verified blob; returns its path, leased.
    pub fn put_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<(PathBuf, Lease), Error> {
        if let Some(stored) = self.blob(digest) {
            return Ok(stored);
        }
        let path = self.root.join(BLOBS_DIR).join(digest.hex());
        let lease = self.write_once(&path, bytes)?;
        Ok((path, lease))
    }

    /// A new file in the store for blob `digest`, for the caller to fill with checked bytes
    /// ([`StagedBlob::fill`]) and then [`StagedBlob::commit`]; or the blob as already stored.
    pub fn stage_blob(&self, digest: &Digest) -> Result<Staged, Error> {
        if let Some((path, lease)) = self.blob(digest) {
            return Ok(Staged::Stored(path, lease));
        }
        let path = self.root.join(BLOBS_DIR).join(digest.hex());
        let staging = self.staging_path(&path)?;
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&staging)
            .map_err(|e| io("write", &staging, e))?;
        let mut staged = StagedBlob {
            file,
            staging,
            path,
            lease: None,
            committed: false,
        };
        staged.lease = Some(
            staged
                .file
                .try_clone()
                .and_then(Lease::staged)
                .map_err(|e| io("lock", &staged.staging, e))?,
        );
        Ok(Staged::New(staged))
    }

    /// Records that the bundle file hashing to `bundle` was fully verified, with this manifest and
    /// signature entry.
    pub fn record_bundle(
        &self,
        bundle: &BundleKey,
        manifest_bytes: &[u8],
        signature: Option<&Signature>,
    ) -> Result<(), Error> {
        let manifest = Digest::of(manifest_bytes);
        self.put_blob(&manifest, manifest_bytes)?;
        let index = IndexEntry {
            manifest,
            signature: signature.cloned(),
        };
        let text = serde_json::to_vec(&index)
            .map_err(|e| Error::Internal(format!("cannot encode the store index: {e}")))?;
        self.write_once(&self.root.join(BUNDLES_DIR).join(bundle.hex()), &text)
            .map(drop)
    }

    /// A unique temporary name beside `path`, its directory created.
    fn staging_path(&self, path: &Path) -> Result<PathBuf, Error> {
        let dir = path.parent().unwrap_or(&self.root);
        if !dir.is_dir() {
            create_private_dir(&self.root)?;
            fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
        }
        Ok(dir.join(format!(
            ".tmp{}",
            capsule_packager::staging::unique_suffix()
        )))
    }

    /// Writes `path` atomically, read-only; it is leased from the moment it appears.
    fn write_once(&self, path: &Path, bytes: &[u8]) -> Result<Lease, Error> {
        let staging = self.staging_path(path)?;
        let mut file = fs::File::create(&staging).map_err(|e| io("write", &staging, e))?;
        let lease = file
            .try_clone()
            .and_then(Lease::staged)
            .map_err(|e| io("lock", &staging, e))?;
        file.write_all(bytes)
            .map_err(|e| io("write", &staging, e))?;
        seal(&file, &staging, path)?;
        Ok(lease)
    }
}

/// Puts the written file `staging` in place at `path`: read-only, marked used; on disk first
/// where [`boot_time`] is unknown, marked as not synced elsewhere.
fn seal(file: &fs::File, staging: &Path, path: &Path) -> Result<(), Error> {
    let mut perms = file
        .metadata()
        .map_err(|e| io("stat", staging, e))?
        .permissions();
    if boot_time().is_some() {
        set_mode(&mut perms, UNSYNCED_MODE);
    } else {
        file.sync_data().map_err(|e| io("write", staging, e))?;
        perms.set_readonly(true);
    }
    fs::set_permissions(staging, perms).map_err(|e| io("chmod", staging, e))?;
    fs::rename(staging, path).map_err(|e| io("rename", staging, e))?;
    capsule_packager::lease::mark_used(path);
    Ok(())
}

/// The mode of a store file written without an fsync (a synced one is `0444`).
const UNSYNCED_MODE: u32 = 0o400;

#[cfg(unix)]
fn set_mode(perms: &mut fs::Permissions, mode: u32) {
    std::os::unix::fs::PermissionsExt::set_mode(perms, mode);
}

#[cfg(not(unix))]
fn set_mode(perms: &mut fs::Permissions, _mode: u32) {
    perms.set_readonly(true);
}

/// Whether the store file at `path` holds what was written to it: synced, or written (its
/// status last changed) since this boot, so that no crash came between (see
/// [`capsule_packager::boot`]).
fn durable_since_boot(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = fs::metadata(path) else {
            return false;
        };
        meta.mode() & 0o777 != UNSYNCED_MODE
            || boot_time().is_some_and(|boot| capsule_packager::boot::changed_after(&meta, boot))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        true
    }
}

/// What [`Store::stage_blob`] found or made.
pub enum Staged {
    /// The blob is stored already (it was checked when it was written): its path, leased.
    Stored(PathBuf, Lease),
    /// A new file to fill.
    New(StagedBlob),
}

/// A blob being written into the store. Dropped without [`StagedBlob::commit`], it leaves
/// nothing behind.
pub struct StagedBlob {
    file: fs::File,
    staging: PathBuf,
    path: PathBuf,
    lease: Option<Lease>,
    committed: bool,
}

impl StagedBlob {
    /// Writes the blob's bytes (checked by the caller against its digest).
    pub fn fill(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.file
            .write_all(bytes)
            .map_err(|e| io("write", &self.staging, e))
    }

    /// Makes the filled and checked blob part of the store (read-only, under its digest);
    /// returns its path, leased.
    pub fn commit(mut self) -> Result<(PathBuf, Lease), Error> {
        seal(&self.file, &self.staging, &self.path)?;
        self.committed = true;
        let lease = self
            .lease
            .take()
            .ok_or_else(|| Error::Internal("a staged blob lost its lease".into()))?;
        Ok((self.path.clone(), lease))
    }
}

impl Drop for StagedBlob {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.staging);
        }
    }
}

/// `bundles-b3/<hex>`.
#[derive(Serialize, Deserialize)]
struct IndexEntry {
    manifest: Digest,
    signature: Option<Signature>,
}

fn create_private_dir(path: &Path) -> Result<(), Error> {
    if path.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path).map_err(|e| io("create", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn blobs_are_written_without_an_fsync_marked_and_trusted_within_this_boot() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::new(dir.path().join("store"));
        let digest = Digest::of(b"code");
        let (path, _lease) = store.put_blob(&digest, b"code").expect("put");
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, UNSYNCED_MODE);
        let boot = boot_time().expect("Linux knows when it booted");
        assert!(boot < std::time::SystemTime::now());
        assert!(store.blob(&digest).is_some(), "written since this boot");
        // A synced file (an older store's, mode 0444) is trusted whenever it was written.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).expect("chmod");
        assert!(durable_since_boot(&path));
    }
}
