//! A small but complete bundle, made with the real writer.

use capsule_packager::manifest::{
    self, BlobEntry, GuestInfo, Language, SourceInfo, TargetEntry, TaskEntry,
};
use capsule_packager::sign::SecretKey;
use capsule_packager::{Digest, Manifest, Policy, archive};
use std::collections::BTreeMap;

/// (manifest, blobs) of a bundle with a component and one target.
pub fn sample() -> (Manifest, BTreeMap<Digest, Vec<u8>>) {
    let component = b"\0asm component bytes".repeat(40);
    let cwasm = b"precompiled code".repeat(100);
    let mut blobs = BTreeMap::new();
    let mut entries = Vec::new();
    for (bytes, media) in [
        (component, manifest::MEDIA_COMPONENT),
        (cwasm, manifest::MEDIA_CWASM),
    ] {
        let digest = Digest::of(&bytes);
        entries.push(BlobEntry {
            digest,
            media_type: media.to_string(),
            size: bytes.len() as u64,
        });
        blobs.insert(digest, bytes);
    }
    entries.sort_by_key(|b| b.digest);
    let component = entries
        .iter()
        .find(|b| b.media_type == manifest::MEDIA_COMPONENT)
        .expect("component")
        .digest;
    let cwasm = entries
        .iter()
        .find(|b| b.media_type == manifest::MEDIA_CWASM)
        .expect("cwasm")
        .digest;
    let policy =
        Policy::from_raw("main", &BTreeMap::new(), &BTreeMap::new()).expect("default policy");
    let manifest = Manifest {
        format: manifest::FORMAT.to_string(),
        language: Language::Python,
        entry: "main".to_string(),
        tasks: vec![TaskEntry {
            name: "main".to_string(),
            export: Some("main".to_string()),
            policy,
        }],
        blobs: entries,
        component,
        layers: Vec::new(),
        targets: vec![TargetEntry {
            triple: "x86_64-unknown-linux-gnu".to_string(),
            cpu_baseline: "x86-64-v2".to_string(),
            wasmtime: "48.0.8".to_string(),
            engine_fingerprint: "sha256:00".to_string(),
            cwasm,
        }],
        guest: GuestInfo {
            name: "python".to_string(),
            image: Digest::of(b"guest"),
        },
        toolchain: BTreeMap::new(),
        source: SourceInfo {
            file: "task.py".to_string(),
            digest: Digest::of(b"source"),
        },
        dependencies: Vec::new(),
    };
    (manifest, blobs)
}

/// The sample as bundle bytes, signed by `key` if given.
pub fn sample_bundle(key: Option<&SecretKey>) -> Vec<u8> {
    let (manifest, blobs) = sample();
    let signature = key.map(|k| k.sign(&manifest.to_bytes()));
    archive::write_bundle(&manifest, &blobs, signature.as_ref(), 0).expect("write")
}

/// Writes raw entries (names unchecked, any entry type) as a zstd-compressed tar.
pub fn raw_bundle(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind, data) in entries {
        let mut header = tar::Header::new_ustar();
        header.as_ustar_mut().expect("ustar").name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_size(data.len() as u64);
        header.set_mode(0o444);
        header.set_entry_type(*kind);
        header.set_cksum();
        builder.append(&header, *data).expect("append");
    }
    zstd::encode_all(&builder.into_inner().expect("tar")[..], 3).expect("zstd")
}
