//! A task's project: the directory tree its task file belongs to.
//!
//! The project root is the nearest ancestor of the task file that holds one of the guest's marker
//! files (`capsule.toml`, and `pyproject.toml` for Python or `package.json` for JavaScript), else
//! the task file's own directory. [`collect_files`] walks the root for what goes into the app
//! layer, leaving out what never belongs in a bundle: hidden entries (`.git`, `.venv`, `.env`,
//! tool caches), virtualenvs (any directory with a `pyvenv.cfg`), `__pycache__`, `node_modules`,
//! build outputs, Capsule bundles, and the project's own `[build] exclude` globs.

use crate::Error;
use std::path::{Path, PathBuf};

/// Files in the app layer may add up to this much; past it the build fails listing the largest.
pub const MAX_APP_BYTES: u64 = 64 << 20;
/// A file this large is included with a warning (it is probably data nobody meant to ship).
pub const LARGE_FILE_BYTES: u64 = 4 << 20;

/// Directory names that are build outputs or package caches, never sources.
const SKIPPED_DIRS: &[&str] = &[
    "__pycache__",
    "node_modules",
    "build",
    "dist",
    "target",
    "site-packages",
];

/// The project a task file belongs to.
#[derive(Clone, Debug)]
pub struct Project {
    /// The project root (absolute).
    pub root: PathBuf,
    /// The task file relative to the root, `/`-separated.
    pub entry: String,
}

impl Project {
    /// Finds the project of `task_file`: the nearest ancestor holding one of `markers`.
    pub fn discover(task_file: &Path, markers: &[&str]) -> Result<Project, Error> {
        let absolute = std::path::absolute(task_file)
            .map_err(|e| Error::Io(format!("cannot resolve `{}`", task_file.display()), e))?;
        let dir = absolute.parent().unwrap_or(Path::new("/")).to_path_buf();
        let root = dir
            .ancestors()
            .find(|candidate| markers.iter().any(|m| candidate.join(m).is_file()))
            .unwrap_or(&dir)
            .to_path_buf();
        let entry = relative_name(&root, &absolute).ok_or_else(|| {
            Error::Unsupported(format!(
                "`{}` has a file name that is not valid UTF-8",
                task_file.display()
            ))
        })?;
        Ok(Project { root, entry })
    }

    /// The directory of the task file, relative to the root (`""` for the root itself).
    pub fn entry_dir(&self) -> &str {
        self.entry.rsplit_once('/').map_or("", |(dir, _)| dir)
    }
}

/// `path` relative to `root`, `/`-separated, if it is inside and UTF-8.
pub fn relative_name(root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = relative
        .components()
        .map(|c| c.as_os_str().to_str())
        .collect();
    Some(parts?.join("/"))
}

/// A file of the project, as it goes into a layer.
#[derive(Clone, Debug)]
pub struct ProjectFile {
    /// Path relative to the root, `/`-separated.
    pub name: String,
    /// Contents.
    pub bytes: Vec<u8>,
}

/// What [`collect_files`] found.
#[derive(Debug, Default)]
pub struct Collected {
    /// The files, sorted by name.
    pub files: Vec<ProjectFile>,
    /// Things the user should know (large files, links left out).
    pub warnings: Vec<String>,
}

/// Walks `root` for the app layer; `exclude` holds globs relative to the root (from
/// `[build] exclude`), `skip` absolute paths never to include (the bundle being written).
pub fn collect_files(
    root: &Path,
    exclude: &[String],
    skip: &[PathBuf],
) -> Result<Collected, Error> {
    let mut globs = globset::GlobSetBuilder::new();
    for pattern in exclude {
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| {
                Error::Unsupported(format!(
                    "capsule.toml: [build] exclude: bad glob `{pattern}`: {e}"
                ))
            })?;
        globs.add(glob);
        // `dir` and `dir/` also exclude everything under the directory.
        let under = format!("{}/**", pattern.trim_end_matches('/'));
        if let Ok(glob) = globset::GlobBuilder::new(&under)
            .literal_separator(true)
            .build()
        {
            globs.add(glob);
        }
    }
    let globs = globs
        .build()
        .map_err(|e| Error::Unsupported(format!("capsule.toml: [build] exclude: {e}")))?;
    let skip: Vec<PathBuf> = skip
        .iter()
        .filter_map(|p| std::path::absolute(p).ok())
        .collect();
    let mut walk = Walk {
        root,
        globs,
        skip,
        found: Collected::default(),
        total: 0,
    };
    walk.dir(root)?;
    let mut found = walk.found;
    found.files.sort_by(|a, b| a.name.cmp(&b.name));
    if walk.total > MAX_APP_BYTES {
        let mut largest: Vec<&ProjectFile> = found.files.iter().collect();
        largest.sort_by_key(|f| std::cmp::Reverse(f.bytes.len()));
        let list: Vec<String> = largest
            .iter()
            .take(8)
            .map(|f| format!("  {:>10}  {}", human_size(f.bytes.len() as u64), f.name))
            .collect();
        return Err(Error::Unsupported(format!(
            "the project `{}` is {} of files, more than the {} an app layer may hold; the largest:\n{}\n\
             leave data out with `[build] exclude = [\"...\"]` in capsule.toml, or grant it at run time with `allowed_files`",
            root.display(),
            human_size(walk.total),
            human_size(MAX_APP_BYTES),
            list.join("\n")
        )));
    }
    Ok(found)
}

struct Walk<'a> {
    root: &'a Path,
    globs: globset::GlobSet,
    skip: Vec<PathBuf>,
    found: Collected,
    total: u64,
}

impl Walk<'_> {
    fn dir(&mut self, dir: &Path) -> Result<(), Error> {
        let io = |e| Error::Io(format!("cannot list `{}`", dir.display()), e);
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .collect::<Result<_, _>>()
            .map_err(io)?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let Some(name) = relative_name(self.root, &path) else {
                self.found.warnings.push(format!(
                    "left out `{}`: its name is not valid UTF-8",
                    path.display()
                ));
                continue;
            };
            let base = name.rsplit('/').next().unwrap_or(&name);
            if base.starts_with('.') || self.globs.is_match(&name) || self.skip.contains(&path) {
                continue;
            }
            let kind = entry
                .file_type()
                .map_err(|e| Error::Io(format!("cannot stat `{}`", path.display()), e))?;
            let (is_dir, is_file) = if kind.is_symlink() {
                // A link is followed only when it stays inside the project.
                match std::fs::canonicalize(&path) {
                    Ok(target)
                        if target.starts_with(self.root.canonicalize().unwrap_or_default()) =>
                    {
                        (target.is_dir(), target.is_file())
                    }
                    _ => {
                        self.found.warnings.push(format!(
                            "left out `{name}`: a symbolic link that leads outside the project"
                        ));
                        continue;
                    }
                }
            } else {
                (kind.is_dir(), kind.is_file())
            };
            if is_dir {
                let is_venv = path.join("pyvenv.cfg").is_file();
                if is_venv || SKIPPED_DIRS.contains(&base) || base.ends_with(".egg-info") {
                    continue;
                }
                self.dir(&path)?;
            } else if is_file {
                if base.ends_with(".capsule") || base.ends_with(".pyc") {
                    continue;
                }
                let bytes = std::fs::read(&path)
                    .map_err(|e| Error::Io(format!("cannot read `{}`", path.display()), e))?;
                let size = bytes.len() as u64;
                if size >= LARGE_FILE_BYTES {
                    self.found.warnings.push(format!(
                        "included `{name}` ({}) in the app layer; leave it out with `[build] exclude` in capsule.toml if the task does not need it",
                        human_size(size)
                    ));
                }
                self.total += size;
                self.found.files.push(ProjectFile { name, bytes });
            }
        }
        Ok(())
    }
}

/// `12.3 MB`.
pub fn human_size(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MB", bytes as f64 / 1e6)
    } else if bytes >= 1 << 10 {
        format!("{:.1} kB", bytes as f64 / 1e3)
    } else {
        format!("{bytes} B")
    }
}
