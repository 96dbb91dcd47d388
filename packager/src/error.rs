use std::path::PathBuf;

/// Why a bundle, a manifest or a policy was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("cannot {action} `{path}`")]
    Io {
        /// What was being done ("read", "write", ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The archive itself is malformed or breaks a hardening rule (size caps, links, traversal...).
    #[error("malformed bundle: {0}")]
    Malformed(String),
    /// The manifest is not valid JSON for this schema, or is of an unknown version.
    #[error("invalid manifest: {0}")]
    Manifest(String),
    /// A blob's bytes do not hash to the digest the manifest gives.
    #[error(
        "blob `{name}` does not match the manifest: manifest says sha256 {expected}, file has sha256 {actual}"
    )]
    DigestMismatch {
        /// The entry name.
        name: String,
        /// Digest in the manifest.
        expected: String,
        /// Digest of the bytes found.
        actual: String,
    },
    /// A key is malformed.
    #[error("{0}")]
    Key(String),
    /// A signature is missing, malformed, invalid or by an untrusted key.
    #[error("signature check failed: {0}")]
    Signature(String),
    /// A task's declared configuration has a bad value.
    #[error("task `{task}`: invalid `{field}`: {message}")]
    Policy {
        /// Task name.
        task: String,
        /// Config key as the user wrote it.
        field: String,
        /// What was wrong and what is accepted.
        message: String,
    },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
