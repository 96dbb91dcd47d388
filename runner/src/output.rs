//! Bounded capture of a guest's stdout/stderr: the first `cap` bytes are kept, the rest counted and
//! dropped. Writing never fails (a full buffer must not turn into a guest error or a trap). A
//! listener may also receive the kept output as it is written (the worker's `stream: true`), as
//! text whose multi-byte characters are never split between two calls.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Receives streamed output as it is written.
pub type Listener = Arc<dyn Fn(&str) + Send + Sync>;

#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    dropped: u64,
    listener: Option<Listener>,
    /// The start of a multi-byte character whose remaining bytes were not written yet.
    carry: Vec<u8>,
}

impl Buffer {
    /// Passes `data` (after any carried bytes) to the listener as text; an incomplete character at
    /// the end is carried to the next write, invalid bytes become U+FFFD.
    fn stream(&mut self, data: &[u8]) {
        let Some(listener) = self.listener.clone() else {
            return;
        };
        let mut pending = std::mem::take(&mut self.carry);
        pending.extend_from_slice(data);
        let mut text = String::new();
        let mut rest = pending.as_slice();
        loop {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    text.push_str(valid);
                    break;
                }
                Err(error) => {
                    let (valid, after) = rest.split_at(error.valid_up_to());
                    text.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match error.error_len() {
                        Some(bad) => {
                            text.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[bad..];
                        }
                        None => {
                            self.carry = after.to_vec();
                            break;
                        }
                    }
                }
            }
        }
        if !text.is_empty() {
            listener(&text);
        }
    }
}

/// A shared, bounded output buffer; clones write to the same buffer.
#[derive(Clone)]
pub struct CapturedOutput {
    buffer: Arc<Mutex<Buffer>>,
    cap: usize,
}

impl CapturedOutput {
    /// Keeps at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        CapturedOutput {
            buffer: Arc::default(),
            cap,
        }
    }

    fn push(&self, data: &[u8]) {
        let mut buffer = self
            .buffer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let room = self.cap.saturating_sub(buffer.bytes.len()).min(data.len());
        buffer.bytes.extend_from_slice(&data[..room]);
        buffer.dropped += (data.len() - room) as u64;
        buffer.stream(&data[..room]);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buffer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Streams what is written from now on to `listener` (`None`: stop; a carried partial
    /// character is then passed on, replaced).
    pub fn set_listener(&self, listener: Option<Listener>) {
        let mut buffer = self.lock();
        if let Some(old) = buffer.listener.take()
            && !buffer.carry.is_empty()
        {
            old(&String::from_utf8_lossy(&std::mem::take(&mut buffer.carry)));
        }
        buffer.listener = listener;
    }

    /// What was kept and how many bytes were dropped, leaving the buffer empty.
    pub fn take(&self) -> (String, u64) {
        let mut buffer = self.lock();
        let bytes = std::mem::take(&mut buffer.bytes);
        let dropped = std::mem::take(&mut buffer.dropped);
        (String::from_utf8_lossy(&bytes).into_owned(), dropped)
    }

    /// What was kept (lossy UTF-8) and how many bytes were dropped.
    pub fn contents(&self) -> (String, u64) {
        let buffer = self
            .buffer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (
            String::from_utf8_lossy(&buffer.bytes).into_owned(),
            buffer.dropped,
        )
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> Result<(), StreamError> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
