//! A session's workspace: a host temporary directory the session's code sees as `/workspace`,
//! and the host-side file operations on it. Every path a client gives is confined to it: relative
//! (or under `/workspace/`), no `..`, and no symlink on the way that leads out.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use tempfile::TempDir;

/// Where the session's code sees its workspace.
pub const GUEST_PATH: &str = "/workspace";

/// Largest file `files.read` returns (its base64 travels on one protocol line).
pub const MAX_READ_BYTES: u64 = 64 << 20;

/// A session's directory; deleted when dropped.
pub struct Workspace {
    dir: TempDir,
    /// The directory, canonical, for containment checks.
    root: PathBuf,
}

/// One entry of `files.list`.
#[derive(serde::Serialize)]
pub struct Entry {
    /// Relative to the workspace.
    pub path: String,
    /// `file`, `dir` or `symlink`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Bytes (0 for directories).
    pub size: u64,
}

impl Workspace {
    /// A new, empty workspace in the host's temporary directory.
    pub fn create() -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("capsule-session-")
            .tempdir()?;
        let root = dir.path().canonicalize()?;
        Ok(Workspace { dir, root })
    }

    /// The host directory.
    pub fn host_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `data` to `path`, creating parent directories and replacing an existing file.
    pub fn write(&self, path: &str, data: &[u8]) -> Result<(), String> {
        let target = self.resolve(path)?;
        let parent = target
            .parent()
            .ok_or_else(|| format!("`{path}` names the workspace itself, not a file"))?;
        fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create the directory of `{path}`: {e}"))?;
        self.check_inside(parent, path)?;
        if fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(format!(
                "`{path}` is a symlink; refusing to write through it"
            ));
        }
        if target.is_dir() {
            return Err(format!("`{path}` is a directory"));
        }
        fs::write(&target, data).map_err(|e| format!("cannot write `{path}`: {e}"))
    }

    /// Bytes the files at `path` hold (see [`crate::disk::bytes_under`]); 0 when nothing is there.
    pub fn bytes_at(&self, path: &str) -> u64 {
        self.resolve(path)
            .map_or(0, |target| crate::disk::bytes_under(&target))
    }

    /// The contents of the file at `path`.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        let target = self.existing(path)?;
        let meta = fs::metadata(&target).map_err(|e| format!("cannot read `{path}`: {e}"))?;
        if !meta.is_file() {
            return Err(format!("`{path}` is not a file"));
        }
        if meta.len() > MAX_READ_BYTES {
            return Err(format!(
                "`{path}` has {} bytes; files.read returns at most {MAX_READ_BYTES}",
                meta.len()
            ));
        }
        fs::read(&target).map_err(|e| format!("cannot read `{path}`: {e}"))
    }

    /// Every entry under `path` (the whole workspace when `None`), recursively, sorted by path.
    pub fn list(&self, path: Option<&str>) -> Result<Vec<Entry>, String> {
        let start = match path {
            Some(path) => self.existing(path)?,
            None => self.root.clone(),
        };
        if !start.is_dir() {
            return Err(format!("`{}` is not a directory", path.unwrap_or(".")));
        }
        let mut entries = Vec::new();
        let mut pending = vec![start];
        while let Some(dir) = pending.pop() {
            let listing = fs::read_dir(&dir)
                .map_err(|e| format!("cannot list `{}`: {e}", self.shown(&dir)))?;
            for item in listing {
                let item = item.map_err(|e| format!("cannot list `{}`: {e}", self.shown(&dir)))?;
                let meta = fs::symlink_metadata(item.path())
                    .map_err(|e| format!("cannot read `{}`: {e}", self.shown(&item.path())))?;
                let kind = if meta.file_type().is_symlink() {
                    "symlink"
                } else if meta.is_dir() {
                    pending.push(item.path());
                    "dir"
                } else {
                    "file"
                };
                entries.push(Entry {
                    path: self.shown(&item.path()),
                    kind,
                    size: if kind == "file" { meta.len() } else { 0 },
                });
            }
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    /// Removes the file, symlink or directory (with its contents) at `path`.
    pub fn remove(&self, path: &str) -> Result<(), String> {
        let target = self.resolve(path)?;
        if target == self.root {
            return Err("refusing to remove the workspace itself".into());
        }
        let parent = target.parent().unwrap_or(&self.root);
        self.check_inside(parent, path)?;
        let meta =
            fs::symlink_metadata(&target).map_err(|e| format!("cannot remove `{path}`: {e}"))?;
        let removed = if meta.is_dir() {
            fs::remove_dir_all(&target)
        } else {
            fs::remove_file(&target)
        };
        removed.map_err(|e| format!("cannot remove `{path}`: {e}"))
    }

    /// `path` under the workspace, checked lexically (the file need not exist).
    fn resolve(&self, path: &str) -> Result<PathBuf, String> {
        let relative = path
            .strip_prefix(GUEST_PATH)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .map(|rest| rest.trim_start_matches('/'))
            .unwrap_or(path);
        let mut resolved = self.root.clone();
        for component in Path::new(relative).components() {
            match component {
                Component::Normal(part) => resolved.push(part),
                Component::CurDir => {}
                Component::ParentDir => {
                    return Err(format!(
                        "`{path}` leaves the workspace (`..` is not allowed)"
                    ));
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(format!(
                        "`{path}` is outside the workspace: give a path relative to it, or under {GUEST_PATH}/"
                    ));
                }
            }
        }
        Ok(resolved)
    }

    /// `path`, which must exist, with every symlink on the way resolved inside the workspace.
    fn existing(&self, path: &str) -> Result<PathBuf, String> {
        let target = self.resolve(path)?;
        self.check_inside(&target, path)?;
        Ok(target)
    }

    /// Refuses `host` (a path built by [`Self::resolve`]) if it does not exist or a symlink takes
    /// it out of the workspace.
    fn check_inside(&self, host: &Path, path: &str) -> Result<(), String> {
        let real = host.canonicalize().map_err(|e| format!("`{path}`: {e}"))?;
        if real.starts_with(&self.root) {
            Ok(())
        } else {
            Err(format!(
                "`{path}` leads out of the workspace through a symlink"
            ))
        }
    }

    /// A host path as the client sees it: relative to the workspace.
    fn shown(&self, host: &Path) -> String {
        host.strip_prefix(&self.root)
            .unwrap_or(host)
            .to_string_lossy()
            .into_owned()
    }
}
