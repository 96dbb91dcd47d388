use anyhow::Context;
use capsule_packager::archive::{BundleReader, ReadLimits};
use capsule_packager::oci::{ImageManifest, archive_mtime};
use capsule_runner::cli::report::{EXIT_BUNDLE, EXIT_USAGE, Refusal};
use capsule_runner::registry::{Reference, RegistryClient};
use std::path::PathBuf;

/// Push a bundle to an OCI registry; prints the manifest digest (`sha256:...`) to pin it by.
///
/// One OCI manifest per bundle: the signed manifest.json is its config, every blob a layer under
/// its own digest (blobs the registry has already, such as a shared Python stdlib layer, are not
/// uploaded again), the signature a layer. Nothing time-dependent is added, so pushing the same
/// bundle always gives the same digest. Loopback registries are reached over HTTP, others over
/// HTTPS; credentials come from CAPSULE_REGISTRY_USERNAME/CAPSULE_REGISTRY_PASSWORD,
/// CAPSULE_REGISTRY_TOKEN or ~/.docker/config.json.
#[derive(clap::Parser)]
#[command(
    after_help = "Examples:\n  capsule push hello.capsule oci://127.0.0.1:5000/tasks/hello:v1\n  \
capsule exec oci://127.0.0.1:5000/tasks/hello@sha256:<digest> --trust ci.key.pub\n\n\
Exit status:\n  0  pushed\n  1  the registry could not be reached or refused the push\n  \
2  usage error\n  3  the bundle is malformed or tampered with (nothing was pushed)"
)]
pub struct PushCommand {
    /// The `.capsule` bundle.
    bundle: PathBuf,

    /// Where to: `oci://HOST[:PORT]/REPOSITORY[:TAG]` (the `oci://` may be left out; the tag
    /// defaults to `latest`).
    reference: String,
}

impl PushCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let refuse = |message: String, code: u8| anyhow::Error::new(Refusal { message, code });
        let reference =
            Reference::parse(&self.reference).map_err(|e| refuse(e.to_string(), EXIT_USAGE))?;
        if reference.digest().is_some() {
            return Err(refuse(
                format!(
                    "push to a tag, not a digest: `{}` (the digest is what push prints)",
                    self.reference
                ),
                EXIT_USAGE,
            ));
        }
        let invalid = |e: capsule_packager::Error| {
            refuse(
                format!("`{}` cannot be pushed: {e}", self.bundle.display()),
                EXIT_BUNDLE,
            )
        };
        let bytes = capsule_packager::archive::read_capped(
            &self.bundle,
            ReadLimits::default().max_bundle_bytes,
        )
        .map_err(invalid)?;
        // Every blob is checked before anything leaves this machine.
        let bundle = BundleReader::new(ReadLimits::default())
            .read_bytes(&bytes)
            .map_err(invalid)?;
        let image = ImageManifest::for_bundle(&bundle, archive_mtime(&bytes).map_err(invalid)?);
        let signature = bundle.signature.as_ref().map(|s| s.to_bytes());
        let blob = |digest: &capsule_packager::Digest| {
            if *digest == image.config.digest {
                return Some(bundle.manifest_bytes.clone());
            }
            if image
                .signature()
                .is_some_and(|layer| layer.digest == *digest)
            {
                return signature.clone();
            }
            bundle.blob(digest).map(<[u8]>::to_vec)
        };
        let outcome = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?
            .block_on(async {
                let client = RegistryClient::new(&reference)?;
                client.push_bundle(&image, blob).await
            })
            .map_err(|e| refuse(capsule_runner::cli::describe(&e), e.exit_code() as u8))?;
        eprintln!(
            "pushed {} to {} ({} blobs uploaded, {} already there): {}",
            self.bundle.display(),
            reference,
            outcome.uploaded,
            outcome.skipped,
            reference.pinned(&outcome.manifest_digest)
        );
        println!("{}", outcome.manifest_digest);
        Ok(0)
    }
}
