//! `oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:HEX]`: where a bundle lives in a registry.

use crate::Error;
use capsule_packager::Digest;
use std::fmt;

/// The scheme that marks a bundle reference as a registry location rather than a file path.
pub const SCHEME: &str = "oci://";

/// A registry reference with an explicit registry host (there is no default registry: a bare
/// `name:tag` is refused rather than silently sent to some public host).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    inner: oci_client::Reference,
}

impl Reference {
    /// Parses `oci://HOST/REPO[:TAG][@sha256:HEX]`; the `oci://` prefix may be left out where only
    /// a reference makes sense (`push`, `pull`).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bare = text.strip_prefix(SCHEME).unwrap_or(text);
        let bad = |why: String| {
            Error::Usage(format!(
                "invalid registry reference `{text}`: {why} (expected oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:HEX])"
            ))
        };
        let host = bare.split('/').next().unwrap_or_default();
        if !bare.contains('/') || !(host.contains('.') || host.contains(':') || host == "localhost")
        {
            return Err(bad("it names no registry host".into()));
        }
        let inner = oci_client::Reference::try_from(bare).map_err(|e| bad(e.to_string()))?;
        if let Some(digest) = inner.digest()
            && Digest::parse(digest).is_none()
        {
            return Err(bad(format!("`{digest}` is not a sha256 digest")));
        }
        Ok(Reference { inner })
    }

    /// Whether `text` names a registry location (starts with `oci://`).
    pub fn is_reference(text: &str) -> bool {
        text.starts_with(SCHEME)
    }

    /// The pinned manifest digest, if the reference has one.
    pub fn digest(&self) -> Option<Digest> {
        self.inner.digest().and_then(Digest::parse)
    }

    /// The same repository, pinned to `digest` (the tag is kept for display).
    pub fn pinned(&self, digest: &Digest) -> Self {
        Reference {
            inner: self.inner.clone_with_digest(digest.to_string()),
        }
    }

    /// `HOST[:PORT]`.
    pub fn registry(&self) -> &str {
        self.inner.resolve_registry()
    }

    /// Loopback registries are reached over plain HTTP (as Docker does); all others over HTTPS.
    pub fn is_loopback(&self) -> bool {
        let registry = self.registry();
        let host = match registry.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or_default(),
            None => registry.rsplit_once(':').map_or(registry, |(host, _)| host),
        };
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    pub(crate) fn oci(&self) -> &oci_client::Reference {
        &self.inner
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}", self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_tags_and_digests() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let r = Reference::parse(&format!("oci://127.0.0.1:5000/team/hello:v1@{digest}"))
            .expect("parse");
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert!(r.is_loopback());
        assert_eq!(r.digest().map(|d| d.to_string()), Some(digest.clone()));
        assert_eq!(
            r.to_string(),
            format!("oci://127.0.0.1:5000/team/hello:v1@{digest}")
        );
        let r = Reference::parse("registry.example:443/hello:v1").expect("parse");
        assert!(!r.is_loopback());
        assert_eq!(r.digest(), None);
        assert!(
            Reference::parse("localhost:5000/x")
                .expect("parse")
                .is_loopback()
        );
    }

    #[test]
    fn refuses_references_without_a_registry() {
        for text in [
            "oci://hello:v1",
            "hello",
            "oci://",
            "oci://127.0.0.1:5000/UPPER",
        ] {
            let error = Reference::parse(text).expect_err(text);
            assert!(
                error.to_string().contains("invalid registry reference"),
                "{error}"
            );
        }
    }
}
