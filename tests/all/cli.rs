//! Issue 3: `capsule build` / `exec` / `run` / `inspect` through the real binary.

use crate::support::{
    assert_success, build, bundle, capsule, envelope, example, exec_json, fixture, test_key,
};
use serde_json::json;

#[test]
fn python_hello_example_builds_and_runs() {
    let (code, envelope) = exec_json(&bundle(&example("hello.py")), &["--", "Ada"]);
    assert_eq!(code, Some(0), "{envelope}");
    assert_eq!(envelope["result"]["greeting"], "Hello, Ada!");
    assert_eq!(envelope["result"]["squares"], json!(332_833_500));
    let execution = &envelope["execution"];
    assert_eq!(execution["task_name"], "main");
    assert_eq!(execution["attempts"], 1);
    assert!(execution["fuel_consumed"].as_u64().expect("fuel") > 0);
    assert!(execution["peak_memory_bytes"].as_u64().expect("memory") > 0);
}

#[test]
fn javascript_hello_example_builds_and_runs() {
    let (code, envelope) = exec_json(&bundle(&example("hello.js")), &["--", "Ada"]);
    assert_eq!(code, Some(0), "{envelope}");
    assert_eq!(envelope["result"]["greeting"], "Hello, Ada!");
    assert_eq!(envelope["result"]["squares"], json!(332_833_500));
}

#[test]
fn arguments_of_several_json_types() {
    let args = [
        "--",
        "5",
        "2.5",
        "true",
        "null",
        "plain words",
        "\"quoted\"",
        "[1,{\"x\":null}]",
        "--json",
    ];
    let expected = json!([5, 2.5, true, null, "plain words", "quoted", [1, {"x": null}], "--json"]);
    for source in ["echo.py", "echo.js"] {
        let (code, envelope) = exec_json(&bundle(&fixture(source)), &args);
        assert_eq!(code, Some(0), "{source}: {envelope}");
        assert_eq!(envelope["result"]["args"], expected, "{source}");
    }
}

#[test]
fn keyword_arguments_through_args_json() {
    let (code, envelope) = exec_json(
        &bundle(&fixture("echo.py")),
        &[
            "--args-json",
            r#"{"args": [1], "kwargs": {"name": "x", "n": [2]}}"#,
        ],
    );
    assert_eq!(code, Some(0), "{envelope}");
    assert_eq!(
        envelope["result"],
        json!({"args": [1], "kwargs": {"name": "x", "n": [2]}})
    );
}

#[test]
fn invalid_arguments_are_refused_by_the_task_signature() {
    let (code, envelope) = exec_json(&bundle(&example("hello.py")), &["--", "a", "b", "c"]);
    assert_eq!(code, Some(1), "{envelope}");
    assert_eq!(envelope["error"]["error_type"], "invalid_args");
}

#[test]
fn result_that_is_not_json_is_a_clear_error() {
    for source in ["not_json.py", "not_json.js"] {
        let (code, envelope) = exec_json(&bundle(&fixture(source)), &[]);
        assert_eq!(code, Some(1), "{source}: {envelope}");
        assert_eq!(envelope["error"]["error_type"], "task_error", "{source}");
        let message = envelope["error"]["message"].as_str().expect("message");
        assert!(
            message.contains("not JSON-serializable"),
            "{source}: {message}"
        );
    }
}

#[test]
fn missing_main_is_a_build_error() {
    for source in ["no_main.py", "no_main.js"] {
        let out = tempfile::tempdir().expect("tempdir");
        let output = build(&fixture(source), &out.path().join("x.capsule"));
        assert_eq!(output.status.code(), Some(2), "{source}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("no `main` task") && stderr.contains("`first`"),
            "{source}: {stderr}"
        );
        assert!(
            !out.path().join("x.capsule").exists(),
            "{source}: a failed build wrote a bundle"
        );
    }
}

#[test]
fn invalid_task_options_are_build_errors_naming_task_and_field() {
    for (source, field, value) in [
        ("bad_ram.py", "ram", "12XB"),
        ("bad_compute.js", "compute", "FAST"),
    ] {
        let out = tempfile::tempdir().expect("tempdir");
        let output = build(&fixture(source), &out.path().join("x.capsule"));
        assert_eq!(output.status.code(), Some(2), "{source}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("task `main`")
                && stderr.contains(&format!("`{field}`"))
                && stderr.contains(value),
            "{source}: {stderr}"
        );
    }
}

#[test]
fn guest_output_never_corrupts_the_envelope() {
    for source in ["prints.py", "prints.js"] {
        let (code, envelope) = exec_json(&bundle(&fixture(source)), &[]);
        assert_eq!(code, Some(0), "{source}: {envelope}");
        assert_eq!(envelope["result"], 7, "{source}");
        assert!(
            envelope["output"]["stdout"]
                .as_str()
                .expect("stdout")
                .contains(r#"{"not": "the envelope""#),
            "{source}"
        );
        assert!(
            envelope["output"]["stderr"]
                .as_str()
                .expect("stderr")
                .contains("to stderr"),
            "{source}"
        );
    }
}

#[test]
fn human_output_shows_the_result_and_exit_code() {
    let trust = &test_key().1;
    let output = capsule()
        .arg("exec")
        .arg(bundle(&example("hello.py")))
        .arg("--trust")
        .arg(trust)
        .args(["--", "Ada"])
        .output()
        .expect("spawn");
    assert_success(&output, "exec");
    assert!(String::from_utf8_lossy(&output.stdout).contains("\"greeting\": \"Hello, Ada!\""));
    let output = capsule()
        .arg("exec")
        .arg(bundle(&fixture("raises.py")))
        .arg("--trust")
        .arg(trust)
        .output()
        .expect("spawn");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("error: task `main` failed (task_error)")
            && stderr.contains("ValueError: bad input 42"),
        "{stderr}"
    );
}

#[test]
fn run_builds_into_the_cache_and_executes() {
    let output = capsule()
        .arg("run")
        .arg(fixture("echo.js"))
        .arg("--json")
        .args(["--", "1", "two"])
        .output()
        .expect("spawn");
    assert_success(&output, "run");
    assert_eq!(envelope(&output)["result"]["args"], json!([1, "two"]));
}

#[test]
fn inspect_describes_a_bundle() {
    let output = capsule()
        .arg("inspect")
        .arg(bundle(&example("hello.py")))
        .output()
        .expect("spawn");
    assert_success(&output, "inspect");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("entry:     main")
            && text.contains("x86_64-unknown-linux-gnu")
            && text.contains("compute Medium"),
        "{text}"
    );
    let output = capsule()
        .arg("inspect")
        .arg("--json")
        .arg(bundle(&example("hello.py")))
        .output()
        .expect("spawn");
    let manifest: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("manifest JSON");
    assert_eq!(manifest["format"], "capsule-bundle/1");
}

#[test]
fn export_refuses_to_overwrite_a_file_that_is_not_a_bundle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("task.py");
    std::fs::copy(fixture("echo.py"), &source).expect("copy");
    std::fs::write(dir.path().join("task.capsule"), "my notes").expect("write");
    let output = capsule()
        .arg("build")
        .arg(&source)
        .arg("--export")
        .output()
        .expect("spawn");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("task.capsule")).expect("read"),
        "my notes"
    );
}

#[test]
fn help_documents_exit_codes() {
    for command in ["build", "exec", "run"] {
        let output = capsule()
            .arg(command)
            .arg("--help")
            .output()
            .expect("spawn");
        assert_success(&output, "help");
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("Exit status"),
            "{command}"
        );
    }
}

#[test]
fn r17_a_fifty_megabyte_argument_comes_from_a_file_or_stdin() {
    let bundle = bundle(&fixture("length.py"));
    let size = 50 * 1024 * 1024;
    let document = json!({ "args": ["x".repeat(size)] }).to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("args.json");
    std::fs::write(&file, &document).expect("write args file");

    let (code, envelope) = exec_json(&bundle, &["--args-file", &file.to_string_lossy()]);
    assert_eq!(code, Some(0), "{envelope}");
    assert_eq!(envelope["result"], json!(size));

    let mut child = capsule()
        .arg("exec")
        .arg(&bundle)
        .args(["--json", "--args-json", "-", "--trust"])
        .arg(&test_key().1)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn capsule exec");
    let mut input = child.stdin.take().expect("stdin");
    let feeder = std::thread::spawn(move || {
        std::io::Write::write_all(&mut input, document.as_bytes()).expect("write stdin");
    });
    let output = child.wait_with_output().expect("wait for exec");
    feeder.join().expect("feeder");
    let envelope = crate::support::envelope(&output);
    assert_eq!(output.status.code(), Some(0), "{envelope}");
    assert_eq!(envelope["result"], json!(size));

    // `run` takes the same flags; a file that is not JSON is a usage error naming it.
    let small = dir.path().join("small.json");
    std::fs::write(&small, r#"{"args": ["abc"]}"#).expect("write");
    let output = capsule()
        .arg("run")
        .arg(fixture("length.py"))
        .args(["--json", "--args-file"])
        .arg(&small)
        .output()
        .expect("spawn capsule run");
    assert_eq!(crate::support::envelope(&output)["result"], json!(3));
    std::fs::write(&small, "not json").expect("write");
    let (code, envelope) = exec_json(&bundle, &["--args-file", &small.to_string_lossy()]);
    assert_eq!(code, Some(2));
    assert_eq!(envelope["error"]["error_type"], "invalid_args");
    assert!(
        envelope["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("--args-file") && m.contains("small.json")),
        "{envelope}"
    );
}

/// `capsule build --reuse` (what the host SDKs call for every source they run): the first call
/// builds into the cache, the next ones print the same bundle without building; a signed bundle
/// is kept per signer, apart from the unsigned one `capsule run` caches.
#[test]
fn r15_build_reuse_prints_the_cached_bundle_per_signer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("echo.js");
    std::fs::copy(fixture("echo.js"), &source).expect("copy fixture");
    let other_key = crate::support::make_key("r15-other");
    let build = |key: Option<&std::path::Path>| {
        let mut command = capsule();
        command
            .arg("build")
            .arg(&source)
            .args(["--reuse", "--target", std::env::consts::ARCH]);
        if let Some(key) = key {
            command.arg("--sign").arg(key);
        }
        let output = command.output().expect("spawn capsule build");
        assert_success(&output, "capsule build --reuse");
        let path = String::from_utf8_lossy(&output.stdout).trim().to_string();
        let built = String::from_utf8_lossy(&output.stderr).contains("built `");
        (std::path::PathBuf::from(path), built)
    };
    let (first, _) = build(Some(&test_key().0));
    assert!(first.is_file(), "{}", first.display());
    let modified = std::fs::metadata(&first)
        .and_then(|m| m.modified())
        .expect("mtime");
    let (again, rebuilt) = build(Some(&test_key().0));
    assert_eq!(again, first);
    assert!(!rebuilt, "--reuse built again");
    assert_eq!(
        std::fs::metadata(&first)
            .and_then(|m| m.modified())
            .expect("mtime"),
        modified
    );
    let verified = capsule()
        .arg("verify")
        .arg(&first)
        .arg("--trust")
        .arg(&test_key().1)
        .output()
        .expect("spawn capsule verify");
    assert_success(&verified, "capsule verify");
    let (other, _) = build(Some(&other_key.0));
    let (unsigned, _) = build(None);
    assert_ne!(other, first);
    assert_ne!(unsigned, first);
    assert_ne!(unsigned, other);
    // An edit changes the inputs: a new build.
    std::fs::write(
        &source,
        std::fs::read_to_string(&source).expect("read") + "\n// edited\n",
    )
    .expect("edit");
    let (edited, built) = build(Some(&test_key().0));
    assert_ne!(edited, first);
    assert!(built);
}
