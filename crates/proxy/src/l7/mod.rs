//! The L7 (HTTP/1.1) request path: one task per client connection reads a request head,
//! routes it, forwards it with retries and streams the answer back, then waits for the next.
//!
//! The client timeouts are HAProxy's:
//! - before the first request, no complete head within `timeout http-request` of the accept
//!   gets 408 and a close;
//! - between requests, no byte for `timeout http-keep-alive` (or `timeout http-request` if
//!   shorter) closes the connection quietly;
//! - once a request has begun, its head must be in within `timeout http-request` of its first
//!   byte, however slowly it trickles: 408 and a close;
//! - while the request body is read and while the response is written, no progress for
//!   `timeout client` ends the exchange (a body cut short this way is answered 408);
//! - while the server works, and in tunnels (`timeout tunnel`), no client timer runs.
//!
//! A waiting connection holds no buffer (see [`crate::io`]); the state of a request in
//! progress lives in a future of its own, allocated per request, so the connection's task
//! stays small between requests.
mod accesslog;
mod body;
mod client;
mod cookie;
mod exchange;
mod headers;
mod route;

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;

pub use accesslog::AccessLog;
pub(crate) use accesslog::LogEntry;
pub(crate) use client::{
    after_response, error_page, monitor_answer, ms, redirect_answer, request_rules, response_rules, Client,
    LocalResponse, RuleAnswer,
};
use client::{respond, Incoming};
pub(crate) use headers::{request_to_server, server_reuse, strip_hop_by_hop};
pub(crate) use route::{hash_key, persistence, set_cookie, source_key, stick_store, CookieSeen};

use crate::drain::Drain;
use crate::error::{Failure, ProxyError, Stage};
use crate::h1;
use crate::io::{with_scratch, Interest, IoFail};
use crate::Shared;

/// How an HTTP connection ended on the HTTP/1 path.
pub(crate) enum Served {
    Done,
    /// The client speaks HTTP/2 (ALPN, a `proto h2` bind, or the preface, whose bytes read so
    /// far are given): the caller hands the connection to the HTTP/2 path.
    Http2(Option<BytesMut>),
}

/// Serves one accepted connection until it closes, or says it speaks HTTP/2.
pub(crate) async fn serve(client: &mut Client, shared: &Arc<Shared>, drain: &Drain) -> Served {
    // Over TLS, ALPN tells the protocol: the handshake is done first (under the first
    // request's `timeout http-request`). A `proto h2` bind speaks HTTP/2 from the start.
    if client.side.is_tls() {
        // Bytes that came with a PROXY protocol header are the start of the handshake.
        if let Some(early) = client.buf.take() {
            if client.side.feed_tls(&early).is_err() {
                return Served::Done;
            }
        }
        if client.side.handshake(client.accepted + client.timeouts.http_request()).await.is_err() {
            return Served::Done;
        }
        client.note_tls();
    }
    if client.h2_bind || client.tls.as_deref().is_some_and(|t| t.alpn.as_deref() == Some("h2")) {
        return Served::Http2(client.buf.take());
    }
    let mut first = true;
    let error = loop {
        let incoming = match next_request(client, first, shared, drain).await {
            Ok(Some(incoming)) => incoming,
            // A clear-text client in prior knowledge: its first bytes are HTTP/2's preface.
            Ok(None) if first && client.buf.as_deref().is_some_and(|b| b.starts_with(h1::H2_PREFACE)) => {
                return Served::Http2(client.buf.take());
            }
            Ok(None) => {
                if first {
                    // Closed before its first request: a failed request, as HAProxy counts it.
                    client.count_failed_request();
                }
                return Served::Done;
            }
            Err(error) => {
                if first {
                    client.count_failed_request();
                }
                break error;
            }
        };
        if first {
            client.note_tls();
        }
        first = false;
        // Boxed: a request's state is large, and the connection waits between requests
        // holding only its socket and timer.
        let prepared = exchange::prepare(client, incoming, shared, drain);
        let keep_alive = Box::pin(exchange::run(client, prepared, drain)).await;
        if !keep_alive || drain.is_draining() {
            return Served::Done;
        }
    };
    // Boxed too: the rare path should not grow every connection's task.
    Box::pin(refuse(client, shared, error)).await;
    Served::Done
}

/// Reads the next request head. `Ok(None)`: the connection ends quietly (closed by the
/// client between requests, idle past `timeout http-keep-alive`, or the worker drains).
async fn next_request(
    client: &mut Client,
    first: bool,
    shared: &Shared,
    drain: &Drain,
) -> Result<Option<Incoming>, ProxyError> {
    let t = client.timeouts;
    let accepted = client.accepted;
    let mut started = client.buf.as_ref().map(|_| Instant::now());
    let mut deadline = match (first, started) {
        (_, Some(at)) => at + t.http_request(),
        (true, None) => accepted + t.http_request(),
        (false, None) => Instant::now() + t.keep_alive().min(t.http_request()),
    };
    let failed = |failure| ProxyError::new(failure, Stage::Request);
    let limits = shared.snapshot.load().limits;
    // A head trickling in is parsed again only when new bytes may have ended it: parsing it
    // from the start at every byte would cost its length squared.
    let mut parse = true;
    loop {
        if let Some(buf) = client.buf.as_mut().filter(|_| parse) {
            // HTTP/2's preface on a first request: handed to the HTTP/2 path once it is whole.
            if first && h1::may_be_h2_preface(buf) {
                if buf.len() >= h1::H2_PREFACE.len() {
                    return Ok(None);
                }
                parse = false;
                continue;
            }
            match h1::parse_request(buf, &limits) {
                Ok(Some(req)) => {
                    if buf.is_empty() {
                        client.buf = None;
                    }
                    let parsed = Instant::now();
                    return Ok(Some(Incoming { req, started: started.unwrap_or(parsed), parsed }));
                }
                Ok(None) => {}
                Err(e) => return Err(failed(Failure::BadRequest(e))),
            }
        }
        let read = with_scratch(|scratch| match client.side.try_read(scratch) {
            Ok(0) => Ok(Some(0)),
            Ok(n) => {
                let buf = client.buf.get_or_insert_with(|| BytesMut::with_capacity(n));
                let from = buf.len();
                buf.extend_from_slice(&scratch[..n]);
                parse = from == 0 || may_end_head(buf, from) || buf.len() >= limits.max_head;
                Ok(Some(n))
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted) => Ok(None),
            Err(e) => Err(e),
        });
        match read {
            Ok(Some(0)) if client.buf.is_none() => return Ok(None),
            Ok(Some(0)) | Err(_) => return Err(failed(Failure::ClientClosed)),
            Ok(Some(_)) => {
                if started.is_none() {
                    let now = Instant::now();
                    started = Some(now);
                    if !first {
                        deadline = now + t.http_request();
                    }
                }
                continue;
            }
            Ok(None) => {}
        }
        // Between requests the worker's drain may end the wait.
        let stop = started.is_none().then(|| drain.flag());
        match client.side.ready(Interest::Read, Some(deadline), stop).await {
            Ok(()) => {}
            Err(IoFail::TimedOut) if first || started.is_some() => return Err(failed(Failure::RequestTimeout)),
            Err(_) => return Ok(None),
        }
    }
}

/// Whether bytes appended to `buf` at `from` may have completed a head (an empty line:
/// `\n\n` or `\n\r\n`, possibly begun before them).
fn may_end_head(buf: &[u8], from: usize) -> bool {
    let tail = &buf[from.saturating_sub(2)..];
    tail.iter()
        .enumerate()
        .any(|(i, b)| *b == b'\n' && (tail.get(i + 1) == Some(&b'\n') || tail.get(i + 1..i + 3) == Some(&b"\r\n"[..])))
}

/// Answers a request that never got as far as routing (bad head, head timeout), then closes.
async fn refuse(client: &mut Client, shared: &Shared, error: ProxyError) {
    let snap = shared.snapshot.load();
    let fe = snap.frontend_for(&client.bind);
    if let Some(status) = error.status() {
        let page = error_page(status, fe, None);
        let bytes = respond(client, page, false, true).await;
        if client.buf.is_some() {
            client.side.linger(exchange::LINGER).await;
        }
        if let Some(fe) = fe.filter(|f| shared.log_enabled(f)) {
            // A connection that sent nothing is not logged under `option dontlognull`.
            let silent = error.failure == Failure::RequestTimeout && client.buf.is_none();
            if !(silent && fe.cfg.dontlognull) {
                let mut entry = LogEntry::new(client.peer, client.accepted, &fe.cfg.name, "<BADREQ>".into());
                entry.status = status.as_u16();
                entry.termination = error.termination();
                shared.access_log.write(&entry.format(bytes));
            }
        }
    }
    tracing::debug!(peer = %client.peer, "request refused: {error}");
}

#[cfg(test)]
mod tests {
    use super::may_end_head;

    #[test]
    fn the_end_of_a_head_is_seen_whichever_read_brings_it() {
        for head in [&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], b"GET / HTTP/1.0\n\n"] {
            // `end` bytes are in, of which those from `from` just arrived: the head is whole
            // only at the last byte, and that is seen whatever the split.
            for end in 1..=head.len() {
                for from in 0..end {
                    let whole = end == head.len();
                    assert_eq!(may_end_head(&head[..end], from), whole, "end {end} from {from}");
                }
            }
        }
    }
}
