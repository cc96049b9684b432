//! A client [`Side`] as the h2 crate reads and writes it (`AsyncRead`/`AsyncWrite`), with the
//! bytes already read before the switch to HTTP/2 (the connection preface) given back first.
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::io::{Interest, Side};

pub(super) struct SideIo {
    side: Side,
    /// Read before the switch; handed out before the socket is read again.
    prefix: Option<bytes::BytesMut>,
}

impl SideIo {
    pub(super) fn new(side: Side, prefix: Option<bytes::BytesMut>) -> SideIo {
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

impl AsyncWrite for SideIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // One write's worth is kept at most: beyond it, the writer waits for the socket.
        loop {
            match this.side.try_flush() {
                Ok(true) => break,
                Ok(false) => match this.side.poll_io(cx, Interest::Write) {
                    Poll::Ready(Ok(())) => continue,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                },
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        this.side.send(&[buf])?;
        Poll::Ready(Ok(buf.len()))
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
