//! Shared setup: the binary, an isolated cache, and fixture bundles built once per test process.

use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

/// A cache directory for this test run: guest snapshots compile once, and the compiler's
/// incremental cache is shared between the tests.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("capsule-test-cache")
}

/// The task fixtures.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tasks")
        .join(name)
}

/// The repository's examples.
pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// A binary of the runner package, built beside `capsule-full` (ci/test.sh builds them on their
/// own, so that no code generator is linked into them).
pub fn runner_binary(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_capsule-full")).with_file_name(name);
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build --release -p capsule-runner`",
        path.display()
    );
    path
}

/// The `capsule` users type: the lean front, which runs `exec` and hands the rest to
/// `capsule-full`.
pub fn capsule_path() -> PathBuf {
    runner_binary("capsule")
}

/// `capsule` with its own cache, no color, and a clean environment for the probe variable.
pub fn capsule() -> Command {
    let mut command = Command::new(capsule_path());
    command
        .env("CAPSULE_CACHE_DIR", cache_dir())
        // The shared test cache outgrows the 2 GiB default; evicting its compiler caches between
        // two tests' builds would only make the suite slower (tests/all/gc.rs uses caches of its
        // own).
        .env("CAPSULE_CACHE_MAX_SIZE", "off")
        .env("NO_COLOR", "1")
        .env_remove("CAPSULE_PROBE");
    command
}

/// Where built fixture bundles go.
fn bundles_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("test-bundles");
    std::fs::create_dir_all(&dir).expect("create test-bundles");
    dir
}

/// A signing key made with `capsule keygen` once per test process: (secret, public) key files.
pub fn test_key() -> &'static (PathBuf, PathBuf) {
    static KEY: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    KEY.get_or_init(|| make_key("test"))
}

/// A fresh key pair named `name` (unique to this process).
pub fn make_key(name: &str) -> (PathBuf, PathBuf) {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create key dir");
    let secret = dir.join(format!("{name}.key"));
    let output = capsule()
        .arg("keygen")
        .arg("-o")
        .arg(&secret)
        .output()
        .expect("spawn keygen");
    assert_success(&output, "capsule keygen");
    let public = dir.join(format!("{name}.key.pub"));
    (secret, public)
}

type Slot = Arc<OnceLock<PathBuf>>;
static BUILT: LazyLock<Mutex<HashMap<PathBuf, Slot>>> = LazyLock::new(Mutex::default);

/// Builds `source` with `capsule build -o --sign` (the test key) once per test process and returns the bundle path.
pub fn bundle(source: &Path) -> PathBuf {
    let slot = BUILT
        .lock()
        .expect("lock")
        .entry(source.to_path_buf())
        .or_default()
        .clone();
    slot.get_or_init(|| {
        let name = format!(
            "{}-{}.capsule",
            source.file_stem().expect("stem").to_string_lossy(),
            source.extension().expect("ext").to_string_lossy()
        );
        let out = bundles_dir().join(name);
        let output = capsule()
            .arg("build")
            .arg(source)
            .arg("-o")
            .arg(&out)
            .arg("--force")
            .arg("--sign")
            .arg(&test_key().0)
            .output()
            .expect("spawn capsule");
        assert_success(&output, "capsule build");
        out
    })
    .clone()
}

/// Asserts exit 0, showing both streams otherwise.
pub fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `capsule exec BUNDLE --json --trust TEST_KEY [extra...]` and parses the one envelope on stdout.
pub fn exec_json(bundle: &Path, extra: &[&str]) -> (Option<i32>, Value) {
    exec_json_in(bundle, extra, None, &[])
}

/// As [`exec_json`], in directory `cwd` with extra environment variables.
pub fn exec_json_in(
    bundle: &Path,
    extra: &[&str],
    cwd: Option<&Path>,
    env: &[(&str, &str)],
) -> (Option<i32>, Value) {
    let mut command = capsule();
    command
        .arg("exec")
        .arg(bundle)
        .arg("--json")
        .arg("--trust")
        .arg(&test_key().1)
        .args(extra);
    if let Some(dir) = cwd {
        command.current_dir(dir);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("spawn capsule");
    (output.status.code(), envelope(&output))
}

/// The single JSON document on stdout (fails if there is anything else).
pub fn envelope(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<_> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one line on stdout, got:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(lines[0])
        .unwrap_or_else(|e| panic!("stdout is not one JSON envelope ({e}):\n{stdout}"))
}

/// `capsule build SOURCE -o OUT` (unsigned, both targets).
pub fn build(source: &Path, out: &Path) -> Output {
    capsule()
        .arg("build")
        .arg(source)
        .arg("-o")
        .arg(out)
        .output()
        .expect("spawn capsule build")
}

/// A running `capsule worker --trust TEST_KEY [extra...]`.
pub struct Worker {
    pub child: Child,
    pub input: Option<ChildStdin>,
    output: BufReader<ChildStdout>,
}

impl Worker {
    pub fn start(extra: &[&str]) -> Self {
        let mut child = capsule()
            .arg("worker")
            .arg("--trust")
            .arg(&test_key().1)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn capsule worker");
        let input = child.stdin.take();
        let output = BufReader::new(child.stdout.take().expect("stdout"));
        Worker {
            child,
            input,
            output,
        }
    }

    pub fn send_line(&mut self, line: &str) {
        let input = self.input.as_mut().expect("stdin open");
        writeln!(input, "{line}").expect("write request");
        input.flush().expect("flush request");
    }

    pub fn send(&mut self, request: &Value) {
        self.send_line(&request.to_string());
    }

    /// The next line, parsed; fails on anything that is not one JSON object with an id.
    pub fn receive_any(&mut self) -> Value {
        let mut line = String::new();
        let read = self.output.read_line(&mut line).expect("read answer");
        assert!(read > 0, "the worker closed stdout early");
        let answer: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("answer line is not JSON ({e}): {line:?}"));
        assert!(answer.get("id").is_some(), "no id: {line}");
        answer
    }

    /// The next answer line, parsed; fails on anything that is not one JSON object with an id
    /// and an envelope.
    pub fn receive(&mut self) -> Value {
        let answer = self.receive_any();
        assert!(
            answer["envelope"].is_object(),
            "not an envelope answer: {answer}"
        );
        answer
    }

    /// Sends `request` and returns its answer (not an event line), whatever it is.
    pub fn ask(&mut self, request: &Value) -> Value {
        self.send(request);
        loop {
            let line = self.receive_any();
            if line.get("event").is_none() {
                return line;
            }
        }
    }

    pub fn call(&mut self, request: &Value) -> Value {
        self.send(request);
        self.receive()
    }

    /// Sends every request from another thread (so neither pipe fills up) and collects as
    /// many answers, by id.
    pub fn call_all(&mut self, requests: Vec<Value>) -> HashMap<String, Value> {
        let mut input = self.input.take().expect("stdin open");
        let count = requests.len();
        let feeder = std::thread::spawn(move || {
            for request in requests {
                writeln!(input, "{request}").expect("write request");
            }
            input.flush().expect("flush");
            input
        });
        let answers = (0..count)
            .map(|_| {
                let answer = self.receive();
                (answer["id"].to_string(), answer)
            })
            .collect();
        self.input = Some(feeder.join().expect("feeder thread"));
        answers
    }

    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Closes stdin and checks that the worker drains and exits 0; returns the answers that
    /// were still to come.
    pub fn finish(mut self) -> Vec<Value> {
        drop(self.input.take());
        let mut rest = Vec::new();
        let mut line = String::new();
        while self.output.read_line(&mut line).expect("read") > 0 {
            rest.push(serde_json::from_str(&line).expect("answer is JSON"));
            line.clear();
        }
        let status = self.child.wait().expect("wait for the worker");
        assert!(status.success(), "the worker exited with {status}");
        rest
    }
}
