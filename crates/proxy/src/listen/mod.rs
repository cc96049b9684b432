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
pub(crate) fn bind_all(
    addrs: &[SocketAddr],
    workers: usize,
) -> Result<Vec<(SocketAddr, Vec<std::net::TcpListener>)>, StartError> {
    addrs
        .iter()
        .map(|addr| {
            let socks = (0..workers).map(|_| bind_one(*addr)).collect::<Result<Vec<_>, _>>()?;
            Ok((*addr, socks))
        })
        .collect()
}

pub(crate) fn bind_one(addr: SocketAddr) -> Result<std::net::TcpListener, StartError> {
    use socket2::{Domain, Socket, Type};
    let err = |source: std::io::Error| StartError::Bind { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    socket.set_reuse_port(true).map_err(err)?;
    if addr.is_ipv6() {
        let _ = socket.set_only_v6(true);
    }
    socket.set_nodelay(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    socket.listen(4096).map_err(err)?;
    // Delayed ACKs from the first byte, as HAProxy does on its HTTP listeners: a new
    // connection otherwise starts in quick-ACK mode and answers the request's segment with an
    // ACK of its own, although the response (which carries the ACK) follows within
    // microseconds. Set after listen(): each accepted socket inherits it. One packet less
    // per connection, a fifth of what the proxy sends in a `Connection: close` exchange.
    let _ = socket.set_quickack(false);
    socket.set_nonblocking(true).map_err(err)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn listeners_delay_acks_from_the_first_byte() {
        let listener = super::bind_one("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = listener.local_addr().expect("local addr");
        assert!(!socket2::SockRef::from(&listener).quickack().expect("getsockopt"), "the listener itself");
        // What matters is what each accepted connection inherits.
        let _client = std::net::TcpStream::connect(addr).expect("connect");
        listener.set_nonblocking(false).expect("blocking");
        let (accepted, _) = listener.accept().expect("accept");
        assert!(!socket2::SockRef::from(&accepted).quickack().expect("getsockopt"), "an accepted connection");
    }
}
