//! One HTTP/2 request: routed like an HTTP/1 request (redirects, the stats page, ACLs and
//! `use_backend`, persistence, `X-Forwarded-For`), forwarded to a server over HTTP/1.1 from
//! the same pool of connections, with connect retries and redispatch, and the answer streamed
//! back as HTTP/2 frames under the client's flow control.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use fulcrum_balance::Flow;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::header::{self, HeaderValue};
use http::{Method, StatusCode, Uri};

use super::ConnInfo;
use crate::error::{Failure, ProxyError, Stage};
use crate::h1::{self, Framing};
use crate::io::{IoFail, Side};
use crate::l7::{error_page, ms, redirect_answer, request_rules, LocalResponse, LogEntry, RuleAnswer};
use crate::pick::{choose, Slot};
use crate::retry::{decide, Attempt, Decision, RetryPolicy};
use crate::snapshot::rules::Vars;
use crate::snapshot::Who;
use crate::snapshot::{BackendRt, FrontendRt};
use crate::upstream::h2_pool::send_data;
use crate::upstream::{self, ConnectError, Upstream};
use crate::Shared;

/// Serves one stream to its end.
pub(super) async fn serve(
    req: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    conn: Arc<ConnInfo>,
    shared: Arc<Shared>,
) {
    let started = super::streams::now();
    let snap = shared.snapshot.load_full();
    let Some(fe) = snap.frontend_for(&conn.bind) else {
        respond.send_reset(h2::Reason::REFUSED_STREAM);
        return;
    };
    let (mut parts, body) = req.into_parts();
    let head_only = parts.method == Method::HEAD;
    let mut entry = shared.log_enabled(fe).then(|| {
        let line = format!("{} {} HTTP/2.0", parts.method, parts.uri);
        let name = if conn.tls.is_some() { format!("{}~", fe.cfg.name) } else { fe.cfg.name.clone() };
        LogEntry::new(conn.peer, started, &name, line)
    });
    let websocket = match to_http1(&mut parts, &snap.limits) {
        Ok(websocket) => websocket,
        Err(why) => {
            tracing::debug!(peer = %conn.peer, "HTTP/2 request refused: {why}");
            if let Some(e) = entry.as_mut() {
                e.termination = *b"PR";
            }
            let page = error_page(StatusCode::BAD_REQUEST, Some(fe), None);
            finish_local(&mut respond, page, head_only, entry, &shared).await;
            return;
        }
    };
    let tls = conn.tls.as_ref();
    if let Some(stats) = &fe.cfg.stats {
        if parts.uri.path().starts_with(stats.uri.as_str()) {
            let page = match &shared.pages {
                Some(pages) => pages.stats(&parts, stats, &snap).into(),
                None => error_page(StatusCode::SERVICE_UNAVAILABLE, Some(fe), None),
            };
            finish_local(&mut respond, page, head_only, entry, &shared).await;
            return;
        }
    }
    // The frontend's `http-request` rules, `redirect`, `use_backend`, the backend's rules.
    let mut vars = Vars::for_request(&snap, conn.session.as_ref());
    let scope = (conn.peer, conn.bind, tls);
    // `tcp-request content` rules come first; a rejected request is reset.
    if !fe.tcp_content.is_empty() {
        let facts = crate::snapshot::Facts {
            req: Some(&parts),
            tls,
            ..crate::snapshot::Facts::connection(conn.peer, Some(conn.bind))
        };
        if !fe.tcp_rules(true, &facts, &mut vars, true) {
            respond.send_reset(h2::Reason::REFUSED_STREAM);
            return;
        }
    }
    // `monitor-uri` comes before any rule, and is not logged (as in HAProxy).
    if fe.cfg.monitor_uri.is_some() {
        let who = Who { peer: conn.peer, bind: conn.bind, tls, vars: &vars };
        if let Some(up) = fe.monitor(&parts, &who) {
            finish_local(&mut respond, crate::l7::monitor_answer(up, fe), head_only, None, &shared).await;
            return;
        }
    }
    // Every answer made here goes through the `http-after-response` rules first.
    let after = |page: &mut LocalResponse, backend: Option<&BackendRt>, req: &http::request::Parts, vars: &mut Vars| {
        let scope = (vars.src.unwrap_or(conn.peer), conn.bind, tls);
        crate::l7::after_response(fe, backend, scope, req, (&mut page.status, &mut page.headers), vars);
    };
    if let Some(mut answer) = request_rules(fe, None, scope, &mut parts, &mut vars) {
        after(&mut answer.page, None, &parts, &mut vars);
        if let Some(d) = answer.delay {
            tokio::time::sleep(d).await;
        }
        finish_local(&mut respond, answer.page, head_only, terminated(entry, answer.termination), &shared).await;
        return;
    }
    // `set-src` may have given the client another address: everything after sees it.
    let mut peer = vars.src.unwrap_or(conn.peer);
    let who = Who { peer, bind: conn.bind, tls, vars: &vars };
    if let Some((rule, location)) = fe.redirect(&parts, &who) {
        let mut page = redirect_answer(rule.code, location, rule.cookie.as_deref());
        after(&mut page, None, &parts, &mut vars);
        finish_local(&mut respond, page, head_only, terminated(entry, *b"LR"), &shared).await;
        return;
    }
    let Some(backend) = fe.route(&parts, &who).cloned() else {
        let mut page = error_page(StatusCode::SERVICE_UNAVAILABLE, Some(fe), None);
        after(&mut page, None, &parts, &mut vars);
        finish_local(&mut respond, page, head_only, entry, &shared).await;
        return;
    };
    if let Some(mut answer) = request_rules(fe, Some(&backend), (peer, conn.bind, tls), &mut parts, &mut vars) {
        after(&mut answer.page, Some(&backend), &parts, &mut vars);
        if let Some(d) = answer.delay {
            tokio::time::sleep(d).await;
        }
        let entry = terminated(entry, answer.termination).map(|mut e| {
            e.backend.clone_from(&backend.cfg.name);
            e
        });
        finish_local(&mut respond, answer.page, head_only, entry, &shared).await;
        return;
    }
    peer = vars.src.unwrap_or(peer);
    if let Some(e) = entry.as_mut() {
        e.backend.clone_from(&backend.cfg.name);
        e.tq = ms(started.elapsed());
        e.client = peer;
    }
    // The request as an HTTP/1.1 server reads it: origin-form, its body framed by its length
    // or chunked.
    // A WebSocket's stream carries the tunnel, not a body: the upgrade request has none.
    let framing = match (body.is_end_stream() || websocket, content_length(&parts.headers)) {
        (true, _) => Framing::Empty,
        (false, Some(n)) => Framing::Length(n),
        (false, None) => Framing::Chunked,
    };
    let key = crate::l7::hash_key(&backend.cfg.algorithm, &parts, peer.ip());
    let who = Who { peer, bind: conn.bind, tls, vars: &vars };
    let (preferred, cookie_ok, stick) = crate::l7::persistence(&backend, &mut parts, &who);
    crate::l7::request_to_server(&mut parts.headers, fe, &backend, peer.ip(), websocket, framing);
    parts.uri = parts.uri.path_and_query().cloned().map_or(Uri::from_static("/"), |pq| {
        let mut origin = http::uri::Parts::default();
        origin.path_and_query = Some(pq);
        Uri::from_parts(origin).unwrap_or(Uri::from_static("/"))
    });
    let limits = snap.limits;
    let mut x = Stream {
        fe,
        backend,
        parts,
        framing,
        body,
        entry,
        started,
        limits,
        websocket,
        vars,
        stick,
        peer,
        conn: &conn,
        shared: &shared,
    };
    match forward(&mut x, key.as_deref(), preferred, cookie_ok, &mut respond).await {
        Ok(()) => {}
        Err(error) => {
            let status = error.status().unwrap_or(StatusCode::BAD_GATEWAY);
            tracing::debug!(backend = %x.backend.cfg.name, peer = %conn.peer, "{error}");
            let mut page = error_page(status, Some(x.fe), Some(&x.backend));
            let scope = (x.peer, x.conn.bind, x.conn.tls.as_ref());
            let page_head = (&mut page.status, &mut page.headers);
            crate::l7::after_response(x.fe, Some(&x.backend), scope, &x.parts, page_head, &mut x.vars);
            if let Some(e) = x.entry.as_mut() {
                e.termination = error.termination();
                if e.tw < 0 {
                    e.tw = ms(started.elapsed());
                }
            }
            if error.stage == Stage::Data {
                // A response was under way: the stream is cut.
                respond.send_reset(h2::Reason::INTERNAL_ERROR);
                if let Some(e) = x.entry.take() {
                    shared.access_log.write(&e.format(0));
                }
            } else {
                finish_local(&mut respond, page, head_only, x.entry.take(), &shared).await;
            }
        }
    }
}

/// Why an HTTP/2 request is refused (answered 400), as HTTP/1's rules would refuse it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("no :authority and no Host")]
    NoAuthority,
    #[error("invalid authority or Host")]
    BadHost,
    #[error(":authority and Host differ")]
    HostMismatch,
    #[error("several Host fields")]
    SeveralHosts,
    #[error("more header fields than tune.http.maxhdr")]
    TooManyFields,
    #[error("a CONNECT other than a WebSocket's (other tunnels over HTTP/2 are not supported)")]
    Connect,
}

/// An HTTP/2 request head made into what an HTTP/1.1 server reads, under the HTTP/1 rules
/// (`tune.http.maxhdr`, one valid Host): Host from `:authority`, which must agree with a Host
/// the client also sent. The path stays as it is until the request is forwarded.
///
/// A WebSocket over HTTP/2 (RFC 8441: `CONNECT` with `:protocol websocket`) becomes the
/// HTTP/1.1 upgrade a server expects (`GET` with `Upgrade: websocket`, a fresh
/// `Sec-WebSocket-Key` and version 13 unless the client sent them); `Ok(true)` says so. Other
/// CONNECTs are refused.
pub fn to_http1(parts: &mut http::request::Parts, limits: &h1::Limits) -> Result<bool, Refusal> {
    let mut websocket = false;
    if parts.method == Method::CONNECT {
        let protocol = parts.extensions.get::<h2::ext::Protocol>().map(h2::ext::Protocol::as_str);
        if !protocol.is_some_and(|p| p.eq_ignore_ascii_case("websocket")) {
            return Err(Refusal::Connect);
        }
        websocket = true;
        parts.method = Method::GET;
        parts.headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if !parts.headers.contains_key(header::SEC_WEBSOCKET_KEY) {
            parts.headers.insert(header::SEC_WEBSOCKET_KEY, websocket_key());
        }
        if !parts.headers.contains_key(header::SEC_WEBSOCKET_VERSION) {
            parts.headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        }
    }
    if parts.headers.len() > limits.max_headers {
        return Err(Refusal::TooManyFields);
    }
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let host = hosts.next().cloned();
    if hosts.next().is_some() {
        return Err(Refusal::SeveralHosts);
    }
    match (parts.uri.authority().map(|a| a.as_str()), host) {
        (None, None) => Err(Refusal::NoAuthority),
        (Some(authority), host) => {
            if !h1::valid_host(authority.as_bytes()) {
                return Err(Refusal::BadHost);
            }
            if host.is_some_and(|h| !h.as_bytes().eq_ignore_ascii_case(authority.as_bytes())) {
                return Err(Refusal::HostMismatch);
            }
            let value = HeaderValue::from_str(authority).map_err(|_| Refusal::BadHost)?;
            parts.headers.insert(header::HOST, value);
            Ok(websocket)
        }
        (None, Some(host)) if h1::valid_host(host.as_bytes()) => Ok(websocket),
        (None, Some(_)) => Err(Refusal::BadHost),
    }
}

/// What one stream's forwarding holds.
struct Stream<'a> {
    fe: &'a FrontendRt,
    backend: Arc<BackendRt>,
    parts: http::request::Parts,
    framing: Framing,
    body: RecvStream,
    entry: Option<Box<LogEntry>>,
    started: Instant,
    /// The head limits of the snapshot the stream was routed with.
    limits: h1::Limits,
    /// A WebSocket over HTTP/2: the server's `101` turns the stream into the tunnel.
    websocket: bool,
    /// The transaction's variables (`set-var`).
    vars: Vars,
    /// The keys `stick` rules store once a server answers.
    stick: crate::stick::Pending,
    /// The client's address (its connection's, unless `set-src` changed it).
    peer: std::net::SocketAddr,
    conn: &'a ConnInfo,
    shared: &'a Arc<Shared>,
}

/// What the response rules read besides the answer.
struct RuleInput<'a> {
    fe: &'a FrontendRt,
    conn: &'a ConnInfo,
    req: &'a http::request::Parts,
    vars: &'a mut Vars,
}

/// The `http-response` rules on a server's answer (`l7`'s, the same for both protocols).
fn response_rules(
    input: RuleInput<'_>,
    backend: &BackendRt,
    status: &mut StatusCode,
    headers: &mut http::HeaderMap,
) -> Option<RuleAnswer> {
    let scope = (input.vars.src.unwrap_or(input.conn.peer), input.conn.bind, input.conn.tls.as_ref());
    let mut answer = crate::l7::response_rules(input.fe, backend, scope, input.req, (status, headers), input.vars);
    // The `http-after-response` rules, on the server's answer or the rules' own.
    let after_head = match answer.as_mut() {
        Some(a) => (&mut a.page.status, &mut a.page.headers),
        None => (status, headers),
    };
    crate::l7::after_response(input.fe, Some(backend), scope, input.req, after_head, input.vars);
    answer
}

/// A log entry with the termination state of an answer made here.
fn terminated(entry: Option<Box<LogEntry>>, termination: [u8; 2]) -> Option<Box<LogEntry>> {
    entry.map(|mut e| {
        e.termination = termination;
        e
    })
}

/// A `Sec-WebSocket-Key`: 16 random bytes in base64 (RFC 6455 §4.1), for a server that
/// expects the HTTP/1.1 handshake an RFC 8441 client does not make.
fn websocket_key() -> HeaderValue {
    // A randomly keyed hasher (a fresh key per call): unpredictable enough for a nonce that
    // only has to differ between connections (it protects nothing).
    let keyed = std::collections::hash_map::RandomState::new();
    let mut nonce = [0u8; 16];
    nonce[..8].copy_from_slice(&std::hash::BuildHasher::hash_one(&keyed, 1u8).to_le_bytes());
    nonce[8..].copy_from_slice(&std::hash::BuildHasher::hash_one(&keyed, 2u8).to_le_bytes());
    let key = crate::snapshot::rules::base64(&nonce);
    HeaderValue::from_str(&key).unwrap_or(HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="))
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Picks a server and connects (retrying and redispatching connect failures as the backend
/// says), sends the request and streams the answer.
async fn forward(
    x: &mut Stream<'_>,
    key: Option<&[u8]>,
    mut preferred: Option<crate::pick::Persist>,
    cookie_ok: crate::l7::CookieSeen,
    respond: &mut SendResponse<Bytes>,
) -> Result<(), ProxyError> {
    let backend = Arc::clone(&x.backend);
    let cfg = &backend.cfg;
    let policy = RetryPolicy { retries: cfg.retries, redispatch: cfg.redispatch, timeout_connect: cfg.timeout_connect };
    let (mut tried, mut retries, mut again) = (Vec::new(), 0u32, None);
    let safe = matches!(x.parts.method, Method::GET | Method::HEAD | Method::OPTIONS) && x.framing.is_empty();
    // A pooled connection the server closed under a safe request: sent again on a new one.
    let mut fresh_only = false;
    loop {
        let deadline = x.started + cfg.timeout_queue;
        let flow = Flow { client: x.peer, destination: x.conn.bind, now: x.started };
        let id = choose(&backend, again.take(), key, &flow, &tried, preferred.take(), deadline).await?;
        let slot = Slot::new(&backend, id);
        let server = &backend.servers[id];
        server.live.total.fetch_add(1, Ordering::Relaxed);
        if let Some(e) = x.entry.as_mut() {
            e.server.clone_from(&server.cfg.name);
            e.tw = ms(x.started.elapsed());
            e.retries = retries;
        }
        // Timings are read only for the log line.
        let t_connect = x.entry.is_some().then(Instant::now);
        let tls = server.tls.as_ref().filter(|_| server.cfg.tls.enabled).map(|c| upstream::tls_to(server, c, &x.parts));
        let proxy_header = server.cfg.send_proxy.map(|v| crate::proxy_protocol::header(v, x.peer, x.conn.bind));
        let got = if server.cfg.h2 {
            upstream::h2_pool::sender(server.cfg.addr, cfg.timeout_connect, tls.as_ref()).await.map(Upstream2::H2)
        } else {
            upstream::get_connection(server.cfg.addr, &backend, safe, fresh_only, proxy_header, tls.as_ref())
                .await
                .map(Upstream2::H1)
        };
        let up = match got {
            Ok(up) => up,
            Err(e) => {
                server.live.connect_errors.fetch_add(1, Ordering::Relaxed);
                let failure = match e {
                    ConnectError::Timeout => Failure::ConnectTimeout,
                    ConnectError::Io(e) | ConnectError::Tls(e) => Failure::ConnectFailed(e.kind()),
                };
                let error = ProxyError::new(failure, Stage::Connect);
                drop(slot);
                match decide(&policy, &Attempt { retries, reused: false, replayable: true }, error) {
                    Decision::SameServer { pause } => {
                        retries += 1;
                        server.live.retries.fetch_add(1, Ordering::Relaxed);
                        again = Some(id);
                        tokio::time::sleep(pause).await;
                    }
                    Decision::Redispatch | Decision::NewConnection => {
                        retries += 1;
                        server.live.redispatches.fetch_add(1, Ordering::Relaxed);
                        tried.push(id);
                    }
                    Decision::GiveUp(error) => return Err(error),
                }
                continue;
            }
        };
        if let (Some(e), Some(t)) = (x.entry.as_mut(), t_connect) {
            e.tc = ms(t.elapsed());
        }
        let result = match up {
            Upstream2::H1(up) => {
                let reused = up.idle_for.is_some();
                let result = exchange(x, up, id, cookie_ok, respond).await;
                match result {
                    // Nothing of the answer came, on a connection that had been idle: the
                    // server closed it as it was reused. Once more on a new connection, as
                    // HTTP/1 requests are.
                    Err(e)
                        if reused
                            && safe
                            && !fresh_only
                            && e.stage == Stage::Headers
                            && e.failure == Failure::ServerClosed =>
                    {
                        drop(slot);
                        fresh_only = true;
                        again = Some(id);
                        continue;
                    }
                    other => other,
                }
            }
            Upstream2::H2(send) => Box::pin(exchange_h2(x, send, id, cookie_ok, respond)).await,
        };
        drop(slot);
        // Counted against the server when it failed, as for HTTP/1 requests (the stats page).
        if let Err(e) = &result {
            if matches!(e.failure, Failure::ServerClosed | Failure::ServerTimeout | Failure::BadResponse(_)) {
                server.live.response_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        return result;
    }
}

/// A connection to a server: HTTP/1.1 from the pool, or a stream to open on the server's
/// HTTP/2 connection.
enum Upstream2 {
    H1(Upstream),
    H2(h2::client::SendRequest<Bytes>),
}

/// The request as a stream of the server's HTTP/2 connection (`proto h2`, gRPC): head, body
/// and trailers each way, the two directions at once (a bidirectional gRPC call streams both).
async fn exchange_h2(
    x: &mut Stream<'_>,
    mut send: h2::client::SendRequest<Bytes>,
    id: fulcrum_balance::ServerId,
    cookie_ok: crate::l7::CookieSeen,
    respond: &mut SendResponse<Bytes>,
) -> Result<(), ProxyError> {
    let backend = Arc::clone(&x.backend);
    let server = &backend.servers[id];
    let timeout_server = backend.cfg.timeout_server;
    let timeout_client = x.fe.cfg.timeout_client;
    let failed = |failure, stage| ProxyError::new(failure, stage);
    let parts = upstream::h2_pool::request_head(&x.parts, server.cfg.tls.enabled)
        .ok_or_else(|| failed(Failure::BadRequest(h1::HeadError::Malformed("authority")), Stage::Request))?;
    let t_send = super::streams::now();
    let request = http::Request::from_parts(parts, ());
    let no_body = x.body.is_end_stream();
    let (response, mut to_server) =
        send.send_request(request, no_body).map_err(|_| failed(Failure::ServerClosed, Stage::Headers))?;
    // The request body (and trailers) go up while the answer comes down.
    let body = &mut x.body;
    let upload = async {
        if no_body {
            return Ok(0);
        }
        relay_h2(body, &mut to_server, timeout_client, timeout_server).await
    };
    let shared = x.shared;
    let entry = &mut x.entry;
    let stick = &mut x.stick;
    let input = RuleInput { fe: x.fe, conn: x.conn, req: &x.parts, vars: &mut x.vars };
    let download = async {
        let resp = match tokio::time::timeout(timeout_server, response).await {
            Err(_) => return Err(failed(Failure::ServerTimeout, Stage::Headers)),
            Ok(Err(_)) => return Err(failed(Failure::ServerClosed, Stage::Headers)),
            Ok(Ok(resp)) => resp,
        };
        let (mut head, mut from_server) = resp.into_parts();
        crate::observe::observe_result(&backend, id, crate::observe::Observation::Status(head.status.as_u16()));
        let head_only = input.req.method == Method::HEAD;
        let c = input.conn;
        let who = Who { peer: input.vars.src.unwrap_or(c.peer), bind: c.bind, tls: c.tls.as_ref(), vars: &*input.vars };
        crate::l7::stick_store(&backend, id, stick, &who, (head.status, &head.headers));
        if head.status.is_client_error() {
            input.vars.count_error();
        }
        if let Some(answer) = response_rules(input, &backend, &mut head.status, &mut head.headers) {
            // The server's stream is dropped (reset) with its answer.
            finish_local(respond, answer.page, head_only, terminated(entry.take(), answer.termination), shared).await;
            return Ok(0);
        }
        if let Some(e) = entry.as_mut() {
            e.tr = ms(t_send.elapsed());
            e.status = head.status.as_u16();
        }
        if backend.cfg.cookie.is_some() {
            crate::l7::set_cookie(&backend, id, cookie_ok, &mut head.headers);
        }
        let end = from_server.is_end_stream();
        let mut out = http::Response::from_parts(head, ());
        *out.version_mut() = http::Version::HTTP_2;
        let mut to_client = respond.send_response(out, end).map_err(|_| failed(Failure::ClientClosed, Stage::Data))?;
        if end {
            return Ok(0);
        }
        let moved = relay_h2(&mut from_server, &mut to_client, timeout_server, timeout_client)
            .await
            .map_err(|e| ProxyError::new(e.failure, Stage::Data))?;
        Ok(moved)
    };
    let (up, down) = tokio::join!(upload, download);
    let moved = down?;
    if let Err(e) = up {
        tracing::debug!(backend = %backend.cfg.name, "request body: {e}");
    }
    if let Some(e) = x.entry.take() {
        shared.access_log.write(&e.format(moved));
    }
    Ok(())
}

/// Data and trailers from one HTTP/2 stream to another, each piece released to the sender's
/// window once the receiver took it. `read_idle`/`write_idle`: how long either may stall.
/// The data bytes moved.
async fn relay_h2(
    from: &mut RecvStream,
    to: &mut SendStream<Bytes>,
    read_idle: std::time::Duration,
    write_idle: std::time::Duration,
) -> Result<u64, ProxyError> {
    let mut moved = 0u64;
    loop {
        let next = tokio::time::timeout(read_idle, from.data()).await;
        match next {
            Err(_) => return Err(ProxyError::new(Failure::ServerTimeout, Stage::Data)),
            Ok(Some(Ok(data))) => {
                let n = data.len();
                moved += n as u64;
                send_data(to, data, false, write_idle).await.map_err(|f| ProxyError::new(f, Stage::Data))?;
                let _ = from.flow_control().release_capacity(n);
            }
            Ok(Some(Err(_))) => return Err(ProxyError::new(Failure::ServerClosed, Stage::Data)),
            Ok(None) => break,
        }
    }
    match tokio::time::timeout(read_idle, from.trailers()).await {
        Ok(Ok(Some(trailers))) => {
            to.send_trailers(trailers).map_err(|_| ProxyError::new(Failure::ClientClosed, Stage::Data))?
        }
        Ok(Ok(None)) => {
            send_data(to, Bytes::new(), true, write_idle).await.map_err(|f| ProxyError::new(f, Stage::Data))?
        }
        _ => return Err(ProxyError::new(Failure::ServerClosed, Stage::Data)),
    }
    Ok(moved)
}

/// The request on an open server connection, and its answer back to the stream.
async fn exchange(
    x: &mut Stream<'_>,
    mut up: Upstream,
    id: fulcrum_balance::ServerId,
    cookie_ok: crate::l7::CookieSeen,
    respond: &mut SendResponse<Bytes>,
) -> Result<(), ProxyError> {
    let backend = Arc::clone(&x.backend);
    let server = &backend.servers[id];
    let timeout_server = backend.cfg.timeout_server;
    let timeout_client = x.fe.cfg.timeout_client;
    let failed = |failure, stage| ProxyError::new(failure, stage);
    let t_send = super::streams::now();
    let mut head = Vec::with_capacity(512);
    h1::write_request_head(&mut head, &x.parts.method, &x.parts.uri, &x.parts.headers, server.cfg.addr);
    up.side.send(&[&head]).map_err(|_| failed(Failure::ServerClosed, Stage::Headers))?;
    if !x.framing.is_empty() {
        send_body(x, &mut up.side).await?;
    }
    up.side.flush(Some(timeout_server)).await.map_err(|_| failed(Failure::ServerClosed, Stage::Headers))?;
    // The answer's head (interim answers are skipped: h2 sends none of them here).
    let limits = x.limits;
    let mut buf = BytesMut::new();
    let mut deadline = t_send + timeout_server;
    let resp = loop {
        if !buf.is_empty() {
            match h1::parse_response(&mut buf, &limits, &x.parts.method) {
                Ok(Some(resp)) if x.websocket && resp.status == StatusCode::SWITCHING_PROTOCOLS => break resp,
                Ok(Some(resp)) if resp.status.is_informational() => continue,
                Ok(Some(resp)) => break resp,
                Ok(None) => {}
                Err(e) => return Err(failed(Failure::BadResponse(e), Stage::Headers)),
            }
        }
        match up
            .side
            .read_with(Some(deadline), |b| {
                buf.extend_from_slice(b);
                b.len()
            })
            .await
        {
            Ok(0) => return Err(failed(Failure::ServerClosed, Stage::Headers)),
            // `timeout server` counts again from each part of the head.
            Ok(_) => deadline = Instant::now() + timeout_server,
            Err(IoFail::TimedOut) => return Err(failed(Failure::ServerTimeout, Stage::Headers)),
            Err(_) => return Err(failed(Failure::ServerClosed, Stage::Headers)),
        }
    };
    crate::observe::observe_result(&backend, id, crate::observe::Observation::Status(resp.status.as_u16()));
    if let Some(e) = x.entry.as_mut() {
        e.tr = ms(t_send.elapsed());
        e.status = resp.status.as_u16();
    }
    let c = x.conn;
    let who = Who { peer: x.peer, bind: c.bind, tls: c.tls.as_ref(), vars: &x.vars };
    crate::l7::stick_store(&backend, id, &mut x.stick, &who, (resp.status, &resp.headers));
    if resp.status.is_client_error() {
        x.vars.count_error();
    }
    let mut headers = resp.headers;
    let mut status = resp.status;
    crate::l7::strip_hop_by_hop(&mut headers);
    headers.remove(header::TRANSFER_ENCODING);
    let input = RuleInput { fe: x.fe, conn: x.conn, req: &x.parts, vars: &mut x.vars };
    if let Some(answer) = response_rules(input, &backend, &mut status, &mut headers) {
        // The server's answer is dropped, and its connection with it.
        let entry = terminated(x.entry.take(), answer.termination);
        finish_local(respond, answer.page, x.parts.method == Method::HEAD, entry, x.shared).await;
        return Ok(());
    }
    if backend.cfg.cookie.is_some() {
        crate::l7::set_cookie(&backend, id, cookie_ok, &mut headers);
    }
    if x.websocket && resp.status == StatusCode::SWITCHING_PROTOCOLS {
        // RFC 8441: the HTTP/2 side of the handshake is a 200, without the HTTP/1.1 one's key
        // answer; what follows are the WebSocket's bytes, both ways, until either side ends.
        headers.remove(header::SEC_WEBSOCKET_ACCEPT);
        let mut out = http::Response::new(());
        *out.headers_mut() = headers;
        let send = respond.send_response(out, false).map_err(|_| failed(Failure::ClientClosed, Stage::Data))?;
        let idle = backend.cfg.timeout_tunnel.unwrap_or_else(|| timeout_server.min(timeout_client));
        let moved = Box::pin(websocket_tunnel(&mut up.side, buf, &mut x.body, send, idle)).await;
        if let Some(e) = x.entry.take() {
            x.shared.access_log.write(&e.format(moved));
        }
        return Ok(());
    }
    let mut out = http::Response::new(());
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    let framing = resp.framing;
    let no_body = framing.is_empty() || x.parts.method == Method::HEAD;
    let mut send = respond.send_response(out, no_body).map_err(|_| failed(Failure::ClientClosed, Stage::Data))?;
    let mut moved = 0u64;
    let mut complete = no_body;
    if !no_body {
        let got = relay_body(&mut up.side, buf, framing, &mut send, timeout_server, timeout_client).await;
        match got {
            Ok((n, clean)) => {
                moved = n;
                complete = clean;
            }
            Err(failure) => return Err(failed(failure, Stage::Data)),
        }
    } else if !buf.is_empty() {
        complete = false;
    }
    // The server connection carries another request if this answer ended cleanly.
    let reuse = crate::l7::server_reuse(x.fe, &backend);
    if complete && reuse && !resp.close && server.cfg.send_proxy.is_none() && framing != Framing::UntilClose {
        let key = match server.tls.as_ref().filter(|_| server.cfg.tls.enabled) {
            None => upstream::PoolKey::plain(server.cfg.addr),
            Some(config) => upstream::tls_to(server, config, &x.parts).key(server.cfg.addr),
        };
        upstream::put_idle(key, std::mem::replace(&mut up.side, Side::closed()));
    }
    if let Some(e) = x.entry.take() {
        x.shared.access_log.write(&e.format(moved));
    }
    Ok(())
}

/// A WebSocket between an HTTP/2 stream and the server's upgraded connection: the client's
/// DATA frames to the server, the server's bytes (`first`: read with its 101) as DATA frames
/// under the client's window. The client ending its stream half-closes the server side; the
/// server closing ends the stream; nothing either way for `idle` ends both. The bytes sent
/// to the client.
async fn websocket_tunnel(
    up: &mut Side,
    first: BytesMut,
    from_client: &mut RecvStream,
    mut to_client: SendStream<Bytes>,
    idle: std::time::Duration,
) -> u64 {
    let mut moved = 0u64;
    if !first.is_empty() {
        moved += first.len() as u64;
        if send_data(&mut to_client, first.freeze(), false, idle).await.is_err() {
            return moved;
        }
    }
    let mut client_open = true;
    loop {
        let deadline = Instant::now() + idle;
        tokio::select! {
            got = from_client.data(), if client_open => match got {
                Some(Ok(data)) => {
                    let _ = from_client.flow_control().release_capacity(data.len());
                    if up.send(&[&data]).is_err() || up.flush(Some(idle)).await.is_err() {
                        to_client.send_reset(h2::Reason::CANCEL);
                        return moved;
                    }
                }
                // The client is done sending: so is the server side (its reading end closes).
                None => {
                    client_open = false;
                    up.shutdown_write();
                }
                Some(Err(_)) => return moved,
            },
            got = up.read_with(Some(deadline), Bytes::copy_from_slice) => match got {
                Ok(data) if data.is_empty() => {
                    let _ = to_client.send_data(Bytes::new(), true);
                    return moved;
                }
                Ok(data) => {
                    moved += data.len() as u64;
                    if send_data(&mut to_client, data, false, idle).await.is_err() {
                        return moved;
                    }
                }
                Err(_) => {
                    to_client.send_reset(h2::Reason::CANCEL);
                    return moved;
                }
            },
        }
    }
}

/// The request body from the stream to the server, framed as the head says.
async fn send_body(x: &mut Stream<'_>, up: &mut Side) -> Result<(), ProxyError> {
    let timeout_server = x.backend.cfg.timeout_server;
    let timeout_client = x.fe.cfg.timeout_client;
    let chunked = x.framing == Framing::Chunked;
    let limit = x.fe.cfg.max_request_body;
    let mut total = 0u64;
    loop {
        let next = tokio::time::timeout(timeout_client, x.body.data()).await;
        let data = match next {
            Err(_) => return Err(ProxyError::new(Failure::ClientTimeout, Stage::Request)),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(ProxyError::new(Failure::ClientClosed, Stage::Request)),
            Ok(Some(Ok(data))) => data,
        };
        let _ = x.body.flow_control().release_capacity(data.len());
        total += data.len() as u64;
        if limit.is_some_and(|l| total > l) {
            return Err(ProxyError::new(Failure::RequestTooLarge, Stage::Request));
        }
        if data.is_empty() {
            continue;
        }
        let sent = if chunked {
            let size = crate::h1::size_line(data.len());
            up.send(&[size.as_bytes(), &data, b"\r\n"])
        } else {
            up.send(&[&data])
        };
        sent.map_err(|_| ProxyError::new(Failure::ServerClosed, Stage::Request))?;
        if up.has_pending() {
            up.flush(Some(timeout_server)).await.map_err(|_| ProxyError::new(Failure::ServerClosed, Stage::Request))?;
        }
    }
    if chunked {
        up.send(&[b"0\r\n\r\n"]).map_err(|_| ProxyError::new(Failure::ServerClosed, Stage::Request))?;
    }
    Ok(())
}

/// The response body from the server to the stream: `first` (read with the head), then reads
/// until the framing says it is over. Data frames wait for the client's flow-control window.
/// The data bytes sent.
async fn relay_body(
    up: &mut Side,
    first: BytesMut,
    framing: Framing,
    send: &mut SendStream<Bytes>,
    timeout_server: std::time::Duration,
    timeout_client: std::time::Duration,
) -> Result<(u64, bool), Failure> {
    let mut decoder = (framing == Framing::Chunked).then(crate::h1::Chunked::keeping_trailers);
    let mut left = match framing {
        Framing::Length(n) => Some(n),
        _ => None,
    };
    let mut moved = 0u64;
    let mut pending: Option<BytesMut> = Some(first).filter(|b| !b.is_empty());
    loop {
        let input = match pending.take() {
            Some(b) => b,
            None => {
                let deadline = Some(Instant::now() + timeout_server);
                let mut got = BytesMut::new();
                match up
                    .read_with(deadline, |b| {
                        got.extend_from_slice(b);
                        b.len()
                    })
                    .await
                {
                    Ok(0) if framing == Framing::UntilClose => {
                        let _ = send.send_data(Bytes::new(), true);
                        return Ok((moved, false));
                    }
                    Ok(0) => return Err(Failure::ServerClosed),
                    Ok(_) => got,
                    Err(IoFail::TimedOut) => return Err(Failure::ServerTimeout),
                    Err(_) => return Err(Failure::ServerClosed),
                }
            }
        };
        // The data of this input, whether the body ends with it, and whether bytes came past
        // its end (the connection then cannot carry another request).
        let mut data: Vec<Bytes> = Vec::new();
        let mut end = false;
        let mut surplus = false;
        match (&mut decoder, &mut left) {
            (Some(dec), _) => {
                let used =
                    dec.scan(&input, |d| data.push(Bytes::copy_from_slice(d))).map_err(Failure::BadResponseBody)?;
                end = dec.is_done();
                surplus = end && used < input.len();
            }
            (None, Some(n)) => {
                let take = (*n).min(input.len() as u64) as usize;
                surplus = take < input.len();
                data.push(input.freeze().slice(..take));
                *n -= take as u64;
                end = *n == 0;
            }
            (None, None) => data.push(input.freeze()),
        }
        let count = data.len();
        let trailers_follow = end && decoder.as_ref().is_some_and(|d| !d.trailers.is_empty());
        for (i, piece) in data.into_iter().enumerate() {
            let last = end && i + 1 == count && !trailers_follow;
            moved += piece.len() as u64;
            send_data(send, piece, last, timeout_client).await?;
        }
        if end {
            // A chunked body's trailers become the stream's trailers (gRPC-style servers over
            // HTTP/1.1 send their status this way).
            let trailers = decoder.as_ref().map(|d| trailer_map(&d.trailers)).filter(|t| !t.is_empty());
            match trailers {
                // The data went without END_STREAM (see below): the trailers end the stream.
                Some(map) => send.send_trailers(map).map_err(|_| Failure::ClientClosed)?,
                None if count == 0 => send_data(send, Bytes::new(), true, timeout_client).await?,
                None => {}
            }
            return Ok((moved, !surplus));
        }
    }
}

/// Trailer field lines (`name: value`) as HTTP/2 trailers: names lower-cased, fields HTTP/2
/// forbids (connection-level ones) or cannot carry left out.
fn trailer_map(lines: &[Vec<u8>]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        let name = line[..colon].to_ascii_lowercase();
        let value = line[colon + 1..].trim_ascii();
        let (Ok(name), Ok(value)) = (header::HeaderName::from_bytes(&name), HeaderValue::from_bytes(value)) else {
            continue;
        };
        if matches!(
            name.as_str(),
            "connection" | "transfer-encoding" | "keep-alive" | "te" | "upgrade" | "content-length"
        ) {
            continue;
        }
        map.append(name, value);
    }
    map
}

/// An answer made here (error page, stats, redirect), and its log line.
async fn finish_local(
    respond: &mut SendResponse<Bytes>,
    page: LocalResponse,
    head_only: bool,
    entry: Option<Box<LogEntry>>,
    shared: &Shared,
) {
    let mut out = http::Response::new(());
    *out.status_mut() = page.status;
    *out.headers_mut() = page.headers;
    out.headers_mut().insert(header::CONTENT_LENGTH, crate::h1::length_value(page.body.len() as u64));
    let no_body = head_only || page.body.is_empty();
    let mut bytes = 0;
    if let Ok(mut send) = respond.send_response(out, no_body) {
        if !no_body {
            bytes = page.body.len() as u64;
            let _ = send_data(&mut send, page.body, true, std::time::Duration::from_secs(30)).await;
        }
    }
    if let Some(mut e) = entry {
        if e.status == 0 {
            e.status = page.status.as_u16();
        }
        shared.access_log.write(&e.format(bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, hosts: &[&str]) -> http::request::Parts {
        let mut b = http::Request::get(uri);
        for h in hosts {
            b = b.header("host", *h);
        }
        b.body(()).expect("request").into_parts().0
    }

    #[test]
    fn http1_rules_for_http2_requests() {
        let limits = h1::Limits { max_head: 15_360, max_headers: 101 };
        let mut p = parts("https://www.example.com:8443/a", &[]);
        assert_eq!(to_http1(&mut p, &limits), Ok(false));
        assert_eq!(p.headers.get("host").map(|h| h.as_bytes()), Some(&b"www.example.com:8443"[..]));
        assert_eq!(to_http1(&mut parts("https://a.example/", &["A.EXAMPLE"]), &limits), Ok(false));
        assert_eq!(to_http1(&mut parts("https://a.example/", &["b.example"]), &limits), Err(Refusal::HostMismatch));
        assert_eq!(to_http1(&mut parts("/x", &["a", "b"]), &limits), Err(Refusal::SeveralHosts));
        assert_eq!(to_http1(&mut parts("/x", &[]), &limits), Err(Refusal::NoAuthority));
        assert_eq!(to_http1(&mut parts("/x", &["bad host"]), &limits), Err(Refusal::BadHost));
        assert_eq!(to_http1(&mut parts("/x", &["ok.example"]), &limits), Ok(false));
        let mut many = parts("https://a.example/", &[]);
        for i in 0..120 {
            many.headers.append("x-n", HeaderValue::from(i));
        }
        assert_eq!(to_http1(&mut many, &limits), Err(Refusal::TooManyFields));
    }

    #[test]
    fn a_websocket_connect_becomes_an_http1_upgrade() {
        let limits = h1::Limits { max_head: 15_360, max_headers: 101 };
        let connect = |protocol: Option<&'static str>| {
            let mut p =
                http::Request::connect("https://chat.example/ws?room=1").body(()).expect("request").into_parts().0;
            if let Some(proto) = protocol {
                p.extensions.insert(h2::ext::Protocol::from_static(proto));
            }
            p
        };
        let mut p = connect(Some("websocket"));
        assert_eq!(to_http1(&mut p, &limits), Ok(true));
        assert_eq!(p.method, Method::GET);
        assert_eq!(p.headers.get(header::UPGRADE).map(|v| v.as_bytes()), Some(&b"websocket"[..]));
        assert_eq!(p.headers.get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()), Some(&b"13"[..]));
        let key = p.headers.get(header::SEC_WEBSOCKET_KEY).expect("a key").as_bytes().to_vec();
        assert_eq!(key.len(), 24, "16 bytes in base64");
        assert!(key.ends_with(b"==") && key[..22].iter().all(|b| b.is_ascii_alphanumeric() || b"+/".contains(b)));
        // A fresh key per connection.
        let mut q = connect(Some("websocket"));
        assert_eq!(to_http1(&mut q, &limits), Ok(true));
        assert_ne!(q.headers.get(header::SEC_WEBSOCKET_KEY).map(|v| v.as_bytes().to_vec()), Some(key));
        // A plain CONNECT, or another protocol, is refused.
        assert_eq!(to_http1(&mut connect(None), &limits), Err(Refusal::Connect));
        assert_eq!(to_http1(&mut connect(Some("connect-udp")), &limits), Err(Refusal::Connect));
    }
}
