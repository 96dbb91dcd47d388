use super::build::{Plan, ProjectArgs, resolve_task_file};
use anyhow::Context;
use capsule_packager::engine::Target;
use capsule_packager::lease::Lease;
use capsule_packager::sign::Trust;
use capsule_runner::cli::args::{OutputArgs, TaskArgs};
use capsule_runner::cli::{ExecHow, exec_bundle};
use std::path::{Path, PathBuf};

/// Build a task file (or reuse its cached bundle, keyed by content) and run it, exactly as
/// `capsule exec` would run the exported bundle.
#[derive(clap::Parser)]
#[command(after_help = RUN_HELP)]
pub struct RunCommand {
    /// The task file (`.py`, `.js`, `.mjs`, `.cjs`, `.ts`, `.mts`, `.cts`); defaults to `[workflow] entrypoint` of ./capsule.toml.
    file: Option<PathBuf>,

    #[command(flatten)]
    project: ProjectArgs,

    #[command(flatten)]
    task: TaskArgs,

    #[command(flatten)]
    output: OutputArgs,
}

const RUN_HELP: &str = "Examples:\n  capsule run hello.py -- world\n  capsule run task.js --json -- 3 4\n\n\
Exit status:\n  0  the task succeeded\n  1  the build or the task failed\n  2  usage or configuration error\n  \
3  the cached bundle is invalid (nothing was executed)";

impl RunCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let file = resolve_task_file(self.file.as_deref())?;
        let targets: Vec<Target> = Target::host().into_iter().collect();
        let plan = Plan::new(&file, None, &targets, &self.project, None)?;
        let bundle = plan.cache_path()?;
        let started = std::time::Instant::now();
        let trace = self.output.trace();
        // Leased until we exit, so that `capsule gc` leaves the bundle we run.
        let mut lease = Lease::entry(&bundle);
        let cached = lease.is_some();
        if !cached {
            let compiled = plan.compile()?;
            let bytes = compiled.to_bytes(None).context("cannot write the bundle")?;
            lease = Some(write_leased(&bundle, &bytes)?);
        } else {
            // Done with the compiler: release its caches before the task runs.
            drop(plan);
        }
        trace.stage("build", started.elapsed(), || {
            if cached {
                "bundle cached for this source".into()
            } else {
                "built the bundle".into()
            }
        });
        // The bundle was built from your source by this capsule into its own cache: there is no
        // signer to check, and its blobs are still verified against its manifest.
        let how = ExecHow {
            trust: Trust::new(Vec::new(), true),
            warn_unsigned: false,
            compiler: Some(crate::local_compiler::host_compiler()?),
            registries: None,
        };
        let code = exec_bundle(&bundle, &self.task, &self.output, &how);
        drop(lease);
        code
    }
}

/// Writes `bytes` to `path` atomically, leased from the moment it appears.
fn write_leased(path: &Path, bytes: &[u8]) -> anyhow::Result<Lease> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create `{}`", parent.display()))?;
    }
    // A dot name: collectors skip staging files.
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let staging = path.with_file_name(format!(
        ".{}.tmp{}",
        name.unwrap_or_default(),
        std::process::id()
    ));
    let write = || -> std::io::Result<Lease> {
        let mut file = std::fs::File::create(&staging)?;
        let lease = Lease::staged(file.try_clone()?)?;
        file.write_all(bytes)?;
        Ok(lease)
    };
    let lease = write().with_context(|| format!("cannot write `{}`", staging.display()))?;
    std::fs::rename(&staging, path)
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    capsule_packager::lease::mark_used(path);
    Ok(lease)
}
