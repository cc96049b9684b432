//! Server connections: connect, and a per-worker pool of idle keep-alive connections.
//!
//! Each worker runs its own current-thread runtime, so the pool is thread-local and needs no
//! lock. A pooled connection has no task and no buffer: it is a registered socket with no read
//! readiness when it is pooled, so a later read event means the server closed it (or spoke out
//! of turn): [`take_idle`] skips such a connection without a system call, and [`sweep`] (run
//! by the worker every second) closes them, so no socket lingers in CLOSE_WAIT. Connections idle
//! for [`PURGE_DELAY`] are closed half at a time, as HAProxy's `pool-purge-delay` does.
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

pub(crate) mod h2_pool;

use crate::fasthash::FastBuild;
use crate::io::{peer_spoke, Side};

/// A pooled connection idle longer than this may have been closed by the server as we reuse
/// it; a request that cannot be sent again is not risked on one.
pub(crate) const SAFE_IDLE: Duration = Duration::from_millis(1500);

/// Idle connections kept per server and worker; more are closed.
const MAX_IDLE_PER_SERVER: usize = 512;

/// How often, and after how long idle, the pool closes half of a server's idle connections
/// (HAProxy's `pool-purge-delay` default).
pub(crate) const PURGE_DELAY: Duration = Duration::from_secs(5);

struct Idle {
    side: Side,
    since: Instant,
}

impl Idle {
    /// Whether the server closed it or spoke since it was pooled (no system call).
    fn spoke(&self) -> bool {
        self.side.registered_stream().is_none_or(peer_spoke)
    }
}

/// Which connections may serve a request: to this address, and over TLS with this
/// configuration and server name (a hash of both; 0 without TLS). Two backends that reach one
/// server with different CAs never share a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    pub addr: SocketAddr,
    pub sni: u64,
}

impl PoolKey {
    pub(crate) fn plain(addr: SocketAddr) -> PoolKey {
        PoolKey { addr, sni: 0 }
    }
}

/// A server's TLS for one connection: its configuration and the name it presents.
pub(crate) struct TlsTo<'a> {
    pub config: &'a std::sync::Arc<rustls::ClientConfig>,
    pub name: rustls::pki_types::ServerName<'static>,
}

impl TlsTo<'_> {
    /// The pool key of connections made with this name.
    pub(crate) fn key(&self, addr: SocketAddr) -> PoolKey {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.name.hash(&mut h);
        std::sync::Arc::as_ptr(self.config).hash(&mut h);
        PoolKey { addr, sni: h.finish() | 1 }
    }
}

thread_local! {
    static POOL: RefCell<HashMap<PoolKey, Vec<Idle>, FastBuild>> = RefCell::new(HashMap::default());
    static LAST_PURGE: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// A server connection ready to carry a request.
pub(crate) struct Upstream {
    pub side: Side,
    /// How long it sat idle in the pool (None: freshly connected).
    pub idle_for: Option<Duration>,
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("connect timeout")]
    Timeout,
    #[error("connect: {0}")]
    Io(#[from] std::io::Error),
    #[error("SSL handshake failure: {0}")]
    Tls(std::io::Error),
}

/// The most recently used live idle connection for `key`, if any.
pub(crate) fn take_idle(key: PoolKey) -> Option<Upstream> {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let idle = pool.get_mut(&key)?;
        while let Some(conn) = idle.pop() {
            if !conn.spoke() {
                return Some(Upstream { side: conn.side, idle_for: Some(conn.since.elapsed()) });
            }
        }
        None
    })
}

/// Gives back a connection whose response was read to its last byte. A connection the server
/// has spoken on since (extra bytes, a close) is not pooled: the next request would read them
/// as its answer.
pub(crate) fn put_idle(key: PoolKey, mut side: Side) {
    if side.has_pending() {
        return;
    }
    let Some(stream) = side.registered_stream() else { return };
    if peer_spoke(stream) {
        // Readiness may be stale (the last read filled the buffer) or real: one read tells,
        // and clears it when nothing is there. Over TLS that read goes through rustls (a
        // session ticket the server sent late is taken in; application bytes are not).
        match side.try_read(&mut [0u8; 1]) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            _ => return,
        }
    }
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let idle = pool.entry(key).or_default();
        if idle.len() >= MAX_IDLE_PER_SERVER {
            idle.retain(|c| !c.spoke());
            if idle.len() >= MAX_IDLE_PER_SERVER {
                return;
            }
        }
        idle.push(Idle { side, since: Instant::now() });
    });
}

/// Closes the idle connections whose server has closed them, and every [`PURGE_DELAY`] the
/// older half of those idle that long (the pool hands out the newest first, so the oldest are
/// the ones a quieter load no longer needs).
pub(crate) fn sweep(now: Instant) {
    let purge = LAST_PURGE.with(|last| match last.get() {
        Some(at) if now.duration_since(at) < PURGE_DELAY => false,
        _ => {
            last.set(Some(now));
            true
        }
    });
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        for idle in pool.values_mut() {
            idle.retain(|c| !c.spoke());
            if purge {
                let stale = idle.iter().take_while(|c| now.duration_since(c.since) >= PURGE_DELAY).count();
                idle.drain(..stale.div_ceil(2));
            }
        }
        pool.retain(|_, idle| !idle.is_empty());
    });
}

/// Opens a new connection; with `tls`, its TLS handshake is done too, within the same
/// `timeout connect` (as HAProxy counts it): a failed handshake is a failed connection, retried
/// and redispatched as one.
pub(crate) async fn connect(
    addr: SocketAddr,
    timeout: Duration,
    tls: Option<&TlsTo<'_>>,
) -> Result<Upstream, ConnectError> {
    let deadline = Instant::now() + timeout;
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => return Err(ConnectError::Timeout),
        Ok(result) => result?,
    };
    let _ = stream.set_nodelay(true);
    let side = match tls {
        None => Side::registered(stream),
        Some(tls) => start_tls(stream, tls, deadline).await?,
    };
    Ok(Upstream { side, idle_for: None })
}

/// TLS on a connected server socket: the client connection, its handshake done within
/// `deadline` (a failed one is a failed connect).
pub(crate) async fn start_tls(stream: TcpStream, tls: &TlsTo<'_>, deadline: Instant) -> Result<Side, ConnectError> {
    let conn = rustls::ClientConnection::new(std::sync::Arc::clone(tls.config), tls.name.clone())
        .map_err(|e| ConnectError::Io(std::io::Error::other(e)))?;
    let mut side = Side::registered_tls_client(stream, conn);
    match side.handshake(deadline).await {
        Ok(()) => Ok(side),
        Err(crate::io::IoFail::TimedOut | crate::io::IoFail::Stopped) => Err(ConnectError::Timeout),
        Err(crate::io::IoFail::Io(e)) => Err(ConnectError::Tls(e)),
    }
}

/// A server's TLS for a request: its configuration, and the name the connection presents.
pub(crate) fn tls_to<'a>(
    server: &crate::snapshot::ServerRt,
    config: &'a std::sync::Arc<rustls::ClientConfig>,
    req: &http::request::Parts,
) -> TlsTo<'a> {
    let host = req.headers.get(http::header::HOST).and_then(|h| h.to_str().ok());
    TlsTo { config, name: fulcrum_tls::server_name(&server.cfg.tls, server.cfg.addr.ip(), host) }
}

/// A pooled connection when reuse allows it, else a new one.
pub(crate) async fn get_connection(
    addr: std::net::SocketAddr,
    backend: &crate::snapshot::BackendRt,
    replayable: bool,
    fresh_only: bool,
    proxy_header: Option<Vec<u8>>,
    tls: Option<&TlsTo<'_>>,
) -> Result<Upstream, ConnectError> {
    if let Some(header) = proxy_header {
        let mut up = Box::pin(connect(addr, backend.cfg.timeout_connect, None)).await?;
        up.side.send(&[&header]).map_err(ConnectError::Io)?;
        if let Some(tls) = tls {
            // The PROXY header goes first, in the clear; TLS follows on the same socket.
            up.side
                .flush(Some(backend.cfg.timeout_connect))
                .await
                .map_err(|e| ConnectError::Io(std::io::Error::other(e)))?;
            let Some(stream) = std::mem::replace(&mut up.side, Side::closed()).into_stream().ok() else {
                return Err(ConnectError::Io(std::io::Error::from(std::io::ErrorKind::NotConnected)));
            };
            up.side = start_tls(stream, tls, Instant::now() + backend.cfg.timeout_connect).await?;
        }
        return Ok(up);
    }
    let key = tls.map_or(PoolKey::plain(addr), |t| t.key(addr));
    let reuse = backend.cfg.http_reuse != fulcrum_model::HttpReuse::Never
        && backend.cfg.conn_mode == fulcrum_model::ConnMode::KeepAlive;
    if reuse && !fresh_only {
        while let Some(up) = take_idle(key) {
            // A request that could not be sent again is not risked on a connection the server
            // may be closing right now (`http-reuse safe`); `always` takes the risk.
            let stale = up.idle_for.is_some_and(|d| d > SAFE_IDLE);
            if stale && !replayable && backend.cfg.http_reuse != fulcrum_model::HttpReuse::Always {
                continue;
            }
            return Ok(up);
        }
    }
    // Boxed: the connect path is the rare one, and its state would otherwise sit in every
    // request's future.
    Box::pin(connect(addr, backend.cfg.timeout_connect, tls)).await
}
