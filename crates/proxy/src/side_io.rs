//! A [`Side`] as the h2 crate reads and writes it (`AsyncRead`/`AsyncWrite`): a client's (with
//! the bytes already read before the switch to HTTP/2, the preface, given back first), or a
//! connection to an HTTP/2 server.
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::io::{Interest, Side};

pub(crate) struct SideIo {
    side: Side,
    /// Read before the switch; handed out before the socket is read again.
    prefix: Option<bytes::BytesMut>,
}

impl SideIo {
    pub(crate) fn new(side: Side, prefix: Option<bytes::BytesMut>) -> SideIo {
        SideIo { side, prefix: prefix.filter(|p| !p.is_empty()) }
    }
}

fn would_block(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted)
}

impl AsyncRead for SideIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(prefix) = this.prefix.as_mut() {
            let n = prefix.len().min(buf.remaining());
            buf.put_slice(&prefix.split_to(n));
            if prefix.is_empty() {
                this.prefix = None;
            }
            return Poll::Ready(Ok(()));
        }
        loop {
            // What rustls still has to send (handshake, key updates) goes out first.
            if let Err(e) = this.side.try_flush() {
                return Poll::Ready(Err(e));
            }
            match this.side.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if would_block(&e) => match this.side.poll_io(cx, Interest::Read) {
                    Poll::Ready(Ok(())) => continue,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                },
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl SideIo {
    /// Takes what the h2 crate writes without a system call (one flush writes it all); past
    /// [`QUEUE_MAX`] unwritten bytes, the writer waits for the socket first.
    fn poll_queue(&mut self, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        while self.side.queued() >= QUEUE_MAX {
            match self.side.try_flush() {
                Ok(true) => break,
                Ok(false) => match self.side.poll_io(cx, Interest::Write) {
                    Poll::Ready(Ok(())) => continue,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                },
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        let parts: Vec<&[u8]> = bufs.iter().map(|b| &**b).filter(|b| !b.is_empty()).collect();
        self.side.queue(&parts);
        Poll::Ready(Ok(parts.iter().map(|p| p.len()).sum()))
    }
}

/// Unwritten bytes a connection may hold before the h2 crate waits for the socket.
const QUEUE_MAX: usize = 256 * 1024;

impl AsyncWrite for SideIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().poll_queue(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_queue(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match this.side.try_flush() {
                Ok(true) => return Poll::Ready(Ok(())),
                Ok(false) => match this.side.poll_io(cx, Interest::Write) {
                    Poll::Ready(Ok(())) => continue,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                },
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.as_mut().poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                self.get_mut().side.shutdown_write();
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}
