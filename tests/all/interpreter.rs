//! `capsule run-code`: code strings run like notebook cells in the built-in interpreters
//! (bundles built by Capsule's own pipeline), under strict default limits.

use crate::support::{capsule, envelope};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Builds both interpreters once per test process, so that no test times a first build.
fn ready() {
    static READY: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    READY.get_or_init(|| {
        for language in ["python", "javascript"] {
            let output = capsule()
                .args(["run-code", "-l", language, "-c", "1"])
                .output()
                .expect("spawn capsule run-code");
            crate::support::assert_success(&output, "building the interpreter");
        }
    });
}

/// `capsule run-code -l LANGUAGE -c CODE --json [extra]`: exit code and envelope.
fn run_code(language: &str, code: &str, extra: &[&str]) -> (Option<i32>, Value) {
    ready();
    let output = capsule()
        .args(["run-code", "--json", "-l", language, "-c", code])
        .args(extra)
        .output()
        .expect("spawn capsule run-code");
    (output.status.code(), envelope(&output))
}

fn value(language: &str, code: &str) -> Value {
    let (code_exit, envelope) = run_code(language, code, &[]);
    assert_eq!(code_exit, Some(0), "{language} `{code}`: {envelope:#}");
    envelope["result"].clone()
}

#[test]
fn python_cells_return_their_final_expression_and_output() {
    assert_eq!(
        value("python", "x = 6\nx * 7"),
        json!({"format": "json", "value": 42, "repr": "42"})
    );
    // Not JSON: the repr, and it says so; the stdlib imports at run time.
    let got = value("python", "import fractions\nfractions.Fraction(1, 3) + 1");
    assert_eq!(
        got,
        json!({"format": "repr", "value": null, "repr": "Fraction(4, 3)"})
    );
    // Statements only: no value; output captured.
    let (code, envelope) = run_code("python", "for i in range(3):\n    print(i)", &[]);
    assert_eq!(code, Some(0));
    assert_eq!(envelope["result"]["format"], "none");
    assert_eq!(envelope["output"]["stdout"], "0\n1\n2\n");
    // Top-level await.
    assert_eq!(
        value(
            "python",
            "import asyncio\nawait asyncio.sleep(0.01)\n'slept'"
        )["value"],
        "slept"
    );
}

#[test]
fn python_cell_errors_carry_the_cells_line_numbers() {
    let (code, envelope) = run_code("python", "a = 1\nb = 0\na / b", &[]);
    assert_eq!(code, Some(1));
    assert_eq!(envelope["error"]["error_type"], "task_error");
    assert_eq!(
        envelope["error"]["message"],
        "ZeroDivisionError: division by zero"
    );
    let traceback = envelope["error"]["traceback"].as_str().unwrap_or_default();
    assert!(traceback.contains("File \"<cell>\", line 3"), "{traceback}");
    assert!(
        !traceback.contains("_cells.py"),
        "interpreter frames leak: {traceback}"
    );

    let (code, envelope) = run_code("python", "def f(:\n    pass", &[]);
    assert_eq!(code, Some(1));
    assert!(
        envelope["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("SyntaxError"),
        "{envelope:#}"
    );

    // Without --json: the value's repr, like a REPL; the traceback on stderr.
    ready();
    let output = capsule()
        .args(["run-code", "-l", "py", "-c", "print('out')\n[1, 2]"])
        .output()
        .expect("spawn");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "out\n[1, 2]\n");
}

#[test]
fn cells_hit_the_default_limits() {
    ready();
    let started = Instant::now();
    let (code, envelope) = run_code(
        "python",
        "while True:\n    pass",
        &["--timeout", "1s", "--compute", "HIGH"],
    );
    assert_eq!(code, Some(1));
    assert_eq!(envelope["error"]["error_type"], "timeout", "{envelope:#}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // The default memory cap is 256MB.
    let (code, envelope) = run_code("python", "x = bytearray(400 * 1024 * 1024)\nlen(x)", &[]);
    assert_eq!(code, Some(1));
    assert_eq!(
        envelope["error"]["error_type"], "memory_limit",
        "{envelope:#}"
    );

    // The default compute is MEDIUM: a long loop runs out of fuel.
    let (code, envelope) = run_code(
        "javascript",
        "let s = 0; for (;;) { s++ }",
        &["--timeout", "2m"],
    );
    assert_eq!(code, Some(1));
    assert_eq!(
        envelope["error"]["error_type"], "out_of_fuel",
        "{envelope:#}"
    );

    // Limits only narrow what the interpreter allows (2GiB at most); bad values are usage errors.
    let (code, envelope) = run_code("python", "1", &["--ram", "3GiB"]);
    assert_eq!(code, Some(2), "{envelope:#}");
    assert_eq!(envelope["success"], false);
    let (code, envelope) = run_code("python", "1", &["--timeout", "soon"]);
    assert_eq!(code, Some(2));
    assert_eq!(envelope["error"]["error_type"], "invalid_args");
}

#[test]
fn javascript_cells_return_their_completion_value() {
    assert_eq!(
        value("javascript", "[1, 2, 3].map(x => x * 2)"),
        json!({"format": "json", "value": [2, 4, 6], "repr": "2,4,6"})
    );
    let (code, envelope) = run_code("javascript", "console.log('hi'); const a = 40; a + 2", &[]);
    assert_eq!(code, Some(0), "{envelope:#}");
    assert_eq!(envelope["result"]["value"], 42);
    assert_eq!(envelope["output"]["stdout"], "hi\n");
    assert_eq!(value("javascript", "10n ** 20n")["format"], "repr");
    // Top-level await, and the completion value after it.
    assert_eq!(
        value(
            "javascript",
            "const n = await new Promise(r => setTimeout(() => r(20), 10));\nn + 1"
        )["value"],
        21
    );
    let (code, envelope) = run_code("javascript", "null.x", &[]);
    assert_eq!(code, Some(1));
    assert_eq!(envelope["error"]["error_type"], "task_error");
    assert!(
        envelope["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("TypeError"),
        "{envelope:#}"
    );
}
