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
