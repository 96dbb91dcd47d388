//! The worker protocol's messages (manifests/worker-protocol.md): parsing a request line into a
//! typed request, and encoding answer and event lines.

use crate::{Envelope, ErrorType};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use std::path::PathBuf;

/// The protocol version `hello` announces.
pub const PROTOCOL_VERSION: u32 = 2;

/// The ops a request may name (a request without `op` is a task call).
pub const OPS: [&str; 11] = [
    "run_code",
    "session.open",
    "session.reset",
    "session.close",
    "files.write",
    "files.read",
    "files.list",
    "files.remove",
    "cancel",
    "hello",
    "status",
];

/// A task call (protocol version 1: a request without `op`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskRequest {
    pub bundle: PathBuf,
    #[serde(default)]
    pub task: Option<String>,
    #[serde(default)]
    pub args: Option<Value>,
    #[serde(default)]
    pub kwargs: Option<Map<String, Value>>,
    #[serde(default)]
    pub timeout: Option<String>,
}

/// Limits and grants a `run_code` or `session.open` may give; all optional.
#[derive(Deserialize, Default, Clone)]
pub struct LimitFields {
    #[serde(default)]
    pub timeout: Option<Value>,
    #[serde(default)]
    pub ram: Option<Value>,
    #[serde(default)]
    pub compute: Option<Value>,
    #[serde(default)]
    pub allow_hosts: Option<Vec<String>>,
    #[serde(default)]
    pub env: Option<Map<String, Value>>,
    #[serde(default)]
    pub disk: Option<Value>,
}

/// The names of [`LimitFields`] (flattened requests check their fields themselves: serde cannot
/// deny unknown fields next to a flattened struct).
const LIMIT_FIELDS: [&str; 6] = ["timeout", "ram", "compute", "allow_hosts", "env", "disk"];

#[derive(Deserialize)]
pub struct RunCodeRequest {
    #[serde(default)]
    pub language: Option<String>,
    pub code: String,
    #[serde(default)]
    pub session: Option<String>,
    #[serde(default)]
    pub stream: bool,
    #[serde(flatten)]
    pub limits: LimitFields,
}

#[derive(Deserialize)]
pub struct SessionOpenRequest {
    pub language: String,
    #[serde(flatten)]
    pub limits: LimitFields,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    pub session: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRequest {
    pub session: String,
    /// Required by every file op but `files.list`.
    #[serde(default)]
    pub path: Option<String>,
    /// `files.write` only: base64.
    #[serde(default)]
    pub data: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    pub target: Value,
}

/// The file ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileOp {
    Write,
    Read,
    List,
    Remove,
}

impl FileOp {
    pub fn name(self) -> &'static str {
        match self {
            FileOp::Write => "files.write",
            FileOp::Read => "files.read",
            FileOp::List => "files.list",
            FileOp::Remove => "files.remove",
        }
    }
}

/// One request, typed.
pub enum Request {
    Task(TaskRequest),
    RunCode(RunCodeRequest),
    SessionOpen(SessionOpenRequest),
    SessionReset(SessionRequest),
    SessionClose(SessionRequest),
    Files(FileOp, FileRequest),
    Cancel(CancelRequest),
    Hello,
    Status,
}

impl Request {
    /// The op's name (`task` for a task call), for `status`.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Task(_) => "task",
            Request::RunCode(_) => "run_code",
            Request::SessionOpen(_) => "session.open",
            Request::SessionReset(_) => "session.reset",
            Request::SessionClose(_) => "session.close",
            Request::Files(op, _) => op.name(),
            Request::Cancel(_) => "cancel",
            Request::Hello => "hello",
            Request::Status => "status",
        }
    }
}

/// Why a line is not a request: the id (when readable), the message, and whether it reads as a
/// task call (no `op`), which version 1 clients expect answered with an envelope.
pub struct Malformed {
    pub id: Value,
    pub message: String,
    pub task_call: bool,
}

/// A request line, or why it is not one.
pub fn parse(line: &str) -> Result<(Value, Request), Malformed> {
    let task_call = serde_json::from_str::<Value>(line)
        .map(|v| v.get("op").is_none())
        .unwrap_or(true);
    parse_line(line).map_err(|(id, message)| Malformed {
        id,
        message,
        task_call,
    })
}

fn parse_line(line: &str) -> Result<(Value, Request), (Value, String)> {
    let mut object = match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err((Value::Null, "not a valid request: not a JSON object".into())),
        Err(error) => return Err((Value::Null, format!("not a valid request: {error}"))),
    };
    let id = match object.remove("id") {
        Some(id) => id,
        None => {
            return Err((
                Value::Null,
                "not a valid request: missing field `id`".into(),
            ));
        }
    };
    let op = match object.remove("op") {
        None => None,
        Some(Value::String(op)) => Some(op),
        Some(other) => {
            return Err((
                id,
                format!("not a valid request: `op` must be a string, got {other}"),
            ));
        }
    };
    let request = match op.as_deref() {
        None => fields(object, "task call", TASK_SHAPE).map(Request::Task),
        Some("run_code") => known(
            &object,
            &["language", "code", "session", "stream"],
            RUN_CODE_SHAPE,
        )
        .and_then(|()| fields(object, "run_code", RUN_CODE_SHAPE))
        .map(Request::RunCode),
        Some("session.open") => known(&object, &["language"], SESSION_OPEN_SHAPE)
            .and_then(|()| fields(object, "session.open", SESSION_OPEN_SHAPE))
            .map(Request::SessionOpen),
        Some("session.reset") => {
            fields(object, "session.reset", SESSION_SHAPE).map(Request::SessionReset)
        }
        Some("session.close") => {
            fields(object, "session.close", SESSION_SHAPE).map(Request::SessionClose)
        }
        Some("files.write") => file_request(object, FileOp::Write),
        Some("files.read") => file_request(object, FileOp::Read),
        Some("files.list") => file_request(object, FileOp::List),
        Some("files.remove") => file_request(object, FileOp::Remove),
        Some("cancel") => {
            fields(object, "cancel", "{\"id\", \"op\", \"target\"}").map(Request::Cancel)
        }
        Some("hello") => no_fields(object, "hello").map(|()| Request::Hello),
        Some("status") => no_fields(object, "status").map(|()| Request::Status),
        Some(other) => Err(format!(
            "unknown op `{other}`; expected one of {} (or none, for a task call)",
            OPS.join(", ")
        )),
    };
    request
        .map(|request| (id.clone(), request))
        .map_err(|message| (id, message))
}

const TASK_SHAPE: &str = "{\"id\", \"bundle\", \"task\"?, \"args\"?, \"kwargs\"?, \"timeout\"?}";
const RUN_CODE_SHAPE: &str = "{\"id\", \"op\": \"run_code\", \"language\"?, \"code\", \"session\"?, \"timeout\"?, \"ram\"?, \"compute\"?, \"allow_hosts\"?, \"env\"?, \"stream\"?}";
const SESSION_OPEN_SHAPE: &str = "{\"id\", \"op\": \"session.open\", \"language\", \"timeout\"?, \"ram\"?, \"compute\"?, \"allow_hosts\"?, \"env\"?}";
const SESSION_SHAPE: &str = "{\"id\", \"op\", \"session\"}";

fn fields<T: DeserializeOwned>(
    object: Map<String, Value>,
    what: &str,
    shape: &str,
) -> Result<T, String> {
    serde_json::from_value(Value::Object(object))
        .map_err(|error| format!("not a valid {what} request ({error}); expected {shape}"))
}

/// Refuses a field that is neither one of `own` nor a limit field.
fn known(object: &Map<String, Value>, own: &[&str], shape: &str) -> Result<(), String> {
    match object
        .keys()
        .find(|key| !own.contains(&key.as_str()) && !LIMIT_FIELDS.contains(&key.as_str()))
    {
        None => Ok(()),
        Some(key) => Err(format!(
            "not a valid request: unknown field `{key}`; expected {shape}"
        )),
    }
}

fn no_fields(object: Map<String, Value>, op: &str) -> Result<(), String> {
    match object.keys().next() {
        None => Ok(()),
        Some(key) => Err(format!(
            "not a valid {op} request: unknown field `{key}`; expected {{\"id\", \"op\": \"{op}\"}}"
        )),
    }
}

fn file_request(object: Map<String, Value>, op: FileOp) -> Result<Request, String> {
    let shape = match op {
        FileOp::Write => "{\"id\", \"op\": \"files.write\", \"session\", \"path\", \"data\"}",
        FileOp::Read => "{\"id\", \"op\": \"files.read\", \"session\", \"path\"}",
        FileOp::List => "{\"id\", \"op\": \"files.list\", \"session\", \"path\"?}",
        FileOp::Remove => "{\"id\", \"op\": \"files.remove\", \"session\", \"path\"}",
    };
    let request: FileRequest = fields(object, op.name(), shape)?;
    if op != FileOp::List && request.path.is_none() {
        return Err(format!(
            "not a valid {} request: missing field `path`; expected {shape}",
            op.name()
        ));
    }
    match (op, request.data.is_some()) {
        (FileOp::Write, false) => Err(format!(
            "not a valid files.write request: missing field `data`; expected {shape}"
        )),
        (FileOp::Read | FileOp::List | FileOp::Remove, true) => Err(format!(
            "not a valid {} request: unknown field `data`; expected {shape}",
            op.name()
        )),
        _ => Ok(Request::Files(op, request)),
    }
}

/// An answer other than an envelope: `{"id", ...fields}`.
pub fn answer(id: &Value, fields: Value) -> String {
    let mut object = Map::new();
    object.insert("id".into(), id.clone());
    if let Value::Object(fields) = fields {
        object.extend(fields);
    }
    Value::Object(object).to_string()
}

/// A failed op that ran nothing: `{"id", "error": {"error_type", "message"}}`.
pub fn error_answer(id: &Value, error_type: ErrorType, message: &str) -> String {
    answer(
        id,
        json!({"error": {"error_type": error_type.as_str(), "message": message}}),
    )
}

/// An output event of a streamed call.
pub fn event_line(id: &Value, stream: &str, data: &str) -> String {
    json!({"id": id, "event": stream, "data": data}).to_string()
}

/// One answer line: fields in protocol order.
#[derive(serde::Serialize)]
struct EnvelopeAnswer<'a> {
    id: &'a Value,
    envelope: &'a Envelope,
}

/// An envelope answer, on one line. The guest's result is embedded as the JSON text it returned;
/// should that text contain a line break (valid JSON whitespace), the answer is re-encoded
/// compactly so the stream stays one answer per line whatever a guest does.
pub fn envelope_line(id: &Value, envelope: &Envelope) -> String {
    let line = serde_json::to_string(&EnvelopeAnswer { id, envelope });
    match line {
        Ok(line) if !line.contains(['\n', '\r']) => line,
        _ => {
            let compact = serde_json::to_value(envelope)
                .map(|envelope| json!({ "id": id, "envelope": envelope }).to_string());
            compact.unwrap_or_else(|e| {
                let failed = Envelope::refused(
                    &envelope.execution.task_name,
                    ErrorType::Internal,
                    format!("cannot encode the envelope: {e}"),
                );
                json!({ "id": id, "envelope": serde_json::to_value(&failed).unwrap_or_default() })
                    .to_string()
            })
        }
    }
}
