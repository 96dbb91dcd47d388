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
}

/// The task to call and its arguments.
#[derive(Args, Clone, Debug)]
pub struct TaskArgs {
    /// Run this task instead of the bundle's entry task.
    #[arg(long, value_name = "NAME")]
    pub task: Option<String>,

    /// All arguments as JSON: an array of positional arguments, or an object
    /// `{"args": [...], "kwargs": {...}}`.
    #[arg(long, value_name = "JSON", conflicts_with = "args")]
    pub args_json: Option<String>,

    /// Positional task arguments, after `--`. Each is parsed as JSON when it is valid JSON
    /// (`5`, `true`, `[1,2]`, `"quoted"`), and passed as a string otherwise.
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

impl TaskArgs {
    /// The `{"args": [...], "kwargs": {...}}` document the guest receives.
    pub fn request_json(&self) -> anyhow::Result<String> {
        use serde_json::{Map, Value};
        let request = match &self.args_json {
            Some(text) => match serde_json::from_str::<Value>(text)
                .context("`--args-json` is not valid JSON")?
            {
                Value::Array(args) => serde_json::json!({ "args": args, "kwargs": {} }),
                Value::Object(object) => {
                    if let Some(key) = object.keys().find(|k| *k != "args" && *k != "kwargs") {
                        bail!(
                            "`--args-json` object has an unknown key `{key}`; expected `args` and/or `kwargs`"
                        );
                    }
                    let args = object
                        .get("args")
                        .cloned()
                        .unwrap_or(Value::Array(Vec::new()));
                    let kwargs = object
                        .get("kwargs")
                        .cloned()
                        .unwrap_or(Value::Object(Map::new()));
                    if !args.is_array() || !kwargs.is_object() {
                        bail!("`--args-json`: `args` must be an array and `kwargs` an object");
                    }
                    serde_json::json!({ "args": args, "kwargs": kwargs })
                }
                other => bail!("`--args-json` must be an array or an object, found `{other}`"),
            },
            None => {
                let args: Vec<Value> = self
                    .args
                    .iter()
                    .map(|a| serde_json::from_str(a).unwrap_or_else(|_| Value::String(a.clone())))
                    .collect();
                serde_json::json!({ "args": args, "kwargs": {} })
            }
        };
        Ok(request.to_string())
    }
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
