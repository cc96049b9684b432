//! One side of an exchange (the client's socket or a server's) as the connection loops use it:
//! non-blocking reads into the worker's scratch buffer, writes that go out at once and keep
//! only what the socket would not take, and waits for readiness under a deadline.
//!
//! Memory is the point. A connection owns no buffer of its own while nothing is in flight:
//! every read lands in one per-thread buffer and is handed on (written to the other side, or
//! parsed) before the next await, so a waiting connection holds its socket, its timer and
//! nothing else. Output is buffered only when the peer reads slower than we write.
//!
//! A client socket is first used without the reactor: a short exchange (`Connection: close`)
//! reads and writes without ever waiting, and registering it would cost two `epoll_ctl` calls.
//! It is registered the first time a wait is needed.
//!
//! A client side may carry TLS (`bind ... ssl`): a rustls connection sits between the socket
//! and the same calls. Reads feed it ciphertext and hand on the plaintext; writes give it
//! plaintext (the parts of one answer joined into one record) and send what it encrypted; the
//! handshake happens inside the first reads, under the first request's deadline.
use std::cell::RefCell;
use std::future::poll_fn;
use std::io::{self, IoSlice, Read as _, Write as _};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::time::Sleep;

/// Size of the per-thread read buffer: the most one read takes off a socket.
pub(crate) const SCRATCH: usize = 64 * 1024;

thread_local! {
    static SCRATCH_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; SCRATCH].into_boxed_slice());
}

/// Runs `f` on the worker's read buffer. Never hold what `f` sees across an await: copy or
/// write it out before returning.
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    SCRATCH_BUF.with(|buf| match buf.try_borrow_mut() {
        Ok(mut buf) => f(&mut buf),
        // Not reachable (nothing calls this re-entrantly); a fresh buffer keeps it safe anyway.
        Err(_) => f(&mut vec![0u8; SCRATCH]),
    })
}

/// Why a wait or a transfer stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IoFail {
    #[error("timed out")]
    TimedOut,
    /// A `stop` flag was raised while waiting (the worker drains).
    #[error("stopped")]
    Stopped,
    #[error("{0}")]
    Io(#[from] io::Error),
}

enum Sock {
    Plain(std::net::TcpStream),
    Registered(TcpStream),
    /// Only while switching from one to the other, or after `into_stream`.
    Gone,
}

/// A deadline that is armed once and moved only when it comes earlier. A later deadline (the
/// usual case: each request pushes the inactivity limit forward) leaves the timer where it is;
/// when that earlier wake comes, the timer is moved to the real deadline then. Timers rarely
/// fire, so most requests never touch the timer wheel.
#[derive(Default)]
struct Timer {
    sleep: Option<Pin<Box<Sleep>>>,
    /// When the sleep is set to wake.
    armed: Option<Instant>,
}

impl Timer {
    fn expired(&mut self, deadline: Instant, cx: &mut Context<'_>) -> bool {
        let at = tokio::time::Instant::from_std(deadline);
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                if self.armed.is_none_or(|armed| armed > deadline) {
                    sleep.as_mut().reset(at);
                    self.armed = Some(deadline);
                }
                sleep
            }
            None => {
                self.armed = Some(deadline);
                self.sleep.insert(Box::pin(tokio::time::sleep_until(at)))
            }
        };
        if sleep.as_mut().poll(cx).is_pending() {
            return false;
        }
        if Instant::now() >= deadline {
            return true;
        }
        // An earlier deadline's wake: now to the real one.
        sleep.as_mut().reset(at);
        self.armed = Some(deadline);
        sleep.as_mut().poll(cx).is_ready()
    }
}

use std::future::Future as _;

/// A socket with its pending output and its timer.
pub(crate) struct Side {
    sock: Sock,
    /// TLS between the socket and the calls (a client of an `ssl` bind).
    tls: Option<Box<rustls::Connection>>,
    /// Output accepted but not written yet (with TLS: plaintext rustls did not take yet).
    pending: Vec<u8>,
    /// How much of `pending` is already written.
    sent: usize,
    timer: Timer,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Interest {
    Read,
    Write,
}

impl Side {
    /// A socket not registered with the reactor yet (an accepted client).
    pub(crate) fn plain(stream: std::net::TcpStream) -> Side {
        Side { sock: Sock::Plain(stream), tls: None, pending: Vec::new(), sent: 0, timer: Timer::default() }
    }

    /// A side whose socket was handed over (to a tunnel).
    pub(crate) fn closed() -> Side {
        Side { sock: Sock::Gone, tls: None, pending: Vec::new(), sent: 0, timer: Timer::default() }
    }

    /// A registered socket (a server connection).
    pub(crate) fn registered(stream: TcpStream) -> Side {
        Side { sock: Sock::Registered(stream), tls: None, pending: Vec::new(), sent: 0, timer: Timer::default() }
    }

    /// An accepted client of a TLS bind.
    pub(crate) fn tls(stream: std::net::TcpStream, tls: rustls::ServerConnection) -> Side {
        let mut side = Side::plain(stream);
        side.tls = Some(Box::new(rustls::Connection::Server(tls)));
        side
    }

    /// A registered socket that speaks TLS (a `mode tcp` client of an `ssl` bind).
    pub(crate) fn registered_tls(stream: TcpStream, tls: rustls::ServerConnection) -> Side {
        let mut side = Side::registered(stream);
        side.tls = Some(Box::new(rustls::Connection::Server(tls)));
        side
    }

    /// A server connection that speaks TLS (`server ... ssl`); the handshake happens with the
    /// first request's writes and reads.
    pub(crate) fn registered_tls_client(stream: TcpStream, tls: rustls::ClientConnection) -> Side {
        let mut side = Side::registered(stream);
        side.tls = Some(Box::new(rustls::Connection::Client(tls)));
        side
    }

    /// The registered socket (for the pool's look at its readiness).
    pub(crate) fn registered_stream(&self) -> Option<&TcpStream> {
        match &self.sock {
            Sock::Registered(s) => Some(s),
            _ => None,
        }
    }

    /// Gives rustls bytes read from the socket before TLS began (what followed a PROXY
    /// protocol header in the same read).
    pub(crate) fn feed_tls(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        let Some(tls) = self.tls.as_deref_mut() else { return Ok(()) };
        while !bytes.is_empty() {
            tls.read_tls(&mut bytes)?;
            tls.process_new_packets().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
        Ok(())
    }

    /// Whether TLS sits between the socket and the calls.
    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Runs the TLS handshake to its end (nothing to do without TLS), within `deadline`.
    pub(crate) async fn handshake(&mut self, deadline: Instant) -> Result<(), IoFail> {
        while let Some(tls) = self.tls.as_deref_mut() {
            if !tls.is_handshaking() {
                flush_tls(tls, &self.sock)?;
                return Ok(());
            }
            let got = tls.read_tls(&mut Raw(&self.sock));
            match got {
                Ok(0) => return Err(IoFail::Io(io::Error::from(io::ErrorKind::UnexpectedEof))),
                Ok(_) => {
                    if let Err(e) = tls.process_new_packets() {
                        let _ = flush_tls(tls, &self.sock);
                        return Err(IoFail::Io(io::Error::new(io::ErrorKind::InvalidData, e)));
                    }
                    flush_tls(tls, &self.sock)?;
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                    self.ready(Interest::Read, Some(deadline), None).await?;
                }
                Err(e) => return Err(IoFail::Io(e)),
            }
        }
        Ok(())
    }

    /// Waits (with no deadline: the caller has its own timer) until the socket is ready for
    /// `interest`, registering it with the reactor first if it is not yet.
    pub(crate) fn poll_io(&mut self, cx: &mut Context<'_>, interest: Interest) -> Poll<io::Result<()>> {
        let stream = self.stream()?;
        match interest {
            Interest::Read => stream.poll_read_ready(cx),
            Interest::Write => stream.poll_write_ready(cx),
        }
    }

    /// Writes out what is pending as far as the socket takes it now, without waiting: true
    /// when nothing is left.
    pub(crate) fn try_flush(&mut self) -> io::Result<bool> {
        match self.tls.as_deref_mut() {
            Some(tls) => loop {
                // Plaintext into records as rustls takes it, records out as the socket does.
                let mut took = 0;
                if self.sent < self.pending.len() {
                    use std::io::Write as _;
                    took = tls.writer().write(&self.pending[self.sent..])?;
                    self.sent += took;
                }
                flush_tls(tls, &self.sock)?;
                if tls.wants_write() || self.sent >= self.pending.len() || took == 0 {
                    break;
                }
            },
            None => {
                while self.sent < self.pending.len() {
                    let chunk = [IoSlice::new(&self.pending[self.sent..])];
                    match raw_write(&self.sock, &chunk) {
                        Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                        Ok(n) => self.sent += n,
                        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => break,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        if self.has_pending() {
            return Ok(false);
        }
        self.pending = Vec::new();
        self.sent = 0;
        Ok(true)
    }

    /// Closes our sending direction: with TLS, a close_notify first.
    pub(crate) fn shutdown_write(&mut self) {
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.send_close_notify();
            let _ = flush_tls(tls, &self.sock);
        }
        let _ = match &self.sock {
            Sock::Plain(s) => s.shutdown(std::net::Shutdown::Write),
            Sock::Registered(s) => socket2::SockRef::from(s).shutdown(std::net::Shutdown::Write),
            Sock::Gone => Ok(()),
        };
    }

    /// The TLS connection, once its handshake is done.
    pub(crate) fn tls_session(&self) -> Option<&rustls::ServerConnection> {
        match self.tls.as_deref() {
            Some(rustls::Connection::Server(s)) if !s.is_handshaking() => Some(s),
            _ => None,
        }
    }

    fn stream(&mut self) -> io::Result<&TcpStream> {
        if let Sock::Plain(_) = self.sock {
            let Sock::Plain(plain) = std::mem::replace(&mut self.sock, Sock::Gone) else {
                return Err(io::Error::other("socket state"));
            };
            self.sock = Sock::Registered(TcpStream::from_std(plain)?);
        }
        match &self.sock {
            Sock::Registered(s) => Ok(s),
            _ => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }

    /// The registered stream, for a tunnel (pending output must have been flushed).
    pub(crate) fn into_stream(mut self) -> io::Result<TcpStream> {
        if self.tls.is_some() {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "a tunnel over TLS"));
        }
        self.stream()?;
        match std::mem::replace(&mut self.sock, Sock::Gone) {
            Sock::Registered(s) => Ok(s),
            _ => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }

    /// The address this end of the connection has (the address a client connected to).
    pub(crate) fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        match &self.sock {
            Sock::Plain(s) => s.local_addr(),
            Sock::Registered(s) => s.local_addr(),
            Sock::Gone => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }

    /// Reads what is there; `WouldBlock` when nothing is.
    pub(crate) fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.tls.as_deref_mut() {
            None => raw_read(&self.sock, buf),
            Some(tls) => tls_read(tls, &self.sock, buf),
        }
    }

    fn try_write(&self, parts: &[IoSlice<'_>]) -> io::Result<usize> {
        raw_write(&self.sock, parts)
    }

    /// Waits until the socket is ready for `interest`, as [`Side::ready_raw`]; with TLS, what
    /// rustls has to send (handshake messages) goes out first.
    pub(crate) async fn ready(
        &mut self,
        interest: Interest,
        deadline: Option<Instant>,
        stop: Option<&AtomicBool>,
    ) -> Result<(), IoFail> {
        while let Some(tls) = self.tls.as_deref_mut() {
            flush_tls(tls, &self.sock)?;
            if !tls.wants_write() {
                break;
            }
            self.ready_raw(Interest::Write, deadline, stop).await?;
        }
        self.ready_raw(interest, deadline, stop).await
    }

    /// Waits until the socket is ready for `interest`, `deadline` passes (`TimedOut`) or
    /// `stop` is raised (`Stopped`, checked whenever the task is woken).
    async fn ready_raw(
        &mut self,
        interest: Interest,
        deadline: Option<Instant>,
        stop: Option<&AtomicBool>,
    ) -> Result<(), IoFail> {
        self.stream()?;
        let Side { sock: Sock::Registered(stream), timer, .. } = self else {
            return Err(IoFail::Io(io::Error::from(io::ErrorKind::NotConnected)));
        };
        poll_fn(|cx| {
            let ready = match interest {
                Interest::Read => stream.poll_read_ready(cx),
                Interest::Write => stream.poll_write_ready(cx),
            };
            if let Poll::Ready(r) = ready {
                return Poll::Ready(r.map_err(IoFail::Io));
            }
            if stop.is_some_and(|s| s.load(Ordering::Acquire)) {
                return Poll::Ready(Err(IoFail::Stopped));
            }
            match deadline {
                Some(d) if timer.expired(d, cx) => Poll::Ready(Err(IoFail::TimedOut)),
                _ => Poll::Pending,
            }
        })
        .await
    }

    /// Reads once into the scratch buffer and hands the bytes to `f` (an empty slice at end
    /// of stream), waiting until `deadline` when nothing is there.
    pub(crate) async fn read_with<R>(
        &mut self,
        deadline: Option<Instant>,
        f: impl FnMut(&[u8]) -> R,
    ) -> Result<R, IoFail> {
        self.read_with_layer(deadline, f, false).await
    }

    /// [`Side::read_with`] below TLS: the socket's own bytes (a PROXY protocol header comes
    /// before the TLS handshake).
    pub(crate) async fn read_raw_with<R>(
        &mut self,
        deadline: Option<Instant>,
        f: impl FnMut(&[u8]) -> R,
    ) -> Result<R, IoFail> {
        self.read_with_layer(deadline, f, true).await
    }

    async fn read_with_layer<R>(
        &mut self,
        deadline: Option<Instant>,
        mut f: impl FnMut(&[u8]) -> R,
        raw: bool,
    ) -> Result<R, IoFail> {
        loop {
            let got = with_scratch(|buf| match if raw { raw_read(&self.sock, buf) } else { self.try_read(buf) } {
                Ok(n) => Ok(Some(f(&buf[..n]))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
                Err(e) => Err(e),
            })?;
            match got {
                Some(r) => return Ok(r),
                None if raw => self.ready_raw(Interest::Read, deadline, None).await?,
                None => self.ready(Interest::Read, deadline, None).await?,
            }
        }
    }

    /// Writes `parts` as far as the socket takes them now; the rest is kept for [`Side::flush`].
    pub(crate) fn send(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        if let Some(tls) = self.tls.as_deref_mut() {
            return tls_send(tls, &self.sock, &mut self.pending, &mut self.sent, parts);
        }
        if self.has_pending() {
            for p in parts {
                self.pending.extend_from_slice(p);
            }
            return Ok(());
        }
        // Up to four parts in one system call (a head, a chunk-size line, data, a CRLF).
        let mut slices = [IoSlice::new(&[]); 4];
        let mut count = 0;
        for p in parts.iter().filter(|p| !p.is_empty()).take(slices.len()) {
            slices[count] = IoSlice::new(p);
            count += 1;
        }
        if count == 0 {
            return Ok(());
        }
        let mut written = match self.try_write(&slices[..count]) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => 0,
            Err(e) => return Err(e),
        };
        for p in parts {
            if written >= p.len() {
                written -= p.len();
            } else {
                self.pending.extend_from_slice(&p[written..]);
                written = 0;
            }
        }
        Ok(())
    }

    /// Takes `parts` to send without writing them yet; the next `try_flush` or `flush` writes
    /// everything in as few system calls (and, with TLS, as few records) as it can.
    pub(crate) fn queue(&mut self, parts: &[&[u8]]) {
        if self.sent > 0 && self.sent >= self.pending.len() {
            self.pending.clear();
            self.sent = 0;
        }
        for p in parts {
            self.pending.extend_from_slice(p);
        }
    }

    /// Bytes taken and not written yet (plaintext, and with TLS the records rustls holds).
    pub(crate) fn queued(&self) -> usize {
        self.pending.len().saturating_sub(self.sent)
    }

    pub(crate) fn has_pending(&self) -> bool {
        self.sent < self.pending.len() || self.tls.as_deref().is_some_and(|t| t.wants_write())
    }

    /// Writes out everything pending. `idle`: how long the peer may take no byte at all.
    pub(crate) async fn flush(&mut self, idle: Option<Duration>) -> Result<(), IoFail> {
        if self.tls.is_some() {
            return self.flush_tls(idle).await;
        }
        while self.has_pending() {
            let chunk = [IoSlice::new(&self.pending[self.sent..])];
            match self.try_write(&chunk) {
                Ok(0) => return Err(IoFail::Io(io::Error::from(io::ErrorKind::WriteZero))),
                Ok(n) => self.sent += n,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                    let deadline = idle.map(|d| Instant::now() + d);
                    self.ready(Interest::Write, deadline, None).await?;
                }
                Err(e) => return Err(IoFail::Io(e)),
            }
        }
        // Written out: give the memory back.
        self.pending = Vec::new();
        self.sent = 0;
        Ok(())
    }
}

impl Side {
    /// `flush` with TLS: plaintext into rustls as it takes it, records out as the socket takes
    /// them.
    async fn flush_tls(&mut self, idle: Option<Duration>) -> Result<(), IoFail> {
        loop {
            let Some(tls) = self.tls.as_deref_mut() else { return Ok(()) };
            if self.sent < self.pending.len() {
                use std::io::Write as _;
                self.sent += tls.writer().write(&self.pending[self.sent..])?;
            }
            flush_tls(tls, &self.sock)?;
            let waiting = tls.wants_write();
            if !waiting && self.sent >= self.pending.len() {
                self.pending = Vec::new();
                self.sent = 0;
                return Ok(());
            }
            if waiting {
                let deadline = idle.map(|d| Instant::now() + d);
                self.ready_raw(Interest::Write, deadline, None).await?;
            }
        }
    }

    /// Closes our direction, then reads and drops what the peer still sends, until it closes,
    /// `limit` passes or a megabyte went by: a socket closed with unread data answers with a
    /// reset, which would destroy the response just sent (HAProxy's lingering close).
    pub(crate) async fn linger(&mut self, limit: Duration) {
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.send_close_notify();
            let _ = flush_tls(tls, &self.sock);
        }
        let shut = match &self.sock {
            Sock::Plain(s) => s.shutdown(std::net::Shutdown::Write),
            Sock::Registered(s) => socket2::SockRef::from(s).shutdown(std::net::Shutdown::Write),
            Sock::Gone => return,
        };
        if shut.is_err() {
            return;
        }
        let deadline = Some(Instant::now() + limit);
        let mut budget: usize = 1 << 20;
        while budget > 0 {
            match self.read_with(deadline, <[u8]>::len).await {
                Ok(n) if n > 0 => budget = budget.saturating_sub(n),
                _ => return,
            }
        }
    }
}

/// Whether the peer of an idle connection has closed or sent something since
/// [`forget_readiness`], seen without a system call.
pub(crate) fn peer_spoke(stream: &TcpStream) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    stream.poll_read_ready(&mut cx).is_ready()
}

/// Marks a connection whose message was read to its last byte as having nothing more to read,
/// without a system call: from now on, readiness means the peer closed or spoke out of turn.
/// Only events seen before this call are forgotten; a later close sets readiness again.
pub(crate) fn forget_readiness(stream: &TcpStream) {
    let _ = stream.try_io(tokio::io::Interest::READABLE, || Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock)));
}

/// One read from the socket itself.
fn raw_read(sock: &Sock, buf: &mut [u8]) -> io::Result<usize> {
    match sock {
        Sock::Plain(s) => (&*s).read(buf),
        Sock::Registered(s) => {
            let n = s.try_read(buf)?;
            // A read shorter than asked took all there was: the next read waits for the
            // reactor instead of asking the kernel to hear "nothing yet" (a system call per
            // request saved, as HAProxy does). Data arriving from now on is a new event.
            if n > 0 && n < buf.len() {
                forget_readiness(s);
            }
            Ok(n)
        }
        Sock::Gone => Err(io::Error::from(io::ErrorKind::NotConnected)),
    }
}

fn raw_write(sock: &Sock, parts: &[IoSlice<'_>]) -> io::Result<usize> {
    match sock {
        Sock::Plain(s) if parts.len() == 1 => (&*s).write(&parts[0]),
        Sock::Plain(s) => (&*s).write_vectored(parts),
        Sock::Registered(s) if parts.len() == 1 => s.try_write(&parts[0]),
        Sock::Registered(s) => s.try_write_vectored(parts),
        Sock::Gone => Err(io::Error::from(io::ErrorKind::NotConnected)),
    }
}

/// The socket as rustls reads and writes it.
struct Raw<'a>(&'a Sock);

impl io::Read for Raw<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        raw_read(self.0, buf)
    }
}

impl io::Write for Raw<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        raw_write(self.0, &[IoSlice::new(buf)])
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        raw_write(self.0, bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Plaintext from a TLS connection: what rustls holds, else one read from the socket through
/// it (the handshake is done this way too: its replies are sent as they are made). `Ok(0)`
/// at the end, with or without the client's close_notify.
fn tls_read(tls: &mut rustls::Connection, sock: &Sock, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match tls.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e),
        }
        let got = tls.read_tls(&mut Raw(sock))?;
        if let Err(e) = tls.process_new_packets() {
            // The alert rustls queued tells the client why.
            let _ = flush_tls(tls, sock);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        flush_tls(tls, sock)?;
        if got == 0 && !tls.wants_read() {
            return Ok(0);
        }
    }
}

/// Sends what rustls has encrypted, as far as the socket takes it now.
fn flush_tls(tls: &mut rustls::Connection, sock: &Sock) -> io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(&mut Raw(sock)) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

thread_local! {
    /// Where the parts of one answer are joined, so that they make one TLS record.
    static JOIN_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The largest answer joined into one record (a TLS record carries 16 KiB).
const JOIN_MAX: usize = 16 * 1024;

/// `send` with TLS: the parts go to rustls (joined when they fit one record); what it does not
/// take waits in `pending`; what it encrypted goes out as far as the socket takes it.
fn tls_send(
    tls: &mut rustls::Connection,
    sock: &Sock,
    pending: &mut Vec<u8>,
    sent: &mut usize,
    parts: &[&[u8]],
) -> io::Result<()> {
    use std::io::Write as _;
    if *sent < pending.len() {
        for p in parts {
            pending.extend_from_slice(p);
        }
        return flush_tls(tls, sock);
    }
    let mut give = |data: &[u8], pending: &mut Vec<u8>| -> io::Result<()> {
        if !pending.is_empty() {
            pending.extend_from_slice(data);
            return Ok(());
        }
        let took = tls.writer().write(data)?;
        if took < data.len() {
            pending.clear();
            pending.extend_from_slice(&data[took..]);
        }
        Ok(())
    };
    // Everything before was taken: start afresh.
    pending.clear();
    *sent = 0;
    let nonempty = parts.iter().filter(|p| !p.is_empty()).count();
    let total: usize = parts.iter().map(|p| p.len()).sum();
    if nonempty > 1 && total <= JOIN_MAX {
        JOIN_BUF.with(|join| -> io::Result<()> {
            let mut join = join.try_borrow_mut().map_err(|_| io::Error::other("join buffer"))?;
            join.clear();
            for p in parts {
                join.extend_from_slice(p);
            }
            give(&join, pending)
        })?;
    } else {
        for p in parts.iter().filter(|p| !p.is_empty()) {
            give(p, pending)?;
        }
    }
    flush_tls(tls, sock)
}
