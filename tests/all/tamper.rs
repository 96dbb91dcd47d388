//! A damaged bundle is refused with exit 3 before anything runs.

use crate::support::{bundle, example, exec_json};
use std::io::Read;

/// Unpacks a bundle into its (name, bytes) entries.
fn entries(path: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).expect("read bundle");
    let mut archive = tar::Archive::new(zstd::stream::Decoder::new(&bytes[..]).expect("zstd"));
    let mut out = Vec::new();
    for entry in archive.entries().expect("tar") {
        let mut entry = entry.expect("entry");
        let name = entry.path().expect("path").to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("read entry");
        out.push((name, data));
    }
    out
}

fn repack(entries: &[(String, Vec<u8>)], path: &std::path::Path) {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, name, &data[..])
            .expect("append");
    }
    let tar = builder.into_inner().expect("tar");
    std::fs::write(path, zstd::encode_all(&tar[..], 3).expect("zstd")).expect("write");
}

#[test]
fn a_changed_byte_in_any_blob_is_refused_and_nothing_runs() {
    let original = entries(&bundle(&example("hello.js")));
    let dir = tempfile::tempdir().expect("tempdir");
    for index in 1..original.len() {
        let mut damaged = original.clone();
        let data = &mut damaged[index].1;
        let middle = data.len() / 2;
        data[middle] ^= 0x01;
        let path = dir.path().join(format!("damaged-{index}.capsule"));
        repack(&damaged, &path);
        let (code, envelope) = exec_json(&path, &[]);
        assert_eq!(code, Some(3), "{}: {envelope}", original[index].0);
        assert_eq!(envelope["error"]["error_type"], "bundle_invalid");
        assert_eq!(envelope["execution"]["attempts"], 0);
        assert!(
            envelope["error"]["message"]
                .as_str()
                .expect("message")
                .contains("does not match the manifest"),
            "{envelope}"
        );
    }
}

#[test]
fn a_truncated_bundle_is_refused() {
    let bytes = std::fs::read(bundle(&example("hello.js"))).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("truncated.capsule");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("write");
    let (code, envelope) = exec_json(&path, &[]);
    assert_eq!(code, Some(3), "{envelope}");
    assert_eq!(envelope["error"]["error_type"], "bundle_invalid");
}
