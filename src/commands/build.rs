use crate::config::ProjectConfig;
use anyhow::{Context, bail};
use capsule_compiler::{CompiledBundle, Compiler, Error as CompileError, Prepared, TaskSource};
use capsule_packager::engine::Target;
use capsule_packager::sign::SecretKey;
use capsule_runner::cli::args::cache_dir;
use capsule_runner::cli::report::{EXIT_TASK_FAILED, EXIT_USAGE, Refusal};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Build a task file into a bundle: the interpreter is pre-initialized with your module (its top
/// level runs now, at build time), componentized, and precompiled (by default for x86_64 and aarch64).
///
/// Without `--export` the bundle goes into Capsule's cache (as `capsule run` does) and its path is
/// printed; with `--export` (or `-o`) it is written beside the task file as `NAME.capsule`.
#[derive(clap::Parser)]
#[command(after_help = BUILD_HELP)]
pub struct BuildCommand {
    /// The task file (`.py`, `.js`, `.mjs`, `.cjs`, `.ts`, `.mts`, `.cts`); defaults to `[workflow] entrypoint` of ./capsule.toml.
    file: Option<PathBuf>,

    #[command(flatten)]
    project: ProjectArgs,

    /// Write the bundle beside the task file, as `NAME.capsule`.
    #[arg(long)]
    export: bool,

    /// Write the bundle here (implies `--export`).
    #[arg(short, long, value_name = "OUT")]
    output: Option<PathBuf>,

    /// Replace OUT even if it is not a Capsule bundle.
    #[arg(long)]
    force: bool,

    /// Sign the bundle with this secret key (from `capsule keygen`).
    #[arg(long, value_name = "KEY")]
    sign: Option<PathBuf>,

    /// Build a second time with a fresh compilation cache and fail unless both bundles are
    /// byte-identical.
    #[arg(long)]
    check_reproducible: bool,

    /// Precompile for these targets (comma-separated): `x86_64`, `aarch64`.
    #[arg(long, value_name = "TARGETS", value_delimiter = ',', default_values = ["x86_64", "aarch64"], value_parser = parse_target)]
    target: Vec<Target>,

    /// Print how long each build stage took.
    #[arg(long, short)]
    verbose: bool,

    /// When the cache already holds the bundle for exactly these inputs (and signing key), print
    /// its path without building again, as `capsule run` does (used by the host SDKs).
    #[arg(long, conflicts_with_all = ["export", "output", "check_reproducible"])]
    reuse: bool,
}

fn parse_target(name: &str) -> Result<Target, String> {
    Target::by_name(name).ok_or_else(|| {
        let known: Vec<_> = capsule_packager::engine::TARGETS
            .iter()
            .map(|t| t.name)
            .collect();
        format!(
            "unknown target `{name}`; expected one of: {}",
            known.join(", ")
        )
    })
}

const BUILD_HELP: &str = "Examples:\n  capsule build task.py --export\n  capsule build task.py --export --sign ci.key\n  capsule build task.js -o dist/task.capsule\n\n\
Compute levels (wasmtime fuel, measured by ci/bench/fuel.sh on a 2-core x86_64 host):\n  \
LOW = 1e9 (about 0.15 s of CPython / 0.08 s of QuickJS busy work), MEDIUM = 1e10 (1.5 s / 0.8 s),\n  \
HIGH = 1e11 (15 s / 7.9 s), or a fuel count. Default: MEDIUM. Default ram 512MiB, timeout 5m.\n\
Build time: SOURCE_DATE_EPOCH sets the timestamps in the bundle (default 0), so builds are reproducible.\n\n\
With --reuse, a bundle already in the cache for the same inputs is printed without building.\n\n\
Exit status:\n  0  built\n  1  the build failed (your module raised at build time, toolchain failure)\n  \
2  usage or configuration error (bad task options, bad capsule.toml)";

impl BuildCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let file = resolve_task_file(self.file.as_deref())?;
        let key = self.sign.as_deref().map(read_secret_key).transpose()?;
        let started = Instant::now();
        let out = match (&self.output, self.export) {
            (Some(out), _) => Some(out.clone()),
            (None, true) => Some(file.with_extension("capsule")),
            (None, false) => None,
        };
        let plan = Plan::new(&file, None, &self.target, &self.project, out.as_deref())?;
        let cached = plan.cache_path()?;
        // A signed bundle is kept apart from the unsigned one `run` caches, one per signer.
        let cached = match &key {
            Some(key) => cached.with_extension(format!(
                "{}.capsule",
                key.public().key_id().replace(':', "-")
            )),
            None => cached,
        };
        if self.reuse && cached.is_file() {
            println!("{}", cached.display());
            return Ok(0);
        }
        let bundle = plan.compile()?;
        let packed = Instant::now();
        let bytes = bundle
            .to_bytes(key.as_ref())
            .context("cannot write the bundle")?;
        if self.verbose {
            for (stage, took) in &bundle.timings {
                eprintln!("  {:>8.1} ms  {stage}", took.as_secs_f64() * 1e3);
            }
            eprintln!(
                "  {:>8.1} ms  pack (tar + zstd{})",
                packed.elapsed().as_secs_f64() * 1e3,
                if key.is_some() { " + sign" } else { "" }
            );
        }
        if self.check_reproducible {
            check_reproducible(
                &file,
                &bytes,
                key.as_ref(),
                &self.target,
                &self.project,
                out.as_deref(),
            )?;
        }
        let out = out.unwrap_or(cached);
        write_bundle(
            &out,
            &bytes,
            self.force || (self.output.is_none() && !self.export),
        )?;
        eprintln!(
            "built `{}`: entry task `{}`, {} task(s), {:.1} MB, in {:.1} s",
            out.display(),
            bundle.manifest.entry,
            bundle.manifest.tasks.len(),
            bytes.len() as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
        println!("{}", out.display());
        Ok(0)
    }
}

/// The task file given, or the `[workflow] entrypoint` of `./capsule.toml`.
pub fn resolve_task_file(file: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(file) = file {
        return Ok(file.to_path_buf());
    }
    match ProjectConfig::load(Path::new("."))?.workflow.entrypoint {
        Some(entry) => Ok(entry),
        None => bail!("no task file given, and ./capsule.toml has no `[workflow] entrypoint`"),
    }
}

fn read_secret_key(path: &Path) -> anyhow::Result<SecretKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the signing key `{}`", path.display()))?;
    SecretKey::parse(&text).with_context(|| format!("`{}` is not a signing key", path.display()))
}

/// Builds `file` again from a cold compilation cache and compares.
fn check_reproducible(
    file: &Path,
    first: &[u8],
    key: Option<&SecretKey>,
    targets: &[Target],
    project: &ProjectArgs,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let scratch = std::env::temp_dir().join(format!("capsule-reproducible-{}", std::process::id()));
    let second = Plan::new(file, Some(&scratch), targets, project, out)
        .and_then(Plan::compile)
        .and_then(|b| Ok(b.to_bytes(key)?));
    let _ = std::fs::remove_dir_all(&scratch);
    let second = second?;
    let digest = |b: &[u8]| capsule_packager::Digest::of(b);
    if first != second.as_slice() {
        return Err(Refusal {
            message: format!(
                "the build is not reproducible: two builds gave {} and {}",
                digest(first),
                digest(&second)
            ),
            code: EXIT_TASK_FAILED,
        }
        .into());
    }
    eprintln!(
        "reproducible: two builds (the second from a cold cache) gave {}",
        digest(first)
    );
    Ok(())
}

/// Options about the project around a task file, shared by `build` and `run`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ProjectArgs {
    /// Take Python packages from this site-packages directory when the project declares none
    /// (no PEP 723 block, pyproject dependencies or requirements.txt); default: the active
    /// virtualenv's.
    #[arg(long, value_name = "DIR")]
    site_packages: Option<PathBuf>,
}

/// A task file ready to build: its source, its project's settings and what the guest needs.
pub struct Plan {
    source: TaskSource,
    compiler: Compiler,
    prepared: Prepared,
}

impl Plan {
    /// Reads `file`, its project's `capsule.toml`, and prepares its layers or module graph;
    /// `cache` overrides the compiler's cache directory, `out` is the bundle to be written.
    pub fn new(
        file: &Path,
        cache: Option<&Path>,
        targets: &[Target],
        project: &ProjectArgs,
        out: Option<&Path>,
    ) -> anyhow::Result<Plan> {
        let source = TaskSource::read(file).map_err(compile_error)?;
        let config = ProjectConfig::load(&source.project.root).map_err(|e| {
            anyhow::Error::new(Refusal {
                message: format!("{e:#}"),
                code: EXIT_USAGE,
            })
        })?;
        let defaults = config.tasks.as_options()?;
        let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(text) => text.trim().parse::<u64>().with_context(|| {
                format!("SOURCE_DATE_EPOCH is not a number of seconds: `{text}`")
            })?,
            Err(_) => 0,
        };
        let cache = match cache {
            Some(dir) => dir.to_path_buf(),
            None => cache_dir()?.join("compiler"),
        };
        let mut compiler = Compiler::new(cache)
            .targets(targets.to_vec())
            .defaults(defaults)
            .exclude(config.build.exclude.clone())
            .site_packages(project.site_packages.clone())
            .source_date_epoch(epoch);
        if let Some(out) = out {
            compiler = compiler.skip_path(out.to_path_buf());
        }
        let prepared = compiler.prepare(&source).map_err(compile_error)?;
        Ok(Plan {
            source,
            compiler,
            prepared,
        })
    }

    /// Where `run` and a plain `build` keep this bundle: keyed by everything that goes into it.
    pub fn cache_path(&self) -> anyhow::Result<PathBuf> {
        let key = self.compiler.input_key(&self.source, &self.prepared);
        Ok(cache_dir()?
            .join("bundles")
            .join(format!("{}.capsule", key.hex())))
    }

    /// Runs the pipeline; prints the build's warnings and what the module's top level printed.
    pub fn compile(self) -> anyhow::Result<CompiledBundle> {
        for warning in &self.prepared.warnings {
            eprintln!("warning: {warning}");
        }
        let shown = self.prepared.warnings.len();
        let bundle = self
            .compiler
            .compile_prepared(&self.source, self.prepared)
            .map_err(compile_error)?;
        // What the guest noticed while the module's top level ran.
        for warning in bundle.warnings.iter().skip(shown) {
            eprintln!("warning: {warning}");
        }
        let printed = bundle.build_output.trim_end();
        if !printed.is_empty() {
            eprintln!("{printed}");
        }
        Ok(bundle)
    }
}

fn compile_error(error: CompileError) -> anyhow::Error {
    let code = match error {
        CompileError::Unsupported(_) | CompileError::Tasks(_) | CompileError::Policy(_) => {
            EXIT_USAGE
        }
        _ => EXIT_TASK_FAILED,
    };
    anyhow::Error::new(Refusal {
        message: format!("build failed: {error}"),
        code,
    })
}

/// Writes atomically; refuses to replace a file that is not a Capsule bundle unless `force`.
pub(crate) fn write_bundle(out: &Path, bytes: &[u8], force: bool) -> anyhow::Result<()> {
    if !force && out.exists() && !looks_like_bundle(out) {
        return Err(Refusal {
            message: format!("refusing to overwrite `{}`: it is not a Capsule bundle (use --force to replace it)", out.display()),
            code: EXIT_USAGE,
        }
        .into());
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create `{}`", parent.display()))?;
    }
    // A dot name: `capsule gc` skips staging files in the bundle cache.
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned());
    let staging = out.with_file_name(format!(
        ".{}.tmp{}",
        name.unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&staging, bytes)
        .with_context(|| format!("cannot write `{}`", staging.display()))?;
    std::fs::rename(&staging, out).with_context(|| format!("cannot write `{}`", out.display()))
}

fn looks_like_bundle(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    path.extension().is_some_and(|e| e == "capsule")
        && std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
        && magic == [0x28, 0xb5, 0x2f, 0xfd]
}
