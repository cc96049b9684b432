//! A small HTTP origin that names itself in every answer. It runs on its own thread, so sync
//! tests can start, stop ("kill") and restart it.
//!
//! Paths: `/health` (200, or 503 when set unhealthy), `/headers` (the request headers it got),
//! `/slow?ms=N`, `/echo` (POST: answers with the body length), `/status/N`, `/ws` (any
//! `Upgrade` request: 101, then echoes bytes), `/pattern?bytes=N&chunk=K` (N bytes of
//! [`pattern_byte`], streamed chunked in K-byte pieces), anything else: `served by NAME`.
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

#[derive(Debug)]
struct Counters {
    connections: AtomicUsize,
    requests: AtomicUsize,
    healthy: AtomicBool,
}

pub struct Origin {
    pub name: String,
    pub addr: SocketAddr,
    counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Origin {
    /// Start an origin on `addr` (port 0 picks one).
    pub fn spawn(name: &str, addr: SocketAddr) -> std::io::Result<Origin> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters {
            connections: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
        });
        let (stop, stop_rx) = watch::channel(false);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (n, c) = (name.to_string(), counters.clone());
        let thread = std::thread::Builder::new()
            .name(format!("origin-{name}"))
            .spawn(move || runtime.block_on(serve(listener, n, c, stop_rx)))?;
        Ok(Origin { name: name.to_string(), addr, counters, stop, thread: Some(thread) })
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.counters.connections.load(Ordering::Relaxed)
    }

    /// Requests answered so far (health checks included).
    pub fn requests(&self) -> usize {
        self.counters.requests.load(Ordering::Relaxed)
    }

    /// Make `/health` answer 503 (false) or 200 (true).
    pub fn set_healthy(&self, healthy: bool) {
        self.counters.healthy.store(healthy, Ordering::Relaxed);
    }

    /// Stop listening and drop every connection at once, as a crashed server would.
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
    name: String,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
    let name: Arc<str> = name.into();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                counters.connections.fetch_add(1, Ordering::Relaxed);
                let (name, counters) = (name.clone(), counters.clone());
                tasks.spawn(async move {
                    let svc = service_fn(move |req| answer(req, name.clone(), counters.clone()));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).with_upgrades().await;
                });
            }
            _ = stop.changed() => break,
        }
    }
    // Dropping the set aborts every connection: clients see resets, not graceful closes.
    drop(listener);
    tasks.abort_all();
}

async fn answer(
    req: Request<Incoming>,
    name: Arc<str>,
    counters: Arc<Counters>,
) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    if req.uri().path() == "/pattern" {
        counters.requests.fetch_add(1, Ordering::Relaxed);
        let arg = |key: &str| {
            req.uri()
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
        };
        let body = Pattern { at: 0, len: arg("bytes").unwrap_or(0), chunk: arg("chunk").unwrap_or(16384).max(1) };
        return Ok(Response::new(body.boxed()));
    }
    answer_whole(req, name, counters).await.map(|r| r.map(|b| b.boxed()))
}

/// The byte at `offset` of a `/pattern` body.
pub fn pattern_byte(offset: usize) -> u8 {
    (offset % 251) as u8
}

/// A `/pattern` body: no length given, so it goes chunked.
struct Pattern {
    at: usize,
    len: usize,
    chunk: usize,
}

impl hyper::body::Body for Pattern {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        let n = self.chunk.min(self.len - self.at);
        if n == 0 {
            return std::task::Poll::Ready(None);
        }
        let data: Bytes = (self.at..self.at + n).map(pattern_byte).collect();
        self.at += n;
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(data))))
    }
}

async fn answer_whole(
    req: Request<Incoming>,
    name: Arc<str>,
    counters: Arc<Counters>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    counters.requests.fetch_add(1, Ordering::Relaxed);
    let path = req.uri().path().to_string();
    let text = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        if let Ok(v) = hyper::header::HeaderValue::from_str(&name) {
            r.headers_mut().insert("x-served-by", v);
        }
        r
    };
    if req.headers().contains_key(hyper::header::UPGRADE) {
        return Ok(upgrade_echo(req, &name));
    }
    let resp = match path.as_str() {
        "/health" | "/client/" if !counters.healthy.load(Ordering::Relaxed) => {
            text(StatusCode::SERVICE_UNAVAILABLE, format!("{name} is unhealthy\n"))
        }
        "/headers" => {
            let mut out = String::new();
            for (k, v) in req.headers() {
                out.push_str(&format!("{}: {}\n", k, String::from_utf8_lossy(v.as_bytes())));
            }
            text(StatusCode::OK, out)
        }
        "/slow" => {
            let ms =
                req.uri().query().and_then(|q| q.strip_prefix("ms=")).and_then(|v| v.parse().ok()).unwrap_or(100u64);
            tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
            text(StatusCode::OK, format!("served by {name} after {ms}ms\n"))
        }
        "/echo" => {
            let len = match req.into_body().collect().await {
                Ok(b) => b.to_bytes().len(),
                Err(_) => 0,
            };
            text(StatusCode::OK, format!("{name} received {len} bytes\n"))
        }
        // An application server opening a session: its own cookie, named as Java servers do.
        "/login" => {
            let mut r = text(StatusCode::OK, format!("session opened on {name}\n"));
            let n = counters.requests.load(Ordering::Relaxed);
            if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("JSESSIONID={name}-{n}; Path=/; HttpOnly")) {
                r.headers_mut().insert(hyper::header::SET_COOKIE, v);
            }
            r
        }
        p if p.starts_with("/status/") => {
            let code = p.trim_start_matches("/status/").parse().ok().and_then(|c| StatusCode::from_u16(c).ok());
            text(code.unwrap_or(StatusCode::BAD_REQUEST), format!("{name} status\n"))
        }
        _ => text(StatusCode::OK, format!("served by {name}\n")),
    };
    Ok(resp)
}

fn upgrade_echo(mut req: Request<Incoming>, name: &str) -> Response<Full<Bytes>> {
    let upgrade = req.headers().get(hyper::header::UPGRADE).cloned();
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let mut io = TokioIo::new(upgraded);
            let mut buf = [0u8; 4096];
            while let Ok(n) = io.read(&mut buf).await {
                if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    r.headers_mut().insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("upgrade"));
    if let Some(u) = upgrade {
        r.headers_mut().insert(hyper::header::UPGRADE, u);
    }
    if let Ok(v) = hyper::header::HeaderValue::from_str(name) {
        r.headers_mut().insert("x-served-by", v);
    }
    r
}
