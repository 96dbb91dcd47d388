//! Issue 17: `capsule gc` and automatic eviction bound the caches, and never remove what a running
//! process uses: a bundle being executed keeps its code and layers, and a build keeps the
//! compiler's caches.

use crate::support::{assert_success, bundle, capsule, fixture, test_key};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Store areas whose entries are collected (relative to the cache directory).
const STORE_AREAS: &[&str] = &["store/blobs", "store/bundles-b3", "store/layers-v2"];

/// The entries of the store's areas (dot names are staging files and markers).
fn entries(cache: &Path, area: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cache.join(area))
        .map(|items| {
            items
                .flatten()
                .map(|i| i.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn store_entries(cache: &Path) -> usize {
    STORE_AREAS.iter().map(|a| entries(cache, a).len()).sum()
}

fn in_cache(cache: &Path) -> Command {
    let mut command = capsule();
    command.env("CAPSULE_CACHE_DIR", cache);
    command
}

fn gc(cache: &Path) -> String {
    let output = in_cache(cache)
        .args(["gc", "--max-size", "0"])
        .output()
        .expect("spawn capsule gc");
    assert_success(&output, "capsule gc");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `kept N in use` from gc's report.
fn kept(report: &str) -> usize {
    report
        .split("kept ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `kept N` in {report}"))
}

fn exec(cache: &Path, bundle: &Path) -> Command {
    let mut command = in_cache(cache);
    command
        .arg("exec")
        .arg(bundle)
        .arg("--json")
        .arg("--trust")
        .arg(&test_key().1);
    command
}

fn succeeded(output: &Output) -> Value {
    assert_success(output, "capsule exec");
    let envelope: Value = serde_json::from_slice(&output.stdout).expect("one JSON envelope");
    assert_eq!(envelope["success"], true, "{envelope}");
    envelope
}

fn wait_for(path: &Path, child: &mut Child) {
    let started = Instant::now();
    while !path.exists() {
        if let Some(status) = child.try_wait().expect("wait") {
            panic!(
                "the exec ended early ({status}) without writing {}",
                path.display()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the exec never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the sleeper in `work` and returns once its task runs (its bundle is loaded).
fn start_sleeper(cache: &Path, sleeper: &Path, work: &Path) -> Child {
    let out = work.join("out");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("mkdir out");
    let mut child = exec(cache, sleeper)
        .current_dir(work)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the sleeper");
    wait_for(&out.join("started"), &mut child);
    child
}

/// Lets the sleeper finish: it imports from its stdlib layer, which must still be there.
fn finish_sleeper(child: Child, work: &Path) {
    std::fs::write(work.join("out/go"), "go").expect("write go");
    let output = child.wait_with_output().expect("wait for the sleeper");
    let envelope = succeeded(&output);
    assert_eq!(envelope["result"]["half"], "1/2", "{envelope}");
    assert_eq!(envelope["result"]["ratio"], 0.75, "{envelope}");
}

#[test]
fn r17_gc_and_automatic_eviction_spare_the_code_and_layers_of_a_running_exec() {
    let sleeper = bundle(&fixture("gc_sleeper.py"));
    let other = bundle(&fixture("echo.js"));
    let dir = tempfile::tempdir().expect("tempdir");
    let cache: PathBuf = dir.path().join("cache");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir work");

    // 1. First exec (full verification, layers unpacked): `capsule gc` removes everything else.
    succeeded(
        &exec(&cache, &other)
            .arg("--")
            .arg("1")
            .output()
            .expect("exec"),
    );
    let before = store_entries(&cache);
    let child = start_sleeper(&cache, &sleeper, &work);
    let report = gc(&cache);
    assert!(kept(&report) >= 1, "the sleeper's stdlib layer: {report}");
    assert!(!entries(&cache, "store/layers-v2").is_empty(), "{report}");
    assert!(before > 0);
    assert_eq!(
        store_entries(&cache),
        kept(&report),
        "only what is in use is left: {report}"
    );
    finish_sleeper(child, &work);

    // 2. Warm exec (code mapped from the store): the running exec keeps its code and layers while
    // another exec's automatic eviction (past a 1 MB limit) empties the rest of the store.
    succeeded(
        &exec(&cache, &sleeper)
            .current_dir(&work)
            .output()
            .expect("exec"),
    );
    let child = start_sleeper(&cache, &sleeper, &work);
    let evicting = exec(&cache, &other)
        .env("CAPSULE_CACHE_MAX_SIZE", "1MB")
        .arg("--")
        .arg("2")
        .output()
        .expect("exec");
    succeeded(&evicting);
    let report = gc(&cache);
    assert!(kept(&report) >= 2, "the sleeper's code and layer: {report}");
    assert_eq!(
        entries(&cache, "store/blobs").len(),
        1,
        "only the sleeper's code"
    );
    assert_eq!(
        store_entries(&cache),
        kept(&report),
        "only what is in use is left: {report}"
    );
    finish_sleeper(child, &work);

    // Nobody runs anything now: everything goes, and the bundle still runs (verified anew).
    let report = gc(&cache);
    assert_eq!(kept(&report), 0, "{report}");
    assert_eq!(store_entries(&cache), 0, "{report}");
    succeeded(
        &exec(&cache, &other)
            .arg("--")
            .arg("3")
            .output()
            .expect("exec"),
    );
}

#[test]
fn r17_gc_never_touches_the_compiler_caches_under_a_running_build() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let out = dir.path().join("echo.capsule");
    let mut build = in_cache(&cache)
        .arg("build")
        .arg(fixture("echo.js"))
        .args(["--target", "x86_64", "--sign"])
        .arg(&test_key().0)
        .arg("-o")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn build");
    let mut reports = Vec::new();
    while build.try_wait().expect("wait").is_none() {
        reports.push(gc(&cache));
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = build.wait_with_output().expect("build output");
    assert_success(&output, "capsule build beside capsule gc");
    let busy = reports
        .iter()
        .filter(|r| r.contains("a build is running"))
        .count();
    assert!(busy > 0, "no gc ran beside the build: {reports:?}");
    if cfg!(target_arch = "x86_64") {
        succeeded(
            &exec(&cache, &out)
                .arg("--")
                .arg("1")
                .output()
                .expect("exec"),
        );
    }

    // Once no build runs, the same command empties the compiler's caches (built again first: a
    // gc of the loop above may have run between the build's end and its exit).
    let again = in_cache(&cache)
        .arg("build")
        .arg(fixture("echo.js"))
        .args(["--target", "x86_64", "-o"])
        .arg(dir.path().join("again.capsule"))
        .output()
        .expect("spawn build");
    assert_success(&again, "capsule build");
    assert!(!entries(&cache, "compiler/incremental").is_empty());
    let report = gc(&cache);
    assert!(!report.contains("a build is running"), "{report}");
    assert!(
        entries(&cache, "compiler/incremental").is_empty(),
        "{report}"
    );
}

#[test]
fn r17_gc_spares_what_a_running_worker_has_loaded() {
    let py = bundle(&fixture("echo.py"));
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let mut worker = in_cache(&cache)
        .arg("worker")
        .arg("--trust")
        .arg(&test_key().1)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn worker");
    let mut input = worker.stdin.take().expect("stdin");
    let mut output = std::io::BufReader::new(worker.stdout.take().expect("stdout"));
    // Owns stdin: dropping it closes the stream, and the worker ends.
    let mut call = move |id: u32| -> Value {
        use std::io::{BufRead, Write};
        let request = serde_json::json!({"id": id, "bundle": py, "args": [id]});
        writeln!(input, "{request}").expect("write");
        input.flush().expect("flush");
        let mut line = String::new();
        output.read_line(&mut line).expect("read");
        serde_json::from_str(&line).expect("answer is JSON")
    };
    assert_eq!(call(1)["envelope"]["success"], true);
    let report = gc(&cache);
    assert!(kept(&report) >= 1, "the worker's stdlib layer: {report}");
    assert!(!entries(&cache, "store/layers-v2").is_empty(), "{report}");
    assert_eq!(store_entries(&cache), kept(&report), "{report}");
    assert_eq!(
        call(2)["envelope"]["success"],
        true,
        "the worker still runs"
    );
    drop(call);
    assert!(worker.wait().expect("wait").success());

    // The worker is gone, and its leases with it.
    let report = gc(&cache);
    assert_eq!((kept(&report), store_entries(&cache)), (0, 0), "{report}");
}

#[test]
fn r17_a_bad_cache_size_is_an_error_naming_the_flag_or_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let output = in_cache(&cache)
        .args(["gc", "--max-size", "lots"])
        .output()
        .expect("spawn gc");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`--max-size`") && stderr.contains("`lots`"),
        "{stderr}"
    );

    let output = in_cache(&cache)
        .env("CAPSULE_CACHE_MAX_SIZE", "huge")
        .arg("gc")
        .output()
        .expect("spawn gc");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`CAPSULE_CACHE_MAX_SIZE`") && stderr.contains("`huge`"),
        "{stderr}"
    );

    // After a command, the same mistake is a warning: the task's own outcome stands.
    let output = exec(&cache, &bundle(&fixture("echo.js")))
        .env("CAPSULE_CACHE_MAX_SIZE", "huge")
        .output()
        .expect("exec");
    succeeded(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("warning: cannot bound the caches"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`CAPSULE_CACHE_MAX_SIZE`") && stderr.contains("`huge`"),
        "{stderr}"
    );
}
