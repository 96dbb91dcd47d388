//! Writing bundles reproducibly and reading them defensively.
//!
//! Layout: `manifest.json` first, `signature.json` second when the bundle is signed, then
//! `blobs/sha256/<hex>` in digest order, as a ustar archive with
//! fixed modes, owners and mtimes, compressed by zstd at a fixed level, one frame per entry (so a
//! reader can skip the blobs it does not need, see [`BundleReader::index`]). The reader trusts nothing:
//! every entry, the manifest and the decompressed total have size caps; links, directories,
//! unexpected names and duplicates are refused; every blob is hashed and compared with its name and
//! with the manifest before a caller can see it.

use crate::manifest::Manifest;
use crate::sign::{SIGNATURE_ENTRY, Signature};
use crate::{Digest, Error};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// Name of the manifest entry; always the first entry.
pub const MANIFEST_ENTRY: &str = "manifest.json";
/// zstd level: fixed so builds are reproducible.
const ZSTD_LEVEL: i32 = 3;
/// zstd workers. In zstd's multithreaded mode the output does not depend on the number of workers,
/// so this only changes speed; level 3 with two workers packs a two-target Python bundle in about
/// 0.2 s (level 9 took 1 s for 8% less).
const ZSTD_WORKERS: u32 = 2;

/// Writes a bundle holding `manifest`, its `signature` if any, and `blobs`. `mtime` is the
/// timestamp stored on every entry (`SOURCE_DATE_EPOCH`, or 0).
///
/// Each tar entry (header, data, padding) is its own zstd frame, and so is the end-of-archive
/// marker: the file is still one zstd stream holding one tar archive, and a reader that needs
/// only some blobs (the runner: this host's code, the layers it has not stored) can step over the
/// other frames without decompressing them ([`BundleReader::index`]).
pub fn write_bundle(
    manifest: &Manifest,
    blobs: &BTreeMap<Digest, Vec<u8>>,
    signature: Option<&Signature>,
    mtime: u64,
) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    append_frame(
        &mut out,
        &tar_entry(MANIFEST_ENTRY, &manifest.to_bytes(), mtime)?,
    )?;
    if let Some(signature) = signature {
        append_frame(
            &mut out,
            &tar_entry(SIGNATURE_ENTRY, &signature.to_bytes(), mtime)?,
        )?;
    }
    for (digest, data) in blobs {
        append_frame(&mut out, &tar_entry(&digest.entry_name(), data, mtime)?)?;
    }
    append_frame(&mut out, &[0; 2 * TAR_BLOCK])?;
    Ok(out)
}

const TAR_BLOCK: usize = 512;

/// One ustar entry: header, `data`, zero padding to a whole block.
fn tar_entry(name: &str, data: &[u8], mtime: u64) -> Result<Vec<u8>, Error> {
    let io = |e: std::io::Error| Error::Malformed(format!("cannot assemble the archive: {e}"));
    let mut header = tar::Header::new_ustar();
    header.set_path(name).map_err(io)?;
    header.set_size(data.len() as u64);
    header.set_mode(0o444);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut entry = Vec::with_capacity(TAR_BLOCK + data.len().next_multiple_of(TAR_BLOCK));
    entry.extend_from_slice(header.as_bytes());
    entry.extend_from_slice(data);
    entry.resize(TAR_BLOCK + data.len().next_multiple_of(TAR_BLOCK), 0);
    Ok(entry)
}

/// Compresses `content` as one zstd frame that records its size, appended to `out`.
fn append_frame(out: &mut Vec<u8>, content: &[u8]) -> Result<(), Error> {
    let io = |e: std::io::Error| Error::Malformed(format!("cannot compress the archive: {e}"));
    let mut encoder = zstd::stream::Encoder::new(std::mem::take(out), ZSTD_LEVEL).map_err(io)?;
    encoder.multithread(ZSTD_WORKERS).map_err(io)?;
    encoder.include_contentsize(true).map_err(io)?;
    encoder
        .set_pledged_src_size(Some(content.len() as u64))
        .map_err(io)?;
    std::io::Write::write_all(&mut encoder, content).map_err(io)?;
    *out = encoder.finish().map_err(io)?;
    Ok(())
}

/// Size caps applied while reading a bundle.
#[derive(Clone, Copy, Debug)]
pub struct ReadLimits {
    /// Compressed bundle file.
    pub max_bundle_bytes: u64,
    /// The manifest entry.
    pub max_manifest_bytes: u64,
    /// Any one blob.
    pub max_entry_bytes: u64,
    /// All entries together, decompressed (guards against decompression bombs).
    pub max_total_bytes: u64,
    /// Number of entries.
    pub max_entries: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_bundle_bytes: 1 << 30,
            max_manifest_bytes: 1 << 20,
            // A two-target Python bundle is about 75 MB unpacked; these leave room without letting
            // a decompression bomb take gigabytes of memory.
            max_entry_bytes: 256 << 20,
            max_total_bytes: 512 << 20,
            max_entries: 64,
        }
    }
}

/// A bundle whose every blob matched the manifest.
#[derive(Debug)]
pub struct Bundle {
    /// The parsed manifest.
    pub manifest: Manifest,
    /// The manifest's bytes as stored (what a signature covers).
    pub manifest_bytes: Vec<u8>,
    /// The signature, if the bundle is signed (checked by the caller's trust policy).
    pub signature: Option<Signature>,
    blobs: BTreeMap<Digest, Vec<u8>>,
}

/// A bundle that passed the archive's structural checks and whose manifest parsed; its signature
/// must be checked next, then [`UnverifiedBundle::verify_blobs`] hashes every blob.
#[derive(Debug)]
pub struct UnverifiedBundle {
    /// The parsed manifest.
    pub manifest: Manifest,
    /// The manifest's bytes as stored (what a signature covers).
    pub manifest_bytes: Vec<u8>,
    /// The signature entry, if present.
    pub signature: Option<Signature>,
    entries: BTreeMap<Digest, Vec<u8>>,
}

impl UnverifiedBundle {
    /// Checks that the entries are exactly the manifest's blobs, each with the right digest.
    pub fn verify_blobs(self) -> Result<Bundle, Error> {
        let blobs = verify_blobs(&self.manifest, self.entries)?;
        Ok(Bundle {
            manifest: self.manifest,
            manifest_bytes: self.manifest_bytes,
            signature: self.signature,
            blobs,
        })
    }
}

impl Bundle {
    /// The verified bytes of blob `digest`.
    pub fn blob(&self, digest: &Digest) -> Option<&[u8]> {
        self.blobs.get(digest).map(Vec::as_slice)
    }
}

/// Reads bundles under [`ReadLimits`].
#[derive(Clone, Copy, Debug, Default)]
pub struct BundleReader {
    limits: ReadLimits,
}

impl BundleReader {
    /// A reader with these caps.
    pub fn new(limits: ReadLimits) -> Self {
        BundleReader { limits }
    }

    /// Reads and verifies the bundle at `path`.
    pub fn read_file(&self, path: &Path) -> Result<Bundle, Error> {
        let bytes = read_capped(path, self.limits.max_bundle_bytes)?;
        self.read_bytes(&bytes)
    }

    /// Reads and verifies (every blob's digest, not the signature) a bundle held in memory.
    pub fn read_bytes(&self, bytes: &[u8]) -> Result<Bundle, Error> {
        self.read_unverified(bytes)?.verify_blobs()
    }

    /// Unpacks a bundle under the caps and parses its manifest and signature entry; no blob has
    /// been hashed yet.
    pub fn read_unverified(&self, bytes: &[u8]) -> Result<UnverifiedBundle, Error> {
        let (manifest_bytes, signature, entries) = self.unpack(bytes)?;
        let manifest = Manifest::from_bytes(&manifest_bytes)?;
        let signature = signature.map(|s| Signature::from_bytes(&s)).transpose()?;
        Ok(UnverifiedBundle {
            manifest,
            manifest_bytes,
            signature,
            entries,
        })
    }

    /// Splits the archive into the manifest bytes, the signature bytes and the blob entries,
    /// enforcing the caps.
    #[expect(
        clippy::type_complexity,
        reason = "a private helper's three parts, named at the one call site"
    )]
    fn unpack(
        &self,
        bytes: &[u8],
    ) -> Result<(Vec<u8>, Option<Vec<u8>>, BTreeMap<Digest, Vec<u8>>), Error> {
        let bad = |m: String| Error::Malformed(m);
        let decoder = zstd::stream::Decoder::new(bytes)
            .map_err(|e| bad(format!("not a zstd stream: {e}")))?;
        let mut archive = tar::Archive::new(decoder);
        let mut manifest = None;
        let mut signature = None;
        let mut blobs = BTreeMap::new();
        let mut total = 0u64;
        let entries = archive
            .entries()
            .map_err(|e| bad(format!("not a tar archive: {e}")))?;
        for (index, entry) in entries.enumerate() {
            let mut entry = entry.map_err(|e| bad(format!("truncated or corrupt archive: {e}")))?;
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let declared = entry
                .header()
                .size()
                .map_err(|e| bad(format!("entry `{}`: {e}", name.escape_debug())))?;
            let (kind, cap) = self.admit(
                index,
                &name,
                entry.header().entry_type(),
                declared,
                &mut total,
            )?;
            let mut data = Vec::with_capacity(declared as usize);
            (&mut entry)
                .take(cap + 1)
                .read_to_end(&mut data)
                .map_err(|e| corrupt(&name, e))?;
            if data.len() as u64 != declared {
                return Err(bad(format!("entry `{}` is truncated", name.escape_debug())));
            }
            match kind {
                EntryKind::Manifest => manifest = Some(data),
                EntryKind::Signature => signature = Some(data),
                EntryKind::Blob(digest) => {
                    if blobs.insert(digest, data).is_some() {
                        return Err(twice(&name));
                    }
                }
            }
        }
        let manifest = manifest.ok_or_else(|| bad("the archive is empty".into()))?;
        Ok((manifest, signature, blobs))
    }
}

impl BundleReader {
    /// The rules every entry meets however the archive is read: at most `max_entries`, regular
    /// files only, the manifest first, then the signature if any, then `blobs/sha256/<hex>`, each
    /// under its cap and all together under `max_total_bytes` (added to `total`). Returns what
    /// the entry is and its cap.
    fn admit(
        &self,
        index: usize,
        name: &str,
        entry_type: tar::EntryType,
        declared: u64,
        total: &mut u64,
    ) -> Result<(EntryKind, u64), Error> {
        let bad = |m: String| Error::Malformed(m);
        if index >= self.limits.max_entries {
            return Err(bad(format!(
                "more than {} entries",
                self.limits.max_entries
            )));
        }
        if entry_type != tar::EntryType::Regular {
            return Err(bad(format!(
                "entry `{}` is not a regular file (links and directories are refused)",
                name.escape_debug()
            )));
        }
        let is_signature = index == 1 && name == SIGNATURE_ENTRY;
        let cap = if index == 0 || is_signature {
            self.limits.max_manifest_bytes
        } else {
            self.limits.max_entry_bytes
        };
        if declared > cap {
            return Err(bad(format!(
                "entry `{}` is {declared} bytes, over the {cap}-byte cap",
                name.escape_debug()
            )));
        }
        *total += declared;
        if *total > self.limits.max_total_bytes {
            return Err(bad(format!(
                "contents exceed {} bytes uncompressed",
                self.limits.max_total_bytes
            )));
        }
        let kind = if index == 0 {
            if name != MANIFEST_ENTRY {
                return Err(bad(format!(
                    "first entry is `{}`, expected `{MANIFEST_ENTRY}`",
                    name.escape_debug()
                )));
            }
            EntryKind::Manifest
        } else if is_signature {
            EntryKind::Signature
        } else {
            EntryKind::Blob(
                name.strip_prefix("blobs/sha256/")
                    .and_then(Digest::parse)
                    .ok_or_else(|| bad(format!("unexpected entry `{}`", name.escape_debug())))?,
            )
        };
        Ok((kind, cap))
    }
}

/// What an archive entry is, by its place and name.
enum EntryKind {
    Manifest,
    Signature,
    Blob(Digest),
}

fn twice(name: &str) -> Error {
    Error::Malformed(format!("entry `{}` appears twice", name.escape_debug()))
}

fn corrupt(name: &str, e: std::io::Error) -> Error {
    Error::Malformed(format!(
        "truncated or corrupt archive at `{}`: {e}",
        name.escape_debug()
    ))
}

/// A bundle written one zstd frame per entry ([`write_bundle`]) whose entries were located
/// without decompressing them. Its manifest and signature are parsed; the entries are exactly the
/// manifest's blobs with the sizes it lists, but no blob has been hashed: each is decompressed and
/// checked only when asked for ([`FramedBundle::verified_blob`]).
#[derive(Debug)]
pub struct FramedBundle<'a> {
    /// The parsed manifest.
    pub manifest: Manifest,
    /// The manifest's bytes as stored (what a signature covers).
    pub manifest_bytes: Vec<u8>,
    /// The signature entry, if present.
    pub signature: Option<Signature>,
    /// Each blob's frame and size.
    blobs: BTreeMap<Digest, (&'a [u8], u64)>,
}

impl FramedBundle<'_> {
    /// The size of blob `digest`, as the manifest lists it.
    pub fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.blobs.get(digest).map(|(_, size)| *size)
    }

    /// Decompresses blob `digest` and checks its size and sha256 against the manifest.
    pub fn verified_blob(&self, digest: &Digest) -> Result<Vec<u8>, Error> {
        let size = self.blob_size(digest).ok_or_else(|| missing(digest))?;
        let mut data = vec![0u8; size as usize];
        self.verify_blob_into(digest, &mut data)?;
        Ok(data)
    }

    /// Checks blob `digest` (size and sha256) without keeping it: for a blob the caller already
    /// holds a verified copy of, when the bundle's own bytes must still be sound.
    pub fn check_blob(&self, digest: &Digest) -> Result<(), Error> {
        let name = digest.entry_name();
        let (frame, size) = self.blobs.get(digest).ok_or_else(|| missing(digest))?;
        let mut data = frame_data(frame, &name)?;
        let mut hasher = Sha256::new();
        let copied = std::io::copy(&mut (&mut data).take(*size), &mut hasher)
            .map_err(|e| corrupt(&name, e))?;
        if copied != *size {
            return Err(Error::Malformed(format!("entry `{name}` is truncated")));
        }
        matches_digest(name, digest, Digest::from_sha256(hasher.finalize().into()))
    }

    /// Decompresses blob `digest` into `out` (exactly its size: e.g. a file mapped for writing)
    /// and checks its sha256, a megabyte at a time while it is still in cache. On an error
    /// `out` holds unchecked bytes: the caller throws it away.
    pub fn verify_blob_into(&self, digest: &Digest, out: &mut [u8]) -> Result<(), Error> {
        const CHUNK: usize = 1 << 20;
        let name = digest.entry_name();
        let (frame, size) = self.blobs.get(digest).ok_or_else(|| missing(digest))?;
        if out.len() as u64 != *size {
            return Err(Error::Malformed(format!(
                "blob `{name}` is {size} bytes, not {}",
                out.len()
            )));
        }
        let mut decoder = frame_data(frame, &name)?;
        // Hashing runs on a second thread, a chunk behind decompression.
        let actual = std::thread::scope(|scope| {
            let (chunks, decompressed) = std::sync::mpsc::sync_channel::<&[u8]>(8);
            let hashing = scope.spawn(move || {
                let mut hasher = Sha256::new();
                for chunk in decompressed {
                    hasher.update(chunk);
                }
                Digest::from_sha256(hasher.finalize().into())
            });
            let mut filled = Ok(());
            for chunk in out.chunks_mut(CHUNK) {
                if let Err(e) = decoder.read_exact(chunk) {
                    filled = Err(corrupt(&name, e));
                    break;
                }
                let chunk: &[u8] = chunk;
                if chunks.send(chunk).is_err() {
                    break;
                }
            }
            drop(chunks);
            let actual = hashing
                .join()
                .map_err(|_| Error::Malformed(format!("hashing `{name}` failed")))?;
            filled.map(|()| actual)
        })?;
        matches_digest(name, digest, actual)
    }
}

fn missing(digest: &Digest) -> Error {
    Error::Malformed(format!("blob `{}` is missing", digest.entry_name()))
}

/// `Ok` when blob `name` hashed to the `expected` digest.
fn matches_digest(name: String, expected: &Digest, actual: Digest) -> Result<(), Error> {
    if actual != *expected {
        return Err(Error::DigestMismatch {
            name,
            expected: expected.hex(),
            actual: actual.hex(),
        });
    }
    Ok(())
}

/// A reader of the data of the tar entry that `frame` holds, its header skipped.
fn frame_data<'f>(
    frame: &'f [u8],
    name: &str,
) -> Result<zstd::stream::read::Decoder<'f, &'f [u8]>, Error> {
    let mut decoder =
        zstd::stream::read::Decoder::with_buffer(frame).map_err(|e| corrupt(name, e))?;
    let mut header = [0u8; TAR_BLOCK];
    decoder
        .read_exact(&mut header)
        .map_err(|e| corrupt(name, e))?;
    Ok(decoder)
}

/// The data of the tar entry that `frame` holds, `size` bytes.
fn frame_entry(frame: &[u8], size: u64, name: &str) -> Result<Vec<u8>, Error> {
    let mut data = vec![0u8; size as usize];
    frame_data(frame, name)?
        .read_exact(&mut data)
        .map_err(|e| corrupt(name, e))?;
    Ok(data)
}

/// Whether a ustar header's checksum field matches its bytes (the field counted as spaces).
fn header_checksum_matches(block: &[u8; TAR_BLOCK], header: &tar::Header) -> bool {
    let sum: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    header.cksum().is_ok_and(|stored| u64::from(stored) == sum)
}

impl BundleReader {
    /// Locates the entries of a bundle written one zstd frame per entry, under the same caps and
    /// structural rules as [`BundleReader::read_unverified`], decompressing only each entry's
    /// header, the manifest and the signature. `None` for a bundle whose frames do not hold one
    /// entry each (an older writer's): read it with [`BundleReader::read_unverified`].
    pub fn index<'a>(&self, bytes: &'a [u8]) -> Result<Option<FramedBundle<'a>>, Error> {
        let bad = |m: String| Error::Malformed(m);
        let mut offset = 0usize;
        let mut manifest_bytes = None;
        let mut signature = None;
        let mut blobs = BTreeMap::new();
        let mut total = 0u64;
        let mut ended = false;
        let mut index = 0usize;
        while offset < bytes.len() {
            if ended {
                return Err(bad(format!(
                    "data after the end of the archive (byte {offset})"
                )));
            }
            let rest = &bytes[offset..];
            let length = zstd::zstd_safe::find_frame_compressed_size(rest)
                .map_err(|_| bad(format!("truncated or corrupt zstd frame at byte {offset}")))?;
            let frame = &rest[..length];
            offset += length;
            let Ok(Some(content)) = zstd::zstd_safe::get_frame_content_size(frame) else {
                return Ok(None);
            };
            let mut block = [0u8; TAR_BLOCK];
            zstd::stream::read::Decoder::with_buffer(frame)
                .and_then(|mut d| d.read_exact(&mut block))
                .map_err(|e| bad(format!("truncated or corrupt archive: {e}")))?;
            if block.iter().all(|&b| b == 0) {
                if content != 2 * TAR_BLOCK as u64 {
                    return Ok(None);
                }
                ended = true;
                continue;
            }
            let header = tar::Header::from_byte_slice(&block);
            let name = String::from_utf8_lossy(&header.path_bytes()).into_owned();
            if !header_checksum_matches(&block, header) {
                return Err(bad(format!(
                    "entry `{}` has a corrupt header",
                    name.escape_debug()
                )));
            }
            let declared = header
                .size()
                .map_err(|e| bad(format!("entry `{}`: {e}", name.escape_debug())))?;
            let (kind, _) = self.admit(index, &name, header.entry_type(), declared, &mut total)?;
            if content != TAR_BLOCK as u64 + declared.next_multiple_of(TAR_BLOCK as u64) {
                return Ok(None);
            }
            match kind {
                EntryKind::Manifest => manifest_bytes = Some(frame_entry(frame, declared, &name)?),
                EntryKind::Signature => signature = Some(frame_entry(frame, declared, &name)?),
                EntryKind::Blob(digest) => {
                    if blobs.insert(digest, (frame, declared)).is_some() {
                        return Err(twice(&name));
                    }
                }
            }
            index += 1;
        }
        let manifest_bytes = manifest_bytes.ok_or_else(|| bad("the archive is empty".into()))?;
        if !ended {
            return Err(bad("truncated archive: no end-of-archive marker".into()));
        }
        let manifest = Manifest::from_bytes(&manifest_bytes)?;
        let signature = signature.map(|s| Signature::from_bytes(&s)).transpose()?;
        // Exactly the manifest's blobs, at the sizes it lists (their digests are checked on use).
        for blob in &manifest.blobs {
            let name = blob.digest.entry_name();
            match blobs.get(&blob.digest) {
                None => return Err(bad(format!("blob `{name}` is missing"))),
                Some((_, size)) if *size != blob.size => {
                    return Err(bad(format!(
                        "blob `{name}` is {size} bytes; the manifest lists {}",
                        blob.size
                    )));
                }
                Some(_) => {}
            }
        }
        if let Some(extra) = blobs
            .keys()
            .find(|d| !manifest.blobs.iter().any(|b| b.digest == **d))
        {
            return Err(bad(format!(
                "entry `{}` is not listed in the manifest",
                extra.entry_name()
            )));
        }
        Ok(Some(FramedBundle {
            manifest,
            manifest_bytes,
            signature,
            blobs,
        }))
    }
}

/// Checks that the entries are exactly the manifest's blobs, each with the right size and digest.
fn verify_blobs(
    manifest: &Manifest,
    mut entries: BTreeMap<Digest, Vec<u8>>,
) -> Result<BTreeMap<Digest, Vec<u8>>, Error> {
    let mut verified = BTreeMap::new();
    for blob in &manifest.blobs {
        let name = blob.digest.entry_name();
        let data = entries
            .remove(&blob.digest)
            .ok_or_else(|| Error::Malformed(format!("blob `{name}` is missing")))?;
        let actual = Digest::of(&data);
        if actual != blob.digest || data.len() as u64 != blob.size {
            return Err(Error::DigestMismatch {
                name,
                expected: blob.digest.hex(),
                actual: actual.hex(),
            });
        }
        verified.insert(blob.digest, data);
    }
    if let Some(extra) = entries.keys().next() {
        return Err(Error::Malformed(format!(
            "entry `{}` is not listed in the manifest",
            extra.entry_name()
        )));
    }
    Ok(verified)
}

/// Reads a whole file, refusing files larger than `cap`.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, Error> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut bytes = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("read", path, e))?;
    if bytes.len() as u64 > cap {
        return Err(Error::Malformed(format!(
            "`{}` is larger than the {cap}-byte cap",
            path.display()
        )));
    }
    Ok(bytes)
}
