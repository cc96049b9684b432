//! HTTP/2 from clients (on the h2 crate): over TLS when ALPN agrees on `h2`, and in clear text
//! on a bind with `proto h2` or when a connection opens with the HTTP/2 preface (prior
//! knowledge, as HAProxy detects it). The connection task reads and writes the frames; each
//! stream is a task of its own, routed and forwarded as an HTTP/1 request is (`stream`), to
//! servers over HTTP/1.1 from the same pool.
//!
//! Limits and defences: the `tune.h2.*` settings are announced (concurrent streams, header
//! table, initial window, frame size); a header list larger than `tune.bufsize` less
//! `tune.maxrewrite` is refused (HPACK bombs and CONTINUATION floods end there); streams reset
//! by the client before they are served are bounded (rapid reset, CVE-2023-44487), and so are
//! the resets fulcrum itself must send; an idle connection closes after
//! `timeout http-keep-alive`, and a draining worker sends GOAWAY and lets streams finish.
mod stream;

pub use stream::{to_http1, Refusal};

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use bytes::BytesMut;

use crate::drain::Drain;
use crate::io::Side;
use crate::l7::Client;
use crate::Shared;

/// Streams reset by the client before they were served, kept at most (h2's own default
/// is 20); beyond, the connection ends with ENHANCE_YOUR_CALM.
const MAX_PENDING_RESETS: usize = 20;

/// Streams fulcrum may reset for the client's errors before it closes the connection.
const MAX_LOCAL_RESETS: usize = 200;

/// What every stream of a connection knows of it.
pub(crate) struct ConnInfo {
    pub peer: SocketAddr,
    pub bind: SocketAddr,
    pub tls: Option<fulcrum_tls::Negotiated>,
}

/// Serves a client connection in HTTP/2 until it ends. `prefix`: bytes already read from it
/// (the preface, detected by the HTTP/1 path).
pub(crate) async fn serve(client: &mut Client, prefix: Option<BytesMut>, shared: &Arc<Shared>, drain: &Drain) {
    let snap = shared.snapshot.load_full();
    let settings = snap.model.global.h2;
    let keep_alive = client.timeouts.keep_alive();
    let handshake_limit = client.timeouts.client();
    let max_header_list = u32::try_from(snap.limits.max_head).unwrap_or(u32::MAX);
    drop(snap);
    let info = Arc::new(ConnInfo { peer: client.peer, bind: client.bind, tls: client.tls.as_deref().cloned() });
    let side = std::mem::replace(&mut client.side, Side::closed());
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(settings.max_concurrent_streams)
        .initial_window_size(settings.initial_window_size)
        .header_table_size(settings.header_table_size)
        .max_frame_size(settings.max_frame_size)
        .max_header_list_size(max_header_list)
        .max_pending_accept_reset_streams(MAX_PENDING_RESETS)
        .max_local_error_reset_streams(Some(MAX_LOCAL_RESETS));
    let mut conn =
        match tokio::time::timeout(handshake_limit, builder.handshake(crate::side_io::SideIo::new(side, prefix))).await
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                tracing::debug!(peer = %info.peer, "HTTP/2 handshake: {e}");
                return;
            }
            Err(_) => return,
        };
    let active = Arc::new(AtomicUsize::new(0));
    let max_streams = settings.max_concurrent_streams as usize;
    // When the last stream in flight ended, in milliseconds from `base`: idleness starts then.
    let base = Instant::now();
    let last_end = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut closing = false;
    let mut idle_since = Instant::now();
    let idle = tokio::time::sleep(keep_alive);
    tokio::pin!(idle);
    loop {
        let next = poll_fn(|cx| {
            if drain.is_draining() && !closing {
                closing = true;
                conn.graceful_shutdown();
            }
            // A stream is taken only while fewer than the announced limit are being served:
            // streams the client resets after they were accepted still hold their task until
            // it ends, so this bounds the work in flight; meanwhile the connection is driven
            // without accepting, and streams reset while waiting count as the rapid reset
            // defence counts them.
            if active.load(Ordering::Acquire) < max_streams {
                if let Poll::Ready(got) = conn.poll_accept(cx) {
                    return Poll::Ready(Some(got));
                }
            } else if let Poll::Ready(closed) = conn.poll_closed(cx) {
                // The connection ended (cleanly: no more streams; or with an error).
                return Poll::Ready(Some(closed.err().map(Err)));
            }
            // No stream for `timeout http-keep-alive`: GOAWAY, and the connection ends.
            if !closing && idle.as_mut().poll(cx).is_ready() {
                let ended = base + std::time::Duration::from_millis(last_end.load(Ordering::Acquire));
                idle_since = idle_since.max(ended);
                if active.load(Ordering::Acquire) == 0 && idle_since.elapsed() >= keep_alive {
                    closing = true;
                    conn.graceful_shutdown();
                } else {
                    idle.as_mut().reset(tokio::time::Instant::now() + keep_alive);
                    if active.load(Ordering::Acquire) > 0 {
                        idle_since = Instant::now();
                    }
                }
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await;
        match next {
            // A timer tick: look again.
            None => continue,
            Some(None) => break,
            Some(Some(Ok((req, respond)))) => {
                idle_since = Instant::now();
                active.fetch_add(1, Ordering::AcqRel);
                let (info, shared, active) = (Arc::clone(&info), Arc::clone(shared), Arc::clone(&active));
                let last_end = Arc::clone(&last_end);
                tokio::spawn(async move {
                    stream::serve(req, respond, info, shared).await;
                    if active.fetch_sub(1, Ordering::AcqRel) == 1 {
                        let ms = u64::try_from(base.elapsed().as_millis()).unwrap_or(u64::MAX);
                        last_end.store(ms, Ordering::Release);
                    }
                });
            }
            Some(Some(Err(e))) => {
                // The defences (rapid reset, too many errors) are worth an operator's look.
                if e.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM) {
                    tracing::info!(peer = %info.peer, "HTTP/2 connection closed: {e} (too many streams reset)");
                } else {
                    tracing::debug!(peer = %info.peer, "HTTP/2: {e}");
                }
                break;
            }
        }
    }
}

use std::future::Future as _;
