use anyhow::Context;
use capsule_runner::Runner;
use capsule_runner::cli::args::{TrustArgs, cache_dir};
use capsule_runner::cli::report::{EXIT_USAGE, Refusal};
use capsule_runner::registry::Reference;
use std::path::PathBuf;

/// Fetch a bundle from an OCI registry and verify it; prints its manifest digest.
///
/// Without `-o`, only what this host runs (its `.cwasm` and the filesystem layers) is fetched,
/// into the runner's store, so a later `capsule exec oci://...@sha256:<digest>` needs no network.
/// With `-o FILE`, every blob is fetched and the bundle file is written back, byte for byte the
/// file that was pushed. Either way the signature is checked against the trusted keys and every
/// blob against its sha256 before anything is kept.
#[derive(clap::Parser)]
#[command(
    after_help = "Examples:\n  capsule pull oci://127.0.0.1:5000/tasks/hello:v1 --trust ci.key.pub\n  \
capsule pull oci://127.0.0.1:5000/tasks/hello:v1 -o hello.capsule --trust ci.key.pub\n\n\
Exit status:\n  0  fetched and verified\n  1  the registry could not be reached or lacks the reference\n  \
2  usage error\n  3  the bundle is invalid, tampered with, untrusted or incompatible"
)]
pub struct PullCommand {
    /// `oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:HEX]` (the `oci://` may be left out).
    reference: String,

    /// Write the whole bundle to this file.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Replace FILE even if it is not a Capsule bundle.
    #[arg(long, requires = "output")]
    force: bool,

    #[command(flatten)]
    trust: TrustArgs,
}

impl PullCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let refuse = |message: String, code: u8| anyhow::Error::new(Refusal { message, code });
        let reference =
            Reference::parse(&self.reference).map_err(|e| refuse(e.to_string(), EXIT_USAGE))?;
        let trust = self.trust.trust()?;
        let runner = Runner::new(cache_dir()?.join("store"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let failed = |e: capsule_runner::Error| {
            refuse(
                format!(
                    "cannot pull {reference}: {}",
                    capsule_runner::cli::describe(&e)
                ),
                e.exit_code() as u8,
            )
        };
        let pinned = match &self.output {
            Some(out) => {
                let (bytes, pinned) = runtime
                    .block_on(runner.pull_bundle_file(&reference, &trust))
                    .map_err(failed)?;
                super::build::write_bundle(out, &bytes, self.force)?;
                eprintln!("pulled {pinned} into {}", out.display());
                pinned
            }
            None => {
                let pinned = runtime
                    .block_on(runner.resolve_reference(&reference))
                    .map_err(failed)?;
                runtime
                    .block_on(runner.open_reference(&pinned, &trust))
                    .map_err(failed)?;
                eprintln!("pulled {pinned} into the runner store");
                pinned
            }
        };
        if let Some(digest) = pinned.digest() {
            println!("{digest}");
        }
        Ok(0)
    }
}
