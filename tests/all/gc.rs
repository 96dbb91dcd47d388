//! Issue 17: `capsule gc` and automatic eviction bound the caches, and never remove what a
//! running process uses.

use crate::support::{assert_success, bundle, capsule, exec_json_in, fixture, test_key};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

const AREAS: &[&str] = &["store/bundles-b3", "store/blobs", "store/layers-v2"];

/// Every entry of the store's areas, relative to the cache directory.
fn entries(cache: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for area in AREAS {
        if let Ok(items) = std::fs::read_dir(cache.join(area)) {
            for item in items.flatten() {
                names.push(format!("{area}/{}", item.file_name().to_string_lossy()));
            }
        }
    }
    names.sort();
    names
}

/// What the live markers under `in-use/` list.
fn listed_in_use(cache: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for marker in std::fs::read_dir(cache.join("in-use")).expect("in-use dir").flatten() {
        let text = std::fs::read_to_string(marker.path()).unwrap_or_default();
        names.extend(text.lines().map(String::from));
    }
    names
}

fn gc(cache: &Path, args: &[&str]) -> String {
    let output = capsule()
        .env("CAPSULE_CACHE_DIR", cache)
        .arg("gc")
        .args(args)
        .output()
        .expect("spawn capsule gc");
    assert_success(&output, "capsule gc");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn exec_ok(bundle: &Path, cache: &Path, env: &[(&str, &str)]) {
    let cache_text = cache.to_string_lossy().into_owned();
    let mut env = env.to_vec();
    env.push(("CAPSULE_CACHE_DIR", &cache_text));
    let (code, envelope) = exec_json_in(bundle, &["--", "1"], None, &env);
    assert_eq!(code, Some(0), "{envelope}");
}

/// Sets the modification time of every store entry to two hours ago.
fn age_everything(cache: &Path) {
    let old = SystemTime::now() - Duration::from_secs(7200);
    for name in entries(cache) {
        let file = std::fs::File::open(cache.join(&name)).expect("open entry");
        file.set_modified(old).expect("set mtime");
    }
}

#[test]
fn r17_gc_bounds_the_caches_and_spares_what_running_processes_use() {
    let py = bundle(&fixture("echo.py"));
    let js = bundle(&fixture("echo.js"));
    let dir = tempfile::tempdir().expect("tempdir");
    let cache: PathBuf = dir.path().to_path_buf();
    exec_ok(&py, &cache, &[]);
    exec_ok(&js, &cache, &[]);
    let all = entries(&cache);
    assert!(all.len() >= 5, "{all:?}");

    // A worker keeps the JavaScript bundle loaded while everything else is collected.
    let mut worker = capsule()
        .env("CAPSULE_CACHE_DIR", &cache)
        .args(["worker", "--trust"])
        .arg(&test_key().1)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn worker");
    let mut input = worker.stdin.take().expect("stdin");
    let mut output = BufReader::new(worker.stdout.take().expect("stdout"));
    let mut call = |id: u32| -> Value {
        writeln!(input, "{}", json!({"id": id, "bundle": js, "args": [id]})).expect("write");
        input.flush().expect("flush");
        let mut line = String::new();
        output.read_line(&mut line).expect("read");
        serde_json::from_str(&line).expect("answer is JSON")
    };
    assert_eq!(call(1)["envelope"]["success"], true);

    // Entries a moment old are spared by default...
    let report = gc(&cache, &["--max-size", "0"]);
    assert!(report.contains("removed 0 entries"), "{report}");
    assert_eq!(entries(&cache), all);
    // ...and with `--min-age 0s` only what the worker uses stays.
    let report = gc(&cache, &["--max-size", "0", "--min-age", "0s"]);
    let in_use = listed_in_use(&cache);
    let left = entries(&cache);
    assert!(!left.is_empty() && left.len() < all.len(), "{report}\n{left:?}");
    for name in &left {
        assert!(in_use.contains(name), "`{name}` is not in use but was kept: {report}");
    }
    assert!(report.contains(&format!("kept {} in use", left.len())), "{report}");
    assert_eq!(call(2)["envelope"]["success"], true, "the worker still runs");
    drop(input);
    assert!(worker.wait().expect("wait").success());

    // Nobody uses anything now: everything goes; the bundles still run (verified anew).
    gc(&cache, &["--max-size", "0", "--min-age", "0s"]);
    assert_eq!(entries(&cache), Vec::<String>::new());
    exec_ok(&py, &cache, &[]);

    // Automatic eviction past CAPSULE_CACHE_MAX_SIZE: writing the JavaScript bundle's entries
    // evicts the (old) Python ones, and keeps its own.
    age_everything(&cache);
    let python_entries = entries(&cache);
    exec_ok(&js, &cache, &[("CAPSULE_CACHE_MAX_SIZE", "1MB")]);
    let after = entries(&cache);
    assert!(!after.is_empty(), "the running exec kept its own entries");
    for name in &python_entries {
        assert!(!after.contains(name), "`{name}` was not evicted: {after:?}");
    }
    exec_ok(&js, &cache, &[]);
}
