//! A client connection as the request path holds it, and the answers the proxy writes itself.
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;

use super::accesslog::LogEntry;
use crate::h1;
use crate::io::Side;
use crate::snapshot::FrontendRt;

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

    pub(super) fn http_request(&self) -> Duration {
        Duration::from_millis(u64::from(self.http_request))
    }

    pub(crate) fn keep_alive(&self) -> Duration {
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
    pub(super) accepted: Instant,
    /// What the TLS handshake negotiated, read once at the first request (`ssl` binds).
    pub(crate) tls: Option<Box<fulcrum_tls::Negotiated>>,
    /// The bind says `proto h2`: HTTP/2 from the first byte.
    pub(crate) h2_bind: bool,
    /// What `tcp-request connection track-sc*` rules track for the connection's life.
    pub(crate) session: Option<std::sync::Arc<crate::live::Tracking>>,
}

impl Client {
    /// `accept-proxy`: reads the PROXY protocol header the connection starts with (within
    /// `timeout client`); its source address becomes the client's, and what follows it is
    /// kept for the first request. False (the connection is to be closed) when none comes.
    pub(crate) async fn read_proxy_header(&mut self) -> bool {
        use crate::proxy_protocol::{parse, Incoming};
        let deadline = Instant::now() + self.timeouts.client();
        let mut got = BytesMut::new();
        loop {
            match parse(&got) {
                Incoming::Partial => {}
                Incoming::Header { len, source } => {
                    let _ = got.split_to(len.min(got.len()));
                    if let Some(source) = source {
                        self.peer = source;
                    }
                    if !got.is_empty() {
                        self.buf = Some(got);
                    }
                    return true;
                }
                Incoming::Invalid(why) => {
                    tracing::debug!(peer = %self.peer, "accept-proxy: {why}");
                    return false;
                }
            }
            // Below TLS, if the bind has it: the header is in the clear.
            let read = self.side.read_raw_with(Some(deadline), |bytes| {
                got.extend_from_slice(bytes);
                !bytes.is_empty()
            });
            match read.await {
                Ok(true) => {}
                _ => return false,
            }
        }
    }

    /// Notes what the TLS handshake negotiated (nothing on a plain connection), once it is done.
    pub(super) fn note_tls(&mut self) {
        if self.tls.is_none() {
            self.tls = self.side.tls_session().map(|t| Box::new(fulcrum_tls::Negotiated::of(t)));
        }
    }

    /// Runs the frontend's `tcp-request connection` rules on the new connection: whether they
    /// let it in. What their `track-sc*` rules track stays with the connection.
    pub(crate) fn connection_rules(&mut self, shared: &crate::Shared) -> bool {
        let snap = shared.snapshot.load();
        if snap.frontend_for(&self.bind).is_none_or(|f| f.tcp_connection.is_empty()) {
            return true;
        }
        let snap = arc_swap::Guard::into_inner(snap);
        let Some(fe) = snap.frontend_for(&self.bind) else { return true };
        let facts = crate::snapshot::Facts::connection(self.peer, Some(self.bind));
        let mut vars = crate::snapshot::rules::Vars::in_snapshot(&snap);
        if !fe.tcp_rules(false, &facts, &mut vars, false) {
            return false;
        }
        vars.count_session();
        self.session = vars.into_session();
        true
    }

    /// A connection whose first request never came whole (closed, timed out, malformed): a
    /// request and an error in the entries it tracks, as HAProxy counts them.
    pub(super) fn count_failed_request(&self) {
        let Some(session) = &self.session else { return };
        let (now, ms) = (Instant::now(), crate::live::clock_ms());
        for (table, key) in session.0.iter().flatten() {
            table.change(key.clone(), now, |c| {
                c.count_request(&table.layout, ms);
                c.count_error(&table.layout, ms);
            });
        }
    }

    /// The connection got its slots under `maxconn`: its first request's time starts now.
    pub(crate) fn admitted(&mut self) {
        self.accepted = Instant::now();
    }

    /// An accepted connection, with its frontend's timeouts.
    pub(crate) fn new(
        stream: std::net::TcpStream,
        peer: SocketAddr,
        bind: SocketAddr,
        fe: Option<&FrontendRt>,
    ) -> Client {
        Self::on(Side::plain(stream), peer, bind, fe)
    }

    /// An accepted connection on an `ssl` bind: TLS is spoken from the first byte.
    pub(crate) fn with_tls(
        stream: std::net::TcpStream,
        tls: rustls::ServerConnection,
        peer: SocketAddr,
        bind: SocketAddr,
        fe: Option<&FrontendRt>,
    ) -> Client {
        Self::on(Side::tls(stream, tls), peer, bind, fe)
    }

    fn on(side: Side, peer: SocketAddr, bind: SocketAddr, fe: Option<&FrontendRt>) -> Client {
        Client {
            side,
            peer,
            bind,
            buf: None,
            timeouts: ClientTimeouts::of(fe),
            accepted: Instant::now(),
            tls: None,
            h2_bind: fe.is_some_and(|f| f.cfg.h2_binds.contains(&bind)),
            session: None,
        }
    }
}

/// A request head and when its first byte arrived.
pub(crate) struct Incoming {
    pub req: h1::Request,
    pub started: Instant,
    /// When the head was complete.
    pub parsed: Instant,
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
    let layers: Vec<&crate::snapshot::ErrorPages> =
        backend.map(|b| &b.errors).into_iter().chain(fe.map(|f| &f.errors)).collect();
    let page = crate::snapshot::error_page(status, &layers);
    LocalResponse { status: page.status, headers: page.headers, body: page.body }
}

/// A redirect made here (`redirect`, `http-request redirect`): its Location, no caching, and
/// the cookie it sets, as HAProxy answers.
pub(crate) fn redirect_answer(code: u16, location: String, cookie: Option<&str>) -> LocalResponse {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::try_from(location) {
        headers.insert(header::LOCATION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::try_from(c).ok()) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::FOUND);
    LocalResponse { status, headers, body: Bytes::new() }
}

/// `monitor-uri`'s answer, as HAProxy makes it: 200 with a small page when the service is up,
/// the 503 error page when a `monitor fail` condition holds.
pub(crate) fn monitor_answer(up: bool, fe: &FrontendRt) -> LocalResponse {
    if !up {
        return error_page(StatusCode::SERVICE_UNAVAILABLE, Some(fe), None);
    }
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    let body = Bytes::from_static(b"<html><body><h1>200 OK</h1>\nService ready.\n</body></html>\n");
    LocalResponse { status: StatusCode::OK, headers, body }
}

/// An answer a rule made in the server's place, with the termination state HAProxy logs for
/// it: `PR` for a deny (the proxy blocked the request), `LR` for a `return` or a redirect
/// (handled locally).
pub(crate) struct RuleAnswer {
    pub page: LocalResponse,
    pub termination: [u8; 2],
    /// `tarpit`: how long the request is held before the answer.
    pub delay: Option<std::time::Duration>,
}

/// What an `http-request` / `http-response` verdict answers in the server's place, if it
/// answers: `deny`'s error page, `return`'s answer, `redirect`'s.
pub(crate) fn rule_answer(
    verdict: crate::snapshot::rules::Verdict,
    fe: &FrontendRt,
    backend: Option<&crate::snapshot::BackendRt>,
) -> Option<RuleAnswer> {
    use crate::snapshot::rules::Verdict;
    let mut delay = None;
    let (page, termination) = match verdict {
        Verdict::Continue => return None,
        Verdict::Deny(status) => {
            (error_page(StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN), Some(fe), backend), *b"PR")
        }
        Verdict::Return { status, content_type, body } => {
            let mut headers = HeaderMap::new();
            if let Some(ct) = content_type.and_then(|c| HeaderValue::try_from(c).ok()) {
                headers.insert(header::CONTENT_TYPE, ct);
            }
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            (LocalResponse { status, headers, body: Bytes::from(body) }, *b"LR")
        }
        Verdict::Redirect { code, location, cookie } => (redirect_answer(code, location, cookie.as_deref()), *b"LR"),
        Verdict::Tarpit(status) => {
            // Held `timeout tarpit` (else `timeout connect`), then the error page; logged `PT`.
            delay = backend.map_or(fe.cfg.timeout_tarpit, |b| b.cfg.timeout_tarpit);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (error_page(status, Some(fe), backend), *b"PT")
        }
        Verdict::Auth(realm) => {
            // HAProxy's 401 page, with the realm to log in to (the section's name by default).
            let mut page = error_page(StatusCode::UNAUTHORIZED, Some(fe), backend);
            let realm = realm.unwrap_or_else(|| backend.map_or(&fe.cfg.name, |b| &b.cfg.name).clone());
            let challenge = format!("Basic realm=\"{}\"", realm.replace('"', ""));
            if let Ok(v) = HeaderValue::try_from(challenge) {
                page.headers.insert(header::WWW_AUTHENTICATE, v);
            }
            (page, *b"PR")
        }
    };
    Some(RuleAnswer { page, termination, delay })
}

/// Runs the `http-request` rules of the frontend (`backend` None) or of the backend on a
/// request from `client` to `bind`; the answer to send in the server's place, if one answers.
pub(crate) fn request_rules(
    fe: &FrontendRt,
    backend: Option<&crate::snapshot::BackendRt>,
    (client, bind, tls): (SocketAddr, SocketAddr, Option<&fulcrum_tls::Negotiated>),
    req: &mut http::request::Parts,
    vars: &mut crate::snapshot::rules::Vars,
) -> Option<RuleAnswer> {
    let (rules, acls, table) = match backend {
        Some(b) => (&b.http_request, &b.acls, &b.table),
        None => (&fe.http_request, &fe.acls, &fe.table),
    };
    if rules.is_empty() {
        return None;
    }
    vars.own.clone_from(table);
    let backend_name = backend.map(|b| b.cfg.name.as_str());
    let mut ctx =
        crate::snapshot::rules::Ctx { client, bind, tls, frontend: &fe.cfg.name, backend: backend_name, vars };
    let verdict = rules.run_request(acls, req, &mut ctx);
    if matches!(verdict, crate::snapshot::rules::Verdict::Deny(_) | crate::snapshot::rules::Verdict::Tarpit(_)) {
        // A denied request is an error of the client's, as HAProxy counts it.
        ctx.vars.count_error();
    }
    rule_answer(verdict, fe, backend)
}

/// Runs the backend's `http-response` rules, then the frontend's, on a server's answer to
/// `req`; the answer to send instead, if one answers.
pub(crate) fn response_rules(
    fe: &FrontendRt,
    backend: &crate::snapshot::BackendRt,
    (client, bind, tls): (SocketAddr, SocketAddr, Option<&fulcrum_tls::Negotiated>),
    req: &http::request::Parts,
    (status, headers): (&mut StatusCode, &mut HeaderMap),
    vars: &mut crate::snapshot::rules::Vars,
) -> Option<RuleAnswer> {
    if backend.http_response.is_empty() && fe.http_response.is_empty() {
        return None;
    }
    let frontend = &fe.cfg.name;
    let mut ctx = crate::snapshot::rules::Ctx { client, bind, tls, frontend, backend: Some(&backend.cfg.name), vars };
    for (rules, acls, table) in
        [(&backend.http_response, &backend.acls, &backend.table), (&fe.http_response, &fe.acls, &fe.table)]
    {
        ctx.vars.own.clone_from(table);
        let verdict = rules.run_response(acls, req, status, headers, &mut ctx);
        if let Some(answer) = rule_answer(verdict, fe, Some(backend)) {
            return Some(answer);
        }
    }
    None
}

/// Runs the `http-after-response` rules (the backend's, then the frontend's) on any answer
/// to `req`, the proxy's own too: they edit its headers and status.
pub(crate) fn after_response(
    fe: &FrontendRt,
    backend: Option<&crate::snapshot::BackendRt>,
    (client, bind, tls): (SocketAddr, SocketAddr, Option<&fulcrum_tls::Negotiated>),
    req: &http::request::Parts,
    (status, headers): (&mut StatusCode, &mut HeaderMap),
    vars: &mut crate::snapshot::rules::Vars,
) {
    let backend_rules = backend.filter(|b| !b.http_after_response.is_empty());
    if backend_rules.is_none() && fe.http_after_response.is_empty() {
        return;
    }
    let frontend = &fe.cfg.name;
    let mut ctx = crate::snapshot::rules::Ctx {
        client,
        bind,
        tls,
        frontend,
        backend: backend.map(|b| b.cfg.name.as_str()),
        vars,
    };
    if let Some(b) = backend_rules {
        ctx.vars.own.clone_from(&b.table);
        b.http_after_response.run_response(&b.acls, req, status, headers, &mut ctx);
    }
    ctx.vars.own.clone_from(&fe.table);
    fe.http_after_response.run_response(&fe.acls, req, status, headers, &mut ctx);
}

/// Writes a local response; returns the body bytes sent. The answer to a HEAD request has the
/// body's length and no body. Waits for the client to take it (up to `timeout client`).
pub(crate) async fn respond(client: &mut Client, mut resp: LocalResponse, head: bool, close: bool) -> u64 {
    resp.headers.insert(header::CONTENT_LENGTH, h1::length_value(resp.body.len() as u64));
    if close {
        resp.headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let mut out = Vec::with_capacity(256);
    h1::write_response_head(&mut out, resp.status, b"", &resp.headers);
    let body: &[u8] = if head { b"" } else { &resp.body };
    if client.side.send(&[&out, body]).is_err() {
        return 0;
    }
    let _ = client.side.flush(Some(client.timeouts.client())).await;
    body.len() as u64
}

impl LogEntry {
    pub(crate) fn new(client: SocketAddr, start: Instant, frontend: &str, request_line: String) -> Box<LogEntry> {
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

pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
