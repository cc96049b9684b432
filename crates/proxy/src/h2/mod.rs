//! HTTP/2 from clients (on the h2 crate): over TLS when ALPN agrees on `h2`, and in clear text
//! on a bind with `proto h2` or when a connection opens with the HTTP/2 preface (prior
//! knowledge, as HAProxy detects it). The connection task reads and writes the frames and runs
//! the streams (`streams`): each is routed and forwarded as an HTTP/1 request is (`stream`), to
//! servers over HTTP/1.1 from the same pool.
//!
//! Limits and defences: the `tune.h2.*` settings are announced (concurrent streams, header
//! table, initial window, frame size); a header list larger than `tune.bufsize` less
//! `tune.maxrewrite` is refused (HPACK bombs and CONTINUATION floods end there); streams reset
//! by the client before they are served are bounded (rapid reset, CVE-2023-44487), and so are
//! the resets fulcrum itself must send; an idle connection closes after
//! `timeout http-keep-alive`, and a draining worker sends GOAWAY and lets streams finish.
mod stream;
mod streams;

pub use stream::{to_http1, Refusal};

use std::future::poll_fn;
use std::net::SocketAddr;
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
    /// What the connection tracks (`tcp-request connection track-sc*`).
    pub session: Option<Arc<crate::live::Tracking>>,
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
    let info = Arc::new(ConnInfo {
        peer: client.peer,
        bind: client.bind,
        tls: client.tls.as_deref().cloned(),
        session: client.session.clone(),
    });
    let side = std::mem::replace(&mut client.side, Side::closed());
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(settings.max_concurrent_streams)
        .initial_window_size(settings.initial_window_size)
        .header_table_size(settings.header_table_size)
        .max_frame_size(settings.max_frame_size)
        .max_header_list_size(max_header_list)
        .max_pending_accept_reset_streams(MAX_PENDING_RESETS)
        .max_local_error_reset_streams(Some(MAX_LOCAL_RESETS))
        // WebSockets over HTTP/2 (RFC 8441), as HAProxy announces them.
        .enable_connect_protocol();
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
    let max_streams = settings.max_concurrent_streams as usize;
    let mut streams = streams::Streams::default();
    let mut closing = false;
    // Since when no stream has been in flight (idleness counts from then).
    let mut idle_since = Instant::now();
    let idle = tokio::time::sleep(keep_alive);
    tokio::pin!(idle);
    let ended = poll_fn(|cx| {
        for _ in 0..MAX_ROUNDS {
            if drain.is_draining() && !closing {
                closing = true;
                conn.graceful_shutdown();
            }
            // A stream is taken only while fewer than the announced limit are being served:
            // streams the client resets after they were accepted still hold their slot until
            // they end, so this bounds the work in flight; meanwhile the connection is driven
            // without accepting, and streams reset while waiting count as the rapid reset
            // defence counts them. Driving the connection also writes what the streams
            // produced in the previous round.
            let mut accepted = false;
            loop {
                if streams.len() >= max_streams {
                    if let Poll::Ready(closed) = conn.poll_closed(cx) {
                        // The connection ended (cleanly: no more streams; or with an error).
                        return Poll::Ready(closed.err());
                    }
                    break;
                }
                match conn.poll_accept(cx) {
                    Poll::Ready(Some(Ok((req, respond)))) => {
                        streams.push(Box::pin(stream::serve(req, respond, Arc::clone(&info), Arc::clone(shared))));
                        accepted = true;
                    }
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(e)),
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Pending => break,
                }
            }
            let (polled, ended) = streams.poll(cx);
            if ended && streams.is_empty() {
                idle_since = Instant::now();
            }
            // No stream for `timeout http-keep-alive`: GOAWAY, and the connection ends.
            if !closing && idle.as_mut().poll(cx).is_ready() {
                if streams.is_empty() && idle_since.elapsed() >= keep_alive {
                    closing = true;
                    conn.graceful_shutdown();
                    continue;
                }
                let from = if streams.is_empty() { idle_since } else { Instant::now() };
                idle.as_mut().reset(tokio::time::Instant::from_std(from + keep_alive));
                let _ = idle.as_mut().poll(cx);
            }
            if !accepted && !polled {
                return Poll::Pending;
            }
        }
        // Busy: the task runs again after the worker's other tasks.
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
    if let Some(e) = ended {
        // The defences (rapid reset, too many errors) are worth an operator's look.
        if e.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM) {
            tracing::info!(peer = %info.peer, "HTTP/2 connection closed: {e} (too many streams reset)");
        } else {
            tracing::debug!(peer = %info.peer, "HTTP/2: {e}");
        }
    }
    // Streams still in flight end on their own (their sends to the client now fail; each
    // logs what became of it), as they would have as tasks of their own.
    drop(conn);
    if !streams.is_empty() {
        poll_fn(|cx| {
            streams.poll(cx);
            if streams.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

/// Rounds of accepting and serving streams in one poll of the connection task.
const MAX_ROUNDS: usize = 8;

use std::future::Future as _;
