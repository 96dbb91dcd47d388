//! Worker answers as MCP tool results: `structuredContent` an agent can act on
//! (`result`, `stdout`, `stderr`, `error {error_type, message, traceback}`, `execution`), a short
//! text rendering of the same, and `isError` for a call that failed.

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Value, json};

/// Most bytes of stdout or stderr put into a result: more would flood the model's context.
pub const MAX_STREAM_BYTES: usize = 32 * 1024;
/// Most bytes of a file's text `read_file` returns.
pub const MAX_FILE_BYTES: usize = 256 * 1024;
/// Most bytes of a result's text rendering (`repr`, or the JSON of a task's result).
const MAX_RESULT_TEXT: usize = 16 * 1024;

/// `text` cut to at most `max` bytes (on a character boundary), with a marker saying how many
/// bytes were dropped (`already_dropped` counts bytes the worker itself did not keep).
pub fn truncate(text: &str, max: usize, already_dropped: u64) -> String {
    let mut cut = text.len().min(max);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let dropped = (text.len() - cut) as u64 + already_dropped;
    if dropped == 0 {
        return text.to_string();
    }
    format!("{}\n[... {dropped} more bytes dropped ...]", &text[..cut])
}

/// A call's envelope (what `capsule exec --json` prints) as a tool result.
pub fn from_envelope(envelope: &Value) -> CallToolResult {
    let success = envelope["success"].as_bool() == Some(true);
    let output = &envelope["output"];
    // The worker's own bound: it counts what it dropped of both streams together.
    let dropped = output["dropped_bytes"].as_u64().unwrap_or(0);
    let stdout_text = output["stdout"].as_str().unwrap_or_default();
    let stderr_text = output["stderr"].as_str().unwrap_or_default();
    let stdout = truncate(stdout_text, MAX_STREAM_BYTES, 0);
    let stderr = truncate(stderr_text, MAX_STREAM_BYTES, 0);
    let error = (!success).then(|| {
        let error = &envelope["error"];
        json!({
            "error_type": error["error_type"].as_str().unwrap_or("internal"),
            "message": error["message"].as_str().unwrap_or_default(),
            "traceback": error.get("traceback").cloned().unwrap_or(Value::Null),
        })
    });
    let mut structured = json!({
        "result": envelope.get("result").cloned().unwrap_or(Value::Null),
        "stdout": stdout,
        "stderr": stderr,
        "error": error.clone().unwrap_or(Value::Null),
        "execution": envelope.get("execution").cloned().unwrap_or(Value::Null),
    });
    if dropped > 0 {
        structured["output_dropped_bytes"] = dropped.into();
    }
    let mut text = String::new();
    if !stdout.is_empty() {
        text.push_str(&stdout);
        if !stdout.ends_with('\n') {
            text.push('\n');
        }
    }
    if !stderr.is_empty() {
        text.push_str("[stderr]\n");
        text.push_str(&stderr);
        if !stderr.ends_with('\n') {
            text.push('\n');
        }
    }
    if dropped > 0 {
        text.push_str(&format!(
            "[the sandbox kept the first MiB of output: {dropped} more bytes dropped]\n"
        ));
    }
    match &error {
        None => text.push_str(&result_text(&structured["result"])),
        Some(error) => text.push_str(&error_text(error)),
    }
    if text.is_empty() {
        text.push_str("(ran: no output, no result value)");
    }
    tool_result(structured, text, !success)
}

/// An op that failed without running anything (`{"error": {"error_type", "message"}}`).
pub fn from_op_error(error: &Value) -> CallToolResult {
    let error = json!({
        "error_type": error["error_type"].as_str().unwrap_or("internal"),
        "message": error["message"].as_str().unwrap_or_default(),
        "traceback": Value::Null,
    });
    let text = error_text(&error);
    let structured = json!({
        "result": Value::Null,
        "stdout": "",
        "stderr": "",
        "error": error,
        "execution": Value::Null,
    });
    tool_result(structured, text, true)
}

/// A successful op with `fields` as its structured content, and `text` saying what happened.
pub fn success(fields: Value, text: String) -> CallToolResult {
    tool_result(fields, text, false)
}

fn tool_result(structured: Value, text: String, is_error: bool) -> CallToolResult {
    let mut result = if is_error {
        CallToolResult::error(vec![ContentBlock::text(text)])
    } else {
        CallToolResult::success(vec![ContentBlock::text(text)])
    };
    result.structured_content = Some(structured);
    result
}

/// A cell's `{format, value, repr}` shows its repr; a task's result shows as JSON.
fn result_text(result: &Value) -> String {
    let text = match (result.get("format"), result.get("repr")) {
        (Some(Value::String(format)), _) if format == "none" => return String::new(),
        (Some(_), Some(Value::String(repr))) => repr.clone(),
        _ if result.is_null() => return String::new(),
        _ => result.to_string(),
    };
    truncate(&text, MAX_RESULT_TEXT, 0)
}

fn error_text(error: &Value) -> String {
    let mut text = format!(
        "error ({}): {}",
        error["error_type"].as_str().unwrap_or("internal"),
        error["message"].as_str().unwrap_or_default()
    );
    if let Some(traceback) = error["traceback"].as_str().filter(|t| !t.is_empty()) {
        text.push('\n');
        text.push_str(&truncate(traceback.trim_end(), MAX_STREAM_BYTES, 0));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::{from_envelope, truncate};
    use serde_json::json;

    #[test]
    fn truncation_says_how_much_was_dropped() {
        assert_eq!(truncate("hello", 10, 0), "hello");
        assert_eq!(
            truncate("hello", 2, 0),
            "he\n[... 3 more bytes dropped ...]"
        );
        // Never inside a character: "é" is two bytes.
        assert_eq!(truncate("aé", 2, 0), "a\n[... 2 more bytes dropped ...]");
        assert_eq!(truncate("ok", 10, 7), "ok\n[... 7 more bytes dropped ...]");
    }

    #[test]
    fn a_failed_envelope_is_an_error_with_its_type() {
        let envelope = json!({
            "success": false, "result": null,
            "error": {"error_type": "timeout", "message": "ran for 1s", "traceback": null},
            "execution": {"duration_ms": 1000.0},
            "output": {"stdout": "x".repeat(super::MAX_STREAM_BYTES + 5), "stderr": "", "dropped_bytes": 0}
        });
        let result = from_envelope(&envelope);
        assert_eq!(result.is_error, Some(true));
        let structured = result.structured_content.unwrap_or_default();
        assert_eq!(structured["error"]["error_type"], "timeout");
        assert!(
            structured["stdout"]
                .as_str()
                .unwrap_or_default()
                .ends_with("[... 5 more bytes dropped ...]")
        );
    }
}
