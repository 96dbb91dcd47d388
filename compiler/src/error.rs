/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// File I/O.
    #[error("{0}")]
    Io(String, #[source] std::io::Error),
    /// The task file is not something Capsule can build.
    #[error("{0}")]
    Unsupported(String),
    /// The guest image this build needs was not built into this `capsule`.
    #[error(
        "guest image '{0}' not built into this capsule; run `guest-images/build.sh` and rebuild capsule"
    )]
    GuestMissing(&'static str),
    /// The user's module failed while its top level ran (at build time).
    #[error(
        "the task module `{file}` failed while loading (its top level runs at build time)\n{output}"
    )]
    ModuleFailed {
        /// The task file.
        file: String,
        /// What the guest printed (the Python traceback / JS stack).
        output: String,
    },
    /// The module's tasks are not buildable (no entry, bad config...).
    #[error("{0}")]
    Tasks(String),
    /// A task's declared policy is invalid.
    #[error(transparent)]
    Policy(#[from] capsule_packager::Error),
    /// Wizer, wit-component or Cranelift failed.
    #[error("{stage} failed: {message}")]
    Toolchain {
        /// Which stage.
        stage: &'static str,
        /// The underlying error, with its causes.
        message: String,
    },
}

impl Error {
    pub(crate) fn toolchain(stage: &'static str, error: impl std::fmt::Display) -> Self {
        Error::Toolchain {
            stage,
            message: format!("{error:#}"),
        }
    }
}
