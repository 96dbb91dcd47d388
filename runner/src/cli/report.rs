//! Printing outcomes: an envelope as JSON or for humans, and errors in Capsule's error shape.

use crate::Envelope;
use std::io::Write;

/// Exit codes, shown in every `--help`.
pub const EXIT_STATUS_HELP: &str = "Exit status:\n  0  success\n  1  the task ran and failed (exception, \
trap, limit)\n  2  usage or configuration error (nothing built or run)\n  3  bundle invalid, untrusted or \
incompatible (nothing run)";

/// Task failed.
pub const EXIT_TASK_FAILED: u8 = 1;
/// Usage or configuration error.
pub const EXIT_USAGE: u8 = 2;
/// Bundle refused.
pub const EXIT_BUNDLE: u8 = 3;

/// An error that carries its exit code (errors without one exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// What to print after `error: `.
    pub message: String,
    /// Exit code.
    pub code: u8,
}

/// Prints an envelope (`--json`: one JSON document; otherwise guest output, then the result or
/// the error) and returns the exit code.
pub fn print_envelope(envelope: &Envelope, json: bool) -> u8 {
    let code = if envelope.success {
        0
    } else {
        EXIT_TASK_FAILED
    };
    let mut stdout = std::io::stdout().lock();
    if json {
        let text = serde_json::to_string(envelope).unwrap_or_else(|e| {
            format!(r#"{{"success":false,"error":{{"error_type":"internal","message":"cannot encode the envelope: {e}"}}}}"#)
        });
        let _ = writeln!(stdout, "{text}");
        return code;
    }
    let _ = stdout.write_all(envelope.output.stdout.as_bytes());
    let _ = std::io::stderr().write_all(envelope.output.stderr.as_bytes());
    if envelope.output.dropped_bytes > 0 {
        eprintln!(
            "note: {} bytes of guest output were dropped (capture cap reached)",
            envelope.output.dropped_bytes
        );
    }
    match (&envelope.result, &envelope.error) {
        (Some(result), _) => {
            let pretty = serde_json::from_str::<serde_json::Value>(result.get())
                .and_then(|v| serde_json::to_string_pretty(&v))
                .unwrap_or_else(|_| result.get().to_string());
            let _ = writeln!(stdout, "{pretty}");
        }
        (None, Some(error)) => {
            let _ = stdout.flush();
            let kind = error.error_type.as_str();
            eprintln!(
                "error: task `{}` failed ({kind})",
                envelope.execution.task_name
            );
            eprintln!("  cause: {}", error.message);
            if let Some(traceback) = &error.traceback {
                eprintln!("{}", traceback.trim_end());
            }
        }
        (None, None) => {}
    }
    code
}

/// A binary's exit status for a command's `outcome`: its code, or the error printed (see
/// [`print_error`]).
pub fn exit_status(outcome: anyhow::Result<u8>) -> std::process::ExitCode {
    std::process::ExitCode::from(exit_code(outcome))
}

/// [`exit_status`] as a number.
pub fn exit_code(outcome: anyhow::Result<u8>) -> u8 {
    match outcome {
        Ok(code) => code,
        Err(error) => print_error(&error),
    }
}

/// Prints `error: ...` with its causes; returns the exit code.
pub fn print_error(error: &anyhow::Error) -> u8 {
    let code = error
        .chain()
        .find_map(|e| e.downcast_ref::<Refusal>().map(|r| r.code))
        .or_else(|| {
            error.chain().find_map(|e| {
                e.downcast_ref::<crate::Error>()
                    .map(|r| r.exit_code() as u8)
            })
        })
        .unwrap_or(EXIT_USAGE);
    eprintln!("error: {error}");
    for cause in error.chain().skip(1) {
        eprintln!("  cause: {cause}");
    }
    code
}
