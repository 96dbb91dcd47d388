use super::build::{Plan, ProjectArgs};
use anyhow::{Context, bail};
use capsule_packager::engine::Target;
use capsule_packager::sign::Trust;
use capsule_runner::cli::args::{OutputArgs, cache_dir};
use capsule_runner::cli::report::{self, EXIT_USAGE, Refusal};
use capsule_runner::{CallOptions, Envelope, ErrorType, Language, Narrowing, Runner};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Run a piece of Python or JavaScript (code an LLM wrote, a snippet) in a fresh sandbox, like a
/// notebook cell: its statements run, the value of its final expression is the result, its output
/// is captured.
///
/// The interpreters are Capsule bundles built by Capsule's own pipeline from
/// guest-images/interpreters/ (CPython / QuickJS-ng with common modules pre-imported), kept in the
/// cache; the first use on a machine builds them (`guest-images/build.sh prime` does that ahead).
/// Nothing is granted: no files, no network, no environment variables.
#[derive(clap::Parser)]
#[command(after_help = RUN_CODE_HELP)]
pub struct RunCodeCommand {
    /// `python` or `javascript` (also `py`, `js`).
    #[arg(long, short, value_parser = parse_language)]
    language: Language,

    /// The code to run.
    #[arg(
        short = 'c',
        long = "code",
        value_name = "CODE",
        conflicts_with = "file"
    )]
    code: Option<String>,

    /// A file holding the code, or `-` for stdin.
    #[arg(value_name = "FILE", required_unless_present = "code")]
    file: Option<PathBuf>,

    /// Stop the cell after this long (default 30s, at most 5m).
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    timeout: String,

    /// Cap its memory (default 256MB, at most 2GiB).
    #[arg(long, value_name = "SIZE", default_value = "256MB")]
    ram: String,

    /// Fuel budget: LOW, MEDIUM (default, about 1.5 s of CPython work), HIGH (at most), or a count.
    #[arg(long, value_name = "LEVEL", default_value = "MEDIUM")]
    compute: String,

    #[command(flatten)]
    output: OutputArgs,
}

const RUN_CODE_HELP: &str = "Examples:\n  capsule run-code -l python -c 'sum(range(10))'\n  \
capsule run-code -l javascript -c '[1, 2, 3].map(x => x * 2)' --json\n  echo 'print(\"hi\")' | capsule run-code -l py -\n\n\
With --json the envelope's `result` is {\"format\": \"json\"|\"repr\"|\"none\", \"value\": ..., \"repr\": ...}:\n\
the final expression's value as JSON when it can be, else its repr.\n\n\
Exit status:\n  0  the cell ran\n  1  the cell raised, or hit a limit (timeout, out_of_fuel, memory_limit)\n  2  usage error";

fn parse_language(text: &str) -> Result<Language, String> {
    text.parse()
}

/// The interpreter sources; built like any task file.
const PYTHON_INTERPRETER: &str = include_str!("../../guest-images/interpreters/run_code.py");
const JAVASCRIPT_INTERPRETER: &str = include_str!("../../guest-images/interpreters/run_code.js");
/// The stateless cell task of every interpreter bundle (its entry).
const TASK: &str = "main";

/// Where an installed package (the Python wheel, the npm package) ships prebuilt interpreters:
/// `<prefix>/share/capsule/interpreters/<language>.capsule` next to `<prefix>/bin/capsule`. They
/// come with the binary and are trusted like it (their blobs are still verified against their
/// manifest before anything loads).
pub fn shipped_interpreter(language: Language) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?.canonicalize().ok()?;
    let prefix = exe.parent()?.parent()?;
    let bundle = prefix
        .join("share/capsule/interpreters")
        .join(format!("{}.capsule", language.name()));
    bundle.is_file().then_some(bundle)
}

/// The interpreter bundle for `language`: the one shipped with this binary, else the one built
/// into the cache on first use. Returns its path.
pub fn interpreter_bundle(language: Language) -> anyhow::Result<PathBuf> {
    if let Some(shipped) = shipped_interpreter(language) {
        return Ok(shipped);
    }
    built_interpreter(language)
}

/// The interpreter bundle for `language` built by this binary into the cache (on first use).
pub fn built_interpreter(language: Language) -> anyhow::Result<PathBuf> {
    let (dir, plan) = interpreter_plan(language)?;
    let bundle = plan.cache_path()?;
    if bundle.is_file() {
        return Ok(bundle);
    }
    // One build per machine even when several processes start at once: the others wait.
    let lock_path = dir.join(".build.lock");
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("cannot create `{}`", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("cannot lock `{}`", lock_path.display()))?;
    if !bundle.is_file() {
        eprintln!(
            "building the {} interpreter (once per machine)...",
            language.name()
        );
        let compiled = plan.compile()?;
        let bytes = compiled.to_bytes(None).context("cannot write the bundle")?;
        if let Some(parent) = bundle.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create `{}`", parent.display()))?;
        }
        let staging = bundle.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&staging, &bytes)
            .with_context(|| format!("cannot write `{}`", staging.display()))?;
        std::fs::rename(&staging, &bundle)
            .with_context(|| format!("cannot write `{}`", bundle.display()))?;
    }
    Ok(bundle)
}

/// The build plan of `language`'s interpreter, its sources written to their own project
/// directory in the cache; returns that directory too.
fn interpreter_plan(language: Language) -> anyhow::Result<(PathBuf, Plan)> {
    let (file, source) = match language {
        Language::Python => ("run_code.py", PYTHON_INTERPRETER),
        Language::Javascript => ("run_code.js", JAVASCRIPT_INTERPRETER),
    };
    // Its own project directory, with a marker so that nothing around it is taken in.
    let dir = cache_dir()?.join("interpreters").join(language.name());
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    write_if_changed(&dir.join("capsule.toml"), "")?;
    let task = dir.join(file);
    write_if_changed(&task, source)?;
    let targets: Vec<Target> = Target::host().into_iter().collect();
    let plan = Plan::new(&task, None, &targets, &ProjectArgs::default(), None)?;
    Ok((dir, plan))
}

/// The worker's view of the interpreters: shipped or built by this binary.
struct WorkerInterpreters;

impl capsule_runner::worker::InterpreterBundles for WorkerInterpreters {
    fn bundle(&self, language: Language) -> Result<PathBuf, String> {
        interpreter_bundle(language)
            .map_err(|e| format!("cannot build the {language} interpreter: {e:#}"))
    }

    fn existing(&self, language: Language) -> Option<PathBuf> {
        shipped_interpreter(language).or_else(|| {
            let (_, plan) = interpreter_plan(language).ok()?;
            plan.cache_path().ok().filter(|bundle| bundle.is_file())
        })
    }
}

/// The interpreters for `capsule worker`.
pub fn interpreters_for_worker() -> std::sync::Arc<dyn capsule_runner::worker::InterpreterBundles> {
    std::sync::Arc::new(WorkerInterpreters)
}

fn write_if_changed(path: &Path, text: &str) -> anyhow::Result<()> {
    if std::fs::read(path).ok().as_deref() != Some(text.as_bytes()) {
        std::fs::write(path, text).with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    Ok(())
}

impl RunCodeCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let usage = |message: String| Refusal {
            message,
            code: EXIT_USAGE,
        };
        let code = match (&self.code, &self.file) {
            (Some(code), _) => code.clone(),
            (None, Some(path)) if path.as_os_str() == "-" => {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                    .context("cannot read the code from stdin")?;
                text
            }
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| usage(format!("cannot read `{}`: {e}", path.display())))?,
            (None, None) => bail!(usage(
                "give the code with -c CODE, a FILE, or - for stdin".into()
            )),
        };
        let narrow = match narrowing(&self.timeout, &self.ram, &self.compute) {
            Ok(narrow) => narrow,
            Err(e) => {
                let message = format!("{e:#}");
                if self.output.json {
                    report::print_envelope(
                        &Envelope::refused(TASK, ErrorType::InvalidArgs, message.clone()),
                        true,
                    );
                }
                bail!(usage(message));
            }
        };
        let bundle = interpreter_bundle(self.language)?;
        let args_json = serde_json::json!({"args": [code], "kwargs": {}}).to_string();
        // Built by this capsule into its own cache from its own sources: nobody else signed it,
        // and its blobs are still verified against its manifest.
        let runner = Runner::new(cache_dir()?.join("store"))?;
        let outcome = runner
            .open(&bundle, &Trust::new(Vec::new(), true))
            .and_then(|loaded| {
                loaded.call(&CallOptions {
                    task: Some(TASK.to_string()),
                    args_json,
                    files_root: None,
                    narrow,
                    mounts: Vec::new(),
                })
            });
        let envelope = match outcome {
            Ok(envelope) => envelope,
            Err(error) => {
                let message = format!(
                    "cannot run the {} interpreter: {error}",
                    self.language.name()
                );
                if self.output.json {
                    report::print_envelope(
                        &Envelope::refused(TASK, error.error_type(), message.clone()),
                        true,
                    );
                }
                bail!(Refusal {
                    message,
                    code: error.exit_code() as u8,
                });
            }
        };
        if self.output.json {
            return Ok(report::print_envelope(&envelope, true));
        }
        Ok(print_cell(&envelope))
    }
}

fn narrowing(timeout: &str, ram: &str, compute: &str) -> anyhow::Result<Narrowing> {
    use capsule_packager::policy::{parse_compute, parse_ram, parse_timeout};
    let text = |s: &str| serde_json::Value::String(s.to_string());
    Ok(Narrowing {
        timeout: Some(
            parse_timeout(&text(timeout))
                .map_err(|e| anyhow::anyhow!("invalid `--timeout`: {e}"))?,
        ),
        ram_bytes: Some(
            parse_ram(&text(ram)).map_err(|e| anyhow::anyhow!("invalid `--ram`: {e}"))?,
        ),
        fuel: Some(
            parse_compute(&text(compute))
                .map(|c| c.fuel())
                .map_err(|e| anyhow::anyhow!("invalid `--compute`: {e}"))?,
        ),
        disk_bytes: None,
    })
}

/// A REPL's view of a cell: its output, then the value's repr (or the error and traceback).
fn print_cell(envelope: &Envelope) -> u8 {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(envelope.output.stdout.as_bytes());
    let _ = std::io::stderr().write_all(envelope.output.stderr.as_bytes());
    if let Some(result) = &envelope.result {
        let value: serde_json::Value = serde_json::from_str(result.get()).unwrap_or_default();
        if let Some(repr) = value.get("repr").and_then(|r| r.as_str()) {
            let _ = writeln!(stdout, "{repr}");
        }
        return 0;
    }
    let _ = stdout.flush();
    if let Some(error) = &envelope.error {
        match (&error.traceback, error.error_type) {
            (Some(traceback), ErrorType::TaskError) => eprintln!("{}", traceback.trim_end()),
            _ => eprintln!("error ({}): {}", error.error_type.as_str(), error.message),
        }
    }
    report::EXIT_TASK_FAILED
}
