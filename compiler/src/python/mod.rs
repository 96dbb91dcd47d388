//! The Python guest's input: the project's files as an **app layer**, its third-party packages
//! as a **site-packages layer** ([`deps`]), and the task module's source on stdin.
//!
//! Both layers are read-only and content-addressed, mounted at build time (the module's top level
//! imports from them inside Wizer) and again at run time (so a module first imported inside a task,
//! or a data file read next to `__file__`, is there too). The guest SDK puts the task file's
//! directory, the project root and site-packages on `sys.path` (see `capsule/_guest.py`).

pub mod deps;

use crate::{Compiler, Error, Prepared, PreparedLayer, TaskSource, project};

/// Where the project's files are mounted in the guest.
pub const APP_MOUNT: &str = "/capsule/app";
/// Where the site-packages layer is mounted in the guest.
pub const SITE_PACKAGES_MOUNT: &str = "/capsule/site-packages";

/// zstd level of the app layer: small layers, packed on every build.
const APP_LAYER_LEVEL: i32 = 9;

/// Prepares a Python task: app layer, site-packages layer, and what the SDK needs to know.
pub fn prepare(compiler: &Compiler, source: &TaskSource) -> Result<Prepared, Error> {
    let collected =
        project::collect_files(&source.project.root, &compiler.exclude, &compiler.skip)?;
    let mut warnings = collected.warnings;
    let app = capsule_packager::layer::pack(
        collected
            .files
            .iter()
            .map(|f| (f.name.as_str(), f.bytes.as_slice())),
        APP_LAYER_LEVEL,
    )?;
    let mut layers = vec![PreparedLayer::new(APP_MOUNT, app)];
    let mut init_env = vec![
        ("CAPSULE_APP_DIR".to_string(), APP_MOUNT.to_string()),
        (
            "CAPSULE_ENTRY_DIR".to_string(),
            source.project.entry_dir().to_string(),
        ),
    ];
    let mut dependencies = Vec::new();
    if let Some(site) = deps::site_packages(compiler, source)? {
        init_env.push((
            "CAPSULE_SITE_PACKAGES".to_string(),
            SITE_PACKAGES_MOUNT.to_string(),
        ));
        if !site.native_modules.is_empty() {
            init_env.push((
                "CAPSULE_NATIVE_MODULES".to_string(),
                serde_json::to_string(&site.native_modules).unwrap_or_default(),
            ));
        }
        warnings.extend(site.warnings);
        dependencies = site.dependencies;
        layers.push(PreparedLayer::new(SITE_PACKAGES_MOUNT, site.blob));
    }
    Ok(Prepared {
        init_input: source.bytes.clone(),
        init_env,
        layers,
        dependencies,
        warnings,
    })
}
