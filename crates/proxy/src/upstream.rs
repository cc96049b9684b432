//! Upstream connections: a per-worker pool of HTTP/1.1 connections on hyper's `client::conn`.
//!
//! Each worker thread runs its own current-thread runtime, so the pool is thread-local and
//! needs no lock. A connection goes back to the pool only once its response body has been read
//! to the end; the client side closing has no say in it.
//!
//! A connection is not a task of its own: whoever holds it (the request's future while it
//! waits for the response head, then the response body while the client reads it) drives it
//! in the same poll. A response thus reaches the client in the task that the origin's socket
//! woke, not after a second trip through the run queue, and no channel wake-up crosses
//! between tasks. The connection is polled with a waker of its own ([`ConnWaker`]) that
//! forwards to its current holder, and swallows the wake-ups hyper's internal channels make
//! while the holder is already polling it. Idle connections are swept every second
//! ([`sweep_idle`]) so that one the origin closed does not sit in CLOSE_WAIT.
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

use crate::live::lock;
use crate::wire::Stream;

/// The body sent upstream: the client's, streamed; or nothing, for a replayed safe request.
pub type UpBody = http_body_util::Either<crate::http::RequestBody, http_body_util::Empty<bytes::Bytes>>;

pub type Sender = SendRequest<UpBody>;

/// hyper's connection future (with upgrades); its type is not nameable, hence the box.
type Conn = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// The socket to a server, as hyper drives it (writes corked per turn, see `wire`).
pub struct UpIo(Stream);

impl tokio::io::AsyncRead for UpIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.0.poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for UpIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        self.0.poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.0.poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.0.poll_shutdown(cx)
    }
}

/// Idle connections kept per server and worker; more are closed.
const MAX_IDLE_PER_SERVER: usize = 512;

/// How many times one poll re-drives a connection that its own reader woke (a response body
/// larger than one read); past that, the holder is woken to come back later.
const MAX_ROUNDS: u32 = 32;

struct Idle {
    conn: UpConn,
    since: Instant,
}

thread_local! {
    /// The worker's clock as of its last tick (every 200 ms): how long a connection sat idle
    /// needs no finer grain, and reading the clock twice per request for it is not free.
    static NOW: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
    static POOL: RefCell<HashMap<SocketAddr, Vec<Idle>, crate::fasthash::FastBuild>> = RefCell::new(HashMap::default());
}

/// The waker an upstream connection is polled with. Outside its holder's poll it wakes the
/// holder (the origin's socket became readable); inside, it only notes that the connection
/// wants another turn, which the holder gives it before returning.
#[derive(Default)]
struct ConnWaker {
    holder: Mutex<Option<Waker>>,
    busy: AtomicBool,
    woken: AtomicBool,
}

impl Wake for ConnWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        if !self.busy.load(Ordering::Acquire) {
            if let Some(w) = lock(&self.holder).as_ref() {
                w.wake_by_ref();
            }
        }
    }
}

impl ConnWaker {
    fn set_holder(&self, waker: Option<&Waker>) {
        let mut holder = lock(&self.holder);
        match (holder.as_ref(), waker) {
            (Some(old), Some(new)) if old.will_wake(new) => {}
            _ => *holder = waker.cloned(),
        }
    }
}

/// An HTTP/1.1 connection to a server: the request handle and the connection itself.
pub struct UpConn {
    sender: Sender,
    /// None once the connection has ended (closed, failed, or handed over to an upgrade).
    conn: Option<Conn>,
    signal: Arc<ConnWaker>,
    waker: Waker,
    /// The holder last given to `signal` (compared here, so that the lock is only taken when
    /// it changes).
    holder: Option<Waker>,
    addr: SocketAddr,
}

impl UpConn {
    fn new(sender: Sender, conn: Conn, addr: SocketAddr) -> UpConn {
        let signal = Arc::new(ConnWaker::default());
        let waker = Waker::from(signal.clone());
        UpConn { sender, conn: Some(conn), signal, waker, holder: None, addr }
    }

    /// False once the connection has ended; it cannot carry another request.
    pub fn is_open(&self) -> bool {
        self.conn.is_some() && !self.sender.is_closed()
    }

    /// Poll `f` (something this connection produces: a response, a body frame, an upgrade)
    /// for the task whose context is `cx`, driving the connection first.
    pub fn poll_with<T>(&mut self, cx: &mut Context<'_>, mut f: impl FnMut(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
        if self.conn.is_none() {
            return f(cx);
        }
        self.set_holder(Some(cx.waker()));
        self.signal.busy.store(true, Ordering::Release);
        let mut own = Context::from_waker(&self.waker);
        let mut rounds = 0;
        let out = loop {
            self.signal.woken.store(false, Ordering::Release);
            drive(&mut self.conn, &mut own, self.addr);
            if let Poll::Ready(v) = f(&mut own) {
                break Poll::Ready(v);
            }
            rounds += 1;
            if self.conn.is_none() || !self.signal.woken.load(Ordering::Acquire) || rounds >= MAX_ROUNDS {
                break Poll::Pending;
            }
        };
        self.signal.busy.store(false, Ordering::Release);
        if out.is_pending() && (self.conn.is_none() || self.signal.woken.load(Ordering::Acquire)) {
            // Ended with `f` still pending (it will see the end on its next poll), or more to
            // do than one turn allows: come back.
            cx.waker().wake_by_ref();
        }
        out
    }

    /// The request handle: `try_send_request` queues the request at once; its future, polled
    /// through [`UpConn::poll_with`], gives the response head or the request back if it was
    /// never written.
    pub fn sender(&mut self) -> &mut Sender {
        &mut self.sender
    }

    /// Keep driving the connection until it ends: what an upgrade (101) needs to hand its
    /// socket over.
    pub async fn finish(mut self) {
        std::future::poll_fn(|cx| {
            let _ = self.poll_with(cx, |_| Poll::<()>::Pending);
            if self.conn.is_none() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    fn set_holder(&mut self, waker: Option<&Waker>) {
        match (&self.holder, waker) {
            (Some(old), Some(new)) if old.will_wake(new) => {}
            (None, None) => {}
            _ => {
                self.holder = waker.cloned();
                self.signal.set_holder(waker);
            }
        }
    }

    /// Give the connection a turn with nobody to wake: notices a close by the origin.
    fn poke(&mut self) {
        self.set_holder(None);
        let mut own = Context::from_waker(&self.waker);
        drive(&mut self.conn, &mut own, self.addr);
    }
}

/// Poll the connection once; drop it when it has ended.
fn drive(conn: &mut Option<Conn>, cx: &mut Context<'_>, addr: SocketAddr) {
    let Some(c) = conn.as_mut() else {
        return;
    };
    if let Poll::Ready(res) = c.as_mut().poll(cx) {
        if let Err(e) = res {
            tracing::debug!(%addr, "upstream connection ended: {e}");
        }
        // Dropping it hands any request it never took back to its sender.
        *conn = None;
    }
}

/// The worker's tick: the time the pool goes by.
pub fn tick(now: Instant) {
    NOW.with(|n| n.set(Some(now)));
}

fn coarse_now() -> Instant {
    NOW.with(|n| n.get()).unwrap_or_else(Instant::now)
}

/// A connection ready to carry a request.
pub struct Upstream {
    pub conn: UpConn,
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
        while let Some(Idle { mut conn, since }) = idle.pop() {
            if !conn.sender.is_ready() {
                // Its last turn did not end waiting for a request: give it one more.
                conn.poke();
            }
            if conn.is_open() && conn.sender.is_ready() {
                return Some(Upstream { conn, idle_for: Some(coarse_now().saturating_duration_since(since)) });
            }
        }
        None
    })
}

/// Give a connection back after its response was read to the end.
pub fn put_idle(mut conn: UpConn) {
    if !conn.is_open() {
        return;
    }
    conn.set_holder(None);
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let idle = pool.entry(conn.addr).or_default();
        if idle.len() >= MAX_IDLE_PER_SERVER {
            idle.retain(|c| c.conn.is_open());
            if idle.len() >= MAX_IDLE_PER_SERVER {
                return;
            }
        }
        idle.push(Idle { conn, since: coarse_now() });
    });
}

/// Give every idle connection of this worker a turn and drop those the origin has closed.
/// The worker calls it every second.
pub fn sweep_idle() {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        for idle in pool.values_mut() {
            for c in idle.iter_mut() {
                c.conn.poke();
            }
            idle.retain(|c| c.conn.is_open());
        }
        pool.retain(|_, idle| !idle.is_empty());
    });
}

/// Open a new connection to `addr`.
pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Upstream, ConnectError> {
    let stream = match tokio::time::timeout(timeout, Stream::connect(addr)).await {
        Err(_) => return Err(ConnectError::Timeout),
        Ok(Err(e)) => return Err(ConnectError::Io(e)),
        Ok(Ok(s)) => s,
    };
    // One contiguous write per request: cheaper than writev for the small heads and bodies
    // a proxy mostly moves.
    let (sender, conn) = http1::Builder::new()
        .writev(false)
        .handshake(TokioIo::new(UpIo(stream)))
        .await
        .map_err(ConnectError::Handshake)?;
    Ok(Upstream { conn: UpConn::new(sender, Box::pin(conn.with_upgrades()), addr), idle_for: None })
}
