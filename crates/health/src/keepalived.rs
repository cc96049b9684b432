//! keepalived's checkers: `HTTP_GET` (status codes and genhash MD5 digests of the body),
//! `MISC_CHECK` (a program's exit status, `misc_dynamic` weights) and `DNS_CHECK`. `TCP_CHECK`
//! is the plain connect of [`crate::CheckSpec::Tcp`].
use std::net::SocketAddr;
use std::time::Duration;

use fulcrum_model::UrlCheck;
use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The most of a body read for a digest.
const MAX_BODY: usize = 4 << 20;

/// `HTTP_GET` / `SSL_GET`: every url is fetched (a new connection each) and must answer as
/// it says.
#[derive(Debug, Clone)]
pub struct HttpGet {
    pub urls: Vec<UrlCheck>,
    /// The checker's (or its server's) `virtualhost`; a url's own wins.
    pub virtualhost: Option<String>,
    /// `SSL_GET`: over TLS, the certificate not verified (as keepalived); `sni`
    /// (`enable_sni`) sends the virtualhost as the server name.
    pub tls: bool,
    pub sni: bool,
}

/// The rustls provider on *ring*, the project's choice (it builds in seconds; rustls 0.23.48
/// marks it deprecated only for its lack of post-quantum key exchange).
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The TLS client of `SSL_GET`: rustls on ring, any certificate accepted (keepalived does not
/// verify the chain either), handshake signatures still checked. None if rustls refuses the
/// provider's defaults (it does not; no panic either way).
fn tls_config() -> Option<std::sync::Arc<rustls::ClientConfig>> {
    static CONFIG: std::sync::OnceLock<Option<std::sync::Arc<rustls::ClientConfig>>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = std::sync::Arc::new(ring_provider());
            let verifier = std::sync::Arc::new(AnyCertificate(provider.clone()));
            let builder =
                rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions().ok()?;
            Some(std::sync::Arc::new(
                builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth(),
            ))
        })
        .clone()
}

/// Accepts any server certificate; verifies the handshake signatures with the provider's
/// algorithms.
#[derive(Debug)]
struct AnyCertificate(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Sends `request` and reads the answer to its end (or [`MAX_BODY`]).
async fn exchange<S>(mut stream: S, request: &[u8]) -> Result<Vec<u8>, (&'static str, std::io::Error)>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream.write_all(request).await.map_err(|e| ("Cannot send get request to", e))?;
    let mut response = Vec::new();
    let mut limited = (&mut stream).take(MAX_BODY as u64);
    match limited.read_to_end(&mut response).await {
        Ok(_) => Ok(response),
        // A TLS server that closes without close_notify, after answering, is still an answer.
        Err(_) if !response.is_empty() => Ok(response),
        Err(e) => Err(("Read error with server", e)),
    }
}

/// How one check of a server went: success, the message, and for `misc_dynamic` a new weight.
pub(crate) struct Verdict {
    pub ok: bool,
    pub reason: String,
    pub weight: Option<u32>,
}

impl Verdict {
    fn new(ok: bool, reason: String) -> Self {
        Verdict { ok, reason, weight: None }
    }
}

/// keepalived's way of naming a server in its logs: `[10.0.0.1]:tcp:80`.
fn service(target: SocketAddr, proto: &str) -> String {
    format!("[{}]:{proto}:{}", target.ip(), target.port())
}

/// The request keepalived sends: HTTP/1.0, its User-Agent, a Host of the virtualhost, else
/// the address with its port.
pub(crate) fn http_get_request(path: &str, host: Option<&str>, target: SocketAddr) -> String {
    let host = match host {
        Some(h) => h.to_string(),
        None => target.to_string(),
    };
    format!("GET {path} HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: {host}\r\n\r\n")
}

pub(crate) async fn http_get(check: &HttpGet, target: SocketAddr) -> Verdict {
    for url in &check.urls {
        let host = url.virtualhost.as_deref().or(check.virtualhost.as_deref());
        let request = http_get_request(&url.path, host, target);
        let stream = match TcpStream::connect(target).await {
            Ok(s) => s,
            Err(e) => return Verdict::new(false, format!("Error connecting server {}: {e}", service(target, "tcp"))),
        };
        let answer = if check.tls {
            let name = match host.filter(|_| check.sni).map(|h| rustls::pki_types::ServerName::try_from(h.to_string()))
            {
                Some(Ok(name)) => name,
                _ => rustls::pki_types::ServerName::IpAddress(target.ip().into()),
            };
            let Some(config) = tls_config() else {
                return Verdict::new(false, "SSL_GET: no TLS client configuration".into());
            };
            match tokio_rustls::TlsConnector::from(config).connect(name, stream).await {
                Ok(tls) => exchange(tls, request.as_bytes()).await,
                Err(e) => {
                    let what =
                        format!("SSL handshake/communication error connecting to server {}", service(target, "tcp"));
                    return Verdict::new(false, format!("{what}: {e}"));
                }
            }
        } else {
            exchange(stream, request.as_bytes()).await
        };
        let response = match answer {
            Ok(r) => r,
            Err((what, e)) => return Verdict::new(false, format!("{what} {}: {e}", service(target, "tcp"))),
        };
        if let Err(why) = judge_url(url, &response) {
            return Verdict::new(false, format!("{why} {} url({})", service(target, "tcp"), url.path));
        }
    }
    Verdict::new(true, format!("Remote Web server {} succeed on service", service(target, "tcp")))
}

/// Judges one url's response: the status among the accepted ones (200–299 by default), then
/// the MD5 of the body (cut at Content-Length; not de-chunked, as keepalived) against `digest`.
pub fn judge_url(url: &UrlCheck, response: &[u8]) -> Result<(), &'static str> {
    if response.is_empty() {
        return Err("Read, no data received from");
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut head = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(start)) = head.parse(response) else {
        return Err("HTTP status code error to");
    };
    let code = head.code.unwrap_or(0);
    let accepted = if url.status.is_empty() {
        url.digest.is_some() || (200..300).contains(&code)
    } else {
        url.status.iter().any(|(lo, hi)| (*lo..=*hi).contains(&code))
    };
    // With only a digest, keepalived still wants a 2xx status.
    if !accepted || (url.status.is_empty() && !(200..300).contains(&code)) {
        return Err("HTTP status code error to");
    }
    if let Some(digest) = &url.digest {
        let length = head
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .and_then(|v| v.trim().parse::<usize>().ok());
        let body = response.get(start..).unwrap_or_default();
        let body = match length {
            Some(n) => body.get(..n.min(body.len())).unwrap_or(body),
            None => body,
        };
        if !genhash(body).eq_ignore_ascii_case(digest) {
            return Err("MD5 digest error to");
        }
    }
    Ok(())
}

/// keepalived's genhash: the MD5 of a body, as lower-case hex.
pub fn genhash(body: &[u8]) -> String {
    Md5::digest(body).iter().map(|b| format!("{b:02x}")).collect()
}

/// `MISC_CHECK`: the program and what its exit status means.
#[derive(Debug, Clone)]
pub struct Misc {
    /// The command line, run by `/bin/sh -c`.
    pub command: String,
    pub dynamic: bool,
    /// Run as this user (and its group), looked up in /etc/passwd.
    pub user: Option<String>,
}

pub(crate) async fn misc(check: &Misc, target: SocketAddr, timeout: Duration) -> Verdict {
    let mut command = tokio::process::Command::new("/bin/sh");
    command.arg("-c").arg(&check.command).kill_on_drop(true).stdin(std::process::Stdio::null());
    if let Some(user) = &check.user {
        match lookup_user(user) {
            Some((uid, gid)) => {
                command.uid(uid).gid(gid);
            }
            None => return Verdict::new(false, format!("Misc check: unknown user '{user}'")),
        }
    }
    let what = format!("Misc check for [{} VS] by [{}]", service(target, "tcp"), check.command);
    let child = match command.spawn() {
        Ok(c) => c,
        Err(e) => return Verdict::new(false, format!("{what} failed to start: {e}")),
    };
    let status = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) => output.status,
        Ok(Err(e)) => return Verdict::new(false, format!("{what} failed: {e}")),
        Err(_) => return Verdict::new(false, format!("{what} timed out")),
    };
    match status.code() {
        Some(0) => Verdict::new(true, format!("{what} succeeded")),
        Some(code @ 2..=255) if check.dynamic => Verdict {
            ok: true,
            reason: format!("{what} succeeded (weight {})", code - 2),
            weight: u32::try_from(code - 2).ok(),
        },
        Some(code) => Verdict::new(false, format!("{what} failed (exited with status {code})")),
        None => Verdict::new(false, format!("{what} failed (due to a signal)")),
    }
}

/// A user's uid and primary gid from /etc/passwd.
fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.as_slice() {
            [user, _, uid, gid, ..] if *user == name => Some((uid.parse().ok()?, gid.parse().ok()?)),
            _ => None,
        }
    })
}

/// `DNS_CHECK`: a query of `kind` for `name`.
#[derive(Debug, Clone)]
pub struct Dns {
    pub kind: u16,
    pub name: String,
}

/// The DNS type number of keepalived's `type` names.
pub fn dns_type(name: &str) -> Option<u16> {
    Some(match name.to_ascii_uppercase().as_str() {
        "A" => 1,
        "NS" => 2,
        "CNAME" => 5,
        "SOA" => 6,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        "RRSIG" => 46,
        "DNSKEY" => 48,
        _ => return None,
    })
}

/// A query: header (id, RD), one question of `kind`, class IN. None for a name that cannot be
/// encoded (a label over 63 bytes, a name over 255).
pub(crate) fn dns_query(id: u16, name: &str, kind: u16) -> Option<Vec<u8>> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        q.push(u8::try_from(label.len()).ok().filter(|n| *n <= 63)?);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    if q.len() - 12 > 255 {
        return None;
    }
    q.extend_from_slice(&kind.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    Some(q)
}

/// Whether a reply answers query `id` without error: same id, QR set, RCODE 0 (keepalived does
/// not look at the answers).
pub fn dns_reply_ok(id: u16, reply: &[u8]) -> Result<(), String> {
    match reply {
        [a, b, flags, rcode, ..] if u16::from_be_bytes([*a, *b]) == id && flags & 0x80 != 0 => match rcode & 0x0f {
            0 => Ok(()),
            code => Err(format!("read error occurred. (rcode = {code})")),
        },
        _ => Err("invalid reply".into()),
    }
}

pub(crate) async fn dns(check: &Dns, target: SocketAddr) -> Verdict {
    let what = format!("DNS_CHECK ({})", service(target, "udp"));
    let id = u16::try_from(std::process::id() & 0xffff).unwrap_or(0) ^ 0x5a5a;
    let Some(query) = dns_query(id, &check.name, check.kind) else {
        return Verdict::new(false, format!("{what} invalid name '{}'", check.name));
    };
    let local: SocketAddr =
        if target.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
    let socket = match UdpSocket::bind(local).await {
        Ok(s) => s,
        Err(e) => return Verdict::new(false, format!("{what} socket: {e}")),
    };
    if let Err(e) = socket.connect(target).await {
        return Verdict::new(false, format!("{what} connection failed: {e}"));
    }
    if let Err(e) = socket.send(&query).await {
        return Verdict::new(false, format!("{what} send failed: {e}"));
    }
    let mut reply = [0u8; 4096];
    loop {
        match socket.recv(&mut reply).await {
            Ok(n) => {
                let got = reply.get(..n).unwrap_or_default();
                // A reply to another query (a late one) is not ours: keep waiting.
                if got.get(..2) != Some(&id.to_be_bytes()[..]) {
                    continue;
                }
                return match dns_reply_ok(id, got) {
                    Ok(()) => Verdict::new(true, format!("{what} succeeded")),
                    Err(why) => Verdict::new(false, format!("{what} {why}")),
                };
            }
            Err(e) => return Verdict::new(false, format!("{what} read error: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(status: Vec<(u16, u16)>, digest: Option<&str>) -> UrlCheck {
        UrlCheck { path: "/".into(), digest: digest.map(str::to_string), status, virtualhost: None }
    }

    #[test]
    fn genhash_is_md5_hex() {
        assert_eq!(genhash(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(genhash(b"hello\n"), "b1946ac92492d2347c6235b4d2611184");
    }

    #[test]
    fn status_and_digest_rules() {
        let ok = b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\nTRAILING";
        assert_eq!(judge_url(&url(vec![], None), ok), Ok(()));
        assert_eq!(judge_url(&url(vec![], Some("B1946AC92492D2347C6235B4D2611184")), ok), Ok(()));
        assert_eq!(judge_url(&url(vec![], Some("00000000000000000000000000000000")), ok), Err("MD5 digest error to"));
        assert_eq!(judge_url(&url(vec![(301, 302)], None), ok), Err("HTTP status code error to"));
        let moved = b"HTTP/1.0 302 Found\r\n\r\n";
        assert_eq!(judge_url(&url(vec![(301, 302)], None), moved), Ok(()));
        assert_eq!(judge_url(&url(vec![], None), moved), Err("HTTP status code error to"));
        assert_eq!(judge_url(&url(vec![], None), b""), Err("Read, no data received from"));
        assert_eq!(judge_url(&url(vec![], None), b"garbage\r\n\r\n"), Err("HTTP status code error to"));
    }

    #[test]
    fn request_is_keepalived_s() {
        let target: SocketAddr = "10.0.0.1:8080".parse().expect("literal");
        assert_eq!(
            http_get_request("/health", None, target),
            "GET /health HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 10.0.0.1:8080\r\n\r\n"
        );
        assert!(http_get_request("/", Some("www.example.com"), target).contains("Host: www.example.com\r\n"));
    }

    #[test]
    fn dns_query_and_reply() {
        let q = dns_query(0x1234, "example.com", 1).expect("encodes");
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..], b"\x07example\x03com\x00\x00\x01\x00\x01");
        assert_eq!(dns_query(1, "", 6).map(|q| q[12..].to_vec()), Some(b"\x00\x00\x06\x00\x01".to_vec()));
        assert!(dns_query(1, &"a".repeat(64), 1).is_none());
        assert_eq!(dns_reply_ok(0x1234, &[0x12, 0x34, 0x81, 0x80]), Ok(()));
        assert!(dns_reply_ok(0x1234, &[0x12, 0x34, 0x81, 0x83]).is_err());
        assert!(dns_reply_ok(0x1234, &[0x12, 0x34, 0x01, 0x00]).is_err());
        assert!(dns_reply_ok(0x1234, &[0x12]).is_err());
    }
}
