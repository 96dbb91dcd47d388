//! `--bundle FILE`: each task of a trusted bundle as its own tool, named after the task.
//!
//! The bundle is read and its signature checked once at startup (the worker verifies it again,
//! with its digests, when it runs). Its manifest records each task's name and limits but not its
//! parameters, so the input schema comes from the task's signature in the source the bundle
//! carries (Python: the app layer; see `signature.rs`); when that cannot be read (JavaScript
//! bundles carry no source) the schema takes `args` and `kwargs`.

use super::signature::{self, Param};
use super::tools::schema;
use anyhow::{Context, bail};
use capsule_packager::archive::{BundleReader, ReadLimits};
use capsule_packager::manifest::{Manifest, TaskEntry};
use capsule_packager::sign::Trust;
use capsule_runner::cli::report::{EXIT_BUNDLE, Refusal};
use rmcp::ErrorData;
use rmcp::model::{JsonObject, Tool};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

/// One task offered as a tool.
pub struct BundleTool {
    pub tool: Tool,
    bundle: PathBuf,
    task: String,
    /// The parameters read from the task's signature (`None`: generic `args` / `kwargs`).
    params: Option<Vec<Param>>,
}

/// The tools of every `--bundle`; refuses untrusted bundles and clashing tool names.
pub fn load(paths: &[PathBuf], trust: &Trust, taken: &[String]) -> anyhow::Result<Vec<BundleTool>> {
    let mut tools: Vec<BundleTool> = Vec::new();
    for path in paths {
        let refuse = |why: String| Refusal {
            message: format!("refusing `--bundle {}`: {why}", path.display()),
            code: EXIT_BUNDLE,
        };
        let bundle = BundleReader::new(ReadLimits::default())
            .read_file(path)
            .map_err(|e| refuse(format!("not a valid bundle: {e}")))?;
        trust
            .check(&bundle.manifest_bytes, bundle.signature.as_ref())
            .map_err(|e| refuse(e.to_string()))?;
        let absolute = std::path::absolute(path)
            .with_context(|| format!("cannot resolve `{}`", path.display()))?;
        let source = signature::task_source(&bundle);
        for task in &bundle.manifest.tasks {
            let name = &task.name;
            if !valid_tool_name(name) {
                bail!(
                    "task `{name}` of `--bundle {}` cannot be a tool name (letters, digits, `_`, `-`, `.`; at most 128)",
                    path.display()
                );
            }
            if taken.contains(name) || tools.iter().any(|t| &t.task == name) {
                bail!(
                    "task `{name}` of `--bundle {}` clashes with another tool of that name",
                    path.display()
                );
            }
            let params = source.as_deref().and_then(|source| {
                signature::python_params(source, task.export.as_deref().unwrap_or(name))
            });
            tools.push(BundleTool {
                tool: Tool::new(
                    name.clone(),
                    description(path, &bundle.manifest, task, params.is_some()),
                    input_schema(params.as_deref()),
                ),
                bundle: absolute.clone(),
                task: name.clone(),
                params,
            });
        }
    }
    Ok(tools)
}

impl BundleTool {
    /// The worker's task call for these (schema-checked) arguments.
    pub fn request(&self, arguments: &JsonObject) -> Result<Value, ErrorData> {
        let mut request = json!({"bundle": self.bundle, "task": self.task});
        let own_timeout = self
            .params
            .as_ref()
            .is_some_and(|params| params.iter().any(|p| p.name == "timeout"));
        if let Some(timeout) = arguments
            .get("timeout")
            .and_then(Value::as_str)
            .filter(|_| !own_timeout)
        {
            capsule_packager::policy::parse_timeout(&Value::String(timeout.to_string())).map_err(
                |e| {
                    ErrorData::invalid_params(
                        format!("`{}`: argument `timeout`: {e}", self.task),
                        None,
                    )
                },
            )?;
            request["timeout"] = timeout.into();
        }
        let (args, kwargs) = match &self.params {
            None => (
                arguments.get("args").cloned().unwrap_or(json!([])),
                arguments.get("kwargs").cloned().unwrap_or(json!({})),
            ),
            Some(params) => signature::call_arguments(params, arguments),
        };
        request["args"] = args;
        request["kwargs"] = kwargs;
        Ok(request)
    }
}

fn description(path: &Path, manifest: &Manifest, task: &TaskEntry, derived: bool) -> String {
    let policy = &task.policy;
    let arguments = if derived {
        "Arguments are the task's parameters, by name."
    } else {
        "Pass positional arguments as `args` and keyword arguments as `kwargs`."
    };
    format!(
        "Run task `{}` of the signed Capsule bundle `{}` ({:?}) in a fresh WebAssembly sandbox. \
         {arguments} The result is its return value as `result`, with its stdout/stderr; a \
         failure returns isError with `error.error_type`. Limits: timeout {} ms, memory {} bytes, \
         compute {:?}; hosts {:?}.",
        task.name,
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        manifest.language,
        policy.timeout_ms,
        policy.ram_bytes,
        policy.compute,
        policy.allowed_hosts,
    )
}

fn input_schema(params: Option<&[Param]>) -> JsonObject {
    let timeout = json!({"type": "string", "description": "Stop the task sooner than it declares (\"500ms\", \"30s\")."});
    let Some(params) = params else {
        return schema(
            json!({
                "args": {"type": "array", "description": "Positional arguments (JSON values)."},
                "kwargs": {"type": "object", "description": "Keyword arguments."},
                "timeout": timeout,
            }),
            &[],
        );
    };
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut open = false;
    for param in params {
        match param.kind {
            signature::Kind::VarPositional => {
                properties.insert(
                    param.name.clone(),
                    json!({"type": "array", "description": format!("Extra positional arguments (`*{}`).", param.name)}),
                );
            }
            // `**kwargs`: any other argument is passed by name.
            signature::Kind::VarKeyword => open = true,
            _ => {
                let mut property = Map::new();
                if let Some(json_type) = &param.json_type {
                    property.insert("type".into(), json_type.clone().into());
                }
                if let Some(annotation) = &param.annotation {
                    property.insert(
                        "description".into(),
                        format!("Annotated `{annotation}`.").into(),
                    );
                }
                if param.required {
                    required.push(param.name.as_str());
                }
                properties.insert(param.name.clone(), Value::Object(property));
            }
        }
    }
    // A parameter named `timeout` is the task's own; the call then keeps the declared limit.
    properties.entry("timeout").or_insert(timeout);
    let mut object = schema(Value::Object(properties), &required);
    if open {
        object.insert("additionalProperties".into(), true.into());
    }
    object
}

/// MCP tool names: 1 to 128 of `A-Z a-z 0-9 _ - .`.
fn valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}
