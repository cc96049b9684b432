//! The demo's origins: tiny HTTP/1.1 servers that name themselves in every answer, on the
//! proxy's own request parser. `/health` answers 200, or 503 once set sick; anything else
//! `served by NAME`. Each runs on a thread of its own, so the demo can crash one (`kill`: every
//! connection is dropped at once) and start it again.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use fulcrum_proxy::h1::{self, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

pub struct Origin {
    pub addr: SocketAddr,
    healthy: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Origin {
    /// Starts an origin on `addr` (port 0 picks one).
    pub fn spawn(name: &str, addr: SocketAddr) -> std::io::Result<Origin> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let healthy = Arc::new(AtomicBool::new(true));
        let (stop, stopped) = watch::channel(false);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (name, state) = (Arc::<str>::from(name), healthy.clone());
        let thread = std::thread::Builder::new()
            .name(format!("origin-{name}"))
            .spawn(move || runtime.block_on(serve(listener, name, state, stopped)))?;
        Ok(Origin { addr, healthy, stop, thread: Some(thread) })
    }

    /// Makes `/health` answer 503 (false) or 200 (true).
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    /// Stops listening and drops every connection at once, as a crashed server would.
    pub fn kill(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn serve(
    listener: std::net::TcpListener,
    name: Arc<str>,
    healthy: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                connections.spawn(connection(stream, name.clone(), healthy.clone()));
            }
            _ = stop.changed() => break,
        }
    }
    // Dropping the connections' tasks resets them: clients see a crash, not a graceful close.
    connections.abort_all();
}

async fn connection(mut stream: TcpStream, name: Arc<str>, healthy: Arc<AtomicBool>) {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        let req = loop {
            match h1::parse_request(&mut buf, &Limits::HAPROXY) {
                Ok(Some(req)) => break req,
                Ok(None) => {}
                Err(_) => {
                    let _ = stream
                        .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                    return;
                }
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        // The demo's requests carry no body; one that does is read and ignored.
        if let h1::Framing::Length(n) = req.framing {
            let mut left = usize::try_from(n).unwrap_or(usize::MAX).saturating_sub(buf.len());
            buf.clear();
            while left > 0 {
                match stream.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(got) => left = left.saturating_sub(got),
                }
                buf.clear();
            }
        }
        let (status, body) = match req.head.uri.path() {
            "/health" if !healthy.load(Ordering::Relaxed) => ("503 Service Unavailable", "sick\n".to_string()),
            "/health" => ("200 OK", "ok\n".to_string()),
            _ => ("200 OK", format!("served by {name}\n")),
        };
        let close = if req.close { "Connection: close\r\n" } else { "" };
        let answer = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{close}\r\n{body}",
            body.len()
        );
        if stream.write_all(answer.as_bytes()).await.is_err() || req.close {
            return;
        }
    }
}
