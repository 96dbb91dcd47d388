//! Issue 5: a changed, swapped, truncated or untrusted bundle is refused (exit 3) before any of its
//! code runs; and builds are reproducible.

use crate::support::{assert_success, bundle, capsule, exec_json_in, fixture, make_key, test_key};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// A bundle's entries, in archive order.
fn entries(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).expect("read bundle");
    let mut archive = tar::Archive::new(zstd::stream::Decoder::new(&bytes[..]).expect("zstd"));
    let mut out = Vec::new();
    for entry in archive.entries().expect("tar") {
        let mut entry = entry.expect("entry");
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("read entry");
        out.push((name, data));
    }
    out
}

/// One raw ustar entry (header, data, padding); the name is written as is, so `../x` stays `../x`.
fn tar_entry(name: &str, data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_ustar();
    header.as_ustar_mut().expect("ustar").name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_size(data.len() as u64);
    header.set_mode(0o444);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut entry = header.as_bytes().to_vec();
    entry.extend_from_slice(data);
    entry.resize(512 + data.len().next_multiple_of(512), 0);
    entry
}

/// Writes entries back as a bundle compressed as one zstd stream (an older writer's layout).
fn repack(entries: &[(String, Vec<u8>)], path: &Path) {
    let mut tar: Vec<u8> = entries
        .iter()
        .flat_map(|(name, data)| tar_entry(name, data))
        .collect();
    tar.extend([0; 1024]);
    std::fs::write(path, zstd::encode_all(&tar[..], 3).expect("zstd")).expect("write");
}

/// As [`repack`], one zstd frame per entry, as `capsule build` writes bundles (so the runner can
/// skip the entries it does not need).
fn repack_framed(entries: &[(String, Vec<u8>)], path: &Path) {
    let frame = |content: &[u8]| {
        let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).expect("zstd");
        encoder.include_contentsize(true).expect("zstd");
        encoder
            .set_pledged_src_size(Some(content.len() as u64))
            .expect("zstd");
        std::io::Write::write_all(&mut encoder, content).expect("compress");
        encoder.finish().expect("finish")
    };
    let mut bytes = Vec::new();
    for (name, data) in entries {
        bytes.extend(frame(&tar_entry(name, data)));
    }
    bytes.extend(frame(&[0; 1024]));
    std::fs::write(path, bytes).expect("write");
}

/// The byte range of the zstd frame that holds this host's `.cwasm`: its own frame, or the code
/// frame (every target's `.cwasm`, then the component) of which it is one entry.
fn host_code_frame(bytes: &[u8]) -> (usize, usize) {
    let mut frames = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let length =
            zstd::zstd_safe::find_frame_compressed_size(&bytes[offset..]).expect("a zstd frame");
        frames.push((offset, offset + length));
        offset += length;
    }
    let entry = |(start, end): (usize, usize)| {
        let mut archive =
            tar::Archive::new(zstd::stream::Decoder::new(&bytes[start..end]).expect("zstd"));
        let mut entry = archive
            .entries()
            .expect("tar")
            .next()
            .expect("an entry")
            .expect("entry");
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("read entry");
        (name, data)
    };
    let manifest: Value = serde_json::from_slice(&entry(frames[0]).1).expect("manifest");
    let host = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let cwasm = manifest["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .find(|t| t["triple"] == host.as_str())
        .expect("code for this host")["cwasm"]
        .as_str()
        .expect("cwasm")
        .trim_start_matches("sha256:")
        .to_string();
    let name = format!("blobs/sha256/{cwasm}");
    *frames
        .iter()
        .find(|frame| {
            frame.1 - frame.0 > 1024 && {
                let mut archive = tar::Archive::new(
                    zstd::stream::Decoder::new(&bytes[frame.0..frame.1]).expect("zstd"),
                );
                let mut entries = archive.entries().expect("tar");
                entries
                    .any(|e| matches!(e, Ok(e) if String::from_utf8_lossy(&e.path_bytes()) == name))
            }
        })
        .expect("the host's code has a frame")
}

/// Runs the marker task in a fresh directory: (exit code, envelope, whether the task ran).
fn run_marker(bundle: &Path) -> (Option<i32>, Value, bool) {
    let work = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(work.path().join("out")).expect("mkdir");
    let (code, envelope) = exec_json_in(bundle, &[], Some(work.path()), &[]);
    (code, envelope, work.path().join("out/marker.txt").exists())
}

fn assert_refused(bundle: &Path, what: &str, reason: &str) {
    let (code, envelope, ran) = run_marker(bundle);
    assert_eq!(code, Some(3), "{what}: {envelope}");
    assert!(!ran, "{what}: the task ran");
    assert_eq!(envelope["error"]["error_type"], "bundle_invalid", "{what}");
    assert_eq!(envelope["execution"]["attempts"], 0, "{what}");
    let message = envelope["error"]["message"].as_str().expect("message");
    assert!(
        message.contains(reason),
        "{what}: expected `{reason}` in: {message}"
    );
}

#[test]
fn the_intact_marker_bundle_runs() {
    let (code, envelope, ran) = run_marker(&bundle(&fixture("marker.py")));
    assert_eq!(code, Some(0), "{envelope}");
    assert!(ran, "the control run must write its marker");
}

#[test]
fn one_changed_byte_in_any_entry_is_refused_and_nothing_runs() {
    let original = entries(&bundle(&fixture("marker.py")));
    assert_eq!(original[0].0, "manifest.json");
    assert_eq!(original[1].0, "signature.json");
    let dir = tempfile::tempdir().expect("tempdir");
    for index in 0..original.len() {
        let mut damaged = original.clone();
        let name = damaged[index].0.clone();
        let data = &mut damaged[index].1;
        // In the manifest, weaken a limit (a digit of `ram_bytes`); in the signature, change a digit
        // of the signature itself; in a blob, any byte. All keep the JSON well-formed.
        let text = String::from_utf8_lossy(data).into_owned();
        let at = match name.as_str() {
            "manifest.json" => text.find("\"ram_bytes\": ").expect("ram_bytes") + 13,
            "signature.json" => text.find("\"signature\": \"").expect("signature") + 14,
            _ => data.len() / 2,
        };
        data[at] = match data[at] {
            b'0'..=b'8' => data[at] + 1,
            b'9' => b'0',
            b'a'..=b'e' => data[at] + 1,
            b'f' => b'0',
            other => other ^ 0x01,
        };
        let path = dir.path().join(format!("damaged-{index}.capsule"));
        repack(&damaged, &path);
        let reason = match name.as_str() {
            "manifest.json" | "signature.json" => "signature check failed",
            _ => "does not match the manifest",
        };
        assert_refused(&path, &name, reason);
    }
}

#[test]
fn a_cwasm_swapped_in_from_another_signed_bundle_is_refused() {
    let marker = entries(&bundle(&fixture("marker.py")));
    let other = entries(&bundle(&fixture("echo.py")));
    let cwasm_name = |entries: &[(String, Vec<u8>)]| {
        let manifest: Value = serde_json::from_slice(&entries[0].1).expect("manifest");
        let digest = manifest["targets"][0]["cwasm"]
            .as_str()
            .expect("cwasm")
            .trim_start_matches("sha256:")
            .to_string();
        format!("blobs/sha256/{digest}")
    };
    let (mine, theirs) = (cwasm_name(&marker), cwasm_name(&other));
    let their_code = other
        .iter()
        .find(|(n, _)| *n == theirs)
        .expect("their cwasm")
        .1
        .clone();
    let dir = tempfile::tempdir().expect("tempdir");

    // Their code under our name.
    let mut swapped = marker.clone();
    swapped
        .iter_mut()
        .find(|(n, _)| *n == mine)
        .expect("our cwasm")
        .1 = their_code.clone();
    let path = dir.path().join("swapped.capsule");
    repack(&swapped, &path);
    assert_refused(&path, "swapped code", "does not match the manifest");

    // Their code under its own name, replacing ours.
    let mut renamed = marker.clone();
    *renamed
        .iter_mut()
        .find(|(n, _)| *n == mine)
        .expect("our cwasm") = (theirs, their_code);
    let path = dir.path().join("renamed.capsule");
    repack(&renamed, &path);
    assert_refused(&path, "renamed code", "is missing");
}

#[test]
fn untrusted_and_unsigned_bundles_are_refused() {
    let (other_key, _) = make_key("untrusted");
    let dir = tempfile::tempdir().expect("tempdir");
    let signed = dir.path().join("other.capsule");
    let output = capsule()
        .arg("build")
        .arg(fixture("marker.py"))
        .arg("-o")
        .arg(&signed)
        .arg("--sign")
        .arg(&other_key)
        .output()
        .expect("spawn");
    assert_success(&output, "capsule build");
    assert_refused(&signed, "untrusted signer", "not a trusted key");

    let unsigned = dir.path().join("unsigned.capsule");
    let mut parts = entries(&signed);
    parts.remove(1);
    repack(&parts, &unsigned);
    assert_refused(&unsigned, "unsigned", "the bundle is not signed");

    // --allow-unsigned runs it, with a warning.
    let work = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(work.path().join("out")).expect("mkdir");
    let output = capsule()
        .current_dir(work.path())
        .arg("exec")
        .arg(&unsigned)
        .arg("--allow-unsigned")
        .output()
        .expect("spawn");
    assert_success(&output, "capsule");
    assert!(String::from_utf8_lossy(&output.stderr).contains("warning: "));
}

#[test]
fn verify_checks_signature_and_blobs() {
    let signed = bundle(&fixture("marker.py"));
    let output = capsule()
        .arg("verify")
        .arg(&signed)
        .arg("--trust")
        .arg(&test_key().1)
        .output()
        .expect("spawn");
    assert_success(&output, "capsule");
    let output = capsule()
        .arg("verify")
        .arg(&signed)
        .output()
        .expect("spawn");
    assert_eq!(output.status.code(), Some(3));
}

#[test]
fn a_truncated_bundle_is_refused() {
    let bytes = std::fs::read(bundle(&fixture("marker.py"))).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("truncated.capsule");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("write");
    assert_refused(&path, "truncated", "malformed bundle");
}

#[test]
fn an_entry_escaping_with_dotdot_is_refused() {
    let mut parts = entries(&bundle(&fixture("marker.py")));
    parts.push(("../evil".to_string(), b"x".to_vec()));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("dotdot.capsule");
    repack(&parts, &path);
    assert_refused(&path, "dotdot", "unexpected entry `../evil`");
}

fn sha256_of_build(source: &Path, out: &PathBuf) -> String {
    let output = capsule()
        .arg("build")
        .arg(source)
        .arg("-o")
        .arg(out)
        .arg("--check-reproducible")
        .output()
        .expect("spawn");
    assert_success(&output, "capsule");
    assert!(String::from_utf8_lossy(&output.stderr).contains("reproducible: two builds"));
    hex::encode(Sha256::digest(std::fs::read(out).expect("read")))
}

#[test]
fn builds_are_reproducible() {
    let dir = tempfile::tempdir().expect("tempdir");
    for source in ["hygiene.py", "hygiene.js"] {
        let first = sha256_of_build(&fixture(source), &dir.path().join("a.capsule"));
        let second = sha256_of_build(&fixture(source), &dir.path().join("b.capsule"));
        assert_eq!(first, second, "{source}");
    }
}

#[test]
fn r17_a_bundle_changed_in_place_after_a_warm_exec_is_refused() {
    let source = bundle(&fixture("marker.py"));
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("marker.capsule");
    std::fs::copy(&source, &copy).expect("copy");
    // Let the copy settle (a file's identity only stands for its bytes after 2 s), then run it
    // twice: the second exec takes the warm path, which does not hash the file.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    for _ in 0..2 {
        let (code, envelope, _) = run_marker(&copy);
        assert_eq!(code, Some(0), "{envelope}");
    }
    // One byte changed in place: same size, modification time put back.
    let modified = std::fs::metadata(&copy)
        .expect("stat")
        .modified()
        .expect("mtime");
    let mut bytes = std::fs::read(&copy).expect("read");
    // In this host's code: a quarter into the code frame, which starts with the x86_64 code (a
    // fifth of the whole file or more), read on every host (a byte of a part this host never
    // reads, such as the other target's code, is never decompressed by `exec`: see the test
    // below).
    let (start, end) = host_code_frame(&bytes);
    bytes[start + (end - start) / 4] ^= 0x55;
    std::fs::write(&copy, &bytes).expect("write");
    std::fs::File::options()
        .write(true)
        .open(&copy)
        .expect("open")
        .set_modified(modified)
        .expect("set mtime");
    let (code, envelope, ran) = run_marker(&copy);
    assert_eq!(code, Some(3), "{envelope}");
    assert!(!ran, "the tampered bundle ran");
}

#[test]
fn r17_a_never_seen_bundle_is_checked_for_what_this_host_runs() {
    let original = entries(&bundle(&fixture("marker.py")));
    let manifest: Value = serde_json::from_slice(&original[0].1).expect("manifest");
    let targets = manifest["targets"].as_array().expect("targets");
    assert_eq!(targets.len(), 2, "the fixture is built for both targets");
    let host = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let dir = tempfile::tempdir().expect("tempdir");
    let intact = dir.path().join("intact.capsule");
    repack_framed(&original, &intact);
    let (code, envelope, ran) = run_marker(&intact);
    assert!(code == Some(0) && ran, "{envelope}");
    for target in targets {
        let name = format!(
            "blobs/sha256/{}",
            target["cwasm"]
                .as_str()
                .expect("cwasm")
                .trim_start_matches("sha256:")
        );
        let mut damaged = original.clone();
        let data = &mut damaged
            .iter_mut()
            .find(|(n, _)| *n == name)
            .expect("the target's code")
            .1;
        let middle = data.len() / 2;
        data[middle] ^= 0x01;
        let triple = target["triple"].as_str().expect("triple");
        let path = dir.path().join(format!("damaged-{triple}.capsule"));
        repack_framed(&damaged, &path);
        if triple == host {
            assert_refused(&path, triple, "does not match the manifest");
        } else {
            // Never decompressed here: this host runs its own code, checked.
            let (code, envelope, ran) = run_marker(&path);
            assert!(code == Some(0) && ran, "{triple}: {envelope}");
            // `capsule verify` checks every blob.
            let output = capsule()
                .arg("verify")
                .arg(&path)
                .arg("--trust")
                .arg(&test_key().1)
                .output()
                .expect("spawn");
            assert_eq!(output.status.code(), Some(3), "{triple}");
        }
    }
}
