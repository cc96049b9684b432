//! Worker threads: each runs a current-thread Tokio runtime with its own SO_REUSEPORT
//! listeners, its own client connections and its own upstream pool.
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::limit::{ConnLimit, Slot};
use crate::drain::Drain;
use crate::{Shared, StartError};

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
    pub fn spawn(index: usize, shared: Arc<Shared>) -> Result<Worker, StartError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .event_interval(RUN_QUEUE_DEPTH)
            .build()
            .map_err(|source| StartError::Worker { what: "runtime", source })?;
        let thread = std::thread::Builder::new()
            .name(format!("fulcrum-worker-{index}"))
            .spawn(move || runtime.block_on(run(rx, shared)))
            .map_err(|source| StartError::Worker { what: "thread", source })?;
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

async fn run(mut rx: mpsc::UnboundedReceiver<Command>, shared: Arc<Shared>) {
    let conns = Arc::new(Drain::default());
    let mut accepting: HashMap<SocketAddr, JoinHandle<()>> = HashMap::new();
    let mut grace = Duration::from_secs(30);
    // Tokio writes its wake-up eventfd whenever a timer is armed earlier than the time driver's
    // next wake-up, even from the runtime's own thread. With no timer near, every request's
    // `timeout server` (and every connection's header timer) would cost that write: a
    // syscall per request. A timer that is always due within 200 ms keeps the next wake-up
    // near, so request timers, seconds away, are armed without it.
    // The same tick closes, once a second, the pooled server connections whose server has
    // closed them.
    let anchor = tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for n in 0u64.. {
            tick.tick().await;
            if n % 5 == 0 {
                crate::upstream::sweep(Instant::now());
            }
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
async fn accept_loop(listener: AsyncFd<socket2::Socket>, bind: SocketAddr, shared: Arc<Shared>, conns: Arc<Drain>) {
    loop {
        // Past `maxconn`, connections wait accepted but unread (see `connection_slots`); past
        // as many again, new ones stay in the kernel's backlog, so that a flood holds neither
        // descriptors nor memory beyond twice the limit.
        while shared.parked.load(Ordering::Acquire) >= shared.conn_limit.max() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
        shared.parked.fetch_add(1, Ordering::AcqRel);
        // One look at the snapshot per accept: the frontend's mode, and its client timeouts.
        let client = {
            let snap = shared.snapshot.load();
            let fe = snap.frontend_for(&bind);
            match fe.is_some_and(|f| f.cfg.mode == fulcrum_model::Mode::Tcp) {
                true => Err(stream),
                false => match fe.and_then(|f| f.tls_for(&bind)) {
                    None => Ok(crate::l7::Client::new(stream, peer, bind, fe)),
                    Some(config) => match rustls::ServerConnection::new(Arc::clone(config)) {
                        Ok(tls) => Ok(crate::l7::Client::with_tls(stream, tls, peer, bind, fe)),
                        Err(e) => {
                            tracing::warn!(%bind, "TLS: {e}");
                            conns.open.fetch_sub(1, Ordering::AcqRel);
                            shared.parked.fetch_sub(1, Ordering::AcqRel);
                            continue;
                        }
                    },
                },
            }
        };
        match client {
            Ok(client) => tokio::spawn(serve(client, shared.clone(), conns.clone())),
            Err(stream) => tokio::spawn(serve_tcp(stream, peer, bind, shared.clone(), conns.clone())),
        };
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

/// One `mode tcp` connection's task: the same limits as HTTP, then the relay to its end (a
/// draining worker lets it finish, within the grace period, as HAProxy's soft stop does).
async fn serve_tcp(
    stream: std::net::TcpStream,
    peer: std::net::SocketAddr,
    bind: SocketAddr,
    shared: Arc<Shared>,
    conns: Arc<Drain>,
) {
    let limit = {
        let snap = shared.snapshot.load();
        snap.frontend_for(&bind).and_then(|f| shared.frontend_limit(f))
    };
    let _slots = connection_slots(&shared, limit.as_deref()).await;
    shared.parked.fetch_sub(1, Ordering::AcqRel);
    crate::l4::serve(stream, peer, bind, &shared).await;
    conns.open.fetch_sub(1, Ordering::AcqRel);
    conns.closed.notify_waiters();
}

/// One connection's task. Its future is the connection's memory while it waits between
/// requests: what it holds is kept small on purpose (see `l7`). Not an `async fn`: that would
/// move its arguments into a second copy of them inside the future; an `async move` block
/// uses what it captured in place.
#[allow(clippy::manual_async_fn)] // On purpose: see above.
fn serve(mut client: crate::l7::Client, shared: Arc<Shared>, conns: Arc<Drain>) -> impl Future<Output = ()> {
    async move {
        // One look at the frontend per connection: its limit, and whether a PROXY protocol
        // header comes first.
        let (limit, accept_proxy) = {
            let snap = shared.snapshot.load();
            let fe = snap.frontend_for(&client.bind);
            (fe.and_then(|f| shared.frontend_limit(f)), fe.is_some_and(|f| f.cfg.accept_proxy.contains(&client.bind)))
        };
        let _slots = connection_slots(&shared, limit.as_deref()).await;
        shared.parked.fetch_sub(1, Ordering::AcqRel);
        client.admitted();
        let id = conns.enter().await;
        // `tcp-request connection` rules see the connection first (before any PROXY header,
        // as in HAProxy); a rejected one is closed at once, without a log line.
        let admitted = client.connection_rules(&shared);
        if admitted && (!accept_proxy || Box::pin(client.read_proxy_header()).await) {
            if let crate::l7::Served::Http2(prefix) = crate::l7::serve(&mut client, &shared, &conns).await {
                Box::pin(crate::h2::serve(&mut client, prefix, &shared, &conns)).await;
            }
        }
        conns.leave(id);
        conns.open.fetch_sub(1, Ordering::AcqRel);
        conns.closed.notify_waiters();
    }
}
