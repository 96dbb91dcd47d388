//! The worker protocol's code interpreter (manifests/worker-protocol.md): `run_code` in the
//! built-in interpreters, live sessions with a workspace, cancel, status, streaming, bounds.

use crate::support::Worker;
use base64::Engine as _;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn unb64(text: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text.as_str().expect("data is a string"))
        .expect("data is base64")
}

/// The value of a successful cell.
fn value(answer: &Value) -> &Value {
    assert_eq!(answer["envelope"]["success"], true, "cell failed: {answer}");
    &answer["envelope"]["result"]["value"]
}

fn error_type(answer: &Value) -> &str {
    answer["envelope"]["error"]["error_type"]
        .as_str()
        .or_else(|| answer["error"]["error_type"].as_str())
        .unwrap_or_else(|| panic!("not an error: {answer}"))
}

fn open(worker: &mut Worker, id: &str, request: Value) -> String {
    let mut request = request;
    request["id"] = json!(id);
    request["op"] = json!("session.open");
    let answer = worker.ask(&request);
    answer["session"]
        .as_str()
        .unwrap_or_else(|| panic!("session.open failed: {answer}"))
        .to_string()
}

fn cell(worker: &mut Worker, id: impl Into<Value>, session: &str, code: &str) -> Value {
    worker.ask(&json!({"id": id.into(), "op": "run_code", "session": session, "code": code}))
}

#[test]
fn run_code_returns_final_values_output_and_awaits_in_both_languages() {
    let mut worker = Worker::start(&[]);
    let hello = worker.ask(&json!({"id": "h", "op": "hello"}));
    assert_eq!(hello["protocol"], 2, "{hello}");
    assert_eq!(hello["languages"], json!(["python", "javascript"]));

    let py = worker.ask(&json!({"id": 1, "op": "run_code", "language": "python",
        "code": "import asyncio\nprint('hi')\nawait asyncio.sleep(0)\n6 * 7"}));
    assert_eq!(value(&py), 42, "{py}");
    assert_eq!(py["envelope"]["output"]["stdout"], "hi\n");
    let repr =
        worker.ask(&json!({"id": 2, "op": "run_code", "language": "python", "code": "{1, 2}"}));
    assert_eq!(repr["envelope"]["result"]["format"], "repr", "{repr}");
    assert_eq!(repr["envelope"]["result"]["repr"], "{1, 2}");
    let none =
        worker.ask(&json!({"id": 3, "op": "run_code", "language": "python", "code": "x = 1"}));
    assert_eq!(none["envelope"]["result"]["format"], "none", "{none}");

    let js = worker.ask(&json!({"id": 4, "op": "run_code", "language": "javascript",
        "code": "console.log('hey');\nconst n = await Promise.resolve(3);\n[1, 2, n].map(x => x * 2)"}));
    assert_eq!(value(&js), &json!([2, 4, 6]), "{js}");
    assert_eq!(js["envelope"]["output"]["stdout"], "hey\n");

    // Stateless: nothing is left for the next call.
    let fresh = worker.ask(&json!({"id": 5, "op": "run_code", "language": "python", "code": "x"}));
    assert_eq!(error_type(&fresh), "task_error", "{fresh}");
    assert!(worker.finish().is_empty());
}

#[test]
fn cell_errors_carry_the_cells_own_line_numbers() {
    let mut worker = Worker::start(&[]);
    let py = worker.ask(&json!({"id": 1, "op": "run_code", "language": "python",
        "code": "a = 1\nb = 2\nraise ValueError('boom')"}));
    assert_eq!(error_type(&py), "task_error");
    let traceback = py["envelope"]["error"]["traceback"]
        .as_str()
        .unwrap_or_default();
    assert!(traceback.contains("File \"<cell>\", line 3"), "{traceback}");
    assert!(
        !traceback.contains("_cells.py"),
        "interpreter frames leak: {traceback}"
    );

    let js = worker.ask(&json!({"id": 2, "op": "run_code", "language": "javascript",
        "code": "let a = 1;\nfunction f() {\n  throw new Error('boom');\n}\nf()"}));
    let stack = js["envelope"]["error"]["traceback"]
        .as_str()
        .unwrap_or_default();
    assert!(stack.contains("at f (<cell>:3"), "{stack}");
    assert!(stack.contains("(<cell>:5"), "{stack}");
    assert!(
        !stack.contains("run_code.js"),
        "interpreter frames leak: {stack}"
    );

    // In a session, a function of an earlier cell keeps its own cell's name and lines.
    let session = open(&mut worker, "o", json!({"language": "python"}));
    cell(
        &mut worker,
        3,
        &session,
        "def g():\n    raise KeyError('k')",
    );
    let failed = cell(&mut worker, 4, &session, "1\ng()");
    let traceback = failed["envelope"]["error"]["traceback"]
        .as_str()
        .unwrap_or_default();
    assert!(
        traceback.contains("File \"<cell 2>\", line 2, in <module>"),
        "{traceback}"
    );
    assert!(
        traceback.contains("File \"<cell 1>\", line 2, in g"),
        "{traceback}"
    );
    assert!(traceback.contains("raise KeyError('k')"), "{traceback}");
    assert!(worker.finish().is_empty());
}

#[test]
fn a_session_keeps_variables_functions_classes_and_imports_across_a_hundred_cells() {
    let mut worker = Worker::start(&[]);
    let py = open(&mut worker, "py", json!({"language": "python"}));
    let setup = cell(
        &mut worker,
        0,
        &py,
        "import statistics\ncount = 0\ndef bump(n):\n    global count\n    count += n\n    return count\nclass Box:\n    def __init__(self, v):\n        self.v = v",
    );
    assert_eq!(setup["envelope"]["success"], true, "{setup}");
    let js = open(&mut worker, "js", json!({"language": "javascript"}));
    let setup = cell(
        &mut worker,
        1000,
        &js,
        "let count = 0;\nconst step = 2;\nimplicit = 0;\nfunction bump(n) { count += n; implicit += 1; return count; }\nclass Box { constructor(v) { this.v = v; } }",
    );
    assert_eq!(setup["envelope"]["success"], true, "{setup}");
    for i in 1..=100 {
        let answer = cell(
            &mut worker,
            i,
            &py,
            "Box(bump(1)).v + int(statistics.mean([0, 0]))",
        );
        assert_eq!(value(&answer), i, "python cell {i}: {answer}");
        let answer = cell(&mut worker, 1000 + i, &js, "new Box(bump(step)).v");
        assert_eq!(value(&answer), 2 * i, "javascript cell {i}: {answer}");
    }
    // A sloppy-mode global assigned without a declaration persists too.
    let implicit = cell(&mut worker, 2000, &js, "implicit");
    assert_eq!(value(&implicit), 100, "{implicit}");
    let status = worker.ask(&json!({"id": "s", "op": "status"}));
    let sessions = status["status"]["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 2, "{status}");
    assert!(
        sessions
            .iter()
            .all(|s| s["cells"] == 101 || s["cells"] == 102),
        "{status}"
    );
    assert!(worker.finish().is_empty());
}

#[test]
fn workspace_files_go_both_ways_and_stay_confined() {
    let mut worker = Worker::start(&[]);
    let session = open(&mut worker, "o", json!({"language": "python"}));
    let written = worker.ask(&json!({"id": 1, "op": "files.write", "session": session,
        "path": "data/in.csv", "data": b64(b"a,b\n1,2\n")}));
    assert_eq!(written["written"], 8, "{written}");
    let read = cell(
        &mut worker,
        2,
        &session,
        "import csv, os\nrows = list(csv.reader(open('data/in.csv')))\nopen('/workspace/out.txt', 'w').write(str(len(rows)))\n[os.getcwd(), rows]",
    );
    assert_eq!(
        value(&read),
        &json!(["/workspace", [["a", "b"], ["1", "2"]]]),
        "{read}"
    );
    let out = worker.ask(
        &json!({"id": 3, "op": "files.read", "session": session, "path": "/workspace/out.txt"}),
    );
    assert_eq!(unb64(&out["data"]), b"2", "{out}");
    let listed = worker.ask(&json!({"id": 4, "op": "files.list", "session": session}));
    let paths: Vec<&str> = listed["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["path"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(paths, ["data", "data/in.csv", "out.txt"], "{listed}");
    let removed =
        worker.ask(&json!({"id": 5, "op": "files.remove", "session": session, "path": "data"}));
    assert_eq!(removed["removed"], true, "{removed}");
    let gone = cell(
        &mut worker,
        6,
        &session,
        "import os\nos.path.exists('data/in.csv')",
    );
    assert_eq!(value(&gone), false);

    // Confinement: `..`, absolute paths elsewhere, and a symlink the code made that leads out.
    for (id, path) in [(7, "../escape"), (8, "/etc/passwd"), (9, "a/../../x")] {
        let refused =
            worker.ask(&json!({"id": id, "op": "files.read", "session": session, "path": path}));
        assert_eq!(error_type(&refused), "invalid_args", "{path}: {refused}");
    }
    let link = cell(
        &mut worker,
        10,
        &session,
        "import os\ntry:\n    os.symlink('/etc/passwd', 'link')\nexcept OSError as e:\n    pass\nos.path.lexists('link')",
    );
    if value(&link) == true {
        let refused =
            worker.ask(&json!({"id": 11, "op": "files.read", "session": session, "path": "link"}));
        assert_eq!(error_type(&refused), "invalid_args", "{refused}");
        let refused = worker.ask(&json!({"id": 12, "op": "files.write", "session": session, "path": "link", "data": b64(b"x")}));
        assert_eq!(error_type(&refused), "invalid_args", "{refused}");
    }
    let unknown = worker.ask(&json!({"id": 13, "op": "files.list", "session": "s-nope"}));
    assert_eq!(error_type(&unknown), "invalid_args", "{unknown}");
    assert!(worker.finish().is_empty());
}

#[test]
fn two_sessions_share_neither_state_nor_files() {
    let mut worker = Worker::start(&[]);
    let a = open(&mut worker, "a", json!({"language": "python"}));
    let b = open(&mut worker, "b", json!({"language": "python"}));
    assert_ne!(a, b);
    cell(
        &mut worker,
        1,
        &a,
        "secret = 'a'\nopen('mine.txt', 'w').write('a')",
    );
    let state = cell(&mut worker, 2, &b, "secret");
    assert_eq!(error_type(&state), "task_error", "{state}");
    let files = cell(
        &mut worker,
        3,
        &b,
        "import os\nsorted(os.listdir('/workspace'))",
    );
    assert_eq!(value(&files), &json!([]), "{files}");
    let listed = worker.ask(&json!({"id": 4, "op": "files.list", "session": b}));
    assert_eq!(listed["files"], json!([]), "{listed}");
    // The workspace is deleted with its session.
    let closed = worker.ask(&json!({"id": 5, "op": "session.close", "session": a}));
    assert_eq!(closed["closed"], true, "{closed}");
    let after = cell(&mut worker, 6, &a, "1");
    assert_eq!(error_type(&after), "session_lost", "{after}");
    assert!(worker.finish().is_empty());
}

#[test]
fn a_timeout_or_a_memory_bomb_ends_only_its_own_sessions_cell() {
    let mut worker = Worker::start(&[]);
    let looping = open(&mut worker, "l", json!({"language": "python"}));
    let other = open(&mut worker, "o", json!({"language": "javascript"}));
    let bomb = open(
        &mut worker,
        "m",
        json!({"language": "python", "ram": "64MB"}),
    );
    cell(&mut worker, 1, &other, "let kept = 'yes'");
    cell(&mut worker, 2, &bomb, "kept = 'yes'");
    worker.send(&json!({"id": "loop", "op": "run_code", "session": looping,
        "code": "while True:\n    pass", "timeout": "800ms", "compute": "HIGH"}));
    // The other sessions answer while the loop runs.
    let started = Instant::now();
    let answer = cell(&mut worker, 3, &other, "kept");
    assert_eq!(value(&answer), "yes", "{answer}");
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "waited for the loop"
    );
    let blown = cell(&mut worker, 4, &bomb, "x = bytearray(200_000_000)");
    assert_eq!(error_type(&blown), "memory_limit", "{blown}");
    let survived = cell(&mut worker, 5, &bomb, "kept");
    assert_eq!(
        value(&survived),
        "yes",
        "a MemoryError leaves the session: {survived}"
    );
    let stopped = worker.receive_any();
    assert_eq!(stopped["id"], "loop");
    assert_eq!(error_type(&stopped), "timeout", "{stopped}");
    let lost = cell(&mut worker, 6, &looping, "1");
    assert_eq!(error_type(&lost), "session_lost", "{lost}");
    let message = lost["envelope"]["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("timeout"), "{message}");
    let answer = cell(&mut worker, 7, &other, "kept");
    assert_eq!(value(&answer), "yes", "{answer}");
    assert!(worker.finish().is_empty());
}

#[test]
fn idle_sessions_expire_and_the_least_recently_used_is_evicted() {
    let mut worker = Worker::start(&["--session-ttl", "400ms", "--max-sessions", "2"]);
    let a = open(&mut worker, "a", json!({"language": "python"}));
    let b = open(&mut worker, "b", json!({"language": "javascript"}));
    cell(&mut worker, 1, &a, "1");
    // A third session evicts b, the least recently used.
    let c = open(&mut worker, "c", json!({"language": "python"}));
    let evicted = cell(&mut worker, 2, &b, "1");
    assert_eq!(error_type(&evicted), "session_lost", "{evicted}");
    assert!(evicted.to_string().contains("evicted"), "{evicted}");
    std::thread::sleep(Duration::from_millis(1200));
    for (id, session) in [(3, &a), (4, &c)] {
        let expired = cell(&mut worker, id, session, "1");
        assert_eq!(error_type(&expired), "session_lost", "{expired}");
        assert!(expired.to_string().contains("expired"), "{expired}");
    }
    let status = worker.ask(&json!({"id": "s", "op": "status"}));
    assert_eq!(status["status"]["sessions"], json!([]), "{status}");
    assert!(worker.finish().is_empty());
}

#[test]
fn cancel_stops_a_running_call_and_a_queued_cell_runs_nothing() {
    let mut worker = Worker::start(&[]);
    worker.send(
        &json!({"id": "spin", "op": "run_code", "language": "javascript", "code": "for (;;) {}", "compute": "HIGH"}),
    );
    std::thread::sleep(Duration::from_millis(200));
    let status = worker.ask(&json!({"id": "s", "op": "status"}));
    let running = &status["status"]["running"];
    assert_eq!(running[0]["id"], "spin", "{status}");
    assert_eq!(running[0]["language"], "javascript", "{status}");
    let started = Instant::now();
    let cancel = worker.ask(&json!({"id": "c", "op": "cancel", "target": "spin"}));
    assert_eq!(cancel["cancelled"], true, "{cancel}");
    let spun = worker.receive_any();
    assert_eq!(error_type(&spun), "cancelled", "{spun}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // In a session: the cell waiting behind a running one is cancelled without running; the
    // running one, once cancelled, takes its session with it.
    let session = open(&mut worker, "o", json!({"language": "python"}));
    cell(&mut worker, 1, &session, "ran = []");
    worker.send(&json!({"id": "busy", "op": "run_code", "session": session, "code": "import time\ntime.sleep(1.5)"}));
    worker.send(
        &json!({"id": "queued", "op": "run_code", "session": session, "code": "ran.append(1)"}),
    );
    std::thread::sleep(Duration::from_millis(200));
    let cancel = worker.ask(&json!({"id": "c2", "op": "cancel", "target": "queued"}));
    assert_eq!(cancel["cancelled"], true, "{cancel}");
    let queued = worker.receive_any();
    assert_eq!(queued["id"], "queued");
    assert_eq!(error_type(&queued), "cancelled", "{queued}");
    let busy = worker.receive_any();
    assert_eq!(busy["envelope"]["success"], true, "{busy}");
    let ran = cell(&mut worker, 2, &session, "ran");
    assert_eq!(value(&ran), &json!([]), "the cancelled cell ran: {ran}");
    worker.send(
        &json!({"id": "busy2", "op": "run_code", "session": session, "code": "while True: pass", "compute": "HIGH"}),
    );
    std::thread::sleep(Duration::from_millis(200));
    worker.ask(&json!({"id": "c3", "op": "cancel", "target": "busy2"}));
    let busy = worker.receive_any();
    assert_eq!(error_type(&busy), "cancelled", "{busy}");
    let lost = cell(&mut worker, 3, &session, "1");
    assert_eq!(error_type(&lost), "session_lost", "{lost}");
    let nothing = worker.ask(&json!({"id": "c4", "op": "cancel", "target": "no-such"}));
    assert_eq!(nothing["cancelled"], false, "{nothing}");
    let status = worker.ask(&json!({"id": "s2", "op": "status"}));
    assert!(status["status"]["failed"].as_u64() >= Some(4), "{status}");
    assert!(
        status["status"]["completed"].as_u64() >= Some(3),
        "{status}"
    );
    assert!(worker.finish().is_empty());
}

#[test]
fn streamed_output_arrives_as_events_before_the_answer() {
    let mut worker = Worker::start(&[]);
    worker.send(
        &json!({"id": 1, "op": "run_code", "language": "python", "stream": true,
        "code": "import sys\nprint('one')\nprint('é' * 3, file=sys.stderr)\nprint('two')\n'done'"}),
    );
    let mut stdout = String::new();
    let mut stderr = String::new();
    let answer = loop {
        let line = worker.receive_any();
        match line["event"].as_str() {
            Some("stdout") => stdout.push_str(line["data"].as_str().unwrap_or_default()),
            Some("stderr") => stderr.push_str(line["data"].as_str().unwrap_or_default()),
            Some(other) => panic!("unknown event {other}"),
            None => break line,
        }
    };
    assert_eq!(stdout, "one\ntwo\n");
    assert_eq!(stderr, "ééé\n");
    assert_eq!(value(&answer), "done");
    assert_eq!(answer["envelope"]["output"]["stdout"], "one\ntwo\n");
    assert!(worker.finish().is_empty());
}

#[test]
fn grants_and_bad_requests_are_explicit() {
    let mut worker = Worker::start(&[]);
    let env = worker.ask(&json!({"id": 1, "op": "run_code", "language": "python",
        "env": {"GREETING": "hi"}, "code": "import os\n[os.environ.get('GREETING'), os.environ.get('HOME')]"}));
    assert_eq!(value(&env), &json!(["hi", null]), "{env}");
    let none = worker.ask(&json!({"id": 2, "op": "run_code", "language": "python",
        "code": "import os\nos.environ.get('GREETING')"}));
    assert_eq!(value(&none), &Value::Null);
    for (id, request, field) in [
        (
            3,
            json!({"op": "run_code", "language": "cobol", "code": "1"}),
            "language",
        ),
        (4, json!({"op": "run_code", "code": "1"}), "language"),
        (
            5,
            json!({"op": "run_code", "language": "python", "code": "1", "timeout": "1h"}),
            "timeout",
        ),
        (
            6,
            json!({"op": "run_code", "language": "python", "code": "1", "ram": "8GiB"}),
            "ram",
        ),
        (
            7,
            json!({"op": "run_code", "language": "python", "code": "1", "allow_hosts": ["bad host"]}),
            "allow_hosts",
        ),
        (
            8,
            json!({"op": "run_code", "language": "python", "code": "1", "colour": 1}),
            "colour",
        ),
        (
            9,
            json!({"op": "session.open", "language": "python", "ram": "lots"}),
            "ram",
        ),
        (10, json!({"op": "explode"}), "explode"),
    ] {
        let mut request = request;
        request["id"] = json!(id);
        let answer = worker.ask(&request);
        assert_eq!(error_type(&answer), "invalid_args", "{answer}");
        assert!(answer.to_string().contains(field), "{field}: {answer}");
    }
    let session = open(&mut worker, "o", json!({"language": "python"}));
    let per_cell_ram = worker
        .ask(&json!({"id": 11, "op": "run_code", "session": session, "code": "1", "ram": "1GiB"}));
    assert_eq!(error_type(&per_cell_ram), "invalid_args", "{per_cell_ram}");
    let wrong_language = worker.ask(&json!({"id": 12, "op": "run_code", "session": session, "language": "javascript", "code": "1"}));
    assert_eq!(
        error_type(&wrong_language),
        "invalid_args",
        "{wrong_language}"
    );
    let reset_state = cell(
        &mut worker,
        13,
        &session,
        "x = 1\nopen('keep.txt', 'w').write('k')",
    );
    assert_eq!(reset_state["envelope"]["success"], true);
    let reset = worker.ask(&json!({"id": 14, "op": "session.reset", "session": session}));
    assert_eq!(reset["reset"], true, "{reset}");
    let after = cell(
        &mut worker,
        15,
        &session,
        "import os\n['x' in globals(), os.path.exists('/workspace/keep.txt')]",
    );
    assert_eq!(value(&after), &json!([false, true]), "{after}");
    assert!(worker.finish().is_empty());
}

#[test]
fn a_sessions_memory_stays_bounded_over_a_thousand_cells() {
    let mut worker = Worker::start(&[]);
    let session = open(&mut worker, "o", json!({"language": "python"}));
    let memory = |worker: &mut Worker| {
        let status = worker.ask(&json!({"id": "s", "op": "status"}));
        status["status"]["sessions"][0]["memory_bytes"]
            .as_u64()
            .expect("memory_bytes")
    };
    let mut after_hundred = 0;
    for i in 0..1000 {
        let answer = cell(
            &mut worker,
            i,
            &session,
            "rows = [str(n) * 10 for n in range(2000)]\nlen(rows)",
        );
        assert_eq!(value(&answer), 2000, "{answer}");
        if i == 99 {
            after_hundred = memory(&mut worker);
        }
    }
    let after_thousand = memory(&mut worker);
    assert!(
        after_thousand <= after_hundred + (8 << 20),
        "memory grew from {after_hundred} to {after_thousand} bytes over 900 cells"
    );
    assert!(worker.finish().is_empty());
}

/// Issue 17: what the host writes into a session's workspace (`files.write`) counts against the
/// session's `disk` as the guest's own writes do: a write past it is refused as `disk_limit` and
/// leaves nothing, replacing a file counts only what it adds, `files.remove` gives bytes back,
/// and host and guest share one budget.
#[test]
fn r17_files_the_host_writes_into_a_session_count_against_its_disk_limit() {
    let mut worker = Worker::start(&[]);
    let session = open(
        &mut worker,
        "o",
        json!({"language": "python", "disk": "64KB"}),
    );
    let write = |worker: &mut Worker, id: u32, path: &str, size: usize| {
        worker.ask(
            &json!({"id": id, "op": "files.write", "session": session, "path": path,
            "data": b64(&vec![b'x'; size])}),
        )
    };
    let first = write(&mut worker, 1, "a.bin", 40000);
    assert_eq!(first["written"], 40000, "{first}");
    let over = write(&mut worker, 2, "b.bin", 40000);
    assert_eq!(error_type(&over), "disk_limit", "{over}");
    assert!(
        over.to_string().contains("b.bin") && over.to_string().contains("disk limit"),
        "{over}"
    );
    let replaced = write(&mut worker, 3, "a.bin", 50000);
    assert_eq!(
        replaced["written"], 50000,
        "only 10000 bytes added: {replaced}"
    );
    let listed = worker.ask(&json!({"id": 4, "op": "files.list", "session": session}));
    assert_eq!(
        listed["files"].as_array().map(Vec::len),
        Some(1),
        "the refused write left nothing: {listed}"
    );
    let guest = cell(
        &mut worker,
        5,
        &session,
        "import errno\ntry:\n    open('c.bin', 'wb').write(b'y' * 20000)\n    r = 'written'\nexcept OSError as e:\n    r = errno.errorcode[e.errno]\nr",
    );
    assert_eq!(
        value(&guest),
        "ENOSPC",
        "the host's bytes count for the guest: {guest}"
    );
    let removed =
        worker.ask(&json!({"id": 6, "op": "files.remove", "session": session, "path": "a.bin"}));
    assert_eq!(removed["removed"], true, "{removed}");
    let again = write(&mut worker, 7, "b.bin", 40000);
    assert_eq!(again["written"], 40000, "{again}");
    let guest = cell(
        &mut worker,
        8,
        &session,
        "open('c.bin', 'wb').write(b'y' * 20000)",
    );
    assert_eq!(value(&guest), 20000, "{guest}");
    assert!(worker.finish().is_empty());
}

#[test]
fn r17_a_sessions_workspace_holds_at_most_its_disk_limit_and_a_reset_counts_what_is_there() {
    let mut worker = Worker::start(&[]);
    let hello = worker.ask(&json!({"id": "h", "op": "hello"}));
    assert_eq!(hello["defaults"]["disk"], "1GiB", "{hello}");
    // Python: a write past the limit fails whole with ENOSPC, and the cell can catch it.
    let session = open(
        &mut worker,
        "o",
        json!({"language": "python", "disk": "64KB"}),
    );
    let caught = cell(
        &mut worker,
        1,
        &session,
        "import errno\nopen('a.bin', 'wb').write(b'x' * 40000)\ntry:\n    open('b.bin', 'wb').write(b'y' * 40000)\n    r = 'written'\nexcept OSError as e:\n    r = errno.errorcode[e.errno]\nr",
    );
    assert_eq!(value(&caught), "ENOSPC", "{caught}");
    // Deleting gives the bytes back.
    let freed = cell(
        &mut worker,
        2,
        &session,
        "import os\nos.remove('a.bin')\nopen('c.bin', 'wb').write(b'z' * 40000)",
    );
    assert_eq!(value(&freed), 40000, "{freed}");
    // Uncaught, it ends the cell as `disk_limit`; the session lives on.
    let ended = cell(
        &mut worker,
        3,
        &session,
        "open('d.bin', 'wb').write(b'w' * 40000)",
    );
    assert_eq!(error_type(&ended), "disk_limit", "{ended}");
    let alive = cell(&mut worker, 4, &session, "1 + 1");
    assert_eq!(value(&alive), 2, "{alive}");
    // After a reset the files kept in the workspace still count.
    let reset = worker.ask(&json!({"id": 5, "op": "session.reset", "session": session}));
    assert_eq!(reset["reset"], true, "{reset}");
    let after = cell(
        &mut worker,
        6,
        &session,
        "open('e.bin', 'wb').write(b'v' * 40000)",
    );
    assert_eq!(error_type(&after), "disk_limit", "{after}");
    // JavaScript: the same refusal, as ENOSPC.
    let js = open(
        &mut worker,
        "j",
        json!({"language": "javascript", "disk": "64KB"}),
    );
    let refused = cell(
        &mut worker,
        7,
        &js,
        "const fs = await import('node:fs');\nfs.writeFileSync('/workspace/a.bin', 'x'.repeat(40000));\nlet code = 'written';\ntry { fs.writeFileSync('/workspace/b.bin', 'y'.repeat(40000)); } catch (e) { code = e.code; }\ncode",
    );
    assert_eq!(value(&refused), "ENOSPC", "{refused}");
    // `disk` belongs to the session: not per cell, and not without one.
    let per_cell = worker
        .ask(&json!({"id": 8, "op": "run_code", "session": session, "code": "1", "disk": "1MB"}));
    assert_eq!(error_type(&per_cell), "invalid_args", "{per_cell}");
    let stateless = worker
        .ask(&json!({"id": 9, "op": "run_code", "language": "python", "code": "1", "disk": "1MB"}));
    assert_eq!(error_type(&stateless), "invalid_args", "{stateless}");
    let bad =
        worker.ask(&json!({"id": 10, "op": "session.open", "language": "python", "disk": "lots"}));
    assert_eq!(error_type(&bad), "invalid_args", "{bad}");
    assert!(
        bad.to_string().contains("disk"),
        "the error names the field: {bad}"
    );
    assert!(worker.finish().is_empty());
}
