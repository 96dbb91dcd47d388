use super::args::{OutputArgs, TaskArgs, TrustArgs, cache_dir};
use super::report::{self, EXIT_USAGE, Refusal};
use crate::registry::Reference;
use crate::{CallOptions, Envelope, ErrorType, LocalCompiler, Runner};
use capsule_packager::sign::{Signer, Trust};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Verify a bundle, then run a task of it under the limits recorded in its manifest.
///
/// Nothing is granted by default: no files, no network, only the environment variables the task
/// declared; the result (or the error) is printed as an envelope.
#[derive(clap::Parser)]
#[command(after_help = EXEC_HELP)]
pub struct ExecCommand {
    /// The `.capsule` bundle to run: a file, or a bundle in an OCI registry,
    /// `oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:HEX]` (only this host's code and the
    /// filesystem layers are fetched, into the runner's store).
    bundle: PathBuf,

    #[command(flatten)]
    task: TaskArgs,

    #[command(flatten)]
    output: OutputArgs,

    #[command(flatten)]
    trust: TrustArgs,
}

const EXEC_HELP: &str = "Examples:\n  capsule exec hello.capsule --trust ci.key.pub -- world\n  capsule exec hello.capsule --allow-unsigned -- world\n  capsule exec oci://127.0.0.1:5000/tasks/hello:v1 --trust ci.key.pub -- world\n  capsule exec hello.capsule --json --args-json '{\"kwargs\": {\"name\": \"x\"}}'\n\n\
Exit status:\n  0  the task succeeded\n  1  the task ran and failed (exception, timeout, out of fuel, memory limit)\n  \
2  usage error\n  3  bundle invalid, tampered with or incompatible (nothing was executed)";

impl ExecCommand {
    /// Verifies the bundle (a file, or a reference into a registry) against the trust from the
    /// flags and runs the task; returns the exit code. `compiler` compiles bundles that carry no
    /// code for this host (the full `capsule` only; without one such bundles are refused).
    pub fn execute(self, compiler: Option<Arc<dyn LocalCompiler>>) -> anyhow::Result<u8> {
        self.execute_with(compiler, Some(open_reference))
    }

    /// [`ExecCommand::execute`] for bundle files only: a registry reference is refused. A binary
    /// that calls only this has no registry client linked in (the lean `capsule` hands
    /// references to `capsule-full`, see [`ExecCommand::names_a_registry`]).
    pub fn execute_file(self, compiler: Option<Arc<dyn LocalCompiler>>) -> anyhow::Result<u8> {
        self.execute_with(compiler, None)
    }

    /// Whether the bundle is an `oci://` reference rather than a file.
    pub fn names_a_registry(&self) -> bool {
        Reference::is_reference(&self.bundle.to_string_lossy())
    }

    fn execute_with(
        self,
        compiler: Option<Arc<dyn LocalCompiler>>,
        registries: Option<OpenReference>,
    ) -> anyhow::Result<u8> {
        let trust = self.trust.trust()?;
        let how = ExecHow {
            trust,
            warn_unsigned: true,
            compiler,
            registries,
        };
        exec_bundle(&self.bundle, &self.task, &self.output, &how)
    }
}

/// How [`exec_bundle`] treats a bundle.
pub struct ExecHow {
    /// Whose signatures are accepted.
    pub trust: Trust,
    /// Say on stderr when an unsigned or untrusted bundle runs.
    pub warn_unsigned: bool,
    /// Compiles bundles without code for this host.
    pub compiler: Option<Arc<dyn LocalCompiler>>,
    /// Opens `oci://` references (as [`ExecCommand::execute`] does); without it only bundle
    /// files open. A function rather than a flag, so that a binary which never passes it does not
    /// link the registry client.
    pub registries: Option<OpenReference>,
}

/// Opens a bundle in a registry, fetching what this host needs into the runner's store.
pub type OpenReference = fn(&Runner, &str, &Trust) -> Result<crate::LoadedBundle, crate::Error>;

/// Opens, verifies and runs `bundle`; shared with `capsule run`.
pub fn exec_bundle(
    bundle: &Path,
    task: &TaskArgs,
    output: &OutputArgs,
    how: &ExecHow,
) -> anyhow::Result<u8> {
    let task_name = task.task.clone().unwrap_or_default();
    // Bad arguments or limits: with --json, still exactly one envelope on stdout.
    let usage = |e: anyhow::Error| {
        let message = format!("{e:#}");
        if output.json {
            report::print_envelope(
                &Envelope::refused(&task_name, ErrorType::InvalidArgs, message.clone()),
                true,
            );
        }
        Refusal {
            message,
            code: EXIT_USAGE,
        }
    };
    let request = task.request_json().map_err(usage)?;
    let narrow = task.narrowing().map_err(usage)?;
    let started = std::time::Instant::now();
    let trace = output.trace();
    let mut runner = Runner::new(cache_dir()?.join("store"))?
        .with_trace(trace.clone())
        .ending_the_process();
    trace.stage("engine", started.elapsed(), || "created".into());
    if let Some(compiler) = &how.compiler {
        runner = runner.with_local_compiler(compiler.clone());
    }
    let outcome = open(&runner, bundle, &how.trust, how.registries).and_then(|loaded| {
        if how.warn_unsigned {
            warn_if_unsigned(bundle, loaded.signer());
        }
        if loaded.compiled_locally() {
            eprintln!(
                "warning: `{}` has no precompiled code for this host; running code compiled here from its component (kept in the runner store)",
                bundle.display()
            );
        }
        let envelope = loaded.call(&CallOptions {
            task: task.task.clone(),
            args_json: request,
            files_root: None,
            narrow,
            mounts: task.mount.clone(),
        });
        // This process ends right after: unmapping the code (with a TLB shootdown to every CPU
        // this process ran on) is the kernel's job at exit, where it is cheaper. Its leases on
        // store entries go with the process too.
        std::mem::forget(loaded);
        envelope
    });
    // Likewise the engine.
    std::mem::forget(runner);
    trace.stage("total", started.elapsed(), || "in the runner".into());
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

/// Opens a bundle file, or with an `oci://` reference the bundle in a registry (when
/// `registries` can).
pub(crate) fn open(
    runner: &Runner,
    bundle: &Path,
    trust: &Trust,
    registries: Option<OpenReference>,
) -> Result<crate::LoadedBundle, crate::Error> {
    let text = bundle.to_string_lossy();
    if !Reference::is_reference(&text) {
        return runner.open(bundle, trust);
    }
    match registries {
        Some(open_reference) => open_reference(runner, &text, trust),
        None => Err(crate::Error::Usage(format!(
            "`{text}` is a registry reference, and this binary runs bundle files only (`capsule-full` pulls from registries)"
        ))),
    }
}

/// [`OpenReference`] with the runner's registry client.
pub fn open_reference(
    runner: &Runner,
    reference: &str,
    trust: &Trust,
) -> Result<crate::LoadedBundle, crate::Error> {
    let reference = Reference::parse(reference)?;
    // Registry I/O on a runtime of its own, gone before the task's call starts its own.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::Error::Internal(format!("cannot start the async runtime: {e}")))?
        .block_on(runner.open_reference(&reference, trust))
}

/// The error and its causes, on one line each.
pub fn describe(error: &crate::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!("\n  cause: {cause}"));
        source = cause.source();
    }
    text
}

/// Says on stderr that an unsigned or untrusted bundle runs (because of `--allow-unsigned`).
pub(crate) fn warn_if_unsigned(bundle: &Path, signer: Signer) {
    match signer {
        Signer::Trusted(_) => {}
        Signer::Untrusted(key) => eprintln!(
            "warning: `{}` is signed by untrusted key {}; running it because of --allow-unsigned",
            bundle.display(),
            key.key_id()
        ),
        Signer::Unsigned => eprintln!(
            "warning: `{}` is not signed; running it because of --allow-unsigned",
            bundle.display()
        ),
    }
}
