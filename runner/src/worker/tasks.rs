//! Task calls (a request without `op`): a task of a bundle, in a fresh instance.

use super::CallSettings;
use super::bundles::BundleCache;
use super::protocol::TaskRequest;
use crate::cli::args::args_document;
use crate::cli::exec::describe;
use crate::{CallOptions, Envelope, ErrorType, LoadedBundle, Narrowing};
use serde_json::Value;

/// Runs one task call; every failure becomes an envelope.
pub async fn call(cache: &BundleCache, settings: &CallSettings, request: &TaskRequest) -> Envelope {
    let task_label = request.task.clone().unwrap_or_default();
    let refused = |error: crate::Error| {
        Envelope::refused(
            &task_label,
            error.error_type(),
            format!(
                "refusing to run `{}`: {}",
                request.bundle.display(),
                describe(&error)
            ),
        )
    };
    let bundle = match cache.get(&request.bundle).await {
        Ok(bundle) => bundle,
        Err(error) => return refused(error),
    };
    let options = match call_options(&bundle, settings, request) {
        Ok(options) => options,
        Err(message) => return Envelope::refused(&task_label, ErrorType::InvalidArgs, message),
    };
    match bundle.call_async(&options).await {
        Ok(envelope) => envelope,
        Err(error) => refused(error),
    }
}

fn call_options(
    bundle: &LoadedBundle,
    settings: &CallSettings,
    request: &TaskRequest,
) -> Result<CallOptions, String> {
    let mut timeout = match &request.timeout {
        Some(text) => Some(
            capsule_packager::policy::parse_timeout(&Value::String(text.clone()))
                .map_err(|e| format!("invalid `timeout`: {e}"))?,
        ),
        None => None,
    };
    // The worker's own deadline clamps quietly: it is the host's setting, not the caller's ask.
    if let Some(limit) = settings.request_timeout {
        let task = request.task.as_deref().unwrap_or(&bundle.manifest().entry);
        if let Some(declared) = bundle.manifest().task(task).map(|t| t.policy.timeout()) {
            let clamped = limit.min(declared);
            timeout = match timeout {
                // Wider than declared: left for `Narrowing::apply` to refuse.
                Some(asked) if asked > declared => Some(asked),
                Some(asked) => Some(asked.min(clamped)),
                None => Some(clamped),
            };
        }
    }
    Ok(CallOptions {
        task: request.task.clone(),
        args_json: args_document(
            request.args.as_ref().filter(|v| !v.is_null()),
            request.kwargs.as_ref(),
            "`args`",
        )?,
        files_root: settings.files_root.clone(),
        narrow: Narrowing {
            timeout,
            ..Narrowing::default()
        },
        mounts: Vec::new(),
    })
}
