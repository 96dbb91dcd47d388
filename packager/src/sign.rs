//! Ed25519 signatures over a bundle's manifest, and the keys that make and check them.
//!
//! The signature covers the sha256 of the manifest's canonical bytes, and the manifest names every
//! blob by sha256, so one signature covers the whole bundle. It travels as `signature.json`, the
//! archive's second entry. Keys are printed as `capsule-ed25519:<64 hex digits>` (public) and stored
//! as `capsule-ed25519-secret:<64 hex digits>` (the secret seed, in a file only its owner can read).

use crate::{Digest, Error};
use ed25519_dalek::{Signer as _, Verifier as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fmt;

const PUBLIC_PREFIX: &str = "capsule-ed25519:";
const SECRET_PREFIX: &str = "capsule-ed25519-secret:";
/// Domain separation: a signature over anything else can never verify as a bundle signature.
const CONTEXT: &[u8] = b"capsule-bundle-signature/1\n";
/// Name of the signature entry in a bundle.
pub const SIGNATURE_ENTRY: &str = "signature.json";

/// A public key that may be trusted to sign bundles.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

/// A secret signing key.
pub struct SecretKey(ed25519_dalek::SigningKey);

fn key_error(message: String) -> Error {
    Error::Key(message)
}

fn decode_32(text: &str, what: &str) -> Result<[u8; 32], Error> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text, &mut bytes)
        .map_err(|_| key_error(format!("{what} must be 64 hex digits")))?;
    Ok(bytes)
}

impl PublicKey {
    /// Parses `capsule-ed25519:<hex>`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let hex_part = text.strip_prefix(PUBLIC_PREFIX).ok_or_else(|| {
            key_error(format!(
                "`{}` is not a Capsule public key (expected `{PUBLIC_PREFIX}<64 hex digits>`)",
                text.escape_debug()
            ))
        })?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&decode_32(hex_part, "a public key")?)
            .map_err(|e| key_error(format!("invalid Ed25519 public key: {e}")))?;
        Ok(PublicKey(key))
    }

    /// A short, stable name for the key: `ed25519:` and 16 hex digits of its sha256.
    pub fn key_id(&self) -> String {
        format!(
            "ed25519:{}",
            &hex::encode(Sha256::digest(self.0.as_bytes()))[..16]
        )
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", hex::encode(self.0.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl SecretKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<Self, Error> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed)
            .map_err(|e| key_error(format!("no randomness for a new key: {e}")))?;
        Ok(SecretKey(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// Parses the contents of a secret key file.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let hex_part = text.trim().strip_prefix(SECRET_PREFIX).ok_or_else(|| {
            key_error(format!(
                "not a Capsule secret key file (expected `{SECRET_PREFIX}<64 hex digits>`)"
            ))
        })?;
        Ok(SecretKey(ed25519_dalek::SigningKey::from_bytes(
            &decode_32(hex_part, "a secret key")?,
        )))
    }

    /// The text of a secret key file.
    pub fn to_file_text(&self) -> String {
        format!("{SECRET_PREFIX}{}\n", hex::encode(self.0.to_bytes()))
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Signs the manifest whose canonical bytes are `manifest_bytes`.
    pub fn sign(&self, manifest_bytes: &[u8]) -> Signature {
        let digest = Digest::of(manifest_bytes);
        let signature = self.0.sign(&message(&digest));
        let public = self.public();
        Signature {
            algorithm: "ed25519".to_string(),
            key_id: public.key_id(),
            public_key: public.to_string(),
            manifest_digest: digest,
            signature: hex::encode(signature.to_bytes()),
        }
    }
}

fn message(manifest_digest: &Digest) -> Vec<u8> {
    [CONTEXT, manifest_digest.bytes()].concat()
}

/// `signature.json`: who signed which manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// Always `ed25519`.
    pub algorithm: String,
    /// [`PublicKey::key_id`] of the signer.
    pub key_id: String,
    /// The signer's public key.
    pub public_key: String,
    /// sha256 of the manifest's canonical bytes.
    pub manifest_digest: Digest,
    /// The 64-byte signature, hex.
    pub signature: String,
}

impl Signature {
    /// Parses `signature.json`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::Signature(format!("unreadable signature: {e}")))
    }

    /// The bytes stored in a bundle.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Checks that this is a valid signature over `manifest_bytes` by the key it names, and returns
    /// that key (whether it is trusted is the caller's decision).
    pub fn verify(&self, manifest_bytes: &[u8]) -> Result<PublicKey, Error> {
        let bad = |m: &str| Error::Signature(m.to_string());
        if self.algorithm != "ed25519" {
            return Err(Error::Signature(format!(
                "unsupported signature algorithm `{}`",
                self.algorithm.escape_debug()
            )));
        }
        let key =
            PublicKey::parse(&self.public_key).map_err(|e| Error::Signature(e.to_string()))?;
        if key.key_id() != self.key_id {
            return Err(bad("the key id does not match the signer's public key"));
        }
        let digest = Digest::of(manifest_bytes);
        if digest != self.manifest_digest {
            return Err(bad(
                "the signature is for a different manifest (the manifest was changed after signing)",
            ));
        }
        let mut raw = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut raw)
            .map_err(|_| bad("the signature must be 128 hex digits"))?;
        key.0
            .verify(
                &message(&digest),
                &ed25519_dalek::Signature::from_bytes(&raw),
            )
            .map_err(|_| {
                bad("the signature does not verify (the manifest or the signature was changed)")
            })?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_detect_changes() {
        let key = SecretKey::generate().expect("key");
        let parsed = SecretKey::parse(&key.to_file_text()).expect("parse");
        assert_eq!(parsed.public(), key.public());
        assert_eq!(
            PublicKey::parse(&key.public().to_string()).expect("public"),
            key.public()
        );
        let signature = key.sign(b"manifest");
        assert_eq!(signature.verify(b"manifest").expect("valid"), key.public());
        assert!(signature.verify(b"manifesT").is_err());
        let mut forged = signature.clone();
        forged.signature.replace_range(
            0..2,
            if &forged.signature[0..2] == "00" {
                "01"
            } else {
                "00"
            },
        );
        assert!(forged.verify(b"manifest").is_err());
        let other = SecretKey::generate().expect("key");
        let mut swapped = signature;
        swapped.public_key = other.public().to_string();
        assert!(swapped.verify(b"manifest").is_err());
    }
}

/// Whose signatures a runner accepts.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    keys: Vec<PublicKey>,
    allow_unsigned: bool,
}

/// Who vouched for a bundle that passed [`Trust::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signer {
    /// A valid signature by a trusted key.
    Trusted(PublicKey),
    /// A valid signature by a key that is not trusted, accepted because unsigned bundles are.
    Untrusted(PublicKey),
    /// No signature, accepted because unsigned bundles are.
    Unsigned,
}

impl Trust {
    /// Trusts `keys`; unsigned (or untrusted) bundles are refused unless `allow_unsigned`.
    pub fn new(keys: Vec<PublicKey>, allow_unsigned: bool) -> Self {
        Trust {
            keys,
            allow_unsigned,
        }
    }

    /// The trusted keys.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Decides whether a manifest with this signature may be used. An invalid signature is refused
    /// whatever the policy: it means the bundle was changed.
    pub fn check(
        &self,
        manifest_bytes: &[u8],
        signature: Option<&Signature>,
    ) -> Result<Signer, Error> {
        let Some(signature) = signature else {
            return if self.allow_unsigned {
                Ok(Signer::Unsigned)
            } else {
                Err(Error::Signature(
                    "the bundle is not signed (sign it with `capsule build --sign KEY`, or pass --allow-unsigned)".into(),
                ))
            };
        };
        let key = signature.verify(manifest_bytes)?;
        if self.keys.contains(&key) {
            Ok(Signer::Trusted(key))
        } else if self.allow_unsigned {
            Ok(Signer::Untrusted(key))
        } else {
            Err(Error::Signature(format!(
                "signed by `{}` ({key}), which is not a trusted key (pass --trust with it, or --allow-unsigned)",
                key.key_id()
            )))
        }
    }
}
