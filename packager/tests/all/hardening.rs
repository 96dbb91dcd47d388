//! Hostile archives: every one is refused with a message that says why.

use crate::support::{raw_bundle, sample, sample_bundle};
use capsule_packager::archive::{BundleReader, ReadLimits};
use capsule_packager::sign::{SecretKey, Trust};
use tar::EntryType;

fn refusal(bytes: &[u8], limits: ReadLimits) -> String {
    BundleReader::new(limits)
        .read_bytes(bytes)
        .expect_err("must be refused")
        .to_string()
}

fn manifest_bytes() -> Vec<u8> {
    sample().0.to_bytes()
}

#[test]
fn the_sample_reads_back() {
    let bundle = BundleReader::default()
        .read_bytes(&sample_bundle(None))
        .expect("valid");
    assert_eq!(bundle.manifest, sample().0);
}

#[test]
fn an_oversized_entry_is_refused_before_it_is_read() {
    let limits = ReadLimits {
        max_entry_bytes: 1000,
        ..ReadLimits::default()
    };
    let message = refusal(&sample_bundle(None), limits);
    assert!(message.contains("over the 1000-byte cap"), "{message}");
}

#[test]
fn a_decompression_bomb_is_refused() {
    // 64 MiB of zeros compresses to a few KiB; the total cap stops it.
    let zeros = vec![0u8; 64 << 20];
    let bomb = raw_bundle(&[
        ("manifest.json", EntryType::Regular, &manifest_bytes()),
        (
            "blobs/sha256/0000000000000000000000000000000000000000000000000000000000000000",
            EntryType::Regular,
            &zeros,
        ),
    ]);
    assert!(
        bomb.len() < 1 << 20,
        "the bomb is {} bytes compressed",
        bomb.len()
    );
    let limits = ReadLimits {
        max_total_bytes: 16 << 20,
        ..ReadLimits::default()
    };
    let message = refusal(&bomb, limits);
    assert!(
        message.contains("over the") || message.contains("exceed"),
        "{message}"
    );
}

#[test]
fn traversal_links_directories_and_strangers_are_refused() {
    let manifest = manifest_bytes();
    let cases: [(&str, EntryType, &str); 5] = [
        ("../evil", EntryType::Regular, "unexpected entry `../evil`"),
        (
            "/etc/passwd",
            EntryType::Regular,
            "unexpected entry `/etc/passwd`",
        ),
        (
            "blobs/sha256/link",
            EntryType::Symlink,
            "not a regular file",
        ),
        ("blobs/", EntryType::Directory, "not a regular file"),
        (
            "notes.txt",
            EntryType::Regular,
            "unexpected entry `notes.txt`",
        ),
    ];
    for (name, kind, expected) in cases {
        let bytes = raw_bundle(&[
            ("manifest.json", EntryType::Regular, &manifest),
            (name, kind, b"x"),
        ]);
        let message = refusal(&bytes, ReadLimits::default());
        assert!(message.contains(expected), "{name}: {message}");
    }
}

#[test]
fn duplicates_missing_manifest_and_unknown_versions_are_refused() {
    let (manifest, blobs) = sample();
    let (digest, data) = blobs.iter().next().expect("a blob");
    let name = digest.entry_name();
    let bytes = raw_bundle(&[
        ("manifest.json", EntryType::Regular, &manifest.to_bytes()),
        (&name, EntryType::Regular, data),
        (&name, EntryType::Regular, data),
    ]);
    assert!(refusal(&bytes, ReadLimits::default()).contains("appears twice"));

    let bytes = raw_bundle(&[(&name, EntryType::Regular, data)]);
    assert!(refusal(&bytes, ReadLimits::default()).contains("expected `manifest.json`"));

    let future = String::from_utf8(manifest.to_bytes())
        .expect("utf8")
        .replace("capsule-bundle/1", "capsule-bundle/9");
    let bytes = raw_bundle(&[("manifest.json", EntryType::Regular, future.as_bytes())]);
    assert!(
        refusal(&bytes, ReadLimits::default()).contains("unsupported format `capsule-bundle/9`")
    );

    assert!(refusal(b"not zstd at all", ReadLimits::default()).contains("malformed bundle"));
    let full = sample_bundle(None);
    assert!(refusal(&full[..full.len() - 10], ReadLimits::default()).contains("malformed bundle"));
}

#[test]
fn signatures_are_checked_against_trust() {
    let key = SecretKey::generate().expect("key");
    let other = SecretKey::generate().expect("key");
    let bytes = sample_bundle(Some(&key));
    let unverified = BundleReader::default()
        .read_unverified(&bytes)
        .expect("reads");
    let signature = unverified.signature.as_ref();
    assert!(
        Trust::new(vec![key.public()], false)
            .check(&unverified.manifest_bytes, signature)
            .is_ok()
    );
    let message = Trust::new(vec![other.public()], false)
        .check(&unverified.manifest_bytes, signature)
        .expect_err("untrusted")
        .to_string();
    assert!(message.contains("not a trusted key"), "{message}");
    let changed = String::from_utf8(unverified.manifest_bytes.clone())
        .expect("utf8")
        .replace("\"main\"", "\"mainx\"");
    assert!(
        Trust::new(vec![key.public()], true)
            .check(changed.as_bytes(), signature)
            .is_err(),
        "an invalid signature is refused even with allow_unsigned"
    );
}

#[test]
fn a_framed_bundle_is_indexed_and_each_blob_checked_when_used() {
    let bytes = sample_bundle(None);
    let reader = BundleReader::default();
    let framed = reader
        .index(&bytes)
        .expect("valid")
        .expect("written one frame per entry");
    assert_eq!(framed.manifest, sample().0);
    for blob in &sample().0.blobs {
        assert_eq!(
            framed.verified_blob(&blob.digest).expect("intact"),
            sample().1[&blob.digest]
        );
        let (_, content) = framed.blob_place(&blob.digest).expect("placed");
        let mut room = vec![0u8; content];
        let mut sunk = Vec::new();
        let range = framed
            .verify_blob_in_frame(&blob.digest, &mut room, &mut |part| {
                sunk.extend_from_slice(part);
                Ok(())
            })
            .expect("intact");
        assert_eq!(&room[range], &sample().1[&blob.digest][..]);
        assert_eq!(sunk, sample().1[&blob.digest]);
        // A sink that fails (a full disk) makes the whole check fail with its error.
        let message = framed
            .verify_blob_in_frame(&blob.digest, &mut room, &mut |_| {
                Err(capsule_packager::Error::Malformed(
                    "the disk is full".into(),
                ))
            })
            .expect_err("the sink failed")
            .to_string();
        assert!(message.contains("the disk is full"), "{message}");
    }
    // A single-stream archive of the same entries (an older writer's) is not indexed.
    let tar = zstd::decode_all(&bytes[..]).expect("decompress");
    let single = zstd::encode_all(&tar[..], 3).expect("compress");
    assert!(reader.index(&single).expect("well-formed").is_none());
    assert!(reader.read_bytes(&single).is_ok());
    // A blob changed in the archive: indexing (sizes, names) passes, using it does not.
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    let mut archive = tar::Archive::new(&tar[..]);
    for entry in archive.entries().expect("tar") {
        let mut entry = entry.expect("entry");
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).expect("read");
        entries.push((name, data));
    }
    let name = entries.last().expect("a blob").0.clone();
    entries.last_mut().expect("a blob").1[0] ^= 1;
    let mut framed_bytes = Vec::new();
    for (name, data) in &entries {
        framed_bytes.extend(zstd_frame(&tar_entry(name, data)));
    }
    framed_bytes.extend(zstd::bulk::compress(&[0u8; 1024], 3).expect("end"));
    let damaged = reader
        .index(&framed_bytes)
        .expect("structure intact")
        .expect("framed");
    let digest = name
        .strip_prefix("blobs/sha256/")
        .and_then(capsule_packager::Digest::parse)
        .expect("blob name");
    let message = damaged
        .verified_blob(&digest)
        .expect_err("changed blob")
        .to_string();
    assert!(message.contains("does not match"), "{message}");
    let (_, content) = damaged.blob_place(&digest).expect("placed");
    let message = damaged
        .verify_blob_in_frame(&digest, &mut vec![0u8; content], &mut |_| Ok(()))
        .expect_err("changed blob")
        .to_string();
    assert!(message.contains("does not match"), "{message}");
    // Cut short: refused before any blob is used.
    let message = reader
        .index(&framed_bytes[..framed_bytes.len() - 20])
        .expect_err("truncated")
        .to_string();
    assert!(message.contains("truncated"), "{message}");
}

#[test]
fn the_code_frame_is_indexed_from_the_manifest_and_each_header_checked_when_read() {
    let (manifest, blobs) = sample();
    let bytes = sample_bundle(None);
    let reader = BundleReader::default();
    // The writer put the code (the target's .cwasm, then the component) in one frame.
    let frames = {
        let mut frames = 0;
        let mut offset = 0;
        while offset < bytes.len() {
            offset += zstd::zstd_safe::find_frame_compressed_size(&bytes[offset..]).expect("frame");
            frames += 1;
        }
        frames
    };
    assert_eq!(
        frames,
        manifest.blobs.len() - 1 + 2,
        "manifest, code, other blobs, end"
    );
    assert!(reader.index(&bytes).expect("valid").is_some());
    // The same frames, but the component's header in the code frame names another blob of its
    // size: indexing passes (it reads only the first header), reading the component does not,
    // and the .cwasm before it is still sound.
    let cwasm = manifest.targets[0].cwasm;
    let component = manifest.component;
    let mut forged = zstd_frame(&tar_entry("manifest.json", &manifest.to_bytes()));
    let mut code = tar_entry(&cwasm.entry_name(), &blobs[&cwasm]);
    let renamed = capsule_packager::Digest::of(b"another blob");
    code.extend(tar_entry(&renamed.entry_name(), &blobs[&component]));
    forged.extend(zstd_frame(&code));
    for (digest, data) in blobs
        .iter()
        .filter(|(d, _)| **d != cwasm && **d != component)
    {
        forged.extend(zstd_frame(&tar_entry(&digest.entry_name(), data)));
    }
    forged.extend(zstd_frame(&[0u8; 1024]));
    let framed = reader
        .index(&forged)
        .expect("structure intact")
        .expect("framed");
    assert_eq!(framed.verified_blob(&cwasm).expect("intact"), blobs[&cwasm]);
    let message = framed
        .verified_blob(&component)
        .expect_err("the header names another blob")
        .to_string();
    assert!(
        message.contains("not the one its index promised"),
        "{message}"
    );
    // Decompressed in place, into room for the whole frame: the same answers.
    for (digest, sound) in [(cwasm, true), (component, false)] {
        let (_, content) = framed.blob_place(&digest).expect("placed");
        let mut room = vec![0u8; content];
        let result = framed.verify_blob_in_frame(&digest, &mut room, &mut |_| Ok(()));
        if sound {
            let range = result.expect("intact");
            assert_eq!(&room[range], &blobs[&digest][..]);
        } else {
            let message = result
                .expect_err("the header names another blob")
                .to_string();
            assert!(
                message.contains("not the one its index promised"),
                "{message}"
            );
        }
    }
    // Too little room is refused, not overrun.
    let (_, content) = framed.blob_place(&cwasm).expect("placed");
    let mut short = vec![0u8; content - 1];
    assert!(
        framed
            .verify_blob_in_frame(&cwasm, &mut short, &mut |_| Ok(()))
            .is_err()
    );
    // The full path sees the stray entry too.
    assert!(reader.read_bytes(&forged).is_err());
}

/// One ustar entry as the bundle writer lays it out: header, `data`, padding to a whole block.
fn tar_entry(name: &str, data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_ustar();
    header.set_path(name).expect("path");
    header.set_size(data.len() as u64);
    header.set_mode(0o444);
    header.set_entry_type(EntryType::Regular);
    header.set_cksum();
    let mut entry = header.as_bytes().to_vec();
    entry.extend_from_slice(data);
    entry.resize(512 + data.len().next_multiple_of(512), 0);
    entry
}

/// `content` as one zstd frame that records its size.
fn zstd_frame(content: &[u8]) -> Vec<u8> {
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).expect("zstd");
    encoder.include_contentsize(true).expect("zstd");
    encoder
        .set_pledged_src_size(Some(content.len() as u64))
        .expect("zstd");
    std::io::Write::write_all(&mut encoder, content).expect("compress");
    encoder.finish().expect("finish")
}
