//! `--http ADDR`: rmcp's streamable HTTP tower service, served by hyper (HTTP/1.1) on a
//! `TcpListener`. Each MCP session gets its own handler; all share the one worker.

use super::server::CapsuleServer;
use anyhow::{Context, bail};
use hyper::body::Incoming;
use rmcp::transport::StreamableHttpService;
use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;

/// The path MCP clients post to.
pub const MCP_PATH: &str = "/mcp";

/// `PORT` means `127.0.0.1:PORT`; `HOST:PORT` must be a loopback address unless `allow_remote`.
pub fn parse_address(text: &str, allow_remote: bool) -> anyhow::Result<SocketAddr> {
    let address: SocketAddr = match text.parse::<u16>() {
        Ok(port) => SocketAddr::from(([127, 0, 0, 1], port)),
        Err(_) => text.parse().with_context(|| {
            format!("invalid `--http` `{text}`: expected a port (`8000`) or `IP:PORT` (`127.0.0.1:8000`)")
        })?,
    };
    if !address.ip().is_loopback() && !allow_remote {
        bail!(
            "refusing `--http {text}`: it is not a loopback address, so other machines could run code \
             here; add `--allow-remote` if that is intended"
        );
    }
    Ok(address)
}

/// Serves `server` until the process is stopped.
pub async fn serve(
    server: CapsuleServer,
    address: SocketAddr,
    allow_remote: bool,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on `{address}`"))?;
    let local = listener
        .local_addr()
        .context("cannot read the listening address")?;
    // rmcp checks the `Host` header against loopback names (DNS rebinding); a server meant for
    // other machines is reached under names it cannot know.
    let mut config = StreamableHttpServerConfig::default();
    if allow_remote {
        config = config.disable_allowed_hosts();
    }
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    eprintln!("capsule mcp: streamable HTTP on http://{local}{MCP_PATH}");
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                eprintln!("capsule mcp: accept failed: {error}");
                continue;
            }
        };
        let service = service.clone();
        tokio::spawn(async move {
            let handler = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let mut service = service.clone();
                async move {
                    if request.uri().path() != MCP_PATH {
                        return Ok(not_found());
                    }
                    tower_service::Service::call(&mut service, request).await
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo(stream), handler);
            if let Err(error) = connection.await {
                eprintln!("capsule mcp: HTTP connection ended: {error}");
            }
        });
    }
}

type Body = http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible>;

fn not_found() -> hyper::Response<Body> {
    use http_body_util::BodyExt;
    let mut response = hyper::Response::new(
        http_body_util::Full::new(bytes::Bytes::from_static(
            b"not found: MCP is served at /mcp\n",
        ))
        .boxed(),
    );
    *response.status_mut() = hyper::StatusCode::NOT_FOUND;
    response
}

/// A tokio stream as hyper's I/O traits (what hyper-util's `TokioIo` does; not a dependency
/// here for these few lines).
struct TokioIo<T>(T);

impl<T: AsyncRead + Unpin> hyper::rt::Read for TokioIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        // Read into a scratch buffer and copy: no unsafe for initialized-memory bookkeeping.
        let mut scratch = [0u8; 16 * 1024];
        let room = buf.remaining().min(scratch.len());
        let mut read = ReadBuf::new(&mut scratch[..room]);
        match Pin::new(&mut self.0).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) => {
                buf.put_slice(read.filled());
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> hyper::rt::Write for TokioIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_address;

    #[test]
    fn a_port_alone_is_loopback_and_remote_needs_consent() {
        assert_eq!(
            parse_address("8123", false).ok().map(|a| a.to_string()),
            Some("127.0.0.1:8123".into())
        );
        assert!(parse_address("[::1]:8123", false).is_ok());
        let refused = parse_address("0.0.0.0:8123", false)
            .err()
            .map(|e| e.to_string());
        assert!(refused.unwrap_or_default().contains("--allow-remote"));
        assert!(parse_address("0.0.0.0:8123", true).is_ok());
        assert!(parse_address("localhost:x", false).is_err());
    }
}
