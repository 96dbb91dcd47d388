//! Bundles through a real OCI registry (Debian's docker-registry on loopback): push, pull,
//! `exec oci://`, selective fetching, tampering inside the registry's storage, basic auth, and
//! worker requests naming a registry reference.

use crate::servers::Registry;
use crate::support::{
    Worker, assert_success, bundle, capsule, envelope, fixture, make_key, test_key,
};
use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `capsule` with a private, empty cache (so its runner store has never seen the bundle).
fn fresh_capsule() -> (Command, tempfile::TempDir) {
    let cache = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("cache dir");
    let mut command = capsule();
    command.env("CAPSULE_CACHE_DIR", cache.path());
    (command, cache)
}

fn push(bundle: &Path, reference: &str) -> (String, Output) {
    let output = capsule()
        .arg("push")
        .arg(bundle)
        .arg(reference)
        .output()
        .expect("spawn capsule push");
    assert_success(&output, "capsule push");
    let digest = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "push printed {digest:?}"
    );
    (digest, output)
}

fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("read file")))
}

/// The bundle's manifest, through `capsule inspect --json`.
fn manifest_of(bundle: &Path) -> Value {
    let output = capsule()
        .arg("inspect")
        .arg(bundle)
        .arg("--json")
        .output()
        .expect("spawn capsule inspect");
    assert_success(&output, "capsule inspect");
    serde_json::from_slice(&output.stdout).expect("inspect prints JSON")
}

fn cwasm_digest(manifest: &Value, triple_prefix: &str) -> String {
    let manifest = manifest.get("manifest").unwrap_or(manifest);
    manifest["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .find(|t| {
            t["triple"]
                .as_str()
                .is_some_and(|s| s.starts_with(triple_prefix))
        })
        .unwrap_or_else(|| panic!("no {triple_prefix} target in {manifest}"))["cwasm"]
        .as_str()
        .expect("cwasm digest")
        .to_string()
}

fn exec_oci(command: &mut Command, reference: &str, trust: &Path, args: &[&str]) -> Output {
    command
        .arg("exec")
        .arg(reference)
        .arg("--json")
        .arg("--trust")
        .arg(trust)
        .arg("--")
        .args(args)
        .output()
        .expect("spawn capsule exec")
}

#[test]
fn push_then_pull_gives_the_same_digest_and_the_same_file() {
    let registry = Registry::start();
    let original = bundle(&fixture("echo.py"));
    let reference = registry.reference("tasks/echo:v1");
    let (digest, _) = push(&original, &reference);

    // Pushing again: same digest, nothing uploaded.
    let (again, output) = push(&original, &reference);
    assert_eq!(again, digest);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("(0 blobs uploaded"), "{stderr}");

    // Pulled by tag into a file: byte for byte the pushed bundle, and it verifies.
    let out = tempfile::tempdir().expect("tempdir");
    let pulled: PathBuf = out.path().join("echo.capsule");
    let (mut command, _cache) = fresh_capsule();
    let output = command
        .arg("pull")
        .arg(&reference)
        .arg("-o")
        .arg(&pulled)
        .arg("--trust")
        .arg(&test_key().1)
        .output()
        .expect("spawn capsule pull");
    assert_success(&output, "capsule pull -o");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), digest);
    assert_eq!(sha256_file(&pulled), sha256_file(&original));
    let output = capsule()
        .arg("verify")
        .arg(&pulled)
        .arg("--trust")
        .arg(&test_key().1)
        .output()
        .expect("spawn capsule verify");
    assert_success(&output, "capsule verify of the pulled bundle");

    // The registry holds the manifest under that digest.
    let pinned = format!("{}@{digest}", registry.reference("tasks/echo"));
    let (mut command, _cache) = fresh_capsule();
    let output = command
        .arg("pull")
        .arg(&pinned)
        .arg("--trust")
        .arg(&test_key().1)
        .output()
        .expect("spawn capsule pull");
    assert_success(&output, "capsule pull by digest");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), digest);
}

#[test]
fn exec_oci_fetches_only_this_hosts_code_and_then_needs_no_network() {
    let registry = Registry::start();
    let source = bundle(&fixture("echo.js"));
    let (digest, _) = push(&source, &registry.reference("tasks/echo-js:v1"));
    let manifest = manifest_of(&source);
    let (host, other) = match std::env::consts::ARCH {
        "x86_64" => ("x86_64", "aarch64"),
        _ => ("aarch64", "x86_64"),
    };
    let host_code = cwasm_digest(&manifest, host);
    let other_code = cwasm_digest(&manifest, other);
    let log_before = registry.log();

    let (mut command, cache) = fresh_capsule();
    let output = exec_oci(
        &mut command,
        &registry.reference("tasks/echo-js:v1"),
        &test_key().1,
        &["a", "2"],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer = envelope(&output);
    assert_eq!(answer["result"], json!({"args": ["a", 2]}), "{answer}");

    let log = registry.log()[log_before.len()..].to_string();
    let blob_gets = |hex: &str| {
        log.lines()
            .filter(|l| l.contains("GET /v2/") && l.contains(hex))
            .count()
    };
    let host_hex = host_code.trim_start_matches("sha256:");
    let other_hex = other_code.trim_start_matches("sha256:");
    assert_eq!(
        blob_gets(host_hex),
        1,
        "this host's code fetched once:\n{log}"
    );
    assert_eq!(
        blob_gets(other_hex),
        0,
        "the other target's code is never fetched:\n{log}"
    );

    // Pinned by digest, a second exec with the same store asks the registry nothing.
    drop(registry);
    let mut command = capsule();
    command.env("CAPSULE_CACHE_DIR", cache.path());
    let pinned = format!("oci://127.0.0.1:1/unused@{digest}");
    let output = exec_oci(&mut command, &pinned, &test_key().1, &["b"]);
    // The registry is gone: the store must serve everything, or the exec fails.
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(envelope(&output)["result"], json!({"args": ["b"]}));
}

#[test]
fn a_blob_altered_in_the_registry_is_refused_before_anything_runs() {
    let registry = Registry::start();
    let source = bundle(&fixture("echo.py"));
    let reference = registry.reference("tasks/tampered:v1");
    push(&source, &reference);
    let host = if std::env::consts::ARCH == "x86_64" {
        "x86_64"
    } else {
        "aarch64"
    };
    let code = cwasm_digest(&manifest_of(&source), host);
    let file = registry.blob_file(code.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&file).expect("read the blob in the registry's storage");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&file, bytes).expect("alter the blob");

    let (mut command, _cache) = fresh_capsule();
    let output = exec_oci(&mut command, &reference, &test_key().1, &[]);
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer = envelope(&output);
    assert_eq!(answer["error"]["error_type"], "bundle_invalid", "{answer}");
    assert_eq!(answer["execution"]["attempts"], 0, "nothing ran: {answer}");
}

#[test]
fn untrusted_and_missing_bundles_are_refused() {
    let registry = Registry::start();
    let source = bundle(&fixture("echo.py"));
    let reference = registry.reference("tasks/untrusted:v1");
    push(&source, &reference);
    let (_, stranger) = make_key("stranger");
    let (mut command, _cache) = fresh_capsule();
    let output = exec_oci(&mut command, &reference, &stranger, &[]);
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        envelope(&output)["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not a trusted key")),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );

    let (mut command, _cache) = fresh_capsule();
    let output = exec_oci(
        &mut command,
        &registry.reference("tasks/absent:v1"),
        &test_key().1,
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    let message = envelope(&output)["error"]["message"].to_string();
    assert!(message.contains("tasks/absent:v1"), "{message}");

    let output = capsule()
        .args(["exec", "oci://tasks/echo:v1", "--allow-unsigned"])
        .output()
        .expect("spawn capsule exec");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("names no registry host"), "{stderr}");
}

#[test]
fn basic_auth_from_the_environment_and_from_docker_config() {
    let registry = Registry::start_with_basic_auth("ci", "s3cret-pw");
    let source = bundle(&fixture("echo.py"));
    let reference = registry.reference("tasks/private:v1");

    let output = capsule()
        .arg("push")
        .arg(&source)
        .arg(&reference)
        .output()
        .expect("spawn capsule push");
    assert_eq!(output.status.code(), Some(1), "anonymous push must fail");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("credentials"), "{stderr}");

    let output = capsule()
        .arg("push")
        .arg(&source)
        .arg(&reference)
        .env("CAPSULE_REGISTRY_USERNAME", "ci")
        .env("CAPSULE_REGISTRY_PASSWORD", "s3cret-pw")
        .output()
        .expect("spawn capsule push");
    assert_success(&output, "push with basic auth from the environment");

    let docker = tempfile::tempdir().expect("docker config dir");
    let auth = base64::engine::general_purpose::STANDARD.encode("ci:s3cret-pw");
    std::fs::write(
        docker.path().join("config.json"),
        json!({"auths": {registry.host(): {"auth": auth}}}).to_string(),
    )
    .expect("write config.json");
    let (mut command, _cache) = fresh_capsule();
    command.env("DOCKER_CONFIG", docker.path());
    let output = exec_oci(&mut command, &reference, &test_key().1, &["x"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        envelope(&output)["result"],
        json!({"args": ["x"], "kwargs": {}})
    );
}

#[test]
fn worker_requests_may_name_registry_references() {
    let registry = Registry::start();
    let source = bundle(&fixture("echo.py"));
    let (digest, _) = push(&source, &registry.reference("tasks/worker:v1"));
    let pinned = format!("{}@{digest}", registry.reference("tasks/worker"));
    let mut worker = Worker::start(&[]);
    for (id, reference) in [
        registry.reference("tasks/worker:v1"),
        pinned.clone(),
        pinned,
    ]
    .iter()
    .enumerate()
    {
        let answer = worker.call(&json!({"id": id, "bundle": reference, "args": [id]}));
        assert_eq!(answer["envelope"]["success"], true, "{answer}");
        assert_eq!(
            answer["envelope"]["result"]["args"],
            json!([id]),
            "{answer}"
        );
    }
    let answer = worker.call(&json!({"id": "bad", "bundle": "oci://nohost", "args": []}));
    assert_eq!(answer["envelope"]["success"], false, "{answer}");
    assert_eq!(
        answer["envelope"]["error"]["error_type"], "invalid_args",
        "{answer}"
    );
}
