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

/// A deadline that is armed once and moved only when it changes.
#[derive(Default)]
struct Timer {
    sleep: Option<Pin<Box<Sleep>>>,
    at: Option<Instant>,
}

impl Timer {
    fn expired(&mut self, deadline: Instant, cx: &mut Context<'_>) -> bool {
        let at = tokio::time::Instant::from_std(deadline);
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                if self.at != Some(deadline) {
                    sleep.as_mut().reset(at);
                }
                sleep
            }
            None => self.sleep.insert(Box::pin(tokio::time::sleep_until(at))),
        };
        self.at = Some(deadline);
        sleep.as_mut().poll(cx).is_ready()
    }
}

use std::future::Future as _;

/// A socket with its pending output and its timer.
pub(crate) struct Side {
    sock: Sock,
    /// Output accepted but not written yet.
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
        Side { sock: Sock::Plain(stream), pending: Vec::new(), sent: 0, timer: Timer::default() }
    }

    /// A side whose socket was handed over (to a tunnel).
    pub(crate) fn closed() -> Side {
        Side { sock: Sock::Gone, pending: Vec::new(), sent: 0, timer: Timer::default() }
    }

    /// A registered socket (a server connection).
    pub(crate) fn registered(stream: TcpStream) -> Side {
        Side { sock: Sock::Registered(stream), pending: Vec::new(), sent: 0, timer: Timer::default() }
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
        match &self.sock {
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

    fn try_write(&self, parts: &[IoSlice<'_>]) -> io::Result<usize> {
        match &self.sock {
            Sock::Plain(s) if parts.len() == 1 => (&*s).write(&parts[0]),
            Sock::Plain(s) => (&*s).write_vectored(parts),
            Sock::Registered(s) if parts.len() == 1 => s.try_write(&parts[0]),
            Sock::Registered(s) => s.try_write_vectored(parts),
            Sock::Gone => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }

    /// Waits until the socket is ready for `interest`, `deadline` passes (`TimedOut`) or
    /// `stop` is raised (`Stopped`, checked whenever the task is woken).
    pub(crate) async fn ready(
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
        mut f: impl FnMut(&[u8]) -> R,
    ) -> Result<R, IoFail> {
        loop {
            let got = with_scratch(|buf| match self.try_read(buf) {
                Ok(n) => Ok(Some(f(&buf[..n]))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
                Err(e) => Err(e),
            })?;
            match got {
                Some(r) => return Ok(r),
                None => self.ready(Interest::Read, deadline, None).await?,
            }
        }
    }

    /// Writes `parts` as far as the socket takes them now; the rest is kept for [`Side::flush`].
    pub(crate) fn send(&mut self, parts: &[&[u8]]) -> io::Result<()> {
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

    pub(crate) fn has_pending(&self) -> bool {
        self.sent < self.pending.len()
    }

    /// Writes out everything pending. `idle`: how long the peer may take no byte at all.
    pub(crate) async fn flush(&mut self, idle: Option<Duration>) -> Result<(), IoFail> {
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
    /// Closes our direction, then reads and drops what the peer still sends, until it closes,
    /// `limit` passes or a megabyte went by: a socket closed with unread data answers with a
    /// reset, which would destroy the response just sent (HAProxy's lingering close).
    pub(crate) async fn linger(&mut self, limit: Duration) {
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
