//! What the proxy changes in the heads it passes on: hop-by-hop fields (RFC 9110 §7.6.1),
//! `X-Forwarded-For`, `Connection`, and the framing fields of the message it writes.
use std::net::IpAddr;

use fulcrum_model::{ConnMode, HttpReuse};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::h1::connection_tokens;
use crate::snapshot::{BackendRt, FrontendRt};

thread_local! {
    /// The last client address this worker formatted for `X-Forwarded-For`. Clients open
    /// connection after connection from one address; a clone of the cached value is a
    /// reference count, where formatting it is an allocation, and its first clone another.
    static LAST_FORWARDED_FOR: std::cell::RefCell<Option<(IpAddr, HeaderValue)>> =
        const { std::cell::RefCell::new(None) };
}

/// The client address as an `X-Forwarded-For` value (IPv4-mapped addresses as IPv4).
pub(crate) fn forwarded_for(ip: IpAddr) -> HeaderValue {
    LAST_FORWARDED_FOR.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((cached, value)) = last.as_ref() {
            if *cached == ip {
                return value.clone();
            }
        }
        let v4 = match ip {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(v6) => v6.to_ipv4_mapped(),
        };
        let value = match v4 {
            Some(v4) => ipv4_header(v4),
            None => HeaderValue::from_str(&ip.to_string()),
        }
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        *last = Some((ip, value.clone()));
        value
    })
}

/// An IPv4 address as a header value, without the formatting machinery.
fn ipv4_header(ip: std::net::Ipv4Addr) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    let mut out = [0u8; 15];
    let mut len = 0;
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out[len] = b'.';
            len += 1;
        }
        let digits = [octet / 100, octet / 10 % 10, octet % 10];
        let skip = if octet >= 100 {
            0
        } else if octet >= 10 {
            1
        } else {
            2
        };
        for d in &digits[skip..] {
            out[len] = b'0' + d;
            len += 1;
        }
    }
    HeaderValue::from_bytes(&out[..len])
}

/// `Connection` first: `strip_hop_by_hop` reads bit 0 as "a Connection header is present".
static HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// RFC 9110 §7.6.1: drop `Connection` and every field it names, and the fixed hop-by-hop set.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names (cheap comparisons of standard headers) finds which of the
    // fixed set are present; most messages carry none, or only `Connection`.
    let mut present = 0u8;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    if present & 1 != 0 {
        // Every `Connection` line counts. The usual tokens are options, not field names.
        let named: Vec<HeaderName> = connection_tokens(headers)
            .filter(|t| !t.eq_ignore_ascii_case(b"close") && !t.eq_ignore_ascii_case(b"keep-alive"))
            .filter_map(|t| HeaderName::from_bytes(t).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

/// Whether the server side of this backend may keep connections for another request.
pub(crate) fn server_reuse(fe: &FrontendRt, backend: &BackendRt) -> bool {
    backend.cfg.http_reuse != HttpReuse::Never
        && backend.cfg.conn_mode == ConnMode::KeepAlive
        && fe.cfg.conn_mode != ConnMode::Close
}

/// The request head as it goes to the server: hop-by-hop fields out, the framing of the body
/// as it will be written, the upgrade kept, `Connection: close` when the server side does
/// not keep connections, and `X-Forwarded-For`.
pub(crate) fn request_to_server(
    headers: &mut HeaderMap,
    fe: &FrontendRt,
    backend: &BackendRt,
    client: IpAddr,
    upgrade: bool,
    chunked: bool,
) {
    let upgrade_to = upgrade.then(|| headers.get(header::UPGRADE).cloned()).flatten();
    strip_hop_by_hop(headers);
    // `Expect: 100-continue` is answered here, when the body is first read.
    headers.remove(header::EXPECT);
    if chunked {
        headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    }
    if let Some(proto) = upgrade_to {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, proto);
    } else if !server_reuse(fe, backend) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Some(xff) = backend.forwardfor.as_ref().or(fe.forwardfor.as_ref()) {
        if xff.applies_to(client) && !(xff.if_none && headers.contains_key(&xff.name)) {
            headers.append(xff.name.clone(), forwarded_for(client));
        }
    }
}

/// How a response body goes to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientFraming {
    /// As it came: no body, a length, or chunked passed through.
    Same,
    /// Chunked from the server, data alone to an HTTP/1.0 client (which then closes).
    Dechunk,
    /// Delimited by the server's close; chunked to an HTTP/1.1 client.
    Chunk,
    /// Delimited by the close, to an HTTP/1.0 client.
    UntilClose,
}

/// The response head as it goes to the client, given how its body is delimited and whether
/// the client connection stays open afterwards.
pub(crate) fn response_to_client(
    headers: &mut HeaderMap,
    framing: crate::h1::Framing,
    client_http10: bool,
    keep_alive: bool,
) -> ClientFraming {
    use crate::h1::Framing;
    strip_hop_by_hop(headers);
    let out = match (framing, client_http10) {
        (Framing::Chunked, false) => ClientFraming::Same,
        (Framing::Chunked, true) => ClientFraming::Dechunk,
        (Framing::UntilClose, false) => ClientFraming::Chunk,
        (Framing::UntilClose, true) => ClientFraming::UntilClose,
        _ => ClientFraming::Same,
    };
    if matches!(out, ClientFraming::Same | ClientFraming::Chunk)
        && matches!(framing, Framing::Chunked | Framing::UntilClose)
    {
        headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    }
    let keep_alive = keep_alive && !matches!(out, ClientFraming::Dechunk | ClientFraming::UntilClose);
    if !keep_alive {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    } else if client_http10 {
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_values() {
        for text in ["0.0.0.0", "127.0.0.1", "10.20.30.40", "255.255.255.255", "1.100.9.99", "192.168.0.10"] {
            let ip: std::net::Ipv4Addr = text.parse().expect("ip");
            assert_eq!(ipv4_header(ip).expect("value"), text);
        }
        assert_eq!(forwarded_for("2001:db8::1".parse().expect("ip")), "2001:db8::1");
        assert_eq!(forwarded_for("::ffff:10.1.2.3".parse().expect("ip")), "10.1.2.3");
    }

    #[test]
    fn forwarded_for_follows_each_new_address() {
        // The per-thread cache answers a repeated address, and never a different one.
        for text in ["192.0.2.1", "192.0.2.1", "198.51.100.7", "192.0.2.1", "2001:db8::2", "2001:db8::2"] {
            let ip: IpAddr = text.parse().expect("ip");
            assert_eq!(forwarded_for(ip), text);
        }
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("close, x-private"));
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::HOST, HeaderValue::from_static("example"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::HOST));
    }

    #[test]
    fn every_connection_line_names_headers_to_drop() {
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.append(header::CONNECTION, HeaderValue::from_static("x-a , X-B"));
        h.insert("x-a", HeaderValue::from_static("1"));
        h.insert("x-b", HeaderValue::from_static("2"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["content-type"]);
        let mut plain = HeaderMap::new();
        plain.insert(header::HOST, HeaderValue::from_static("example"));
        plain.insert("x-a", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut plain);
        assert_eq!(plain.len(), 2);
    }

    #[test]
    fn response_framing_for_each_client() {
        use crate::h1::Framing;
        let head = |framing, http10, keep| {
            let mut h = HeaderMap::new();
            h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
            let out = response_to_client(&mut h, framing, http10, keep);
            let te = h.get(header::TRANSFER_ENCODING).map(|v| v.to_str().unwrap_or("").to_string());
            let conn = h.get(header::CONNECTION).map(|v| v.to_str().unwrap_or("").to_string());
            (out, te, conn)
        };
        let chunked = Some("chunked".to_string());
        let close = Some("close".to_string());
        assert_eq!(head(Framing::Chunked, false, true), (ClientFraming::Same, chunked.clone(), None));
        assert_eq!(head(Framing::Chunked, true, true), (ClientFraming::Dechunk, None, close.clone()));
        assert_eq!(head(Framing::UntilClose, false, true), (ClientFraming::Chunk, chunked, None));
        assert_eq!(head(Framing::UntilClose, true, true), (ClientFraming::UntilClose, None, close.clone()));
        assert_eq!(head(Framing::Length(3), true, true), (ClientFraming::Same, None, Some("keep-alive".into())));
        assert_eq!(head(Framing::Length(3), false, false), (ClientFraming::Same, None, close));
    }
}
