//! What the proxy changes in the heads it passes on: hop-by-hop fields (RFC 9110 §7.6.1),
//! `X-Forwarded-For`, `Connection`, and the framing fields of the message it writes.
use std::net::IpAddr;

use fulcrum_model::{ConnMode, HttpReuse};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::h1::{connection_tokens, length_value, Framing};
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

/// Fields a `Connection` line may not take away: they frame the message or name its host, and
/// dropping them on the sender's word would let it smuggle a request (`Connection:
/// content-length`). The proxy rewrites them itself.
static NOT_HOP_BY_HOP: [HeaderName; 3] = [header::CONTENT_LENGTH, header::TRANSFER_ENCODING, header::HOST];

/// RFC 9110 §7.6.1: drop `Connection` and every field it names (but the framing and Host), and
/// the fixed hop-by-hop set.
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
        for name in named.into_iter().filter(|n| !NOT_HOP_BY_HOP.contains(n)) {
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

/// The framing fields of a message as it is written: one `Content-Length` of the length read
/// (a list of equal lengths becomes one), or the received `Transfer-Encoding` (codings before
/// `chunked` stay: the body still carries them).
fn set_framing(headers: &mut HeaderMap, framing: Framing, received_te: Option<HeaderValue>) {
    match framing {
        Framing::Length(n) => {
            headers.insert(header::CONTENT_LENGTH, length_value(n));
        }
        Framing::Chunked => {
            let te = received_te.unwrap_or_else(|| HeaderValue::from_static("chunked"));
            headers.insert(header::TRANSFER_ENCODING, te);
        }
        Framing::Empty | Framing::UntilClose => {}
    }
}

/// The codings of a `Transfer-Encoding` value, all lines joined.
fn transfer_codings(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut values = headers.get_all(header::TRANSFER_ENCODING).iter();
    let first = values.next()?.clone();
    let rest: Vec<&[u8]> = values.map(HeaderValue::as_bytes).collect();
    if rest.is_empty() {
        return Some(first);
    }
    let joined = std::iter::once(first.as_bytes()).chain(rest).collect::<Vec<_>>().join(&b", "[..]);
    HeaderValue::from_bytes(&joined).ok()
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
    framing: Framing,
) {
    let upgrade_to = upgrade.then(|| headers.get(header::UPGRADE).cloned()).flatten();
    let te = transfer_codings(headers);
    // `TE: trailers` survives the hop (the server may then send trailers), as HAProxy keeps
    // it; other TE values, and `trailers` with parameters, go.
    let trailers = headers
        .get_all(header::TE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"));
    strip_hop_by_hop(headers);
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    // `Expect: 100-continue` is answered here, when the body is first read.
    headers.remove(header::EXPECT);
    set_framing(headers, framing, te);
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
    let te = transfer_codings(headers);
    strip_hop_by_hop(headers);
    let out = match (framing, client_http10) {
        (Framing::Chunked, false) => ClientFraming::Same,
        (Framing::Chunked, true) => ClientFraming::Dechunk,
        (Framing::UntilClose, false) => ClientFraming::Chunk,
        (Framing::UntilClose, true) => ClientFraming::UntilClose,
        _ => ClientFraming::Same,
    };
    match out {
        ClientFraming::Same => set_framing(headers, framing, te),
        // Codings before chunked in a response (`gzip, chunked`) stay: the data still carries
        // them. (A response whose final coding is not chunked is refused with 502, as HAProxy.)
        ClientFraming::Dechunk => {
            if let Some(rest) = te.as_ref().and_then(without_chunked) {
                headers.insert(header::TRANSFER_ENCODING, rest);
            }
        }
        ClientFraming::Chunk => {
            let with_chunked = te.and_then(|te| HeaderValue::from_bytes(&[te.as_bytes(), b", chunked"].concat()).ok());
            headers.insert(header::TRANSFER_ENCODING, with_chunked.unwrap_or(HeaderValue::from_static("chunked")));
        }
        ClientFraming::UntilClose => {
            if let Some(te) = te {
                headers.insert(header::TRANSFER_ENCODING, te);
            }
        }
    }
    let keep_alive = keep_alive && !matches!(out, ClientFraming::Dechunk | ClientFraming::UntilClose);
    if !keep_alive {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    } else if client_http10 {
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    }
    out
}

/// A `Transfer-Encoding` value without its final `chunked`, if codings remain.
fn without_chunked(te: &HeaderValue) -> Option<HeaderValue> {
    let codings: Vec<&[u8]> = te
        .as_bytes()
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case(b"chunked"))
        .collect();
    (!codings.is_empty()).then(|| HeaderValue::from_bytes(&codings.join(&b", "[..])).ok()).flatten()
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
        // The fields a server's head carries for each framing, as the parser leaves them.
        let head = |framing, te: Option<&'static str>, http10, keep| {
            let mut h = HeaderMap::new();
            if let Some(te) = te {
                h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static(te));
            }
            if let Framing::Length(n) = framing {
                h.append(header::CONTENT_LENGTH, length_value(n));
                h.append(header::CONTENT_LENGTH, length_value(n));
            }
            let out = response_to_client(&mut h, framing, http10, keep);
            let get = |name| h.get(name).map(|v: &HeaderValue| v.to_str().unwrap_or("").to_string());
            let lengths = h.get_all(header::CONTENT_LENGTH).iter().count();
            (out, get(header::TRANSFER_ENCODING), get(header::CONNECTION), lengths)
        };
        let s = |v: &str| Some(v.to_string());
        assert_eq!(head(Framing::Chunked, Some("chunked"), false, true), (ClientFraming::Same, s("chunked"), None, 0));
        assert_eq!(
            head(Framing::Chunked, Some("gzip, chunked"), false, true),
            (ClientFraming::Same, s("gzip, chunked"), None, 0)
        );
        assert_eq!(head(Framing::Chunked, Some("chunked"), true, true), (ClientFraming::Dechunk, None, s("close"), 0));
        assert_eq!(
            head(Framing::Chunked, Some("gzip, chunked"), true, true),
            (ClientFraming::Dechunk, s("gzip"), s("close"), 0)
        );
        assert_eq!(head(Framing::UntilClose, None, false, true), (ClientFraming::Chunk, s("chunked"), None, 0));
        assert_eq!(
            head(Framing::UntilClose, Some("gzip"), false, true),
            (ClientFraming::Chunk, s("gzip, chunked"), None, 0)
        );
        assert_eq!(head(Framing::UntilClose, None, true, true), (ClientFraming::UntilClose, None, s("close"), 0));
        // A repeated length goes out once.
        assert_eq!(head(Framing::Length(3), None, true, true), (ClientFraming::Same, None, s("keep-alive"), 1));
        assert_eq!(head(Framing::Length(3), None, false, false), (ClientFraming::Same, None, s("close"), 1));
    }

    #[test]
    fn connection_cannot_take_the_framing_or_the_host_away() {
        // Found in review: `Connection: content-length` dropped the length the proxy framed
        // the body with, and the server read the body as a second request.
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("content-length, host, transfer-encoding, x-a"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("30"));
        h.insert(header::HOST, HeaderValue::from_static("a"));
        h.insert("x-a", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.get(header::CONTENT_LENGTH).map(|v| v.as_bytes()), Some(&b"30"[..]));
        assert_eq!(h.get(header::HOST).map(|v| v.as_bytes()), Some(&b"a"[..]));
        assert!(!h.contains_key("x-a"));
    }
}
