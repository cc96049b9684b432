//! HTTP/2 connections to servers (`server ... proto h2`, gRPC): one per server (and TLS
//! settings and name) in each worker, whose streams carry the requests of every HTTP/2 client
//! of that worker. A connection that has ended is replaced at the next request.
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;

use super::{connect, ConnectError, PoolKey, TlsTo};
use crate::fasthash::FastBuild;
use crate::side_io::SideIo;

thread_local! {
    static CONNS: RefCell<HashMap<PoolKey, SendRequest<Bytes>, FastBuild>> = RefCell::new(HashMap::default());
}

/// A handle ready to open a stream on the server's HTTP/2 connection, connecting first when
/// there is none (or it ended). Waits while the server's stream limit is reached.
pub(crate) async fn sender(
    addr: SocketAddr,
    timeout: Duration,
    tls: Option<&TlsTo<'_>>,
) -> Result<SendRequest<Bytes>, ConnectError> {
    let key = tls.map_or(PoolKey::plain(addr), |t| t.key(addr));
    if let Some(existing) = CONNS.with(|c| c.borrow().get(&key).cloned()) {
        match existing.ready().await {
            Ok(ready) => return Ok(ready),
            Err(_) => {
                CONNS.with(|c| c.borrow_mut().remove(&key));
            }
        }
    }
    let up = connect(addr, timeout, tls).await?;
    let handshake = h2::client::Builder::new().handshake::<_, Bytes>(SideIo::new(up.side, None));
    let (send, conn) = match tokio::time::timeout(timeout, handshake).await {
        Err(_) => return Err(ConnectError::Timeout),
        Ok(Err(e)) => return Err(ConnectError::Io(std::io::Error::other(e))),
        Ok(Ok(pair)) => pair,
    };
    // The connection's frames are read and written by a task of its own.
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(%addr, "HTTP/2 connection to the server: {e}");
        }
    });
    CONNS.with(|c| c.borrow_mut().insert(key, send.clone()));
    send.ready().await.map_err(|e| ConnectError::Io(std::io::Error::other(e)))
}

/// An HTTP/1-shaped request head as an HTTP/2 server takes it: no connection-level fields, the
/// Host as `:authority`, an absolute URI with the scheme the connection speaks. None when the
/// authority cannot make a URI.
pub(crate) fn request_head(parts: &http::request::Parts, tls: bool) -> Option<http::request::Parts> {
    use http::header;
    let mut out = parts.clone();
    for name in [header::TRANSFER_ENCODING, header::CONNECTION, header::HOST] {
        out.headers.remove(&name);
    }
    let authority = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = if tls { "https" } else { "http" };
    let pq = out.uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.uri = http::Uri::try_from(format!("{scheme}://{authority}{pq}")).ok()?;
    out.version = http::Version::HTTP_2;
    Some(out)
}

/// A stream's last piece of data up to this size is handed to h2 at once, without waiting for
/// the receiver's window: the bytes are held either way (here or in h2's send buffer until
/// the window opens), and nothing more is read for the stream after it.
const LAST_PIECE_UNWAITED: usize = 16 * 1024;

/// One piece of data on an HTTP/2 stream (to a client or to a server), as the receiver's
/// window lets it go; `idle`: how long the window may stay shut.
pub(crate) async fn send_data(
    send: &mut h2::SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
    idle: std::time::Duration,
) -> Result<(), crate::error::Failure> {
    // Nothing to wait for: no data, or the last piece of the stream while the window already
    // has room for it. (h2 holds data the window does not take yet; waiting for room only
    // matters while more is to be read after this piece.)
    if data.is_empty() || (end && send.capacity() >= data.len()) || (end && data.len() <= LAST_PIECE_UNWAITED) {
        return send.send_data(data, end).map_err(|_| crate::error::Failure::ClientClosed);
    }
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let got = tokio::time::timeout(idle, std::future::poll_fn(|cx| send.poll_capacity(cx))).await;
        let room = match got {
            Err(_) => return Err(crate::error::Failure::ClientTimeout),
            Ok(None) | Ok(Some(Err(_))) => return Err(crate::error::Failure::ClientClosed),
            Ok(Some(Ok(n))) => n,
        };
        if room == 0 {
            continue;
        }
        let piece = data.split_to(room.min(data.len()));
        let last = end && data.is_empty();
        send.send_data(piece, last).map_err(|_| crate::error::Failure::ClientClosed)?;
    }
    Ok(())
}
