//! Option groups shared by several commands, flattened into each.

use anyhow::{Context, bail};
use clap::Args;
use std::path::PathBuf;

/// How the outcome is printed.
#[derive(Args, Clone, Debug)]
pub struct OutputArgs {
    /// Print exactly one JSON envelope on stdout (guest output is inside it, never beside it).
    #[arg(long)]
    pub json: bool,

    /// Print stage timings (verify, load, instantiate, run), failed attempts and sub-task
    /// lifecycle lines on stderr; stdout is unchanged.
    #[arg(long, short)]
    pub verbose: bool,
}

impl OutputArgs {
    /// The trace `--verbose` asks for: lines on stderr, prefixed `capsule:`.
    pub fn trace(&self) -> crate::Trace {
        if self.verbose {
            crate::Trace::new(|line| eprintln!("capsule: {line}"))
        } else {
            crate::Trace::default()
        }
    }
}

/// The task to call and its arguments.
#[derive(Args, Clone, Debug)]
pub struct TaskArgs {
    /// Run this task instead of the bundle's entry task.
    #[arg(long, value_name = "NAME")]
    pub task: Option<String>,

    /// All arguments as JSON: an array of positional arguments, or an object
    /// `{"args": [...], "kwargs": {...}}`; `-` reads the document from stdin.
    #[arg(long, value_name = "JSON", conflicts_with_all = ["args", "args_file"])]
    pub args_json: Option<String>,

    /// Read the `--args-json` document from FILE (arguments of any size: the OS limits a
    /// command line to a few megabytes).
    #[arg(long, value_name = "FILE", conflicts_with = "args")]
    pub args_file: Option<PathBuf>,

    /// Positional task arguments, after `--`. Each is parsed as JSON when it is valid JSON
    /// (`5`, `true`, `[1,2]`, `"quoted"`), and passed as a string otherwise.
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,

    /// Stop the task after this long (`500ms`, `30s`, `5m`); at most what the task declares.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,

    /// Cap the task's memory (`64MB`, `512MiB`); at most what the task declares.
    #[arg(long, value_name = "SIZE")]
    pub ram: Option<String>,

    /// Cap the bytes the task may add to its writable directories (`100MB`); at most what the
    /// task declares as `disk`. Writes past it fail with ENOSPC.
    #[arg(long, value_name = "SIZE")]
    pub disk: Option<String>,

    /// Fuel budget: `LOW` (1e9, about 0.15 s of CPython work), `MEDIUM` (1e10, 1.5 s), `HIGH`
    /// (1e11, 15 s) or a count; at most what the task declares.
    #[arg(long, value_name = "LEVEL")]
    pub compute: Option<String>,

    /// Bind a declared directory to HOST instead of `./GUEST`, optionally read-only:
    /// `HOST:GUEST[:ro|:rw]` (repeatable). It can only narrow: no new directories, no read-write
    /// for a read-only one.
    #[arg(long, value_name = "HOST:GUEST[:ro]", value_parser = crate::Mount::parse)]
    pub mount: Vec<crate::Mount>,
}

impl TaskArgs {
    /// The exec-time limits, parsed exactly as task options are.
    pub fn narrowing(&self) -> anyhow::Result<crate::Narrowing> {
        use capsule_packager::policy::{parse_compute, parse_disk, parse_ram, parse_timeout};
        let text = |s: &String| serde_json::Value::String(s.clone());
        let flag = |name: &str, e: String| anyhow::anyhow!("invalid `--{name}`: {e}");
        Ok(crate::Narrowing {
            timeout: self
                .timeout
                .as_ref()
                .map(|t| parse_timeout(&text(t)).map_err(|e| flag("timeout", e)))
                .transpose()?,
            ram_bytes: self
                .ram
                .as_ref()
                .map(|r| parse_ram(&text(r)).map_err(|e| flag("ram", e)))
                .transpose()?,
            disk_bytes: self
                .disk
                .as_ref()
                .map(|d| parse_disk(&text(d)).map_err(|e| flag("disk", e)))
                .transpose()?,
            fuel: self
                .compute
                .as_ref()
                .map(|c| {
                    parse_compute(&text(c))
                        .map(|c| c.fuel())
                        .map_err(|e| flag("compute", e))
                })
                .transpose()?,
        })
    }

    /// The `{"args": [...], "kwargs": {...}}` document the guest receives.
    pub fn request_json(&self) -> anyhow::Result<String> {
        use serde_json::Value;
        let document = |text: &str, what: &str| {
            let value = serde_json::from_str::<Value>(text)
                .with_context(|| format!("{what} is not valid JSON"))?;
            args_document(Some(&value), None, what).map_err(anyhow::Error::msg)
        };
        match (&self.args_json, &self.args_file) {
            (Some(dash), _) if dash == "-" => {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text)
                    .context("cannot read `--args-json -` from stdin")?;
                document(&text, "`--args-json -` (stdin)")
            }
            (Some(text), _) => document(text, "`--args-json`"),
            (None, Some(file)) => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read `--args-file` `{}`", file.display()))?;
                document(&text, &format!("`--args-file` `{}`", file.display()))
            }
            (None, None) => {
                let args: Vec<Value> = self
                    .args
                    .iter()
                    .map(|a| serde_json::from_str(a).unwrap_or_else(|_| Value::String(a.clone())))
                    .collect();
                args_document(Some(&Value::Array(args)), None, "arguments")
                    .map_err(anyhow::Error::msg)
            }
        }
    }
}

/// `{"args": [...], "kwargs": {...}}` from `args` (an array of positional arguments, or an object
/// with `args` and/or `kwargs`), with `kwargs` given separately merged in. `what` names the input
/// in errors. Shared by `exec --args-json` and the worker's requests.
pub fn args_document(
    args: Option<&serde_json::Value>,
    kwargs: Option<&serde_json::Map<String, serde_json::Value>>,
    what: &str,
) -> Result<String, String> {
    use serde_json::{Map, Value};
    let (positional, mut named) = match args {
        None => (Vec::new(), Map::new()),
        Some(Value::Array(items)) => (items.clone(), Map::new()),
        Some(Value::Object(object)) => {
            if let Some(key) = object.keys().find(|k| *k != "args" && *k != "kwargs") {
                return Err(format!(
                    "{what} object has an unknown key `{key}`; expected `args` and/or `kwargs`"
                ));
            }
            match (
                object.get("args").unwrap_or(&Value::Array(Vec::new())),
                object.get("kwargs").unwrap_or(&Value::Object(Map::new())),
            ) {
                (Value::Array(items), Value::Object(map)) => (items.clone(), map.clone()),
                _ => {
                    return Err(format!(
                        "{what}: `args` must be an array and `kwargs` an object"
                    ));
                }
            }
        }
        Some(other) => {
            return Err(format!(
                "{what} must be an array or an object, found `{other}`"
            ));
        }
    };
    if let Some(kwargs) = kwargs {
        named.extend(kwargs.clone());
    }
    Ok(serde_json::json!({ "args": positional, "kwargs": named }).to_string())
}

/// Capsule's cache directory: `$CAPSULE_CACHE_DIR`, else `$XDG_CACHE_HOME/capsule`, else
/// `~/.cache/capsule`.
pub fn cache_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CAPSULE_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Ok(dir.into());
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("capsule"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".cache").join("capsule")),
        None => bail!("cannot find a cache directory: set CAPSULE_CACHE_DIR or HOME"),
    }
}

/// Where a work queue is: `capsule submit`, `jobs` and `results`.
#[derive(Args, Clone, Debug)]
pub struct QueueArgs {
    /// The NATS server with JetStream (`nats://HOST:4222`).
    #[arg(long, value_name = "URL")]
    pub nats: String,

    /// The queue name: letters, digits, `-` and `_`.
    #[arg(long, value_name = "NAME")]
    pub queue: String,
}

impl QueueArgs {
    /// Connects to the queue, creating its streams if need be.
    pub async fn connect(&self) -> anyhow::Result<crate::queue::Queue> {
        Ok(crate::queue::Queue::connect(&self.nats, &self.queue).await?)
    }
}

/// A runtime for one client command.
pub fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Which signers to trust.
#[derive(Args, Clone, Debug, Default)]
pub struct TrustArgs {
    /// Trust bundles signed by this key: a `capsule-ed25519:...` public key or a file holding one
    /// (repeatable). Also read: $CAPSULE_TRUST (keys or files, separated by commas or spaces) and
    /// every `*.pub` file in $CAPSULE_TRUST_DIR (default ~/.config/capsule/trust).
    #[arg(long, value_name = "PUBKEY")]
    pub trust: Vec<String>,

    /// Run bundles that are unsigned or signed by an untrusted key (a warning is printed). A
    /// signature that does not verify is refused regardless.
    #[arg(long)]
    pub allow_unsigned: bool,
}

impl TrustArgs {
    /// The trust policy from the flags, the environment and the trust directory.
    pub fn trust(&self) -> anyhow::Result<capsule_packager::sign::Trust> {
        let mut sources: Vec<String> = self.trust.clone();
        if let Ok(env) = std::env::var("CAPSULE_TRUST") {
            sources.extend(
                env.split([',', ' ', '\n'])
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            );
        }
        let mut keys = Vec::new();
        for source in &sources {
            keys.push(read_public_key(source)?);
        }
        let dir = match std::env::var_os("CAPSULE_TRUST_DIR") {
            Some(dir) => Some(PathBuf::from(dir)),
            None => {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/capsule/trust"))
            }
        };
        if let Some(dir) = dir.filter(|d| d.is_dir()) {
            let mut files: Vec<_> = std::fs::read_dir(&dir)
                .with_context(|| format!("cannot read the trust directory `{}`", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "pub"))
                .collect();
            files.sort();
            for file in files {
                keys.push(read_public_key(&file.to_string_lossy())?);
            }
        }
        Ok(capsule_packager::sign::Trust::new(
            keys,
            self.allow_unsigned,
        ))
    }
}

/// A public key given inline or as a file.
pub fn read_public_key(source: &str) -> anyhow::Result<capsule_packager::sign::PublicKey> {
    use capsule_packager::sign::PublicKey;
    if source.trim_start().starts_with("capsule-ed25519:") {
        return Ok(PublicKey::parse(source)?);
    }
    let text = std::fs::read_to_string(source).with_context(|| {
        format!("`{source}` is neither a `capsule-ed25519:` public key nor a readable key file")
    })?;
    PublicKey::parse(&text).with_context(|| format!("in key file `{source}`"))
}
