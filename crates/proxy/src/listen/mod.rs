//! Where connections come in: listening sockets (bound once per worker with SO_REUSEPORT,
//! with the socket options the data path wants), the worker threads that accept on them, the
//! connection limits, and the drain of a stopping worker.
mod limit;
mod worker;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::Waker;

use tokio::sync::Notify;

pub(crate) use limit::ConnLimit;
pub(crate) use worker::Worker;

use crate::live::lock;

/// Open client connections of one worker, and what it takes to drain them: each connection
/// task leaves its waker here once, so a stop wakes every one of them to close gracefully.
/// (A per-connection watch or Notify would be polled again on every wake-up of every
/// connection: a cost per request, not per connection.)
#[derive(Default)]
pub(crate) struct Drain {
    open: AtomicUsize,
    closed: Notify,
    draining: AtomicBool,
    next_id: AtomicU64,
    wakers: Mutex<HashMap<u64, Waker, crate::fasthash::FastBuild>>,
}

impl Drain {
    /// The worker is stopping: connections close once their current exchange is over.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// The flag an idle wait watches.
    pub(crate) fn flag(&self) -> &AtomicBool {
        &self.draining
    }

    fn drain(&self) {
        self.draining.store(true, Ordering::Release);
        let wakers: Vec<Waker> = lock(&self.wakers).drain().map(|(_, w)| w).collect();
        for w in wakers {
            w.wake();
        }
    }

    /// Registers the calling task to be woken by a drain; returns its key for [`Drain::leave`].
    pub(crate) async fn enter(&self) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        std::future::poll_fn(|cx| {
            lock(&self.wakers).insert(id, cx.waker().clone());
            std::task::Poll::Ready(())
        })
        .await;
        id
    }

    pub(crate) fn leave(&self, id: u64) {
        lock(&self.wakers).remove(&id);
    }
}

/// Bind each address once per worker with SO_REUSEPORT, so the kernel spreads connections.
pub(crate) fn bind_all(
    addrs: &[SocketAddr],
    workers: usize,
) -> Result<Vec<(SocketAddr, Vec<std::net::TcpListener>)>, String> {
    addrs
        .iter()
        .map(|addr| {
            let socks = (0..workers).map(|_| bind_one(*addr)).collect::<Result<Vec<_>, _>>()?;
            Ok((*addr, socks))
        })
        .collect()
}

pub(crate) fn bind_one(addr: SocketAddr) -> Result<std::net::TcpListener, String> {
    use socket2::{Domain, Socket, Type};
    let err = |e: std::io::Error| format!("cannot bind {addr}: {e}");
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    socket.set_reuse_port(true).map_err(err)?;
    if addr.is_ipv6() {
        let _ = socket.set_only_v6(true);
    }
    socket.set_nodelay(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    socket.listen(4096).map_err(err)?;
    // Delayed ACKs from the first byte, as HAProxy does on its HTTP listeners: a new
    // connection otherwise starts in quick-ACK mode and answers the request's segment with an
    // ACK of its own, although the response (which carries the ACK) follows within
    // microseconds. Set after listen(): each accepted socket inherits it. One packet less
    // per connection, a fifth of what the proxy sends in a `Connection: close` exchange.
    let _ = socket.set_quickack(false);
    socket.set_nonblocking(true).map_err(err)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn listeners_delay_acks_from_the_first_byte() {
        let listener = super::bind_one("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = listener.local_addr().expect("local addr");
        assert!(!socket2::SockRef::from(&listener).quickack().expect("getsockopt"), "the listener itself");
        // What matters is what each accepted connection inherits.
        let _client = std::net::TcpStream::connect(addr).expect("connect");
        listener.set_nonblocking(false).expect("blocking");
        let (accepted, _) = listener.accept().expect("accept");
        assert!(!socket2::SockRef::from(&accepted).quickack().expect("getsockopt"), "an accepted connection");
    }
}
