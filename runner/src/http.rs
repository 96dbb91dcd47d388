//! Outgoing HTTP: `wasi:http`, with every request checked against the task's `allowed_hosts`.
//!
//! A task has no sockets; its only way out is `wasi:http/outgoing-handler`. Each request reaches
//! the attempt's `send_request` hook (implemented on its [`SubTaskScope`]) before any connection is made: the host name is matched against
//! `allowed_hosts` (exact names, `*.suffix`, `*`), and a forbidden one is refused with
//! `HTTP-request-denied`, which the SDKs raise as `HostDeniedError` (`host_denied` when uncaught).
//! `wasi:http` does not follow redirects; the guests' HTTP client (guest-images/http-client)
//! follows them with one request per hop, so every hop comes through here. Every request, allowed
//! or not, is recorded for the envelope's `execution.host_requests`. Waiting for a response
//! counts against the task's deadline like any other wait in the host.

use crate::subtask::SubTaskScope;
use capsule_packager::policy::host_pattern_covers;
use serde::Serialize;
use std::future::Future;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

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

type Sent = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                ),
                wasmtime_wasi_http::Error,
            >,
        > + Send,
>;

/// The `wasi:http` hooks of an attempt are its scope: the task's name, its effective
/// `allowed_hosts` and the call's log.
impl WasiHttpHooks for SubTaskScope {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Sent {
        let host = request
            .uri()
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let allowed = self
            .policy
            .allowed_hosts
            .iter()
            .any(|pattern| host_pattern_covers(pattern, &host));
        let mut record = HostRequest {
            task_name: self.task.clone(),
            method: request.method().to_string(),
            url: request.uri().to_string(),
            host,
            allowed,
            status: None,
            error: None,
        };
        let log = self.log.clone();
        if !allowed {
            record.error = Some("denied by allowed_hosts".into());
            log.push_host_request(record);
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let sent = wasmtime_wasi_http::default_send_request(request, options).await;
            match &sent {
                Ok((response, _)) => record.status = Some(response.status().as_u16()),
                Err(error) => record.error = Some(error.to_string()),
            }
            log.push_host_request(record);
            let (response, io) = sent?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}
