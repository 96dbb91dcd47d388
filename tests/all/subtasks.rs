//! Sub-tasks: a task calling another task of its bundle gets a fresh instance under the callee's
//! manifest policy, narrowed by what the caller has left, never widened by guest code.

use crate::support::{bundle, exec_json_in, fixture};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A project with a `data/` directory, for the file cases.
fn project() -> tempfile::TempDir {
    let work = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(work.path().join("data")).expect("mkdir");
    work
}

fn run(
    source: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Option<i32>, Value, tempfile::TempDir) {
    let work = project();
    let (code, envelope) = exec_json_in(&bundle(&fixture(source)), args, Some(work.path()), env);
    (code, envelope, work)
}

fn subtask(envelope: &Value, index: usize) -> &Value {
    &envelope["execution"]["subtasks"][index]
}

#[test]
fn guest_code_cannot_widen_a_subtask_policy() {
    for source in ["subtasks.py", "subtasks.js"] {
        bundle(&fixture(source));
        let started = Instant::now();
        let (code, envelope, _work) = run(source, &["--", "widen"], &[]);
        assert_eq!(code, Some(0), "{source}: {envelope}");
        let result = &envelope["result"];
        assert_eq!(result["error_type"], "timeout", "{source}: {envelope}");
        assert!(
            result["message"]
                .as_str()
                .unwrap_or_default()
                .contains("1000 ms"),
            "{source}: {result}"
        );
        assert!(started.elapsed() < Duration::from_secs(4), "{source}");
        let record = subtask(&envelope, 0);
        assert_eq!(record["task_name"], "spin");
        assert_eq!(record["policy"]["timeout_ms"], 1000, "{source}: {record}");
        assert!(
            record["policy"]["compute"]["FUEL"]
                .as_u64()
                .unwrap_or(u64::MAX)
                <= 100_000_000_000,
            "{source}: the child got more than HIGH: {record}"
        );
        assert_eq!(record["error_type"], "timeout");
    }
}

#[test]
fn a_subtask_gets_no_more_files_env_or_memory_than_declared_and_held() {
    for source in ["subtasks.py", "subtasks.js"] {
        // `data` is read-only for the caller, read-write as the child declares it: read-only wins.
        let (code, envelope, work) = run(source, &["--", "write"], &[]);
        assert_eq!(code, Some(0), "{source}: {envelope}");
        assert_eq!(
            envelope["result"]["error_type"], "permission_denied",
            "{source}: {envelope}"
        );
        assert!(
            !work.path().join("data/from_child.txt").exists(),
            "{source}"
        );
        assert_eq!(
            subtask(&envelope, 0)["policy"]["allowed_files"][0]["mode"],
            "ro"
        );

        // The child declares SUB_SECRET, the caller does not hold it: the child cannot see it.
        let (_, envelope, _work) = run(
            source,
            &["--", "env"],
            &[("SUB_SECRET", "hidden"), ("SHARED", "visible")],
        );
        assert_eq!(
            envelope["result"]["result"],
            json!({"SUB_SECRET": null, "SHARED": "visible"}),
            "{source}: {envelope}"
        );

        let (_, envelope, _work) = run(source, &["--", "bomb"], &[]);
        assert_eq!(
            envelope["result"]["error_type"], "memory_limit",
            "{source}: {envelope}"
        );
        assert_eq!(subtask(&envelope, 0)["policy"]["ram_bytes"], 32_000_000);
    }
}

#[test]
fn a_subtask_never_outlives_its_caller() {
    for source in ["subtasks.py", "subtasks.js"] {
        bundle(&fixture(source));
        let started = Instant::now();
        let (code, envelope, _work) = run(source, &["--task", "short"], &[]);
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_millis(2500),
            "{source}: took {elapsed:?}"
        );
        let record = subtask(&envelope, 0);
        assert_eq!(
            record["task_name"],
            if source.ends_with(".py") {
                "spin_long"
            } else {
                "spinLong"
            }
        );
        assert!(
            record["policy"]["timeout_ms"].as_u64().unwrap_or(u64::MAX) <= 1500,
            "{source}: {record}"
        );
        assert_eq!(record["error_type"], "timeout", "{source}: {envelope}");
        // The caller itself ran out of time too, or returned the child's timeout.
        assert!(
            code == Some(1) || envelope["result"]["error_type"] == "timeout",
            "{source}: {envelope}"
        );
    }
}

#[test]
fn subtask_arguments_results_and_nesting_pass_through() {
    for source in ["subtasks.py", "subtasks.js"] {
        let (code, envelope, _work) = run(source, &["--", "nested"], &[]);
        assert_eq!(code, Some(0), "{source}: {envelope}");
        let expected = if source.ends_with(".py") {
            json!({"args": [1, [2]], "kwargs": {"key": "value"}})
        } else {
            json!({"args": [1, [2], "value"], "kwargs": {}})
        };
        assert_eq!(
            envelope["result"]["result"]["result"], expected,
            "{source}: {envelope}"
        );
        let depths: Vec<_> = envelope["execution"]["subtasks"]
            .as_array()
            .expect("subtasks")
            .iter()
            .map(|r| {
                (
                    r["task_name"].as_str().unwrap_or_default().to_string(),
                    r["depth"].as_u64(),
                )
            })
            .collect();
        assert_eq!(
            depths,
            [("echo".to_string(), Some(2)), ("main".to_string(), Some(1))],
            "{source}"
        );
    }
}

#[test]
fn a_subtask_is_retried_as_its_own_policy_says() {
    for source in ["subtasks.py", "subtasks.js"] {
        let (code, envelope, _work) = run(source, &["--", "retries"], &[]);
        assert_eq!(code, Some(0), "{source}: {envelope}");
        assert_eq!(
            envelope["result"]["error_type"], "task_error",
            "{source}: {envelope}"
        );
        let record = subtask(&envelope, 0);
        assert_eq!(record["task_name"], "flaky");
        assert_eq!(
            record["attempts"], 3,
            "max_retries=2: three attempts: {record}"
        );
        assert_eq!(
            envelope["execution"]["attempts"], 1,
            "the caller itself ran once"
        );
    }
}

#[test]
fn r17_verbose_prints_stages_and_subtask_lifecycle_on_stderr_only() {
    let bundle = bundle(&fixture("subtasks.py"));
    let work = project();
    let exec = |extra: &[&str], case: &str| {
        crate::support::capsule()
            .current_dir(work.path())
            .arg("exec")
            .arg(&bundle)
            .args(["--json", "--trust"])
            .arg(&crate::support::test_key().1)
            .args(extra)
            .args(["--", case])
            .output()
            .expect("spawn capsule exec")
    };
    let output = exec(&["--verbose"], "nested");
    let envelope = crate::support::envelope(&output);
    assert_eq!(output.status.code(), Some(0), "{envelope}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    for stage in ["verify", "load", "instantiate", "run", "total"] {
        let line = stderr
            .lines()
            .find(|l| l.starts_with(&format!("capsule: {stage} ")))
            .unwrap_or_else(|| panic!("no `{stage}` line in:\n{stderr}"));
        assert!(line.contains(" ms"), "{line}");
    }
    for expected in [
        "sub-task `main` (depth 1) starts: timeout",
        "sub-task `echo` (depth 2) starts:",
        "sub-task `echo` (depth 2) ended: ok after 1 attempt(s)",
        "sub-task `main` (depth 1) ended: ok after 1 attempt(s)",
    ] {
        assert!(stderr.contains(expected), "no `{expected}` in:\n{stderr}");
    }
    // Failed attempts and their retries are told too.
    let output = exec(&["-v"], "retries");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(crate::support::envelope(&output)["success"], true);
    assert!(
        stderr.contains("attempt 1 of `flaky` failed: task_error; retrying")
            && stderr.contains("attempt 3 of `flaky` failed: task_error\n")
            && stderr.contains("sub-task `flaky` (depth 1) ended: task_error after 3 attempt(s)"),
        "{stderr}"
    );
    // Without the flag, none of it.
    let quiet = exec(&[], "nested");
    assert_eq!(
        crate::support::envelope(&quiet)["result"],
        envelope["result"]
    );
    assert!(
        !String::from_utf8_lossy(&quiet.stderr).contains("capsule:"),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
}
