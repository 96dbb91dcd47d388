use crate::args::{OutputArgs, TaskArgs, cache_dir};
use crate::report::{self, EXIT_USAGE, Refusal};
use capsule_runner::{CallOptions, Envelope, Runner};
use std::path::{Path, PathBuf};

/// Verify a bundle, then run a task of it under the limits recorded in its manifest.
///
/// Nothing is granted by default: no files, no network, only the environment variables the task
/// declared; the result (or the error) is printed as an envelope.
#[derive(clap::Parser)]
#[command(after_help = EXEC_HELP)]
pub struct ExecCommand {
    /// The `.capsule` bundle to run.
    bundle: PathBuf,

    #[command(flatten)]
    task: TaskArgs,

    #[command(flatten)]
    output: OutputArgs,
}

const EXEC_HELP: &str = "Examples:\n  capsule exec hello.capsule -- world\n  capsule exec hello.capsule --json --args-json '{\"kwargs\": {\"name\": \"x\"}}'\n\n\
Exit status:\n  0  the task succeeded\n  1  the task ran and failed (exception, timeout, out of fuel, memory limit)\n  \
2  usage error\n  3  bundle invalid, tampered with or incompatible (nothing was executed)";

impl ExecCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        exec_bundle(&self.bundle, &self.task, &self.output)
    }
}

/// Opens, verifies and runs `bundle`; shared with `capsule run`.
pub fn exec_bundle(bundle: &Path, task: &TaskArgs, output: &OutputArgs) -> anyhow::Result<u8> {
    let request = task.request_json().map_err(|e| Refusal {
        message: format!("{e:#}"),
        code: EXIT_USAGE,
    })?;
    let runner = Runner::new(cache_dir()?.join("store"))?;
    let task_name = task.task.clone().unwrap_or_default();
    let outcome = runner.open(bundle).and_then(|loaded| {
        loaded.call(&CallOptions {
            task: task.task.clone(),
            args_json: request,
            files_root: None,
        })
    });
    match outcome {
        Ok(envelope) => Ok(report::print_envelope(&envelope, output.json)),
        Err(error) => {
            let message = format!(
                "refusing to run `{}`: {}",
                bundle.display(),
                describe(&error)
            );
            if output.json {
                report::print_envelope(
                    &Envelope::refused(&task_name, error.error_type(), message.clone()),
                    true,
                );
            }
            Err(Refusal {
                message,
                code: error.exit_code() as u8,
            }
            .into())
        }
    }
}

fn describe(error: &capsule_runner::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!("\n  cause: {cause}"));
        source = cause.source();
    }
    text
}
