use capsule_packager::archive::{BundleReader, ReadLimits};
use capsule_packager::sign::Signer;
use capsule_runner::cli::args::TrustArgs;
use capsule_runner::cli::report::{EXIT_BUNDLE, Refusal};
use std::path::PathBuf;

/// Check a bundle without running it: its signature against the trusted keys, then every blob's
/// sha256 against the signed manifest.
#[derive(clap::Parser)]
#[command(
    after_help = "Examples:\n  capsule verify task.capsule --trust ci.key.pub\n\n\
Exit status:\n  0  the bundle is intact and signed by a trusted key\n  3  it is not (the reason is printed)"
)]
pub struct VerifyCommand {
    /// The `.capsule` bundle.
    bundle: PathBuf,

    #[command(flatten)]
    trust: TrustArgs,
}

impl VerifyCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let trust = self.trust.trust()?;
        let refuse = |e: capsule_packager::Error| Refusal {
            message: format!("`{}` failed verification: {e}", self.bundle.display()),
            code: EXIT_BUNDLE,
        };
        let bytes = capsule_packager::archive::read_capped(
            &self.bundle,
            ReadLimits::default().max_bundle_bytes,
        )
        .map_err(refuse)?;
        let unverified = BundleReader::new(ReadLimits::default())
            .read_unverified(&bytes)
            .map_err(refuse)?;
        let signer = trust
            .check(&unverified.manifest_bytes, unverified.signature.as_ref())
            .map_err(refuse)?;
        let bundle = unverified.verify_blobs().map_err(refuse)?;
        let who = match signer {
            Signer::Trusted(key) => format!("signed by trusted key {} ({key})", key.key_id()),
            Signer::Untrusted(key) => format!(
                "signed by untrusted key {} ({key}), accepted by --allow-unsigned",
                key.key_id()
            ),
            Signer::Unsigned => "unsigned, accepted by --allow-unsigned".to_string(),
        };
        println!(
            "ok: `{}` is intact ({} blobs match the manifest); {who}",
            self.bundle.display(),
            bundle.manifest.blobs.len()
        );
        Ok(0)
    }
}
