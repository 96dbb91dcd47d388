//! The bundle manifest (`manifest.json`), schema `capsule-bundle/1`; see manifests/bundle-manifest.md.

use crate::policy::Policy;
use crate::{Digest, Error};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The schema this build writes and the only one it reads.
pub const FORMAT: &str = "capsule-bundle/1";

/// Media type of the component (`.wasm`).
pub const MEDIA_COMPONENT: &str = "application/vnd.capsule.component.v1+wasm";
/// Media type of a precompiled component (`.cwasm`) for one target.
pub const MEDIA_CWASM: &str = "application/vnd.capsule.cwasm.v1";
/// Media type of a read-only filesystem layer (deterministic tar, zstd-compressed).
pub const MEDIA_LAYER: &str = "application/vnd.capsule.layer.v1.tar+zstd";

/// Which interpreter the bundle's guest embeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// CPython 3.11.
    Python,
    /// QuickJS-ng.
    Javascript,
}

/// Everything a runner needs to know about a bundle, covered by the bundle's signature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Guest language.
    pub language: Language,
    /// Name of the entry task.
    pub entry: String,
    /// Every registered task, with its validated policy.
    pub tasks: Vec<TaskEntry>,
    /// Every blob in the bundle.
    pub blobs: Vec<BlobEntry>,
    /// The portable component (`.wasm`), compiled when no `.cwasm` matches.
    pub component: Digest,
    /// Read-only filesystem layers the guest needs (the Python stdlib, the project's files, its
    /// site-packages).
    pub layers: Vec<LayerEntry>,
    /// One precompiled `.cwasm` per target.
    pub targets: Vec<TargetEntry>,
    /// The guest image the snapshot was made from.
    pub guest: GuestInfo,
    /// Versions of the tools that built the bundle.
    pub toolchain: BTreeMap<String, String>,
    /// The user's source file.
    pub source: SourceInfo,
    /// Third-party packages installed into the bundle's site-packages layer (Python).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
}

/// One installed distribution (a PyPI package).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    /// Its name, as its metadata spells it.
    pub name: String,
    /// Its version.
    pub version: String,
    /// sha256 over what was installed of it (each file's path and contents, in path order).
    pub digest: Digest,
    /// Compiled extension modules left out (the package imports without them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped_extensions: Vec<String>,
}

/// One task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskEntry {
    /// Task name.
    pub name: String,
    /// The Python function / JS export it is bound to.
    pub export: Option<String>,
    /// Declared limits, validated at build time.
    pub policy: Policy,
}

/// One blob: `blobs/sha256/<hex>` in the archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobEntry {
    /// Content address.
    pub digest: Digest,
    /// What it is (one of the `MEDIA_*` constants).
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
}

/// A layer and where the guest sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerEntry {
    /// Content address of the tar+zstd blob.
    pub digest: Digest,
    /// Absolute guest path the layer is mounted at, read-only.
    pub mount: String,
}

/// A precompiled component for one target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetEntry {
    /// Target triple, e.g. `x86_64-unknown-linux-gnu`.
    pub triple: String,
    /// CPU features the code may use, e.g. `x86-64-v2`.
    pub cpu_baseline: String,
    /// The wasmtime version that compiled it (a `.cwasm` only loads into the same version).
    pub wasmtime: String,
    /// Hash of every engine setting that affects compiled code; see [`crate::engine::fingerprint`].
    pub engine_fingerprint: String,
    /// The `.cwasm` blob.
    pub cwasm: Digest,
}

/// The guest image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestInfo {
    /// `python` or `quickjs`.
    pub name: String,
    /// Digest of the guest core module before pre-initialization.
    pub image: Digest,
}

/// The user's source file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceInfo {
    /// File name as given to `capsule build`.
    pub file: String,
    /// Digest of its bytes.
    pub digest: Digest,
}

impl Manifest {
    /// Canonical bytes: the exact bytes stored in the bundle and covered by its signature.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("a manifest always serializes");
        out.push(b'\n');
        out
    }

    /// Parses and checks a manifest's schema version and internal references.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        #[derive(Deserialize)]
        struct Version {
            format: Option<String>,
        }
        let version: Version =
            serde_json::from_slice(bytes).map_err(|e| Error::Manifest(e.to_string()))?;
        match version.format.as_deref() {
            Some(FORMAT) => {}
            Some(other) => {
                return Err(Error::Manifest(format!(
                    "unsupported format `{other}` (this capsule reads `{FORMAT}`)"
                )));
            }
            None => return Err(Error::Manifest("missing `format`".into())),
        }
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| Error::Manifest(e.to_string()))?;
        manifest.check_references()?;
        Ok(manifest)
    }

    fn check_references(&self) -> Result<(), Error> {
        let listed = |d: &Digest, media: &str| {
            self.blobs
                .iter()
                .any(|b| b.digest == *d && b.media_type == media)
        };
        if !listed(&self.component, MEDIA_COMPONENT) {
            return Err(Error::Manifest(format!(
                "component {} is not listed as a blob",
                self.component
            )));
        }
        for t in &self.targets {
            if !listed(&t.cwasm, MEDIA_CWASM) {
                return Err(Error::Manifest(format!(
                    "target `{}` names an unlisted blob {}",
                    t.triple, t.cwasm
                )));
            }
        }
        for l in &self.layers {
            if !listed(&l.digest, MEDIA_LAYER) {
                return Err(Error::Manifest(format!(
                    "layer {} is not listed as a blob",
                    l.digest
                )));
            }
        }
        if self.task(&self.entry).is_none() {
            return Err(Error::Manifest(format!(
                "entry task `{}` is not among the tasks",
                self.entry
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(dup) = self.blobs.iter().find(|b| !seen.insert(b.digest)) {
            return Err(Error::Manifest(format!(
                "blob {} is listed twice",
                dup.digest
            )));
        }
        Ok(())
    }

    /// The task named `name`.
    pub fn task(&self, name: &str) -> Option<&TaskEntry> {
        self.tasks.iter().find(|t| t.name == name)
    }

    /// The task names, comma-separated, for messages about a task that does not exist.
    pub fn task_names(&self) -> String {
        let names: Vec<_> = self.tasks.iter().map(|t| t.name.as_str()).collect();
        names.join(", ")
    }

    /// The blob entry for `digest`.
    pub fn blob(&self, digest: &Digest) -> Option<&BlobEntry> {
        self.blobs.iter().find(|b| b.digest == *digest)
    }
}
