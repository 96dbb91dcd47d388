//! Capsule's in-guest HTTP client, shared by both guests: one request (and its redirects) over
//! `wasi:http/outgoing-handler`, with JSON in and out so that the SDKs stay thin.
//!
//! The runner checks every request that reaches `wasi:http` against the task's `allowed_hosts`
//! (in its `send_request` hook) and refuses forbidden ones with `HTTP-request-denied`. Redirects
//! are followed here, one `wasi:http` request per hop, so every hop is checked by the host; the
//! guest itself enforces nothing and is not trusted to.
//!
//! Request: `{"method", "url", "headers": [[name, value]], "body" | "body_base64",
//! "follow_redirects"}` (default true).
//! Response: `{"status", "url", "headers", "body" | "body_base64", "redirected"}` (`body` when the
//! bytes are UTF-8). Failures are `[error_type, message, traceback]`; a refused host is
//! `host_denied`.
//!
//! The QuickJS guest calls [`fetch`]; the CPython guest links this crate as a static library and
//! calls [`capsule_http_fetch`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

/// Redirect hops followed before giving up.
const MAX_REDIRECTS: u32 = 10;
/// Largest response body handed to a task.
const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// Bytes per write or read on a body stream (wasmtime accepts up to 1 MiB per write).
const CHUNK: usize = 64 << 10;

/// Headers the host sets itself (`host`, from the URL) or that belong to one connection; wasi:http
/// refuses them, and clients such as urllib send them, so they are dropped here.
const HOP_BY_HOP: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
];

/// `[error_type, message, traceback]`, as the guests report failures.
pub type Failure = [String; 3];

fn failure(error_type: &str, message: String) -> Failure {
    [error_type.to_string(), message, String::new()]
}

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
    /// `false`: return a redirect response as it is (clients such as requests and httpx follow
    /// redirects themselves, each hop again through here).
    #[serde(default = "follow_by_default")]
    follow_redirects: bool,
}

fn follow_by_default() -> bool {
    true
}

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

/// An absolute http(s) URL, split as `wasi:http` wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Url {
    https: bool,
    authority: String,
    path_with_query: String,
}

impl Url {
    fn parse(text: &str) -> Result<Url, Failure> {
        let invalid = || failure("invalid_args", format!("`{text}` is not an absolute http(s) URL"));
        let (scheme, rest) = text.split_once("://").ok_or_else(invalid)?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "http" => false,
            "https" => true,
            _ => return Err(invalid()),
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty() || authority.contains('@') || authority.contains(char::is_whitespace) {
            return Err(invalid());
        }
        let path_with_query = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        Ok(Url {
            https,
            authority: authority.to_string(),
            path_with_query,
        })
    }

    /// Resolves a redirect's `Location` against this URL.
    fn join(&self, location: &str) -> Result<Url, Failure> {
        if location.contains("://") {
            return Url::parse(location);
        }
        let scheme = if self.https { "https" } else { "http" };
        if let Some(rest) = location.strip_prefix("//") {
            return Url::parse(&format!("{scheme}://{rest}"));
        }
        let path = if location.starts_with('/') {
            location.to_string()
        } else {
            let base = self.path_with_query.split('?').next().unwrap_or("/");
            let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{location}")
        };
        Url::parse(&format!("{scheme}://{}{path}", self.authority))
    }

    fn host(&self) -> &str {
        let authority = self.authority.as_str();
        if let Some(rest) = authority.strip_prefix('[') {
            return rest.split(']').next().unwrap_or_default();
        }
        authority.rsplit_once(':').map_or(authority, |(host, _)| host)
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority, self.path_with_query)
    }
}

/// Makes the request described by `request_json`, following redirects; returns the response
/// as JSON.
pub fn fetch(request_json: &str) -> Result<String, Failure> {
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
            return Err(failure("invalid_args", "give `body` or `body_base64`, not both".into()));
        }
    };
    let mut url = Url::parse(&request.url)?;
    for hop in 0..=MAX_REDIRECTS {
        let received = send(&method, &url, &request.headers, &body).map_err(|code| {
            let what = if hop == 0 { "request" } else { "redirect" };
            match code {
                SendError::Denied => failure(
                    "host_denied",
                    format!(
                        "{what} to `{}` denied: the task's allowed_hosts do not include it",
                        url.host()
                    ),
                ),
                SendError::Failed(message) => {
                    failure("task_error", format!("HTTP {method} {url} failed: {message}"))
                }
            }
        })?;
        let location = received
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("location"))
            .map(|(_, value)| value.clone());
        match (received.status, location) {
            (301 | 302 | 303 | 307 | 308, Some(location)) if request.follow_redirects => {
                url = url.join(&location)?;
                // As browsers do: 303, and 301/302 after a POST, continue as a GET without a body.
                let becomes_get = received.status == 303
                    || (matches!(received.status, 301 | 302) && method == "POST");
                if becomes_get {
                    if method != "HEAD" {
                        method = "GET".into();
                    }
                    body.clear();
                }
            }
            _ => {
                let (text, base64) = match String::from_utf8(received.body) {
                    Ok(text) => (Some(text), None),
                    Err(e) => (None, Some(BASE64.encode(e.as_bytes()))),
                };
                let response = FetchResponse {
                    status: received.status,
                    url: url.to_string(),
                    headers: received.headers,
                    body: text,
                    body_base64: base64,
                    redirected: hop > 0,
                };
                return serde_json::to_string(&response)
                    .map_err(|e| failure("internal", format!("cannot encode the response: {e}")));
            }
        }
    }
    Err(failure(
        "task_error",
        format!("more than {MAX_REDIRECTS} redirects, last to {url}"),
    ))
}

enum SendError {
    /// The host refused the request (`allowed_hosts`).
    Denied,
    Failed(String),
}

impl From<ErrorCode> for SendError {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::HttpRequestDenied => SendError::Denied,
            other => SendError::Failed(format!("{other:?}")),
        }
    }
}

struct Received {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn method_of(name: &str) -> Method {
    match name {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        other => Method::Other(other.to_string()),
    }
}

/// One `wasi:http` request, no redirects followed.
fn send(
    method: &str,
    url: &Url,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Received, SendError> {
    let failed = |what: &str| SendError::Failed(what.to_string());
    let mut fields: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.as_bytes().to_vec()))
        .filter(|(name, _)| !HOP_BY_HOP.contains(&name.as_str()))
        .collect();
    // The whole body is known: say how long it is rather than send it chunked.
    if !body.is_empty() && !fields.iter().any(|(name, _)| name == "content-length") {
        fields.push(("content-length".into(), body.len().to_string().into_bytes()));
    }
    let fields = Fields::from_list(&fields)
        .map_err(|e| SendError::Failed(format!("invalid request headers: {e:?}")))?;
    let request = OutgoingRequest::new(fields);
    request
        .set_method(&method_of(method))
        .map_err(|()| failed("invalid method"))?;
    let scheme = if url.https { Scheme::Https } else { Scheme::Http };
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| failed("invalid scheme"))?;
    request
        .set_authority(Some(&url.authority))
        .map_err(|()| failed("invalid authority"))?;
    request
        .set_path_with_query(Some(&url.path_with_query))
        .map_err(|()| failed("invalid path"))?;
    let outgoing = request.body().map_err(|()| failed("no request body"))?;
    let future = outgoing_handler::handle(request, None)?;
    {
        let stream = outgoing.write().map_err(|()| failed("no request body stream"))?;
        for chunk in body.chunks(CHUNK) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| SendError::Failed(format!("writing the request body: {e:?}")))?;
        }
    }
    OutgoingBody::finish(outgoing, None)?;
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(code.into()),
        Some(Err(())) | None => return Err(failed("no response")),
    };
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
        .collect();
    let incoming = response.consume().map_err(|()| failed("no response body"))?;
    let mut content = Vec::new();
    {
        let stream = incoming.stream().map_err(|()| failed("no response body stream"))?;
        loop {
            match stream.blocking_read(CHUNK as u64) {
                Ok(chunk) => {
                    content.extend_from_slice(&chunk);
                    if content.len() > MAX_RESPONSE_BYTES {
                        return Err(SendError::Failed(format!(
                            "the response body is larger than {MAX_RESPONSE_BYTES} bytes"
                        )));
                    }
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(SendError::Failed(format!(
                        "reading the response body: {}",
                        e.to_debug_string()
                    )));
                }
            }
        }
    }
    let _trailers = IncomingBody::finish(incoming);
    Ok(Received {
        status,
        headers,
        body: content,
    })
}

// ---- C ABI, for the CPython guest -----------------------------------------------------------

/// A string handed to C: free it with [`capsule_http_free`].
#[repr(C)]
pub struct CapsuleString {
    ptr: *mut u8,
    len: usize,
}

/// [`fetch`]'s outcome for C: `is_err` 0 with the response JSON in `strings[0]`, or 1 with
/// `[error_type, message, traceback]`.
#[repr(C)]
pub struct CapsuleFetchReturn {
    is_err: u8,
    strings: [CapsuleString; 3],
}

fn leak(text: String) -> CapsuleString {
    let bytes = text.into_bytes().into_boxed_slice();
    let len = bytes.len();
    CapsuleString {
        ptr: Box::into_raw(bytes).cast::<u8>(),
        len,
    }
}

/// # Safety
/// `request` must point to `len` readable bytes and `ret` to a writable `CapsuleFetchReturn`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn capsule_http_fetch(
    request: *const u8,
    len: usize,
    ret: *mut CapsuleFetchReturn,
) {
    // SAFETY: the caller passes a valid buffer.
    let bytes = unsafe { std::slice::from_raw_parts(request, len) };
    let outcome = match std::str::from_utf8(bytes) {
        Ok(text) => fetch(text),
        Err(_) => Err(failure("invalid_args", "the request is not UTF-8".into())),
    };
    let (is_err, [a, b, c]) = match outcome {
        Ok(json) => (0, [json, String::new(), String::new()]),
        Err(failure) => (1, failure),
    };
    // SAFETY: the caller passes a writable return area.
    unsafe {
        ret.write(CapsuleFetchReturn {
            is_err,
            strings: [leak(a), leak(b), leak(c)],
        });
    }
}

/// Frees a string from [`capsule_http_fetch`].
///
/// # Safety
/// `ptr`/`len` must come from one `CapsuleString` of [`capsule_http_fetch`], freed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn capsule_http_free(ptr: *mut u8, len: usize) {
    if !ptr.is_null() {
        // SAFETY: see above: it was a leaked `Box<[u8]>` of `len` bytes.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) });
    }
}

#[cfg(test)]
mod tests {
    use super::Url;

    #[test]
    fn urls_split_and_join_as_redirects_need() {
        let url = Url::parse("http://127.0.0.1:8080/a/b?x=1#frag").expect("url");
        assert_eq!(url.authority, "127.0.0.1:8080");
        assert_eq!(url.path_with_query, "/a/b?x=1");
        assert_eq!(url.host(), "127.0.0.1");
        assert_eq!(url.join("/c").expect("join").to_string(), "http://127.0.0.1:8080/c");
        assert_eq!(url.join("c").expect("join").to_string(), "http://127.0.0.1:8080/a/c");
        assert_eq!(
            url.join("https://localhost/x").expect("join").to_string(),
            "https://localhost/x"
        );
        assert_eq!(url.join("//other/y").expect("join").host(), "other");
        assert_eq!(Url::parse("https://[::1]:9/").expect("v6").host(), "::1");
        assert!(Url::parse("ftp://x/").is_err());
        assert!(Url::parse("http://user@x/").is_err());
    }
}
