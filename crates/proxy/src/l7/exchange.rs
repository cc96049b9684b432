//! One request, from its parsed head to the end of its answer: answered here (stats, errors)
//! or forwarded to a server chosen by the backend, with retries as [`crate::retry`] decides,
//! and the response streamed back.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use fulcrum_balance::ServerId;
use fulcrum_model::ConnMode;
use http::{Method, StatusCode, Version};

use super::accesslog::LogEntry;
use super::body::{transfer, BodyError, Transfer};
use super::client::{
    error_page, ms, redirect_answer, request_rules, respond, Client, Incoming, LocalResponse, RuleAnswer,
};
use super::headers::{self, ClientFraming};
use super::route;
use crate::drain::Drain;
use crate::error::{Failure, ProxyError, Stage};
use crate::h1::{self, Framing};
use crate::io::{IoFail, Side};
use crate::observe::{observe_result, Observation};
use crate::pick::{choose, Slot};
use crate::retry::{decide, Attempt, Decision, RetryPolicy};
use crate::snapshot::rules::Vars;
use crate::snapshot::{BackendRt, FrontendRt, Snapshot};
use crate::snapshot::{Facts, Who};
use crate::upstream::{self, ConnectError, Upstream};
use crate::Shared;

/// Interim (1xx) responses passed on before the final one; more is a broken server.
const MAX_INTERIM: usize = 16;

/// How long a connection closed after an error keeps reading what the client still sends.
pub(super) const LINGER: Duration = Duration::from_secs(1);

/// What forwarding a request keeps across its attempts.
pub(super) struct Exchange {
    snap: Arc<Snapshot>,
    fe: usize,
    backend: Arc<BackendRt>,
    req: h1::Request,
    entry: Option<Box<LogEntry>>,
    key: Option<Vec<u8>>,
    preferred: Option<crate::pick::Persist>,
    cookie_ok: crate::l7::CookieSeen,
    shared: Arc<Shared>,
    /// When the request head was complete.
    parsed: Instant,
    /// The transaction's variables (`set-var`).
    vars: Vars,
    /// The keys `stick` rules store once a server answers.
    stick: crate::stick::Pending,
    /// The client's address (its connection's, unless `set-src` changed it).
    peer: std::net::SocketAddr,
}

impl Exchange {
    fn fe(&self) -> &FrontendRt {
        &self.snap.frontends[self.fe]
    }
}

/// A request routed and ready to go, or answered here.
pub(super) enum Prepared {
    /// Answered by the proxy itself (stats page, no backend): the answer, whether the
    /// request was a HEAD, whether the connection stays open afterwards.
    Answer(Option<LocalResponse>, bool, bool),
    Forward(Box<Exchange>),
    /// Refused before anything is sent (its body is over the frontend's limit).
    Refuse(Box<Exchange>, ProxyError),
    /// `tarpit`: the answer after a while, then the close.
    Held(LocalResponse, bool, std::time::Duration),
}

/// Routes a request and prepares what goes to the server, before anything waits: the
/// future that forwards it then holds only what it needs across its awaits.
pub(super) fn prepare(client: &Client, incoming: Incoming, shared: &Arc<Shared>, drain: &Drain) -> Prepared {
    let snap = shared.snapshot.load_full();
    let Some(fe_index) = snap.frontend_index(&client.bind) else {
        return Prepared::Answer(Some(error_page(StatusCode::SERVICE_UNAVAILABLE, None, None)), false, false);
    };
    let fe = &snap.frontends[fe_index];
    let Incoming { mut req, started, parsed } = incoming;
    // A body left unread leaves the connection unusable for another request.
    let keep = !req.close && req.framing.is_empty() && !drain.is_draining();
    let head = req.head.method == Method::HEAD;
    if let Some(stats) = &fe.cfg.stats {
        if req.head.uri.path_and_query().is_some_and(|pq| pq.as_str().starts_with(stats.uri.as_str())) {
            let page = match &shared.pages {
                Some(pages) => pages.stats(&req.head, stats, &snap).into(),
                None => error_page(StatusCode::SERVICE_UNAVAILABLE, Some(fe), None),
            };
            return Prepared::Answer(Some(page), head, keep);
        }
    }
    let tls = client.tls.as_deref();
    // The frontend's `http-request` rules, then `redirect`, then `use_backend`, then the
    // backend's rules: HAProxy's order.
    let mut vars = Vars::for_request(&snap, client.session.as_ref());
    let scope = (client.peer, client.bind, tls);
    // `tcp-request content` rules come first; a rejected request closes its connection.
    if !fe.tcp_content.is_empty() {
        let facts = Facts { req: Some(&req.head), tls, ..Facts::connection(client.peer, Some(client.bind)) };
        if !fe.tcp_rules(true, &facts, &mut vars, true) {
            return Prepared::Answer(None, head, false);
        }
    }
    // `monitor-uri` comes before any rule, and is not logged (as in HAProxy).
    if fe.cfg.monitor_uri.is_some() {
        let who = Who { peer: client.peer, bind: client.bind, tls, vars: &vars };
        if let Some(up) = fe.monitor(&req.head, &who) {
            return Prepared::Answer(Some(super::client::monitor_answer(up, fe)), head, keep);
        }
    }
    // The log line shows the request as it came, before rules rewrite it (HAProxy's %r).
    let entry = shared.log_enabled(fe).then(|| {
        let line = format!("{} {} {:?}", req.head.method, req.head.uri, req.head.version);
        // HAProxy marks a frontend reached over TLS with a '~' in its log lines.
        let name = if client.tls.is_some() { format!("{}~", fe.cfg.name) } else { fe.cfg.name.clone() };
        let mut e = LogEntry::new(client.peer, started, &name, line);
        e.tq = ms(parsed - started);
        e
    });
    // An answer made here is logged now, with HAProxy's termination state.
    let local = |page: LocalResponse,
                 termination: [u8; 2],
                 backend: Option<&BackendRt>,
                 entry: Option<Box<LogEntry>>,
                 delay: Option<std::time::Duration>| {
        if let Some(mut e) = entry {
            e.status = page.status.as_u16();
            e.termination = termination;
            if let Some(b) = backend {
                e.backend.clone_from(&b.cfg.name);
            }
            shared.access_log.write(&e.format(if head { 0 } else { page.body.len() as u64 }));
        }
        match delay {
            Some(d) => Prepared::Held(page, head, d),
            None => Prepared::Answer(Some(page), head, keep),
        }
    };
    // Every answer made here goes through the `http-after-response` rules first.
    let after = |page: &mut LocalResponse, backend: Option<&BackendRt>, req: &http::request::Parts, vars: &mut Vars| {
        let scope = (vars.src.unwrap_or(client.peer), client.bind, tls);
        super::client::after_response(fe, backend, scope, req, (&mut page.status, &mut page.headers), vars);
    };
    if let Some(mut answer) = request_rules(fe, None, scope, &mut req.head, &mut vars) {
        after(&mut answer.page, None, &req.head, &mut vars);
        return local(answer.page, answer.termination, None, entry, answer.delay);
    }
    // `set-src` may have given the client another address: everything after sees it.
    let mut peer = vars.src.unwrap_or(client.peer);
    let who = Who { peer, bind: client.bind, tls, vars: &vars };
    if let Some((rule, location)) = fe.redirect(&req.head, &who) {
        let mut page = redirect_answer(rule.code, location, rule.cookie.as_deref());
        after(&mut page, None, &req.head, &mut vars);
        return local(page, *b"LR", None, entry, None);
    }
    let Some(backend) = fe.route(&req.head, &who).cloned() else {
        let mut page = error_page(StatusCode::SERVICE_UNAVAILABLE, Some(fe), None);
        after(&mut page, None, &req.head, &mut vars);
        return Prepared::Answer(Some(page), head, keep);
    };
    if let Some(mut answer) = request_rules(fe, Some(&backend), (peer, client.bind, tls), &mut req.head, &mut vars) {
        after(&mut answer.page, Some(&backend), &req.head, &mut vars);
        return local(answer.page, answer.termination, Some(&backend), entry, answer.delay);
    }
    peer = vars.src.unwrap_or(peer);
    let entry = entry.map(|mut e| {
        e.backend.clone_from(&backend.cfg.name);
        e.client = peer;
        e
    });
    let key = route::hash_key(&backend.cfg.algorithm, &req.head, peer.ip());
    let who = Who { peer, bind: client.bind, tls, vars: &vars };
    let (preferred, cookie_ok, stick) = route::persistence(&backend, &mut req.head, &who);
    headers::request_to_server(&mut req.head.headers, fe, &backend, peer.ip(), req.upgrade, req.framing);
    let too_large = matches!((fe.cfg.max_request_body, req.framing), (Some(limit), Framing::Length(n)) if n > limit);
    let x = Box::new(Exchange {
        fe: fe_index,
        snap,
        backend,
        req,
        entry,
        key,
        preferred,
        cookie_ok,
        shared: shared.clone(),
        parsed,
        vars,
        stick,
        peer,
    });
    if too_large {
        // The body is not read: the connection cannot carry another request.
        return Prepared::Refuse(x, ProxyError::new(Failure::RequestTooLarge, Stage::Request));
    }
    Prepared::Forward(x)
}

/// Serves a prepared request; returns whether the client connection stays open for another.
/// Not an `async fn`: that would keep a second copy of `prepared` in the future.
#[allow(clippy::manual_async_fn)]
pub(super) fn run<'a>(
    client: &'a mut Client,
    mut prepared: Prepared,
    drain: &'a Drain,
) -> impl std::future::Future<Output = bool> + 'a {
    async move {
        match &mut prepared {
            Prepared::Answer(resp, head, keep) => {
                if let Some(resp) = resp.take() {
                    Box::pin(respond(client, resp, *head, !*keep)).await;
                }
                *keep
            }
            Prepared::Refuse(x, error) => {
                Box::pin(answer(client, x, error)).await;
                false
            }
            Prepared::Held(page, head, delay) => {
                tokio::time::sleep(*delay).await;
                let page = std::mem::replace(page, LocalResponse::from(http::Response::new(bytes::Bytes::new())));
                Box::pin(respond(client, page, *head, true)).await;
                false
            }
            Prepared::Forward(x) => match forward(x, client, drain).await {
                Ok(keep) => keep,
                Err(error) => {
                    Box::pin(answer(client, x, &error)).await;
                    false
                }
            },
        }
    }
}

/// Answers a request that failed with an error page (when one can still be sent), logs it.
async fn answer(client: &mut Client, x: &mut Exchange, error: &ProxyError) {
    let mut bytes = 0;
    if let Some(status) = error.status() {
        let head = x.req.head.method == Method::HEAD;
        let mut page = error_page(status, Some(x.fe()), Some(&x.backend));
        let scope = (x.peer, client.bind, client.tls.as_deref());
        let fe = &x.snap.frontends[x.fe];
        let page_head = (&mut page.status, &mut page.headers);
        super::client::after_response(fe, Some(&x.backend), scope, &x.req.head, page_head, &mut x.vars);
        bytes = respond(client, page, head, true).await;
        // A body not read to its end (413, a broken upload) or pipelined requests are still
        // coming: let them come rather than have the kernel reset the connection.
        if !x.req.framing.is_empty() || client.buf.is_some() {
            client.side.linger(LINGER).await;
        }
    }
    tracing::debug!(backend = %x.backend.cfg.name, peer = %client.peer, "{error}");
    if let Some(mut e) = x.entry.take() {
        e.status = error.status().map_or(e.status, |s| s.as_u16());
        e.termination = error.termination();
        if e.tw < 0 && error.stage != Stage::Request {
            e.tw = ms(x.parsed.elapsed());
        }
        x.shared.access_log.write(&e.format(bytes));
    }
}

/// Where a request stands across its attempts.
struct Tries {
    /// Servers a redispatch does not go back to.
    tried: Vec<ServerId>,
    retries: u32,
    /// The server a retry goes back to.
    again: Option<ServerId>,
    /// The next attempt opens a new connection (a pooled one failed under a replayable request).
    fresh_only: bool,
    /// Persistence's server, for the first pick only.
    preferred: Option<crate::pick::Persist>,
}

/// Picks a server, connects and sends, retrying and redispatching as [`decide`] says. Ok:
/// whether the client connection stays open.
async fn forward(x: &mut Exchange, client: &mut Client, drain: &Drain) -> Result<bool, ProxyError> {
    let cfg = &x.backend.cfg;
    let policy = RetryPolicy { retries: cfg.retries, redispatch: cfg.redispatch, timeout_connect: cfg.timeout_connect };
    let mut t = Tries { tried: Vec::new(), retries: 0, again: None, fresh_only: false, preferred: x.preferred };
    loop {
        let deadline = x.parsed + x.backend.cfg.timeout_queue;
        // The request's time stands for the flow's (no clock read per request).
        let flow = fulcrum_balance::Flow { client: x.peer, destination: client.bind, now: x.parsed };
        let id =
            choose(&x.backend, t.again.take(), x.key.as_deref(), &flow, &t.tried, t.preferred.take(), deadline).await?;
        let (error, attempt) = match attempt(x, client, drain, id, &mut t).await {
            Ok(keep) => return Ok(keep),
            Err(failed) => failed,
        };
        let live = &x.backend.servers[id].live;
        match decide(&policy, &attempt, error) {
            Decision::SameServer { pause } => {
                t.retries += 1;
                live.retries.fetch_add(1, Ordering::Relaxed);
                t.again = Some(id);
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
            Decision::Redispatch => {
                t.retries += 1;
                live.redispatches.fetch_add(1, Ordering::Relaxed);
                t.tried.push(id);
            }
            Decision::NewConnection => {
                t.again = Some(id);
                t.fresh_only = true;
            }
            Decision::GiveUp(error) => {
                if let Some(e) = x.entry.as_mut() {
                    e.retries = t.retries;
                }
                return Err(error);
            }
        }
    }
}

/// One attempt on server `id` (its slot reserved): a connection, the request, the answer.
/// Err: what failed, and what the retry decision needs to know of it.
async fn attempt(
    x: &mut Exchange,
    client: &mut Client,
    drain: &Drain,
    id: ServerId,
    t: &mut Tries,
) -> Result<bool, (ProxyError, Attempt)> {
    let backend = x.backend.clone();
    let slot = Slot::new(&backend, id);
    let server = &backend.servers[id];
    server.live.total.fetch_add(1, Ordering::Relaxed);
    if let Some(e) = x.entry.as_mut() {
        e.server.clone_from(&server.cfg.name);
        e.tw = ms(x.parsed.elapsed());
        e.retries = t.retries;
    }
    if server.cfg.h2 {
        // A `proto h2` server: the request becomes a stream of its HTTP/2 connection.
        let result = Box::pin(via_h2(x, client, id, t)).await;
        drop(slot);
        if let Err((e, _)) = &result {
            if matches!(e.failure, Failure::ServerClosed | Failure::ServerTimeout | Failure::BadResponse(_)) {
                server.live.response_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        return result;
    }
    let safe = matches!(x.req.head.method, Method::GET | Method::HEAD | Method::OPTIONS) && x.req.framing.is_empty();
    // Phase timestamps are only taken when a log line will use them.
    let t_connect = x.entry.is_some().then(Instant::now);
    let fresh_only = std::mem::take(&mut t.fresh_only);
    // `send-proxy`: a new connection of its own, which tells the server who the client is.
    let proxy_header = server.cfg.send_proxy.map(|version| {
        let local = client.side.local_addr().unwrap_or(client.bind);
        crate::proxy_protocol::header(version, x.peer, local)
    });
    let tls = server.tls.as_ref().filter(|_| server.cfg.tls.enabled).map(|c| upstream::tls_to(server, c, &x.req.head));
    let mut up =
        match upstream::get_connection(server.cfg.addr, &backend, safe, fresh_only, proxy_header, tls.as_ref()).await {
            Ok(up) => up,
            Err(e) => {
                tracing::debug!(backend = %backend.cfg.name, server = %server.cfg.name, "{e}");
                server.live.connect_errors.fetch_add(1, Ordering::Relaxed);
                observe_result(&backend, id, Observation::ConnectFailed);
                let failure = match e {
                    ConnectError::Timeout => Failure::ConnectTimeout,
                    ConnectError::Io(e) | ConnectError::Tls(e) => Failure::ConnectFailed(e.kind()),
                };
                let error = ProxyError::new(failure, Stage::Connect);
                return Err((error, Attempt { retries: t.retries, reused: false, replayable: true }));
            }
        };
    if let Some(e) = x.entry.as_mut() {
        e.tc = t_connect.map_or(0, |t| ms(t.elapsed()));
    }
    let reused = up.idle_for.is_some();
    let result = transact(x, client, &mut up, id, drain).await;
    // The server's slot is free once its answer is over (before any retry pause).
    drop(up);
    drop(slot);
    match result {
        Ok(keep) => Ok(keep),
        // A response was under way: nothing to retry, nothing to answer.
        Err(Failed { error, .. }) if error.stage == Stage::Data => {
            end_after_response(x, &error);
            Ok(false)
        }
        Err(Failed { error, body_touched }) => {
            // Counted against the server only when it failed (a client's oversized body is not
            // its fault).
            if matches!(error.failure, Failure::ServerClosed | Failure::ServerTimeout | Failure::BadResponse(_)) {
                server.live.response_errors.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, Attempt { retries: t.retries, reused, replayable: safe && !body_touched }))
        }
    }
}

/// The access log line of an exchange that failed once its response had begun.
fn end_after_response(x: &mut Exchange, error: &ProxyError) {
    tracing::debug!(backend = %x.backend.cfg.name, "{error}");
    if let Some(mut e) = x.entry.take() {
        e.termination = error.termination();
        x.shared.access_log.write(&e.format(0));
    }
}

/// An attempt that failed, and whether any of the request body was consumed by it.
struct Failed {
    error: ProxyError,
    body_touched: bool,
}

fn failed(failure: Failure, stage: Stage, body_touched: bool) -> Failed {
    Failed { error: ProxyError::new(failure, stage), body_touched }
}

/// One attempt on one server connection: the request out, the response back.
async fn transact(
    x: &mut Exchange,
    client: &mut Client,
    up: &mut Upstream,
    id: ServerId,
    drain: &Drain,
) -> Result<bool, Failed> {
    let backend = x.backend.clone();
    let t_send = x.entry.is_some().then(Instant::now);
    let body_touched = !x.req.framing.is_empty();
    // The request may be left incomplete when the server answers before reading all of it.
    let request_complete = send_request(x, client, up, backend.servers[id].cfg.addr).await?;

    let (resp, resp_buf) = match read_response(x, client, up, body_touched).await {
        Ok(got) => got,
        Err(f) => {
            let seen = match f.error.failure {
                Failure::ServerTimeout => Observation::Timeout,
                _ => Observation::ResponseFailed,
            };
            observe_result(&backend, id, seen);
            return Err(f);
        }
    };
    observe_result(&backend, id, Observation::Status(resp.status.as_u16()));
    if let Some(e) = x.entry.as_mut() {
        e.tr = t_send.map_or(0, |t| ms(t.elapsed()));
        e.status = resp.status.as_u16();
    }
    let who = Who { peer: x.peer, bind: client.bind, tls: client.tls.as_deref(), vars: &x.vars };
    route::stick_store(&backend, id, &mut x.stick, &who, (resp.status, &resp.headers));
    if resp.status.is_client_error() {
        x.vars.count_error();
    }

    let upgraded = resp.status == StatusCode::SWITCHING_PROTOCOLS && x.req.upgrade;
    let connected = x.req.head.method == Method::CONNECT && resp.status.is_success();
    if upgraded || connected {
        Box::pin(switch_to_tunnel(x, client, up, resp, resp_buf, upgraded)).await;
        return Ok(false);
    }
    relay_response(x, client, up, id, resp, resp_buf, request_complete && !drain.is_draining()).await
}

/// Runs the `http-response` rules on a server's answer; the answer to send instead when one
/// of them answers. `set-status` brings its reason phrase.
fn response_rules(
    x: &mut Exchange,
    client: &Client,
    backend: &BackendRt,
    resp: &mut h1::Response,
) -> Option<RuleAnswer> {
    let fe = &x.snap.frontends[x.fe];
    let before = resp.status;
    let scope = (x.peer, client.bind, client.tls.as_deref());
    let head = (&mut resp.status, &mut resp.headers);
    let mut answer = super::client::response_rules(fe, backend, scope, &x.req.head, head, &mut x.vars);
    // The `http-after-response` rules, on the server's answer or the rules' own.
    let after_head = match answer.as_mut() {
        Some(a) => (&mut a.page.status, &mut a.page.headers),
        None => (&mut resp.status, &mut resp.headers),
    };
    super::client::after_response(fe, Some(backend), scope, &x.req.head, after_head, &mut x.vars);
    if answer.is_none() && resp.status != before {
        resp.reason = match x.vars.reason.take() {
            Some(reason) => bytes::Bytes::from(reason),
            None => bytes::Bytes::from_static(resp.status.canonical_reason().unwrap_or("").as_bytes()),
        };
    }
    answer
}

/// Passes a 101 (or a CONNECT's 2xx) on, then splices the two connections.
async fn switch_to_tunnel(
    x: &mut Exchange,
    client: &mut Client,
    up: &mut Upstream,
    mut resp: h1::Response,
    from_server: Option<BytesMut>,
    upgraded: bool,
) {
    headers::strip_hop_by_hop(&mut resp.headers);
    if upgraded {
        resp.headers.insert(http::header::CONNECTION, http::HeaderValue::from_static("upgrade"));
        if let Some(proto) = x.req.head.headers.get(http::header::UPGRADE).cloned() {
            resp.headers.insert(http::header::UPGRADE, proto);
        }
    }
    let mut out = Vec::with_capacity(256);
    h1::write_response_head(&mut out, resp.status, &resp.reason, &resp.headers);
    if let Some(e) = x.entry.take() {
        x.shared.access_log.write(&e.format(0));
    }
    let cfg = &x.backend.cfg;
    let idle = cfg.timeout_tunnel.unwrap_or_else(|| cfg.timeout_server.min(x.fe().cfg.timeout_client));
    tunnel(client, up, out, from_server, idle).await;
}

/// Writes the response head for the client and relays the body; gives the server connection
/// back to the pool when it can carry another request. `may_keep`: nothing of this exchange
/// (an unfinished upload, a draining worker) forbids keeping the client connection. Ok:
/// whether the client connection stays open.
async fn relay_response(
    x: &mut Exchange,
    client: &mut Client,
    up: &mut Upstream,
    id: ServerId,
    mut resp: h1::Response,
    resp_buf: Option<BytesMut>,
    may_keep: bool,
) -> Result<bool, Failed> {
    let backend = x.backend.clone();
    let server_keeps = headers::server_reuse(x.fe(), &backend) && !resp.close && may_keep;
    // An HTTP/1.0 response with Transfer-Encoding is read as chunked, but its framing is not
    // trusted for more (RFC 9112 §6.1): both connections close after it, as HAProxy does.
    let suspect = resp.version != Version::HTTP_11 && resp.framing == Framing::Chunked;
    let server_keeps = server_keeps && !suspect;
    let keep_client = !x.req.close && x.fe().cfg.conn_mode != ConnMode::Close && may_keep && !suspect;
    // The backend's `http-response` rules, then the frontend's. One that answers in the
    // server's place (deny, return, redirect) drops the server's answer and its connection.
    if let Some(answer) = response_rules(x, client, &backend, &mut resp) {
        let head = x.req.head.method == Method::HEAD;
        let status = answer.page.status.as_u16();
        let bytes = respond(client, answer.page, head, !keep_client).await;
        if let Some(mut e) = x.entry.take() {
            e.status = status;
            e.termination = answer.termination;
            x.shared.access_log.write(&e.format(bytes));
        }
        return Ok(keep_client);
    }
    route::set_cookie(&backend, id, x.cookie_ok, &mut resp.headers);
    let client_http10 = x.req.head.version == Version::HTTP_10;
    let out = headers::response_to_client(&mut resp.headers, resp.framing, client_http10, keep_client);
    let keep_client = keep_client && !matches!(out, ClientFraming::Dechunk | ClientFraming::UntilClose);
    let mut out_head = Vec::with_capacity(resp.head_len + 64);
    h1::write_response_head(&mut out_head, resp.status, &resp.reason, &resp.headers);
    let t = Transfer {
        framing: resp.framing,
        out,
        limit: None,
        read_idle: backend.cfg.timeout_server,
        write_idle: client.timeouts.client(),
        prefix: Some(&out_head),
    };
    let moved = transfer(&mut up.side, resp_buf, &mut client.side, t).await.map_err(|e| {
        let failure = match e {
            BodyError::Read(IoFail::TimedOut) => Failure::ServerTimeout,
            BodyError::Read(_) | BodyError::Truncated => Failure::ServerClosed,
            BodyError::Framing(e) => Failure::BadResponseBody(e),
            BodyError::Write(IoFail::TimedOut) => Failure::ClientTimeout,
            BodyError::Write(_) | BodyError::TooLarge => Failure::ClientClosed,
        };
        failed(failure, Stage::Data, !x.req.framing.is_empty())
    })?;
    // A connection that began with a PROXY protocol header speaks for one client only.
    if server_keeps && moved.extra.is_none() && backend.servers[id].cfg.send_proxy.is_none() {
        let server = &backend.servers[id];
        let key = match server.tls.as_ref().filter(|_| server.cfg.tls.enabled) {
            None => upstream::PoolKey::plain(server.cfg.addr),
            Some(config) => upstream::tls_to(server, config, &x.req.head).key(server.cfg.addr),
        };
        upstream::put_idle(key, std::mem::replace(&mut up.side, Side::closed()));
    }
    if let Some(e) = x.entry.take() {
        x.shared.access_log.write(&e.format(moved.bytes));
    }
    Ok(keep_client)
}

/// Sends the request head and its body (when it has one). Ok: whether all of the request
/// went out (a server may answer before it has read the whole body).
async fn send_request(
    x: &mut Exchange,
    client: &mut Client,
    up: &mut Upstream,
    server: std::net::SocketAddr,
) -> Result<bool, Failed> {
    let timeout_server = x.backend.cfg.timeout_server;
    let timeout_client = client.timeouts.client();
    let mut head = Vec::with_capacity(512);
    h1::write_request_head(&mut head, &x.req.head.method, &x.req.head.uri, &x.req.head.headers, server);
    let mut request_complete = true;
    let body_touched = !x.req.framing.is_empty();
    if x.req.framing.is_empty() {
        up.side.send(&[&head]).map_err(|_| failed(Failure::ServerClosed, Stage::Headers, false))?;
    } else {
        if x.req.expect_continue && client.buf.is_none() {
            let _ = client.side.send(&[b"HTTP/1.1 100 Continue\r\n\r\n"]);
        }
        let t = Transfer {
            framing: x.req.framing,
            out: ClientFraming::Same,
            limit: x.fe().cfg.max_request_body,
            read_idle: timeout_client,
            write_idle: timeout_server,
            prefix: Some(&head),
        };
        let buffered = client.buf.take();
        match transfer(&mut client.side, buffered, &mut up.side, t).await {
            Ok(moved) => client.buf = moved.extra,
            Err(BodyError::Write(_)) => request_complete = false,
            Err(BodyError::Read(IoFail::TimedOut)) => {
                return Err(failed(Failure::ClientTimeout, Stage::Request, true));
            }
            Err(BodyError::Read(_) | BodyError::Truncated) => {
                return Err(failed(Failure::ClientClosed, Stage::Request, true));
            }
            Err(BodyError::Framing(e)) => return Err(failed(Failure::BadRequestBody(e), Stage::Request, true)),
            Err(BodyError::TooLarge) => return Err(failed(Failure::RequestTooLarge, Stage::Request, true)),
        }
    }
    // After a failed write the server may have answered early (413, 401): read that instead.
    if request_complete && up.side.has_pending() {
        up.side
            .flush(Some(timeout_server))
            .await
            .map_err(|_| failed(Failure::ServerClosed, Stage::Headers, body_touched))?;
    }

    Ok(request_complete)
}

/// Reads the response head (passing 1xx interim responses on to the client); returns it with
/// the bytes read past it.
async fn read_response(
    x: &mut Exchange,
    client: &mut Client,
    up: &mut Upstream,
    body_touched: bool,
) -> Result<(h1::Response, Option<BytesMut>), Failed> {
    let timeout_server = x.backend.cfg.timeout_server;
    let mut buf: Option<BytesMut> = None;
    let mut interim = 0;
    loop {
        if let Some(b) = buf.as_mut() {
            match h1::parse_response(b, &x.snap.limits, &x.req.head.method) {
                Ok(Some(resp)) if resp.status.is_informational() && resp.status != StatusCode::SWITCHING_PROTOCOLS => {
                    // A server sending interim answers without end is answering nothing.
                    interim += 1;
                    if interim > MAX_INTERIM {
                        let bad = Failure::BadResponse(h1::HeadError::Malformed("too many interim responses"));
                        return Err(failed(bad, Stage::Headers, body_touched));
                    }
                    // 103 Early Hints and the like go on to an HTTP/1.1 client as they are,
                    // each taken by it before the next is read.
                    if x.req.head.version == Version::HTTP_11 {
                        let mut out = Vec::with_capacity(resp.head_len);
                        h1::write_response_head(&mut out, resp.status, &resp.reason, &resp.headers);
                        let sent = client.side.send(&[&out]);
                        if sent.is_err() || client.side.flush(Some(client.timeouts.client())).await.is_err() {
                            return Err(failed(Failure::ClientClosed, Stage::Headers, body_touched));
                        }
                    }
                    continue;
                }
                Ok(Some(resp)) => {
                    let rest = buf.filter(|b| !b.is_empty());
                    return Ok((resp, rest));
                }
                Ok(None) => {}
                Err(e) => return Err(failed(Failure::BadResponse(e), Stage::Headers, body_touched)),
            }
        }
        let deadline = Some(Instant::now() + timeout_server);
        let got = up
            .side
            .read_with(deadline, |data| {
                if !data.is_empty() {
                    buf.get_or_insert_with(|| BytesMut::with_capacity(data.len())).extend_from_slice(data);
                }
                !data.is_empty()
            })
            .await;
        match got {
            Ok(true) => {}
            Ok(false) => return Err(failed(Failure::ServerClosed, Stage::Headers, body_touched)),
            Err(IoFail::TimedOut) => return Err(failed(Failure::ServerTimeout, Stage::Headers, body_touched)),
            Err(_) => return Err(failed(Failure::ServerClosed, Stage::Headers, body_touched)),
        }
    }
}

/// Splices an upgraded connection (WebSocket and the like, or a CONNECT) both ways until both
/// sides close or nothing moves for `idle` (`timeout tunnel`).
async fn tunnel(client: &mut Client, up: &mut Upstream, head: Vec<u8>, from_server: Option<BytesMut>, idle: Duration) {
    let early = from_server.unwrap_or_default();
    if client.side.send(&[&head, &early]).is_err() || client.side.flush(Some(client.timeouts.client())).await.is_err() {
        return;
    }
    if let Some(buf) = client.buf.take() {
        if up.side.send(&[&buf]).is_err() || up.side.flush(Some(idle)).await.is_err() {
            return;
        }
    }
    let mut client_side = std::mem::replace(&mut client.side, Side::closed());
    let mut server_side = std::mem::replace(&mut up.side, Side::closed());
    if client_side.is_tls() || server_side.is_tls() {
        // Over TLS the bytes pass through rustls: the relay of sides.
        crate::tunnel::relay(&mut client_side, &mut server_side, idle, (None, None), &|| (), None).await;
        return;
    }
    let (Ok(mut a), Ok(mut b)) = (client_side.into_stream(), server_side.into_stream()) else { return };
    crate::tunnel::splice(&mut a, &mut b, idle, (None, None), &|| (), None).await;
}

/// An HTTP/1 request to a `proto h2` server: a stream of the server's HTTP/2 connection, the
/// body re-framed each way (chunked or by length to the client, as HTTP/1.1 wants it; the
/// server's trailers become chunked trailers). Ok: whether the client connection stays open.
async fn via_h2(
    x: &mut Exchange,
    client: &mut Client,
    id: ServerId,
    t: &mut Tries,
) -> Result<bool, (ProxyError, Attempt)> {
    let backend = x.backend.clone();
    let server = &backend.servers[id];
    let give_up = |failure, stage, replayable| {
        (ProxyError::new(failure, stage), Attempt { retries: t.retries, reused: false, replayable })
    };
    let t_connect = Instant::now();
    let tls = server.tls.as_ref().filter(|_| server.cfg.tls.enabled).map(|c| upstream::tls_to(server, c, &x.req.head));
    let mut send = match upstream::h2_pool::sender(server.cfg.addr, backend.cfg.timeout_connect, tls.as_ref()).await {
        Ok(send) => send,
        Err(e) => {
            server.live.connect_errors.fetch_add(1, Ordering::Relaxed);
            observe_result(&backend, id, Observation::ConnectFailed);
            let failure = match e {
                ConnectError::Timeout => Failure::ConnectTimeout,
                ConnectError::Io(e) | ConnectError::Tls(e) => Failure::ConnectFailed(e.kind()),
            };
            return Err(give_up(failure, Stage::Connect, true));
        }
    };
    if let Some(e) = x.entry.as_mut() {
        e.tc = ms(t_connect.elapsed());
    }
    let Some(parts) = upstream::h2_pool::request_head(&x.req.head, server.cfg.tls.enabled) else {
        return Err(give_up(Failure::BadRequest(h1::HeadError::Malformed("authority")), Stage::Request, false));
    };
    let framing = x.req.framing;
    let t_send = Instant::now();
    let (response, mut upload) = match send.send_request(http::Request::from_parts(parts, ()), framing.is_empty()) {
        Ok(pair) => pair,
        Err(_) => return Err(give_up(Failure::ServerClosed, Stage::Headers, true)),
    };
    // The request body, decoded from its HTTP/1 framing, as DATA frames.
    if !framing.is_empty() {
        let idle = client.timeouts.client();
        let mut chunked = (framing == Framing::Chunked).then(h1::Chunked::new);
        let mut left = match framing {
            Framing::Length(n) => n,
            _ => u64::MAX,
        };
        let mut pending = client.buf.take();
        loop {
            let input = match pending.take() {
                Some(b) => b,
                None => {
                    let mut got = BytesMut::new();
                    let read = client.side.read_with(Some(Instant::now() + idle), |b| {
                        got.extend_from_slice(b);
                        b.len()
                    });
                    match read.await {
                        Ok(0) => return Err(give_up(Failure::ClientClosed, Stage::Request, false)),
                        Ok(_) => got,
                        Err(IoFail::TimedOut) => return Err(give_up(Failure::ClientTimeout, Stage::Request, false)),
                        Err(_) => return Err(give_up(Failure::ClientClosed, Stage::Request, false)),
                    }
                }
            };
            let mut data: Vec<bytes::Bytes> = Vec::new();
            let (used, done) = match chunked.as_mut() {
                Some(dec) => {
                    let used = dec
                        .scan(&input, |d| data.push(bytes::Bytes::copy_from_slice(d)))
                        .map_err(|e| give_up(Failure::BadRequestBody(e), Stage::Request, false))?;
                    (used, dec.is_done())
                }
                None => {
                    let take = left.min(input.len() as u64) as usize;
                    data.push(bytes::Bytes::copy_from_slice(&input[..take]));
                    left -= take as u64;
                    (take, left == 0)
                }
            };
            for piece in data.into_iter().filter(|d| !d.is_empty()) {
                if upstream::h2_pool::send_data(&mut upload, piece, false, backend.cfg.timeout_server).await.is_err() {
                    return Err(give_up(Failure::ServerClosed, Stage::Request, false));
                }
            }
            if done {
                // What follows the body is the client's next request.
                if used < input.len() {
                    client.buf = Some(BytesMut::from(&input[used..]));
                }
                let _ = upload.send_data(bytes::Bytes::new(), true);
                break;
            }
        }
    }
    // The answer.
    let resp = match tokio::time::timeout(backend.cfg.timeout_server, response).await {
        Err(_) => return Err(give_up(Failure::ServerTimeout, Stage::Headers, false)),
        Ok(Err(_)) => return Err(give_up(Failure::ServerClosed, Stage::Headers, framing.is_empty())),
        Ok(Ok(resp)) => resp,
    };
    let (mut head, mut body) = resp.into_parts();
    observe_result(&backend, id, Observation::Status(head.status.as_u16()));
    if let Some(e) = x.entry.as_mut() {
        e.tr = ms(t_send.elapsed());
        e.status = head.status.as_u16();
    }
    let who = Who { peer: x.peer, bind: client.bind, tls: client.tls.as_deref(), vars: &x.vars };
    route::stick_store(&backend, id, &mut x.stick, &who, (head.status, &head.headers));
    if head.status.is_client_error() {
        x.vars.count_error();
    }
    // The `http-response` rules (then the `http-after-response` ones), as for HTTP/1 servers.
    {
        let fe = &x.snap.frontends[x.fe];
        let scope = (x.peer, client.bind, client.tls.as_deref());
        let rules_head = (&mut head.status, &mut head.headers);
        let mut answer = super::client::response_rules(fe, &backend, scope, &x.req.head, rules_head, &mut x.vars);
        let after_head = match answer.as_mut() {
            Some(a) => (&mut a.page.status, &mut a.page.headers),
            None => (&mut head.status, &mut head.headers),
        };
        super::client::after_response(fe, Some(&backend), scope, &x.req.head, after_head, &mut x.vars);
        if let Some(answer) = answer {
            let status = answer.page.status.as_u16();
            let bytes = respond(client, answer.page, x.req.head.method == Method::HEAD, true).await;
            if let Some(mut e) = x.entry.take() {
                e.status = status;
                e.termination = answer.termination;
                x.shared.access_log.write(&e.format(bytes));
            }
            return Ok(false);
        }
    }
    if backend.cfg.cookie.is_some() {
        route::set_cookie(&backend, id, x.cookie_ok, &mut head.headers);
    }
    let is_head = x.req.head.method == Method::HEAD;
    let http10 = x.req.head.version == Version::HTTP_10;
    let no_body = is_head
        || body.is_end_stream()
        || head.status == StatusCode::NO_CONTENT
        || head.status == StatusCode::NOT_MODIFIED;
    let length = head.headers.get(http::header::CONTENT_LENGTH).is_some();
    // Without a length, an HTTP/1.1 client gets it chunked; an HTTP/1.0 one until the close.
    let chunk = !no_body && !length && !http10;
    // An HTTP/1.0 client reading a body to the close cannot be kept.
    let until_close = http10 && !length && !no_body;
    let keep = !(x.req.close || until_close || client.side.has_pending());
    if chunk {
        head.headers.insert(http::header::TRANSFER_ENCODING, http::HeaderValue::from_static("chunked"));
    } else if no_body && !is_head && !length {
        head.headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from_static("0"));
    }
    if !keep {
        head.headers.insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    let mut out = Vec::with_capacity(256);
    h1::write_response_head(&mut out, head.status, b"", &head.headers);
    if client.side.send(&[&out]).is_err() {
        return Err(give_up(Failure::ClientClosed, Stage::Data, false));
    }
    let write_idle = client.timeouts.client();
    let mut moved = 0u64;
    if !no_body {
        loop {
            match tokio::time::timeout(backend.cfg.timeout_server, body.data()).await {
                Err(_) => return Err(give_up(Failure::ServerTimeout, Stage::Data, false)),
                Ok(Some(Ok(data))) => {
                    let n = data.len();
                    moved += n as u64;
                    let sent = if chunk && n > 0 {
                        let size = h1::size_line(n);
                        client.side.send(&[size.as_bytes(), &data, b"\r\n"])
                    } else {
                        client.side.send(&[&data])
                    };
                    if sent.is_err() || client.side.flush(Some(write_idle)).await.is_err() {
                        return Err(give_up(Failure::ClientClosed, Stage::Data, false));
                    }
                    let _ = body.flow_control().release_capacity(n);
                }
                Ok(Some(Err(_))) => return Err(give_up(Failure::ServerClosed, Stage::Data, false)),
                Ok(None) => break,
            }
        }
        if chunk {
            // The server's trailers, as chunked trailers.
            let mut end = b"0\r\n".to_vec();
            if let Ok(Ok(Some(trailers))) = tokio::time::timeout(backend.cfg.timeout_server, body.trailers()).await {
                for (name, value) in &trailers {
                    end.extend_from_slice(name.as_str().as_bytes());
                    end.extend_from_slice(b": ");
                    end.extend_from_slice(value.as_bytes());
                    end.extend_from_slice(b"\r\n");
                }
            }
            end.extend_from_slice(b"\r\n");
            if client.side.send(&[&end]).is_err() {
                return Err(give_up(Failure::ClientClosed, Stage::Data, false));
            }
        }
    }
    if client.side.flush(Some(write_idle)).await.is_err() {
        return Err(give_up(Failure::ClientClosed, Stage::Data, false));
    }
    if let Some(e) = x.entry.take() {
        x.shared.access_log.write(&e.format(moved));
    }
    Ok(keep)
}
