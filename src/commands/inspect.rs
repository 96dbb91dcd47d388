use capsule_packager::archive::{BundleReader, ReadLimits};
use capsule_runner::cli::report::Refusal;
use std::path::PathBuf;

/// Check a bundle's digests and describe it: signer, tasks and their policies, blobs, per-target code, toolchain.
#[derive(clap::Parser)]
#[command(
    after_help = "Exit status:\n  0  the bundle is valid\n  3  the bundle is invalid or tampered with"
)]
pub struct InspectCommand {
    /// The `.capsule` bundle.
    bundle: PathBuf,

    /// Print the manifest as JSON.
    #[arg(long)]
    json: bool,
}

impl InspectCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let bundle = BundleReader::new(ReadLimits::default())
            .read_file(&self.bundle)
            .map_err(|e| Refusal {
                message: format!("`{}` is not a valid bundle: {e}", self.bundle.display()),
                code: capsule_runner::cli::report::EXIT_BUNDLE,
            })?;
        let m = &bundle.manifest;
        if self.json {
            println!(
                "{}",
                String::from_utf8_lossy(&bundle.manifest_bytes).trim_end()
            );
            return Ok(0);
        }
        println!("bundle:    {}", self.bundle.display());
        println!("format:    {}", m.format);
        println!(
            "language:  {:?} (guest `{}`, image {})",
            m.language,
            m.guest.name,
            m.guest.image.short()
        );
        println!("source:    {} ({})", m.source.file, m.source.digest.short());
        println!("entry:     {}", m.entry);
        println!("tasks:");
        for task in &m.tasks {
            let p = &task.policy;
            println!(
                "  {}{}: compute {:?} ({} fuel), ram {} bytes, disk {}, timeout {} ms, retries {}, files {:?}, hosts {:?}, env {:?}",
                task.name,
                task.export
                    .as_deref()
                    .map(|e| format!(" (export `{e}`)"))
                    .unwrap_or_default(),
                p.compute,
                p.fuel(),
                p.ram_bytes,
                p.disk_bytes
                    .map_or("unlimited".to_string(), |d| format!("{d} bytes")),
                p.timeout_ms,
                p.max_retries,
                p.allowed_files
                    .iter()
                    .map(|f| format!("{}:{:?}", f.path, f.mode))
                    .collect::<Vec<_>>(),
                p.allowed_hosts,
                p.env_variables,
            );
        }
        if !m.dependencies.is_empty() {
            println!("dependencies:");
            for d in &m.dependencies {
                let dropped = if d.dropped_extensions.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", {} compiled extension(s) left out",
                        d.dropped_extensions.len()
                    )
                };
                println!("  {} {} ({}{dropped})", d.name, d.version, d.digest.short());
            }
        }
        println!("targets:");
        for t in &m.targets {
            println!(
                "  {} ({}), wasmtime {}, engine {}, code {}",
                t.triple,
                t.cpu_baseline,
                t.wasmtime,
                t.engine_fingerprint,
                t.cwasm.short()
            );
        }
        println!("blobs:");
        for b in &m.blobs {
            println!("  {} {:>12} bytes  {}", b.digest, b.size, b.media_type);
        }
        println!(
            "toolchain: {}",
            m.toolchain
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        match &bundle.signature {
            None => println!("signature: none (unsigned)"),
            Some(signature) => match signature.verify(&bundle.manifest_bytes) {
                Ok(key) => println!("signature: valid, by {} ({key})", key.key_id()),
                Err(e) => println!("signature: INVALID ({e})"),
            },
        }
        Ok(0)
    }
}
