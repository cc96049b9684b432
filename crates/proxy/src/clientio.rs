//! The client side's socket, with HAProxy's client timeouts on it.
//!
//! The timers run here, where the bytes go by, from the phase of the exchange the request path
//! records:
//!
//! - before the first request (`Idle`), no complete request head for `timeout http-request`
//!   gets 408 and a close, as in HAProxy;
//! - between requests (`Idle`, once a response has been sent), no byte for
//!   `timeout http-keep-alive` (or `timeout http-request` if shorter) closes the connection
//!   quietly;
//! - once a request has begun (`Head`), its head must be in within `timeout http-request`
//!   of its first byte, however slowly it trickles: 408 and a close;
//! - while the request body is read (`Body`) and while a response is written, no progress for
//!   `timeout client` closes the connection (a body cut short this way is answered 408);
//! - while the server works (`Server`) and in tunnels (`Tunnel`, which have `timeout tunnel`)
//!   no client timer runs: the client is not expected to send anything then.
//!
//! A timer costs nothing until a read or write would block, and is armed once per wait.
use std::future::Future as _;
use std::io::{self, Read as _, Write as _};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::http::ClientConn;
use crate::Shared;
use std::sync::Arc;

/// Where a client connection stands; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Between requests (and before the first one).
    Idle = 0,
    /// Bytes of the next request have arrived; hyper is reading its headers.
    Head = 1,
    /// The request body is being read.
    Body = 2,
    /// The request is in; the server is working or the response is streaming.
    Server = 3,
    /// Upgraded to a tunnel.
    Tunnel = 4,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Idle,
            1 => Phase::Head,
            2 => Phase::Body,
            3 => Phase::Server,
            _ => Phase::Tunnel,
        }
    }
}

/// What the socket wrapper and the request path share about one client connection.
#[derive(Debug)]
pub struct ConnState {
    phase: AtomicU8,
    /// Nanoseconds from `base` to the first byte of the current request (0: not recorded).
    head_at: AtomicU64,
    base: Instant,
    /// Record `head_at` (only when an access log will show it).
    timed: bool,
    /// The client stalled in the middle of its request body for `timeout client`.
    pub body_timed_out: AtomicBool,
    /// The request body went over the frontend's `max_request_body`.
    pub body_too_large: AtomicBool,
    /// A response has been sent: idle waits from now on are keep-alive waits.
    answered: AtomicBool,
    /// The client closes after the current exchange: no keep-alive wait to arm.
    closing: AtomicBool,
}

impl ConnState {
    pub fn new(timed: bool) -> ConnState {
        ConnState {
            phase: AtomicU8::new(Phase::Idle as u8),
            head_at: AtomicU64::new(0),
            base: Instant::now(),
            timed,
            body_timed_out: AtomicBool::new(false),
            body_too_large: AtomicBool::new(false),
            answered: AtomicBool::new(false),
            closing: AtomicBool::new(false),
        }
    }

    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Relaxed))
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    /// A request head is in: its body is to be read (`Body`), or the server's turn (`Server`).
    pub fn request_started(&self, bodiless: bool, client_closes: bool) {
        self.closing.store(client_closes, Ordering::Relaxed);
        self.set_phase(if bodiless { Phase::Server } else { Phase::Body });
    }

    /// The response is over (sent, or handed to hyper whole): back to waiting for a request,
    /// unless the client said this was its last.
    pub fn response_done(&self) {
        self.answered.store(true, Ordering::Relaxed);
        self.head_at.store(0, Ordering::Relaxed);
        if !self.closing.load(Ordering::Relaxed) {
            self.set_phase(Phase::Idle);
        }
    }

    /// When the first byte of the current request arrived, if recorded.
    pub fn head_started(&self) -> Option<Instant> {
        match self.head_at.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(self.base + Duration::from_nanos(ns)),
        }
    }

    fn bytes_arrived(&self) {
        if self.phase() == Phase::Idle {
            self.set_phase(Phase::Head);
            if self.timed {
                let ns = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1);
                self.head_at.store(ns, Ordering::Relaxed);
            }
        }
    }
}

/// The client timeouts of a frontend.
#[derive(Debug, Clone, Copy)]
pub struct ClientTimeouts {
    pub client: Duration,
    pub http_request: Duration,
    pub keep_alive: Duration,
}

/// One pending wait: its deadline, and the phase it was armed in.
struct Wait {
    sleep: Pin<Box<Sleep>>,
    armed: Option<Phase>,
}

impl Wait {
    /// Arms (once per wait) and polls; true when the deadline has passed.
    fn expired(slot: &mut Option<Wait>, phase: Phase, limit: Duration, cx: &mut Context<'_>) -> bool {
        // The clock is read only when the wait is (re)armed, not on every poll.
        let wait = match slot {
            Some(wait) if wait.armed == Some(phase) => wait,
            Some(wait) => {
                wait.sleep.as_mut().reset(tokio::time::Instant::now() + limit);
                wait.armed = Some(phase);
                wait
            }
            None => slot.insert(Wait {
                sleep: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now() + limit)),
                armed: Some(phase),
            }),
        };
        wait.sleep.as_mut().poll(cx).is_ready()
    }

    fn disarm(slot: &mut Option<Wait>) {
        if let Some(w) = slot {
            w.armed = None;
        }
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Box<[u8]>> = std::cell::RefCell::new(vec![0u8; 16 * 1024].into_boxed_slice());
}

/// The client socket: used directly until it would block, then registered with the reactor.
enum Sock {
    Plain(std::net::TcpStream),
    Registered(TcpStream),
    /// Only while switching from one to the other.
    Moving,
}

impl Sock {
    /// Registers the socket with the reactor (one `epoll_ctl`).
    fn register(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        if let Sock::Plain(_) = self {
            let Sock::Plain(plain) = std::mem::replace(self, Sock::Moving) else {
                return Err(io::Error::other("socket state"));
            };
            *self = Sock::Registered(TcpStream::from_std(plain)?);
        }
        match self {
            Sock::Registered(t) => Ok(Pin::new(t)),
            _ => Err(io::Error::other("socket state")),
        }
    }
}

/// The client socket with the timers above.
pub struct ClientIo {
    stream: Sock,
    conn: Arc<ClientConn>,
    timeouts: ClientTimeouts,
    /// For the 408 page (the frontend's errorfile or the built-in one).
    shared: Arc<Shared>,
    read_wait: Option<Wait>,
    write_wait: Option<Wait>,
}

impl ClientIo {
    pub fn new(
        stream: std::net::TcpStream,
        conn: Arc<ClientConn>,
        timeouts: ClientTimeouts,
        shared: Arc<Shared>,
    ) -> ClientIo {
        ClientIo { stream: Sock::Plain(stream), conn, timeouts, shared, read_wait: None, write_wait: None }
    }

    /// The 408 page on the wire.
    fn timeout_page(&self) -> Vec<u8> {
        let snap = self.shared.snapshot.load();
        let layers: Vec<&crate::errors::ErrorPages> =
            snap.frontend_for(&self.conn.bind).map(|f| &f.errors).into_iter().collect();
        crate::errors::raw_response(&crate::errors::error_page(http::StatusCode::REQUEST_TIMEOUT, &layers))
    }

    fn poll_read_sock(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if let Sock::Plain(s) = &self.stream {
            // hyper's buffer is uninitialised memory, which safe code must zero before a
            // read (8 KiB per connection); reading into an initialised per-thread scratch
            // buffer and copying the few bytes that came is cheaper.
            let read = SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                let want = buf.remaining().min(scratch.len());
                let n = (&*s).read(&mut scratch[..want])?;
                buf.put_slice(&scratch[..n]);
                Ok::<usize, io::Error>(n)
            });
            match read {
                Ok(_) => return Poll::Ready(Ok(())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        match self.stream.register() {
            Ok(t) => t.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_sock(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if let Sock::Plain(s) = &self.stream {
            match (&*s).write(data) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        match self.stream.register() {
            Ok(t) => t.poll_write(cx, data),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn try_write_now(&self, data: &[u8]) {
        let _ = match &self.stream {
            Sock::Plain(s) => (&*s).write(data),
            Sock::Registered(t) => t.try_write(data),
            Sock::Moving => Ok(0),
        };
    }
}

impl ClientIo {
    /// How long a read may wait in `phase`; None: no timer.
    fn read_limit(&self, phase: Phase) -> Option<Duration> {
        let t = &self.timeouts;
        match phase {
            Phase::Idle if self.conn.state.answered.load(Ordering::Relaxed) => Some(t.keep_alive.min(t.http_request)),
            Phase::Idle | Phase::Head => Some(t.http_request),
            Phase::Body => Some(t.client),
            Phase::Server | Phase::Tunnel => None,
        }
    }

    /// A response is going out and the exchange is over: start the keep-alive wait now. hyper
    /// may not read again before the client sends something (its last read was registered
    /// while the server worked), so the timer is armed from here, on the same task.
    fn start_idle_wait(&mut self, cx: &mut Context<'_>) {
        if self.conn.state.phase() != Phase::Idle
            || self.read_wait.as_ref().is_some_and(|w| w.armed == Some(Phase::Idle))
        {
            return;
        }
        if let Some(limit) = self.read_limit(Phase::Idle) {
            // Not yet expired: it was just armed.
            let _ = Wait::expired(&mut self.read_wait, Phase::Idle, limit, cx);
        }
    }
}

impl AsyncRead for ClientIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match this.poll_read_sock(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    // Inactivity timers restart on progress; the head's deadline does not move.
                    match this.conn.state.phase() {
                        Phase::Idle => {
                            Wait::disarm(&mut this.read_wait);
                            this.conn.state.bytes_arrived();
                        }
                        Phase::Body => Wait::disarm(&mut this.read_wait),
                        _ => {}
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let phase = this.conn.state.phase();
                let answered = this.conn.state.answered.load(Ordering::Relaxed);
                let Some(limit) = this.read_limit(phase) else {
                    Wait::disarm(&mut this.read_wait);
                    return Poll::Pending;
                };
                if !Wait::expired(&mut this.read_wait, phase, limit, cx) {
                    return Poll::Pending;
                }
                match phase {
                    // Idle for `timeout http-keep-alive`: an end of stream, which hyper takes
                    // as a quiet close between requests.
                    Phase::Idle if answered => Poll::Ready(Ok(())),
                    Phase::Body => {
                        this.conn.state.body_timed_out.store(true, Ordering::Relaxed);
                        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "timeout client")))
                    }
                    _ => {
                        // No complete request head in time: 408, written past hyper (which has
                        // written nothing on this connection since its last response), then close.
                        let page = this.timeout_page();
                        this.try_write_now(&page);
                        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "timeout http-request")))
                    }
                }
            }
        }
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match this.poll_write_sock(cx, data) {
            Poll::Pending => {
                if this.conn.state.phase() == Phase::Tunnel {
                    return Poll::Pending;
                }
                if Wait::expired(&mut this.write_wait, Phase::Server, this.timeouts.client, cx) {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "timeout client")));
                }
                Poll::Pending
            }
            ready => {
                Wait::disarm(&mut this.write_wait);
                this.start_idle_wait(cx);
                ready
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.stream {
            Sock::Registered(t) => Pin::new(t).poll_flush(cx),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // hyper shuts an HTTP connection down only to drop it right after, and close() sends
        // the same FIN once the response is out: the shutdown() call would be one more
        // syscall per connection for nothing. A tunnel's half-close is real.
        if self.conn.state.phase() != Phase::Tunnel {
            return Poll::Ready(Ok(()));
        }
        match &mut self.stream {
            Sock::Registered(t) => Pin::new(t).poll_shutdown(cx),
            Sock::Plain(s) => Poll::Ready(s.shutdown(std::net::Shutdown::Write)),
            Sock::Moving => Poll::Ready(Ok(())),
        }
    }
}
