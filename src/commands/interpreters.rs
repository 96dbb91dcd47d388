use super::run_code::built_interpreter;
use anyhow::Context;
use capsule_runner::Language;
use std::path::PathBuf;

/// Manage the built-in interpreters of `run-code` and the worker's `run_code`.
#[derive(clap::Parser)]
#[command(after_help = INTERPRETERS_HELP)]
pub struct InterpretersCommand {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Build both interpreters (or reuse them from the cache) and copy them into DIR as
    /// `python.capsule` and `javascript.capsule`: what an installed package ships in
    /// `<prefix>/share/capsule/interpreters/` beside `<prefix>/bin/capsule`.
    Export {
        /// The directory to write them into (created if missing).
        dir: PathBuf,
    },
}

const INTERPRETERS_HELP: &str = "Example:\n  capsule interpreters export dist/share/capsule/interpreters\n\n\
Exit status:\n  0  written\n  1  an interpreter failed to build\n  2  usage error";

impl InterpretersCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let Action::Export { dir } = self.action;
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
        for language in [Language::Python, Language::Javascript] {
            let built = built_interpreter(language)?;
            let out = dir.join(format!("{}.capsule", language.name()));
            std::fs::copy(&built, &out).with_context(|| {
                format!("cannot copy `{}` to `{}`", built.display(), out.display())
            })?;
            println!("{}", out.display());
        }
        Ok(0)
    }
}
