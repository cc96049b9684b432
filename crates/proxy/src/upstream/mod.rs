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

use crate::fasthash::FastBuild;
use crate::io::{peer_spoke, Side};

/// Idle connections kept per server and worker; more are closed.
const MAX_IDLE_PER_SERVER: usize = 512;

/// How often, and after how long idle, the pool closes half of a server's idle connections
/// (HAProxy's `pool-purge-delay` default).
pub(crate) const PURGE_DELAY: Duration = Duration::from_secs(5);

struct Idle {
    stream: TcpStream,
    since: Instant,
}

thread_local! {
    static POOL: RefCell<HashMap<SocketAddr, Vec<Idle>, FastBuild>> = RefCell::new(HashMap::default());
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

/// Gives back a connection whose response was read to its last byte. A connection the server
/// has spoken on since (extra bytes, a close) is not pooled: the next request would read them
/// as its answer.
pub(crate) fn put_idle(addr: SocketAddr, stream: TcpStream) {
    if peer_spoke(&stream) {
        // Readiness may be stale (the last read filled the buffer) or real: one read tells,
        // and clears it when nothing is there.
        match stream.try_read(&mut [0u8; 1]) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            _ => return,
        }
    }
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
            idle.retain(|c| !peer_spoke(&c.stream));
            if purge {
                let stale = idle.iter().take_while(|c| now.duration_since(c.since) >= PURGE_DELAY).count();
                idle.drain(..stale.div_ceil(2));
            }
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
