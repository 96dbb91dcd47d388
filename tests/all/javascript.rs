//! Issue 13: real JavaScript and TypeScript projects: `.ts` tasks, local modules, CommonJS and
//! JSON, npm packages, Node built-ins, timers (fixtures in tests/fixtures/js/).

use crate::support::{assert_success, bundle, capsule, exec_json, exec_json_in};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Output;

fn project(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/js")
        .join(path)
}

fn run_task(source: &Path, task: &str, args: &[&str]) -> (Option<i32>, Value) {
    let mut extra = vec!["--task", task, "--"];
    extra.extend_from_slice(args);
    exec_json(&bundle(source), &extra)
}

fn ok(source: &Path, task: &str, args: &[&str]) -> Value {
    let (code, envelope) = run_task(source, task, args);
    assert_eq!(code, Some(0), "{envelope}");
    envelope["result"].clone()
}

fn build_fails(source: &Path) -> String {
    let out = tempfile::tempdir().expect("tempdir");
    let output: Output = capsule()
        .arg("build")
        .arg(source)
        .arg("-o")
        .arg(out.path().join("x.capsule"))
        .output()
        .expect("spawn capsule build");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn javascript_readme_hello_ts_runs() {
    let output = capsule()
        .arg("run")
        .arg(project("hello-ts/hello.ts"))
        .arg("--json")
        .output()
        .expect("spawn capsule run");
    assert_success(&output, "capsule run hello.ts");
    let envelope = crate::support::envelope(&output);
    assert_eq!(
        envelope["result"],
        json!("Hello from Capsule!"),
        "{envelope}"
    );
}

#[test]
fn javascript_typescript_project_enum_class_namespace() {
    let result = ok(&project("ts-project/src/app.ts"), "main", &[]);
    assert_eq!(
        result,
        json!({"colors": ["Red", "Blue"], "area": 7.14, "perimeter": 8})
    );
}

#[test]
fn javascript_json_import() {
    let result = ok(&project("ts-project/src/app.ts"), "json", &[]);
    assert_eq!(
        result,
        json!({"name": "capsule-ts", "limits": {"retries": 2}})
    );
}

#[test]
fn javascript_commonjs_esm_interop() {
    let result = ok(&project("ts-project/src/app.ts"), "interop", &[]);
    assert_eq!(
        result,
        json!({"defaultIsModuleExports": true, "setupRanFirst": true, "named": "hello, esm", "required": "cjs:42"})
    );
}

#[test]
fn javascript_dynamic_import_at_run_time() {
    let result = ok(&project("ts-project/src/app.ts"), "lazy", &["3"]);
    assert_eq!(result, json!(27));
}

#[test]
fn javascript_typescript_stack_names_original_file_and_line() {
    let (code, envelope) = run_task(&project("ts-project/src/app.ts"), "fails", &[]);
    assert_eq!(code, Some(1), "{envelope}");
    assert_eq!(envelope["error"]["message"], "Error: exploded: boom");
    let stack = envelope["error"]["traceback"].as_str().expect("stack");
    assert!(stack.contains("src/lib/geometry.ts:13"), "{stack}");
    assert!(stack.contains("src/app.ts:44"), "{stack}");
}

#[test]
fn javascript_unresolvable_import_names_file_and_specifier() {
    let stderr = build_fails(&project("bad-import/main.ts"));
    assert!(stderr.contains("main.ts:2:24"), "{stderr}");
    assert!(
        stderr.contains("cannot import `./missing-helper`: no such file"),
        "{stderr}"
    );
}

#[test]
fn javascript_typescript_syntax_error_names_file_line_column() {
    let stderr = build_fails(&project("bad-syntax/main.ts"));
    assert!(stderr.contains("broken.ts:3:"), "{stderr}");
    assert!(stderr.contains("syntax error"), "{stderr}");
}

#[test]
fn javascript_forbidden_builtin_fails_the_build() {
    let stderr = build_fails(&project("bad-builtin/main.js"));
    assert!(stderr.contains("main.js:3:30"), "{stderr}");
    assert!(
        stderr.contains("`child_process` is not available in the sandbox"),
        "{stderr}"
    );
}

fn builtins() -> PathBuf {
    project("builtins/builtins.js")
}

#[test]
fn javascript_timers_and_microtasks_in_node_order() {
    let result = ok(&builtins(), "timers", &[]);
    assert_eq!(
        result["log"],
        json!([
            "nextTick",
            "promise",
            "microtask",
            "immediate",
            "timeout 0",
            "timeout 20"
        ])
    );
    assert_eq!(result["ticks"], json!(3));
    assert_eq!(result["waited"], json!(true));
    assert_eq!(result["order"], json!(["top-level timer"]));
}

#[test]
fn javascript_timer_past_the_timeout_ends_with_timeout() {
    let bundle = bundle(&builtins());
    let started = std::time::Instant::now();
    let (code, envelope) = exec_json(&bundle, &["--task", "sleeper"]);
    assert_eq!(code, Some(1), "{envelope}");
    assert_eq!(envelope["error"]["error_type"], "timeout", "{envelope}");
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
}

#[test]
fn javascript_builtin_path() {
    let result = ok(&builtins(), "paths", &[]);
    assert_eq!(
        result,
        json!({
            "join": "/a/c/d.txt", "resolve": "/x/z", "relative": "../../d",
            "parse": {"root": "/", "dir": "/home/user", "base": "file.tar.gz", "ext": ".gz", "name": "file.tar"},
            "normalize": "a/c/", "ext": ".ts", "base": "file", "dir": "/p/q"
        })
    );
}

#[test]
fn javascript_builtin_events() {
    let result = ok(&builtins(), "events", &[]);
    assert_eq!(
        result,
        json!({"seen": ["on:1", "once:1", "on:2"], "value": "go", "error": "unhandled", "count": 1})
    );
}

#[test]
fn javascript_builtin_util() {
    let result = ok(&builtins(), "utils", &[]);
    assert_eq!(
        result["format"],
        json!("Ada is 36.5 years and 42% {\"a\":1}")
    );
    assert_eq!(
        result["inspect"],
        json!("{ a: [ 1, 2, { b: [Map] } ], s: 'x', n: null }")
    );
    assert_eq!(result["nested"], json!("{ a: { b: { c: [Object] } } }"));
    assert_eq!(result["promisified"], json!(42));
    assert_eq!(result["types"], json!([true, true, true]));
    assert_eq!(result["deep"], json!(true));
}

#[test]
fn javascript_builtin_buffer_and_encodings() {
    let result = ok(&builtins(), "buffers", &[]);
    assert_eq!(
        result,
        json!({
            "length": 13, "hex": "686921", "base64": "aMOpbGxvIHfDtnJsZA==", "back": "héllo wörld",
            "joined": [1, 2, 9, 9], "read": "deadbeef", "slice": "héll", "isBuffer": true,
            "text": "✓ ok", "atob": "binary\u{ff}", "json": "{\"type\":\"Buffer\",\"data\":[7]}",
            "fatal": ["TypeError", "ERR_ENCODING_INVALID_ENCODED_DATA"], "lossy": "a\u{fffd}"
        })
    );
}

#[test]
fn javascript_builtin_crypto_hashes_in_rust() {
    let result = ok(&builtins(), "hashing", &[]);
    assert_eq!(
        result,
        json!({
            "md5": "900150983cd24fb0d6963f7d28e17f72",
            "sha1": "a9993e364706816aba3e25717850c26c9cd0d89d",
            "sha256": "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=",
            "sha512": "ddaf35a193617abacc417349ae204131",
            "hmac": "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8",
            "subtle": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "uuid": true, "globalUuid": true, "random": true
        })
    );
}

#[test]
fn javascript_builtin_fs_sees_only_granted_directories() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("work")).expect("mkdir work");
    std::fs::create_dir(dir.path().join("ro")).expect("mkdir ro");
    std::fs::write(dir.path().join("ro/input.txt"), "read me").expect("write input");
    let (code, envelope) = exec_json_in(
        &bundle(&builtins()),
        &["--task", "files"],
        Some(dir.path()),
        &[],
    );
    assert_eq!(code, Some(0), "{envelope}");
    let result = &envelope["result"];
    assert_eq!(result["text"], json!("one\ntwo\nthree\n"));
    assert_eq!(result["viaCallback"], json!("one\ntwo\nthree\n"));
    assert_eq!(result["size"], json!(3));
    assert_eq!(result["isFile"], json!(true));
    assert_eq!(result["listing"], json!([["c.bin", false], ["deep", true]]));
    assert_eq!(result["exists"], json!([true, false]));
    assert_eq!(result["readOnly"], json!("read me"));
    assert_eq!(result["denied"], json!("EACCES"));
    assert_ne!(result["outside"], Value::Null);
    assert_eq!(result["streamed"], json!("s1,s2"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("work/a.txt")).expect("written"),
        "one\ntwo\nthree\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ro/input.txt")).expect("kept"),
        "read me"
    );
}

#[test]
fn javascript_builtin_url_assert_abort_clone_os_process() {
    let (code, envelope) = exec_json_in(
        &bundle(&builtins()),
        &["--task", "misc"],
        None,
        &[("GREETING", "hi")],
    );
    assert_eq!(code, Some(0), "{envelope}");
    assert_eq!(
        envelope["result"],
        json!({
            "href": "https://example.com/docs/api/v1?q=a+b&x=1&y=2#top",
            "host": "example.com",
            "query": "a b",
            "file": "/tmp/a b.txt",
            "decoded": "€",
            "assertion": "ERR_ASSERTION",
            "aborted": "AbortError",
            "clone": [true, 1],
            "os": ["\n", "linux", "string"],
            "process": ["linux", "string", "bigint", true, "string"],
            "env": "hi"
        })
    );
}

#[test]
fn javascript_process_exit_ends_the_task() {
    let (code, envelope) = run_task(&builtins(), "exits", &[]);
    assert_eq!(code, Some(1), "{envelope}");
    assert_eq!(envelope["error"]["error_type"], "task_error");
    assert!(
        envelope["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("process.exit(3)")),
        "{envelope}"
    );
}

/// Copies a fixture project into a fresh directory (so `node_modules` never lands in the tree).
fn copy_project(name: &str, into: &Path) {
    for entry in std::fs::read_dir(project(name)).expect("fixture project") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), into.join(entry.file_name())).expect("copy fixture");
    }
}

#[test]
fn javascript_npm_packages_installed_with_npm_install() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_project("npm", dir.path());
    let install = std::process::Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--silent"])
        .current_dir(dir.path())
        .output()
        .expect("this test needs `npm` on PATH (apt-get install npm)");
    assert_success(&install, "npm install");
    let output = capsule()
        .arg("run")
        .arg(dir.path().join("main.ts"))
        .arg("--json")
        .arg("--")
        .arg(r#"{"name": "A", "age": -1}"#)
        .output()
        .expect("spawn capsule run");
    assert_success(&output, "capsule run main.ts");
    let envelope = crate::support::envelope(&output);
    assert_eq!(
        envelope["result"],
        json!({
            "lodash": [[[1, 2], [3, 4], [5]], {"3": ["one", "two"], "5": ["three"]}],
            "dayjs": "2025-02-28",
            "dateFns": "2024-02-02",
            "zod": ["name", "age"],
            "zodOk": "Ada",
            "uuid": true,
            "yaml": [{"a": 1, "b": ["x", "y"]}, "k: v\n"],
            "papaparse": [{"a": "1", "b": "2"}],
            "marked": "<h1>Hi <em>there</em></h1>\n",
            "ajv": [true, false],
            "mathjs": [14, 4],
            "immer": [2, 3, true]
        }),
        "{envelope}"
    );
}

#[test]
fn javascript_randomness_at_build_time_is_a_warning() {
    let source = project("random-top/random_top.js");
    let out = tempfile::tempdir().expect("tempdir");
    let output = crate::support::build(&source, &out.path().join("random.capsule"));
    assert_success(&output, "capsule build");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("warning:"), "{stderr}");
    assert!(
        stderr.contains("crypto.randomUUID() at random_top.js:3"),
        "{stderr}"
    );
    // The frozen value repeats; the one drawn in the task does not.
    let bundle = bundle(&source);
    let (_, first) = exec_json(&bundle, &[]);
    let (_, second) = exec_json(&bundle, &[]);
    assert_eq!(first["result"][0], second["result"][0], "{first} {second}");
    assert_ne!(first["result"][1], second["result"][1], "{first} {second}");
}

#[test]
fn javascript_task_awaits_two_timers_and_a_fetch() {
    let (port, _) = crate::hosts::serve();
    let url = format!("http://127.0.0.1:{port}/hello");
    let result = ok(&builtins(), "gather", &[&url]);
    assert_eq!(
        result,
        json!({"a": "a", "b": "b", "body": "hello from the host", "waited": true})
    );
}

#[test]
fn javascript_console_format_specifiers_and_more_builtins() {
    let (code, envelope) = run_task(&builtins(), "printing", &[]);
    assert_eq!(code, Some(0), "{envelope}");
    assert_eq!(
        envelope["output"]["stdout"],
        json!(
            "cart has 3 items costing 42% { a: [ 1 ] }\n{ nested: { list: [ 1, 'two' ], map: Map(1) { 'k' => 1 } } } tail\n styled\n"
        ),
        "{envelope}"
    );
    assert_eq!(envelope["output"]["stderr"], json!("Set(1) { 1 }\n"));
    assert_eq!(
        envelope["result"],
        json!({"parsed": {"a": ["1", "2"], "b": "x y"}, "stringified": "q=a%20b&n=1&n=2", "required": "a/b", "local": "helper", "meta": true, "perf": "number"})
    );
}

#[test]
fn javascript_builtin_stream() {
    let result = ok(&builtins(), "streams", &[]);
    assert_eq!(
        result,
        json!({"collected": ["A", "B", "C"], "iterated": [1, 2, 3], "viaEvents": "xy", "viaCallback": "1,2"})
    );
}
