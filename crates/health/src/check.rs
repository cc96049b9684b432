//! Active checks: a TCP connect, or an HTTP request judged by `http-check expect`.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fulcrum_model::{Expect, ExpectRule, HttpCheck};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::check_tls::CheckTls;

/// How much of a check response is read, as HAProxy's default `tune.chksize`.
const MAX_CHECK_RESPONSE: usize = 16 * 1024;

/// A check compiled from the Model: regexes built once.
#[derive(Debug, Clone)]
pub enum CheckSpec {
    Tcp,
    Http(CompiledHttpCheck),
    /// keepalived `HTTP_GET`.
    HttpGet(crate::keepalived::HttpGet),
    /// keepalived `MISC_CHECK`: `timeout` is `misc_timeout`.
    Misc(crate::keepalived::Misc),
    /// keepalived `DNS_CHECK`.
    Dns(crate::keepalived::Dns),
    /// `option tcp-check` or a protocol check (mysql, pgsql, redis, smtp, ldap, ssl-hello).
    TcpCheck(crate::tcpcheck::CompiledTcpCheck),
    /// A TCP or HTTP check over TLS (`check-ssl`, or a server with `ssl`): the handshake is
    /// the layer-6 check, then the HTTP exchange if any.
    Tls(Box<CheckSpec>, CheckTls),
}

#[derive(Debug, Clone)]
pub struct CompiledHttpCheck {
    request: Vec<u8>,
    expect: Option<(bool, CompiledRule)>,
}

#[derive(Debug, Clone)]
enum CompiledRule {
    Status(Vec<(u16, u16)>),
    StatusRegex(regex::Regex),
    String(String),
    BodyRegex(regex::Regex),
}

impl CompiledHttpCheck {
    /// Build the request bytes; `host` goes in a Host header for HTTP/1.1 when none is given.
    pub fn new(check: &HttpCheck, host: &str) -> Result<Self, regex::Error> {
        let mut request = format!("{} {} {}\r\n", check.method, check.uri, check.version);
        let has_host = check.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host"));
        for (name, value) in &check.headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if check.version.eq_ignore_ascii_case("HTTP/1.1") {
            if !has_host {
                request.push_str(&format!("Host: {host}\r\n"));
            }
            request.push_str("Connection: close\r\n");
        }
        request.push_str("User-Agent: fulcrum-check\r\n\r\n");
        let expect = match &check.expect {
            None => None,
            Some(Expect { negate, rule }) => Some((*negate, compile_rule(rule)?)),
        };
        Ok(CompiledHttpCheck { request: request.into_bytes(), expect })
    }
}

fn compile_rule(rule: &ExpectRule) -> Result<CompiledRule, regex::Error> {
    Ok(match rule {
        ExpectRule::Status(ranges) => CompiledRule::Status(ranges.clone()),
        ExpectRule::StatusRegex(re) => CompiledRule::StatusRegex(regex::Regex::new(re)?),
        ExpectRule::String(s) => CompiledRule::String(s.clone()),
        ExpectRule::BodyRegex(re) => CompiledRule::BodyRegex(regex::Regex::new(re)?),
    })
}

/// The result of one check, with HAProxy-like wording for the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    pub ok: bool,
    pub reason: String,
    pub duration: Duration,
    /// A weight the check sets (keepalived `misc_dynamic`).
    pub weight: Option<u32>,
}

/// Run one check against `addr`, bounded by `timeout` as a whole.
pub async fn run_check(addr: SocketAddr, spec: &CheckSpec, timeout: Duration) -> CheckOutcome {
    let started = Instant::now();
    let kept = |v: crate::keepalived::Verdict| (v.ok, v.reason, v.weight);
    let run = async {
        match spec {
            CheckSpec::HttpGet(check) => kept(crate::keepalived::http_get(check, addr).await),
            CheckSpec::Misc(check) => kept(crate::keepalived::misc(check, addr, timeout).await),
            CheckSpec::Dns(check) => kept(crate::keepalived::dns(check, addr).await),
            CheckSpec::TcpCheck(check) => {
                let out = crate::tcpcheck::run(check, addr).await;
                (out.ok, out.reason, None)
            }
            CheckSpec::Tcp | CheckSpec::Http(_) => {
                let (ok, reason) = check_once(addr, spec).await;
                (ok, reason, None)
            }
            CheckSpec::Tls(inner, tls) => {
                let (ok, reason) = check_tls(addr, inner, tls).await;
                (ok, reason, None)
            }
        }
    };
    let (ok, reason, weight) = match tokio::time::timeout(timeout, run).await {
        Ok(result) => result,
        Err(_) => match spec {
            CheckSpec::Tcp => (false, "Layer4 timeout".to_string(), None),
            CheckSpec::Dns(_) => (false, format!("DNS_CHECK ([{}]:udp:{}) read timeout", addr.ip(), addr.port()), None),
            CheckSpec::Misc(m) => (false, format!("Misc check by [{}] timed out", m.command), None),
            _ => (false, "Layer7 timeout".to_string(), None),
        },
    };
    CheckOutcome { ok, reason, duration: started.elapsed(), weight }
}

async fn check_once(addr: SocketAddr, spec: &CheckSpec) -> (bool, String) {
    let stream = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => return (false, format!("Layer4 connection problem: {e}")),
    };
    let http = match spec {
        CheckSpec::Http(http) => http,
        _ => return (true, "Layer4 check passed".to_string()),
    };
    let _ = stream.set_nodelay(true);
    http_exchange(stream, http).await
}

/// A check over TLS: connect, handshake (HAProxy's layer 6), then the HTTP check if any.
async fn check_tls(addr: SocketAddr, inner: &CheckSpec, tls: &CheckTls) -> (bool, String) {
    let stream = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => return (false, format!("Layer4 connection problem: {e}")),
    };
    let _ = stream.set_nodelay(true);
    let stream = match tls.connect(stream, None).await {
        Ok(s) => s,
        Err(e) => return (false, format!("Layer6 invalid response: SSL handshake failure ({e})")),
    };
    match inner {
        CheckSpec::Http(http) => http_exchange(stream, http).await,
        _ => (true, "Layer6 check passed".to_string()),
    }
}

/// Sends an HTTP check's request on `stream` and judges the answer.
async fn http_exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    http: &CompiledHttpCheck,
) -> (bool, String) {
    if let Err(e) = stream.write_all(&http.request).await {
        return (false, format!("Layer7 write error: {e}"));
    }
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() >= MAX_CHECK_RESPONSE || response_complete(&buf) {
                    break;
                }
            }
            Err(e) if buf.is_empty() => return (false, format!("Layer7 read error: {e}")),
            Err(_) => break,
        }
    }
    judge(&buf, http.expect.as_ref())
}

/// Parsed status line and where the body starts.
fn parse_head(buf: &[u8]) -> Option<(u16, usize, Option<usize>)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        Ok(httparse::Status::Complete(body_start)) => {
            let code = response.code?;
            let content_length = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok())
                .and_then(|v| v.trim().parse().ok());
            Some((code, body_start, content_length))
        }
        _ => None,
    }
}

impl CompiledHttpCheck {
    /// Bytes sent before the request (a server behind `send-proxy` expects its PROXY protocol
    /// header first).
    pub fn with_preamble(mut self, preamble: &[u8]) -> Self {
        self.request.splice(0..0, preamble.iter().copied());
        self
    }

    /// Judges a server's answer to the check, as read so far: whether it is whole yet, and
    /// whether it passes (with HAProxy's wording of why). Any bytes give an answer, never a
    /// panic (a fuzz target holds it to that).
    pub fn judge(&self, response: &[u8]) -> (bool, bool, String) {
        let (ok, why) = judge(response, self.expect.as_ref());
        (response_complete(response), ok, why)
    }
}

fn response_complete(buf: &[u8]) -> bool {
    match parse_head(buf) {
        Some((_, start, Some(len))) => buf.len() >= start + len,
        _ => false,
    }
}

/// Judge a response as HAProxy does: without `expect`, 2xx and 3xx pass.
fn judge(buf: &[u8], expect: Option<&(bool, CompiledRule)>) -> (bool, String) {
    let Some((code, body_start, _)) = parse_head(buf) else {
        return (false, "Layer7 invalid response".to_string());
    };
    let body = buf.get(body_start..).unwrap_or_default();
    let Some((negate, rule)) = expect else {
        return if (200..400).contains(&code) {
            (true, format!("Layer7 check passed, code: {code}"))
        } else {
            (false, format!("Layer7 wrong status, code: {code}"))
        };
    };
    let matched = match rule {
        CompiledRule::Status(ranges) => ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&code)),
        CompiledRule::StatusRegex(re) => re.is_match(&code.to_string()),
        CompiledRule::String(s) => contains(body, s.as_bytes()),
        CompiledRule::BodyRegex(re) => re.is_match(&String::from_utf8_lossy(body)),
    };
    if matched != *negate {
        (true, format!("Layer7 check passed, code: {code}"))
    } else {
        let what = match rule {
            CompiledRule::Status(_) | CompiledRule::StatusRegex(_) => "wrong status",
            _ => "content mismatch",
        };
        (false, format!("Layer7 {what}, code: {code}"))
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(negate: bool, r: ExpectRule) -> Option<(bool, CompiledRule)> {
        Some((negate, compile_rule(&r).expect("valid rule")))
    }

    #[test]
    fn default_expect_is_2xx_3xx() {
        assert!(judge(b"HTTP/1.0 200 OK\r\n\r\n", None).0);
        assert!(judge(b"HTTP/1.0 302 Found\r\n\r\n", None).0);
        assert!(!judge(b"HTTP/1.0 503 Unavailable\r\n\r\n", None).0);
        assert!(!judge(b"garbage", None).0);
        assert!(!judge(b"", None).0);
    }

    #[test]
    fn expect_rules() {
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nhealthy";
        assert!(judge(resp, rule(false, ExpectRule::Status(vec![(200, 200)])).as_ref()).0);
        assert!(!judge(resp, rule(true, ExpectRule::Status(vec![(200, 200)])).as_ref()).0);
        assert!(judge(resp, rule(false, ExpectRule::StatusRegex("^2".into())).as_ref()).0);
        assert!(judge(resp, rule(false, ExpectRule::String("healthy".into())).as_ref()).0);
        assert!(!judge(resp, rule(false, ExpectRule::String("sick".into())).as_ref()).0);
        assert!(judge(resp, rule(true, ExpectRule::String("sick".into())).as_ref()).0);
        assert!(judge(resp, rule(false, ExpectRule::BodyRegex("^heal".into())).as_ref()).0);
        let fail = judge(b"HTTP/1.1 500 x\r\n\r\n", rule(false, ExpectRule::Status(vec![(200, 399)])).as_ref());
        assert_eq!(fail, (false, "Layer7 wrong status, code: 500".to_string()));
    }

    #[test]
    fn request_carries_host_for_http11() {
        let check = HttpCheck {
            method: "GET".into(),
            uri: "/client/".into(),
            version: "HTTP/1.1".into(),
            ..HttpCheck::default()
        };
        let c = CompiledHttpCheck::new(&check, "10.0.0.1").expect("compiles");
        let text = String::from_utf8(c.request).expect("ascii");
        assert!(text.starts_with("GET /client/ HTTP/1.1\r\n"));
        assert!(text.contains("Host: 10.0.0.1\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn completeness_by_content_length() {
        assert!(!response_complete(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"));
        assert!(response_complete(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab"));
    }
}
