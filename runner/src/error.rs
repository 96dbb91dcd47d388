/// Why a bundle could not be run at all (as opposed to a task that ran and failed, which is an
/// [`crate::Envelope`] with `success: false`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bundle is malformed, tampered with, or its manifest is invalid: nothing was executed.
    #[error("bundle verification failed, nothing was executed")]
    Bundle(#[from] capsule_packager::Error),
    /// No `.cwasm` in the bundle can be loaded by this runner: nothing was executed.
    #[error("bundle is not compatible with this runner, nothing was executed: {0}")]
    Incompatible(String),
    /// The caller asked for something the bundle does not have (e.g. an unknown task).
    #[error("{0}")]
    Usage(String),
    /// A registry could not be reached, refused the credentials, or lacks the reference:
    /// nothing was executed, and trying again later may work.
    #[error("{0}")]
    Registry(String),
    /// The runner itself failed (engine setup, filesystem).
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The envelope `error_type` for this error.
    pub fn error_type(&self) -> crate::ErrorType {
        match self {
            Error::Bundle(_) => crate::ErrorType::BundleInvalid,
            Error::Incompatible(_) => crate::ErrorType::Incompatible,
            Error::Usage(_) => crate::ErrorType::InvalidArgs,
            Error::Registry(_) | Error::Internal(_) => crate::ErrorType::Internal,
        }
    }

    /// Process exit code for this error: 3 for bundles that are invalid or incompatible, 2 for
    /// usage errors, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Bundle(_) | Error::Incompatible(_) => 3,
            Error::Usage(_) => 2,
            Error::Registry(_) | Error::Internal(_) => 1,
        }
    }
}
