//! HTTP/1.1 message heads and body framing, sans-IO: bytes in, a parsed head (or what is wrong
//! with it) out; a head in, bytes out. The connection loops in `l7` own the sockets and call
//! these. Parsing is httparse's; what this module adds is what a proxy must decide on top of it
//! (RFC 9112): the limits (HAProxy's `tune.bufsize` less `tune.maxrewrite`, `tune.http.maxhdr`),
//! Host, and how the body is delimited.
//!
//! Header values are never copied: the head's bytes are frozen into one [`Bytes`] and every
//! value, the target and the reason phrase are slices of it.
mod chunked;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri, Version};

pub use chunked::{size_line, ChunkError, ChunkStep, Chunked};

/// How large a head may be and how many fields it may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes, from the first of the start line to the empty line included.
    pub max_head: usize,
    /// Header field lines.
    pub max_headers: usize,
}

impl Limits {
    /// HAProxy's defaults: `tune.bufsize` 16384 less `tune.maxrewrite` 1024, `tune.http.maxhdr` 101.
    pub const HAPROXY: Limits = Limits { max_head: 16384 - 1024, max_headers: 101 };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::HAPROXY
    }
}

/// What is wrong with a message head. A request with one is answered 400, a response 502.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("message head larger than {0} bytes")]
    TooLarge(usize),
    #[error("more than {0} header fields")]
    TooManyHeaders(usize),
    #[error("malformed message head ({0})")]
    Malformed(&'static str),
    #[error("HTTP/1.1 request without Host")]
    MissingHost,
    #[error("more than one Host header field")]
    DuplicateHost,
    #[error("invalid Host value")]
    InvalidHost,
    #[error("invalid request target")]
    InvalidTarget,
    #[error("invalid or conflicting Content-Length")]
    InvalidContentLength,
    #[error("Transfer-Encoding whose final coding is not chunked")]
    InvalidTransferEncoding,
    /// A transfer coding before `chunked` (`gzip, chunked`): well formed, but not one the
    /// proxy decodes; HAProxy answers 422.
    #[error("a transfer coding other than chunked")]
    UnsupportedTransferCoding,
    #[error("invalid status code")]
    InvalidStatus,
}

/// How a message body is delimited (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes (responses only).
    UntilClose,
}

impl Framing {
    pub fn is_empty(&self) -> bool {
        matches!(self, Framing::Empty | Framing::Length(0))
    }
}

/// A parsed request head.
#[derive(Debug)]
pub struct Request {
    /// Method, target, version and fields, as the routing and the rules read them.
    pub head: http::request::Parts,
    pub framing: Framing,
    /// The client closes after this exchange (`Connection: close`, HTTP/1.0 without
    /// keep-alive), or the framing forces it (Content-Length beside Transfer-Encoding).
    pub close: bool,
    /// `Expect: 100-continue` (HTTP/1.1 only).
    pub expect_continue: bool,
    /// `Connection: upgrade` with an `Upgrade` field.
    pub upgrade: bool,
    /// Bytes of the head, for the access log and limits.
    pub head_len: usize,
}

/// A parsed response head.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    /// The server's reason phrase, passed on as it was.
    pub reason: Bytes,
    pub version: Version,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// The server closes after this response (`Connection: close`, HTTP/1.0 without
    /// keep-alive, or a body delimited by the close).
    pub close: bool,
    pub head_len: usize,
}

type Slot<'b> = std::mem::MaybeUninit<httparse::Header<'b>>;

/// Header slots for httparse, left uninitialised (httparse writes those it fills): on the
/// stack for the usual limit, on the heap beyond it.
fn with_slots<'b, R>(max: usize, f: impl FnOnce(&mut [Slot<'b>]) -> R) -> R {
    const ON_STACK: usize = 128;
    if max <= ON_STACK {
        let mut slots = [Slot::<'b>::uninit(); ON_STACK];
        f(&mut slots[..max])
    } else {
        let mut slots = vec![Slot::<'b>::uninit(); max];
        f(&mut slots)
    }
}

fn malformed(e: httparse::Error, limits: &Limits) -> HeadError {
    match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders(limits.max_headers),
        httparse::Error::HeaderName => HeadError::Malformed("invalid header name"),
        httparse::Error::HeaderValue => HeadError::Malformed("invalid header value"),
        httparse::Error::NewLine => HeadError::Malformed("invalid line ending"),
        httparse::Error::Status => HeadError::InvalidStatus,
        httparse::Error::Token => HeadError::Malformed("invalid token"),
        httparse::Error::Version => HeadError::Malformed("unsupported HTTP version"),
    }
}

/// Where each part of a parsed head lies in its bytes.
struct Spans {
    len: usize,
    version: u8,
    start: (std::ops::Range<usize>, std::ops::Range<usize>),
    code: u16,
    fields: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
}

/// Where `part`, a slice httparse took from `base`, lies in it. An empty part may be a static
/// `""` of httparse's (no reason phrase), which lies nowhere in `base`.
fn offset(base: &[u8], part: &[u8]) -> std::ops::Range<usize> {
    if part.is_empty() {
        return 0..0;
    }
    let start = (part.as_ptr() as usize).saturating_sub(base.as_ptr() as usize);
    let start = start.min(base.len());
    start..(start + part.len()).min(base.len())
}

fn field_spans(base: &[u8], headers: &[httparse::Header<'_>]) -> Vec<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    headers.iter().map(|h| (offset(base, h.name.as_bytes()), offset(base, h.value))).collect()
}

/// Parses a request head at the start of `buf`. `Ok(None)`: not complete yet (and within the
/// limits). On success the head's bytes are taken off the front of `buf`; what follows (body,
/// next request) stays.
pub fn parse_request(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Request>, HeadError> {
    let spans = with_slots(limits.max_headers, |slots| {
        let mut req = httparse::Request::new(&mut []);
        match req.parse_with_uninit_headers(buf, slots) {
            Ok(httparse::Status::Partial) => Ok(None),
            Ok(httparse::Status::Complete(len)) => {
                let method = req.method.unwrap_or_default().as_bytes();
                let path = req.path.unwrap_or_default().as_bytes();
                Ok(Some(Spans {
                    len,
                    version: req.version.unwrap_or(1),
                    start: (offset(buf, method), offset(buf, path)),
                    code: 0,
                    fields: field_spans(buf, req.headers),
                }))
            }
            Err(e) => Err(malformed(e, limits)),
        }
    });
    let Some(spans) = within_limits(spans, buf.len(), limits)? else { return Ok(None) };
    let head = buf.split_to(spans.len).freeze();
    build_request(head, spans).map(Some)
}

/// The head's spans when it is complete and within the limits; `Ok(None)` while it may still be.
fn within_limits(
    parsed: Result<Option<Spans>, HeadError>,
    received: usize,
    limits: &Limits,
) -> Result<Option<Spans>, HeadError> {
    match parsed? {
        Some(spans) if spans.len <= limits.max_head => Ok(Some(spans)),
        None if received < limits.max_head => Ok(None),
        _ => Err(HeadError::TooLarge(limits.max_head)),
    }
}

fn version(minor: u8) -> Version {
    if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    }
}

fn build_request(head: Bytes, spans: Spans) -> Result<Request, HeadError> {
    let method =
        Method::from_bytes(&head[spans.start.0.clone()]).map_err(|_| HeadError::Malformed("invalid method"))?;
    let uri = Uri::from_maybe_shared(head.slice(spans.start.1.clone())).map_err(|_| HeadError::InvalidTarget)?;
    target_form(&method, &uri)?;
    let version = version(spans.version);
    let mut headers = header_map(&head, &spans.fields)?;
    let mut close = closes(&headers, version);
    let framing = request_framing(&mut headers, version, &mut close)?;
    host(&mut headers, &uri, version)?;
    let expect_continue = version == Version::HTTP_11
        && headers.get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let upgrade = headers.contains_key(header::UPGRADE) && has_token(&headers, b"upgrade");
    let (mut head, ()) = http::Request::new(()).into_parts();
    head.method = method;
    head.uri = uri;
    head.version = version;
    head.headers = headers;
    Ok(Request { head, framing, close, expect_continue, upgrade, head_len: spans.len })
}

/// Parses a response head at the start of `buf` (see [`parse_request`]). `method` is the
/// request's: the answer to a HEAD has no body, whatever it declares.
pub fn parse_response(buf: &mut BytesMut, limits: &Limits, method: &Method) -> Result<Option<Response>, HeadError> {
    let spans = with_slots(limits.max_headers, |slots| {
        let mut resp = httparse::Response::new(&mut []);
        match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut resp, buf, slots) {
            Ok(httparse::Status::Partial) => Ok(None),
            Ok(httparse::Status::Complete(len)) => {
                let reason = resp.reason.unwrap_or_default().as_bytes();
                Ok(Some(Spans {
                    len,
                    version: resp.version.unwrap_or(1),
                    start: (0..0, offset(buf, reason)),
                    code: resp.code.unwrap_or(0),
                    fields: field_spans(buf, resp.headers),
                }))
            }
            Err(e) => Err(malformed(e, limits)),
        }
    });
    let Some(spans) = within_limits(spans, buf.len(), limits)? else { return Ok(None) };
    let head = buf.split_to(spans.len).freeze();
    let status = StatusCode::from_u16(spans.code).map_err(|_| HeadError::InvalidStatus)?;
    let version = version(spans.version);
    let mut headers = header_map(&head, &spans.fields)?;
    let mut close = closes(&headers, version);
    let framing = response_framing(&mut headers, status, method, &mut close)?;
    let reason = head.slice(spans.start.1);
    Ok(Some(Response { status, reason, version, headers, framing, close, head_len: spans.len }))
}

fn header_map(
    head: &Bytes,
    fields: &[(std::ops::Range<usize>, std::ops::Range<usize>)],
) -> Result<HeaderMap, HeadError> {
    let mut headers = HeaderMap::with_capacity(fields.len());
    for (name, value) in fields {
        let name =
            HeaderName::from_bytes(&head[name.clone()]).map_err(|_| HeadError::Malformed("invalid header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(value.clone()))
            .map_err(|_| HeadError::Malformed("invalid header value"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// The trimmed, non-empty tokens of every `Connection` line, as bytes.
pub fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

fn has_token(headers: &HeaderMap, word: &[u8]) -> bool {
    connection_tokens(headers).any(|t| t.eq_ignore_ascii_case(word))
}

/// Whether the sender closes after this message: HTTP/1.0 unless `keep-alive`, HTTP/1.1 on `close`.
fn closes(headers: &HeaderMap, version: Version) -> bool {
    match version {
        Version::HTTP_10 | Version::HTTP_09 => !has_token(headers, b"keep-alive"),
        _ => has_token(headers, b"close"),
    }
}

/// Content-Length: every value (lines and comma-separated lists) the same decimal number.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, HeadError> {
    let mut found: Option<u64> = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for part in value.as_bytes().split(|b| *b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                return Err(HeadError::InvalidContentLength);
            }
            let n = part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            if found.is_some_and(|f| f != n) {
                return Err(HeadError::InvalidContentLength);
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// A request's Transfer-Encoding as HAProxy 2.6 takes it: `chunked` alone is read; other codings
/// before a final `chunked` are refused with 422; anything else (no final `chunked`, or
/// `chunked` twice) with 400.
fn request_transfer_encoding(headers: &HeaderMap) -> Result<bool, HeadError> {
    let Some(valid) = transfer_encoding(headers) else { return Ok(false) };
    if !valid {
        return Err(HeadError::InvalidTransferEncoding);
    }
    let only_chunked = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty())
        .all(|c| c.eq_ignore_ascii_case(b"chunked"));
    if only_chunked {
        Ok(true)
    } else {
        Err(HeadError::UnsupportedTransferCoding)
    }
}

/// Whether Transfer-Encoding is present, and whether its final coding is `chunked` (which
/// may appear only there).
fn transfer_encoding(headers: &HeaderMap) -> Option<bool> {
    if !headers.contains_key(header::TRANSFER_ENCODING) {
        return None;
    }
    let codings: Vec<&[u8]> = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty())
        .collect();
    let chunked = |c: &[u8]| c.eq_ignore_ascii_case(b"chunked");
    Some(codings.last().is_some_and(|c| chunked(c)) && codings.iter().filter(|c| chunked(c)).count() == 1)
}

/// RFC 9112 §6.3 for requests: chunked, else Content-Length, else no body. With both, the
/// length goes (it must not reach the server) and the connection closes after the exchange.
/// An HTTP/1.0 request with Transfer-Encoding is read as chunked and closes the connection
/// after (§6.1: its framing is not to be trusted for another message), as HAProxy does.
fn request_framing(headers: &mut HeaderMap, version: Version, close: &mut bool) -> Result<Framing, HeadError> {
    if request_transfer_encoding(headers)? {
        if headers.remove(header::CONTENT_LENGTH).is_some() || version != Version::HTTP_11 {
            *close = true;
        }
        return Ok(Framing::Chunked);
    }
    Ok(match content_length(headers)? {
        None | Some(0) => Framing::Empty,
        Some(n) => Framing::Length(n),
    })
}

/// RFC 9112 §6.3 for responses.
fn response_framing(
    headers: &mut HeaderMap,
    status: StatusCode,
    method: &Method,
    close: &mut bool,
) -> Result<Framing, HeadError> {
    // A 2xx to CONNECT turns the connection into a tunnel (RFC 9112 §6.3).
    if method == Method::HEAD
        || (method == Method::CONNECT && status.is_success())
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    match transfer_encoding(headers) {
        Some(true) => {
            headers.remove(header::CONTENT_LENGTH);
            Ok(Framing::Chunked)
        }
        // A final coding that is not chunked, or chunked twice: HAProxy answers 502 rather
        // than read the body until the close.
        Some(false) => Err(HeadError::InvalidTransferEncoding),
        None => match content_length(headers)? {
            Some(n) => Ok(if n == 0 { Framing::Empty } else { Framing::Length(n) }),
            None => {
                *close = true;
                Ok(Framing::UntilClose)
            }
        },
    }
}

/// RFC 9112 §3.2: the authority form (`host:port`) is CONNECT's alone, CONNECT takes nothing
/// else, and `*` is OPTIONS' alone.
fn target_form(method: &Method, uri: &Uri) -> Result<(), HeadError> {
    let authority_form = uri.scheme().is_none() && uri.authority().is_some();
    let asterisk = uri.path() == "*" && uri.authority().is_none();
    let fits = match *method {
        Method::CONNECT => authority_form,
        Method::OPTIONS => !authority_form,
        _ => !authority_form && !asterisk,
    };
    if fits {
        Ok(())
    } else {
        Err(HeadError::InvalidTarget)
    }
}

/// RFC 9112 §3.2: an HTTP/1.1 request has exactly one valid Host; with an absolute-form
/// target, its authority replaces Host (§3.2.2).
fn host(headers: &mut HeaderMap, uri: &Uri, version: Version) -> Result<(), HeadError> {
    let mut values = headers.get_all(header::HOST).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(HeadError::DuplicateHost);
    }
    match first {
        None if version == Version::HTTP_11 => return Err(HeadError::MissingHost),
        Some(v) if !valid_host(v.as_bytes()) => return Err(HeadError::InvalidHost),
        _ => {}
    }
    if let Some(authority) = uri.authority() {
        if !valid_host(authority.as_str().as_bytes()) {
            return Err(HeadError::InvalidTarget);
        }
        let value = HeaderValue::from_str(authority.as_str()).map_err(|_| HeadError::InvalidTarget)?;
        headers.insert(header::HOST, value);
    }
    Ok(())
}

/// `uri-host [ ":" port ]` (RFC 3986): a bracketed IP literal or a reg-name, non-empty, and a
/// port of digits.
pub fn valid_host(value: &[u8]) -> bool {
    let (host, port) = if value.first() == Some(&b'[') {
        match value.iter().position(|b| *b == b']') {
            Some(end) => {
                let literal = &value[1..end];
                let ok = !literal.is_empty() && literal.iter().all(|b| b.is_ascii_hexdigit() || b":.".contains(b));
                if !ok {
                    return false;
                }
                match &value[end + 1..] {
                    [] => (&value[..=end], None),
                    [b':', port @ ..] => (&value[..=end], Some(port)),
                    _ => return false,
                }
            }
            None => return false,
        }
    } else {
        match value.iter().rposition(|b| *b == b':') {
            Some(colon) => (&value[..colon], Some(&value[colon + 1..])),
            None => (value, None),
        }
    };
    let reg_name = |b: &u8| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(b);
    !host.is_empty()
        && (host.first() == Some(&b'[') || host.iter().all(reg_name))
        && port.is_none_or(|p| p.iter().all(u8::is_ascii_digit))
}

/// The HTTP/2 connection preface a client in prior knowledge starts with (RFC 9113 §3.4).
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether the bytes read so far may be the HTTP/2 preface (all of them match its start).
pub fn may_be_h2_preface(buf: &[u8]) -> bool {
    let n = buf.len().min(H2_PREFACE.len());
    buf[..n] == H2_PREFACE[..n]
}

/// Writes a request head, always in HTTP/1.1 (so that an HTTP/1.0 client's requests can share
/// kept-alive server connections). HTTP/1.1 requires Host; an HTTP/1.0 request may come
/// without one, and then names `server` (the server's address: its default virtual host).
pub fn write_request_head(
    out: &mut Vec<u8>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    server: std::net::SocketAddr,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    match uri.path_and_query() {
        // Absolute-form stays absolute: a server must accept it (RFC 9112 §3.2.2).
        Some(pq) if uri.scheme().is_none() => out.extend_from_slice(pq.as_str().as_bytes()),
        _ if method == Method::CONNECT => {
            out.extend_from_slice(uri.authority().map(|a| a.as_str()).unwrap_or_default().as_bytes())
        }
        _ => out.extend_from_slice(uri.to_string().as_bytes()),
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !headers.contains_key(header::HOST) {
        out.extend_from_slice(format!("host: {server}\r\n").as_bytes());
    }
    write_fields(out, headers);
}

/// Writes a response head (HTTP/1.1, with `reason` or the standard phrase).
pub fn write_response_head(out: &mut Vec<u8>, status: StatusCode, reason: &[u8], headers: &HeaderMap) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    if reason.is_empty() {
        out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    } else {
        out.extend_from_slice(reason);
    }
    out.extend_from_slice(b"\r\n");
    write_fields(out, headers);
}

fn write_fields(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// `Content-Length: N` as a header value, without the formatting machinery.
pub fn length_value(n: u64) -> HeaderValue {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    HeaderValue::from_bytes(&digits[i..]).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests;
