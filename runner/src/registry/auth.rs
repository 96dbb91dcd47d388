//! Registry credentials: `CAPSULE_REGISTRY_TOKEN` (bearer) or `CAPSULE_REGISTRY_USERNAME` +
//! `CAPSULE_REGISTRY_PASSWORD` (basic) from the environment, else the entry for the registry in
//! Docker's `config.json` (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`: `auth`, or
//! `username` + `password`, or `registrytoken`), else anonymous. Credential helpers
//! (`credsStore`, `credHelpers`) are not run.

use crate::Error;
use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;

/// The credentials to present to `registry` (`HOST[:PORT]`).
pub fn credentials(registry: &str) -> Result<RegistryAuth, Error> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(token) = var("CAPSULE_REGISTRY_TOKEN") {
        return Ok(RegistryAuth::Bearer(token));
    }
    match (
        var("CAPSULE_REGISTRY_USERNAME"),
        var("CAPSULE_REGISTRY_PASSWORD"),
    ) {
        (Some(user), Some(password)) => return Ok(RegistryAuth::Basic(user, password)),
        (Some(_), None) | (None, Some(_)) => {
            return Err(Error::Usage(
                "set both CAPSULE_REGISTRY_USERNAME and CAPSULE_REGISTRY_PASSWORD, or neither"
                    .into(),
            ));
        }
        (None, None) => {}
    }
    match docker_config_path() {
        Some(path) if path.is_file() => from_docker_config(&path, registry),
        _ => Ok(RegistryAuth::Anonymous),
    }
}

fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json"))
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, DockerAuth>,
}

#[derive(Deserialize)]
struct DockerAuth {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    registrytoken: Option<String>,
}

fn from_docker_config(path: &std::path::Path, registry: &str) -> Result<RegistryAuth, Error> {
    let bad = |why: String| Error::Usage(format!("`{}`: {why}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let config: DockerConfig =
        serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    // Keys are written as `host`, `https://host` or `https://host/v1/`.
    let entry = config.auths.iter().find_map(|(key, auth)| {
        let host = key
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default();
        (host == registry).then_some(auth)
    });
    let Some(entry) = entry else {
        return Ok(RegistryAuth::Anonymous);
    };
    if let Some(token) = &entry.registrytoken {
        return Ok(RegistryAuth::Bearer(token.clone()));
    }
    if let (Some(user), Some(password)) = (&entry.username, &entry.password) {
        return Ok(RegistryAuth::Basic(user.clone(), password.clone()));
    }
    if let Some(auth) = &entry.auth {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                bad(format!(
                    "`auths.{registry}.auth` is not base64 of USER:PASSWORD"
                ))
            })?;
        let (user, password) = decoded.split_once(':').ok_or_else(|| {
            bad(format!(
                "`auths.{registry}.auth` is not base64 of USER:PASSWORD"
            ))
        })?;
        return Ok(RegistryAuth::Basic(user.into(), password.into()));
    }
    Ok(RegistryAuth::Anonymous)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_config_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("ci:s3cret");
        std::fs::write(
            &path,
            format!(
                r#"{{"auths": {{"https://127.0.0.1:5000/v1/": {{"auth": "{auth}"}},
                   "other.example": {{"registrytoken": "tok"}}}}}}"#
            ),
        )
        .expect("write");
        match from_docker_config(&path, "127.0.0.1:5000").expect("read") {
            RegistryAuth::Basic(user, password) => {
                assert_eq!((user.as_str(), password.as_str()), ("ci", "s3cret"))
            }
            other => panic!("expected basic auth, got {other:?}"),
        }
        assert!(matches!(
            from_docker_config(&path, "other.example").expect("read"),
            RegistryAuth::Bearer(_)
        ));
        assert!(matches!(
            from_docker_config(&path, "elsewhere:1").expect("read"),
            RegistryAuth::Anonymous
        ));
        std::fs::write(&path, r#"{"auths": {"h:1": {"auth": "!!"}}}"#).expect("write");
        let error = from_docker_config(&path, "h:1").expect_err("bad auth");
        assert!(error.to_string().contains("auths.h:1.auth"), "{error}");
    }
}
