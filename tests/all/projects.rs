//! Python projects: helper modules, packages and data files in an app layer; third-party
//! packages resolved from the package index (PEP 723, requirements.txt, pyproject.toml, an active
//! virtualenv) into a site-packages layer; packages that need compiled extensions refused by name.
//! The projects are written by the tests; packages come from the real index through the host's pip.

use crate::support::{assert_success, capsule, envelope};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;

/// A fresh project directory with `files` (relative name → contents).
fn project(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("projects")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (file, text) in files {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write project file");
    }
    dir
}

/// `capsule build TASK -o DIR/NAME.capsule` for this host only, without a virtualenv leaking in.
fn build_project(task: &Path, env: &[(&str, &str)]) -> (Output, PathBuf) {
    let out = task.with_extension("capsule");
    let mut command = capsule();
    command
        .arg("build")
        .arg(task)
        .arg("-o")
        .arg(&out)
        .arg("--target")
        .arg("x86_64")
        .env_remove("VIRTUAL_ENV");
    for (key, value) in env {
        command.env(key, value);
    }
    (command.output().expect("spawn capsule build"), out)
}

fn built(task: &Path) -> PathBuf {
    let (output, out) = build_project(task, &[]);
    assert_success(&output, &format!("capsule build {}", task.display()));
    out
}

/// Runs a task of an unsigned bundle; returns the exit code and the envelope.
fn exec(bundle: &Path, task: &str, args: &[&str], cwd: Option<&Path>) -> (Option<i32>, Value) {
    let mut command = capsule();
    command
        .arg("exec")
        .arg(bundle)
        .arg("--json")
        .arg("--allow-unsigned")
        .arg("--task")
        .arg(task)
        .arg("--")
        .args(args);
    if let Some(dir) = cwd {
        command.current_dir(dir);
    }
    let output = command.output().expect("spawn capsule exec");
    (output.status.code(), envelope(&output))
}

fn ok(bundle: &Path, task: &str, args: &[&str]) -> Value {
    let (code, envelope) = exec(bundle, task, args, None);
    assert_eq!(code, Some(0), "task `{task}`: {envelope:#}");
    envelope["result"].clone()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn helper_modules_packages_and_data_files_come_with_the_task() {
    let dir = project(
        "local-modules",
        &[
            ("capsule.toml", "[build]\nexclude = [\"scratch/\"]\n"),
            ("helpers.py", "def double(x):\n    return 2 * x\n"),
            ("late.py", "VALUE = 'imported at run time'\n"),
            ("scratch/big.bin", "not for the bundle"),
            ("textkit/__init__.py", "from .shout import shout\n"),
            (
                "textkit/shout.py",
                "from . import data\nimport importlib.resources\n\ndef shout(s):\n    suffix = importlib.resources.files(data).joinpath('suffix.txt').read_text().strip()\n    return s.upper() + suffix\n",
            ),
            ("textkit/data/__init__.py", ""),
            ("textkit/data/suffix.txt", "!!\n"),
            ("src/prompt.txt", "Hello, {name}.\n"),
            (
                "src/task.py",
                r#"from pathlib import Path
import os
from capsule import task
from helpers import double
from textkit import shout

PROMPT = (Path(__file__).parent / "prompt.txt").read_text()

@task(name="main")
def main(n: int) -> dict:
    return {"double": double(n), "shout": shout("hi"), "prompt": PROMPT.format(name="Ada").strip()}

@task(name="lazy")
def lazy() -> dict:
    import late
    here = Path(__file__).parent
    return {"late": late.VALUE, "prompt_again": (here / "prompt.txt").read_text().strip(),
            "scratch_shipped": os.path.exists(os.path.join(os.path.dirname(late.__file__), "scratch"))}

@task(name="fails")
def fails():
    return double(None)
"#,
            ),
        ],
    );
    let bundle = built(&dir.join("src/task.py"));
    assert_eq!(
        ok(&bundle, "main", &["21"]),
        json!({"double": 42, "shout": "HI!!", "prompt": "Hello, Ada."})
    );
    assert_eq!(
        ok(&bundle, "lazy", &[]),
        json!({"late": "imported at run time", "prompt_again": "Hello, {name}.", "scratch_shipped": false})
    );
    // Tracebacks name the project's files relative to its root.
    let (code, envelope) = exec(&bundle, "fails", &[], None);
    assert_eq!(code, Some(1));
    let traceback = envelope["error"]["traceback"].as_str().unwrap_or_default();
    assert!(
        traceback.contains("File \"helpers.py\", line 2"),
        "{traceback}"
    );
    assert!(traceback.contains("File \"src/task.py\""), "{traceback}");
}

#[test]
fn project_mistakes_are_reported_with_file_and_line() {
    let dir = project(
        "missing-module",
        &[(
            "task.py",
            "from capsule import task\nimport helperz\n\n@task\ndef main():\n    return 1\n",
        )],
    );
    let (output, _) = build_project(&dir.join("task.py"), &[]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.contains("No module named 'helperz'"), "{text}");
    assert!(
        text.contains("`helperz` was looked for in: the project"),
        "{text}"
    );

    let dir = project(
        "syntax-error",
        &[
            ("helpers.py", "def double(x):\n    return 2 *\n"),
            (
                "task.py",
                "from capsule import task\nfrom helpers import double\n\n@task\ndef main():\n    return double(1)\n",
            ),
        ],
    );
    let (output, _) = build_project(&dir.join("task.py"), &[]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.contains("File \"helpers.py\", line 2"), "{text}");
    assert!(text.contains("SyntaxError"), "{text}");

    let dir = project(
        "oversized",
        &[(
            "task.py",
            "from capsule import task\n\n@task\ndef main():\n    return 1\n",
        )],
    );
    for (name, megabytes) in [("data/a.bin", 40), ("data/b.bin", 30), ("c.txt", 1)] {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, vec![b'x'; megabytes << 20]).expect("write");
    }
    let (output, _) = build_project(&dir.join("task.py"), &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains("more than the 67.1 MB an app layer may hold"),
        "{text}"
    );
    let (a, b) = (text.find("data/a.bin"), text.find("data/b.bin"));
    assert!(
        a.is_some() && b.is_some() && a < b,
        "largest first:\n{text}"
    );
}

/// A local HTTP server: `/json` answers a JSON document (gzip-encoded when asked), `/redirect`
/// points to `/json`. Returns its port.
fn serve() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
            let response = if path == "/redirect" {
                "HTTP/1.1 302 Found\r\nLocation: /json\r\nContent-Length: 0\r\n\r\n".to_string()
            } else {
                let doc = format!(r#"{{"path": "{path}", "received": {}}}"#, body.len());
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{doc}",
                    doc.len()
                )
            };
            let _ = stream.write_all(response.as_bytes());
        }
    });
    port
}

const PACKAGES_TASK: &str = r#"import io
import json
import requests
import httpx
import jinja2
import yaml
import bs4
import tabulate
import attrs
import networkx
import sympy
import openpyxl
import rich.console
from dateutil import parser as dateparser, relativedelta
from capsule import task

@attrs.define
class Point:
    x: int
    y: int

@task(name="requests_get", allowed_hosts=["127.0.0.1"])
def requests_get(base):
    r = requests.get(base + "/redirect", timeout=5)
    posted = requests.post(base + "/echo", json={"a": 1}).json()
    return {"status": r.status_code, "json": r.json(), "history": [h.status_code for h in r.history],
            "posted": posted["received"]}

@task(name="requests_denied", allowed_hosts=["127.0.0.1"])
def requests_denied(url):
    try:
        requests.get(url, timeout=5)
    except requests.exceptions.ConnectionError as error:
        return {"caught": type(error).__name__}
    return {"caught": None}

@task(name="requests_uncaught", allowed_hosts=["127.0.0.1"])
def requests_uncaught(url):
    return requests.get(url, timeout=5).status_code

@task(name="httpx_get", allowed_hosts=["127.0.0.1"])
def httpx_get(base):
    with httpx.Client(follow_redirects=True) as client:
        r = client.get(base + "/redirect")
    return {"status": r.status_code, "json": r.json()}

@task(name="main", allowed_files=[{"path": "out", "mode": "rw"}])
def others():
    template = jinja2.Template("Hello {{ name }}! {% for i in items %}{{ i }}{% endfor %}")
    soup = bs4.BeautifulSoup("<ul><li>a</li><li>b</li></ul>", "html.parser")
    graph = networkx.path_graph(5)
    x = sympy.symbols("x")
    # openpyxl writes through a temporary file; a task has no /tmp unless it is granted one.
    import tempfile
    tempfile.tempdir = "/out"
    book = openpyxl.Workbook()
    book.active["A1"] = "total"
    book.active["B1"] = 42
    book.save("/out/report.xlsx")
    again = openpyxl.load_workbook("/out/report.xlsx").active
    console = rich.console.Console(file=io.StringIO(), width=40)
    console.print("[bold]hi[/bold]")
    return {
        "jinja2": template.render(name="Ada", items=[1, 2, 3]),
        "yaml": yaml.safe_load("a: [1, 2]\nb: {c: true}\n"),
        "bs4": [li.text for li in soup.find_all("li")],
        "dateutil": (dateparser.parse("2024-01-31") + relativedelta.relativedelta(months=1)).date().isoformat(),
        "tabulate": tabulate.tabulate([[1, 2]], headers=["a", "b"], tablefmt="plain"),
        "attrs": attrs.asdict(Point(1, 2)),
        "networkx": networkx.shortest_path(graph, 0, 4),
        "sympy": str(sympy.integrate(x**2, x)),
        "openpyxl": [again["A1"].value, again["B1"].value],
        "rich": console.file.getvalue().strip(),
    }
"#;

#[test]
fn pypi_packages_do_real_work_in_tasks() {
    let dir = project(
        "packages",
        &[
            (
                "requirements.txt",
                "requests\nhttpx\njinja2\npyyaml\nbeautifulsoup4\npython-dateutil\ntabulate\nattrs\nnetworkx\nsympy\nopenpyxl\nrich\n",
            ),
            ("task.py", PACKAGES_TASK),
        ],
    );
    let bundle = built(&dir.join("task.py"));
    let base = format!("http://127.0.0.1:{}", serve());

    let got = ok(&bundle, "requests_get", &[&base]);
    assert_eq!(got["status"], 200, "{got}");
    assert_eq!(got["json"]["path"], "/json");
    assert_eq!(got["history"], json!([302]));
    assert_eq!(got["posted"], 8, "the body of json={{\"a\": 1}}");

    // `localhost` is the same server under a name the task may not reach.
    let port = base.rsplit(':').next().unwrap_or_default();
    let refused = format!("http://localhost:{port}/json");
    assert_eq!(
        ok(&bundle, "requests_denied", &[&refused]),
        json!({"caught": "ConnectionError"})
    );
    let (code, envelope) = exec(&bundle, "requests_uncaught", &[&refused], None);
    assert_eq!(code, Some(1));
    assert_eq!(
        envelope["error"]["error_type"], "host_denied",
        "{envelope:#}"
    );
    let hosts = &envelope["execution"]["host_requests"];
    assert_eq!(hosts[0]["host"], "localhost");
    assert_eq!(hosts[0]["allowed"], false);

    let got = ok(&bundle, "httpx_get", &[&base]);
    assert_eq!(
        got,
        json!({"status": 200, "json": {"path": "/json", "received": 0}})
    );

    let work = dir.join("run");
    std::fs::create_dir_all(work.join("out")).expect("mkdir out");
    let (code, envelope) = exec(&bundle, "main", &[], Some(&work));
    assert_eq!(code, Some(0), "{envelope:#}");
    let got = &envelope["result"];
    assert_eq!(got["jinja2"], "Hello Ada! 123");
    assert_eq!(got["yaml"], json!({"a": [1, 2], "b": {"c": true}}));
    assert_eq!(got["bs4"], json!(["a", "b"]));
    assert_eq!(got["dateutil"], "2024-02-29");
    assert_eq!(got["tabulate"], "  a    b\n  1    2");
    assert_eq!(got["attrs"], json!({"x": 1, "y": 2}));
    assert_eq!(got["networkx"], json!([0, 1, 2, 3, 4]));
    assert_eq!(got["sympy"], "x**3/3");
    assert_eq!(got["openpyxl"], json!(["total", 42]));
    assert_eq!(got["rich"], "hi");
    assert!(work.join("out/report.xlsx").is_file());

    // The manifest records every installed distribution; inspect lists them.
    let output = capsule()
        .arg("inspect")
        .arg(&bundle)
        .output()
        .expect("inspect");
    assert_success(&output, "capsule inspect");
    let text = String::from_utf8_lossy(&output.stdout);
    for name in [
        "requests", "urllib3", "sympy", "mpmath", "PyYAML", "openpyxl",
    ] {
        assert!(
            text.contains(&format!("  {name} ")),
            "{name} not listed:\n{text}"
        );
    }
    assert!(text.contains("compiled extension(s) left out"), "{text}");
}

#[test]
fn dependencies_come_from_pep_723_pyproject_requirements_or_the_virtualenv() {
    let task = |module: &str, expr: &str| {
        format!(
            "import {module}\nfrom capsule import task\n\n@task\ndef main():\n    return {expr}\n"
        )
    };
    // PEP 723 wins over requirements.txt.
    let dir = project(
        "pep723",
        &[
            ("requirements.txt", "this-package-does-not-exist-capsule\n"),
            (
                "task.py",
                &format!(
                    "# /// script\n# dependencies = [\"tabulate==0.9.0\"]\n# ///\n{}",
                    task("tabulate", "tabulate.__version__")
                ),
            ),
        ],
    );
    assert_eq!(
        ok(&built(&dir.join("task.py")), "main", &[]),
        json!("0.9.0")
    );
    // Same project, same resolved set: the same bytes, also from a cold cache (pip runs again).
    let (output, _) = {
        let out = dir.join("again.capsule");
        let output = capsule()
            .arg("build")
            .arg(dir.join("task.py"))
            .arg("-o")
            .arg(&out)
            .args(["--target", "x86_64", "--check-reproducible"])
            .env_remove("VIRTUAL_ENV")
            .output()
            .expect("spawn capsule build --check-reproducible");
        (output, out)
    };
    assert_success(&output, "build --check-reproducible of a PEP 723 project");

    let dir = project(
        "pyproject",
        &[
            (
                "pyproject.toml",
                "[project]\nname = \"demo\"\nversion = \"0\"\ndependencies = [\"attrs==24.2.0\"]\n",
            ),
            ("src/demo/task.py", &task("attrs", "attrs.__version__")),
        ],
    );
    assert_eq!(
        ok(&built(&dir.join("src/demo/task.py")), "main", &[]),
        json!("24.2.0")
    );

    let dir = project(
        "requirements",
        &[
            ("requirements.txt", "python-dateutil==2.9.0.post0\n"),
            ("task.py", &task("dateutil", "dateutil.__version__")),
        ],
    );
    let bundle = built(&dir.join("task.py"));
    assert_eq!(ok(&bundle, "main", &[]), json!("2.9.0.post0"));
    // Same requirement set, same site-packages layer (content-addressed), resolved once.
    let again = project(
        "requirements-again",
        &[
            ("requirements.txt", "python-dateutil==2.9.0.post0\n"),
            ("task.py", &task("dateutil", "dateutil.__version__ + '!'")),
        ],
    );
    let layers = |bundle: &Path| -> Vec<Value> {
        let output = capsule()
            .arg("inspect")
            .arg(bundle)
            .arg("--json")
            .output()
            .expect("inspect");
        assert_success(&output, "inspect --json");
        let manifest: Value = serde_json::from_slice(&output.stdout).expect("manifest json");
        manifest["manifest"]["layers"]
            .as_array()
            .or(manifest["layers"].as_array())
            .cloned()
            .unwrap_or_default()
    };
    let first = layers(&bundle);
    let second = layers(&built(&again.join("task.py")));
    let site = |layers: &[Value]| {
        layers
            .iter()
            .find(|l| l["mount"] == "/capsule/site-packages")
            .map(|l| l["digest"].clone())
    };
    assert!(site(&first).is_some(), "{first:?}");
    assert_eq!(site(&first), site(&second));

    // With the package index out of reach, a resolved set still builds (from the cache), and a
    // new one fails saying why.
    let offline = [
        ("PIP_INDEX_URL", "http://127.0.0.1:9/simple"),
        ("PIP_RETRIES", "1"),
        ("PIP_TIMEOUT", "3"),
    ];
    let (output, _) = build_project(&again.join("task.py"), &offline);
    assert_success(&output, "an already resolved requirement set, offline");
    let never = project(
        "offline",
        &[
            ("requirements.txt", "tabulate==0.8.10\n"),
            ("task.py", &task("tabulate", "tabulate.__version__")),
        ],
    );
    let (output, _) = build_project(&never.join("task.py"), &offline);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("the package index cannot be reached and this requirement set has not been resolved on this machine before"),
        "{}",
        stderr(&output)
    );

    // An active virtualenv, when nothing is declared.
    let venv =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("venv-{}", std::process::id()));
    let status = std::process::Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("python3 -m venv");
    assert!(status.success());
    let status = std::process::Command::new(venv.join("bin/python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "tabulate==0.9.0",
        ])
        .status()
        .expect("pip install into the venv");
    assert!(status.success());
    let dir = project(
        "venv",
        &[("task.py", &task("tabulate", "tabulate.__version__"))],
    );
    let venv_text = venv.to_string_lossy().into_owned();
    let (output, bundle) = build_project(&dir.join("task.py"), &[("VIRTUAL_ENV", &venv_text)]);
    assert_success(&output, "build with an active virtualenv");
    assert!(
        stderr(&output).contains("the active virtualenv"),
        "{}",
        stderr(&output)
    );
    assert_eq!(ok(&bundle, "main", &[]), json!("0.9.0"));
}

#[test]
fn packages_that_need_compiled_extensions_fail_the_build_by_name() {
    for (package, module, named) in [
        ("numpy", "numpy", "numpy"),
        ("pydantic", "pydantic", "pydantic"),
    ] {
        let dir = project(
            &format!("native-{package}"),
            &[
                ("requirements.txt", &format!("{package}\n")),
                (
                    "task.py",
                    &format!(
                        "import {module}\nfrom capsule import task\n\n@task\ndef main():\n    return 1\n"
                    ),
                ),
            ],
        );
        let (output, _) = build_project(&dir.join("task.py"), &[]);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{package}: {text}");
        assert!(
            text.contains(&named.to_string())
                && text.contains("needs a compiled extension")
                && text.contains("packages with C extensions cannot run in the sandbox"),
            "{package}: {text}"
        );
    }
}
