//! Sub-tasks: the `call-task` import, through which a running task calls another task of its
//! bundle.
//!
//! The callee runs in a fresh instance (its own memory, its own fuel and deadline), under the
//! policy the manifest recorded for it at build time, narrowed by what the caller has left
//! ([`Policy::narrowed_for_subtask`]). Nothing the guest passes can widen it: the import takes a
//! task name and arguments, never limits. The fuel the callee used is taken out of the caller's
//! budget, and its output is appended to the caller's.

use crate::disk::DiskBudget;
use crate::http::HostRequest;
use crate::instance::{AttemptState, Outputs, TaskError};
use crate::outcome::SubTaskRecord;
use crate::runner::{BundleCore, TaskCall, run_with_retries};
use capsule_packager::Policy;
use capsule_packager::policy::{FileMode, Remaining};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wasmtime::StoreContextMut;
use wasmtime::component::Linker;

/// How deep sub-tasks may nest (a task calling a task calling a task...). Each level holds an
/// instance while the next runs.
pub const MAX_DEPTH: u32 = 3;

/// What a running task passes on to the sub-tasks it calls.
#[derive(Clone)]
pub struct SubTaskScope {
    /// The bundle the task belongs to.
    pub core: Arc<BundleCore>,
    /// The running task's name.
    pub task: String,
    /// The calling task's effective policy.
    pub policy: Policy,
    /// The calling task's directories, as bound on this host.
    pub dirs: Vec<crate::instance::GrantedDir>,
    /// When the calling attempt's time runs out.
    pub deadline: Instant,
    /// 0 for the task the runner was asked to run.
    pub depth: u32,
    /// Where finished sub-tasks and HTTP requests are recorded, for the envelope.
    pub log: CallLog,
    /// The calling task's `disk` budget (its sub-tasks' writes are charged to it too).
    pub disk: DiskBudget,
}

/// What one call did beyond its result, shared by every level of sub-tasks.
#[derive(Clone, Default)]
pub struct CallLog(Arc<Mutex<Recorded>>);

#[derive(Default)]
struct Recorded {
    subtasks: Vec<SubTaskRecord>,
    host_requests: Vec<HostRequest>,
}

impl CallLog {
    fn with<R>(&self, f: impl FnOnce(&mut Recorded) -> R) -> R {
        f(&mut self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    fn push_subtask(&self, record: SubTaskRecord) {
        self.with(|r| r.subtasks.push(record));
    }

    /// Records an outgoing HTTP request (allowed or denied).
    pub fn push_host_request(&self, request: HostRequest) {
        self.with(|r| r.host_requests.push(request));
    }

    /// Sub-tasks and HTTP requests recorded so far.
    pub fn take(&self) -> (Vec<SubTaskRecord>, Vec<HostRequest>) {
        self.with(|r| {
            (
                std::mem::take(&mut r.subtasks),
                std::mem::take(&mut r.host_requests),
            )
        })
    }
}

/// Defines `call-task` in `linker`.
pub fn add_to_linker(linker: &mut Linker<AttemptState>) -> wasmtime::Result<()> {
    linker.root().func_wrap_async(
        "call-task",
        |mut store: StoreContextMut<'_, AttemptState>, (task, args_json): (String, String)| {
            Box::new(async move { Ok((call(&mut store, &task, &args_json).await,)) })
        },
    )
}

fn refusal(error_type: &str, message: String) -> TaskError {
    TaskError {
        error_type: error_type.to_string(),
        message,
        traceback: String::new(),
    }
}

/// Runs sub-task `task` for the task running in `store`.
async fn call(
    store: &mut StoreContextMut<'_, AttemptState>,
    task: &str,
    args_json: &str,
) -> Result<String, TaskError> {
    let scope = store.data().scope.clone();
    if scope.depth >= MAX_DEPTH {
        return Err(refusal(
            "internal",
            format!("cannot call sub-task `{task}`: sub-tasks nest at most {MAX_DEPTH} deep"),
        ));
    }
    let Some(declared) = scope.core.manifest.task(task) else {
        return Err(refusal(
            "invalid_args",
            format!(
                "cannot call sub-task `{task}`: the bundle has no such task (tasks: {})",
                scope.core.manifest.task_names()
            ),
        ));
    };
    let fuel_left = store.get_fuel().unwrap_or(0);
    let in_use = store.data().limiter.in_use() as u64;
    let left = Remaining {
        time_ms: scope
            .deadline
            .saturating_duration_since(Instant::now())
            .as_millis() as u64,
        fuel: fuel_left,
        ram_bytes: scope.policy.ram_bytes.saturating_sub(in_use),
    };
    let policy = declared.policy.narrowed_for_subtask(&scope.policy, &left);
    let dirs = narrowed_dirs(&policy, &scope.dirs);
    let output: Outputs = store.data().output.clone();
    let trace = &scope.core.trace;
    let indent = crate::runner::indent(scope.depth + 1);
    trace.line(|| {
        format!(
            "{indent}sub-task `{task}` (depth {}) starts: timeout {} ms, {} fuel, ram {} bytes, {} dir(s), {} host pattern(s), {} env variable(s)",
            scope.depth + 1,
            policy.timeout_ms,
            policy.fuel(),
            policy.ram_bytes,
            dirs.len(),
            policy.allowed_hosts.len(),
            policy.env_variables.len()
        )
    });
    let started = Instant::now();
    let call = TaskCall {
        task,
        policy: &policy,
        args_json,
        dirs: &dirs,
        depth: scope.depth + 1,
        caller_disk: &scope.disk,
    };
    let run = run_with_retries(&scope.core, call, &scope.log, Some(output)).await;
    // The callee's compute came out of the caller's budget.
    let _ = store.set_fuel(fuel_left.saturating_sub(run.fuel_total));
    trace.line(|| {
        format!(
            "{indent}sub-task `{task}` (depth {}) ended: {} after {} attempt(s), {:.3} ms, {} fuel",
            scope.depth + 1,
            match &run.result {
                Ok(_) => "ok",
                Err(error) => error.error_type.as_str(),
            },
            run.attempts,
            crate::trace::millis(started.elapsed()),
            run.fuel_total
        )
    });
    scope.log.push_subtask(SubTaskRecord {
        task_name: task.to_string(),
        depth: scope.depth + 1,
        attempts: run.attempts,
        success: run.result.is_ok(),
        error_type: run.result.as_ref().err().map(|e| e.error_type),
        duration_ms: (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        fuel_consumed: run.fuel_total,
        policy,
    });
    run.result.map_err(|error| TaskError {
        error_type: error.error_type.as_str().to_string(),
        message: format!("sub-task `{task}` failed: {}", error.message),
        traceback: error.traceback.unwrap_or_default(),
    })
}

/// The caller's directories, cut down to what the narrowed policy grants: a sub-task sees a
/// declared directory only inside one its caller holds, writable only if the caller's is.
fn narrowed_dirs(
    policy: &Policy,
    caller: &[crate::instance::GrantedDir],
) -> Vec<crate::instance::GrantedDir> {
    policy
        .allowed_files
        .iter()
        .filter_map(|grant| {
            let guest = format!("/{}", grant.path);
            caller
                .iter()
                .filter_map(|held| {
                    let rest = if guest == held.guest {
                        ""
                    } else {
                        guest.strip_prefix(&format!("{}/", held.guest))?
                    };
                    let host = held.host.join(rest);
                    // A symlink inside the caller's directory must not lead the callee out of it.
                    let inside = host
                        .canonicalize()
                        .ok()?
                        .starts_with(held.host.canonicalize().ok()?);
                    (inside && host.is_dir()).then(|| crate::instance::GrantedDir {
                        host,
                        guest: guest.clone(),
                        writable: held.writable && grant.mode == FileMode::Rw,
                    })
                })
                .max_by_key(|dir| dir.writable)
        })
        .collect()
}
