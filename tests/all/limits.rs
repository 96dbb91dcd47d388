//! Issue 4: every declared limit is enforced by the runner, with a typed error naming the limit.

use crate::support::{
    assert_success, build, bundle, capsule, envelope, exec_json, exec_json_in, fixture, test_key,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn error_of(envelope: &Value) -> (&str, &str) {
    let error = &envelope["error"];
    (
        error["error_type"].as_str().unwrap_or_default(),
        error["message"].as_str().unwrap_or_default(),
    )
}

#[test]
fn fuel_exhaustion_is_out_of_fuel() {
    for source in ["limits_fuel.py", "limits_fuel.js"] {
        let (code, envelope) = exec_json(&bundle(&fixture(source)), &[]);
        assert_eq!(code, Some(1), "{source}: {envelope}");
        let (kind, message) = error_of(&envelope);
        assert_eq!(kind, "out_of_fuel", "{source}");
        assert!(message.contains("1000000000 fuel"), "{source}: {message}");
        assert_eq!(
            envelope["execution"]["fuel_consumed"], 1_000_000_000_u64,
            "{source}"
        );
    }
}

#[test]
fn a_memory_bomb_is_a_memory_limit_error() {
    for source in ["limits_memory.py", "limits_memory.js"] {
        let (code, envelope) = exec_json(&bundle(&fixture(source)), &[]);
        assert_eq!(code, Some(1), "{source}: {envelope}");
        let (kind, message) = error_of(&envelope);
        assert_eq!(kind, "memory_limit", "{source}: {message}");
        assert!(
            message.contains("ram = 32000000 bytes"),
            "{source}: {message}"
        );
        assert!(
            envelope["execution"]["peak_memory_bytes"]
                .as_u64()
                .expect("peak")
                <= 32_000_000,
            "{source}"
        );
    }
}

#[test]
fn a_cpu_loop_is_stopped_at_its_timeout() {
    for source in ["limits_cpu.py", "limits_cpu.js"] {
        let bundle = bundle(&fixture(source));
        // A first, shorter run verifies the bundle into the runner's store, so the timed run
        // measures the limit rather than the first verification.
        let _ = exec_json(&bundle, &["--timeout", "50ms"]);
        let started = Instant::now();
        let (code, envelope) = exec_json(&bundle, &[]);
        let took = started.elapsed();
        assert_eq!(code, Some(1), "{source}: {envelope}");
        assert_eq!(error_of(&envelope).0, "timeout", "{source}");
        assert!(error_of(&envelope).1.contains("1000 ms"), "{source}");
        // The guest is stopped at the deadline (its own clock says so); the whole process may take
        // longer on a machine loaded by the rest of the suite (3.99 s seen). A loop left running
        // would end out of fuel instead, and a sleep after 30 s.
        let ran = envelope["execution"]["duration_ms"]
            .as_f64()
            .unwrap_or(f64::MAX);
        assert!(ran < 1150.0, "{source}: the task ran {ran} ms");
        assert!(
            took < Duration::from_secs(10),
            "{source}: the whole exec took {took:?}"
        );
    }
}

#[test]
fn a_sleep_past_the_timeout_is_stopped() {
    for source in ["limits_sleep.py", "limits_sleep.js"] {
        let bundle = bundle(&fixture(source));
        let started = Instant::now();
        let (code, envelope) = exec_json(&bundle, &[]);
        assert_eq!(code, Some(1), "{source}: {envelope}");
        assert_eq!(error_of(&envelope).0, "timeout", "{source}");
        // The sleep (30 s) is cut at the deadline; the process may take longer on a loaded
        // machine (its first exec also verifies the bundle into the store).
        let ran = envelope["execution"]["duration_ms"]
            .as_f64()
            .unwrap_or(f64::MAX);
        assert!(ran < 1150.0, "{source}: the task ran {ran} ms");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{source}: {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn retries_are_counted() {
    let bundle = bundle(&fixture("limits_retries.py"));
    let work = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(work.path().join("state")).expect("mkdir");
    let (code, envelope) = exec_json_in(&bundle, &[], Some(work.path()), &[]);
    assert_eq!(code, Some(0), "{envelope}");
    assert_eq!(envelope["result"], 3);
    assert_eq!(envelope["execution"]["attempts"], 3);
    let (code, envelope) =
        exec_json_in(&bundle, &["--task", "always_fails"], Some(work.path()), &[]);
    assert_eq!(code, Some(1), "{envelope}");
    assert_eq!(
        envelope["execution"]["attempts"], 3,
        "max_retries=2 means three attempts"
    );
}

/// A project directory with `data/` (read-only grant), `out/` (read-write), a secret beside them
/// and a symlink from `data/` to it.
fn files_project() -> tempfile::TempDir {
    let work = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(work.path().join("data")).expect("mkdir");
    std::fs::create_dir(work.path().join("out")).expect("mkdir");
    std::fs::write(work.path().join("data/input.txt"), "input").expect("write");
    std::fs::write(work.path().join("secret.txt"), "secret").expect("write");
    std::os::unix::fs::symlink("../secret.txt", work.path().join("data/link")).expect("symlink");
    work
}

#[test]
fn files_are_confined_to_their_grants_and_modes_and_env_to_the_declared_names() {
    for source in ["limits_files.py", "limits_files.js"] {
        let work = files_project();
        let (code, envelope) = exec_json_in(
            &bundle(&fixture(source)),
            &[],
            Some(work.path()),
            &[("SECRET_TOKEN", "x")],
        );
        assert_eq!(code, Some(0), "{source}: {envelope}");
        let result = &envelope["result"];
        assert_eq!(result["read"], "input", "{source}");
        assert_eq!(result["write_rw"], "allowed", "{source}");
        for key in ["write_ro", "dotdot", "absolute", "symlink"] {
            assert!(
                result[key]
                    .as_str()
                    .expect("outcome")
                    .starts_with("refused"),
                "{source}: {key} was {}",
                result[key]
            );
        }
        assert_eq!(result["env"], json!([]), "{source}: variables leaked in");
        assert!(
            !work.path().join("data/new.txt").exists(),
            "{source}: wrote into a read-only grant"
        );
        assert_eq!(
            std::fs::read_to_string(work.path().join("out/new.txt")).expect("rw write"),
            "x"
        );

        let (code, envelope) = exec_json_in(
            &bundle(&fixture(source)),
            &["--task", "write_read_only"],
            Some(work.path()),
            &[],
        );
        assert_eq!(code, Some(1), "{source}: {envelope}");
        assert_eq!(
            error_of(&envelope).0,
            "permission_denied",
            "{source}: {envelope}"
        );
    }
}

#[test]
fn exec_time_flags_only_narrow() {
    let bundle = bundle(&fixture("limits_cpu.py"));
    let (code, envelope) = exec_json(&bundle, &["--timeout", "300ms"]);
    assert_eq!(code, Some(1), "{envelope}");
    assert!(error_of(&envelope).1.contains("300 ms"), "{envelope}");
    let (code, envelope) = exec_json(&bundle, &["--timeout", "10s"]);
    assert_eq!(code, Some(2), "{envelope}");
    assert!(
        error_of(&envelope)
            .1
            .contains("wider than task `main` declares"),
        "{envelope}"
    );
    let (code, envelope) = exec_json(&bundle, &["--compute", "LOW"]);
    assert_eq!(code, Some(1), "{envelope}");
    assert_eq!(error_of(&envelope).0, "out_of_fuel");
    let (code, envelope) = exec_json(&bundle, &["--ram", "12XB"]);
    assert_eq!(code, Some(2), "{envelope}");
}

#[test]
fn run_enforces_what_exec_enforces() {
    let output = capsule()
        .arg("run")
        .arg(fixture("limits_fuel.py"))
        .arg("--json")
        .output()
        .expect("spawn");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(envelope(&output)["error"]["error_type"], "out_of_fuel");
    let _ = test_key();
}

#[test]
fn capsule_toml_defaults_apply_and_task_values_win() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("capsule.toml"),
        "[tasks]\ndefault_compute = \"LOW\"\ndefault_ram = \"64MB\"\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("task.py"),
        "from capsule import task\n\n@task(ram=\"128MB\")\ndef main():\n    return 1\n",
    )
    .expect("write");
    let out = dir.path().join("task.capsule");
    let output = build(&dir.path().join("task.py"), &out);
    assert_success(&output, "capsule");
    let output = capsule()
        .arg("inspect")
        .arg("--json")
        .arg(&out)
        .output()
        .expect("spawn");
    let manifest: Value = serde_json::from_slice(&output.stdout).expect("manifest");
    let policy = &manifest["tasks"][0]["policy"];
    assert_eq!(policy["compute"], "LOW");
    assert_eq!(policy["ram_bytes"], 128_000_000);

    std::fs::write(
        dir.path().join("capsule.toml"),
        "[tasks]\ndefault_compute = \"FAST\"\n",
    )
    .expect("write");
    let output = build(&dir.path().join("task.py"), &out);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("compute"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn mounts_bind_or_narrow_declared_directories_and_never_widen() {
    let bundle = bundle(&fixture("limits_files.py"));
    let work = files_project();
    let elsewhere = tempfile::tempdir().expect("tempdir");
    std::fs::write(elsewhere.path().join("input.txt"), "bound elsewhere").expect("write");
    let data = format!("{}:data", elsewhere.path().display());
    let out_ro = format!("{}:/out:ro", work.path().join("out").display());
    let (code, envelope) = exec_json_in(
        &bundle,
        &["--mount", &data, "--mount", &out_ro],
        Some(work.path()),
        &[],
    );
    assert_eq!(code, Some(0), "{envelope}");
    assert_eq!(envelope["result"]["read"], "bound elsewhere");
    assert!(
        envelope["result"]["write_rw"]
            .as_str()
            .expect("outcome")
            .starts_with("refused"),
        "{envelope}"
    );

    let widen = format!("{}:data:rw", work.path().join("data").display());
    let (code, envelope) = exec_json_in(&bundle, &["--mount", &widen], Some(work.path()), &[]);
    assert_eq!(code, Some(2), "{envelope}");
    assert!(
        error_of(&envelope).1.contains("can only narrow"),
        "{envelope}"
    );

    let undeclared = format!("{}:secrets", work.path().display());
    let (code, envelope) = exec_json_in(&bundle, &["--mount", &undeclared], Some(work.path()), &[]);
    assert_eq!(code, Some(2), "{envelope}");
    assert!(
        error_of(&envelope).1.contains("does not declare"),
        "{envelope}"
    );
}

#[test]
fn r17_stack_exhaustion_is_a_stack_overflow_in_both_languages() {
    for (source, args) in [
        ("limits_stack.js", &[][..]),
        ("limits_stack.py", &["--", "native"][..]),
    ] {
        let (code, envelope) = exec_json(&bundle(&fixture(source)), args);
        assert_eq!(code, Some(1), "{source}: {envelope}");
        let (kind, message) = error_of(&envelope);
        assert_eq!(kind, "stack_overflow", "{source}: {envelope}");
        assert!(
            message.contains("overflowed its call stack") && message.contains("recursion"),
            "{source}: {message}"
        );
    }
    // Python's own recursion limit, reached first by plain Python recursion, stays a task error.
    let (code, envelope) = exec_json(&bundle(&fixture("limits_stack.py")), &["--", "plain"]);
    assert_eq!(code, Some(1), "{envelope}");
    let (kind, message) = error_of(&envelope);
    assert_eq!(kind, "task_error", "{envelope}");
    assert!(message.contains("RecursionError"), "{message}");
}

#[test]
fn r17_fuel_consumed_is_exact_when_a_deadline_stops_a_loop() {
    for source in ["limits_cpu.py", "limits_cpu.js"] {
        let bundle = bundle(&fixture(source));
        // The same loop, once stopped by its fuel (exactly 1e9 by construction)...
        let (_, by_fuel) = exec_json(&bundle, &["--compute", "LOW"]);
        assert_eq!(error_of(&by_fuel).0, "out_of_fuel", "{source}: {by_fuel}");
        let fuel_rate = 1e9 / by_fuel["execution"]["duration_ms"].as_f64().expect("ms");
        // ...and once by its deadline: the fuel it reports must match the time it ran. (Before,
        // a tight loop reported only what it burnt before its last call: 1/700 of it.)
        let (code, by_time) = exec_json(&bundle, &["--timeout", "600ms"]);
        assert_eq!(code, Some(1), "{source}: {by_time}");
        assert_eq!(error_of(&by_time).0, "timeout", "{source}: {by_time}");
        let fuel = by_time["execution"]["fuel_consumed"]
            .as_f64()
            .expect("fuel");
        let time_rate = fuel / by_time["execution"]["duration_ms"].as_f64().expect("ms");
        let ratio = time_rate / fuel_rate;
        assert!(
            (0.1..10.0).contains(&ratio),
            "{source}: {fuel} fuel in 600 ms is {ratio:.3} times the rate of the fuel-stopped run"
        );
    }
}

/// Runs task `task` of `bundle` in a fresh project directory with an empty `out/`; returns the
/// exit code, the envelope and the directory.
fn exec_disk(bundle: &std::path::Path, extra: &[&str]) -> (Option<i32>, Value, tempfile::TempDir) {
    let work = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(work.path().join("out")).expect("mkdir");
    let (code, envelope) = exec_json_in(bundle, extra, Some(work.path()), &[]);
    (code, envelope, work)
}

#[test]
fn r17_writes_past_the_disk_limit_fail_with_enospc_and_end_as_disk_limit() {
    for source in ["limits_disk.py", "limits_disk.js"] {
        let bundle = bundle(&fixture(source));
        let (code, envelope, _work) = exec_disk(&bundle, &["--", "500000"]);
        assert_eq!(code, Some(0), "{source}: {envelope}");
        assert_eq!(envelope["result"], 500_000, "{source}");

        let (code, envelope, work) = exec_disk(&bundle, &["--", "2000000"]);
        assert_eq!(code, Some(1), "{source}: {envelope}");
        let (kind, message) = error_of(&envelope);
        assert_eq!(kind, "disk_limit", "{source}: {envelope}");
        assert!(
            message.contains("disk = 1000000 bytes") && message.contains("ENOSPC"),
            "{source}: {message}"
        );
        let left = std::fs::metadata(work.path().join("out/big.bin")).expect("big.bin");
        assert!(
            left.len() <= 1_000_000,
            "{source}: {} bytes on disk",
            left.len()
        );

        // ENOSPC is an ordinary error the task can handle; deleted bytes count again.
        let (code, envelope, _work) = exec_disk(&bundle, &["--task", "give_back"]);
        assert_eq!(code, Some(0), "{source}: {envelope}");
        let result = &envelope["result"];
        if source.ends_with(".py") {
            assert_eq!(result["first"], 15 * 65536, "{source}: {result}");
            assert_eq!(result["refused"], 0, "{source}: {result}");
            assert_eq!(result["after_remove"], 900_000, "{source}: {result}");
            assert_eq!(result["rewritten"], 900_000, "{source}: {result}");
            assert_eq!(result["appended"], 15 * 65536, "{source}: {result}");
        } else {
            assert_eq!(result["refused"]["code"], "ENOSPC", "{source}: {result}");
            assert!(
                result["refused"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("no space left on device")),
                "{source}: {result}"
            );
            assert_eq!(result["size"], 950_000, "{source}: {result}");
        }
    }
}

#[test]
fn r17_disk_limits_narrow_at_exec_time_and_cover_sub_tasks() {
    let bundle = bundle(&fixture("limits_disk.py"));
    // A task that declares no limit can be given one; one that declares a limit cannot be widened.
    let (code, envelope, _work) = exec_disk(
        &bundle,
        &["--task", "unlimited", "--disk", "100KB", "--", "3000000"],
    );
    assert_eq!(code, Some(1), "{envelope}");
    assert_eq!(error_of(&envelope).0, "disk_limit", "{envelope}");
    let (code, envelope, _work) = exec_disk(&bundle, &["--task", "unlimited", "--", "3000000"]);
    assert_eq!(code, Some(0), "{envelope}");
    let (code, envelope, _work) = exec_disk(&bundle, &["--disk", "2MB", "--", "10"]);
    assert_eq!(code, Some(2), "{envelope}");
    assert!(error_of(&envelope).1.contains("--disk"), "{envelope}");
    let (code, envelope, _work) = exec_disk(&bundle, &["--disk", "lots", "--", "10"]);
    assert_eq!(code, Some(2), "{envelope}");

    // The caller wrote 600 KB of its 1 MB: its sub-task (10 MB of its own) gets the rest only.
    let (code, envelope, work) = exec_disk(&bundle, &["--task", "parent"]);
    assert_eq!(code, Some(0), "{envelope}");
    assert_eq!(envelope["result"]["error_type"], "disk_limit", "{envelope}");
    let child = std::fs::metadata(work.path().join("out/child.bin")).expect("child.bin");
    assert!(child.len() <= 400_000, "{} bytes", child.len());
    let policy = &envelope["execution"]["subtasks"][0]["policy"];
    assert_eq!(policy["disk_bytes"], 1_000_000, "{envelope}");
}
