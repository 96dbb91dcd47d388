//! How a bundle maps onto an OCI registry (no networking here; the runner's `registry` module moves
//! the bytes).
//!
//! One bundle is one OCI image manifest:
//!
//! - `artifactType` [`ARTIFACT_TYPE`];
//! - `config`: the exact signed `manifest.json` bytes ([`CONFIG_MEDIA_TYPE`]), so the config digest
//!   is the digest a signature covers;
//! - `layers`: every blob of the manifest, in the manifest's order, under its own digest and media
//!   type (a registry stores a blob shared by many bundles, such as the Python stdlib layer, once);
//!   `.cwasm` layers carry their target triple and engine fingerprint as annotations so a puller
//!   can pick its own without reading the config first; then, for a signed bundle, the
//!   `signature.json` bytes ([`SIGNATURE_MEDIA_TYPE`]);
//! - `annotations`: the bundle format and the archive timestamp (`SOURCE_DATE_EPOCH` or 0, never
//!   the time of the push), so the same bundle always maps to the same manifest bytes and digest,
//!   and a pulled bundle file is byte-for-byte the pushed one.
//!
//! Not an image index: an engine fingerprint is not an OCI platform, and one manifest keeps the
//! signature and every target under one digest.

use crate::archive::Bundle;
use crate::manifest::FORMAT;
use crate::{Digest, Error, Manifest};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The OCI image manifest media type.
pub const IMAGE_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// `artifactType` of a Capsule bundle.
pub const ARTIFACT_TYPE: &str = "application/vnd.capsule.bundle.v1";
/// Media type of the config blob: the bundle's `manifest.json`.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.capsule.manifest.v1+json";
/// Media type of the layer holding `signature.json`.
pub const SIGNATURE_MEDIA_TYPE: &str = "application/vnd.capsule.signature.v1+json";

/// Annotation keys.
pub const ANNOTATION_FORMAT: &str = "dev.capsule.bundle.format";
/// The tar timestamp of every archive entry (decimal seconds).
pub const ANNOTATION_MTIME: &str = "dev.capsule.bundle.mtime";
/// On a `.cwasm` layer: its target triple.
pub const ANNOTATION_TRIPLE: &str = "dev.capsule.target.triple";
/// On a `.cwasm` layer: the engine fingerprint it was compiled for.
pub const ANNOTATION_ENGINE: &str = "dev.capsule.target.engine-fingerprint";

/// Largest OCI manifest, config or signature a reader accepts (as for `manifest.json` in a file).
pub const MAX_METADATA_BYTES: u64 = 1 << 20;

/// An OCI content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the blob is.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: Digest,
    /// Bytes.
    pub size: u64,
    /// Extra facts (sorted keys, so serialization is canonical).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An OCI image manifest as Capsule writes and reads it. Fields Capsule does not use (`subject`,
/// ...) are refused on read rather than ignored: a bundle's manifest carries nothing unchecked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// [`IMAGE_MANIFEST_MEDIA_TYPE`].
    pub media_type: String,
    /// [`ARTIFACT_TYPE`].
    pub artifact_type: String,
    /// The bundle's `manifest.json`.
    pub config: Descriptor,
    /// The bundle's blobs, then its signature.
    pub layers: Vec<Descriptor>,
    /// Format and archive timestamp.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageManifest {
    /// The image manifest for a verified bundle whose archive entries carry timestamp `mtime`.
    pub fn for_bundle(bundle: &Bundle, mtime: u64) -> Self {
        let manifest = &bundle.manifest;
        let mut layers: Vec<Descriptor> = manifest
            .blobs
            .iter()
            .map(|blob| {
                let mut annotations = BTreeMap::new();
                if let Some(target) = manifest.targets.iter().find(|t| t.cwasm == blob.digest) {
                    annotations.insert(ANNOTATION_TRIPLE.to_string(), target.triple.clone());
                    annotations.insert(
                        ANNOTATION_ENGINE.to_string(),
                        target.engine_fingerprint.clone(),
                    );
                }
                Descriptor {
                    media_type: blob.media_type.clone(),
                    digest: blob.digest,
                    size: blob.size,
                    annotations,
                }
            })
            .collect();
        if let Some(signature) = &bundle.signature {
            let bytes = signature.to_bytes();
            layers.push(Descriptor {
                media_type: SIGNATURE_MEDIA_TYPE.to_string(),
                digest: Digest::of(&bytes),
                size: bytes.len() as u64,
                annotations: BTreeMap::new(),
            });
        }
        ImageManifest {
            schema_version: 2,
            media_type: IMAGE_MANIFEST_MEDIA_TYPE.to_string(),
            artifact_type: ARTIFACT_TYPE.to_string(),
            config: Descriptor {
                media_type: CONFIG_MEDIA_TYPE.to_string(),
                digest: Digest::of(&bundle.manifest_bytes),
                size: bundle.manifest_bytes.len() as u64,
                annotations: BTreeMap::new(),
            },
            layers,
            annotations: BTreeMap::from([
                (ANNOTATION_FORMAT.to_string(), FORMAT.to_string()),
                (ANNOTATION_MTIME.to_string(), mtime.to_string()),
            ]),
        }
    }

    /// Canonical bytes (compact JSON, fields in a fixed order): what is pushed and what the
    /// manifest digest is computed over.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an image manifest always serializes")
    }

    /// Parses an image manifest fetched from a registry and checks that it is a Capsule bundle.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let bad = |m: String| Error::Malformed(format!("OCI manifest: {m}"));
        if bytes.len() as u64 > MAX_METADATA_BYTES {
            return Err(bad(format!(
                "{} bytes, over the {MAX_METADATA_BYTES}-byte cap",
                bytes.len()
            )));
        }
        let image: ImageManifest = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if image.schema_version != 2 {
            return Err(bad(format!(
                "`schemaVersion` is {}, expected 2",
                image.schema_version
            )));
        }
        if image.media_type != IMAGE_MANIFEST_MEDIA_TYPE {
            return Err(bad(format!(
                "`mediaType` is `{}`, expected `{IMAGE_MANIFEST_MEDIA_TYPE}`",
                image.media_type
            )));
        }
        if image.artifact_type != ARTIFACT_TYPE {
            return Err(bad(format!(
                "`artifactType` is `{}`: not a Capsule bundle (expected `{ARTIFACT_TYPE}`)",
                image.artifact_type
            )));
        }
        if image.config.media_type != CONFIG_MEDIA_TYPE {
            return Err(bad(format!(
                "config `mediaType` is `{}`, expected `{CONFIG_MEDIA_TYPE}`",
                image.config.media_type
            )));
        }
        if image.config.size > MAX_METADATA_BYTES {
            return Err(bad(format!(
                "config is {} bytes, over the {MAX_METADATA_BYTES}-byte cap",
                image.config.size
            )));
        }
        let signatures = image
            .layers
            .iter()
            .filter(|l| l.media_type == SIGNATURE_MEDIA_TYPE)
            .count();
        if signatures > 1 {
            return Err(bad(format!("{signatures} signature layers, at most 1")));
        }
        if let Some(signature) = image.signature()
            && signature.size > MAX_METADATA_BYTES
        {
            return Err(bad(format!(
                "signature is {} bytes, over the {MAX_METADATA_BYTES}-byte cap",
                signature.size
            )));
        }
        image.mtime()?;
        Ok(image)
    }

    /// The signature layer, if the bundle is signed.
    pub fn signature(&self) -> Option<&Descriptor> {
        self.layers
            .iter()
            .find(|l| l.media_type == SIGNATURE_MEDIA_TYPE)
    }

    /// The archive timestamp to rebuild the identical bundle file with.
    pub fn mtime(&self) -> Result<u64, Error> {
        match self.annotations.get(ANNOTATION_MTIME) {
            None => Ok(0),
            Some(text) => text.parse().map_err(|_| {
                Error::Malformed(format!(
                    "OCI manifest: annotation `{ANNOTATION_MTIME}` is `{text}`, not a number of seconds"
                ))
            }),
        }
    }

    /// Checks that the (verified) bundle manifest and the OCI layers describe the same blobs:
    /// every blob the manifest lists is a layer with the same digest, size and media type, and
    /// nothing else is. A registry cannot make a puller fetch or trust anything the signed
    /// manifest does not name.
    pub fn check_against(&self, manifest: &Manifest) -> Result<(), Error> {
        let bad = |m: String| Error::Malformed(format!("OCI manifest: {m}"));
        let blobs: Vec<&Descriptor> = self
            .layers
            .iter()
            .filter(|l| l.media_type != SIGNATURE_MEDIA_TYPE)
            .collect();
        if blobs.len() != manifest.blobs.len() {
            return Err(bad(format!(
                "{} blob layers, the bundle manifest lists {}",
                blobs.len(),
                manifest.blobs.len()
            )));
        }
        for (layer, blob) in blobs.iter().zip(&manifest.blobs) {
            if layer.digest != blob.digest
                || layer.size != blob.size
                || layer.media_type != blob.media_type
            {
                return Err(bad(format!(
                    "layer {} ({}, {} bytes) does not match the bundle manifest's blob {} ({}, {} bytes)",
                    layer.digest,
                    layer.media_type,
                    layer.size,
                    blob.digest,
                    blob.media_type,
                    blob.size
                )));
            }
        }
        Ok(())
    }
}

/// The timestamp on a bundle file's entries (all entries share it; the first is read).
pub fn archive_mtime(bundle_bytes: &[u8]) -> Result<u64, Error> {
    let bad = |m: String| Error::Malformed(m);
    let decoder = zstd::stream::Decoder::new(bundle_bytes)
        .map_err(|e| bad(format!("not a zstd stream: {e}")))?;
    let mut archive = tar::Archive::new(decoder);
    let mut entries = archive
        .entries()
        .map_err(|e| bad(format!("not a tar archive: {e}")))?;
    let first = entries
        .next()
        .ok_or_else(|| bad("the archive is empty".into()))?
        .map_err(|e| bad(format!("truncated or corrupt archive: {e}")))?;
    first
        .header()
        .mtime()
        .map_err(|e| bad(format!("bad timestamp on the first entry: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageManifest {
        ImageManifest {
            schema_version: 2,
            media_type: IMAGE_MANIFEST_MEDIA_TYPE.into(),
            artifact_type: ARTIFACT_TYPE.into(),
            config: Descriptor {
                media_type: CONFIG_MEDIA_TYPE.into(),
                digest: Digest::of(b"{}"),
                size: 2,
                annotations: BTreeMap::new(),
            },
            layers: vec![],
            annotations: BTreeMap::from([(ANNOTATION_MTIME.into(), "7".into())]),
        }
    }

    #[test]
    fn round_trips_canonically() {
        let bytes = image().to_bytes();
        let parsed = ImageManifest::from_bytes(&bytes).expect("parse");
        assert_eq!(parsed, image());
        assert_eq!(parsed.to_bytes(), bytes);
        assert_eq!(parsed.mtime().expect("mtime"), 7);
    }

    #[test]
    fn refuses_other_artifacts_and_unknown_fields() {
        let mut other = image();
        other.artifact_type = "application/vnd.wasm.config.v0+json".into();
        let error = ImageManifest::from_bytes(&other.to_bytes()).expect_err("refused");
        assert!(
            error.to_string().contains("not a Capsule bundle"),
            "{error}"
        );

        let mut value: serde_json::Value =
            serde_json::from_slice(&image().to_bytes()).expect("json");
        value["subject"] = serde_json::json!({});
        let error = ImageManifest::from_bytes(&serde_json::to_vec(&value).expect("json"))
            .expect_err("refused");
        assert!(error.to_string().contains("subject"), "{error}");
    }
}
