//! `mode tcp`: a full proxy of TCP connections. Per connection: the frontend's backend, a
//! server chosen by the backend's `balance` (the client's address is the key of `source`; the
//! HTTP keys of `uri`, `url_param` and `hdr` do not exist here, so those fall back to round
//! robin, as in HAProxy), a connection to it under `timeout connect` with `retries` and
//! `option redispatch` as [`decide`] says, the backend's queue when every server is full, then
//! bytes both ways until each side has closed (a close half-closes the other side) or nothing
//! moves either way for `timeout tunnel` (else the shorter of `timeout client` and
//! `timeout server`). One tcplog-shaped line per connection when logging is on.
pub mod hello;
pub mod udp;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use fulcrum_balance::{Flow, ServerId};
use fulcrum_model::Algorithm;
use tokio::net::TcpStream;

use crate::error::{Failure, ProxyError, Stage};
use crate::l7::{ms, LogEntry};
use crate::observe::{observe_result, Observation};
use crate::pick::{choose, Slot, Template};
use crate::retry::{decide, Attempt, Decision, RetryPolicy};
use crate::snapshot::{BackendRt, Facts};
use crate::Shared;

/// Serves one accepted `mode tcp` connection to its end.
pub(crate) async fn serve(stream: std::net::TcpStream, mut peer: SocketAddr, bind: SocketAddr, shared: &Arc<Shared>) {
    let accepted = Instant::now();
    let snap = shared.snapshot.load_full();
    let Some(fe) = snap.frontend_for(&bind) else { return };
    let Ok(mut client) = TcpStream::from_std(stream) else { return };
    let mut facts = Facts::connection(peer, Some(bind));
    // What `track-sc*` rules track, for the connection's life.
    let mut vars = crate::snapshot::rules::Vars::in_snapshot(&snap);
    if !fe.tcp_rules(false, &facts, &mut vars, false) {
        // `tcp-request connection reject`: closed at once, without a log line (as HAProxy).
        return;
    }
    // `accept-proxy`: the PROXY protocol header comes first; its source is the client from
    // here on (the connection rules above saw the real address, as in HAProxy).
    let mut first = Vec::new();
    if fe.cfg.accept_proxy.contains(&bind) {
        match Box::pin(read_proxy_header(&mut client, &mut first, fe.cfg.timeout_client)).await {
            Ok(source) => {
                peer = source.unwrap_or(peer);
                facts.client = peer.ip();
                facts.peer = Some(peer);
            }
            Err(why) => {
                tracing::debug!(%peer, "accept-proxy: {why}");
                return;
            }
        }
    }
    // An `ssl` bind: TLS is terminated here, and ACLs see what it negotiated (`ssl_fc_sni`).
    let negotiated;
    let mut client = match fe.tls_for(&bind) {
        None => Conn::Plain(client),
        Some(config) => {
            let deadline = Instant::now() + fe.cfg.timeout_client;
            let Some(side) = Box::pin(terminate(client, config, std::mem::take(&mut first), deadline)).await else {
                return;
            };
            negotiated = side.tls_session().map(fulcrum_tls::Negotiated::of);
            facts.tls = negotiated.as_ref();
            Conn::Tls(Box::new(side))
        }
    };
    // HAProxy's logs mark a frontend reached over TLS with a '~'.
    let fe_name = match client {
        Conn::Tls(_) => format!("{}~", fe.cfg.name),
        Conn::Plain(_) => fe.cfg.name.clone(),
    };
    // The first bytes, when an ACL reads the ClientHello: up to `tcp-request inspect-delay`.
    let mut sni = None;
    if let (true, Some(delay), Conn::Plain(plain)) = (fe.reads_hello, fe.cfg.tcp_request.inspect_delay, &mut client) {
        if let hello::Hello::Handshake { kind, sni: name } = Box::pin(read_hello(plain, &mut first, delay)).await {
            facts.hello_type = Some(kind);
            sni = name;
        }
    }
    facts.sni = sni.as_deref();
    vars.count_session();
    let accepted_content = fe.tcp_rules(true, &facts, &mut vars, false);
    let routed = fe.route_tcp(&Facts { vars: Some(&vars), ..facts }).cloned();
    // The entries tracked stay tracked while the connection lives (a pointer when any).
    let _tracked = vars.into_session();
    let Some(backend) = routed.filter(|_| accepted_content) else {
        if !accepted_content && shared.log_enabled(fe) {
            let mut e = LogEntry::new(peer, accepted, &fe_name, String::new());
            e.backend = fe.cfg.name.clone();
            e.server = "<NOSRV>".into();
            e.termination = *b"PR";
            shared.access_log.write(&e.format_tcp(0));
        }
        close_read(&client);
        return;
    };
    let mut entry = shared.log_enabled(fe).then(|| {
        let mut e = LogEntry::new(peer, accepted, &fe_name, String::new());
        e.backend.clone_from(&backend.cfg.name);
        e
    });
    let key = match backend.cfg.algorithm {
        Algorithm::Source => Some(crate::l7::source_key(peer.ip())),
        _ => None,
    };
    // The address the client reached: the bind's, unless it is a wildcard (one system call
    // less per connection in the common case).
    let local = if bind.ip().is_unspecified() { client.local_addr().unwrap_or(bind) } else { bind };
    let flow = Flow { client: peer, destination: local, now: accepted };
    // IPVS persistence: the client's (masked) address names a template that points at a server.
    let template = Template::of(&backend, peer.ip());
    // `stick on src` and other `stick` rules: the connection's facts give the key.
    let (stuck, stick) = crate::stick::on_request(&backend, &facts, false, backend.cfg.persist);
    let preferred = template.as_ref().and_then(|t| t.server(accepted)).map(Into::into).or(stuck);
    // Boxed, as the phases before the relay: the task keeps only the relay's state for the
    // connection's life, not the largest phase's.
    let connected = Box::pin(connect(
        &backend,
        key.as_deref(),
        &flow,
        (preferred, template.as_ref()),
        accepted,
        entry.as_deref_mut(),
    ))
    .await;
    let (mut server, slot) = match connected {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(backend = %backend.cfg.name, %peer, "{error}");
            if let Some(mut e) = entry {
                e.termination = error.termination();
                shared.access_log.write(&e.format_tcp(0));
            }
            close_read(&client);
            return;
        }
    };
    let id = slot.id;
    crate::stick::on_response(&backend, id, stick, &facts);
    // The template lives while this connection does (released however the relay ends).
    let _held = template.map(|t| t.hold(id));
    // `server ... ssl`: TLS to the server, its handshake done before any byte is relayed (within
    // `timeout connect`, as HAProxy counts it); the PROXY protocol header goes first, in the
    // clear, and the client's first bytes through TLS.
    let server_tls = backend.servers[id].tls.as_ref().filter(|_| backend.servers[id].cfg.tls.enabled);
    let mut head = match backend.servers[id].cfg.send_proxy {
        Some(version) => crate::proxy_protocol::header(version, peer, local),
        None => Vec::new(),
    };
    if server_tls.is_none() {
        head.append(&mut first);
    }
    if !head.is_empty() {
        use tokio::io::AsyncWriteExt;
        if let Err(e) = Box::pin(server.write_all(&head)).await {
            tracing::debug!(backend = %backend.cfg.name, %peer, "sending the first bytes: {e}");
            return;
        }
    }
    let mut server_side = None;
    let mut server = Some(server);
    if let (Some(config), Some(stream)) = (server_tls, server.take_if(|_| server_tls.is_some())) {
        let name = fulcrum_tls::server_name(&backend.servers[id].cfg.tls, backend.servers[id].cfg.addr.ip(), None);
        let tls = crate::upstream::TlsTo { config, name };
        let deadline = Instant::now() + backend.cfg.timeout_connect;
        let mut side = match Box::pin(crate::upstream::start_tls(stream, &tls, deadline)).await {
            Ok(side) => side,
            Err(e) => {
                tracing::debug!(backend = %backend.cfg.name, %peer, "{e}");
                if let Some(mut e) = entry {
                    e.termination = *b"SC";
                    shared.access_log.write(&e.format_tcp(0));
                }
                return;
            }
        };
        if !first.is_empty() && side.send(&[&first]).is_err() {
            return;
        }
        server_side = Some(side);
    }
    let cfg = &backend.cfg;
    let idle = cfg.timeout_tunnel.unwrap_or_else(|| cfg.timeout_server.min(fe.cfg.timeout_client));
    let live = &backend.servers[id].live;
    let half_closed = std::sync::atomic::AtomicBool::new(false);
    let on_half = || {
        half_closed.store(true, Ordering::Relaxed);
        live.inactive.fetch_add(1, Ordering::Relaxed);
    };
    if !first.is_empty() {
        live.traffic.add(true, first.len());
    }
    let fin = (fe.cfg.timeout_client_fin, cfg.timeout_server_fin);
    let traffic = Some(&live.traffic);
    let moved = match (client, server_side, server) {
        (Conn::Plain(mut plain), None, Some(mut server)) => {
            crate::tunnel::splice(&mut plain, &mut server, idle, fin, &on_half, traffic).await
        }
        (client, server_side, server) => {
            let Some(mut server) = server_side.or_else(|| server.map(crate::io::Side::registered)) else { return };
            let mut client = match client {
                Conn::Tls(side) => *side,
                Conn::Plain(plain) => crate::io::Side::registered(plain),
            };
            crate::tunnel::relay(&mut client, &mut server, idle, fin, &on_half, traffic).await
        }
    };
    if half_closed.load(Ordering::Relaxed) {
        live.inactive.fetch_sub(1, Ordering::Relaxed);
    }
    drop(slot);
    if let Some(mut e) = entry {
        // A tunnel that went idle is cut by the proxy's timeout: `cD` (HAProxy's client-side
        // data timeout); a clean end of both directions is `--`.
        e.termination = if moved.is_some() { *b"--" } else { *b"cD" };
        shared.access_log.write(&e.format_tcp(moved.map_or(0, |(_, from_server)| from_server)));
    }
}

/// Why reading the first bytes stopped before they decided anything.
enum ReadEnd {
    Closed,
    Failed(std::io::Error),
    TimedOut,
}

/// The client's connection: as accepted, or behind TLS that fulcrum terminates.
enum Conn {
    Plain(TcpStream),
    Tls(Box<crate::io::Side>),
}

impl Conn {
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Conn::Plain(s) => s.local_addr(),
            Conn::Tls(side) => side.local_addr(),
        }
    }
}

/// The TLS handshake of an `ssl` bind's client, within `deadline`; `first`: bytes already read
/// (after a PROXY protocol header), the start of the handshake. None when it fails (logged at
/// debug level, as a connection closed before any request).
async fn terminate(
    client: TcpStream,
    config: &Arc<rustls::ServerConfig>,
    first: Vec<u8>,
    deadline: Instant,
) -> Option<crate::io::Side> {
    let mut tls = rustls::ServerConnection::new(Arc::clone(config)).ok()?;
    let mut rest = &first[..];
    while !rest.is_empty() {
        if tls.read_tls(&mut rest).is_err() || tls.process_new_packets().is_err() {
            return None;
        }
    }
    let peer = client.peer_addr().ok();
    let mut side = crate::io::Side::registered_tls(client, tls);
    match side.handshake(deadline).await {
        Ok(()) => Some(side),
        Err(e) => {
            tracing::debug!(?peer, "TLS handshake: {e}");
            None
        }
    }
}

/// Reads the client's first bytes into `buf` until `decide` makes something of what it holds,
/// or reading ends (the client closes, an error, `deadline`).
async fn read_until<T>(
    client: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: tokio::time::Instant,
    mut decide: impl FnMut(&[u8]) -> Option<T>,
) -> Result<T, ReadEnd> {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(decided) = decide(buf) {
            return Ok(decided);
        }
        match tokio::time::timeout_at(deadline, client.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            Ok(Ok(_)) => return Err(ReadEnd::Closed),
            Ok(Err(e)) => return Err(ReadEnd::Failed(e)),
            Err(_) => return Err(ReadEnd::TimedOut),
        }
    }
}

/// Reads an `accept-proxy` connection's PROXY protocol header (within `limit`): its source
/// address (None for a header that gives none), the bytes after it left in `rest`.
async fn read_proxy_header(
    client: &mut TcpStream,
    rest: &mut Vec<u8>,
    limit: std::time::Duration,
) -> Result<Option<SocketAddr>, String> {
    use crate::proxy_protocol::{parse, Incoming};
    let deadline = tokio::time::Instant::now() + limit;
    let read = read_until(client, rest, deadline, |bytes| match parse(bytes) {
        Incoming::Partial => None,
        Incoming::Header { len, source } => Some(Ok((len, source))),
        Incoming::Invalid(why) => Some(Err(why)),
    });
    match read.await {
        Ok(Ok((len, source))) => {
            rest.drain(..len.min(rest.len()));
            Ok(source)
        }
        Ok(Err(why)) => Err(why),
        Err(ReadEnd::Closed) => Err("closed before a PROXY protocol header".into()),
        Err(ReadEnd::Failed(e)) => Err(e.to_string()),
        Err(ReadEnd::TimedOut) => Err("no PROXY protocol header in time".into()),
    }
}

/// Reads the client's first bytes into `first` until they tell whether they start a TLS
/// handshake (and, for a ClientHello, its server name), the client stops sending, or `delay`
/// passes. The bytes are sent on to the server later, as they came.
async fn read_hello(client: &mut TcpStream, first: &mut Vec<u8>, delay: std::time::Duration) -> hello::Hello {
    let deadline = tokio::time::Instant::now() + delay;
    let read = read_until(client, first, deadline, |bytes| match hello::parse(bytes) {
        hello::Hello::Partial if bytes.len() > 16384 + 2048 + 5 => Some(hello::Hello::NotTls),
        hello::Hello::Partial => None,
        decided => Some(decided),
    });
    match read.await {
        Ok(decided) => decided,
        Err(_) => hello::parse(first),
    }
}

/// Reads and drops what the client has sent so far, so that closing sends a FIN rather than
/// the reset the kernel sends for unread data.
fn close_read(client: &Conn) {
    let Conn::Plain(client) = client else { return };
    let mut scratch = [0u8; 4096];
    for _ in 0..16 {
        match client.try_read(&mut scratch) {
            Ok(n) if n > 0 => continue,
            _ => break,
        }
    }
}

/// A connection to a server of `backend`, with its slot: picks, queues, connects, retries and
/// redispatches as HAProxy does for a request that can always be sent again (nothing of the
/// client's has been read yet).
async fn connect(
    backend: &Arc<BackendRt>,
    key: Option<&[u8]>,
    flow: &Flow,
    (mut preferred, template): (Option<crate::pick::Persist>, Option<&Template>),
    accepted: Instant,
    mut entry: Option<&mut LogEntry>,
) -> Result<(TcpStream, Slot), ProxyError> {
    let cfg = &backend.cfg;
    let policy = RetryPolicy { retries: cfg.retries, redispatch: cfg.redispatch, timeout_connect: cfg.timeout_connect };
    let mut tried: Vec<ServerId> = Vec::new();
    let mut again: Option<ServerId> = None;
    let mut retries = 0;
    let queue_deadline = accepted + cfg.timeout_queue;
    loop {
        let id = choose(backend, again.take(), key, flow, &tried, preferred.take(), queue_deadline).await?;
        // The template points at the chosen server at once, as IPVS creates it when it
        // schedules: the client's parallel connections follow it.
        if let Some(t) = template {
            t.point(id);
        }
        let slot = Slot::new(backend, id);
        let server = &backend.servers[id];
        server.live.total.fetch_add(1, Ordering::Relaxed);
        if let Some(e) = entry.as_deref_mut() {
            e.server.clone_from(&server.cfg.name);
            e.tw = ms(accepted.elapsed());
            e.retries = retries;
        }
        let started = Instant::now();
        let failure =
            match tokio::time::timeout(cfg.timeout_connect, TcpStream::connect(server.cfg.addr_for(flow.destination)))
                .await
            {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    if let Some(e) = entry.as_deref_mut() {
                        e.tc = ms(started.elapsed());
                    }
                    return Ok((stream, slot));
                }
                Ok(Err(e)) => Failure::ConnectFailed(e.kind()),
                Err(_) => Failure::ConnectTimeout,
            };
        drop(slot);
        server.live.connect_errors.fetch_add(1, Ordering::Relaxed);
        observe_result(backend, id, Observation::ConnectFailed);
        let error = ProxyError::new(failure, Stage::Connect);
        match decide(&policy, &Attempt { retries, reused: false, replayable: true }, error) {
            Decision::SameServer { pause } => {
                retries += 1;
                server.live.retries.fetch_add(1, Ordering::Relaxed);
                again = Some(id);
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
            Decision::Redispatch => {
                retries += 1;
                server.live.redispatches.fetch_add(1, Ordering::Relaxed);
                tried.push(id);
            }
            // Only for a reused connection, which a TCP connection never has: try once more.
            Decision::NewConnection => again = Some(id),
            Decision::GiveUp(error) => {
                if let Some(e) = entry.as_deref_mut() {
                    e.retries = retries;
                }
                return Err(error);
            }
        }
    }
}
