//! The L7 request path: route, pick a server, forward with retries, stream the answer back.
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use fulcrum_balance::{Algorithm, ServerId};
use fulcrum_model::{ConnMode, CookieMode, HttpReuse};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::accesslog::LogEntry;
use crate::clientio::{ConnState, Phase};
use crate::errors::error_page;
use crate::live::lock;
use crate::observe::{observe_result, Observation};
use crate::snapshot::{BackendRt, FrontendRt, Snapshot};
use crate::upstream::{self, Sender, UpBody, Upstream};
use crate::Shared;

pub type ProxyBody = Either<UpstreamBody, Full<Bytes>>;

/// A pooled connection idle longer than this may have been closed by the server as we reuse
/// it; a request that cannot be replayed is not sent on one.
const SAFE_IDLE: Duration = Duration::from_millis(1500);

/// Per-connection context of the client side.
#[derive(Debug)]
pub struct ClientConn {
    pub peer: SocketAddr,
    pub bind: SocketAddr,
    /// The client address as an `X-Forwarded-For` value, formatted once per connection.
    pub forwarded_for: HeaderValue,
    /// Shared with the socket wrapper: phase of the exchange, client timeouts.
    pub state: ConnState,
}

impl ClientConn {
    pub fn new(peer: SocketAddr, bind: SocketAddr, state: ConnState) -> ClientConn {
        ClientConn { peer, bind, forwarded_for: forwarded_for(peer.ip()), state }
    }
}

thread_local! {
    /// The last client address this worker formatted for `X-Forwarded-For`. Clients open
    /// connection after connection from one address; a clone of the cached value is a
    /// reference count, where formatting it is an allocation, and its first clone another.
    static LAST_FORWARDED_FOR: std::cell::RefCell<Option<(IpAddr, HeaderValue)>> =
        const { std::cell::RefCell::new(None) };
}

fn forwarded_for(ip: IpAddr) -> HeaderValue {
    LAST_FORWARDED_FOR.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((cached, value)) = last.as_ref() {
            if *cached == ip {
                return value.clone();
            }
        }
        let v4 = match ip {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(v6) => v6.to_ipv4_mapped(),
        };
        let value = match v4 {
            Some(v4) => ipv4_header(v4),
            None => HeaderValue::from_str(&ip.to_string()),
        }
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        *last = Some((ip, value.clone()));
        value
    })
}

/// An IPv4 address as a header value, without the formatting machinery (once per client
/// connection, so once per request in `Connection: close` traffic).
fn ipv4_header(ip: std::net::Ipv4Addr) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    let mut out = [0u8; 15];
    let mut len = 0;
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out[len] = b'.';
            len += 1;
        }
        let digits = [octet / 100, octet / 10 % 10, octet % 10];
        let skip = if octet >= 100 {
            0
        } else if octet >= 10 {
            1
        } else {
            2
        };
        for d in &digits[skip..] {
            out[len] = b'0' + d;
            len += 1;
        }
    }
    HeaderValue::from_bytes(&out[..len])
}

/// What forwarding a request keeps across its awaits, built before the first one.
struct Job {
    conn: Arc<ClientConn>,
    shared: Arc<Shared>,
    snap: Arc<Snapshot>,
    fe: usize,
    backend: Arc<BackendRt>,
    start: Instant,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    entry: Option<Box<LogEntry>>,
    key: Option<Vec<u8>>,
    preferred: Option<ServerId>,
    cookie_ok: bool,
    /// A bodiless GET/HEAD/OPTIONS may be sent again if a server fails under it.
    replay: Option<(Method, Uri, Version, HeaderMap)>,
    request: Option<Request<UpBody>>,
}

// Not boxed: it lives once, in the request's future; a box would be an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Prepared {
    Answer(Response<ProxyBody>),
    Forward(Job),
}

/// The service hyper calls per request. Routing and the request's headers are done at once;
/// the returned future holds only what the forwarding needs across its awaits (hyper moves
/// it into its slot per request, so its size is paid on every request).
pub fn handle(
    req: Request<Incoming>,
    conn: Arc<ClientConn>,
    shared: Arc<Shared>,
) -> impl Future<Output = Result<Response<ProxyBody>, Infallible>> {
    let mut prepared = prepare(req, &conn, shared);
    async move {
        // Matched by reference: moving the job out would give it a second slot in this future.
        let resp = match &mut prepared {
            Prepared::Answer(resp) => std::mem::replace(resp, Response::new(Either::Right(Full::new(Bytes::new())))),
            Prepared::Forward(job) => forward(job).await,
        };
        // A whole answer (error page, stats, 101) is handed to hyper now; a streamed one tells
        // the connection when it is over (UpstreamBody).
        if matches!(resp.body(), Either::Right(_)) && conn.state.phase() != Phase::Tunnel {
            conn.state.response_done();
        }
        Ok(resp)
    }
}

/// Route the request, answer it here if it is not forwarded (stats, 503, 413), else prepare
/// what goes upstream.
fn prepare(mut req: Request<Incoming>, conn: &Arc<ClientConn>, shared: Arc<Shared>) -> Prepared {
    let start = Instant::now();
    conn.state.request_started(req.body().is_end_stream(), client_closes(&req));
    let snap = shared.snapshot.load_full();
    let Some(fe_index) = snap.frontend_index(&conn.bind) else {
        return Prepared::Answer(plain_error(StatusCode::SERVICE_UNAVAILABLE, None, None));
    };
    let fe = &snap.frontends[fe_index];
    if let Some(stats) = &fe.cfg.stats {
        if req.uri().path_and_query().is_some_and(|pq| pq.as_str().starts_with(stats.uri.as_str())) {
            return Prepared::Answer(crate::stats::serve(&req, stats, &snap, &shared).map(Either::Right));
        }
    }
    let client_upgrade = is_upgrade(req.headers()).then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let client_ip = conn.peer.ip();
    let Some(backend) = fe.route(&parts, client_ip).cloned() else {
        return Prepared::Answer(plain_error(StatusCode::SERVICE_UNAVAILABLE, Some(fe), None));
    };
    let entry = shared.log_enabled(fe).then(|| {
        // TR: from the request's first byte to its last header (0 when the bytes came in
        // with the previous request's).
        let head = conn.state.head_started().filter(|h| *h <= start).unwrap_or(start);
        Box::new(LogEntry {
            client: conn.peer,
            accepted: SystemTime::now(),
            start: head,
            tq: ms(start - head),
            frontend: fe.cfg.name.clone(),
            backend: backend.cfg.name.clone(),
            server: "<NOSRV>".into(),
            tw: -1,
            tc: -1,
            tr: -1,
            status: 0,
            retries: 0,
            request_line: format!("{} {} {:?}", parts.method, parts.uri, parts.version),
        })
    });
    if let Some(limit) = fe.cfg.max_request_body {
        let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit) {
            let mut resp = fail(StatusCode::PAYLOAD_TOO_LARGE, fe, &backend, entry, &shared);
            // The body is not read: the connection cannot carry another request.
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            return Prepared::Answer(resp);
        }
    }

    let key = hash_key(&backend.cfg.algorithm, &parts, client_ip);
    let (preferred, cookie_ok) = persistence(&backend, &mut parts, client_ip);
    prepare_request_headers(&mut parts, fe, &backend, conn, client_upgrade.is_some());
    let replay = (body.is_end_stream() && matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS))
        .then(|| (parts.method.clone(), parts.uri.clone(), parts.version, parts.headers.clone()));
    let body = RequestBody { inner: body, conn: conn.clone(), limit: fe.cfg.max_request_body, seen: 0 };
    let request = Some(Request::from_parts(parts, Either::Left(body)));
    Prepared::Forward(Job {
        conn: conn.clone(),
        shared,
        fe: fe_index,
        snap,
        backend,
        start,
        client_upgrade,
        entry,
        key,
        preferred,
        cookie_ok,
        replay,
        request,
    })
}

/// Pick a server, send, retry and redispatch as configured; the response streams back.
async fn forward(job: &mut Job) -> Response<ProxyBody> {
    let Job {
        conn,
        shared,
        snap,
        fe,
        backend,
        start,
        client_upgrade,
        entry,
        key,
        preferred,
        cookie_ok,
        replay,
        request,
    } = job;
    let (conn, shared, backend, start, cookie_ok) = (&*conn, &*shared, &*backend, *start, *cookie_ok);
    let Some(fe) = snap.frontends.get(*fe) else {
        return plain_error(StatusCode::SERVICE_UNAVAILABLE, None, None);
    };
    let client_ip = conn.peer.ip();
    let mut tried: Vec<ServerId> = Vec::new();
    let mut attempt: u32 = 0;
    let mut queue_deadline: Option<Instant> = None;
    loop {
        let preferred = if attempt == 0 { *preferred } else { None };
        // Without `option redispatch`, a retry goes back to the same server.
        let exclude: &[ServerId] = if backend.cfg.redispatch || attempt == 0 { &tried } else { &[] };
        let sticky_retry = (!backend.cfg.redispatch && attempt > 0).then(|| tried.last().copied()).flatten();
        let picked = match sticky_retry {
            Some(id) if backend.servers.get(id).is_some_and(|s| s.live.try_reserve(s.cfg.maxconn)) => Pick::Server(id),
            _ => pick_server(backend, key.as_deref(), exclude, preferred),
        };
        let id = match picked {
            Pick::Server(id) => id,
            Pick::NoServer => return fail(StatusCode::SERVICE_UNAVAILABLE, fe, backend, entry.take(), shared),
            Pick::Full => {
                match wait_in_queue(backend, *queue_deadline.get_or_insert_with(|| start + backend.cfg.timeout_queue))
                    .await
                {
                    true => continue,
                    false => return fail(StatusCode::SERVICE_UNAVAILABLE, fe, backend, entry.take(), shared),
                }
            }
        };
        let server = &backend.servers[id];
        if let Some(e) = entry.as_mut() {
            e.server.clone_from(&server.cfg.name);
            e.tw = ms(start.elapsed());
        }
        server.live.total.fetch_add(1, Ordering::Relaxed);
        // Phase timestamps are only taken when a log line will use them.
        let t_connect = entry.is_some().then(Instant::now);
        let addr = server.cfg.addr;
        let mut up = match get_connection(addr, backend, replay.is_some()).await {
            Ok(up) => up,
            Err(err) => {
                tracing::debug!(backend = %backend.cfg.name, server = %server.cfg.name, "{err}");
                server.live.connect_errors.fetch_add(1, Ordering::Relaxed);
                release(backend, id);
                observe_result(backend, id, Observation::ConnectFailed);
                tried.push(id);
                attempt += 1;
                if attempt > backend.cfg.retries {
                    return fail(StatusCode::SERVICE_UNAVAILABLE, fe, backend, entry.take(), shared);
                }
                server.live.retries.fetch_add(1, Ordering::Relaxed);
                if let Some(e) = entry.as_mut() {
                    e.retries = attempt;
                }
                continue;
            }
        };
        if let Some(e) = entry.as_mut() {
            e.tc = t_connect.map_or(0, |t| ms(t.elapsed()));
        }
        let Some(req) = request.take() else {
            release(backend, id);
            return fail(StatusCode::BAD_GATEWAY, fe, backend, entry.take(), shared);
        };
        let t_send = entry.is_some().then(Instant::now);
        let sent = tokio::time::timeout(backend.cfg.timeout_server, up.sender.try_send_request(req)).await;
        let mut resp = match sent {
            Ok(Ok(resp)) => resp,
            Ok(Err(mut err)) => {
                release(backend, id);
                match err.take_message() {
                    // Never written: safe to send again, on another connection.
                    Some(req) => {
                        *request = Some(req);
                        if up.idle_for.is_none() {
                            tried.push(id);
                            attempt += 1;
                            if attempt > backend.cfg.retries {
                                return fail(StatusCode::BAD_GATEWAY, fe, backend, entry.take(), shared);
                            }
                        }
                        continue;
                    }
                    None => {
                        // The client's fault, not the server's: its body was too large or stalled.
                        for (flag, status) in [
                            (&conn.state.body_too_large, StatusCode::PAYLOAD_TOO_LARGE),
                            (&conn.state.body_timed_out, StatusCode::REQUEST_TIMEOUT),
                        ] {
                            if flag.load(Ordering::Relaxed) {
                                let mut resp = fail(status, fe, backend, entry.take(), shared);
                                resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                                return resp;
                            }
                        }
                        tracing::debug!(backend = %backend.cfg.name, server = %server.cfg.name, "no response: {}", err.error());
                        server.live.response_errors.fetch_add(1, Ordering::Relaxed);
                        observe_result(backend, id, Observation::ResponseFailed);
                        // It may have reached the server: only a safe request is sent again.
                        let Some((method, uri, version, headers)) = replay.as_ref() else {
                            return fail(StatusCode::BAD_GATEWAY, fe, backend, entry.take(), shared);
                        };
                        tried.push(id);
                        attempt += 1;
                        if attempt > backend.cfg.retries {
                            return fail(StatusCode::BAD_GATEWAY, fe, backend, entry.take(), shared);
                        }
                        server.live.retries.fetch_add(1, Ordering::Relaxed);
                        let mut again = Request::new(Either::Right(http_body_util::Empty::new()));
                        *again.method_mut() = method.clone();
                        *again.uri_mut() = uri.clone();
                        *again.version_mut() = *version;
                        *again.headers_mut() = headers.clone();
                        *request = Some(again);
                        continue;
                    }
                }
            }
            Err(_) => {
                release(backend, id);
                server.live.response_errors.fetch_add(1, Ordering::Relaxed);
                observe_result(backend, id, Observation::Timeout);
                return fail(StatusCode::GATEWAY_TIMEOUT, fe, backend, entry.take(), shared);
            }
        };
        observe_result(backend, id, Observation::Status(resp.status().as_u16()));
        if let Some(e) = entry.as_mut() {
            e.tr = t_send.map_or(0, |t| ms(t.elapsed()));
            e.status = resp.status().as_u16();
        }
        if let Some(stick) = &backend.stick {
            lock(stick).insert(client_ip, id, Instant::now());
        }

        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(client_upgrade) = client_upgrade.take() {
                let server_upgrade = hyper::upgrade::on(&mut resp);
                let idle = backend.cfg.timeout_tunnel;
                let done = Done::new(backend, id, None, entry.take(), shared);
                conn.state.set_phase(Phase::Tunnel);
                tokio::spawn(tunnel(client_upgrade, server_upgrade, idle, done));
                let (parts, _) = resp.into_parts();
                return Response::from_parts(parts, Either::Right(Full::new(Bytes::new())));
            }
        }

        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if let Some(value) = cookie_to_set(backend, id, cookie_ok, &mut parts.headers) {
            parts.headers.append(header::SET_COOKIE, value);
            if backend.cfg.cookie.as_ref().is_some_and(|c| c.nocache) {
                parts.headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
            }
        }
        if fe.cfg.conn_mode == ConnMode::Close {
            parts.headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let reusable = backend.cfg.http_reuse != HttpReuse::Never && backend.cfg.conn_mode == ConnMode::KeepAlive;
        let done = Done::new(backend, id, reusable.then_some(up.sender), entry.take(), shared);
        return Response::from_parts(parts, Either::Left(UpstreamBody::new(body, done, conn.clone())));
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

enum Pick {
    Server(ServerId),
    /// Eligible servers exist but all are at `maxconn`: queue.
    Full,
    NoServer,
}

/// Choose a server and reserve a connection slot on it.
fn pick_server(backend: &BackendRt, key: Option<&[u8]>, tried: &[ServerId], preferred: Option<ServerId>) -> Pick {
    if let Some(id) = preferred.filter(|id| !tried.contains(id) && backend.usable(*id)) {
        let s = &backend.servers[id];
        if s.live.try_reserve(s.cfg.maxconn) {
            return Pick::Server(id);
        }
    }
    let full = std::cell::Cell::new(false);
    for _ in 0..4 {
        let load = |id: ServerId| -> Option<u32> {
            let s = backend.servers.get(id)?;
            if tried.contains(&id) {
                return None;
            }
            let active = s.live.active.load(Ordering::Relaxed);
            if s.cfg.maxconn > 0 && active >= s.cfg.maxconn {
                full.set(true);
                return None;
            }
            Some(active)
        };
        let picked = lock(&backend.scheduler).pick(key, &load);
        match picked {
            Some(id) => {
                let s = &backend.servers[id];
                if s.live.try_reserve(s.cfg.maxconn) {
                    return Pick::Server(id);
                }
                full.set(true);
            }
            None => break,
        }
    }
    if full.get() {
        Pick::Full
    } else {
        Pick::NoServer
    }
}

/// Wait for a slot until the `timeout queue` deadline. False when the queue is full or time is up.
async fn wait_in_queue(backend: &BackendRt, deadline: Instant) -> bool {
    if backend.max_queue > 0 && backend.queued() >= backend.max_queue {
        return false;
    }
    backend.queued.fetch_add(1, Ordering::Relaxed);
    let woke = tokio::time::timeout_at(deadline.into(), backend.slot_freed.notified()).await.is_ok();
    backend.queued.fetch_sub(1, Ordering::Relaxed);
    woke
}

pub(crate) fn release(backend: &BackendRt, id: ServerId) {
    if let Some(s) = backend.servers.get(id) {
        s.live.release();
        if backend.queued() > 0 {
            backend.slot_freed.notify_one();
        }
    }
}

/// A pooled connection when reuse allows it, else a new one.
async fn get_connection(
    addr: SocketAddr,
    backend: &BackendRt,
    replayable: bool,
) -> Result<Upstream, upstream::ConnectError> {
    let reuse = backend.cfg.http_reuse != HttpReuse::Never && backend.cfg.conn_mode == ConnMode::KeepAlive;
    if reuse {
        while let Some(mut up) = upstream::take_idle(addr) {
            // A request that could not be sent again is not risked on a connection the server
            // may be closing right now (`http-reuse safe`); `always` takes the risk.
            let stale = up.idle_for.is_some_and(|d| d > SAFE_IDLE);
            if stale && !replayable && backend.cfg.http_reuse != HttpReuse::Always {
                continue;
            }
            if up.sender.ready().await.is_ok() {
                return Ok(up);
            }
        }
    }
    // Boxed: the connect path is the rare one, and its state would otherwise sit in every
    // request's future.
    Box::pin(upstream::connect(addr, backend.cfg.timeout_connect)).await
}

/// The bytes the balance algorithm hashes, if it is a hash algorithm and the key is present.
fn hash_key(algo: &Algorithm, parts: &http::request::Parts, client: IpAddr) -> Option<Vec<u8>> {
    match algo {
        Algorithm::Source => Some(match client {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(|v4| v4.octets().to_vec()).unwrap_or(v6.octets().to_vec()),
        }),
        Algorithm::Uri { whole, len, depth } => {
            let mut s =
                if *whole { parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/") } else { parts.uri.path() };
            if let Some(depth) = depth {
                if let Some((i, _)) = s.match_indices('/').nth(*depth) {
                    s = &s[..i];
                }
            }
            let mut bytes = s.as_bytes();
            if let Some(len) = len {
                bytes = &bytes[..bytes.len().min(*len)];
            }
            Some(bytes.to_vec())
        }
        Algorithm::UrlParam { name } => parts.uri.query().and_then(|q| {
            q.split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k == name).then(|| v.as_bytes().to_vec())
            })
        }),
        Algorithm::Hdr { name, use_domain_only } => {
            let v = parts.headers.get(name.as_str())?.to_str().ok()?;
            if *use_domain_only {
                let host = v.split(':').next().unwrap_or(v);
                let labels: Vec<&str> = host.split('.').collect();
                let n = labels.len();
                let domain = if n >= 2 { labels[n - 2] } else { host };
                Some(domain.as_bytes().to_vec())
            } else {
                Some(v.as_bytes().to_vec())
            }
        }
        _ => None,
    }
}

/// The server persistence points at (cookie or stick table), and whether the client already
/// holds a valid persistence cookie. Strips what the server must not see (`indirect`, prefix).
fn persistence(backend: &BackendRt, parts: &mut http::request::Parts, client: IpAddr) -> (Option<ServerId>, bool) {
    if let Some(cookie) = &backend.cfg.cookie {
        if let Some((id, rewritten)) = crate::cookie::find_server(backend, cookie, &parts.headers) {
            let valid = backend.usable(id);
            if let Some(value) = rewritten {
                parts.headers.insert(header::COOKIE, value);
            }
            if valid {
                return (Some(id), true);
            }
        }
    }
    if let Some(stick) = &backend.stick {
        if let Some(id) = lock(stick).get(&client, Instant::now()) {
            return (Some(id), false);
        }
    }
    (None, false)
}

/// `Set-Cookie` for insert mode; for prefix mode, rewrite the server's own cookie in place.
fn cookie_to_set(
    backend: &BackendRt,
    id: ServerId,
    client_had_it: bool,
    headers: &mut HeaderMap,
) -> Option<HeaderValue> {
    let cookie = backend.cfg.cookie.as_ref()?;
    let server = backend.servers.get(id)?;
    match cookie.mode {
        CookieMode::Insert => {
            // `preserve`: the application set the cookie itself; leave it alone.
            if cookie.preserve && crate::cookie::sets_cookie(headers, &cookie.name) {
                return None;
            }
            // A client that already holds a valid cookie keeps it.
            (!client_had_it).then(|| server.set_cookie.clone()).flatten()
        }
        CookieMode::Prefix => {
            crate::cookie::prefix_set_cookie(headers, &cookie.name, server.cfg.cookie.as_deref()?);
            None
        }
        CookieMode::Rewrite => {
            crate::cookie::rewrite_set_cookie(headers, &cookie.name, server.cfg.cookie.as_deref()?);
            None
        }
    }
}

/// `Connection` first: `strip_hop_by_hop` reads bit 0 as "a Connection header is present".
static HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The tokens of every `Connection` line, trimmed, as bytes (no UTF-8 check, no allocation).
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Whether the client will close after this exchange (`Connection: close`, or HTTP/1.0
/// without keep-alive): then no keep-alive wait follows the response.
fn client_closes<B>(req: &Request<B>) -> bool {
    let has = |word: &[u8]| connection_tokens(req.headers()).any(|t| t.eq_ignore_ascii_case(word));
    match req.version() {
        http::Version::HTTP_10 | http::Version::HTTP_09 => !has(b"keep-alive"),
        _ => has(b"close"),
    }
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case(b"upgrade"))
}

/// RFC 9110 §7.6.1: drop `Connection` and every header it names, and the fixed hop-by-hop set.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names (cheap comparisons of standard headers) finds which of the
    // fixed set are present; most messages carry none, or only `Connection`. Only those are
    // then looked up and removed.
    let mut present = 0u8;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    if present & 1 != 0 {
        // Every `Connection` line counts. The usual tokens are options, not header names
        // (`keep-alive` is in the fixed set anyway).
        let named: Vec<HeaderName> = connection_tokens(headers)
            .filter(|t| !t.eq_ignore_ascii_case(b"close") && !t.eq_ignore_ascii_case(b"keep-alive"))
            .filter_map(|t| HeaderName::from_bytes(t).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

fn prepare_request_headers(
    parts: &mut http::request::Parts,
    fe: &FrontendRt,
    backend: &BackendRt,
    client: &ClientConn,
    upgrade: bool,
) {
    let upgrade_to = upgrade.then(|| parts.headers.get(header::UPGRADE).cloned()).flatten();
    strip_hop_by_hop(&mut parts.headers);
    // We answer `Expect: 100-continue` ourselves when we start reading the body.
    parts.headers.remove(header::EXPECT);
    // Servers are always spoken to in HTTP/1.1, whatever the client speaks, so that an
    // HTTP/1.0 client (ab, old monitors) does not cost an upstream connection per request.
    parts.version = http::Version::HTTP_11;
    if let Some(proto) = upgrade_to {
        parts.headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, proto);
    } else if backend.cfg.conn_mode != ConnMode::KeepAlive
        || fe.cfg.conn_mode == ConnMode::Close
        || backend.cfg.http_reuse == HttpReuse::Never
    {
        parts.headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Some(xff) = backend.forwardfor.as_ref().or(fe.forwardfor.as_ref()) {
        if xff.applies_to(client.peer.ip()) && !(xff.if_none && parts.headers.contains_key(&xff.name)) {
            parts.headers.append(xff.name.clone(), client.forwarded_for.clone());
        }
    }
}

fn fail(
    status: StatusCode,
    fe: &FrontendRt,
    backend: &Arc<BackendRt>,
    entry: Option<Box<LogEntry>>,
    shared: &Arc<Shared>,
) -> Response<ProxyBody> {
    let resp = plain_error(status, Some(fe), Some(backend));
    if let Some(mut e) = entry {
        e.status = status.as_u16();
        shared.access_log.write(&e.format(resp_len(&resp)));
    }
    resp
}

fn resp_len(resp: &Response<ProxyBody>) -> u64 {
    resp.body().size_hint().exact().unwrap_or(0)
}

pub(crate) fn plain_error(
    status: StatusCode,
    fe: Option<&FrontendRt>,
    backend: Option<&Arc<BackendRt>>,
) -> Response<ProxyBody> {
    let mut layers = Vec::with_capacity(2);
    if let Some(b) = backend {
        layers.push(&b.errors);
    }
    if let Some(f) = fe {
        layers.push(&f.errors);
    }
    let page = error_page(status, &layers);
    let mut resp = Response::new(Either::Right(Full::new(page.body)));
    *resp.status_mut() = page.status;
    *resp.headers_mut() = page.headers;
    resp
}

/// Runs when the response is over (body read to the end, or abandoned): frees the server slot,
/// returns the upstream connection to the pool if it is clean, writes the log line.
pub struct Done {
    backend: Arc<BackendRt>,
    server: ServerId,
    sender: Option<Sender>,
    entry: Option<Box<LogEntry>>,
    shared: Arc<Shared>,
    bytes: u64,
    complete: bool,
}

impl Done {
    fn new(
        backend: &Arc<BackendRt>,
        server: ServerId,
        sender: Option<Sender>,
        entry: Option<Box<LogEntry>>,
        shared: &Arc<Shared>,
    ) -> Done {
        Done { backend: backend.clone(), server, sender, entry, shared: shared.clone(), bytes: 0, complete: false }
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        release(&self.backend, self.server);
        if let (true, Some(sender)) = (self.complete, self.sender.take()) {
            if let Some(s) = self.backend.servers.get(self.server) {
                upstream::put_idle(s.cfg.addr, sender);
            }
        }
        if let Some(e) = &self.entry {
            self.shared.access_log.write(&e.format(self.bytes));
        }
    }
}

/// The upstream response body, streamed frame by frame to the client.
pub struct UpstreamBody {
    inner: Incoming,
    done: Option<Done>,
    client: Arc<ClientConn>,
}

impl UpstreamBody {
    fn new(inner: Incoming, mut done: Done, client: Arc<ClientConn>) -> Self {
        if inner.is_end_stream() {
            done.complete = true;
            client.state.response_done();
        }
        UpstreamBody { inner, done: Some(done), client }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(done), Some(data)) = (self.done.as_mut(), frame.data_ref()) {
                    done.bytes += data.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.finish(true);
                }
            }
            Poll::Ready(None) => self.finish(true),
            Poll::Ready(Some(Err(_))) => self.finish(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl UpstreamBody {
    fn finish(&mut self, complete: bool) {
        if let Some(mut done) = self.done.take() {
            done.complete = complete;
            self.client.state.response_done();
        }
    }
}

/// The client's request body on its way upstream: ends the client's `Body` phase when it is
/// over, and stops at the frontend's `max_request_body`.
pub struct RequestBody {
    inner: Incoming,
    conn: Arc<ClientConn>,
    limit: Option<u64>,
    seen: u64,
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(polled) => polled,
        };
        if let Some(Ok(frame)) = &polled {
            if let (Some(limit), Some(data)) = (this.limit, frame.data_ref()) {
                this.seen += data.len() as u64;
                if this.seen > limit {
                    this.conn.state.body_too_large.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err("request body over max_request_body".into())));
                }
            }
        }
        if (polled.is_none() || this.inner.is_end_stream()) && this.conn.state.phase() == Phase::Body {
            this.conn.state.set_phase(Phase::Server);
        }
        Poll::Ready(polled.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Splice an upgraded connection (WebSocket and the like) both ways until either side closes.
async fn tunnel(client: hyper::upgrade::OnUpgrade, server: hyper::upgrade::OnUpgrade, idle: Duration, done: Done) {
    let _done = done;
    let (Ok(client), Ok(server)) = (client.await, server.await) else {
        return;
    };
    let mut client = TokioIo::new(client);
    let mut server = TokioIo::new(server);
    let _ = tokio::time::timeout(idle, tokio::io::copy_bidirectional(&mut client, &mut server)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_values() {
        for text in ["0.0.0.0", "127.0.0.1", "10.20.30.40", "255.255.255.255", "1.100.9.99", "192.168.0.10"] {
            let ip: std::net::Ipv4Addr = text.parse().expect("ip");
            assert_eq!(ipv4_header(ip).expect("value"), text);
        }
        let v6 = ClientConn::new(
            "[2001:db8::1]:5".parse().expect("addr"),
            "[::1]:80".parse().expect("addr"),
            ConnState::new(false),
        );
        assert_eq!(v6.forwarded_for, "2001:db8::1");
        let mapped = ClientConn::new(
            "[::ffff:10.1.2.3]:5".parse().expect("addr"),
            "[::]:80".parse().expect("addr"),
            ConnState::new(false),
        );
        assert_eq!(mapped.forwarded_for, "10.1.2.3");
    }

    #[test]
    fn connection_tokens_decide_close_and_upgrade() {
        let req = |version: Version, lines: &[&'static str]| {
            let mut r = Request::new(());
            *r.version_mut() = version;
            for line in lines {
                r.headers_mut().append(header::CONNECTION, HeaderValue::from_static(line));
            }
            r
        };
        assert!(client_closes(&req(Version::HTTP_11, &["Keep-Alive , CLOSE"])));
        assert!(client_closes(&req(Version::HTTP_11, &["te", "close"])));
        assert!(!client_closes(&req(Version::HTTP_11, &["keep-alive", "closed"])));
        assert!(!client_closes(&req(Version::HTTP_11, &[])));
        assert!(client_closes(&req(Version::HTTP_10, &[])));
        assert!(!client_closes(&req(Version::HTTP_10, &[" keep-alive"])));
        let mut up = req(Version::HTTP_11, &["keep-alive", "Upgrade"]);
        assert!(!is_upgrade(up.headers()), "no Upgrade header");
        up.headers_mut().insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_upgrade(up.headers()));
    }

    #[test]
    fn forwarded_for_follows_each_new_address() {
        // The per-thread cache answers a repeated address, and never a different one.
        for text in ["192.0.2.1", "192.0.2.1", "198.51.100.7", "192.0.2.1", "2001:db8::2", "2001:db8::2"] {
            let ip: IpAddr = text.parse().expect("ip");
            assert_eq!(forwarded_for(ip), text);
        }
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("close, x-private"));
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::HOST, HeaderValue::from_static("example"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::HOST));
    }

    #[test]
    fn every_connection_line_names_headers_to_drop() {
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.append(header::CONNECTION, HeaderValue::from_static("x-a , X-B"));
        h.insert("x-a", HeaderValue::from_static("1"));
        h.insert("x-b", HeaderValue::from_static("2"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["content-type"]);
        // Nothing hop-by-hop: left as it is.
        let mut plain = HeaderMap::new();
        plain.insert(header::HOST, HeaderValue::from_static("example"));
        plain.insert("x-a", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut plain);
        assert_eq!(plain.len(), 2);
    }
}
