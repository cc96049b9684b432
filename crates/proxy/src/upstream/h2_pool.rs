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
