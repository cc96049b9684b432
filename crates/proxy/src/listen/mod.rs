//! Where connections come in: listening sockets (bound once per worker with SO_REUSEPORT,
//! with the socket options the data path wants), the worker threads that accept on them, the
//! connection limits, and the drain of a stopping worker.
mod limit;
mod worker;

use std::net::SocketAddr;

pub(crate) use limit::ConnLimit;
pub(crate) use worker::Worker;

use crate::StartError;

/// Bind each address once per worker with SO_REUSEPORT, so the kernel spreads connections.
/// The flag says whether the address serves HTTP (see [`bind_one`]).
pub(crate) fn bind_all(
    addrs: &[(SocketAddr, bool)],
    workers: usize,
) -> Result<Vec<(SocketAddr, Vec<std::net::TcpListener>)>, StartError> {
    addrs
        .iter()
        .map(|&(addr, http)| {
            let socks = (0..workers).map(|_| bind_one(addr, http)).collect::<Result<Vec<_>, _>>()?;
            Ok((addr, socks))
        })
        .collect()
}

/// Listening sockets this process was given rather than bound (a parent's `fd@N`): an
/// address found here is served from that socket (one duplicate per worker) instead of a new
/// bind, at start and at every reload. Process-wide, as the descriptors are.
static OFFERED: std::sync::Mutex<Vec<(SocketAddr, std::net::TcpListener)>> = std::sync::Mutex::new(Vec::new());

/// Hand the proxy a listening socket it did not bind; returns the address it listens on,
/// the address a configuration's `fd@N` stands for.
pub fn offer_listener(listener: std::net::TcpListener) -> std::io::Result<SocketAddr> {
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let mut offered = OFFERED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    offered.retain(|(a, _)| *a != addr);
    offered.push((addr, listener));
    Ok(addr)
}

fn offered(addr: SocketAddr) -> Option<std::io::Result<std::net::TcpListener>> {
    let offered = OFFERED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    offered.iter().find(|(a, _)| *a == addr).map(|(_, l)| l.try_clone())
}

/// One listening socket. IP_FREEBIND: an address the host does not hold yet (a VIP that VRRP
/// brings later) can be bound, so a backup node is ready before it becomes master. `http`:
/// acknowledgements wait for the answer (below); a `mode tcp` listener keeps quick ACKs, as a
/// byte stream may wait for a reply that never comes.
pub(crate) fn bind_one(addr: SocketAddr, http: bool) -> Result<std::net::TcpListener, StartError> {
    use socket2::{Domain, Socket, Type};
    let err = |source: std::io::Error| StartError::Bind { addr, source };
    if let Some(listener) = offered(addr) {
        return listener.map_err(err);
    }
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    socket.set_reuse_port(true).map_err(err)?;
    if addr.is_ipv6() {
        let _ = socket.set_only_v6(true);
    }
    socket.set_nodelay(true).map_err(err)?;
    let _ = if addr.is_ipv6() { socket.set_freebind_ipv6(true) } else { socket.set_freebind(true) };
    socket.bind(&addr.into()).map_err(err)?;
    socket.listen(4096).map_err(err)?;
    // Delayed ACKs from the first byte, as HAProxy does on its HTTP listeners: a new
    // connection otherwise starts in quick-ACK mode and answers the request's segment with an
    // ACK of its own, although the response (which carries the ACK) follows within
    // microseconds. Set after listen(): each accepted socket inherits it. One packet less
    // per connection, a fifth of what the proxy sends in a `Connection: close` exchange.
    if http {
        let _ = socket.set_quickack(false);
    }
    socket.set_nonblocking(true).map_err(err)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn tcp_listeners_acknowledge_at_once_and_any_listener_binds_a_foreign_address() {
        let listener = super::bind_one("127.0.0.1:0".parse().expect("addr"), false).expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let _client = std::net::TcpStream::connect(addr).expect("connect");
        listener.set_nonblocking(false).expect("blocking");
        let (accepted, _) = listener.accept().expect("accept");
        assert!(socket2::SockRef::from(&accepted).quickack().expect("getsockopt"), "a mode tcp connection");
        // IP_FREEBIND: an address no interface holds (TEST-NET-3) binds, as a VIP not yet taken.
        let foreign = super::bind_one("203.0.113.77:0".parse().expect("addr"), true).expect("freebind");
        assert!(socket2::SockRef::from(&foreign).freebind().expect("getsockopt"));
    }

    #[test]
    fn listeners_delay_acks_from_the_first_byte() {
        let listener = super::bind_one("127.0.0.1:0".parse().expect("addr"), true).expect("bind");
        let addr = listener.local_addr().expect("local addr");
        assert!(!socket2::SockRef::from(&listener).quickack().expect("getsockopt"), "the listener itself");
        // What matters is what each accepted connection inherits.
        let _client = std::net::TcpStream::connect(addr).expect("connect");
        listener.set_nonblocking(false).expect("blocking");
        let (accepted, _) = listener.accept().expect("accept");
        assert!(!socket2::SockRef::from(&accepted).quickack().expect("getsockopt"), "an accepted connection");
    }
}
