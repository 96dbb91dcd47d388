use anyhow::Context;
use capsule_packager::sign::SecretKey;
use capsule_runner::cli::report::{EXIT_USAGE, Refusal};
use std::io::Write;
use std::path::PathBuf;

/// Create an Ed25519 signing key: KEY (secret, readable only by you) and KEY.pub (public). The
/// public key is printed; give it to runners with `capsule exec --trust`.
#[derive(clap::Parser)]
#[command(
    after_help = "Examples:\n  capsule keygen -o ci.key\n  capsule build task.py --export --sign ci.key\n  \
capsule exec task.capsule --trust ci.key.pub\n\nExit status:\n  0  created\n  2  KEY exists (nothing is overwritten)"
)]
pub struct KeygenCommand {
    /// Where to write the secret key.
    #[arg(short, long, value_name = "KEY", default_value = "capsule.key")]
    output: PathBuf,
}

impl KeygenCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let public_path = PathBuf::from(format!("{}.pub", self.output.display()));
        for path in [&self.output, &public_path] {
            if path.exists() {
                return Err(Refusal {
                    message: format!("`{}` already exists; not overwriting a key", path.display()),
                    code: EXIT_USAGE,
                }
                .into());
            }
        }
        let key = SecretKey::generate()?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&self.output)
            .with_context(|| format!("cannot create `{}`", self.output.display()))?;
        file.write_all(key.to_file_text().as_bytes())
            .with_context(|| format!("cannot write `{}`", self.output.display()))?;
        let public = key.public();
        std::fs::write(&public_path, format!("{public}\n"))
            .with_context(|| format!("cannot write `{}`", public_path.display()))?;
        eprintln!(
            "wrote `{}` (secret, mode 0600) and `{}`; key id {}",
            self.output.display(),
            public_path.display(),
            public.key_id()
        );
        println!("{public}");
        Ok(0)
    }
}
