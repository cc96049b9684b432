//! Upstream connections: a per-worker pool of HTTP/1.1 connections on hyper's `client::conn`.
//!
//! Each worker thread runs its own current-thread runtime, so the pool is thread-local and
//! needs no lock. A connection goes back to the pool only once its response body has been read
//! to the end; the client side closing has no say in it.
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The body sent upstream: the client's, streamed; or nothing, for a replayed safe request.
pub type UpBody = http_body_util::Either<crate::http::RequestBody, http_body_util::Empty<bytes::Bytes>>;

pub type Sender = SendRequest<UpBody>;

/// Idle connections kept per server and worker; more are closed.
const MAX_IDLE_PER_SERVER: usize = 512;

struct Idle {
    sender: Sender,
    since: Instant,
}

thread_local! {
    static POOL: RefCell<HashMap<SocketAddr, Vec<Idle>, crate::fasthash::FastBuild>> = RefCell::new(HashMap::default());
}

/// A connection ready to carry a request.
pub struct Upstream {
    pub sender: Sender,
    /// How long it sat idle in the pool (None: freshly connected).
    pub idle_for: Option<Duration>,
}

#[derive(Debug)]
pub enum ConnectError {
    Timeout,
    Io(std::io::Error),
    Handshake(hyper::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Timeout => write!(f, "connect timeout"),
            ConnectError::Io(e) => write!(f, "connect: {e}"),
            ConnectError::Handshake(e) => write!(f, "handshake: {e}"),
        }
    }
}

/// The most recently used live idle connection to `addr`, if any.
pub fn take_idle(addr: SocketAddr) -> Option<Upstream> {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let idle = pool.get_mut(&addr)?;
        while let Some(Idle { sender, since }) = idle.pop() {
            if !sender.is_closed() {
                return Some(Upstream { sender, idle_for: Some(since.elapsed()) });
            }
        }
        None
    })
}

/// Give a connection back after its response was read to the end.
pub fn put_idle(addr: SocketAddr, sender: Sender) {
    if sender.is_closed() {
        return;
    }
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let idle = pool.entry(addr).or_default();
        if idle.len() >= MAX_IDLE_PER_SERVER {
            idle.retain(|c| !c.sender.is_closed());
            if idle.len() >= MAX_IDLE_PER_SERVER {
                return;
            }
        }
        idle.push(Idle { sender, since: Instant::now() });
    });
}

/// Open a new connection and run its HTTP/1.1 client task.
pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Upstream, ConnectError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => return Err(ConnectError::Timeout),
        Ok(Err(e)) => return Err(ConnectError::Io(e)),
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    // One contiguous write per request: cheaper than writev for the small heads and bodies
    // a proxy mostly moves.
    let (sender, conn) =
        http1::Builder::new().writev(false).handshake(TokioIo::new(stream)).await.map_err(ConnectError::Handshake)?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(%addr, "upstream connection ended: {e}");
        }
    });
    Ok(Upstream { sender, idle_for: None })
}
