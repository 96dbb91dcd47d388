//! A Python project's third-party packages, as a site-packages layer.
//!
//! Where they come from, the first that exists:
//! 1. a PEP 723 `# /// script` block in the task file (its `dependencies`);
//! 2. `[project] dependencies` of `pyproject.toml` at the project root;
//! 3. `requirements.txt` at the project root;
//! 4. `--site-packages DIR`, else the active virtualenv (`$VIRTUAL_ENV`): copied as installed.
//!
//! Declared requirements are resolved by the host's `pip` into a scratch directory for the guest's
//! CPython (3.11, wheels only, any platform: the guest is neither Linux nor x86_64, but a wheel's
//! Python code is the same on every platform). Compiled extension modules (`.so`) cannot load in
//! the sandbox and are dropped; a package that has a pure-Python fallback keeps working, and one
//! that does not fails the build when the guest tries it (see `CAPSULE_NATIVE_MODULES` in the
//! SDK). Resolutions are cached by the requirement set, so a later build needs no network.

use crate::project::human_size;
use crate::{Compiler, Error, TaskSource};
use capsule_packager::Digest;
use capsule_packager::manifest::Dependency;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The guest's CPython version, for resolution and byte-compiling.
pub const PYTHON_VERSION: &str = "3.11";
/// zstd level of the site-packages layer: packed once per requirement set, so small beats fast.
const LAYER_LEVEL: i32 = 19;
/// Bumped when what a cached resolution holds changes.
const CACHE_VERSION: &str = "site-packages-v1";
/// Wheel platforms pip may pick. Only their Python code is used; x86_64 so that the choice, and
/// so the layer's digest, does not depend on the build machine.
const WHEEL_PLATFORMS: &[&str] = &[
    "manylinux_2_28_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux_2_5_x86_64",
    "manylinux1_x86_64",
];
/// Distributions a copied virtualenv has for its own tooling, never for the task.
const TOOLING: &[&str] = &[
    "pip",
    "setuptools",
    "wheel",
    "_distutils_hack",
    "pkg_resources",
];

/// A project's site-packages, ready to mount.
#[derive(Debug)]
pub struct SitePackages {
    /// The layer blob.
    pub blob: Vec<u8>,
    /// The installed distributions.
    pub dependencies: Vec<Dependency>,
    /// Extension modules that were dropped: module name → what the SDK says if it is imported.
    pub native_modules: BTreeMap<String, String>,
    /// Notes for the user.
    pub warnings: Vec<String>,
}

/// What a cached resolution holds besides its layer blob.
#[derive(Serialize, Deserialize)]
struct Resolution {
    dependencies: Vec<Dependency>,
    native_modules: BTreeMap<String, String>,
    warnings: Vec<String>,
}

/// Where a project's packages come from.
#[derive(Debug)]
enum Declared {
    /// Requirement strings, and where they were written.
    Requirements { origin: String, lines: Vec<String> },
    /// A requirements file for `pip -r`.
    RequirementsFile(PathBuf),
    /// An installed site-packages directory, and how it was chosen.
    Directory { dir: PathBuf, origin: String },
}

/// The site-packages layer of `source`'s project, or `None` when it has no packages.
pub fn site_packages(
    compiler: &Compiler,
    source: &TaskSource,
) -> Result<Option<SitePackages>, Error> {
    match declared(compiler, source)? {
        None => Ok(None),
        Some(Declared::Requirements { lines, .. }) if lines.is_empty() => Ok(None),
        Some(Declared::Directory { dir, origin }) => copy_installed(&dir, &origin).map(Some),
        Some(declared) => resolve_cached(compiler, &declared).map(Some),
    }
}

fn declared(compiler: &Compiler, source: &TaskSource) -> Result<Option<Declared>, Error> {
    let root = &source.project.root;
    if let Some(lines) = pep723_dependencies(source)? {
        return Ok(Some(Declared::Requirements {
            origin: format!("the `# /// script` block of {}", source.project.entry),
            lines,
        }));
    }
    let pyproject = root.join("pyproject.toml");
    if pyproject.is_file() {
        let text = read_text(&pyproject)?;
        let doc: toml::Table = toml::from_str(&text)
            .map_err(|e| Error::Unsupported(format!("{}: {e}", pyproject.display())))?;
        if let Some(deps) = doc.get("project").and_then(|p| p.get("dependencies")) {
            let lines = string_list(deps).ok_or_else(|| {
                Error::Unsupported(format!(
                    "{}: `[project] dependencies` must be a list of strings",
                    pyproject.display()
                ))
            })?;
            return Ok(Some(Declared::Requirements {
                origin: "pyproject.toml".into(),
                lines,
            }));
        }
    }
    let requirements = root.join("requirements.txt");
    if requirements.is_file() {
        return Ok(Some(Declared::RequirementsFile(requirements)));
    }
    if let Some(dir) = &compiler.site_packages {
        if !dir.is_dir() {
            return Err(Error::Unsupported(format!(
                "--site-packages `{}` is not a directory",
                dir.display()
            )));
        }
        return Ok(Some(Declared::Directory {
            dir: dir.clone(),
            origin: "--site-packages".into(),
        }));
    }
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV").filter(|v| !v.is_empty()) {
        let venv = PathBuf::from(venv);
        let dir = venv_site_packages(&venv).ok_or_else(|| {
            Error::Unsupported(format!(
                "$VIRTUAL_ENV is `{}`, which has no lib/python3.*/site-packages",
                venv.display()
            ))
        })?;
        return Ok(Some(Declared::Directory {
            dir,
            origin: format!("the active virtualenv ({})", venv.display()),
        }));
    }
    Ok(None)
}

fn read_text(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::Io(format!("cannot read `{}`", path.display()), e))
}

fn string_list(value: &toml::Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// The `dependencies` of a PEP 723 `# /// script` block, if the task file has one.
fn pep723_dependencies(source: &TaskSource) -> Result<Option<Vec<String>>, Error> {
    let text = String::from_utf8_lossy(&source.bytes);
    let mut lines = text.lines().enumerate();
    let Some((start, _)) = lines.find(|(_, l)| l.trim_end() == "# /// script") else {
        return Ok(None);
    };
    let mut body = String::new();
    let mut closed = false;
    for (_, line) in lines.by_ref() {
        if line.trim_end() == "# ///" {
            closed = true;
            break;
        }
        let content = line
            .strip_prefix("# ")
            .or_else(|| (line.trim_end() == "#").then_some(""));
        let Some(content) = content else {
            break;
        };
        body.push_str(content);
        body.push('\n');
    }
    let at = format!("{}:{}", source.project.entry, start + 1);
    if !closed {
        return Err(Error::Unsupported(format!(
            "{at}: the `# /// script` block is not closed by a `# ///` line"
        )));
    }
    let table: toml::Table = toml::from_str(&body).map_err(|e| {
        Error::Unsupported(format!(
            "{at}: the `# /// script` block is not valid TOML: {e}"
        ))
    })?;
    match table.get("dependencies") {
        None => Ok(Some(Vec::new())),
        Some(value) => string_list(value).map(Some).ok_or_else(|| {
            Error::Unsupported(format!("{at}: `dependencies` must be a list of strings"))
        }),
    }
}

fn venv_site_packages(venv: &Path) -> Option<PathBuf> {
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    let mut found: Vec<PathBuf> = lib
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path().join("site-packages"))
        .filter(|p| p.is_dir())
        .collect();
    found.sort();
    found.pop()
}

// ---- resolving with pip -------------------------------------------------------------------------

fn resolve_cached(compiler: &Compiler, declared: &Declared) -> Result<SitePackages, Error> {
    let key = resolution_key(declared)?;
    let dir = compiler.cache_dir().join("python-deps").join(key.hex());
    let blob_path = dir.join("layer.tar.zst");
    let meta_path = dir.join("resolution.json");
    if let (Ok(blob), Ok(meta)) = (std::fs::read(&blob_path), std::fs::read(&meta_path))
        && let Ok(resolution) = serde_json::from_slice::<Resolution>(&meta)
    {
        return Ok(SitePackages {
            blob,
            dependencies: resolution.dependencies,
            native_modules: resolution.native_modules,
            warnings: resolution.warnings,
        });
    }
    let scratch = tempfile::Builder::new()
        .prefix("capsule-pip-")
        .tempdir()
        .map_err(|e| Error::Io("cannot create a scratch directory".into(), e))?;
    let target = scratch.path().join("site-packages");
    pip_install(declared, &target)?;
    let built = package_directory(&target, false)?;
    // Cache atomically: a half-written entry must never be read back.
    let staging = dir.with_extension(format!("tmp{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(&staging)?;
        std::fs::write(staging.join("layer.tar.zst"), &built.blob)?;
        let meta = Resolution {
            dependencies: built.dependencies.clone(),
            native_modules: built.native_modules.clone(),
            warnings: built.warnings.clone(),
        };
        std::fs::write(
            staging.join("resolution.json"),
            serde_json::to_vec_pretty(&meta).unwrap_or_default(),
        )?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&staging, &dir)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(Error::Io(
            format!("cannot cache the resolution in `{}`", dir.display()),
            e,
        ));
    }
    Ok(built)
}

/// The cache key of a requirement set: the requirements as written (sorted) and the guest's
/// Python; a requirements file by its contents.
fn resolution_key(declared: &Declared) -> Result<Digest, Error> {
    let mut text = format!("{CACHE_VERSION}\npython {PYTHON_VERSION}\n");
    match declared {
        Declared::Requirements { lines, .. } => {
            let mut sorted: Vec<&str> = lines.iter().map(|l| l.trim()).collect();
            sorted.sort();
            for line in sorted {
                text.push_str(line);
                text.push('\n');
            }
        }
        Declared::RequirementsFile(path) => {
            text.push_str("requirements.txt\n");
            text.push_str(&read_text(path)?);
        }
        Declared::Directory { .. } => unreachable!("directories are copied, not resolved"),
    }
    Ok(Digest::of(text.as_bytes()))
}

/// The host's installer: `$CAPSULE_PIP` (a command), else `python3 -m pip`, else `python3.11 -m pip`.
fn pip_command() -> Result<Command, Error> {
    if let Some(custom) = std::env::var_os("CAPSULE_PIP").filter(|v| !v.is_empty()) {
        let text = custom.to_string_lossy().into_owned();
        let mut words = text.split_whitespace();
        let program = words.next().unwrap_or("pip");
        let mut command = Command::new(program);
        command.args(words);
        return Ok(command);
    }
    for python in ["python3", "python3.11", "python"] {
        let works = Command::new(python)
            .args(["-m", "pip", "--version"])
            .output()
            .is_ok_and(|o| o.status.success());
        if works {
            let mut command = Command::new(python);
            command.args(["-m", "pip"]);
            return Ok(command);
        }
    }
    Err(Error::Unsupported(
        "resolving Python dependencies needs pip on this machine (python3 -m pip), or CAPSULE_PIP"
            .into(),
    ))
}

fn pip_install(declared: &Declared, target: &Path) -> Result<(), Error> {
    let mut command = pip_command()?;
    command.args([
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--no-compile",
        "--quiet",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_VERSION,
        "--abi",
        "cp311",
        "--abi",
        "abi3",
        "--abi",
        "none",
    ]);
    for platform in WHEEL_PLATFORMS {
        command.args(["--platform", platform]);
    }
    command.arg("--target").arg(target);
    let origin = match declared {
        Declared::Requirements { origin, lines } => {
            command.args(lines);
            origin.clone()
        }
        Declared::RequirementsFile(path) => {
            command.arg("-r").arg(path);
            "requirements.txt".to_string()
        }
        Declared::Directory { .. } => unreachable!("directories are copied, not resolved"),
    };
    let output = command
        .output()
        .map_err(|e| Error::Io("cannot start pip".into(), e))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let offline = [
        "Failed to establish a new connection",
        "NewConnectionError",
        "Connection refused",
        "Temporary failure in name resolution",
        "Network is unreachable",
        "No route to host",
        "Max retries exceeded",
        "Could not fetch URL",
    ]
    .iter()
    .any(|m| stderr.contains(m));
    let hint = if offline {
        "\nthe package index cannot be reached and this requirement set has not been resolved on this machine before (resolutions are cached by requirement set)"
    } else if stderr.contains("No matching distribution") {
        "\na package that publishes no wheel for any platform (source only) cannot be installed for the sandbox"
    } else {
        ""
    };
    Err(Error::Unsupported(format!(
        "resolving the dependencies of {origin} with pip failed:\n{}{hint}",
        stderr.trim()
    )))
}

// ---- turning an installed directory into a layer ------------------------------------------------

fn copy_installed(dir: &Path, origin: &str) -> Result<SitePackages, Error> {
    let mut built = package_directory(dir, true)?;
    built.warnings.insert(
        0,
        format!("packages come from {origin} (`{}`)", dir.display()),
    );
    Ok(built)
}

/// One file of a site-packages tree.
struct InstalledFile {
    name: String,
    bytes: Vec<u8>,
}

/// Packs the site-packages directory `dir` into a layer: compiled extensions and installer
/// leftovers dropped, every distribution recorded; `skip_tooling` leaves out pip/setuptools.
fn package_directory(dir: &Path, skip_tooling: bool) -> Result<SitePackages, Error> {
    let mut files = Vec::new();
    let mut dropped = Vec::new();
    walk(dir, dir, skip_tooling, &mut files, &mut dropped)?;
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let distributions = read_distributions(&files);
    let mut dependencies = Vec::new();
    let mut native_modules = BTreeMap::new();
    let mut warnings = Vec::new();
    for dist in &distributions {
        let mut owned: Vec<&InstalledFile> = files
            .iter()
            .filter(|f| dist.record.contains(&f.name) || f.name.starts_with(&dist.info_dir))
            .collect();
        owned.sort_by(|a, b| a.name.cmp(&b.name));
        let mut framed = Vec::new();
        for file in owned {
            framed.extend_from_slice(file.name.as_bytes());
            framed.push(0);
            framed.extend_from_slice(&Digest::of(&file.bytes).bytes()[..]);
        }
        let lost: Vec<String> = dropped
            .iter()
            .filter(|d| dist.record.contains(*d))
            .cloned()
            .collect();
        if !lost.is_empty() {
            let required_by: Vec<&str> = distributions
                .iter()
                .filter(|other| other.requires.contains(&normalize(&dist.name)))
                .map(|other| other.name.as_str())
                .collect();
            let who = if required_by.is_empty() {
                dist.name.clone()
            } else {
                format!("{} (required by {})", dist.name, required_by.join(", "))
            };
            for file in &lost {
                if let Some(module) = extension_module_name(file) {
                    native_modules.insert(
                        module,
                        format!(
                            "{who}: needs a compiled extension ({file}); packages with C extensions cannot run in the sandbox"
                        ),
                    );
                }
            }
            let shown: Vec<&str> = lost.iter().take(3).map(String::as_str).collect();
            let more = if lost.len() > shown.len() {
                ", …"
            } else {
                ""
            };
            warnings.push(format!(
                "{} {}: left out {} compiled extension(s) ({}{more}); the sandbox runs its pure-Python code, if it has any",
                dist.name,
                dist.version,
                lost.len(),
                shown.join(", ")
            ));
        }
        dependencies.push(Dependency {
            name: dist.name.clone(),
            version: dist.version.clone(),
            digest: Digest::of(&framed),
            dropped_extensions: lost,
        });
    }
    dependencies.sort_by_key(|a| normalize(&a.name));
    let compiled = byte_compile(&files)?;
    let total: u64 = files.iter().map(|f| f.bytes.len() as u64).sum();
    let mut entries: Vec<(&str, &[u8])> = files
        .iter()
        .map(|f| (f.name.as_str(), f.bytes.as_slice()))
        .chain(
            compiled
                .iter()
                .map(|f| (f.name.as_str(), f.bytes.as_slice())),
        )
        .collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    if total > crate::project::MAX_APP_BYTES * 4 {
        warnings.push(format!(
            "the site-packages layer holds {} of files",
            human_size(total)
        ));
    }
    let blob = capsule_packager::layer::pack(entries, LAYER_LEVEL)?;
    Ok(SitePackages {
        blob,
        dependencies,
        native_modules,
        warnings,
    })
}

fn walk(
    root: &Path,
    dir: &Path,
    skip_tooling: bool,
    files: &mut Vec<InstalledFile>,
    dropped: &mut Vec<String>,
) -> Result<(), Error> {
    let io = |e| Error::Io(format!("cannot list `{}`", dir.display()), e);
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let Some(name) = crate::project::relative_name(root, &path) else {
            continue;
        };
        let base = name.rsplit('/').next().unwrap_or(&name).to_string();
        let top = name.split('/').next().unwrap_or(&name);
        if path.is_dir() {
            let tooling = skip_tooling
                && (TOOLING.contains(&top)
                    || TOOLING.iter().any(|t| {
                        top.strip_suffix(".dist-info")
                            .and_then(|d| d.rsplit_once('-'))
                            .is_some_and(|(n, _)| n.eq_ignore_ascii_case(t))
                    }));
            // `bin/`: console scripts pip writes with --target; nothing in the guest runs them.
            if base == "__pycache__" || tooling || (dir == root && base == "bin") {
                continue;
            }
            walk(root, &path, skip_tooling, files, dropped)?;
        } else if path.is_file() {
            if base.ends_with(".pyc") || base == "INSTALLER" || base == "direct_url.json" {
                continue;
            }
            if skip_tooling
                && (base == "distutils-precedence.pth" || base.starts_with("_virtualenv"))
            {
                continue;
            }
            if [".so", ".pyd", ".dylib"].iter().any(|s| base.ends_with(s)) || base.contains(".so.")
            {
                dropped.push(name);
                continue;
            }
            let bytes = std::fs::read(&path)
                .map_err(|e| Error::Io(format!("cannot read `{}`", path.display()), e))?;
            files.push(InstalledFile { name, bytes });
        }
    }
    Ok(())
}

/// A distribution found by its `.dist-info` directory.
struct Distribution {
    name: String,
    version: String,
    info_dir: String,
    /// Paths its RECORD lists (relative to site-packages).
    record: std::collections::BTreeSet<String>,
    /// Normalized names of the distributions it requires.
    requires: Vec<String>,
}

fn read_distributions(files: &[InstalledFile]) -> Vec<Distribution> {
    let mut found = Vec::new();
    for file in files {
        let Some(info_dir) = file.name.strip_suffix("/METADATA") else {
            continue;
        };
        if !info_dir.ends_with(".dist-info") || info_dir.contains('/') {
            continue;
        }
        let metadata = String::from_utf8_lossy(&file.bytes);
        let header = |key: &str| {
            metadata
                .lines()
                .take_while(|l| !l.is_empty())
                .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
        };
        let requires = metadata
            .lines()
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.strip_prefix("Requires-Dist:"))
            .filter(|r| !r.contains("extra =="))
            .map(|r| {
                let name: String = r
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
                    .collect();
                normalize(&name)
            })
            .collect();
        let record_name = format!("{info_dir}/RECORD");
        let record = files
            .iter()
            .find(|f| f.name == record_name)
            .map(|f| {
                String::from_utf8_lossy(&f.bytes)
                    .lines()
                    .filter_map(|l| l.split(',').next())
                    .map(|p| p.trim_matches('"').to_string())
                    .collect()
            })
            .unwrap_or_default();
        found.push(Distribution {
            name: header("Name:").unwrap_or_else(|| info_dir.to_string()),
            version: header("Version:").unwrap_or_default(),
            info_dir: format!("{info_dir}/"),
            record,
            requires,
        });
    }
    found
}

/// PEP 503 name normalization.
fn normalize(name: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            dash = true;
        } else {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// `numpy/_core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so` → `numpy._core._multiarray_umath`.
fn extension_module_name(path: &str) -> Option<String> {
    let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
    let stem = file.split('.').next()?;
    if stem.is_empty() || dir.contains(".libs") || dir.ends_with(".dist-info") {
        return None;
    }
    let mut parts: Vec<&str> = if dir.is_empty() {
        Vec::new()
    } else {
        dir.split('/').collect()
    };
    parts.push(stem);
    Some(parts.join("."))
}

/// Byte-compiles the `.py` files for the guest's CPython (unchecked-hash pycs, which embed no
/// timestamps, so the layer is reproducible), when the host has that CPython; else none.
fn byte_compile(files: &[InstalledFile]) -> Result<Vec<InstalledFile>, Error> {
    let python = format!("python{PYTHON_VERSION}");
    if Command::new(&python)
        .arg("-c")
        .arg("pass")
        .output()
        .is_err()
    {
        return Ok(Vec::new());
    }
    let scratch = tempfile::Builder::new()
        .prefix("capsule-pyc-")
        .tempdir()
        .map_err(|e| Error::Io("cannot create a scratch directory".into(), e))?;
    let root = scratch.path();
    for file in files.iter().filter(|f| f.name.ends_with(".py")) {
        let path = root.join(&file.name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::Io(format!("cannot create `{}`", parent.display()), e))?;
        }
        std::fs::write(&path, &file.bytes)
            .map_err(|e| Error::Io(format!("cannot write `{}`", path.display()), e))?;
    }
    // `-s`/`-p` record the guest path, not this scratch directory, in each pyc.
    let status = Command::new(&python)
        .args([
            "-m",
            "compileall",
            "-q",
            "-j0",
            "--invalidation-mode",
            "unchecked-hash",
            "-s",
        ])
        .arg(root)
        .args(["-p", super::SITE_PACKAGES_MOUNT])
        .arg(root)
        .output()
        .map_err(|e| Error::Io(format!("cannot run {python} -m compileall"), e))?;
    // A file that does not compile (say, Python 2 code in a test directory) just gets no pyc.
    let _ = status;
    let mut compiled = Vec::new();
    collect_pycs(root, root, &mut compiled)?;
    Ok(compiled)
}

fn collect_pycs(root: &Path, dir: &Path, out: &mut Vec<InstalledFile>) -> Result<(), Error> {
    let io = |e| Error::Io(format!("cannot list `{}`", dir.display()), e);
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            collect_pycs(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "pyc")
            && let Some(name) = crate::project::relative_name(root, &path)
        {
            let bytes = std::fs::read(&path)
                .map_err(|e| Error::Io(format!("cannot read `{}`", path.display()), e))?;
            out.push(InstalledFile { name, bytes });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalize_as_pep_503_says() {
        assert_eq!(normalize("Foo_Bar.baz"), "foo-bar-baz");
        assert_eq!(normalize("pydantic_core"), "pydantic-core");
    }

    #[test]
    fn extension_files_name_their_modules() {
        assert_eq!(
            extension_module_name("numpy/_core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so")
                .as_deref(),
            Some("numpy._core._multiarray_umath")
        );
        assert_eq!(
            extension_module_name("_cffi_backend.cpython-311-x86_64-linux-gnu.so").as_deref(),
            Some("_cffi_backend")
        );
        assert_eq!(extension_module_name("numpy.libs/libopenblas.so"), None);
    }
}
