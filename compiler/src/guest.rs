//! The guest images embedded by build.rs (see guest-images/build.sh).

use crate::Error;
use capsule_packager::manifest::Language;
use std::path::Path;

/// Where the Python stdlib layer is mounted in the guest (CPython's compiled-in prefix).
pub const PYTHON_STDLIB_MOUNT: &str = "/usr/local/lib/python3.11";

/// An interpreter guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guest {
    /// CPython 3.11.
    Python,
    /// QuickJS-ng (rquickjs).
    Quickjs,
}

/// The bytes of one guest image.
#[derive(Debug)]
pub struct GuestImage {
    /// The guest core module (before pre-initialization).
    pub wasm: &'static [u8],
    /// The stdlib layer (Python only).
    pub stdlib: Option<&'static [u8]>,
    /// The image's content key from guest-images/build.sh.
    pub key: String,
}

static PYTHON_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/python-guest.wasm"));
static PYTHON_INFO: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/python-info.json"));
static PYTHON_STDLIB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/python-stdlib.tar.zst"));
static QUICKJS_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/quickjs-guest.wasm"));
static QUICKJS_INFO: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/quickjs-info.json"));

impl Guest {
    /// The guest for a task file, from its extension.
    pub fn for_path(path: &Path) -> Result<Guest, Error> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("py") => Ok(Guest::Python),
            Some("js" | "mjs" | "cjs" | "ts" | "mts" | "cts") => Ok(Guest::Quickjs),
            _ => Err(Error::Unsupported(format!(
                "cannot build `{}`: expected a Python (.py), JavaScript (.js, .mjs, .cjs) or TypeScript (.ts, .mts, .cts) task file",
                path.display()
            ))),
        }
    }

    /// Files whose presence makes a directory a project root (see [`crate::project`]).
    pub fn project_markers(self) -> &'static [&'static str] {
        match self {
            Guest::Python => &["capsule.toml", "pyproject.toml"],
            Guest::Quickjs => &["capsule.toml", "package.json"],
        }
    }

    /// `python` or `quickjs`.
    pub fn name(self) -> &'static str {
        match self {
            Guest::Python => "python",
            Guest::Quickjs => "quickjs",
        }
    }

    /// The manifest's language.
    pub fn language(self) -> Language {
        match self {
            Guest::Python => Language::Python,
            Guest::Quickjs => Language::Javascript,
        }
    }

    /// The embedded image, or an error naming the command that builds it.
    pub fn image(self) -> Result<GuestImage, Error> {
        let (wasm, info, stdlib) = match self {
            Guest::Python => (PYTHON_WASM, PYTHON_INFO, Some(PYTHON_STDLIB)),
            Guest::Quickjs => (QUICKJS_WASM, QUICKJS_INFO, None),
        };
        if wasm.is_empty() || stdlib.is_some_and(<[u8]>::is_empty) {
            return Err(Error::GuestMissing(self.name()));
        }
        let key = serde_json::from_slice::<serde_json::Value>(info)
            .ok()
            .and_then(|v| v.get("key").and_then(|k| k.as_str()).map(str::to_string))
            .unwrap_or_default();
        Ok(GuestImage { wasm, stdlib, key })
    }
}
