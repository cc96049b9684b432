//! Sockets of the data plane, with their writes gathered per scheduler turn.
//!
//! A worker handles a batch of ready sockets per turn. Sending each response or request the
//! moment it is ready spreads the turn's sends out in time, and a peer on another CPU (an
//! origin server, a client) that has gone back to sleep between two of them is woken once per
//! send; on a virtual machine each such wake-up is an inter-processor interrupt and costs the
//! sender more than the send itself. HAProxy reads everything of a turn first and sends after.
//! Here a small write is accepted into the socket's cork, and the worker's flusher task, which
//! runs after the tasks already queued in this turn, sends every cork at once.
//!
//! - A write that would make the cork larger than [`CORK_LIMIT`] first sends what is corked,
//!   then goes straight to the socket: bulk transfers are not copied.
//! - When the flusher cannot send everything (the peer is not reading), the rest stays corked
//!   and "stuck": the owner is woken, and its next flush or write sends it as any blocked
//!   write would (with the client timeouts on it; a client past `timeout client` gets nothing
//!   more). If the owner is gone, a task finishes the sending within [`DRAIN_LIMIT`], then
//!   closes.
//! - A socket is used directly until a read or write would block, and only then registered
//!   with the reactor (one `epoll_ctl`): a short exchange never needs it.
//! - Without a flusher on the thread (tests, other runtimes) writes go straight out.
use std::cell::RefCell;
use std::io::{self, Read as _, Write as _};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::ReadBuf;

use crate::live::lock;

/// Bytes a socket may hold back for the end of the turn.
pub const CORK_LIMIT: usize = 4096;

/// How long a closed connection's last bytes may take to leave when the peer reads slowly.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// A corked buffer larger than this is freed once sent (idle connections keep no memory).
const KEEP_CAPACITY: usize = 1024;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; 16 * 1024].into_boxed_slice());
    static FLUSH: RefCell<Flush> = RefCell::new(Flush::default());
}

#[derive(Default)]
struct Flush {
    /// A flusher runs on this thread.
    on: bool,
    /// How many times it has run: a cork queued at round `n` is untouched while this is `n`.
    round: u64,
    queue: Vec<Arc<Wire>>,
    waker: Option<Waker>,
}

/// The socket, shared by its owner and the flusher (which may outlive the owner by a turn).
struct Wire {
    stream: std::net::TcpStream,
    cork: Mutex<Cork>,
}

impl AsRawFd for Wire {
    fn as_raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
}

#[derive(Default)]
struct Cork {
    buf: Vec<u8>,
    /// In the flusher's queue.
    queued: bool,
    /// The flusher could not send it all: the owner sends the rest.
    stuck: bool,
    /// What the flusher's send failed with, for the owner's next write.
    error: Option<io::Error>,
    /// Woken when the cork gets stuck or fails.
    owner: Option<Waker>,
}

impl Wire {
    /// Send what is corked, as far as the socket takes it. Err(WouldBlock) when some is left.
    fn send_corked(&self, cork: &mut Cork) -> io::Result<()> {
        while !cork.buf.is_empty() {
            let n = (&self.stream).write(&cork.buf)?;
            cork.buf.drain(..n);
        }
        if cork.buf.capacity() > KEEP_CAPACITY {
            cork.buf = Vec::new();
        }
        cork.stuck = false;
        Ok(())
    }

    /// The flusher's part: send the cork; hand what is left to the owner or to a drain task.
    fn flush(self: Arc<Self>) {
        let mut cork = lock(&self.cork);
        cork.queued = false;
        match self.send_corked(&mut cork) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                cork.stuck = true;
                if Arc::strong_count(&self) == 1 {
                    drop(cork);
                    tokio::spawn(drain(self));
                    return;
                }
                if let Some(w) = cork.owner.take() {
                    w.wake();
                }
            }
            Err(e) => {
                cork.buf.clear();
                cork.error = Some(e);
                if let Some(w) = cork.owner.take() {
                    w.wake();
                }
            }
        }
    }
}

/// Send what a closed connection had left, when its peer lets us, then close it.
async fn drain(wire: Arc<Wire>) {
    let Ok(fd) = register(wire) else {
        return;
    };
    let _ = tokio::time::timeout(DRAIN_LIMIT, async {
        loop {
            let Ok(mut guard) = fd.writable().await else {
                return;
            };
            let wire = fd.get_ref();
            match guard.try_io(|_| wire.send_corked(&mut lock(&wire.cork))) {
                Ok(Err(e)) if e.kind() != io::ErrorKind::WouldBlock => return,
                Ok(_) if lock(&wire.cork).buf.is_empty() => return,
                _ => {}
            }
        }
    })
    .await;
}

/// `AsyncFd::new` is deprecated because a `T` that only borrows its descriptor could close it
/// while registered; `Wire` owns the socket, and the `Arc` keeps it open until the last
/// holder (the `AsyncFd` among them) is gone.
#[allow(deprecated)]
fn register(wire: Arc<Wire>) -> io::Result<AsyncFd<Arc<Wire>>> {
    AsyncFd::new(wire)
}

/// Run the flusher of this worker thread; it sends the corks queued during each turn.
pub async fn flusher() {
    /// When the flusher stops, writes go straight out again, and what is queued is sent.
    struct Off;
    impl Drop for Off {
        fn drop(&mut self) {
            let queued = FLUSH
                .try_with(|f| {
                    let mut f = f.borrow_mut();
                    f.on = false;
                    f.waker = None;
                    std::mem::take(&mut f.queue)
                })
                .unwrap_or_default();
            for wire in queued {
                let _ = wire.send_corked(&mut lock(&wire.cork));
            }
        }
    }
    FLUSH.with(|f| f.borrow_mut().on = true);
    let _off = Off;
    let mut batch = Vec::new();
    std::future::poll_fn(|cx| {
        FLUSH.with(|f| {
            let mut f = f.borrow_mut();
            if !f.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                f.waker = Some(cx.waker().clone());
            }
            std::mem::swap(&mut f.queue, &mut batch);
            f.round += 1;
        });
        for wire in batch.drain(..) {
            wire.flush();
        }
        Poll::<()>::Pending
    })
    .await;
}

fn corking() -> bool {
    FLUSH.with(|f| f.borrow().on)
}

fn flush_round() -> u64 {
    FLUSH.with(|f| f.borrow().round)
}

fn enqueue(wire: Arc<Wire>) {
    FLUSH.with(|f| {
        let mut f = f.borrow_mut();
        f.queue.push(wire);
        if f.queue.len() == 1 {
            if let Some(w) = &f.waker {
                w.wake_by_ref();
            }
        }
    });
}

/// A nonblocking TCP socket of the data plane.
pub struct Stream {
    wire: Arc<Wire>,
    fd: Option<AsyncFd<Arc<Wire>>>,
    /// Something may be corked (or the flusher may have left an error): only then is the
    /// shared state locked by a write or a flush.
    corked: bool,
    /// The flusher's round when this socket last corked: until it moves on, the cork is
    /// queued and untouched, and a flush has nothing to check.
    corked_in: u64,
}

impl Stream {
    /// A connected nonblocking socket; registered with the reactor only when it would block.
    pub fn new(stream: std::net::TcpStream) -> Stream {
        Stream {
            wire: Arc::new(Wire { stream, cork: Mutex::new(Cork::default()) }),
            fd: None,
            corked: false,
            corked_in: 0,
        }
    }

    /// Connect to `addr` (no timeout here: the caller puts one around it).
    pub async fn connect(addr: SocketAddr) -> io::Result<Stream> {
        let sock = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
        sock.set_nonblocking(true)?;
        sock.set_nodelay(true)?;
        match sock.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) || e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let mut stream = Stream::new(sock.into());
        // The guard is dropped without clearing: the socket stays writable for the first write.
        let _ = stream.registered()?.writable().await?;
        if let Some(e) = stream.wire.stream.take_error()? {
            return Err(e);
        }
        // Writable without an error: connected (peer_addr fails if it is not).
        stream.wire.stream.peer_addr()?;
        Ok(stream)
    }

    fn registered(&mut self) -> io::Result<&AsyncFd<Arc<Wire>>> {
        if self.fd.is_none() {
            self.fd = Some(register(self.wire.clone())?);
        }
        self.fd.as_ref().ok_or_else(|| io::Error::other("socket not registered"))
    }

    /// Read into `buf`. hyper's buffer is uninitialised memory, which safe code would have
    /// to zero before each read (8 KiB); reading into an initialised per-thread scratch
    /// buffer and copying the bytes that came is cheaper.
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        // (bytes read, bytes asked for)
        let read = |stream: &std::net::TcpStream, buf: &mut ReadBuf<'_>| {
            SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                let want = buf.remaining().min(scratch.len());
                let n = (&*stream).read(&mut scratch[..want])?;
                buf.put_slice(&scratch[..n]);
                Ok::<(usize, usize), io::Error>((n, want))
            })
        };
        if self.fd.is_none() {
            match read(&self.wire.stream, buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return Poll::Ready(done.map(|_| ())),
            }
        }
        let fd = self.registered()?;
        loop {
            let mut guard = std::task::ready!(fd.poll_read_ready(cx))?;
            match guard.try_io(|fd| read(&fd.get_ref().stream, buf)) {
                Ok(Ok((n, want))) => {
                    // A short read emptied the socket: the next read waits for the reactor
                    // instead of trying (and failing) first.
                    if n > 0 && n < want {
                        guard.clear_ready();
                    }
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => {}
            }
        }
    }

    /// Write `data`: into the cork when it is small and a flusher runs here, else to the socket
    /// (after what is corked).
    pub fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if !self.corked && data.len() > CORK_LIMIT {
            return self.poll_write_direct(cx, data);
        }
        let mut cork = lock(&self.wire.cork);
        if let Some(e) = cork.error.take() {
            return Poll::Ready(Err(e));
        }
        if !cork.stuck && cork.buf.len() + data.len() <= CORK_LIMIT && corking() {
            cork.buf.extend_from_slice(data);
            if !cork.owner.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                cork.owner = Some(cx.waker().clone());
            }
            self.corked = true;
            self.corked_in = flush_round();
            if !cork.queued {
                cork.queued = true;
                drop(cork);
                enqueue(self.wire.clone());
            }
            return Poll::Ready(Ok(data.len()));
        }
        let pending = !cork.buf.is_empty();
        drop(cork);
        if pending {
            std::task::ready!(self.poll_send_corked(cx))?;
        }
        self.corked = false;
        self.poll_write_direct(cx, data)
    }

    /// Write `data` to the socket itself (nothing is corked).
    fn poll_write_direct(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if self.fd.is_none() {
            match (&self.wire.stream).write(data) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return Poll::Ready(done),
            }
        }
        let fd = self.registered()?;
        loop {
            let mut guard = std::task::ready!(fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| (&fd.get_ref().stream).write(data)) {
                Ok(Ok(n)) => {
                    // A short write filled the socket: wait for the reactor next time.
                    if n > 0 && n < data.len() {
                        guard.clear_ready();
                    }
                    return Poll::Ready(Ok(n));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => {}
            }
        }
    }

    /// Send the cork now, waiting for the socket if it is full.
    fn poll_send_corked(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let sent = {
                let mut cork = lock(&self.wire.cork);
                if let Some(e) = cork.error.take() {
                    return Poll::Ready(Err(e));
                }
                self.wire.send_corked(&mut cork)
            };
            match sent {
                Ok(()) => return Poll::Ready(Ok(())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            let fd = self.registered()?;
            let mut guard = std::task::ready!(fd.poll_write_ready(cx))?;
            guard.clear_ready();
        }
    }

    /// Ready when nothing is held back that the flusher will not send by itself this turn.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.corked || self.corked_in == flush_round() {
            return Poll::Ready(Ok(()));
        }
        let must_send = {
            let mut cork = lock(&self.wire.cork);
            if let Some(e) = cork.error.take() {
                return Poll::Ready(Err(e));
            }
            if cork.buf.is_empty() {
                // The flusher sent it all: nothing to look at until the next corked write.
                self.corked = false;
            }
            !cork.buf.is_empty() && (cork.stuck || !cork.queued)
        };
        if must_send {
            std::task::ready!(self.poll_send_corked(cx))?;
            self.corked = false;
        }
        Poll::Ready(Ok(()))
    }

    /// Send what is corked, then half-close.
    pub fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_send_corked(cx))?;
        Poll::Ready(self.wire.stream.shutdown(std::net::Shutdown::Write))
    }

    /// Give up on what is corked (the peer stopped reading for longer than allowed): nothing
    /// is left for a drain task when the socket is dropped.
    pub fn discard(&self) {
        let mut cork = lock(&self.wire.cork);
        cork.buf = Vec::new();
        cork.stuck = false;
    }

    /// Write what fits now, past any waiting (an error page before a close); best effort.
    pub fn write_now(&self, data: &[u8]) {
        let mut cork = lock(&self.wire.cork);
        if self.wire.send_corked(&mut cork).is_ok() {
            let _ = (&self.wire.stream).write(data);
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // Queued corks go out with the flusher, which holds the socket until then; a stuck
        // one has nobody left to send it.
        let cork = lock(&self.wire.cork);
        if cork.stuck && !cork.queued && !cork.buf.is_empty() {
            drop(cork);
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(drain(self.wire.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connected pair on loopback: ours nonblocking with a small send buffer, the peer's
    /// with a small receive buffer, so that they fill quickly.
    fn pair() -> (std::net::TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let peer = std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (ours, _) = listener.accept().expect("accept");
        ours.set_nonblocking(true).expect("nonblocking");
        socket2::SockRef::from(&ours).set_send_buffer_size(4096).expect("sndbuf");
        socket2::SockRef::from(&peer).set_recv_buffer_size(4096).expect("rcvbuf");
        (ours, peer)
    }

    /// Write big blocks straight to the socket until it is full; how many bytes went.
    async fn fill(s: &mut Stream) -> usize {
        let block = vec![b'x'; 64 * 1024];
        let mut total = 0;
        loop {
            match std::future::poll_fn(|cx| Poll::Ready(s.poll_write(cx, &block))).await {
                Poll::Ready(Ok(n)) => total += n,
                Poll::Ready(Err(e)) => panic!("write: {e}"),
                Poll::Pending => return total,
            }
        }
    }

    fn read_all(mut peer: std::net::TcpStream) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut all = Vec::new();
            peer.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
            let _ = peer.read_to_end(&mut all);
            all
        })
    }

    async fn join(reader: std::thread::JoinHandle<Vec<u8>>) -> Vec<u8> {
        while !reader.is_finished() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        reader.join().expect("reader")
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
    }

    #[test]
    fn small_writes_wait_for_the_flusher_and_keep_their_order() {
        runtime().block_on(async {
            let (ours, peer) = pair();
            tokio::spawn(flusher());
            tokio::task::yield_now().await;
            let mut s = Stream::new(ours);
            for word in [&b"one "[..], b"two ", b"three"] {
                let wrote = std::future::poll_fn(|cx| Poll::Ready(s.poll_write(cx, word))).await;
                assert!(matches!(wrote, Poll::Ready(Ok(n)) if n == word.len()));
            }
            // Corked, not sent: flushing says ready (the flusher sends them this turn).
            assert_eq!(lock(&s.wire.cork).buf, b"one two three");
            assert!(std::future::poll_fn(|cx| Poll::Ready(s.poll_flush(cx))).await.is_ready());
            tokio::task::yield_now().await;
            assert!(lock(&s.wire.cork).buf.is_empty(), "sent by the flusher");
            drop(s);
            assert_eq!(join(read_all(peer)).await, b"one two three");
        });
    }

    #[test]
    fn a_stuck_cork_is_sent_by_its_owner_once_the_peer_reads() {
        runtime().block_on(async {
            let (ours, peer) = pair();
            tokio::spawn(flusher());
            tokio::task::yield_now().await;
            let mut s = Stream::new(ours);
            let total = fill(&mut s).await;
            let wrote = std::future::poll_fn(|cx| Poll::Ready(s.poll_write(cx, b"tail"))).await;
            assert!(matches!(wrote, Poll::Ready(Ok(4))));
            tokio::task::yield_now().await;
            assert!(lock(&s.wire.cork).stuck, "the flusher could not send it");
            // A flush now waits for the peer, then sends.
            let reader = read_all(peer);
            std::future::poll_fn(|cx| s.poll_flush(cx)).await.expect("flush");
            drop(s);
            let all = join(reader).await;
            assert_eq!(all.len(), total + 4);
            assert!(all.ends_with(b"xtail"));
        });
    }

    #[test]
    fn a_dropped_socket_still_sends_its_corked_bytes_when_the_peer_reads_late() {
        runtime().block_on(async {
            let (ours, peer) = pair();
            tokio::spawn(flusher());
            tokio::task::yield_now().await;
            let mut s = Stream::new(ours);
            let total = fill(&mut s).await;
            let wrote = std::future::poll_fn(|cx| Poll::Ready(s.poll_write(cx, b"the end"))).await;
            assert!(matches!(wrote, Poll::Ready(Ok(7))));
            // Let go before the flusher ran: it finds the socket full and nobody to wait.
            drop(s);
            tokio::time::sleep(Duration::from_millis(50)).await;
            let all = join(read_all(peer)).await;
            assert_eq!(all.len(), total + 7, "every byte, then the close");
            assert!(all.ends_with(b"xthe end"));
        });
    }
}
