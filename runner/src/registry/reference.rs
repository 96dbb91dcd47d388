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
        let bad = |why: String| {
            Error::Usage(format!(
                "invalid registry reference `{text}`: {why} (expected oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:HEX])"
            ))
        };
        let bare = text.strip_prefix(SCHEME).unwrap_or(text);
        let (name, digest) = match bare.split_once('@') {
            Some((name, digest)) => {
                Digest::parse(digest)
                    .ok_or_else(|| bad(format!("`{digest}` is not a sha256 digest")))?;
                (name, Some(digest.to_string()))
            }
            None => (bare, None),
        };
        let (host, path) = name
            .split_once('/')
            .filter(|(host, _)| host.contains('.') || host.contains(':') || *host == "localhost")
            .ok_or_else(|| bad("it names no registry host".into()))?;
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        {
            return Err(bad(format!("`{host}` is not a host name")));
        }
        // A tag follows the last `:` after the last `/` (a `:` before it is the host's port).
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag)),
            _ => (path, None),
        };
        check_repository(repository).map_err(bad)?;
        if let Some(tag) = tag {
            check_tag(tag).map_err(bad)?;
        }
        let (host, repository) = (host.to_string(), repository.to_string());
        // Built from parts rather than by oci-client's parser, whose grammar regex costs tens of
        // milliseconds to compile: as much as a whole warm exec.
        let inner = match (tag, digest) {
            (Some(tag), Some(digest)) => {
                oci_client::Reference::with_tag_and_digest(host, repository, tag.into(), digest)
            }
            (None, Some(digest)) => oci_client::Reference::with_digest(host, repository, digest),
            (Some(tag), None) => oci_client::Reference::with_tag(host, repository, tag.into()),
            (None, None) => oci_client::Reference::with_tag(host, repository, "latest".into()),
        };
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

/// OCI distribution: path components of lowercase letters and digits, separated by `.`, `_`,
/// `__` or runs of `-`; components joined by `/`.
fn check_repository(repository: &str) -> Result<(), String> {
    let valid_component = |c: &str| {
        let bytes = c.as_bytes();
        !c.is_empty()
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && c.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
            && !c.contains("..")
            && !c.contains("___")
    };
    if repository.len() > 255 || !repository.split('/').all(valid_component) {
        return Err(format!(
            "`{repository}` is not a repository name (lowercase letters, digits and `._-` \
             between them, components joined by `/`)"
        ));
    }
    Ok(())
}

/// OCI distribution: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn check_tag(tag: &str) -> Result<(), String> {
    let valid = tag.len() <= 128
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{tag}` is not a tag (letters, digits and `_.-`, at most 128)"
        ))
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
