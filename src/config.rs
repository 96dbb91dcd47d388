//! `capsule.toml`: project-wide task defaults, what the build leaves out, and the workflow's
//! entrypoint. It lives at the project root (see `capsule_compiler::project`).
//!
//! ```toml
//! [workflow]
//! name = "reports"
//! version = "1.0.0"
//! entrypoint = "main.py"
//!
//! [build]
//! exclude = ["data/raw/", "*.ipynb"]
//!
//! [tasks]
//! default_compute = "LOW"
//! default_ram = "256MB"
//! default_timeout = "30s"
//! ```
//!
//! Unknown keys are errors; values are judged by the same code that judges a task's own options,
//! so a bad default fails the build naming the key.

use anyhow::Context;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file name looked up beside a task file.
pub const FILE_NAME: &str = "capsule.toml";

/// A parsed `capsule.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// `[workflow]`.
    #[serde(default)]
    pub workflow: Workflow,
    /// `[tasks]`.
    #[serde(default)]
    pub tasks: TaskDefaults,
    /// `[build]`.
    #[serde(default)]
    pub build: BuildSettings,
}

/// `[build]`: what goes into a bundle.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSettings {
    /// Globs, relative to the project root, of files and directories to leave out of the app
    /// layer (`data/*.csv`, `notebooks/`).
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// `[workflow]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(
    dead_code,
    reason = "name and version are accepted (the published CLI's files have them) but not used yet"
)]
pub struct Workflow {
    /// Display name.
    pub name: Option<String>,
    /// Version string.
    pub version: Option<String>,
    /// The task file `capsule build`/`run` use when given none.
    pub entrypoint: Option<PathBuf>,
}

/// `[tasks]`: defaults a task's own options override.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskDefaults {
    default_compute: Option<toml::Value>,
    default_ram: Option<toml::Value>,
    default_timeout: Option<toml::Value>,
    default_max_retries: Option<toml::Value>,
    default_allowed_files: Option<toml::Value>,
    default_allowed_hosts: Option<toml::Value>,
    default_env_variables: Option<toml::Value>,
    default_disk: Option<toml::Value>,
}

impl TaskDefaults {
    /// The defaults keyed by task option name (`compute`, `ram`...), as JSON values.
    pub fn as_options(&self) -> anyhow::Result<BTreeMap<String, Value>> {
        let mut options = BTreeMap::new();
        let fields = [
            ("compute", &self.default_compute),
            ("ram", &self.default_ram),
            ("timeout", &self.default_timeout),
            ("max_retries", &self.default_max_retries),
            ("allowed_files", &self.default_allowed_files),
            ("allowed_hosts", &self.default_allowed_hosts),
            ("env_variables", &self.default_env_variables),
            ("disk", &self.default_disk),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                let json = serde_json::to_value(value).with_context(|| {
                    format!("`tasks.default_{name}` cannot be used as a task option")
                })?;
                options.insert(name.to_string(), json);
            }
        }
        Ok(options)
    }
}

impl ProjectConfig {
    /// Loads `dir/capsule.toml`, or the empty configuration when there is none.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ProjectConfig::default());
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read `{}`", path.display())),
        };
        toml::from_str(&text).with_context(|| format!("failed to load `{}`", path.display()))
    }
}
