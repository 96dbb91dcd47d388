//! `run_code` and the session ops: cells of LLM-written code in the built-in interpreters, in a
//! fresh instance per call or in a session's live one (manifests/worker-protocol.md).

use super::protocol::{self, FileOp, FileRequest, LimitFields, RunCodeRequest, SessionOpenRequest};
use super::sessions::{Live, Missing, Turn};
use super::workspace::{self, Workspace};
use super::{Answer, Worker};
use crate::{CallLimits, Envelope, ErrorType, GrantedDir, Language, LiveGrants, OutputListeners};
use base64::Engine as _;
use capsule_packager::policy::{Compute, parse_compute, parse_disk, parse_ram, parse_timeout};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The interpreters' tasks (guest-images/interpreters/).
const STATELESS_TASK: &str = "main";
const SESSION_TASK: &str = "session_cell";

/// Defaults and maxima of the limit fields (documented in manifests/worker-protocol.md).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_RAM_BYTES: u64 = 256 * 1000 * 1000;
pub const MAX_RAM_BYTES: u64 = 2 << 30;
pub const DEFAULT_COMPUTE: Compute = Compute::Medium;
/// What a session's workspace may hold: LLM-written code in a loop must not fill the host's disk.
pub const DEFAULT_DISK_BYTES: u64 = 1 << 30;
pub const MAX_COMPUTE: Compute = Compute::High;

/// `hello`'s `defaults`.
pub fn defaults_document() -> Value {
    json!({
        "timeout": "30s", "ram": "256MB", "compute": "MEDIUM", "allow_hosts": [], "env": {},
        "disk": "1GiB",
        "max": {"timeout": "5m", "ram": "2GiB", "compute": "HIGH"},
    })
}

/// Limits and grants, resolved and checked.
struct Resolved {
    cell: CallLimits,
    grants: LiveGrants,
}

/// The request's limit fields over the defaults; an error names the field.
fn resolve(fields: &LimitFields, defaults: CallLimits) -> Result<Resolved, String> {
    let timeout = match &fields.timeout {
        None => defaults.timeout,
        Some(value) => {
            let timeout = parse_timeout(value).map_err(|e| format!("invalid `timeout`: {e}"))?;
            if timeout > MAX_TIMEOUT {
                return Err(format!(
                    "invalid `timeout`: {} ms is more than the most a cell may have (5m)",
                    timeout.as_millis()
                ));
            }
            timeout
        }
    };
    let fuel = match &fields.compute {
        None => defaults.fuel,
        Some(value) => {
            let fuel = parse_compute(value)
                .map_err(|e| format!("invalid `compute`: {e}"))?
                .fuel();
            if fuel > MAX_COMPUTE.fuel() {
                return Err(format!(
                    "invalid `compute`: {fuel} fuel is more than the most a cell may have (HIGH = {})",
                    MAX_COMPUTE.fuel()
                ));
            }
            fuel
        }
    };
    let ram_bytes = match &fields.ram {
        None => DEFAULT_RAM_BYTES,
        Some(value) => {
            let ram = parse_ram(value).map_err(|e| format!("invalid `ram`: {e}"))?;
            if ram > MAX_RAM_BYTES {
                return Err(format!(
                    "invalid `ram`: {ram} bytes is more than the most a cell may have (2GiB)"
                ));
            }
            ram
        }
    };
    let disk_bytes = match &fields.disk {
        None => DEFAULT_DISK_BYTES,
        Some(value) => parse_disk(value).map_err(|e| format!("invalid `disk`: {e}"))?,
    };
    let allowed_hosts = match &fields.allow_hosts {
        None => Vec::new(),
        Some(hosts) => capsule_packager::policy::parse_hosts(&json!(hosts))
            .map_err(|e| format!("invalid `allow_hosts`: {e}"))?,
    };
    let mut env = Vec::new();
    for (name, value) in fields.env.iter().flatten() {
        let valid_name =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid_name {
            return Err(format!(
                "invalid `env`: `{name}` is not a variable name (letters, digits and `_`)"
            ));
        }
        let Value::String(value) = value else {
            return Err(format!(
                "invalid `env`: `{name}` must be a string, got {value}"
            ));
        };
        if value.contains('\0') {
            return Err(format!("invalid `env`: `{name}` contains a NUL character"));
        }
        env.push((name.clone(), value.clone()));
    }
    Ok(Resolved {
        cell: CallLimits { timeout, fuel },
        grants: LiveGrants {
            ram_bytes,
            allowed_hosts,
            env,
            dirs: Vec::new(),
            disk_bytes: Some(disk_bytes),
        },
    })
}

fn default_limits() -> CallLimits {
    CallLimits {
        timeout: DEFAULT_TIMEOUT,
        fuel: DEFAULT_COMPUTE.fuel(),
    }
}

fn parse_language(text: &str) -> Result<Language, String> {
    text.parse().map_err(|e| format!("invalid `language`: {e}"))
}

/// `{"args": [code], "kwargs": {}}`.
fn cell_args(code: &str) -> String {
    json!({"args": [code], "kwargs": {}}).to_string()
}

fn invalid(task: &str, message: String) -> Envelope {
    Envelope::refused(task, ErrorType::InvalidArgs, message)
}

fn cancelled(task: &str, while_what: &str) -> Envelope {
    Envelope::refused(
        task,
        ErrorType::Cancelled,
        format!("cancelled by a `cancel` request {while_what}"),
    )
}

/// Output listeners that send `event` lines for request `id`.
fn listeners(worker: &Worker, id: &Value) -> OutputListeners {
    let make = |stream: &'static str| -> crate::Listener {
        let (answers, id) = (worker.answers.clone(), id.clone());
        Arc::new(move |text: &str| {
            let _ = answers.send(protocol::event_line(&id, stream, text));
        })
    };
    (make("stdout"), make("stderr"))
}

/// `run_code`: a stateless cell, or a cell of a session.
pub async fn run_code(
    worker: &Worker,
    id: &Value,
    request: RunCodeRequest,
    turn: Option<Result<Turn, Missing>>,
    cancel: Arc<Notify>,
) -> Envelope {
    if let (Some(session), Some(turn)) = (&request.session, turn) {
        return session_cell(worker, id, &request, session, turn, cancel).await;
    }
    let Some(language) = &request.language else {
        return invalid(
            STATELESS_TASK,
            "invalid `run_code` request: `language` is required without `session`".into(),
        );
    };
    let language = match parse_language(language) {
        Ok(language) => language,
        Err(message) => return invalid(STATELESS_TASK, message),
    };
    if request.limits.disk.is_some() {
        return invalid(
            STATELESS_TASK,
            "invalid `disk`: it limits a session's workspace, and run_code without a session has none"
                .into(),
        );
    }
    let resolved = match resolve(&request.limits, default_limits()) {
        Ok(resolved) => resolved,
        Err(message) => return invalid(STATELESS_TASK, message),
    };
    let stream = request.stream.then(|| listeners(worker, id));
    let work = async {
        let bundle = match worker.bundles.interpreter(language).await {
            Ok(bundle) => bundle,
            Err(message) => {
                return Envelope::refused(STATELESS_TASK, ErrorType::Internal, message);
            }
        };
        let Ok(_permit) = worker.in_flight.acquire().await else {
            return Envelope::refused(
                STATELESS_TASK,
                ErrorType::Internal,
                "the worker is stopping".into(),
            );
        };
        let mut live = match bundle
            .instantiate_live(STATELESS_TASK, resolved.grants)
            .await
        {
            Ok(live) => live,
            Err(error) => {
                return Envelope::refused(STATELESS_TASK, error.error_type(), error.to_string());
            }
        };
        live.call(&cell_args(&request.code), resolved.cell, stream)
            .await
            .envelope
    };
    tokio::select! {
        biased;
        () = cancel.notified() => cancelled(STATELESS_TASK, "while it ran"),
        envelope = work => envelope,
    }
}

/// A cell of session `session_id`, in its `turn`.
async fn session_cell(
    worker: &Worker,
    id: &Value,
    request: &RunCodeRequest,
    session_id: &str,
    turn: Result<Turn, Missing>,
    cancel: Arc<Notify>,
) -> Envelope {
    let mut turn = match turn {
        Ok(turn) => turn,
        Err(Missing::Lost(message)) => {
            return Envelope::refused(SESSION_TASK, ErrorType::SessionLost, message);
        }
        Err(Missing::Unknown(message)) => return invalid(SESSION_TASK, message),
    };
    let session = turn.session.clone();
    if let Some(language) = &request.language {
        match parse_language(language) {
            Ok(language) if language == session.language => {}
            Ok(language) => {
                return invalid(
                    SESSION_TASK,
                    format!(
                        "invalid `language`: session `{session_id}` runs {}, not {language}",
                        session.language
                    ),
                );
            }
            Err(message) => return invalid(SESSION_TASK, message),
        }
    }
    let fields = &request.limits;
    for (name, given) in [
        ("ram", fields.ram.is_some()),
        ("allow_hosts", fields.allow_hosts.is_some()),
        ("env", fields.env.is_some()),
        ("disk", fields.disk.is_some()),
    ] {
        if given {
            return invalid(
                SESSION_TASK,
                format!(
                    "invalid `{name}`: a session's `{name}` is set by session.open, not per cell"
                ),
            );
        }
    }
    let limits = match resolve(fields, session.cell_limits) {
        Ok(resolved) => resolved.cell,
        Err(message) => return invalid(SESSION_TASK, message),
    };
    let stream = request.stream.then(|| listeners(worker, id));
    // Queued behind the session's earlier requests: a cancel here runs nothing and loses nothing.
    let mut state = tokio::select! {
        biased;
        () = cancel.notified() => return cancelled(SESSION_TASK, "before it started (it was waiting for the session's earlier cells)"),
        state = turn.state() => state,
    };
    let open = worker.sessions.is_open(&session);
    let Some(live) = state.as_mut().filter(|_| open) else {
        drop(state);
        return Envelope::refused(
            SESSION_TASK,
            ErrorType::SessionLost,
            lost(worker, session_id).1,
        );
    };
    let Ok(_permit) = worker.in_flight.acquire().await else {
        return Envelope::refused(
            SESSION_TASK,
            ErrorType::Internal,
            "the worker is stopping".into(),
        );
    };
    let args = cell_args(&request.code);
    let call = live.instance.call(&args, limits, stream);
    let outcome = tokio::select! {
        biased;
        () = cancel.notified() => None,
        call = call => Some(call),
    };
    match outcome {
        Some(call) => {
            session.record_cell(live.instance.memory_bytes());
            if !call.alive {
                let why = call
                    .envelope
                    .error
                    .as_ref()
                    .map_or("internal", |e| e.error_type.as_str());
                state.take();
                drop(state);
                worker.sessions.end(
                    session_id,
                    format!("a cell ended with `{why}`, which stops the instance where it was"),
                );
            }
            call.envelope
        }
        None => {
            state.take();
            drop(state);
            worker.sessions.end(
                session_id,
                "a running cell was cancelled, which stops the instance where it was".into(),
            );
            cancelled(SESSION_TASK, "while it ran; its session is closed")
        }
    }
}

/// `session.open`.
pub async fn open(worker: &Worker, request: SessionOpenRequest) -> Answer {
    let language = parse_language(&request.language).map_err(invalid_answer)?;
    let resolved = resolve(&request.limits, default_limits()).map_err(invalid_answer)?;
    let reservation = worker.sessions.reserve().map_err(invalid_answer)?;
    let bundle = worker
        .bundles
        .interpreter(language)
        .await
        .map_err(|message| (ErrorType::Internal, message))?;
    let workspace = Workspace::create().map_err(|e| {
        (
            ErrorType::Internal,
            format!("cannot create the session's workspace: {e}"),
        )
    })?;
    let mut grants = resolved.grants;
    grants.dirs.push(GrantedDir {
        host: workspace.host_dir().to_path_buf(),
        guest: workspace::GUEST_PATH.into(),
        writable: true,
    });
    let instance = bundle
        .instantiate_live(SESSION_TASK, grants)
        .await
        .map_err(|e| (e.error_type(), format!("cannot start the session: {e}")))?;
    let id = worker.sessions.insert(
        reservation,
        language,
        resolved.cell,
        Live {
            instance,
            workspace,
        },
    );
    Ok(json!({"session": id}))
}

fn invalid_answer(message: String) -> (ErrorType, String) {
    (ErrorType::InvalidArgs, message)
}

fn missing(error: Missing) -> (ErrorType, String) {
    match error {
        Missing::Unknown(message) => (ErrorType::InvalidArgs, message),
        Missing::Lost(message) => (ErrorType::SessionLost, message),
    }
}

/// `session.reset`: a fresh instance, the same workspace.
pub async fn reset(worker: &Worker, session_id: &str, turn: Result<Turn, Missing>) -> Answer {
    let mut turn = turn.map_err(missing)?;
    let mut state = turn.state().await;
    let open = worker.sessions.is_open(&turn.session);
    let live = state
        .as_mut()
        .filter(|_| open)
        .ok_or_else(|| lost(worker, session_id))?;
    live.instance
        .reset()
        .await
        .map_err(|e| (e.error_type(), format!("cannot reset the session: {e}")))?;
    turn.session.record_reset(live.instance.memory_bytes());
    Ok(json!({"session": session_id, "reset": true}))
}

/// `session.close`.
pub fn close(worker: &Worker, session_id: &str) -> Answer {
    worker.sessions.get(session_id).map_err(missing)?;
    worker
        .sessions
        .end(session_id, "closed by session.close".into());
    Ok(json!({"session": session_id, "closed": true}))
}

fn lost(worker: &Worker, session_id: &str) -> (ErrorType, String) {
    match worker.sessions.get(session_id) {
        Err(error) => missing(error),
        Ok(_) => (
            ErrorType::SessionLost,
            format!("session `{session_id}` ended"),
        ),
    }
}

/// `files.*` on a session's workspace. They wait for a running cell of the session, so that the
/// session's code never changes the workspace while the host looks at it.
pub async fn files(
    worker: &Worker,
    op: FileOp,
    request: FileRequest,
    turn: Result<Turn, Missing>,
) -> Answer {
    let mut turn = turn.map_err(missing)?;
    let state = turn.state().await;
    let open = worker.sessions.is_open(&turn.session);
    let live = state
        .as_ref()
        .filter(|_| open)
        .ok_or_else(|| lost(worker, &request.session))?;
    let workspace = &live.workspace;
    let path = request.path.as_deref().unwrap_or_default();
    let failed = |message: String| (ErrorType::InvalidArgs, format!("{}: {message}", op.name()));
    match op {
        FileOp::Write => {
            let data = base64::engine::general_purpose::STANDARD
                .decode(request.data.as_deref().unwrap_or_default())
                .map_err(|e| failed(format!("`data` is not base64: {e}")))?;
            // Charged to the session's `disk` like the guest's own writes: only what it adds
            // over the file it replaces.
            let budget = live.instance.disk();
            let size = data.len() as u64;
            let replaced = workspace.bytes_at(path);
            let added = size.saturating_sub(replaced);
            budget.charge(added).map_err(|_| {
                let limit = budget.last_refusal().map_or(0, |(limit, _)| limit);
                (
                    ErrorType::DiskLimit,
                    format!(
                        "files.write: `{path}` ({size} bytes) would take the session's workspace past its disk limit of {limit} bytes"
                    ),
                )
            })?;
            if let Err(message) = workspace.write(path, &data) {
                budget.credit(added);
                return Err(failed(message));
            }
            budget.credit(replaced.saturating_sub(size));
            Ok(json!({"written": data.len()}))
        }
        FileOp::Read => {
            let data = workspace.read(path).map_err(failed)?;
            Ok(json!({"data": base64::engine::general_purpose::STANDARD.encode(data)}))
        }
        FileOp::List => {
            let entries = workspace.list(request.path.as_deref()).map_err(failed)?;
            Ok(json!({"files": entries}))
        }
        FileOp::Remove => {
            let freed = workspace.bytes_at(path);
            workspace.remove(path).map_err(failed)?;
            live.instance.disk().credit(freed);
            Ok(json!({"removed": true}))
        }
    }
}
