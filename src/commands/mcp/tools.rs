//! The built-in tools: their input schemas and descriptions (written out, so what the model reads
//! is exactly what is here), and each call turned into worker requests.

use super::client::WorkerClient;
use super::results::{self, MAX_FILE_BYTES};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rmcp::ErrorData;
use rmcp::model::{CallToolResult, JsonObject, Tool, ToolAnnotations};
use serde_json::{Value, json};

/// The limits and grants every cell and session gets unless a call narrows them: the server's
/// flags, already validated.
pub struct Defaults {
    pub timeout: String,
    pub ram: String,
    pub compute: String,
    pub allow_hosts: Vec<String>,
}

const TIMEOUT_FORMS: &str = "a duration such as \"500ms\", \"30s\" or \"2m\"";

/// Every built-in tool, with the server's defaults in their descriptions.
pub fn catalog(defaults: &Defaults) -> Vec<Tool> {
    let network = if defaults.allow_hosts.is_empty() {
        "No network access".to_string()
    } else {
        format!(
            "HTTP(S) only to {} (Python: `from capsule.http import fetch`, `urllib`, `requests`; JavaScript: `fetch`)",
            defaults.allow_hosts.join(", ")
        )
    };
    let limits = format!(
        "Limits per call: timeout {} (the `timeout` argument may change it, up to 5m), memory {}, \
         compute {}. {network}; no files but the session's /workspace; no environment variables.",
        defaults.timeout, defaults.ram, defaults.compute
    );
    let cell = |language: &str, details: &str| {
        format!(
            "Run {language} code in a WebAssembly sandbox, like a notebook cell: the statements run, \
             the value of the final expression is returned as `result` ({{format, value, repr}}: \
             `value` is JSON when the value converts, else `repr` is its text), and stdout/stderr are \
             captured. Top-level `await` works. {details} Without `session_id` every call starts \
             from a fresh interpreter (nothing persists); with the `session_id` from \
             `create_session`, variables, imports and functions persist from call to call. A failure \
             returns isError with `error.error_type` (`task_error` for an exception, with a \
             traceback naming `<cell>` lines; `timeout`, `out_of_fuel`, `memory_limit`) — a cell \
             that hits `timeout` or `out_of_fuel` ends its session. {limits}"
        )
    };
    let code_schema = || {
        schema(
            json!({
                "code": {"type": "string", "description": "The code to run."},
                "session_id": {"type": "string", "description": "Run in this session (from `create_session`) instead of a fresh interpreter."},
                "timeout": {"type": "string", "description": format!("Wall-clock limit of this call: {TIMEOUT_FORMS}; at most 5m.")}
            }),
            &["code"],
        )
    };
    let session_id =
        || json!({"type": "string", "description": "The session id `create_session` returned."});
    let path = |what: &str| json!({"type": "string", "description": format!("{what}, relative to the session's /workspace (a leading `/workspace/` is accepted).")});
    vec![
        Tool::new(
            "run_python",
            cell(
                "Python 3.11 (CPython)",
                "The standard library is available (no pip installs); in a session the current \
                 directory is /workspace.",
            ),
            code_schema(),
        ),
        Tool::new(
            "run_javascript",
            cell(
                "JavaScript (QuickJS-ng, ES2023, with a subset of Node's APIs)",
                "In a session, `let`, `const`, `function` and `class` declarations persist.",
            ),
            code_schema(),
        ),
        Tool::new(
            "create_session",
            format!(
                "Start a live interpreter session and return its `session_id`. Pass it to \
                 run_python / run_javascript to keep state (variables, imports, functions) across \
                 calls, and to write_file / read_file / list_files to use its private /workspace \
                 directory. Sessions outlive this connection: keep the id and close the session \
                 with close_session when done. An idle session is closed after a while, and the \
                 oldest idle one when too many are open; calls naming it then fail with \
                 `session_lost`. {limits}"
            ),
            schema(
                json!({"language": {"type": "string", "enum": ["python", "javascript"], "description": "The session's language."}}),
                &["language"],
            ),
        ),
        Tool::new(
            "close_session",
            "End a session: its state and its /workspace files are deleted.",
            schema(json!({"session_id": session_id()}), &["session_id"]),
        )
        .with_annotations(ToolAnnotations::new().destructive(true)),
        Tool::new(
            "write_file",
            "Write a file into a session's /workspace (parent directories are created, an existing \
             file is replaced), for the session's code to read. `content` is text, or base64 with \
             `encoding: \"base64\"` for binary data.",
            schema(
                json!({
                    "session_id": session_id(),
                    "path": path("The file's path"),
                    "content": {"type": "string", "description": "The file's content."},
                    "encoding": {"type": "string", "enum": ["utf-8", "base64"], "description": "How `content` is encoded (default `utf-8`)."}
                }),
                &["session_id", "path", "content"],
            ),
        ),
        Tool::new(
            "read_file",
            format!(
                "Read a file from a session's /workspace, e.g. one its code wrote. Text comes back \
                 as `content` (`encoding: \"utf-8\"`), anything else as base64 \
                 (`encoding: \"base64\"`); at most {} KiB of it, with `truncated_bytes` saying how \
                 much was left out.",
                MAX_FILE_BYTES / 1024
            ),
            schema(
                json!({"session_id": session_id(), "path": path("The file's path")}),
                &["session_id", "path"],
            ),
        )
        .with_annotations(ToolAnnotations::new().read_only(true)),
        Tool::new(
            "list_files",
            "List a session's /workspace recursively: each entry's path, type (`file`, `dir`, \
             `symlink`) and size in bytes.",
            schema(
                json!({"session_id": session_id(), "path": path("The directory to list (default: the whole workspace)")}),
                &["session_id"],
            ),
        )
        .with_annotations(ToolAnnotations::new().read_only(true)),
        Tool::new(
            "run_task",
            "Run a task of a Capsule bundle (a `.capsule` file built with `capsule build`) in a \
             fresh sandbox, under the limits its author declared. Only bundles signed by a key \
             this server trusts run. The result is the task's return value as `result`, with its \
             stdout/stderr; a failure returns isError with `error.error_type`.",
            schema(
                json!({
                    "bundle": {"type": "string", "description": "Path of the `.capsule` file (relative to the server's working directory)."},
                    "task": {"type": "string", "description": "The task to run (default: the bundle's entry task)."},
                    "args": {"type": "array", "description": "Positional arguments (JSON values)."},
                    "kwargs": {"type": "object", "description": "Keyword arguments (JavaScript tasks receive them as one trailing object)."},
                    "timeout": {"type": "string", "description": format!("Stop the task sooner than it declares: {TIMEOUT_FORMS}.")}
                }),
                &["bundle"],
            ),
        ),
    ]
}

/// An object schema with these properties, these required, nothing else accepted.
pub fn schema(properties: Value, required: &[&str]) -> JsonObject {
    let value = json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    });
    match value {
        Value::Object(object) => object,
        _ => JsonObject::new(),
    }
}

/// Runs built-in tool `name`; `None` when there is no such built-in tool. `arguments` already
/// passed the tool's schema.
pub async fn call(
    client: &WorkerClient,
    defaults: &Defaults,
    name: &str,
    arguments: &JsonObject,
) -> Option<Result<CallToolResult, ErrorData>> {
    let text = |key: &str| arguments.get(key).and_then(Value::as_str);
    let result = match name {
        "run_python" => run_code(client, defaults, "python", arguments).await,
        "run_javascript" => run_code(client, defaults, "javascript", arguments).await,
        "create_session" => {
            let language = text("language").unwrap_or_default();
            let request = json!({
                "op": "session.open",
                "language": language,
                "timeout": defaults.timeout,
                "ram": defaults.ram,
                "compute": defaults.compute,
                "allow_hosts": defaults.allow_hosts,
            });
            ask(client, request, |answer| {
                let id = answer["session"].as_str().unwrap_or_default();
                results::success(
                    json!({"session_id": id, "language": language}),
                    format!("session `{id}` ({language}) is open; pass it as `session_id`"),
                )
            })
            .await
        }
        "close_session" => {
            let id = text("session_id").unwrap_or_default();
            let request = json!({"op": "session.close", "session": id});
            ask(client, request, |_| {
                results::success(
                    json!({"session_id": id, "closed": true}),
                    format!("session `{id}` is closed"),
                )
            })
            .await
        }
        "write_file" => write_file(client, arguments).await,
        "read_file" => {
            let path = text("path").unwrap_or_default();
            let request = json!({"op": "files.read", "session": text("session_id"), "path": path});
            ask(client, request, |answer| file_content(path, answer)).await
        }
        "list_files" => {
            let mut request = json!({"op": "files.list", "session": text("session_id")});
            if let Some(path) = text("path") {
                request["path"] = path.into();
            }
            ask(client, request, file_list).await
        }
        "run_task" => run_task(client, arguments).await,
        _ => return None,
    };
    Some(result)
}

async fn run_task(
    client: &WorkerClient,
    arguments: &JsonObject,
) -> Result<CallToolResult, ErrorData> {
    if let Some(timeout) = arguments.get("timeout").and_then(Value::as_str) {
        check_timeout("run_task", timeout)?;
    }
    let mut request = json!({"bundle": arguments.get("bundle")});
    for key in ["task", "args", "kwargs", "timeout"] {
        if let Some(value) = arguments.get(key).filter(|v| !v.is_null()) {
            request[key] = value.clone();
        }
    }
    envelope(client, request).await
}

fn file_list(answer: &Value) -> CallToolResult {
    let files = answer["files"].clone();
    let lines: Vec<String> = files
        .as_array()
        .map(|files| {
            files
                .iter()
                .map(|f| {
                    format!(
                        "{}\t{}\t{}",
                        f["path"].as_str().unwrap_or_default(),
                        f["type"].as_str().unwrap_or_default(),
                        f["size"]
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let text = if lines.is_empty() {
        "(empty)".to_string()
    } else {
        lines.join("\n")
    };
    results::success(json!({"files": files}), text)
}

async fn run_code(
    client: &WorkerClient,
    defaults: &Defaults,
    language: &str,
    arguments: &JsonObject,
) -> Result<CallToolResult, ErrorData> {
    let mut request = json!({
        "op": "run_code",
        "language": language,
        "code": arguments.get("code").cloned().unwrap_or_default(),
    });
    let timeout = arguments.get("timeout").and_then(Value::as_str);
    if let Some(timeout) = timeout {
        check_timeout(&format!("run_{language}"), timeout)?;
        request["timeout"] = timeout.into();
    }
    match arguments.get("session_id").and_then(Value::as_str) {
        // The session's own limits and grants apply; only the timeout is per cell.
        Some(session) => request["session"] = session.into(),
        None => {
            if timeout.is_none() {
                request["timeout"] = defaults.timeout.clone().into();
            }
            request["ram"] = defaults.ram.clone().into();
            request["compute"] = defaults.compute.clone().into();
            request["allow_hosts"] = json!(defaults.allow_hosts);
        }
    }
    envelope(client, request).await
}

async fn write_file(
    client: &WorkerClient,
    arguments: &JsonObject,
) -> Result<CallToolResult, ErrorData> {
    let content = arguments
        .get("content")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let data = match arguments.get("encoding").and_then(Value::as_str) {
        Some("base64") => {
            // Checked here so that bad base64 is the caller's error, naming the field.
            BASE64.decode(content).map_err(|e| {
                ErrorData::invalid_params(
                    format!("`write_file`: argument `content` is not valid base64: {e}"),
                    None,
                )
            })?;
            content.to_string()
        }
        _ => BASE64.encode(content),
    };
    let path = arguments
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let request = json!({
        "op": "files.write",
        "session": arguments.get("session_id"),
        "path": path,
        "data": data,
    });
    ask(client, request, |answer| {
        let written = answer["written"].as_u64().unwrap_or(0);
        results::success(
            json!({"path": path, "written": written}),
            format!(
                "wrote {written} bytes to /workspace/{}",
                path.trim_start_matches("/workspace/")
            ),
        )
    })
    .await
}

/// `files.read`'s base64 as text when it is UTF-8, else as base64; cut to [`MAX_FILE_BYTES`].
fn file_content(path: &str, answer: &Value) -> CallToolResult {
    let bytes = match BASE64.decode(answer["data"].as_str().unwrap_or_default()) {
        Ok(bytes) => bytes,
        Err(e) => {
            return results::from_op_error(&json!({
                "error_type": "internal",
                "message": format!("the worker sent data that is not base64: {e}"),
            }));
        }
    };
    let size = bytes.len();
    let (content, encoding, truncated) = match std::str::from_utf8(&bytes) {
        Ok(text) => {
            let kept = results::truncate(text, MAX_FILE_BYTES, 0);
            let truncated = size.saturating_sub(MAX_FILE_BYTES);
            (kept, "utf-8", truncated)
        }
        Err(_) => {
            let kept = &bytes[..size.min(MAX_FILE_BYTES)];
            (BASE64.encode(kept), "base64", size - kept.len())
        }
    };
    let mut structured =
        json!({"path": path, "size": size, "encoding": encoding, "content": content});
    if truncated > 0 {
        structured["truncated_bytes"] = truncated.into();
    }
    let text = match encoding {
        "utf-8" => content,
        _ => format!("({size} bytes of binary data; base64 in structuredContent.content)"),
    };
    results::success(structured, text)
}

/// The timeout argument, judged exactly as the worker will judge it.
fn check_timeout(tool: &str, timeout: &str) -> Result<(), ErrorData> {
    capsule_packager::policy::parse_timeout(&Value::String(timeout.to_string()))
        .map(|_| ())
        .map_err(|e| ErrorData::invalid_params(format!("`{tool}`: argument `timeout`: {e}"), None))
}

/// Sends a call that answers with an envelope.
pub async fn envelope(client: &WorkerClient, request: Value) -> Result<CallToolResult, ErrorData> {
    let answer = client.call(request).await.map_err(internal)?;
    match answer.get("envelope") {
        Some(envelope) => Ok(results::from_envelope(envelope)),
        None => Ok(unexpected(&answer)),
    }
}

/// Sends an op; its fields become a result through `done`, its error an error result.
async fn ask(
    client: &WorkerClient,
    request: Value,
    done: impl FnOnce(&Value) -> CallToolResult,
) -> Result<CallToolResult, ErrorData> {
    let answer = client.call(request).await.map_err(internal)?;
    Ok(unexpected_or(&answer, done))
}

fn unexpected_or(answer: &Value, done: impl FnOnce(&Value) -> CallToolResult) -> CallToolResult {
    if answer.get("error").is_some() {
        return unexpected(answer);
    }
    done(answer)
}

/// An `{"error"}` answer (or, should the worker ever send one, an envelope in its place).
fn unexpected(answer: &Value) -> CallToolResult {
    if let Some(error) = answer.get("error") {
        return results::from_op_error(error);
    }
    if let Some(envelope) = answer.get("envelope") {
        return results::from_envelope(envelope);
    }
    results::from_op_error(&json!({
        "error_type": "internal",
        "message": format!("unexpected answer from the worker: {answer}"),
    }))
}

fn internal(error: impl std::fmt::Display) -> ErrorData {
    ErrorData::internal_error(error.to_string(), None)
}
