//! Issue 2: the guest images, pre-initialized with a user module and run (through the real
//! compiler and runner).

use crate::support::{bundle, exec_json, exec_json_in, fixture};
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

#[test]
fn python_sum_of_squares() {
    let (code, envelope) = exec_json(&bundle(&fixture("sumsq.py")), &[]);
    assert_eq!(code, Some(0), "{envelope}");
    assert_eq!(envelope["result"], json!(333_332_833_333_500_000_u64));
}

#[test]
fn javascript_sum_of_squares() {
    let (code, envelope) = exec_json(&bundle(&fixture("sumsq.js")), &[]);
    assert_eq!(code, Some(0), "{envelope}");
    assert_eq!(envelope["result"], json!("333332833333500000"));
}

#[test]
fn python_exception_is_a_structured_error_with_traceback() {
    let (code, envelope) = exec_json(&bundle(&fixture("raises.py")), &[]);
    assert_eq!(code, Some(1), "{envelope}");
    let error = &envelope["error"];
    assert_eq!(error["error_type"], "task_error");
    assert_eq!(error["message"], "ValueError: bad input 42");
    let traceback = error["traceback"].as_str().expect("traceback");
    assert!(
        traceback.contains("Traceback (most recent call last)"),
        "{traceback}"
    );
    assert!(
        traceback.contains("raises.py\", line 5, in check"),
        "{traceback}"
    );
}

#[test]
fn javascript_exception_is_a_structured_error_with_stack() {
    let (code, envelope) = exec_json(&bundle(&fixture("raises.js")), &[]);
    assert_eq!(code, Some(1), "{envelope}");
    let error = &envelope["error"];
    assert_eq!(error["error_type"], "task_error");
    assert_eq!(error["message"], "RangeError: bad input 42");
    let stack = error["traceback"].as_str().expect("stack");
    assert!(stack.contains("at check (raises.js"), "{stack}");
}

#[test]
fn javascript_async_task_and_sdk_alias() {
    let (code, envelope) = exec_json(&bundle(&fixture("async_task.js")), &["--", "20"]);
    assert_eq!(code, Some(0), "{envelope}");
    assert_eq!(envelope["result"], json!(41));
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// Two runs of one snapshot: fresh randomness, the real clock, and a directory and an environment
/// variable that did not exist when the snapshot was taken.
fn check_snapshot_hygiene(source: &str) {
    let bundle = bundle(&fixture(source));
    let work = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(work.path().join("probe")).expect("mkdir");
    std::fs::write(work.path().join("probe/note.txt"), "made after the build").expect("write");
    let mut results: Vec<Value> = Vec::new();
    for value in ["first", "second"] {
        let (code, envelope) =
            exec_json_in(&bundle, &[], Some(work.path()), &[("CAPSULE_PROBE", value)]);
        assert_eq!(code, Some(0), "{envelope}");
        let result = envelope["result"].clone();
        assert_eq!(result["env"], value, "{result}");
        assert_eq!(result["files"], json!(["note.txt"]), "{result}");
        assert_eq!(result["content"], "made after the build", "{result}");
        let seen = result["now"].as_f64().expect("now");
        assert!(
            (seen - now()).abs() < 60.0,
            "the guest's clock reads {seen}, the host's {}",
            now()
        );
        results.push(result);
    }
    assert_ne!(
        results[0]["random"], results[1]["random"],
        "two runs drew the same random number"
    );
    // The snapshot saw the clock frozen at SOURCE_DATE_EPOCH (0 here), not the build's real time.
    assert_eq!(results[0]["build_time"].as_f64(), Some(0.0));
}

#[test]
fn python_snapshot_hygiene_and_runtime_stdlib_import() {
    check_snapshot_hygiene("hygiene.py");
    let work = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(work.path().join("probe")).expect("mkdir");
    std::fs::write(work.path().join("probe/note.txt"), "x").expect("write");
    let (_, envelope) = exec_json_in(&bundle(&fixture("hygiene.py")), &[], Some(work.path()), &[]);
    assert_eq!(envelope["result"]["fraction"], "1/2", "{envelope}");
    assert_eq!(
        envelope["result"]["env"],
        Value::Null,
        "an unset variable must be absent"
    );
}

#[test]
fn javascript_snapshot_hygiene() {
    check_snapshot_hygiene("hygiene.js");
}
