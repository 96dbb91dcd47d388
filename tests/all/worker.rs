//! `capsule worker`: many calls over one NDJSON stream, each in a fresh instance, under the same
//! limits as `exec`.

use crate::support::{Worker, bundle, fixture};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

fn request(id: usize, bundle: &Path, args: Value) -> Value {
    json!({"id": id, "bundle": bundle, "args": args})
}

fn assert_ok(answer: &Value) -> &Value {
    assert_eq!(
        answer["envelope"]["success"], true,
        "request failed: {answer}"
    );
    &answer["envelope"]["result"]
}

#[test]
fn a_thousand_sequential_requests_succeed_in_fresh_instances() {
    for (echo, counter) in [("echo.py", "counter.py"), ("echo.js", "counter.js")] {
        let echo = bundle(&fixture(echo));
        let counter = bundle(&fixture(counter));
        let mut worker = Worker::start(&[]);
        for i in 0..1000 {
            let answer = worker.call(&request(i, &echo, json!([i, format!("n{i}")])));
            assert_eq!(answer["id"], i);
            assert_eq!(assert_ok(&answer)["args"], json!([i, format!("n{i}")]));
            // Every call starts from the snapshot: module state never carries over.
            if i % 100 == 0 {
                let answer = worker.call(&request(i, &counter, json!([])));
                assert_eq!(assert_ok(&answer), &json!(1), "state leaked between calls");
            }
        }
        assert!(worker.finish().is_empty());
    }
}

#[test]
fn two_hundred_concurrent_requests_succeed() {
    let py = bundle(&fixture("echo.py"));
    let js = bundle(&fixture("echo.js"));
    // Threads in one process, and single-threaded child processes behind a router.
    for extra in [
        &["--max-in-flight", "8"][..],
        &["--max-in-flight", "8", "--processes", "2"],
    ] {
        let mut worker = Worker::start(extra);
        let requests = (0..200)
            .map(|i| request(i, if i % 2 == 0 { &py } else { &js }, json!([i])))
            .collect();
        let answers = worker.call_all(requests);
        assert_eq!(answers.len(), 200, "{extra:?}");
        for i in 0..200 {
            let answer = &answers[&i.to_string()];
            assert_eq!(assert_ok(answer)["args"], json!([i]), "{extra:?}");
        }
        // Malformed lines are answered through the router too.
        worker.send_line("not json");
        assert_eq!(worker.receive()["id"], Value::Null);
        assert!(worker.finish().is_empty());
    }
}

#[test]
fn guest_output_without_a_newline_never_reaches_the_stream() {
    for source in ["partial_line.py", "partial_line.js"] {
        let task = bundle(&fixture(source));
        let mut worker = Worker::start(&[]);
        let answers = worker.call_all((0..20).map(|i| request(i, &task, json!([i]))).collect());
        for i in 0..20 {
            let envelope = &answers[&i.to_string()]["envelope"];
            assert_eq!(envelope["result"], i, "{source}: {envelope}");
            assert_eq!(envelope["output"]["stdout"], r#"{"id": 0, "envelope": "#);
            assert_eq!(envelope["output"]["stderr"], "half a line");
        }
        assert!(worker.finish().is_empty());
    }
}

#[test]
fn a_timed_out_request_does_not_stall_the_others() {
    let loops = [
        bundle(&fixture("limits_cpu.py")),
        bundle(&fixture("limits_cpu.js")),
    ];
    let echo = bundle(&fixture("echo.js"));
    let mut worker = Worker::start(&["--max-in-flight", "4"]);
    let started = Instant::now();
    // Two CPU loops (timeout = "1s") hold both cores; quick calls must still get through.
    worker.send(&json!({"id": "loop-py", "bundle": loops[0]}));
    worker.send(&json!({"id": "loop-js", "bundle": loops[1]}));
    for i in 0..50 {
        let answer = worker.call(&request(i, &echo, json!([i])));
        assert_eq!(assert_ok(&answer)["args"], json!([i]));
    }
    let quick = started.elapsed();
    assert!(
        quick < Duration::from_millis(900),
        "50 quick calls took {quick:?} next to two CPU loops"
    );
    for _ in 0..2 {
        let answer = worker.receive();
        let error = &answer["envelope"]["error"];
        assert_eq!(error["error_type"], "timeout", "{answer}");
        assert!(error["message"].as_str().unwrap_or("").contains("1000 ms"));
    }
    let looped = started.elapsed();
    assert!(
        // Generous: on a loaded 2-core machine the first verification of the two bundles alone
        // took 0.5 s; a loop that was not preempted would run for 15 s (HIGH).
        looped < Duration::from_millis(2500),
        "the CPU loops ended after {looped:?}"
    );
    assert!(worker.finish().is_empty());
}

#[test]
fn limits_hold_in_the_worker_as_in_exec() {
    // Memory and fuel limits, with a deadline far enough away that a loaded machine (the suite
    // runs tests in parallel) cannot turn them into timeouts.
    let mut roomy = Worker::start(&["--request-timeout", "10s"]);
    for (source, error_type, names) in [
        ("limits_memory.py", "memory_limit", "ram = 32000000 bytes"),
        ("limits_memory.js", "memory_limit", "ram = "),
        ("limits_fuel.py", "out_of_fuel", "fuel"),
        ("limits_fuel.js", "out_of_fuel", "fuel"),
    ] {
        let task = bundle(&fixture(source));
        let answer = roomy.call(&json!({"id": source, "bundle": task}));
        let error = &answer["envelope"]["error"];
        assert_eq!(error["error_type"], error_type, "{source}: {answer}");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains(names), "{source}: {message}");
    }
    assert!(roomy.finish().is_empty());
    let mut worker = Worker::start(&["--request-timeout", "300ms"]);
    // The task declares 1 s; the worker's deadline narrows it (the message names 300 ms; the
    // time bound leaves room for the first verification of the bundle on a loaded machine).
    for source in ["limits_sleep.py", "limits_sleep.js"] {
        let task = bundle(&fixture(source));
        let started = Instant::now();
        let answer = worker.call(&json!({"id": source, "bundle": task}));
        let error = &answer["envelope"]["error"];
        assert_eq!(error["error_type"], "timeout", "{source}: {answer}");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains("300 ms"), "{source}: {message}");
        // Left running, the sleep would end at the task's own 1 s (naming 1000 ms) or after 30 s;
        // the wall-clock bound only leaves room for a machine loaded by the suite.
        assert!(started.elapsed() < Duration::from_secs(10), "{source}");
    }
    // A request's own timeout narrows further; a wider one is refused.
    let sleep = bundle(&fixture("limits_sleep.py"));
    let answer = worker.call(&json!({"id": 1, "bundle": sleep, "timeout": "100ms"}));
    assert!(
        answer["envelope"]["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("100 ms"),
        "{answer}"
    );
    let answer = worker.call(&json!({"id": 2, "bundle": sleep, "timeout": "5s"}));
    assert_eq!(answer["envelope"]["error"]["error_type"], "invalid_args");
    assert!(worker.finish().is_empty());
}

#[test]
fn malformed_lines_are_answered_with_their_id_and_the_worker_goes_on() {
    let echo = bundle(&fixture("echo.py"));
    let mut worker = Worker::start(&[]);
    let cases = [
        ("this is not json".to_string(), Value::Null),
        (json!({"id": 5}).to_string(), json!(5)),
        (
            json!({"id": "u", "bundle": echo, "color": "red"}).to_string(),
            json!("u"),
        ),
        (
            json!({"id": [1], "bundle": echo, "args": 3}).to_string(),
            json!([1]),
        ),
        (
            json!({"id": 6, "bundle": echo, "timeout": "soon"}).to_string(),
            json!(6),
        ),
        (
            json!({"id": 7, "bundle": "/nonexistent.capsule"}).to_string(),
            json!(7),
        ),
        (
            json!({"id": 8, "bundle": echo, "task": "nope"}).to_string(),
            json!(8),
        ),
    ];
    for (line, id) in cases {
        worker.send_line(&line);
        let answer = worker.receive();
        assert_eq!(answer["id"], id, "{line}");
        assert_eq!(answer["envelope"]["success"], false, "{line}");
        assert!(
            answer["envelope"]["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let answer = worker.call(&request(9, &echo, json!({"kwargs": {"k": 1}})));
    assert_eq!(assert_ok(&answer)["kwargs"], json!({"k": 1}));
    assert!(worker.finish().is_empty());
}

#[test]
fn an_untrusted_bundle_is_refused_by_the_worker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unsigned = dir.path().join("unsigned.capsule");
    let output = crate::support::build(&fixture("echo.js"), &unsigned);
    crate::support::assert_success(&output, "capsule build");
    let mut worker = Worker::start(&[]);
    let answer = worker.call(&json!({"id": 1, "bundle": unsigned}));
    assert_eq!(answer["envelope"]["error"]["error_type"], "bundle_invalid");
    assert_eq!(answer["envelope"]["execution"]["attempts"], 0);
    assert!(worker.finish().is_empty());
}

#[test]
fn eof_drains_every_request_in_flight() {
    let echo = bundle(&fixture("echo.py"));
    let sleep = bundle(&fixture("limits_sleep.js"));
    for extra in [&[][..], &["--processes", "2"]] {
        let mut worker = Worker::start(extra);
        worker.send(&json!({"id": "slow", "bundle": sleep}));
        for i in 0..20 {
            worker.send(&request(i, &echo, json!([i])));
        }
        let answers = worker.finish();
        assert_eq!(answers.len(), 21, "{extra:?}");
        let slow = answers
            .iter()
            .find(|a| a["id"] == "slow")
            .expect("slow answered");
        assert_eq!(slow["envelope"]["error"]["error_type"], "timeout");
    }
}

#[test]
fn memory_stays_flat_over_ten_thousand_requests() {
    for source in ["echo.js", "echo.py"] {
        let echo = bundle(&fixture(source));
        let mut worker = Worker::start(&["--max-in-flight", "4"]);
        let batch = |worker: &mut Worker, from: usize, to: usize| {
            let answers =
                worker.call_all((from..to).map(|i| request(i, &echo, json!([i]))).collect());
            assert!(answers.values().all(|a| a["envelope"]["success"] == true));
        };
        batch(&mut worker, 0, 1000);
        let after_1k = worker.rss_kib();
        for step in 1..10 {
            batch(&mut worker, step * 1000, (step + 1) * 1000);
        }
        let after_10k = worker.rss_kib();
        eprintln!(
            "{source}: RSS after 1,000 requests {after_1k} KiB, after 10,000 {after_10k} KiB"
        );
        // 10%, with a floor of 4 MiB: allocator arenas and runtime threads settle by a few MiB
        // once, under load from other processes; a leak of 500 bytes per request grows by more.
        let allowed = (after_1k / 10).max(4096);
        assert!(
            after_10k <= after_1k + allowed,
            "{source}: RSS grew from {after_1k} KiB to {after_10k} KiB"
        );
        assert!(worker.finish().is_empty());
    }
}

/// The child processes of `pid` (Linux: /proc/PID/task/*/children).
fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return children;
    };
    for task in tasks.flatten() {
        let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        children.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    children.sort_unstable();
    children
}

#[test]
fn r17_a_killed_worker_process_is_replaced_and_its_requests_answered() {
    let busy = bundle(&fixture("busy.py"));
    let mut worker = Worker::start(&["--max-in-flight", "8", "--processes", "2"]);
    let started = Instant::now();
    let mut before = children_of(worker.child.id());
    while before.len() < 2 && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
        before = children_of(worker.child.id());
    }
    assert_eq!(before.len(), 2, "two child workers: {before:?}");

    // Load: 300 calls of a few milliseconds each; one child is killed after the 40th answer.
    let count = 300;
    let mut input = worker.input.take().expect("stdin open");
    let feeder = std::thread::spawn(move || {
        for i in 0..count {
            writeln!(
                input,
                "{}",
                json!({"id": i, "bundle": busy, "args": [20000]})
            )
            .expect("write request");
        }
        input.flush().expect("flush");
        input
    });
    let mut answers = HashMap::new();
    let mut lost = 0;
    for n in 0..count {
        if n == 40 {
            let status = std::process::Command::new("kill")
                .args(["-KILL", &before[0].to_string()])
                .status()
                .expect("run kill");
            assert!(status.success());
        }
        let answer = worker.receive();
        let envelope = &answer["envelope"];
        if envelope["success"] != true {
            assert_eq!(envelope["error"]["error_type"], "internal", "{answer}");
            assert!(
                envelope["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("exited before answering")),
                "{answer}"
            );
            lost += 1;
        } else {
            assert_eq!(envelope["result"], json!(2666466670000u64), "{answer}");
        }
        assert!(
            answers.insert(answer["id"].to_string(), answer).is_none(),
            "answered twice"
        );
    }
    worker.input = Some(feeder.join().expect("feeder"));
    assert_eq!(answers.len(), count, "every request answered once");
    // The killed child was busy: it held requests, and only it did.
    assert!(lost >= 1 && lost < count, "lost {lost} of {count}");

    // Later requests all succeed, on a replaced child.
    let echo = bundle(&fixture("echo.py"));
    let later = worker.call_all(
        (0..40)
            .map(|i| request(1000 + i, &echo, json!([i])))
            .collect(),
    );
    for i in 0..40 {
        assert_eq!(
            assert_ok(&later[&(1000 + i).to_string()])["args"],
            json!([i])
        );
    }
    let after = children_of(worker.child.id());
    assert_eq!(after.len(), 2, "the dead child was replaced: {after:?}");
    assert!(!after.contains(&before[0]), "{before:?} -> {after:?}");
    assert!(after.contains(&before[1]), "{before:?} -> {after:?}");
    assert!(worker.finish().is_empty());
}
