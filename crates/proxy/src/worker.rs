//! Worker threads: each runs a current-thread Tokio runtime with its own SO_REUSEPORT
//! listeners, its own client connections and its own upstream pool.
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, Notify};

use crate::limit::{ConnLimit, Slot};
use tokio::task::JoinHandle;

use crate::clientio::{ClientIo, ClientTimeouts, ConnState};
use crate::http::{handle, ClientConn};
use crate::live::lock;
use crate::Shared;

enum Command {
    Listen(SocketAddr, std::net::TcpListener),
    Close(SocketAddr),
    Stop(Duration),
}

/// Tasks run before the reactor is asked for new events (tokio's default is 61). With many
/// connections busy at once, each readiness batch is a few hundred polls (client read and
/// hand-off, upstream write; then upstream read, client write); a batch cut short by a poll
/// for events interleaves the next batch's reads with this one's writes, and the peers (the
/// servers, the clients) are woken for a few messages at a time instead of once for all of
/// them. Waking a sleeping peer is the costliest kernel step on the send path. HAProxy runs
/// up to 200 tasks per turn (`tune.runqueue-depth`) for the same reason.
const RUN_QUEUE_DEPTH: u32 = 256;

pub struct Worker {
    tx: mpsc::UnboundedSender<Command>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    pub fn spawn(index: usize, shared: Arc<Shared>) -> Result<Worker, String> {
        let (tx, rx) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .event_interval(RUN_QUEUE_DEPTH)
            .build()
            .map_err(|e| format!("worker runtime: {e}"))?;
        let thread = std::thread::Builder::new()
            .name(format!("fulcrum-worker-{index}"))
            .spawn(move || runtime.block_on(run(rx, shared)))
            .map_err(|e| format!("worker thread: {e}"))?;
        Ok(Worker { tx, thread: Some(thread) })
    }

    pub fn listen(&self, addr: SocketAddr, socket: std::net::TcpListener) {
        let _ = self.tx.send(Command::Listen(addr, socket));
    }

    pub fn close(&self, addr: SocketAddr) {
        let _ = self.tx.send(Command::Close(addr));
    }

    /// Stop accepting, wait for open connections to finish (at most `grace`), join the thread.
    pub fn stop(mut self, grace: Duration) {
        let _ = self.tx.send(Command::Stop(grace));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Open client connections of this worker, and what it takes to drain them: each connection
/// task leaves its waker here once, so a stop wakes every one of them to close gracefully.
/// (A per-connection watch or Notify would be polled again on every wake-up of every
/// connection: a cost per request, not per connection.)
#[derive(Default)]
struct ConnCount {
    open: AtomicUsize,
    closed: Notify,
    draining: AtomicBool,
    next_id: AtomicU64,
    wakers: Mutex<HashMap<u64, Waker, crate::fasthash::FastBuild>>,
}

impl ConnCount {
    fn drain(&self) {
        self.draining.store(true, Ordering::Release);
        let wakers: Vec<Waker> = lock(&self.wakers).drain().map(|(_, w)| w).collect();
        for w in wakers {
            w.wake();
        }
    }
}

/// A client connection that closes gracefully (after its current request) when the worker
/// drains.
struct Drainable<'a, C> {
    conn: Pin<&'a mut C>,
    count: &'a ConnCount,
    id: u64,
    registered: bool,
    shutting: bool,
}

impl<C: GracefulConn> Future for Drainable<'_, C> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if !this.registered {
            this.registered = true;
            lock(&this.count.wakers).insert(this.id, cx.waker().clone());
        }
        if !this.shutting && this.count.draining.load(Ordering::Acquire) {
            this.shutting = true;
            this.conn.as_mut().begin_graceful_shutdown();
        }
        this.conn.as_mut().poll_conn(cx)
    }
}

impl<C> Drop for Drainable<'_, C> {
    fn drop(&mut self) {
        if self.registered {
            lock(&self.count.wakers).remove(&self.id);
        }
    }
}

/// hyper's connection future, as Drainable needs it.
trait GracefulConn {
    fn begin_graceful_shutdown(self: Pin<&mut Self>);
    fn poll_conn(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()>;
}

impl<I, S> GracefulConn for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    fn begin_graceful_shutdown(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }

    fn poll_conn(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.poll(cx).map(|_| ())
    }
}

async fn run(mut rx: mpsc::UnboundedReceiver<Command>, shared: Arc<Shared>) {
    let conns = Arc::new(ConnCount::default());
    let mut accepting: HashMap<SocketAddr, JoinHandle<()>> = HashMap::new();
    let mut grace = Duration::from_secs(30);
    // Tokio writes its wake-up eventfd whenever a timer is armed earlier than the time driver's
    // next wake-up, even from the runtime's own thread. With no timer near, every request's
    // `timeout server` (and every connection's header timer) would cost that write: a
    // syscall per request. A timer that is always due within 200 ms keeps the next wake-up
    // near, so request timers, seconds away, are armed without it.
    let anchor = tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
        }
    });
    while let Some(cmd) = rx.recv().await {
        match cmd {
            Command::Listen(addr, socket) => match register_listener(socket) {
                Ok(listener) => {
                    let task = tokio::spawn(accept_loop(listener, addr, shared.clone(), conns.clone()));
                    if let Some(old) = accepting.insert(addr, task) {
                        old.abort();
                    }
                }
                Err(e) => tracing::error!(%addr, "listener: {e}"),
            },
            Command::Close(addr) => {
                if let Some(task) = accepting.remove(&addr) {
                    task.abort();
                }
            }
            Command::Stop(g) => {
                grace = g;
                break;
            }
        }
    }
    for (_, task) in accepting.drain() {
        task.abort();
    }
    conns.drain();
    anchor.abort();
    let deadline = Instant::now() + grace;
    while conns.open.load(Ordering::Acquire) > 0 {
        let notified = conns.closed.notified();
        if conns.open.load(Ordering::Acquire) == 0 {
            break;
        }
        if tokio::time::timeout_at(deadline.into(), notified).await.is_err() {
            tracing::warn!(
                "{} connections still open after the grace period; closing them",
                conns.open.load(Ordering::Acquire)
            );
            break;
        }
    }
}

/// The listener under the reactor. `AsyncFd::new` is deprecated because a `T` that only
/// borrows its descriptor could close it while registered; a `socket2::Socket` owns its
/// descriptor, and the `AsyncFd` owns the socket and deregisters it before it is closed.
#[allow(deprecated)]
fn register_listener(socket: std::net::TcpListener) -> std::io::Result<AsyncFd<socket2::Socket>> {
    AsyncFd::new(socket2::Socket::from(socket))
}

/// Accepts with `accept4(SOCK_NONBLOCK)` on the listener's readiness. The new socket is not
/// registered with the reactor yet: ClientIo first reads and writes it directly and registers
/// it only when it would block, which a short exchange (`Connection: close`) never does: two
/// `epoll_ctl` calls per connection saved.
async fn accept_loop(listener: AsyncFd<socket2::Socket>, bind: SocketAddr, shared: Arc<Shared>, conns: Arc<ConnCount>) {
    loop {
        let accepted = match listener.readable().await {
            Ok(mut ready) => match ready.try_io(|l| l.get_ref().accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)) {
                Ok(result) => result,
                Err(_would_block) => continue,
            },
            Err(e) => Err(e),
        };
        let (stream, peer) = match accepted {
            Ok((sock, addr)) => match addr.as_socket() {
                Some(peer) => (std::net::TcpStream::from(sock), peer),
                None => continue,
            },
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(%bind, "accept: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        // TCP_NODELAY is set on the listener; Linux hands it down to accepted sockets, which
        // saves a setsockopt per connection.
        conns.open.fetch_add(1, Ordering::AcqRel);
        tokio::spawn(serve(stream, peer, bind, shared.clone(), conns.clone()));
    }
}

/// Wait for a slot under `global maxconn` and the frontend's `maxconn`. The connection is
/// accepted first and waits here unread: holding a slot while idle in accept() would starve
/// the other workers' SO_REUSEPORT sockets.
async fn connection_slots<'a>(shared: &'a Shared, frontend: Option<&'a ConnLimit>) -> (Slot<'a>, Option<Slot<'a>>) {
    let global = shared.conn_limit.take().await;
    let frontend = match frontend {
        Some(limit) => Some(limit.take().await),
        None => None,
    };
    (global, frontend)
}

async fn serve(
    stream: std::net::TcpStream,
    peer: SocketAddr,
    bind: SocketAddr,
    shared: Arc<Shared>,
    conns: Arc<ConnCount>,
) {
    // One look at the frontend per connection: its limit and its timeouts.
    let (limit, timeouts, timed) = {
        let snap = shared.snapshot.load();
        let fe = snap.frontend_for(&bind);
        let timeouts = match fe {
            Some(f) => ClientTimeouts {
                client: f.cfg.timeout_client,
                http_request: f.cfg.timeout_http_request,
                keep_alive: f.cfg.timeout_http_keep_alive,
            },
            None => ClientTimeouts {
                client: Duration::from_secs(50),
                http_request: Duration::from_secs(10),
                keep_alive: Duration::from_secs(10),
            },
        };
        (fe.and_then(|f| shared.frontend_limit(f)), timeouts, fe.is_some_and(|f| shared.log_enabled(f)))
    };
    let _slots = connection_slots(&shared, limit.as_deref()).await;
    let client = Arc::new(ClientConn::new(peer, bind, ConnState::new(timed)));
    let io = ClientIo::new(stream, client.clone(), timeouts, shared.clone());
    let svc_shared = shared.clone();
    let svc = service_fn(move |req| handle(req, client.clone(), svc_shared.clone()));
    let mut builder = http1::Builder::new();
    // The header timer is ClientIo's (it answers 408 as HAProxy does, and does not move as a
    // head trickles in); hyper's own is off.
    builder.header_read_timeout(None).keep_alive(true).writev(false).half_close(true);
    // Boxed: the connection's state is large, and the task spawned per accepted connection
    // would otherwise carry (and copy) all of it from the start.
    let mut conn = Box::pin(builder.serve_connection(TokioIo::new(io), svc).with_upgrades());
    let id = conns.next_id.fetch_add(1, Ordering::Relaxed);
    Drainable { conn: conn.as_mut(), count: &conns, id, registered: false, shutting: false }.await;
    conns.open.fetch_sub(1, Ordering::AcqRel);
    conns.closed.notify_waiters();
}
