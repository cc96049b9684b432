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
mod acl;
mod body;
mod cookie;
mod exchange;
mod headers;
mod pages;
mod route;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;

pub use accesslog::AccessLog;
pub(crate) use acl::{in_net, parse_net, CompiledAcl, CompiledCondition};
pub(crate) use pages::ErrorPages;

use crate::error::{Failure, ProxyError, Stage};
use crate::h1::{self, Limits};
use crate::io::{with_scratch, Interest, IoFail, Side};
use crate::listen::Drain;
use crate::snapshot::FrontendRt;
use crate::Shared;
use accesslog::LogEntry;

/// The client timeouts of a frontend, in milliseconds (they sit in every connection).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientTimeouts {
    client: u32,
    http_request: u32,
    keep_alive: u32,
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

impl ClientTimeouts {
    fn of(fe: Option<&FrontendRt>) -> ClientTimeouts {
        match fe {
            Some(f) => ClientTimeouts {
                client: millis(f.cfg.timeout_client),
                http_request: millis(f.cfg.timeout_http_request),
                keep_alive: millis(f.cfg.timeout_http_keep_alive),
            },
            None => ClientTimeouts { client: 50_000, http_request: 10_000, keep_alive: 10_000 },
        }
    }

    pub(crate) fn client(&self) -> Duration {
        Duration::from_millis(u64::from(self.client))
    }

    fn http_request(&self) -> Duration {
        Duration::from_millis(u64::from(self.http_request))
    }

    fn keep_alive(&self) -> Duration {
        Duration::from_millis(u64::from(self.keep_alive))
    }
}

/// One client connection: all a connection holds between requests.
pub(crate) struct Client {
    pub side: Side,
    pub peer: SocketAddr,
    pub bind: SocketAddr,
    /// Bytes received and not used yet: the rest of a head, a body's start, the next request.
    pub buf: Option<BytesMut>,
    pub timeouts: ClientTimeouts,
    accepted: Instant,
}

impl Client {
    /// An accepted connection, with its frontend's timeouts.
    pub(crate) fn new(stream: std::net::TcpStream, peer: SocketAddr, bind: SocketAddr, shared: &Shared) -> Client {
        let timeouts = ClientTimeouts::of(shared.snapshot.load().frontend_for(&bind));
        Client { side: Side::plain(stream), peer, bind, buf: None, timeouts, accepted: Instant::now() }
    }
}

/// A request head and when its first byte arrived.
pub(crate) struct Incoming {
    pub req: h1::Request,
    pub started: Instant,
    /// When the head was complete.
    pub parsed: Instant,
}

/// Serves one accepted connection until it closes.
pub(crate) async fn serve(client: &mut Client, shared: &Arc<Shared>, drain: &Drain) {
    let mut first = true;
    let error = loop {
        let incoming = match next_request(client, first, &shared.limits, drain).await {
            Ok(Some(incoming)) => incoming,
            Ok(None) => return,
            Err(error) => break error,
        };
        first = false;
        // Boxed: a request's state is large, and the connection waits between requests
        // holding only its socket and timer.
        let prepared = exchange::prepare(client, incoming, shared, drain);
        let keep_alive = Box::pin(exchange::run(client, prepared, drain)).await;
        if !keep_alive || drain.is_draining() {
            return;
        }
    };
    // Boxed too: the rare path should not grow every connection's task.
    Box::pin(refuse(client, shared, error)).await;
}

/// Reads the next request head. `Ok(None)`: the connection ends quietly (closed by the
/// client between requests, idle past `timeout http-keep-alive`, or the worker drains).
async fn next_request(
    client: &mut Client,
    first: bool,
    limits: &Limits,
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
    loop {
        if let Some(buf) = client.buf.as_mut() {
            match h1::parse_request(buf, limits) {
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
                client.buf.get_or_insert_with(|| BytesMut::with_capacity(n)).extend_from_slice(&scratch[..n]);
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

/// Answers a request that never got as far as routing (bad head, head timeout), then closes.
async fn refuse(client: &mut Client, shared: &Shared, error: ProxyError) {
    let snap = shared.snapshot.load();
    let fe = snap.frontend_for(&client.bind);
    if let Some(status) = error.status() {
        let page = error_page(status, fe, None);
        let bytes = respond(client, page, true).await;
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

/// A response the proxy makes itself (error pages, the stats page).
pub(crate) struct LocalResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl From<http::Response<Bytes>> for LocalResponse {
    fn from(resp: http::Response<Bytes>) -> Self {
        let (parts, body) = resp.into_parts();
        LocalResponse { status: parts.status, headers: parts.headers, body }
    }
}

/// The error page for `status`: the backend's errorfile, else the frontend's, else built in.
pub(crate) fn error_page(
    status: StatusCode,
    fe: Option<&FrontendRt>,
    backend: Option<&crate::snapshot::BackendRt>,
) -> LocalResponse {
    let layers: Vec<&ErrorPages> = backend.map(|b| &b.errors).into_iter().chain(fe.map(|f| &f.errors)).collect();
    let page = pages::error_page(status, &layers);
    LocalResponse { status: page.status, headers: page.headers, body: page.body }
}

/// Writes a local response; returns the body's length. Waits for the client to take it (up
/// to `timeout client`).
pub(crate) async fn respond(client: &mut Client, mut resp: LocalResponse, close: bool) -> u64 {
    resp.headers.insert(header::CONTENT_LENGTH, h1::length_value(resp.body.len() as u64));
    if close {
        resp.headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let mut head = Vec::with_capacity(256);
    h1::write_response_head(&mut head, resp.status, b"", &resp.headers);
    if client.side.send(&[&head, &resp.body]).is_err() {
        return 0;
    }
    let _ = client.side.flush(Some(client.timeouts.client())).await;
    resp.body.len() as u64
}

impl LogEntry {
    fn new(client: SocketAddr, start: Instant, frontend: &str, request_line: String) -> Box<LogEntry> {
        Box::new(LogEntry {
            client,
            accepted: SystemTime::now(),
            start,
            tq: 0,
            frontend: frontend.to_string(),
            backend: frontend.to_string(),
            server: "<NOSRV>".into(),
            tw: -1,
            tc: -1,
            tr: -1,
            status: 0,
            retries: 0,
            termination: *b"--",
            request_line,
        })
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
