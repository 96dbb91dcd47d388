//! Issue 6: the minimal `capsule-runner`, and bundles without code for this host.

use crate::support::{assert_success, bundle, capsule, envelope, example, fixture, test_key};
use std::process::Command;

/// The minimal runner (ci/test.sh builds it on its own, without Cranelift).
fn capsule_runner() -> Command {
    let mut command = Command::new(crate::support::runner_binary("capsule-runner"));
    command.env("CAPSULE_CACHE_DIR", crate::support::cache_dir());
    command
}

#[test]
fn the_minimal_runner_gives_the_same_envelope_as_capsule_exec() {
    let bundle = bundle(&fixture("echo.js"));
    let args = ["--json", "--trust"];
    let key = &test_key().1;
    let run = |mut command: Command| {
        let output = command
            .arg("exec")
            .arg(&bundle)
            .args(args)
            .arg(key)
            .args(["--", "1", "x"])
            .output()
            .expect("spawn");
        assert_success(&output, "capsule");
        envelope(&output)
    };
    let full = run(capsule());
    let minimal = run(capsule_runner());
    assert_eq!(full["result"], minimal["result"]);
    assert_eq!(minimal["result"]["args"], serde_json::json!([1, "x"]));
}

#[test]
fn a_bundle_without_code_for_this_host_is_compiled_by_capsule_and_refused_by_the_minimal_runner() {
    let foreign = if std::env::consts::ARCH == "x86_64" {
        "aarch64"
    } else {
        "x86_64"
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("foreign.capsule");
    let output = capsule()
        .arg("build")
        .arg(example("hello.js"))
        .arg("-o")
        .arg(&path)
        .args(["--target", foreign, "--sign"])
        .arg(&test_key().0)
        .output()
        .expect("spawn");
    assert_success(&output, "capsule");

    let output = capsule_runner()
        .arg("exec")
        .arg(&path)
        .arg("--trust")
        .arg(&test_key().1)
        .output()
        .expect("spawn");
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no precompiled code for") && stderr.contains("nothing was executed"),
        "{stderr}"
    );

    for _ in 0..2 {
        let output = capsule()
            .arg("exec")
            .arg(&path)
            .arg("--trust")
            .arg(&test_key().1)
            .args(["--json", "--", "Ada"])
            .output()
            .expect("spawn");
        assert_success(&output, "capsule");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("no precompiled code for this host")
        );
        assert_eq!(envelope(&output)["result"]["greeting"], "Hello, Ada!");
    }
}

/// Issue 17: `capsule` is a lean front that runs `exec` itself (no compiler linked in, so it starts
/// faster) and hands every other command, unchanged, to `capsule-full` beside it. Without
/// `capsule-full`, `exec` still runs and the other commands say what is missing.
#[test]
fn the_lean_capsule_runs_exec_of_files_itself_and_hands_every_other_command_to_capsule_full() {
    let output = capsule().arg("--version").output().expect("spawn");
    assert_success(&output, "capsule --version");
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("capsule "));
    let output = capsule().args(["build", "--help"]).output().expect("spawn");
    assert_success(&output, "capsule build --help");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("Usage: capsule build"), "{help}");
    let output = capsule().args(["exec", "--help"]).output().expect("spawn");
    assert_success(&output, "capsule exec --help");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.contains("Usage: capsule exec") && help.contains("--trust"),
        "{help}"
    );

    let alone = tempfile::tempdir().expect("tempdir");
    let lean = alone.path().join("capsule");
    std::fs::copy(crate::support::capsule_path(), &lean).expect("copy capsule");
    let bundle = bundle(&fixture("echo.js"));
    let output = Command::new(&lean)
        .env("CAPSULE_CACHE_DIR", crate::support::cache_dir())
        .arg("exec")
        .arg(&bundle)
        .arg("--trust")
        .arg(&test_key().1)
        .args(["--json", "--", "7"])
        .output()
        .expect("spawn");
    assert_success(&output, "capsule exec without capsule-full");
    assert_eq!(envelope(&output)["result"]["args"], serde_json::json!([7]));
    let output = Command::new(&lean)
        .args(["build", "task.py"])
        .output()
        .expect("spawn");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("capsule-full") && stderr.contains("installed beside `capsule`"),
        "{stderr}"
    );
    // Registry pulls are `capsule-full`'s too: the lean binary has no registry client.
    let output = Command::new(&lean)
        .args([
            "exec",
            "oci://127.0.0.1:9/tasks/hello:v1",
            "--allow-unsigned",
        ])
        .output()
        .expect("spawn");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("capsule-full"), "{stderr}");
}
