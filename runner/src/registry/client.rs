//! Moving bundle parts to and from one registry repository (oci-client over reqwest + rustls).
//! Everything fetched is size-capped and hashed here; nothing a registry says is believed until
//! its sha256 matches the digest the caller expected.

use super::{Reference, auth};
use crate::Error;
use capsule_packager::Digest;
use capsule_packager::oci::{Descriptor, IMAGE_MANIFEST_MEDIA_TYPE, ImageManifest};
use futures_util::StreamExt;
use oci_client::RegistryOperation;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use std::time::Duration;

/// A connection to the registry of one reference, with its credentials.
pub struct RegistryClient {
    client: oci_client::Client,
    auth: RegistryAuth,
    reference: Reference,
    /// Whether the registry's auth handshake ran for pulling / pushing (lazily: a client whose
    /// caller finds everything in the runner's store never talks to the registry).
    authenticated: [tokio::sync::OnceCell<()>; 2],
}

/// What [`RegistryClient::push_bundle`] did.
pub struct PushOutcome {
    /// Digest of the pushed OCI manifest (the reference to pin: `REPO@sha256:...`).
    pub manifest_digest: Digest,
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Blobs the registry already had (not uploaded again).
    pub skipped: usize,
}

impl RegistryClient {
    /// A client for `reference`'s registry: plain HTTP for loopback hosts, HTTPS otherwise.
    pub fn new(reference: &Reference) -> Result<Self, Error> {
        install_crypto_provider();
        let protocol = if reference.is_loopback() {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            // An image index is never a Capsule bundle; refuse rather than pick a platform.
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            ..ClientConfig::default()
        };
        Ok(RegistryClient {
            client: oci_client::Client::new(config),
            auth: auth::credentials(reference.registry())?,
            reference: reference.clone(),
            authenticated: Default::default(),
        })
    }

    /// Runs the registry's auth handshake once per operation kind (a token for bearer
    /// registries; basic credentials are then sent with every request).
    async fn authenticate(&self, operation: RegistryOperation) -> Result<(), Error> {
        let slot = match operation {
            RegistryOperation::Pull => &self.authenticated[0],
            RegistryOperation::Push => &self.authenticated[1],
        };
        slot.get_or_try_init(|| async {
            self.client
                .auth(self.reference.oci(), &self.auth, operation)
                .await
                .map(drop)
                .map_err(|e| self.failure("authenticate with the registry of", e))
        })
        .await
        .map(drop)
    }

    /// The reference this client works on.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// Fetches the reference's image manifest; checks its bytes against the pinned digest (if
    /// any) and that it describes a Capsule bundle.
    pub async fn pull_image(&self) -> Result<(ImageManifest, Vec<u8>, Digest), Error> {
        self.authenticate(RegistryOperation::Pull).await?;
        let (bytes, _claimed) = self
            .client
            .pull_manifest_raw(
                self.reference.oci(),
                &self.auth,
                &[IMAGE_MANIFEST_MEDIA_TYPE],
            )
            .await
            .map_err(|e| self.failure("fetch the manifest of", e))?;
        let digest = Digest::of(&bytes);
        if let Some(pinned) = self.reference.digest()
            && pinned != digest
        {
            return Err(Error::Bundle(capsule_packager::Error::DigestMismatch {
                name: format!("OCI manifest of {}", self.reference),
                expected: pinned.hex(),
                actual: digest.hex(),
            }));
        }
        let image = ImageManifest::from_bytes(&bytes)?;
        Ok((image, bytes.to_vec(), digest))
    }

    /// Fetches blob `descriptor` (at most its declared size) and checks its sha256.
    pub async fn pull_blob(&self, descriptor: &Descriptor) -> Result<Vec<u8>, Error> {
        self.authenticate(RegistryOperation::Pull).await?;
        let wanted = OciDescriptor {
            media_type: descriptor.media_type.clone(),
            digest: descriptor.digest.to_string(),
            size: i64::try_from(descriptor.size).unwrap_or(i64::MAX),
            ..OciDescriptor::default()
        };
        let mut stream = self
            .client
            .pull_blob_stream(self.reference.oci(), &wanted)
            .await
            .map_err(|e| self.failure(&format!("fetch blob {} of", descriptor.digest), e))?;
        let mut bytes = Vec::with_capacity(usize::try_from(descriptor.size).unwrap_or(0));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                // oci-client checks digests while streaming (against the descriptor and the
                // registry's Docker-Content-Digest header): a mismatch is a tampered blob.
                if e.get_ref()
                    .is_some_and(|inner| inner.downcast_ref::<DigestError>().is_some())
                {
                    tampered(descriptor, &format!("does not match its digest: {e}"))
                } else {
                    Error::Registry(format!(
                        "fetching blob {} of {}: {e}",
                        descriptor.digest, self.reference
                    ))
                }
            })?;
            if (bytes.len() + chunk.len()) as u64 > descriptor.size {
                return Err(tampered(descriptor, "is larger than its declared size"));
            }
            bytes.extend_from_slice(&chunk);
        }
        let actual = Digest::of(&bytes);
        if actual != descriptor.digest || bytes.len() as u64 != descriptor.size {
            return Err(Error::Bundle(capsule_packager::Error::DigestMismatch {
                name: format!("registry blob {}", descriptor.digest),
                expected: descriptor.digest.hex(),
                actual: actual.hex(),
            }));
        }
        Ok(bytes)
    }

    /// Pushes the parts of a bundle: every blob the registry does not have yet, then the manifest.
    /// `parts` are (descriptor, bytes) for the config, the layers and the signature.
    pub async fn push_bundle(
        &self,
        image: &ImageManifest,
        blob: impl Fn(&Digest) -> Option<Vec<u8>>,
    ) -> Result<PushOutcome, Error> {
        self.authenticate(RegistryOperation::Push).await?;
        let mut uploaded = 0;
        let mut skipped = 0;
        let mut seen = std::collections::BTreeSet::new();
        for descriptor in std::iter::once(&image.config).chain(&image.layers) {
            if !seen.insert(descriptor.digest) {
                continue;
            }
            let digest = descriptor.digest.to_string();
            let exists = self
                .client
                .blob_exists(self.reference.oci(), &digest)
                .await
                .map_err(|e| self.failure("look up a blob in", e))?;
            if exists {
                skipped += 1;
                continue;
            }
            let bytes = blob(&descriptor.digest).ok_or_else(|| {
                Error::Internal(format!(
                    "blob {} is missing from the bundle",
                    descriptor.digest
                ))
            })?;
            self.client
                .push_blob(self.reference.oci(), bytes, &digest)
                .await
                .map_err(|e| self.failure(&format!("upload blob {digest} to"), e))?;
            uploaded += 1;
        }
        let bytes = image.to_bytes();
        let content_type = IMAGE_MANIFEST_MEDIA_TYPE
            .parse()
            .map_err(|e| Error::Internal(format!("bad media type header: {e}")))?;
        self.client
            .push_manifest_raw(self.reference.oci(), bytes.clone(), content_type)
            .await
            .map_err(|e| self.failure("push the manifest to", e))?;
        Ok(PushOutcome {
            manifest_digest: Digest::of(&bytes),
            uploaded,
            skipped,
        })
    }

    /// A registry failure, worded for the user: tampering, credentials, or transport.
    fn failure(&self, action: &str, error: OciDistributionError) -> Error {
        let reference = &self.reference;
        if let OciDistributionError::DigestError(e) = &error {
            return Error::Bundle(capsule_packager::Error::Malformed(format!(
                "{reference}: {e}"
            )));
        }
        let mut text = error.to_string();
        let mut cause = std::error::Error::source(&error);
        while let Some(e) = cause {
            text.push_str(&format!(": {e}"));
            cause = e.source();
        }
        let refused = matches!(
            error,
            OciDistributionError::AuthenticationFailure(_)
                | OciDistributionError::UnauthorizedError { .. }
        ) || text.contains("401 Unauthorized")
            || text.contains("403 Forbidden");
        if refused {
            return Error::Registry(format!(
                "cannot {action} {reference}: the registry refused the credentials ({text}); \
                 set CAPSULE_REGISTRY_USERNAME/CAPSULE_REGISTRY_PASSWORD, CAPSULE_REGISTRY_TOKEN \
                 or an entry in ~/.docker/config.json"
            ));
        }
        Error::Registry(format!("cannot {action} {reference}: {text}"))
    }
}

fn tampered(descriptor: &Descriptor, what: &str) -> Error {
    Error::Bundle(capsule_packager::Error::Malformed(format!(
        "registry blob {} {what} ({} bytes)",
        descriptor.digest, descriptor.size
    )))
}

/// reqwest is built without a default TLS crypto provider (to keep aws-lc out); ring is installed
/// once per process.
fn install_crypto_provider() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
