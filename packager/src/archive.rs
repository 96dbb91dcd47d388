//! Writing bundles reproducibly and reading them defensively.
//!
//! Layout: `manifest.json` first, `signature.json` second when the bundle is signed, then the
//! code (each target's `.cwasm` in manifest order, then the component), then the other
//! `blobs/sha256/<hex>` in digest order, as a ustar archive with fixed modes, owners and mtimes,
//! compressed by zstd at fixed settings. Each entry is its own frame (so a reader can skip the
//! blobs it does not need, see [`BundleReader::index`]), except the code, which shares one frame:
//! every piece of it carries the same snapshot memory image, and in one frame with a long window
//! the second and third copies cost only their differences. The reader trusts nothing:
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
/// zstd workers. In zstd's multithreaded mode the output does not depend on the number of workers,
/// so this only changes speed.
const ZSTD_WORKERS: u32 = 2;

/// How one frame is compressed; fixed, so builds are reproducible.
#[derive(Clone, Copy)]
struct FrameSettings {
    level: i32,
    /// log2 of the window, with long-distance matching, when the default window is too short.
    long_window_log: Option<u32>,
}

/// Every entry but the code: quick, and the stdlib layer is compressed already.
const ENTRY_FRAME: FrameSettings = FrameSettings {
    level: 3,
    long_window_log: None,
};

/// The code frame. 2^27 bytes is the largest window a zstd decoder accepts without being told
/// to, and it spans all the code of a two-target Python bundle (about 73 MB), so the aarch64 code
/// and the component are stored as their differences from the x86_64 code. hello.py's code: 19.2
/// MB as three frames at level 3, 12.1 MB in one, 10.9 MB at level 9 (0.7 s with two workers).
const CODE_FRAME: FrameSettings = FrameSettings {
    level: 9,
    long_window_log: Some(27),
};

/// Writes a bundle holding `manifest`, its `signature` if any, and `blobs`. `mtime` is the
/// timestamp stored on every entry (`SOURCE_DATE_EPOCH`, or 0).
///
/// Each tar entry (header, data, padding) is its own zstd frame, except the code ([`code_group`]),
/// whose entries share one; the end-of-archive marker is a frame too. The file is still one zstd
/// stream holding one tar archive, and a reader that needs only some blobs (the runner: this
/// host's code, the layers it has not stored) can step over the other frames without
/// decompressing them, and stop inside the code frame once it has its target's code
/// ([`BundleReader::index`]).
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
        ENTRY_FRAME,
    )?;
    if let Some(signature) = signature {
        append_frame(
            &mut out,
            &tar_entry(SIGNATURE_ENTRY, &signature.to_bytes(), mtime)?,
            ENTRY_FRAME,
        )?;
    }
    let code = code_group(manifest);
    let mut code_entries = Vec::new();
    for digest in &code {
        if let Some(data) = blobs.get(digest) {
            code_entries.extend(tar_entry(&digest.entry_name(), data, mtime)?);
        }
    }
    if !code_entries.is_empty() {
        append_frame(&mut out, &code_entries, CODE_FRAME)?;
    }
    drop(code_entries);
    for (digest, data) in blobs.iter().filter(|(d, _)| !code.contains(d)) {
        append_frame(
            &mut out,
            &tar_entry(&digest.entry_name(), data, mtime)?,
            ENTRY_FRAME,
        )?;
    }
    append_frame(&mut out, &[0; 2 * TAR_BLOCK], ENTRY_FRAME)?;
    Ok(out)
}

/// The blobs written together in the code frame, in order: each target's `.cwasm` as the manifest
/// lists the targets (x86_64 first, so most hosts stop reading early), then the component.
fn code_group(manifest: &Manifest) -> Vec<Digest> {
    let mut group = Vec::new();
    for digest in manifest
        .targets
        .iter()
        .map(|t| t.cwasm)
        .chain(std::iter::once(manifest.component))
    {
        if !group.contains(&digest) {
            group.push(digest);
        }
    }
    group
}

/// The code group with each blob's size as the manifest lists it; `None` when the manifest does
/// not list one of them (a reader then takes the full path, which reports it).
fn code_sizes(manifest: &Manifest) -> Option<Vec<(Digest, u64)>> {
    code_group(manifest)
        .into_iter()
        .map(|digest| {
            let blob = manifest.blobs.iter().find(|b| b.digest == digest)?;
            Some((digest, blob.size))
        })
        .collect()
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
fn append_frame(out: &mut Vec<u8>, content: &[u8], settings: FrameSettings) -> Result<(), Error> {
    let io = |e: std::io::Error| Error::Malformed(format!("cannot compress the archive: {e}"));
    let mut encoder =
        zstd::stream::Encoder::new(std::mem::take(out), settings.level).map_err(io)?;
    encoder.multithread(ZSTD_WORKERS).map_err(io)?;
    if let Some(window_log) = settings.long_window_log {
        encoder.window_log(window_log).map_err(io)?;
        encoder.long_distance_matching(true).map_err(io)?;
    }
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

/// A bundle written by [`write_bundle`] whose entries were located without decompressing them.
/// Its manifest and signature are parsed; the entries are exactly the manifest's blobs with the
/// sizes it lists, but no blob has been hashed: each is decompressed and checked only when asked
/// for ([`FramedBundle::verified_blob`]).
#[derive(Debug)]
pub struct FramedBundle<'a> {
    /// The parsed manifest.
    pub manifest: Manifest,
    /// The manifest's bytes as stored (what a signature covers).
    pub manifest_bytes: Vec<u8>,
    /// The signature entry, if present.
    pub signature: Option<Signature>,
    blobs: BTreeMap<Digest, Located<'a>>,
}

/// Where a blob's entry is: its frame, and the entries before it in that frame (only the code
/// frame holds more than one).
#[derive(Debug)]
struct Located<'a> {
    frame: &'a [u8],
    /// The frame's decompressed size, as its header records it.
    content: u64,
    before: Vec<(Digest, u64)>,
    size: u64,
}

impl FramedBundle<'_> {
    /// The size of blob `digest`, as the manifest lists it.
    pub fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.blobs.get(digest).map(|located| located.size)
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
        let (mut data, size) = self.entry_data(digest)?;
        let mut hasher = Sha256::new();
        let copied = std::io::copy(&mut (&mut data).take(size), &mut hasher)
            .map_err(|e| corrupt(&name, e))?;
        if copied != size {
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
        let (mut decoder, size) = self.entry_data(digest)?;
        if out.len() as u64 != size {
            return Err(Error::Malformed(format!(
                "blob `{name}` is {size} bytes, not {}",
                out.len()
            )));
        }
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

    /// Where blob `digest`'s data starts in the decompressed content of its frame, and that
    /// content's size: what [`FramedBundle::verify_blob_in_frame`] needs room for.
    pub fn blob_place(&self, digest: &Digest) -> Option<(usize, usize)> {
        let located = self.blobs.get(digest)?;
        let offset = located
            .before
            .iter()
            .map(|(_, size)| entry_span(*size))
            .sum::<u64>()
            + TAR_BLOCK as u64;
        Some((
            usize::try_from(offset).ok()?,
            usize::try_from(located.content).ok()?,
        ))
    }

    /// Decompresses the frame holding blob `digest` into `frame_out` (at least the frame's
    /// content size, see [`FramedBundle::blob_place`]) as far as the blob's end, and checks
    /// every header up to the blob's and the blob's sha256 (on a second thread, a block behind
    /// decompression). That thread also hands each hashed part of the blob, in order, to
    /// `sink` (e.g. to write it to a file while decompression goes on; the blob is only sound
    /// if this returns `Ok`). Returns where the blob is in `frame_out`.
    ///
    /// Unlike [`FramedBundle::verify_blob_into`], zstd writes straight into `frame_out` and uses
    /// it as its window: no window buffer to fault in and copy out of (for a Python bundle's
    /// code, a 73 MB frame of which an x86_64 host needs the first 30 MB). A fresh anonymous map
    /// makes a good `frame_out`: only the pages written are ever touched.
    pub fn verify_blob_in_frame(
        &self,
        digest: &Digest,
        frame_out: &mut [u8],
        sink: &mut (dyn FnMut(&[u8]) -> Result<(), Error> + Send),
    ) -> Result<std::ops::Range<usize>, Error> {
        const INPUT_CHUNK: usize = 1 << 17;
        let name = digest.entry_name();
        let located = self.blobs.get(digest).ok_or_else(|| missing(digest))?;
        let (data_offset, content) = self.blob_place(digest).ok_or_else(|| missing(digest))?;
        if frame_out.len() < content {
            return Err(Error::Malformed(format!(
                "blob `{name}`: its frame holds {content} bytes, more than the {} given",
                frame_out.len()
            )));
        }
        let data_end = data_offset + located.size as usize;
        // The headers on the way, in order: (offset in the frame, name, size).
        let mut headers = Vec::new();
        let mut at = 0usize;
        for (passed, size) in &located.before {
            headers.push((at, passed.entry_name(), *size));
            at += entry_span(*size) as usize;
        }
        headers.push((at, name.clone(), located.size));
        headers.reverse();
        let zstd_error = |code: usize| {
            Error::Malformed(format!(
                "truncated or corrupt archive at `{name}`: {}",
                zstd::zstd_safe::get_error_name(code)
            ))
        };
        let mut dctx = zstd::zstd_safe::DCtx::create();
        dctx.set_parameter(zstd::zstd_safe::DParameter::StableOutBuffer(true))
            .map_err(zstd_error)?;
        let mut out = RawOutput {
            start: frame_out.as_mut_ptr(),
            capacity: content,
            filled: 0,
        };
        let written = SharedBytes(out.start);
        let frame = located.frame;
        let (actual, sunk) = std::thread::scope(|scope| {
            let (to_hasher, hashed_ranges) = std::sync::mpsc::sync_channel::<(usize, usize)>(64);
            let (to_sink, sunk_ranges) = std::sync::mpsc::sync_channel::<(usize, usize)>(64);
            let hashing = scope.spawn(move || {
                let mut hasher = Sha256::new();
                for (from, to) in hashed_ranges {
                    hasher.update(written.range(from, to));
                }
                Digest::from_sha256(hasher.finalize().into())
            });
            // On a thread of its own: a write into the page cache can stall, and then neither
            // decompression nor hashing waits for it.
            let sinking = scope.spawn(move || -> Result<(), Error> {
                for (from, to) in sunk_ranges {
                    sink(written.range(from, to))?;
                }
                Ok(())
            });
            let mut output = zstd::zstd_safe::OutBuffer::around(&mut out);
            let mut hashed = data_offset;
            let mut input_at = 0;
            let mut filled = Ok(());
            while hashed < data_end {
                let chunk = &frame[input_at..(input_at + INPUT_CHUNK).min(frame.len())];
                let before = output.pos();
                let mut input = zstd::zstd_safe::InBuffer::around(chunk);
                if let Err(code) = dctx.decompress_stream(&mut output, &mut input) {
                    filled = Err(zstd_error(code));
                    break;
                }
                input_at += input.pos();
                let pos = output.pos();
                if input.pos() == 0 && pos == before {
                    filled = Err(Error::Malformed(format!("entry `{name}` is truncated")));
                    break;
                }
                while let Some((offset, header_name, size)) = headers.last()
                    && pos >= offset + TAR_BLOCK
                {
                    let block = written.range(*offset, offset + TAR_BLOCK);
                    if let Err(e) = expect_header(&mut &block[..], header_name, *size) {
                        filled = Err(e);
                        break;
                    }
                    headers.pop();
                }
                if filled.is_err() {
                    break;
                }
                if pos > hashed {
                    let to = pos.min(data_end);
                    // A closed sink failed: its error is returned below.
                    if to_hasher.send((hashed, to)).is_err() || to_sink.send((hashed, to)).is_err()
                    {
                        break;
                    }
                    hashed = to;
                }
            }
            drop((to_hasher, to_sink));
            let actual = hashing
                .join()
                .map_err(|_| Error::Malformed(format!("hashing `{name}` failed")))?;
            let sunk = sinking
                .join()
                .map_err(|_| Error::Malformed(format!("storing `{name}` failed")))?;
            filled.map(|()| (actual, sunk))
        })?;
        sunk?;
        matches_digest(name, digest, actual)?;
        Ok(data_offset..data_end)
    }

    /// A reader of blob `digest`'s data, and its size. The entries before it in its frame are
    /// decompressed and skipped; every header passed on the way must be the one the index
    /// expects (the code frame's later headers were not seen when it was built).
    fn entry_data(
        &self,
        digest: &Digest,
    ) -> Result<(zstd::stream::read::Decoder<'_, &[u8]>, u64), Error> {
        let located = self.blobs.get(digest).ok_or_else(|| missing(digest))?;
        let mut decoder = zstd::stream::read::Decoder::with_buffer(located.frame)
            .map_err(|e| corrupt(&digest.entry_name(), e))?;
        for (passed, size) in &located.before {
            let name = passed.entry_name();
            expect_header(&mut decoder, &name, *size)?;
            let span = size.next_multiple_of(TAR_BLOCK as u64);
            let skipped = std::io::copy(&mut (&mut decoder).take(span), &mut std::io::sink())
                .map_err(|e| corrupt(&name, e))?;
            if skipped != span {
                return Err(Error::Malformed(format!("entry `{name}` is truncated")));
            }
        }
        expect_header(&mut decoder, &digest.entry_name(), located.size)?;
        Ok((decoder, located.size))
    }
}

/// The bytes a tar entry of `size` bytes of data takes: header, data, padding.
fn entry_span(size: u64) -> u64 {
    TAR_BLOCK as u64 + size.next_multiple_of(TAR_BLOCK as u64)
}

/// zstd's output while [`FramedBundle::verify_blob_in_frame`] decompresses: a raw pointer, so
/// that what is written already can be read (hashed, checked) while zstd goes on writing past it.
struct RawOutput {
    start: *mut u8,
    capacity: usize,
    filled: usize,
}

// SAFETY: `start` points to `capacity` writable bytes (a `&mut [u8]` held by the caller for as
// long as this lives), of which the first `filled` were written.
unsafe impl zstd::zstd_safe::WriteBuf for RawOutput {
    fn as_slice(&self) -> &[u8] {
        // SAFETY: the first `filled` bytes are initialized (see the impl's comment).
        unsafe { std::slice::from_raw_parts(self.start, self.filled) }
    }
    fn capacity(&self) -> usize {
        self.capacity
    }
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.start
    }
    unsafe fn filled_until(&mut self, n: usize) {
        self.filled = n;
    }
}

/// The start of [`RawOutput`]'s bytes, for reading the part zstd has written.
#[derive(Clone, Copy)]
struct SharedBytes(*const u8);

// SAFETY: only ever read, and only where zstd has finished writing (see `range`).
unsafe impl Send for SharedBytes {}

impl SharedBytes {
    /// Bytes `from..to`, which the caller knows zstd has written: with a stable output buffer it
    /// only reads them back as history from then on, never writes them again.
    fn range(&self, from: usize, to: usize) -> &[u8] {
        // SAFETY: see above; the buffer outlives every use (a scope in the one function that
        // makes these).
        unsafe { std::slice::from_raw_parts(self.0.add(from), to - from) }
    }
}

/// Reads the next tar header from `decoder` and checks that it is sound and names a regular
/// file `name` of `size` bytes.
fn expect_header(decoder: &mut impl Read, name: &str, size: u64) -> Result<(), Error> {
    let mut block = [0u8; TAR_BLOCK];
    decoder
        .read_exact(&mut block)
        .map_err(|e| corrupt(name, e))?;
    let header = tar::Header::from_byte_slice(&block);
    let sound = header_checksum_matches(&block, header)
        && header.entry_type() == tar::EntryType::Regular
        && *header.path_bytes() == *name.as_bytes()
        && header.size().is_ok_and(|declared| declared == size);
    if !sound {
        return Err(Error::Malformed(format!(
            "the archive's header for `{name}` is not the one its index promised"
        )));
    }
    Ok(())
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

/// The data of the tar entry that `frame` holds, `size` bytes.
fn frame_entry(frame: &[u8], size: u64, name: &str) -> Result<Vec<u8>, Error> {
    let mut decoder =
        zstd::stream::read::Decoder::with_buffer(frame).map_err(|e| corrupt(name, e))?;
    let mut data = vec![0u8; TAR_BLOCK + size as usize];
    decoder
        .read_exact(&mut data)
        .map_err(|e| corrupt(name, e))?;
    data.drain(..TAR_BLOCK);
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
    /// Locates the entries of a bundle laid out as [`write_bundle`] writes it (one zstd frame
    /// per entry, the code in one frame), under the same caps and structural rules as
    /// [`BundleReader::read_unverified`], decompressing only the first header of each frame, the
    /// manifest and the signature. `None` for a bundle laid out otherwise (an older writer's, or
    /// one `tar --zstd` wrote): read it with [`BundleReader::read_unverified`].
    pub fn index<'a>(&self, bytes: &'a [u8]) -> Result<Option<FramedBundle<'a>>, Error> {
        let bad = |m: String| Error::Malformed(m);
        let mut offset = 0usize;
        let mut manifest: Option<(Vec<u8>, Manifest)> = None;
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
            index += 1;
            // A frame holds one entry, or it is the code frame: the manifest's code blobs, in
            // order, at the sizes it lists.
            let mut members = vec![(name.clone(), kind, declared)];
            if content != entry_span(declared) {
                let Some((_, parsed)) = &manifest else {
                    return Ok(None);
                };
                let Some(code) = code_sizes(parsed) else {
                    return Ok(None);
                };
                let first = code
                    .first()
                    .map(|(digest, size)| (digest.entry_name(), *size));
                if first != Some((name.clone(), declared))
                    || content != code.iter().map(|(_, size)| entry_span(*size)).sum::<u64>()
                {
                    return Ok(None);
                }
                for (digest, size) in code.into_iter().skip(1) {
                    let name = digest.entry_name();
                    let (kind, _) =
                        self.admit(index, &name, tar::EntryType::Regular, size, &mut total)?;
                    index += 1;
                    members.push((name, kind, size));
                }
            }
            let mut before = Vec::new();
            for (name, kind, size) in members {
                match kind {
                    EntryKind::Manifest => {
                        let bytes = frame_entry(frame, size, &name)?;
                        let parsed = Manifest::from_bytes(&bytes)?;
                        manifest = Some((bytes, parsed));
                    }
                    EntryKind::Signature => signature = Some(frame_entry(frame, size, &name)?),
                    EntryKind::Blob(digest) => {
                        let located = Located {
                            frame,
                            content,
                            before: before.clone(),
                            size,
                        };
                        if blobs.insert(digest, located).is_some() {
                            return Err(twice(&name));
                        }
                        before.push((digest, size));
                    }
                }
            }
        }
        let (manifest_bytes, manifest) =
            manifest.ok_or_else(|| bad("the archive is empty".into()))?;
        if !ended {
            return Err(bad("truncated archive: no end-of-archive marker".into()));
        }
        let signature = signature.map(|s| Signature::from_bytes(&s)).transpose()?;
        // Exactly the manifest's blobs, at the sizes it lists (their digests are checked on use).
        for blob in &manifest.blobs {
            let name = blob.digest.entry_name();
            match blobs.get(&blob.digest) {
                None => return Err(bad(format!("blob `{name}` is missing"))),
                Some(Located { size, .. }) if *size != blob.size => {
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
    // Sized up front: growing by doubling copied a 15 MB bundle four times over.
    let size = file.metadata().map(|m| m.len().min(cap + 1)).unwrap_or(0);
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
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
