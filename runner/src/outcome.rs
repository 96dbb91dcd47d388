//! The JSON envelope every execution ends in.

use serde::Serialize;
use serde_json::value::RawValue;

/// Why a task failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    /// The task raised / threw, or returned something that is not JSON.
    TaskError,
    /// The task ran past its `timeout`.
    Timeout,
    /// The task used up its `compute` budget.
    OutOfFuel,
    /// The task tried to grow its memory past `ram`.
    MemoryLimit,
    /// A write past the task's `disk` limit was refused (ENOSPC) and the task failed.
    DiskLimit,
    /// The task exhausted its call stack (runaway or too deep recursion).
    StackOverflow,
    /// The task touched a file it was not granted.
    PermissionDenied,
    /// The task called a host it was not allowed to.
    HostDenied,
    /// The arguments do not fit the task.
    InvalidArgs,
    /// Capsule itself (or the guest's SDK) failed.
    Internal,
    /// The bundle failed verification (malformed, tampered, unknown format): nothing ran.
    BundleInvalid,
    /// The bundle has no code this runner can load: nothing ran.
    Incompatible,
    /// The caller cancelled the call while it ran (worker protocol `cancel`).
    Cancelled,
    /// The code interpreter session named was closed (TTL, eviction, a limit, a cancel).
    SessionLost,
    /// A queue job's deadline passed before it started: nothing ran.
    Expired,
    /// A queue job was delivered as often as its queue allows without a result.
    Lost,
}

impl ErrorType {
    /// Parses the `error-type` a guest returns; anything unknown is `internal`.
    pub fn from_guest(text: &str) -> Self {
        match text {
            "task_error" => ErrorType::TaskError,
            "invalid_args" => ErrorType::InvalidArgs,
            "permission_denied" => ErrorType::PermissionDenied,
            "host_denied" => ErrorType::HostDenied,
            _ => ErrorType::Internal,
        }
    }

    /// The name used in envelopes (`task_error`, `timeout`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::TaskError => "task_error",
            ErrorType::Timeout => "timeout",
            ErrorType::OutOfFuel => "out_of_fuel",
            ErrorType::MemoryLimit => "memory_limit",
            ErrorType::DiskLimit => "disk_limit",
            ErrorType::StackOverflow => "stack_overflow",
            ErrorType::PermissionDenied => "permission_denied",
            ErrorType::HostDenied => "host_denied",
            ErrorType::InvalidArgs => "invalid_args",
            ErrorType::Internal => "internal",
            ErrorType::BundleInvalid => "bundle_invalid",
            ErrorType::Incompatible => "incompatible",
            ErrorType::Cancelled => "cancelled",
            ErrorType::SessionLost => "session_lost",
            ErrorType::Expired => "expired",
            ErrorType::Lost => "lost",
        }
    }

    /// Whether another attempt could succeed: arguments that do not fit never will.
    pub fn is_retryable(self) -> bool {
        !matches!(
            self,
            ErrorType::InvalidArgs | ErrorType::Cancelled | ErrorType::SessionLost
        )
    }
}

/// A failure, as reported in the envelope.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorInfo {
    /// The kind of failure.
    pub error_type: ErrorType,
    /// One line: what failed, and for limits, which limit and its value.
    pub message: String,
    /// Python traceback / JS stack, when the guest gave one.
    pub traceback: Option<String>,
}

/// Measurements of one execution (all attempts).
#[derive(Clone, Debug, Serialize)]
pub struct Execution {
    /// The task that ran.
    pub task_name: String,
    /// Wall time of all attempts, in milliseconds.
    pub duration_ms: f64,
    /// Attempts actually made (1 + retries used).
    pub attempts: u32,
    /// Fuel consumed by the last attempt.
    pub fuel_consumed: u64,
    /// Peak linear memory of the last attempt, in bytes.
    pub peak_memory_bytes: u64,
    /// Outgoing HTTP requests (every redirect hop), allowed and denied.
    pub host_requests: Vec<crate::http::HostRequest>,
    /// Sub-tasks the task called (and theirs), in the order they finished.
    pub subtasks: Vec<SubTaskRecord>,
}

/// One sub-task call, as reported in [`Execution::subtasks`].
#[derive(Clone, Debug, Serialize)]
pub struct SubTaskRecord {
    /// The sub-task.
    pub task_name: String,
    /// 1 for a sub-task of the called task, 2 for one of those, ...
    pub depth: u32,
    /// Attempts made (1 + retries used).
    pub attempts: u32,
    /// Whether it returned a result.
    pub success: bool,
    /// Why it failed, if it did.
    pub error_type: Option<ErrorType>,
    /// Wall time of all its attempts, in milliseconds.
    pub duration_ms: f64,
    /// Fuel used by all its attempts (taken out of its caller's budget).
    pub fuel_consumed: u64,
    /// The policy it ran under: its own, narrowed by its caller's.
    pub policy: capsule_packager::Policy,
}

/// What the guest printed during the last attempt, bounded.
#[derive(Clone, Debug, Default, Serialize)]
pub struct GuestOutput {
    /// Guest stdout (lossy UTF-8).
    pub stdout: String,
    /// Guest stderr (lossy UTF-8).
    pub stderr: String,
    /// Bytes dropped past the capture cap.
    pub dropped_bytes: u64,
}

/// The one JSON document an execution produces.
#[derive(Clone, Debug, Serialize)]
pub struct Envelope {
    /// Whether the task returned a result.
    pub success: bool,
    /// The task's result, exactly as the guest encoded it (`null` on failure).
    pub result: Option<Box<RawValue>>,
    /// The failure, if any.
    pub error: Option<ErrorInfo>,
    /// Measurements.
    pub execution: Execution,
    /// What the guest printed.
    pub output: GuestOutput,
}

impl Envelope {
    /// The envelope of an execution that never started (the bundle was refused, say).
    pub fn refused(task_name: &str, error_type: ErrorType, message: String) -> Self {
        Envelope {
            success: false,
            result: None,
            error: Some(ErrorInfo {
                error_type,
                message,
                traceback: None,
            }),
            execution: Execution {
                task_name: task_name.to_string(),
                duration_ms: 0.0,
                attempts: 0,
                fuel_consumed: 0,
                peak_memory_bytes: 0,
                host_requests: Vec::new(),
                subtasks: Vec::new(),
            },
            output: GuestOutput::default(),
        }
    }
}
