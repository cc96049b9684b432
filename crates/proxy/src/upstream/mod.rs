//! Server connections: connect, and a per-worker pool of idle keep-alive connections.
//!
//! Each worker runs its own current-thread runtime, so the pool is thread-local and needs no
//! lock. A pooled connection has no task and no buffer: it is a registered socket. Its
//! readiness is cleared when it is pooled, so a later read event means the server closed it
//! (or spoke out of turn): [`take_idle`] skips such a connection without a system call, and
//! [`sweep`] (run by the worker every second) closes them, so no socket lingers in CLOSE_WAIT.
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::fasthash::FastBuild;
use crate::io::{forget_readiness, peer_spoke, Side};

/// Idle connections kept per server and worker; more are closed.
const MAX_IDLE_PER_SERVER: usize = 512;

struct Idle {
    stream: TcpStream,
    since: Instant,
}

thread_local! {
    static POOL: RefCell<HashMap<SocketAddr, Vec<Idle>, FastBuild>> = RefCell::new(HashMap::default());
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
}

/// The most recently used live idle connection to `addr`, if any.
pub(crate) fn take_idle(addr: SocketAddr) -> Option<Upstream> {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let idle = pool.get_mut(&addr)?;
        while let Some(Idle { stream, since }) = idle.pop() {
            if !peer_spoke(&stream) {
                return Some(Upstream { side: Side::registered(stream), idle_for: Some(since.elapsed()) });
            }
        }
        None
    })
}

/// Gives back a connection whose response was read to its last byte.
pub(crate) fn put_idle(addr: SocketAddr, stream: TcpStream) {
    forget_readiness(&stream);
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let idle = pool.entry(addr).or_default();
        if idle.len() >= MAX_IDLE_PER_SERVER {
            idle.retain(|c| !peer_spoke(&c.stream));
            if idle.len() >= MAX_IDLE_PER_SERVER {
                return;
            }
        }
        idle.push(Idle { stream, since: Instant::now() });
    });
}

/// Closes the idle connections whose server has closed them.
pub(crate) fn sweep() {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        for idle in pool.values_mut() {
            idle.retain(|c| !peer_spoke(&c.stream));
        }
        pool.retain(|_, idle| !idle.is_empty());
    });
}

/// Opens a new connection.
pub(crate) async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Upstream, ConnectError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => return Err(ConnectError::Timeout),
        Ok(result) => result?,
    };
    let _ = stream.set_nodelay(true);
    Ok(Upstream { side: Side::registered(stream), idle_for: None })
}
