//! HAProxy's PROXY protocol, v1 (a text line) and v2 (binary): the header a server's new
//! connections start with (`send-proxy`, `send-proxy-v2`), and the one a client connection
//! must start with on an `accept-proxy` bind, whose source address then stands for the
//! client's. Both directions use the `ppp` crate.
use std::net::SocketAddr;

use fulcrum_model::ProxyVersion;
use ppp::{v1, v2, HeaderResult, PartialResult};

/// The longest header accepted: v1's limit is 107 bytes; v2 may carry TLVs.
pub const MAX_HEADER: usize = 1024;

/// What the first bytes of an `accept-proxy` connection hold so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Partial,
    /// A header of `len` bytes; its source address (None for `UNKNOWN`/`LOCAL`: the
    /// connection's own address stays the client's).
    Header {
        len: usize,
        source: Option<SocketAddr>,
    },
    Invalid(String),
}

pub fn parse(data: &[u8]) -> Incoming {
    // A v1 line is read once its CRLF is in (at most 107 bytes): its last field would
    // otherwise be read cut short.
    let start = data.len().min(6);
    let v1_line = data.get(..start) == b"PROXY ".get(..start);
    if v1_line && !data.windows(2).any(|w| w == b"\r\n") {
        return if data.len() >= 107 {
            Incoming::Invalid("invalid PROXY protocol v1 header: no end of line in 107 bytes".into())
        } else {
            Incoming::Partial
        };
    }
    let parsed = HeaderResult::parse(data);
    if parsed.is_incomplete() {
        return if data.len() >= MAX_HEADER {
            Incoming::Invalid("no complete PROXY protocol header in the first 1024 bytes".into())
        } else {
            Incoming::Partial
        };
    }
    match parsed {
        HeaderResult::V1(Ok(h)) => {
            let source = match h.addresses {
                v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                v1::Addresses::Unknown => None,
            };
            Incoming::Header { len: h.header.len(), source }
        }
        HeaderResult::V2(Ok(h)) => {
            let source = match (h.command, h.addresses) {
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                _ => None,
            };
            Incoming::Header { len: h.len(), source }
        }
        HeaderResult::V1(Err(e)) => Incoming::Invalid(format!("invalid PROXY protocol v1 header: {e}")),
        HeaderResult::V2(Err(e)) => Incoming::Invalid(format!("invalid PROXY protocol v2 header: {e}")),
    }
}

/// The header that tells a server who the client is (`client`) and which address it
/// connected to (`local`). Addresses of two families are sent as IPv6 (an IPv4 one mapped).
pub fn header(version: ProxyVersion, client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let (client, local) = same_family(client, local);
    match version {
        ProxyVersion::V1 => v1::Addresses::from((client, local)).to_string().into_bytes(),
        ProxyVersion::V2 => {
            let version_command = v2::Version::Two | v2::Command::Proxy;
            v2::Builder::with_addresses(version_command, v2::Protocol::Stream, (client, local))
                .build()
                // Building into a Vec cannot fail for addresses of one family.
                .unwrap_or_default()
        }
    }
}

/// The header of a connection the proxy opens for itself (health checks): v1 `UNKNOWN`, v2
/// `LOCAL`; the server then keeps the connection's own addresses.
pub fn local_header(version: ProxyVersion) -> Vec<u8> {
    match version {
        ProxyVersion::V1 => b"PROXY UNKNOWN\r\n".to_vec(),
        ProxyVersion::V2 => {
            let version_command = v2::Version::Two | v2::Command::Local;
            v2::Builder::with_addresses(version_command, v2::Protocol::Unspecified, v2::Addresses::Unspecified)
                .build()
                .unwrap_or_default()
        }
    }
}

fn same_family(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    let v6 = |s: SocketAddr| match s {
        SocketAddr::V4(v4) => SocketAddr::from((v4.ip().to_ipv6_mapped(), v4.port())),
        v6 => v6,
    };
    if a.is_ipv4() == b.is_ipv4() {
        (a, b)
    } else {
        (v6(a), v6(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    #[test]
    fn round_trips_and_partial_headers() {
        let (client, local) = (addr("192.0.2.7:40000"), addr("10.0.0.1:443"));
        let v1 = header(ProxyVersion::V1, client, local);
        assert_eq!(v1, b"PROXY TCP4 192.0.2.7 10.0.0.1 40000 443\r\n");
        for version in [ProxyVersion::V1, ProxyVersion::V2] {
            let mut bytes = header(version, client, local);
            let len = bytes.len();
            bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
            assert_eq!(parse(&bytes), Incoming::Header { len, source: Some(client) });
            for cut in 1..len {
                assert_eq!(parse(&bytes[..cut]), Incoming::Partial, "{version:?} cut at {cut}");
            }
        }
        let mixed = header(ProxyVersion::V2, addr("[2001:db8::1]:5000"), local);
        assert!(matches!(parse(&mixed), Incoming::Header { source: Some(SocketAddr::V6(_)), .. }));
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), Incoming::Header { len: 15, source: None });
        let local = local_header(ProxyVersion::V2);
        assert_eq!(parse(&local), Incoming::Header { len: local.len(), source: None });
        assert!(matches!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Incoming::Invalid(_)));
        assert!(matches!(parse(&[b'P'; 2000]), Incoming::Invalid(_)));
    }
}
