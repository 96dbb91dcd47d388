//! Outgoing HTTP: the `http-fetch` import.
//!
//! A task has no sockets; its only way out is this import. The host parses the request, checks
//! the host name against the task's `allowed_hosts` (exact names, `*.suffix`, `*`) **before**
//! connecting, and follows redirects itself, checking every hop the same way, so a redirect from
//! an allowed host to a forbidden one is refused at that hop. Every request, allowed or not, is
//! recorded for the envelope's `execution.host_requests`; a refused one fails the call with
//! `host_denied`. The wait counts against the task's deadline.

use crate::instance::{AttemptState, TaskError};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use capsule_packager::policy::host_pattern_covers;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use wasmtime::StoreContextMut;
use wasmtime::component::Linker;

/// Redirect hops followed before giving up (browsers use 20, curl 50; tasks need few).
const MAX_REDIRECTS: u32 = 10;
/// Largest response body handed to a task.
const MAX_RESPONSE_BYTES: u64 = 16 << 20;

/// What the guest asks for.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchRequest {
    #[serde(default)]
    method: Option<String>,
    url: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_base64: Option<String>,
}

/// What the guest gets back.
#[derive(Serialize)]
struct FetchResponse {
    status: u16,
    url: String,
    headers: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_base64: Option<String>,
    redirected: bool,
}

/// One request as listed in `execution.host_requests`.
#[derive(Clone, Debug, Serialize)]
pub struct HostRequest {
    /// The task that made it.
    pub task_name: String,
    /// HTTP method.
    pub method: String,
    /// Full URL.
    pub url: String,
    /// Host name checked against `allowed_hosts`.
    pub host: String,
    /// Whether the policy allowed it.
    pub allowed: bool,
    /// Response status, when a response came back.
    pub status: Option<u16>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// Defines `http-fetch` in `linker`.
pub fn add_to_linker(linker: &mut Linker<AttemptState>) -> wasmtime::Result<()> {
    linker.root().func_wrap_async(
        "http-fetch",
        |mut store: StoreContextMut<'_, AttemptState>, (request,): (String,)| {
            Box::new(async move { Ok((fetch(&mut store, &request).await,)) })
        },
    )
}

fn failure(error_type: &str, message: String) -> TaskError {
    TaskError {
        error_type: error_type.to_string(),
        message,
        traceback: String::new(),
    }
}

/// Runs one `http-fetch` call for the task in `store`.
async fn fetch(
    store: &mut StoreContextMut<'_, AttemptState>,
    request_json: &str,
) -> Result<String, TaskError> {
    let scope = store.data().scope.clone();
    let request: FetchRequest = serde_json::from_str(request_json)
        .map_err(|e| failure("invalid_args", format!("not a valid fetch request: {e}")))?;
    let mut method = request
        .method
        .as_deref()
        .unwrap_or("GET")
        .to_ascii_uppercase();
    let mut body = match (&request.body, &request.body_base64) {
        (Some(text), None) => text.clone().into_bytes(),
        (None, Some(encoded)) => BASE64
            .decode(encoded)
            .map_err(|e| failure("invalid_args", format!("`body_base64` is not base64: {e}")))?,
        (None, None) => Vec::new(),
        (Some(_), Some(_)) => {
            return Err(failure(
                "invalid_args",
                "give `body` or `body_base64`, not both".into(),
            ));
        }
    };
    let mut url = parse_url(&request.url)?;
    let allowed_hosts = &scope.policy.allowed_hosts;
    for hop in 0..=MAX_REDIRECTS {
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let allowed = allowed_hosts.iter().any(|p| host_pattern_covers(p, &host));
        let mut record = HostRequest {
            task_name: scope.task.clone(),
            method: method.clone(),
            url: url.to_string(),
            host: host.clone(),
            allowed,
            status: None,
            error: None,
        };
        if !allowed {
            record.error = Some("denied by allowed_hosts".into());
            scope.log.push_host_request(record);
            let declared = if allowed_hosts.is_empty() {
                "none".to_string()
            } else {
                allowed_hosts.join(", ")
            };
            let what = if hop == 0 { "request" } else { "redirect" };
            return Err(failure(
                "host_denied",
                format!(
                    "{what} to `{host}` denied: task `{}` allows hosts: {declared}",
                    scope.task
                ),
            ));
        }
        let left = scope.deadline.saturating_duration_since(Instant::now());
        let sent = send(&method, &url, &request.headers, &body, left).await;
        let response = match sent {
            Ok(response) => response,
            Err(message) => {
                record.error = Some(message.clone());
                scope.log.push_host_request(record);
                return Err(failure(
                    "task_error",
                    format!("HTTP {method} {url} failed: {message}"),
                ));
            }
        };
        record.status = Some(response.status);
        scope.log.push_host_request(record);
        let location = response
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("location"))
            .map(|(_, value)| value.clone());
        match (response.status, location) {
            (301 | 302 | 303 | 307 | 308, Some(location)) => {
                url = url.join(&location).map_err(|e| {
                    failure(
                        "task_error",
                        format!("redirect to `{location}` is not a valid URL: {e}"),
                    )
                })?;
                check_scheme(&url)?;
                // As browsers do: 303, and 301/302 after a POST, continue as a GET without a body.
                if response.status == 303
                    || (response.status != 307 && response.status != 308 && method == "POST")
                {
                    if method != "HEAD" {
                        method = "GET".into();
                    }
                    body.clear();
                }
            }
            _ => {
                let (text, base64) = match String::from_utf8(response.body) {
                    Ok(text) => (Some(text), None),
                    Err(e) => (None, Some(BASE64.encode(e.as_bytes()))),
                };
                let answer = FetchResponse {
                    status: response.status,
                    url: url.to_string(),
                    headers: response.headers,
                    body: text,
                    body_base64: base64,
                    redirected: hop > 0,
                };
                return serde_json::to_string(&answer)
                    .map_err(|e| failure("internal", format!("cannot encode the response: {e}")));
            }
        }
    }
    Err(failure(
        "task_error",
        format!("more than {MAX_REDIRECTS} redirects, last to {url}"),
    ))
}

fn parse_url(text: &str) -> Result<url::Url, TaskError> {
    let url = url::Url::parse(text)
        .map_err(|e| failure("invalid_args", format!("`{text}` is not a valid URL: {e}")))?;
    check_scheme(&url)?;
    Ok(url)
}

fn check_scheme(url: &url::Url) -> Result<(), TaskError> {
    match url.scheme() {
        "http" | "https" if url.host_str().is_some() => Ok(()),
        _ => Err(failure(
            "invalid_args",
            format!("`{url}` is not an http(s) URL with a host"),
        )),
    }
}

struct Received {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// One request, without following redirects, within `left`.
async fn send(
    method: &str,
    url: &url::Url,
    headers: &[(String, String)],
    body: &[u8],
    left: Duration,
) -> Result<Received, String> {
    if left.is_zero() {
        return Err("no time left before the task's deadline".into());
    }
    let mut builder = ureq::http::Request::builder()
        .method(method)
        .uri(url.as_str());
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    let request = builder.body(body.to_vec()).map_err(|e| e.to_string())?;
    // ureq blocks; the task's future waits on the blocking pool (and is dropped at the deadline).
    let joined = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .max_redirects_will_error(false)
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(left))
            .build()
            .into();
        let mut response = agent.run(request).map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(|e| e.to_string())?;
        Ok(Received {
            status,
            headers,
            body,
        })
    })
    .await;
    joined.map_err(|e| format!("the request thread failed: {e}"))?
}
