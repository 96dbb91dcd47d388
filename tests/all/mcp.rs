//! `capsule mcp` driven by a real MCP client: the `mcp` package from PyPI, installed by the test
//! into a virtual environment (tests/fixtures/mcp/client.py plays the steps), over stdio and over
//! streamable HTTP.

use crate::support::{bundle, cache_dir, capsule, fixture, test_key};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

/// The interpreter of a virtual environment holding `mcp`, created (and `mcp` installed with the
/// system's pip configuration) the first time; later runs reuse it while it still imports `mcp`.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mcp-venv");
        let python = venv.join("bin/python");
        let imports = |python: &Path| {
            Command::new(python)
                .args([
                    "-c",
                    "import mcp.client.session, mcp.client.streamable_http",
                ])
                .status()
                .is_ok_and(|s| s.success())
        };
        if imports(&python) {
            return python;
        }
        let _ = std::fs::remove_dir_all(&venv);
        let created = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .output()
            .expect("cannot run `python3 -m venv`: the MCP tests need python3 with venv");
        assert!(
            created.status.success(),
            "`python3 -m venv` failed:\n{}",
            String::from_utf8_lossy(&created.stderr)
        );
        let installed = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "mcp"])
            .output()
            .expect("cannot run pip in the test venv");
        assert!(
            installed.status.success() && imports(&python),
            "`pip install mcp` failed, so the MCP client tests cannot run (pip uses the system's \
             index configuration):\n{}{}",
            String::from_utf8_lossy(&installed.stdout),
            String::from_utf8_lossy(&installed.stderr)
        );
        python
    })
}

/// Plays `steps` in one client connection; `transport` is `["stdio", CMD, ARGS...]` or
/// `["http", URL]`.
fn play(steps: &Value, transport: &[String]) -> Value {
    let output = Command::new(python())
        .arg(fixture("../mcp/client.py"))
        .arg(steps.to_string())
        .args(transport)
        .env("CAPSULE_CACHE_DIR", cache_dir())
        .output()
        .expect("spawn the MCP client");
    assert!(
        output.status.success(),
        "the MCP client failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "the client printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn stdio(extra: &[&str]) -> Vec<String> {
    let mut transport = vec![
        "stdio".to_string(),
        crate::support::capsule_path().display().to_string(),
        "mcp".to_string(),
    ];
    transport.extend(extra.iter().map(|s| s.to_string()));
    transport
}

fn call(name: &str, arguments: Value) -> Value {
    json!({"op": "call", "name": name, "arguments": arguments})
}

/// A step's tool result, asserting it was not a JSON-RPC error.
fn result(step: &Value) -> &Value {
    assert!(
        step.get("result").is_some(),
        "expected a tool result: {step}"
    );
    &step["result"]
}

fn ok(step: &Value) -> &Value {
    let result = result(step);
    assert_eq!(result["isError"], false, "the call failed: {result}");
    &result["structuredContent"]
}

fn failed(step: &Value) -> &Value {
    let result = result(step);
    assert_eq!(
        result["isError"], true,
        "the call should have failed: {result}"
    );
    &result["structuredContent"]["error"]
}

fn text(step: &Value) -> String {
    result(step)["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn rpc_error(step: &Value) -> &str {
    assert_eq!(
        step["error"]["code"], -32602,
        "expected invalid params: {step}"
    );
    step["error"]["message"].as_str().unwrap_or_default()
}

#[test]
fn stdio_runs_cells_sessions_and_files_with_typed_errors() {
    let steps = json!([
        {"op": "list_tools"},
        call("run_python", json!({"code": "sum(range(10))"})),
        call("run_javascript", json!({"code": "console.log('hi'); [1, 2, 3].map(x => x * 2)"})),
        call("create_session", json!({"language": "python"})),
        call("run_python", json!({"code": "x = 20", "session_id": "$session_id"})),
        call("run_python", json!({"code": "x += 1", "session_id": "$session_id"})),
        call("run_python", json!({"code": "x * 2", "session_id": "$session_id"})),
        call("write_file", json!({"session_id": "$session_id", "path": "data.csv", "content": "a,b\n1,2\n3,4\n"})),
        call("run_python", json!({"session_id": "$session_id", "code":
            "import csv, os\nrows = list(csv.DictReader(open('data.csv')))\nos.makedirs('out', exist_ok=True)\n\
             open('out/sum.txt', 'w').write(str(sum(int(r['b']) for r in rows)))"})),
        call("read_file", json!({"session_id": "$session_id", "path": "out/sum.txt"})),
        call("list_files", json!({"session_id": "$session_id"})),
        call("run_python", json!({"code": "def f():\n    return 1 / 0\nf()"})),
        call("run_python", json!({"code": "print('x' * 100000)"})),
        call("run_python", json!({"code": "while True:\n    pass", "timeout": "1s"})),
        call("close_session", json!({"session_id": "$session_id"})),
        call("run_python", json!({"code": "x", "session_id": "$session_id"})),
        call("run_python", json!({})),
        call("run_python", json!({"code": 1})),
        call("run_python", json!({"code": "1", "timeout": "soon"})),
        call("run_python", json!({"code": "1", "colour": "red"})),
        call("no_such_tool", json!({})),
        call("create_session", json!({"language": "python"})),
        {"op": "call", "name": "run_python", "read_timeout": 1.0,
         "arguments": {"code": "while True:\n    pass", "session_id": "$session_id", "timeout": "60s"}},
        call("run_python", json!({"code": "1", "session_id": "$session_id"})),
    ]);
    // HIGH fuel, so that the CPU loop meets its 1 s timeout before it runs out of fuel.
    let out = play(&steps, &stdio(&["--compute", "HIGH"]));
    assert_eq!(out["initialize"]["serverInfo"]["name"], "capsule");
    assert!(out["initialize"]["capabilities"]["tools"].is_object());
    let s = &out["steps"];

    let tools = s[0]["tools"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    for name in [
        "run_python",
        "run_javascript",
        "create_session",
        "close_session",
        "write_file",
        "read_file",
        "list_files",
        "run_task",
    ] {
        assert!(names.contains(&name), "missing tool {name}: {names:?}");
    }
    for tool in &tools {
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
        assert!(
            tool["description"].as_str().unwrap_or_default().len() > 40,
            "{tool}"
        );
    }
    let run_python = &tools[0];
    assert_eq!(run_python["inputSchema"]["required"], json!(["code"]));
    assert_eq!(
        run_python["inputSchema"]["properties"]["session_id"]["type"],
        "string"
    );

    assert_eq!(ok(&s[1])["result"]["value"], 45);
    assert!(text(&s[1]).contains("45"), "{}", text(&s[1]));
    let js = ok(&s[2]);
    assert_eq!(js["result"]["value"], json!([2, 4, 6]));
    assert_eq!(js["stdout"], "hi\n");

    let session = ok(&s[3])["session_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(session.starts_with("s-"), "{session}");
    ok(&s[4]);
    ok(&s[5]);
    assert_eq!(
        ok(&s[6])["result"]["value"],
        42,
        "state persists across calls"
    );

    assert_eq!(ok(&s[7])["written"], 12);
    ok(&s[8]);
    let read = ok(&s[9]);
    assert_eq!(read["content"], "6");
    assert_eq!(read["encoding"], "utf-8");
    let listed = serde_json::to_string(&ok(&s[10])["files"]).unwrap_or_default();
    assert!(
        listed.contains("data.csv") && listed.contains("out/sum.txt"),
        "{listed}"
    );

    let error = failed(&s[11]);
    assert_eq!(error["error_type"], "task_error");
    assert!(
        error["traceback"]
            .as_str()
            .unwrap_or_default()
            .contains("ZeroDivisionError"),
        "{error}"
    );
    assert!(text(&s[11]).contains("ZeroDivisionError"));

    let big = ok(&s[12]);
    assert!(
        big["stdout"]
            .as_str()
            .unwrap_or_default()
            .ends_with("more bytes dropped ...]"),
        "large output is cut with a marker"
    );

    let timeout = failed(&s[13]);
    assert_eq!(timeout["error_type"], "timeout", "{timeout}");
    let seconds = out["seconds"][13].as_f64().unwrap_or(f64::MAX);
    assert!(seconds < 2.0, "the 1s timeout took {seconds:.2}s to answer");

    assert_eq!(ok(&s[14])["closed"], true);
    let lost = failed(&s[15]);
    assert!(
        ["session_lost", "invalid_args"].contains(&lost["error_type"].as_str().unwrap_or_default()),
        "{lost}"
    );

    assert!(rpc_error(&s[16]).contains("missing required argument `code`"));
    assert!(rpc_error(&s[17]).contains("argument `code` must be a string"));
    assert!(rpc_error(&s[18]).contains("argument `timeout`"));
    assert!(rpc_error(&s[19]).contains("unknown argument `colour`"));
    assert!(rpc_error(&s[20]).contains("unknown tool `no_such_tool`"));

    // A client that gives up cancels the call: the cell stops (long before its 60 s timeout or
    // its fuel), and its session is closed.
    ok(&s[21]);
    assert!(s[22].get("error").is_some(), "abandoned: {}", s[22]);
    let lost = failed(&s[23]);
    assert_eq!(lost["error_type"], "session_lost", "{lost}");
    assert!(
        lost["message"]
            .as_str()
            .unwrap_or_default()
            .contains("cancel"),
        "{lost}"
    );
    let seconds = out["seconds"][23].as_f64().unwrap_or(f64::MAX);
    assert!(
        seconds < 5.0,
        "the cancelled cell kept its session busy for {seconds:.2}s"
    );
}

/// `capsule mcp --http 127.0.0.1:0`, with the URL it prints.
struct HttpServer {
    child: Child,
    url: String,
}

impl HttpServer {
    fn start(extra: &[&str]) -> Self {
        let mut child = capsule()
            .args(["mcp", "--http", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn capsule mcp --http");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let url = loop {
            let line = match lines.next() {
                Some(Ok(line)) => line,
                _ => panic!("`capsule mcp --http` exited before listening"),
            };
            if let Some(url) = line.split("streamable HTTP on ").nth(1) {
                break url.trim().to_string();
            }
        };
        // Keep draining stderr so the server never blocks on it.
        std::thread::spawn(move || lines.for_each(drop));
        HttpServer { child, url }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn http_sessions_outlive_the_client_connection() {
    let server = HttpServer::start(&["--compute", "HIGH"]);
    let transport = ["http".to_string(), server.url.clone()];
    let first = play(
        &json!([
            {"op": "list_tools"},
            call("run_python", json!({"code": "sum(range(10))"})),
            call("create_session", json!({"language": "javascript"})),
            call("run_javascript", json!({"code": "let total = 40", "session_id": "$session_id"})),
            call("run_javascript", json!({"code": "total += 1", "session_id": "$session_id"})),
            call("run_python", json!({"code": 5})),
            call("write_file", json!({"session_id": "$session_id", "path": "/workspace/in/n.txt", "content": "héllo"})),
            call("list_files", json!({"session_id": "$session_id"})),
            call("read_file", json!({"session_id": "$session_id", "path": "in/n.txt"})),
            call("run_python", json!({"code": "while True:\n    pass", "timeout": "1s"})),
        ]),
        &transport,
    );
    let s = &first["steps"];
    assert!(s[0]["tools"].as_array().is_some_and(|t| t.len() >= 8));
    assert_eq!(ok(&s[1])["result"]["value"], 45);
    let session = ok(&s[2])["session_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ok(&s[3]);
    assert_eq!(ok(&s[4])["result"]["value"], 41);
    assert!(rpc_error(&s[5]).contains("`code`"));
    assert_eq!(ok(&s[6])["written"], 6);
    assert_eq!(
        ok(&s[7])["files"][1],
        json!({"path": "in/n.txt", "type": "file", "size": 6})
    );
    assert_eq!(ok(&s[8])["content"], "héllo");
    assert_eq!(failed(&s[9])["error_type"], "timeout");
    let seconds = first["seconds"][9].as_f64().unwrap_or(f64::MAX);
    assert!(seconds < 2.0, "the 1s timeout took {seconds:.2}s over HTTP");

    // A second client process, a new MCP connection: the session is still there.
    let second = play(
        &json!([call(
            "run_javascript",
            json!({"code": "total + 1", "session_id": session})
        )]),
        &transport,
    );
    assert_eq!(ok(&second["steps"][0])["result"]["value"], 42);
}

#[test]
fn bundle_tasks_become_tools_with_their_signature() {
    let greet = bundle(&fixture("mcp_greet.py"));
    let echo = bundle(&fixture("echo.js"));
    let trust = test_key().1.to_string_lossy().to_string();
    let greet_path = greet.to_string_lossy().to_string();
    let echo_path = echo.to_string_lossy().to_string();
    let out = play(
        &json!([
            {"op": "list_tools"},
            call("greet", json!({"name": "ada", "times": 2, "loud": true})),
            call("greet", json!({"name": "bob"})),
            call("greet", json!({"times": 2})),
            call("greet", json!({"name": "ada", "times": "two"})),
            call("main", json!({"args": [1, "a"]})),
            call("run_task", json!({"bundle": greet_path, "kwargs": {"name": "eve"}})),
            call("run_task", json!({"bundle": greet_path, "args": []})),
        ]),
        &stdio(&[
            "--trust",
            &trust,
            "--bundle",
            &greet_path,
            "--bundle",
            &echo_path,
        ]),
    );
    let s = &out["steps"];
    let tools = s[0]["tools"].as_array().cloned().unwrap_or_default();
    let greet_tool = tools
        .iter()
        .find(|t| t["name"] == "greet")
        .unwrap_or_else(|| panic!("no `greet` tool: {tools:?}"));
    let schema = &greet_tool["inputSchema"];
    assert_eq!(schema["required"], json!(["name"]));
    assert_eq!(schema["properties"]["name"]["type"], "string");
    assert_eq!(schema["properties"]["times"]["type"], "integer");
    assert_eq!(schema["properties"]["loud"]["type"], "boolean");
    let main_tool = tools.iter().find(|t| t["name"] == "main");
    assert!(
        main_tool.is_some_and(|t| t["inputSchema"]["properties"]["args"]["type"] == "array"),
        "a JavaScript bundle's task takes args/kwargs: {main_tool:?}"
    );

    assert_eq!(ok(&s[1])["result"], "HELLO ADA HELLO ADA");
    assert_eq!(ok(&s[2])["result"], "hello bob");
    assert!(rpc_error(&s[3]).contains("missing required argument `name`"));
    assert!(rpc_error(&s[4]).contains("argument `times` must be an integer"));
    assert_eq!(ok(&s[5])["result"]["args"], json!([1, "a"]));
    assert_eq!(ok(&s[6])["result"], "hello eve");
    // Called without its required argument: the task itself raises.
    assert_eq!(failed(&s[7])["error_type"], "invalid_args");
}

#[test]
fn untrusted_bundles_and_remote_addresses_are_refused_at_startup() {
    let greet = bundle(&fixture("mcp_greet.py"));
    let untrusted = capsule()
        .env("CAPSULE_TRUST_DIR", env!("CARGO_TARGET_TMPDIR"))
        .arg("mcp")
        .arg("--bundle")
        .arg(&greet)
        .stdin(Stdio::null())
        .output()
        .expect("spawn capsule mcp");
    assert_eq!(untrusted.status.code(), Some(3), "untrusted: nothing runs");
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(stderr.contains("refusing `--bundle"), "{stderr}");
    assert!(stderr.contains("not a trusted key"), "{stderr}");
    assert!(
        untrusted.stdout.is_empty(),
        "stdout carries only MCP messages"
    );

    let remote = capsule()
        .args(["mcp", "--http", "0.0.0.0:0"])
        .stdin(Stdio::null())
        .output()
        .expect("spawn capsule mcp");
    assert_eq!(remote.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&remote.stderr).contains("--allow-remote"));

    let bad_limit = capsule()
        .args(["mcp", "--timeout", "10m"])
        .stdin(Stdio::null())
        .output()
        .expect("spawn capsule mcp");
    assert_eq!(bad_limit.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_limit.stderr).contains("invalid `--timeout` `10m`"));
}
