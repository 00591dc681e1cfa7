//! Answers to requests the HTTP/1.1 parser refuses, as problem+json. actix-http writes those
//! answers itself — a bare `400`, `431` or `408` with an empty body, before any of our code
//! runs — so this module owns the one place they can still be reached: the connection's write
//! side. [`ProblemIo`] wraps every accepted socket and replaces such a bodiless error response
//! with the same status carrying a problem document. Our own responses always have a body, so
//! a bodiless 400/408/431 can only be the parser's.
//! It also ends a connection once a `408` went out on it, whatever the request body's framing
//! (actix would wait for the rest of a stalled chunked body for ever), and ends an idle
//! keep-alive connection when the listener stops — only once its socket has nothing to read,
//! so a request that has arrived is served, not dropped.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::problem::ApiError;
use actix_web::rt::net::TcpStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection whose bodiless parser-error responses become problem+json.
#[derive(Debug)]
pub struct ProblemIo<T = TcpStream> {
    inner: T,
    /// A replacement response still being written, and how much of it was.
    pending: Option<(Vec<u8>, usize)>,
    /// A `408` went out: the connection ends, whatever the request body's framing. actix
    /// closes a connection after a `Connection: close` answer only once it has read the rest
    /// of the body, which a stalled chunked body never sends (D1); reads from here on see the
    /// end of the stream, so the dispatcher ends and the socket is closed.
    timed_out: bool,
    /// The waker of the last read that found nothing, woken when the `408` goes out (the
    /// stalled client will not wake it).
    read_waker: Option<std::task::Waker>,
    /// Nothing was read since the last response went out (or since the connection opened):
    /// the connection sits between requests.
    idle: bool,
    /// Resolves when the listener stops (after the drain): then an idle connection whose
    /// socket has nothing to read sees the end of the stream and closes. (actix's own
    /// graceful-shutdown signal also closed connections with a request just arrived.)
    stopping: Option<Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>>,
}

impl<T> ProblemIo<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            pending: None,
            timed_out: false,
            read_waker: None,
            idle: true,
            stopping: None,
        }
    }

    /// [`ProblemIo::new`], closing when idle once `stopping` is cancelled.
    pub fn closing_when_idle(inner: T, stopping: tokio_util::sync::CancellationToken) -> Self {
        Self {
            stopping: Some(Box::pin(stopping.cancelled_owned())),
            ..Self::new(inner)
        }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncWrite + Unpin> ProblemIo<T> {
    /// Write what is left of a replacement; `Ready(Ok)` once it is all out.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ProblemIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.timed_out {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                this.idle = false;
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                this.read_waker = Some(cx.waker().clone());
                // The socket was just found empty: a connection between requests ends here
                // once the listener has stopped (a request sent after this moment meets a
                // closing connection, as on any HTTP/1.1 server's idle close).
                let stopped = this.idle
                    && this
                        .stopping
                        .as_mut()
                        .is_some_and(|stopping| stopping.as_mut().poll(cx).is_ready());
                if stopped {
                    Poll::Ready(Ok(()))
                } else {
                    Poll::Pending
                }
            }
            read => read,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ProblemIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.poll_pending(cx)?.is_pending() {
            return Poll::Pending;
        }
        if buf.starts_with(b"HTTP/1.1 408 ") {
            this.timed_out = true;
            if let Some(waker) = this.read_waker.take() {
                waker.wake();
            }
        }
        this.idle = true;
        if let Some(replacement) = replacement_for(buf) {
            // The parser's response is taken in full; ours goes out in its place (now, or on
            // the flush or shutdown that follows).
            this.pending = Some((replacement, 0));
            let _ = this.poll_pending(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.poll_pending(cx)?.is_pending() {
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.poll_pending(cx)?.is_pending() {
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// The parser's errors this module rewrites; their status, type, title and detail come from
/// `problem`'s one table.
const PARSER_ERRORS: [ApiError; 3] = [
    ApiError::MalformedRequest,
    ApiError::HeadersTooLarge,
    ApiError::HeadTimeout,
];

/// If `buf` is a complete bodiless 400/431/408 response head, the problem+json response to send
/// instead.
fn replacement_for(buf: &[u8]) -> Option<Vec<u8>> {
    // Every response passes here: look at the status first (`HTTP/1.x NNN `) and only scan
    // heads that carry one of the parser's error codes.
    if !buf.starts_with(b"HTTP/1.") {
        return None;
    }
    let status: u16 = std::str::from_utf8(buf.get(9..12)?).ok()?.parse().ok()?;
    let refusal = PARSER_ERRORS
        .iter()
        .find(|refusal| refusal.row().status.as_u16() == status)?;
    let end = buf.windows(4).position(|window| window == b"\r\n\r\n")?;
    if end + 4 != buf.len() {
        return None; // something follows the head: a body, so not the parser's answer
    }
    let head = buf[..end].to_ascii_lowercase();
    let bodiless = contains(&head, b"\r\ncontent-length: 0") && !contains(&head, b"content-type:");
    if !bodiless {
        return None;
    }
    let body = serde_json::to_vec(&refusal.problem()).ok()?;
    let reason = match status {
        400 => "Bad Request",
        431 => "Request Header Fields Too Large",
        _ => "Request Timeout",
    };
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/problem+json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    Some(response)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parsers_bodiless_errors_become_problems_and_nothing_else_changes() {
        let bare = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\ndate: Sat, 28 Nov 2026 12:00:00 GMT\r\n\r\n";
        let replaced = String::from_utf8(replacement_for(bare).expect("rewritten")).expect("utf8");
        assert!(
            replaced.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{replaced}"
        );
        assert!(replaced.contains("content-type: application/problem+json"));
        let body = replaced.split("\r\n\r\n").nth(1).expect("body");
        let problem: approvd_proto::wire::Problem =
            serde_json::from_str(body).expect("a problem document");
        assert_eq!(problem.type_uri, "urn:approvd:problem:malformed-request");
        assert_eq!(problem.status, 400);

        let too_large =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        assert!(
            String::from_utf8(replacement_for(too_large).expect("rewritten"))
                .expect("utf8")
                .contains("headers-too-large")
        );

        // Our own responses carry bodies; other statuses and partial heads pass unchanged.
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\ncontent-type: application/problem+json\r\n\r\n";
        assert_eq!(replacement_for(ours), None);
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nx";
        assert_eq!(replacement_for(with_body), None);
        assert_eq!(
            replacement_for(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"),
            None
        );
        assert_eq!(
            replacement_for(b"HTTP/1.1 400 Bad Request\r\ncontent-len"),
            None
        );
    }
}
