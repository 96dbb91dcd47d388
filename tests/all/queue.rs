//! Issue 18, the work queue: `capsule worker --nats` against a real `nats-server -js` and bundles
//! pushed to a real registry, with `capsule submit`, `jobs` and `results` as the clients.

use crate::servers::{NatsServer, Registry, free_port};
use crate::support::{assert_success, bundle, capsule, fixture, make_key, test_key};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Short, so that a killed worker's jobs come back within the test.
const ACK_WAIT: &str = "2s";

/// A `capsule worker --nats` process, SIGKILLed when dropped.
struct QueueWorker {
    child: Child,
}

impl QueueWorker {
    fn start(nats: &NatsServer, queue: &str, name: &str) -> Self {
        Self::start_with(
            nats,
            queue,
            name,
            &["--ack-wait", ACK_WAIT, "--max-deliver", "5"],
        )
    }

    fn start_with(nats: &NatsServer, queue: &str, name: &str, extra: &[&str]) -> Self {
        let child = capsule()
            .args(["worker", "--nats", &nats.url(), "--queue", queue])
            .args(["--concurrency", "4", "--name", name])
            .args(extra)
            .arg("--trust")
            .arg(&test_key().1)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn capsule worker --nats");
        QueueWorker { child }
    }

    /// SIGKILL: no chance to ack or clean up.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for QueueWorker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A registry holding the queue fixtures, pushed once per test process: (registry, references
/// by name). `queue_job` is signed by the test key, `untrusted` by another key.
fn registry() -> &'static (Registry, HashMap<&'static str, String>) {
    static REGISTRY: OnceLock<(Registry, HashMap<&'static str, String>)> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let registry = Registry::start();
        let mut references = HashMap::new();
        let trusted = bundle(&fixture("queue_job.py"));
        references.insert("queue_job", push(&registry, &trusted, "queue-job:1"));
        let other = make_key("queue-other");
        let untrusted = Path::new(env!("CARGO_TARGET_TMPDIR")).join("queue-untrusted.capsule");
        let output = capsule()
            .arg("build")
            .arg(fixture("queue_job.py"))
            .arg("-o")
            .arg(&untrusted)
            .arg("--force")
            .arg("--sign")
            .arg(&other.0)
            .output()
            .expect("spawn capsule build");
        assert_success(&output, "capsule build (other key)");
        references.insert("untrusted", push(&registry, &untrusted, "untrusted:1"));
        (registry, references)
    })
}

/// `capsule push`, then the digest-pinned reference.
fn push(registry: &Registry, bundle: &Path, tag: &str) -> String {
    let reference = registry.reference(tag);
    let output = capsule()
        .arg("push")
        .arg(bundle)
        .arg(&reference)
        .output()
        .expect("spawn capsule push");
    assert_success(&output, "capsule push");
    let digest = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert!(digest.starts_with("sha256:"), "push printed {digest:?}");
    let repository = reference.rsplit_once(':').expect("tag").0;
    format!("{repository}@{digest}")
}

fn reference(name: &str) -> String {
    registry().1[name].clone()
}

fn submit(nats: &NatsServer, queue: &str, reference: &str, extra: &[&str]) -> Output {
    capsule()
        .args(["submit", "--nats", &nats.url(), "--queue", queue, reference])
        .args(extra)
        .output()
        .expect("spawn capsule submit")
}

/// `capsule jobs --json`.
fn counts(nats: &NatsServer, queue: &str) -> Value {
    let output = capsule()
        .args(["jobs", "--nats", &nats.url(), "--queue", queue, "--json"])
        .output()
        .expect("spawn capsule jobs");
    assert_success(&output, "capsule jobs");
    serde_json::from_slice(&output.stdout).expect("jobs --json is JSON")
}

fn finished(counts: &Value) -> u64 {
    ["done", "failed", "lost"]
        .iter()
        .map(|k| counts[k].as_u64().expect("count"))
        .sum()
}

/// `capsule results --json`, one document per line.
fn results(nats: &NatsServer, queue: &str) -> Vec<Value> {
    let output = capsule()
        .args(["results", "--nats", &nats.url(), "--queue", queue, "--json"])
        .output()
        .expect("spawn capsule results");
    assert_success(&output, "capsule results");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a result line is JSON"))
        .collect()
}

/// Waits until `n` jobs have final results (or fails after `limit`).
fn wait_finished(nats: &NatsServer, queue: &str, n: u64, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        let counts = counts(nats, queue);
        if finished(&counts) >= n {
            return counts;
        }
        assert!(
            started.elapsed() < limit,
            "only {counts} of {n} jobs finished within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// [`wait_finished`], then up to `settle` for `running` to drop to 0: a worker publishes a job's
/// result before it acknowledges the job (so that a crash between the two loses nothing), and
/// for that moment the job counts as both finished and running.
fn wait_settled(
    nats: &NatsServer,
    queue: &str,
    n: u64,
    limit: Duration,
    settle: Duration,
) -> Value {
    let mut counts = wait_finished(nats, queue, n, limit);
    let started = Instant::now();
    while counts["running"] != 0 && started.elapsed() < settle {
        std::thread::sleep(Duration::from_millis(200));
        counts = self::counts(nats, queue);
    }
    counts
}

/// Submits jobs `range` of `queue_job` with ids `job-<i>` from a few threads.
fn submit_many(nats: &NatsServer, queue: &str, range: std::ops::Range<usize>, sleep_ms: u64) {
    let reference = reference("queue_job");
    let ids: Vec<usize> = range.collect();
    std::thread::scope(|scope| {
        for chunk in ids.chunks(ids.len().div_ceil(4).max(1)) {
            let reference = &reference;
            scope.spawn(move || {
                for i in chunk {
                    let args = json!({"args": [i], "kwargs": {"sleep_ms": sleep_ms}}).to_string();
                    let output = submit(
                        nats,
                        queue,
                        reference,
                        &["--id", &format!("job-{i}"), "--args-json", &args],
                    );
                    assert_success(&output, "capsule submit");
                    assert_eq!(
                        String::from_utf8_lossy(&output.stdout).trim(),
                        format!("job-{i}")
                    );
                }
            });
        }
    });
}

/// Every job `0..n` has exactly one final result, `ok`, with its own answer.
fn assert_all_ok(results: &[Value], n: usize) {
    let mut by_id: HashMap<String, &Value> = HashMap::new();
    for result in results {
        let id = result["job_id"].as_str().expect("job_id").to_string();
        assert!(
            by_id.insert(id.clone(), result).is_none(),
            "two results for {id}"
        );
    }
    assert_eq!(
        by_id.len(),
        n,
        "results for {} jobs, expected {n}",
        by_id.len()
    );
    for i in 0..n {
        let result = by_id
            .get(&format!("job-{i}"))
            .unwrap_or_else(|| panic!("job-{i} has no result"));
        assert_eq!(result["status"], "ok", "{result}");
        assert_eq!(
            result["envelope"]["result"],
            json!({"i": i, "square": i * i}),
            "{result}"
        );
    }
}

#[test]
fn two_hundred_jobs_over_two_workers_one_killed_three_times() {
    let nats = NatsServer::start();
    let queue = "kill";
    let _steady = QueueWorker::start(&nats, queue, "steady");
    let mut victim = QueueWorker::start(&nats, queue, "victim");
    submit_many(&nats, queue, 0..200, 100);
    for (kill, after) in [(1, 40), (2, 90), (3, 140)] {
        wait_finished(&nats, queue, after, Duration::from_secs(60));
        victim.kill();
        victim = QueueWorker::start(&nats, queue, &format!("victim-{kill}"));
    }
    // A killed worker's jobs are delivered again once their ack wait (2 s) runs out, and may still
    // be in a worker's hands (seen as `running`) when the last result is in: it finds the result
    // there and acknowledges them. Give those redeliveries their ack wait and more.
    let counts = wait_settled(
        &nats,
        queue,
        200,
        Duration::from_secs(60),
        Duration::from_secs(20),
    );
    assert_eq!(
        counts,
        json!({"queued": 0, "running": 0, "done": 200, "failed": 0, "lost": 0})
    );
    let results = results(&nats, queue);
    assert_eq!(results.len(), 200, "one line per job");
    assert_all_ok(&results, 200);
    // The kills hit jobs in flight: they were delivered again and finished elsewhere.
    assert!(
        results.iter().any(|r| r["attempt"].as_u64() > Some(1)),
        "no job was redelivered after three kills"
    );
}

#[test]
fn a_restarted_server_loses_no_job() {
    let mut nats = NatsServer::start();
    let queue = "restart";
    submit_many(&nats, queue, 0..60, 40);
    let _worker = QueueWorker::start(&nats, queue, "w");
    wait_finished(&nats, queue, 10, Duration::from_secs(60));
    nats.restart();
    let counts = wait_finished(&nats, queue, 60, Duration::from_secs(60));
    assert_eq!(counts["done"], 60, "{counts}");
    assert_all_ok(&results(&nats, queue), 60);
}

#[test]
fn submit_wait_prints_the_final_result() {
    let nats = NatsServer::start();
    let _worker = QueueWorker::start(&nats, "wait", "w");
    let output = submit(
        &nats,
        "wait",
        &reference("queue_job"),
        &[
            "--id",
            "answer",
            "--args-json",
            "[6]",
            "--wait",
            "--wait-timeout",
            "60s",
        ],
    );
    assert_success(&output, "capsule submit --wait");
    let result: Value = serde_json::from_slice(&output.stdout).expect("one JSON result");
    assert_eq!(result["job_id"], "answer");
    assert_eq!(result["status"], "ok");
    assert_eq!(result["attempt"], 1);
    assert_eq!(result["worker"], "w");
    assert_eq!(result["envelope"]["result"], json!({"i": 6, "square": 36}));
    // Submitting a finished job id again does not run it again: the same result stands.
    let again = submit(
        &nats,
        "wait",
        &reference("queue_job"),
        &["--id", "answer", "--args-json", "[7]", "--wait"],
    );
    assert_success(&again, "capsule submit --wait (same id)");
    let second: Value = serde_json::from_slice(&again.stdout).expect("one JSON result");
    assert_eq!(second["envelope"]["result"], json!({"i": 6, "square": 36}));
    assert_eq!(results(&nats, "wait").len(), 1);
}

#[test]
fn a_past_deadline_expires_without_running() {
    let nats = NatsServer::start();
    let _worker = QueueWorker::start(&nats, "deadline", "w");
    let output = submit(
        &nats,
        "deadline",
        &reference("queue_job"),
        &[
            "--args-json",
            "[1]",
            "--deadline",
            "1000",
            "--wait",
            "--wait-timeout",
            "60s",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let result: Value = serde_json::from_slice(&output.stdout).expect("one JSON result");
    assert_eq!(result["status"], "expired", "{result}");
    assert_eq!(result["envelope"]["error"]["error_type"], "expired");
    assert_eq!(
        result["envelope"]["execution"]["attempts"], 0,
        "it ran: {result}"
    );
}

#[test]
fn an_untrusted_bundle_is_invalid_without_retries() {
    let nats = NatsServer::start();
    let _worker = QueueWorker::start(&nats, "untrusted", "w");
    let output = submit(
        &nats,
        "untrusted",
        &reference("untrusted"),
        &["--id", "bad", "--wait", "--wait-timeout", "60s"],
    );
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let result: Value = serde_json::from_slice(&output.stdout).expect("one JSON result");
    assert_eq!(result["status"], "bundle_invalid", "{result}");
    assert_eq!(result["attempt"], 1);
    assert_eq!(result["envelope"]["error"]["error_type"], "bundle_invalid");
    // Terminated, not redelivered: nothing is pending after a whole ack wait.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        counts(&nats, "untrusted"),
        json!({"queued": 0, "running": 0, "done": 0, "failed": 1, "lost": 0})
    );
    let results = results(&nats, "untrusted");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["attempt"], 1);
}

#[test]
fn a_job_whose_last_delivery_dies_is_lost_once() {
    let nats = NatsServer::start();
    let queue = "lost";
    // One delivery allowed, so killing the worker that has it exhausts the job.
    let mut first = QueueWorker::start_with(
        &nats,
        queue,
        "first",
        &["--ack-wait", "1s", "--max-deliver", "1"],
    );
    let args = json!({"args": [5], "kwargs": {"sleep_ms": 20000}}).to_string();
    let output = submit(
        &nats,
        queue,
        &reference("queue_job"),
        &["--id", "doomed", "--args-json", &args],
    );
    assert_success(&output, "capsule submit");
    let started = Instant::now();
    while counts(&nats, queue)["running"] != 1 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the job never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    first.kill();
    // The survivor hears the server's max-deliveries advisory and stores `lost`.
    // (Without --ack-wait/--max-deliver: it keeps the queue's consumer as it is.)
    let _second = QueueWorker::start_with(&nats, queue, "second", &[]);
    let counts = wait_settled(
        &nats,
        queue,
        1,
        Duration::from_secs(30),
        Duration::from_secs(10),
    );
    assert_eq!(
        counts,
        json!({"queued": 0, "running": 0, "done": 0, "failed": 0, "lost": 1})
    );
    let results = results(&nats, queue);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["status"], "lost", "{}", results[0]);
    assert_eq!(results[0]["attempt"], 1);
    assert_eq!(results[0]["envelope"]["error"]["error_type"], "lost");
}

#[test]
fn jobs_counts_queued_then_done_and_failed() {
    let nats = NatsServer::start();
    let queue = "counts";
    submit_many(&nats, queue, 0..3, 0);
    let expired = submit(
        &nats,
        queue,
        &reference("queue_job"),
        &["--args-json", "[9]", "--deadline", "1"],
    );
    assert_success(&expired, "capsule submit --deadline");
    assert_eq!(
        counts(&nats, queue),
        json!({"queued": 4, "running": 0, "done": 0, "failed": 0, "lost": 0})
    );
    let _worker = QueueWorker::start(&nats, queue, "w");
    let counts = wait_settled(
        &nats,
        queue,
        4,
        Duration::from_secs(60),
        Duration::from_secs(10),
    );
    assert_eq!(
        counts,
        json!({"queued": 0, "running": 0, "done": 3, "failed": 1, "lost": 0})
    );
    let text = capsule()
        .args(["results", "--nats", &nats.url(), "--queue", queue])
        .output()
        .expect("spawn capsule results");
    assert_success(&text, "capsule results");
    let text = String::from_utf8_lossy(&text.stdout);
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(
        text.contains(r#"job-2 ok attempt=1 worker=w {"i":2,"square":4}"#),
        "{text}"
    );
    assert!(
        text.contains(" expired attempt=1 worker=w expired: "),
        "{text}"
    );
}

#[test]
fn bad_input_and_an_unreachable_server_are_clear_errors() {
    let nats = NatsServer::start();
    let nowhere = format!("nats://127.0.0.1:{}", free_port());
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "submit".into(),
                "--nats".into(),
                nowhere.clone(),
                "--queue".into(),
                "q".into(),
                "oci://127.0.0.1:1/r:1".into(),
            ],
            "cannot connect to NATS at `nats://127.0.0.1:",
        ),
        (
            vec![
                "jobs".into(),
                "--nats".into(),
                nowhere.clone(),
                "--queue".into(),
                "q".into(),
            ],
            "cannot connect to NATS",
        ),
        (
            vec![
                "submit".into(),
                "--nats".into(),
                nats.url(),
                "--queue".into(),
                "a.b".into(),
                "oci://127.0.0.1:1/r:1".into(),
            ],
            "invalid `--queue` `a.b`",
        ),
        (
            vec![
                "submit".into(),
                "--nats".into(),
                nats.url(),
                "--queue".into(),
                "q".into(),
                "task.capsule".into(),
            ],
            "expected `oci://",
        ),
        (
            vec![
                "submit".into(),
                "--nats".into(),
                nats.url(),
                "--queue".into(),
                "q".into(),
                "oci://127.0.0.1:1/r:1".into(),
                "--args-json".into(),
                "{".into(),
            ],
            "`--args-json` is not valid JSON",
        ),
        (
            vec![
                "submit".into(),
                "--nats".into(),
                nats.url(),
                "--queue".into(),
                "q".into(),
                "oci://127.0.0.1:1/r:1".into(),
                "--timeout".into(),
                "soon".into(),
            ],
            "invalid `--timeout`",
        ),
        (
            vec![
                "submit".into(),
                "--nats".into(),
                nats.url(),
                "--queue".into(),
                "q".into(),
                "oci://127.0.0.1:1/r:1".into(),
                "--id".into(),
                "a b".into(),
            ],
            "invalid `--id`",
        ),
        (
            vec![
                "submit".into(),
                "--nats".into(),
                nats.url(),
                "--queue".into(),
                "q".into(),
                "oci://127.0.0.1:1/r:1".into(),
                "--deadline".into(),
                "later".into(),
            ],
            "invalid `--deadline`",
        ),
        (
            vec![
                "worker".into(),
                "--nats".into(),
                nowhere.clone(),
                "--queue".into(),
                "q".into(),
            ],
            "cannot connect to NATS",
        ),
    ];
    for (args, expected) in cases {
        let output = capsule().args(&args).output().expect("spawn capsule");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?}: expected {expected:?} in:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
