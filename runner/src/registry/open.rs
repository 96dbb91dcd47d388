//! Opening a bundle straight from a registry: fetch only what this host needs into the runner's
//! store, verify it exactly as a bundle file is verified, then load it.
//!
//! Order: OCI manifest (its sha256 must be the pinned digest, when there is one) → the config
//! (the signed `manifest.json`) and signature → the signature against the caller's trust → the
//! OCI layers must be exactly the signed manifest's blobs → this host's `.cwasm` and the
//! filesystem layers, each fetched only if the store lacks it and checked against its sha256
//! before it is stored → engine compatibility when the code is deserialized. Other targets' code
//! and the portable component are never fetched (unless this host has no code and the runner
//! compiles locally).

use super::{Reference, RegistryClient};
use crate::runner::{host_target, local_code_key, select_target, signer_text};
use crate::{Error, LoadedBundle, Runner};
use capsule_packager::oci::{Descriptor, ImageManifest};
use capsule_packager::sign::{Signature, Signer, Trust};
use capsule_packager::{Digest, Manifest, archive, layer};
use std::collections::BTreeMap;
use std::time::Instant;
use wasmtime::component::Component;

/// A bundle's metadata, fetched and checked against the caller's trust.
struct Verified {
    image: ImageManifest,
    manifest: Manifest,
    manifest_bytes: Vec<u8>,
    signature: Option<Signature>,
    signer: Signer,
}

impl Runner {
    /// Pins `reference` to a manifest digest: a tag is resolved by the registry (the manifest is
    /// fetched, checked to be a Capsule bundle and kept in the store); a pinned reference is
    /// returned as is.
    pub async fn resolve_reference(&self, reference: &Reference) -> Result<Reference, Error> {
        if reference.digest().is_some() {
            return Ok(reference.clone());
        }
        let client = RegistryClient::new(reference)?;
        let (_, bytes, digest) = client.pull_image().await?;
        self.store.put_blob(&digest, &bytes)?;
        Ok(reference.pinned(&digest))
    }

    /// Fetches, verifies and loads the bundle at `reference` (see the module documentation for
    /// the order of checks). A pinned bundle whose parts are all in the store needs no network.
    pub async fn open_reference(
        &self,
        reference: &Reference,
        trust: &Trust,
    ) -> Result<LoadedBundle, Error> {
        let started = Instant::now();
        let host = host_target()?;
        let reference = self.resolve_reference(reference).await?;
        let client = RegistryClient::new(&reference)?;
        let mut fetched = Fetched::default();
        let verified = self.verify_metadata(&client, trust, &mut fetched).await?;
        let manifest = &verified.manifest;
        let (code, code_lease, compiled_locally) =
            match (select_target(manifest, &host), &self.compiler) {
                (Ok(entry), _) => {
                    let (path, lease) = match self.store.blob(&entry.cwasm) {
                        Some(stored) => stored,
                        None => {
                            let bytes = self
                                .fetch_blob(&client, &verified.image, &entry.cwasm, &mut fetched)
                                .await?;
                            self.store.put_blob(&entry.cwasm, &bytes)?
                        }
                    };
                    (path, lease, false)
                }
                (Err(_), Some(compiler)) => {
                    let key = local_code_key(manifest, &host);
                    let (path, lease) = match self.store.blob(&key) {
                        Some(stored) => stored,
                        None => {
                            let component = self
                                .fetch_blob(
                                    &client,
                                    &verified.image,
                                    &manifest.component,
                                    &mut fetched,
                                )
                                .await?;
                            self.compile_and_store(&key, &component, compiler.as_ref())?
                        }
                    };
                    (path, lease, true)
                }
                (Err(error), None) => return Err(error),
            };
        let mut layers = Vec::new();
        let mut leases = vec![code_lease];
        for entry in &manifest.layers {
            let (dir, lease) = match layer::lookup_leased(self.store.root(), &entry.digest) {
                Some(stored) => stored,
                None => {
                    let blob = self
                        .fetch_blob(&client, &verified.image, &entry.digest, &mut fetched)
                        .await?;
                    layer::materialize_leased(self.store.root(), &entry.digest, &blob)?
                }
            };
            layers.push((dir, entry.mount.clone()));
            leases.push(lease);
        }
        self.trace.stage("verify", started.elapsed(), || {
            format!(
                "{reference}: {} blobs ({} bytes) fetched, the rest from the runner store; signature ({})",
                fetched.blobs,
                fetched.bytes,
                signer_text(verified.signer)
            )
        });
        let loading = Instant::now();
        // SAFETY: the file is in the runner-owned store, written read-only after its sha256 was
        // checked against the signed manifest (or compiled here from a verified component);
        // wasmtime checks version and settings again here.
        let component = unsafe { Component::deserialize_file(&self.engine, &code) }
            .map_err(|e| Error::Incompatible(format!("{e:#}")))?;
        let mut loaded = self.loaded(
            verified.manifest,
            verified.signer,
            component,
            layers,
            leases,
        )?;
        loaded.compiled_locally = compiled_locally;
        self.trace.stage("load", loading.elapsed(), || {
            "mapped the .cwasm from the runner store, linked".into()
        });
        Ok(loaded)
    }

    /// Fetches the whole bundle at `reference` (every target's code), verifies it against
    /// `trust` and every blob's sha256, and reassembles the bundle file: byte for byte the file
    /// that was pushed. Returns its bytes and the pinned reference.
    pub async fn pull_bundle_file(
        &self,
        reference: &Reference,
        trust: &Trust,
    ) -> Result<(Vec<u8>, Reference), Error> {
        let reference = self.resolve_reference(reference).await?;
        let client = RegistryClient::new(&reference)?;
        let mut fetched = Fetched::default();
        let verified = self.verify_metadata(&client, trust, &mut fetched).await?;
        // The file's manifest entry is the manifest serialized again: it must be the signed bytes.
        if verified.manifest.to_bytes() != verified.manifest_bytes {
            return Err(Error::Bundle(capsule_packager::Error::Manifest(
                "the registry's manifest.json is not in canonical form".into(),
            )));
        }
        let mut blobs = BTreeMap::new();
        for blob in &verified.manifest.blobs {
            let bytes = match self.store.read_blob(&blob.digest) {
                Some(bytes) => bytes,
                None => {
                    self.fetch_blob(&client, &verified.image, &blob.digest, &mut fetched)
                        .await?
                }
            };
            blobs.insert(blob.digest, bytes);
        }
        let bytes = archive::write_bundle(
            &verified.manifest,
            &blobs,
            verified.signature.as_ref(),
            verified.image.mtime()?,
        )?;
        Ok((bytes, reference))
    }

    /// The OCI manifest, config and signature of a pinned reference, from the store or the
    /// registry, checked against `trust` and against each other.
    async fn verify_metadata(
        &self,
        client: &RegistryClient,
        trust: &Trust,
        fetched: &mut Fetched,
    ) -> Result<Verified, Error> {
        let digest = client.reference().digest().ok_or_else(|| {
            Error::Internal(format!("{} is not pinned to a digest", client.reference()))
        })?;
        let image_bytes = match self.store.read_blob(&digest) {
            Some(bytes) => bytes,
            None => {
                let (_, bytes, _) = client.pull_image().await?;
                self.store.put_blob(&digest, &bytes)?;
                bytes
            }
        };
        let image = ImageManifest::from_bytes(&image_bytes)?;
        let manifest_bytes = self.fetch_stored(client, &image.config, fetched).await?;
        let signature = match image.signature() {
            Some(descriptor) => {
                let bytes = self.fetch_stored(client, descriptor, fetched).await?;
                Some(Signature::from_bytes(&bytes)?)
            }
            None => None,
        };
        let signer = trust.check(&manifest_bytes, signature.as_ref())?;
        let manifest = Manifest::from_bytes(&manifest_bytes)?;
        image.check_against(&manifest)?;
        Ok(Verified {
            image,
            manifest,
            manifest_bytes,
            signature,
            signer,
        })
    }

    /// A small blob (config, signature) from the store, or fetched and kept there.
    async fn fetch_stored(
        &self,
        client: &RegistryClient,
        descriptor: &Descriptor,
        fetched: &mut Fetched,
    ) -> Result<Vec<u8>, Error> {
        if let Some(bytes) = self.store.read_blob(&descriptor.digest) {
            return Ok(bytes);
        }
        let bytes = self.fetch(client, descriptor, fetched).await?;
        self.store.put_blob(&descriptor.digest, &bytes)?;
        Ok(bytes)
    }

    /// Blob `digest` of the bundle, fetched from its OCI layer.
    async fn fetch_blob(
        &self,
        client: &RegistryClient,
        image: &ImageManifest,
        digest: &Digest,
        fetched: &mut Fetched,
    ) -> Result<Vec<u8>, Error> {
        self.fetch(client, layer_of(image, digest)?, fetched).await
    }

    async fn fetch(
        &self,
        client: &RegistryClient,
        descriptor: &Descriptor,
        fetched: &mut Fetched,
    ) -> Result<Vec<u8>, Error> {
        let bytes = client.pull_blob(descriptor).await?;
        fetched.blobs += 1;
        fetched.bytes += bytes.len() as u64;
        Ok(bytes)
    }
}

/// Counts for `--verbose`.
#[derive(Default)]
struct Fetched {
    blobs: usize,
    bytes: u64,
}

/// The OCI layer carrying blob `digest` (the layers were checked to be exactly the manifest's
/// blobs, so a blob the manifest names is always there).
fn layer_of<'i>(image: &'i ImageManifest, digest: &Digest) -> Result<&'i Descriptor, Error> {
    image
        .layers
        .iter()
        .find(|l| l.digest == *digest)
        .ok_or_else(|| Error::Internal(format!("blob {digest} has no layer in the OCI manifest")))
}
