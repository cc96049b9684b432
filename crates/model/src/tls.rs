//! TLS on a listener (`bind ... ssl crt ...`): what to load and how to negotiate, as written.
//! Certificates are files; reading and checking them is the `tls` crate's job.
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::Origin;

/// `bind ADDR ssl crt ...` with its TLS options (the `global ssl-default-bind-*` values are
/// already applied where the line sets nothing of its own).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsBind {
    /// The addresses of the bind line.
    pub addrs: Vec<SocketAddr>,
    /// Certificates in the order given: the first is the default (no SNI, or no match).
    pub certs: Vec<CertSource>,
    /// ALPN protocols offered, in order of preference (`alpn h2,http/1.1`).
    pub alpn: Vec<String>,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
    /// OpenSSL cipher list for TLS 1.2 (`ciphers`).
    pub ciphers: Option<String>,
    /// TLS 1.3 suites (`ciphersuites`).
    pub ciphersuites: Option<String>,
    /// Client certificates (`verify`).
    pub verify: ClientVerify,
    /// CA certificates that sign accepted client certificates (`ca-file`).
    pub ca_file: Option<PathBuf>,
    /// Revoked client certificates (`crl-file`).
    pub crl_file: Option<PathBuf>,
    /// `no-tls-tickets`: resumption by session ID only.
    pub no_tickets: bool,
    /// `strict-sni`: a ClientHello whose name matches no certificate is refused.
    pub strict_sni: bool,
    /// `crt-base`: where relative file names in crt-lists are found (else beside the list).
    pub crt_base: Option<PathBuf>,
    /// Where the bind line is, for messages.
    pub origin: Origin,
}

/// Where certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// `crt FILE`: a PEM with the certificate, its chain and its key (or the key in
    /// `FILE.key`), optionally `FILE.ocsp` beside it; `crt DIR`: every such file in the directory.
    Path(PathBuf),
    /// `crt-list FILE`: one certificate a line, with SNI filters.
    List(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// SSLv3, TLSv1.0 and TLSv1.1 name versions rustls does not speak; they are refused
    /// where they would be the only ones, and ignored as a lower bound.
    Ssl3,
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// HAProxy's spelling (`ssl-min-ver TLSv1.2`).
    pub fn name(self) -> &'static str {
        match self {
            TlsVersion::Ssl3 => "SSLv3",
            TlsVersion::Tls10 => "TLSv1.0",
            TlsVersion::Tls11 => "TLSv1.1",
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        }
    }

    pub fn parse(s: &str) -> Option<TlsVersion> {
        [TlsVersion::Ssl3, TlsVersion::Tls10, TlsVersion::Tls11, TlsVersion::Tls12, TlsVersion::Tls13]
            .into_iter()
            .find(|v| v.name().eq_ignore_ascii_case(s))
    }
}

/// `verify none|optional|required`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientVerify {
    #[default]
    None,
    Optional,
    Required,
}

/// TLS to a server (`server ... ssl verify ... ca-file ... sni ...`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct ServerTls {
    /// `ssl`: traffic to the server is TLS.
    pub enabled: bool,
    /// Health checks speak TLS: `check-ssl`, or `ssl` when the checks go to the traffic address.
    pub check: bool,
    /// Verify the server's certificate (`verify required`, the default unless `verify none` or
    /// the global `ssl-server-verify none`).
    pub verify: bool,
    /// CAs that sign the servers' certificates; `@system-ca`: the system's.
    pub ca_file: Option<PathBuf>,
    pub crl_file: Option<PathBuf>,
    /// A client certificate for servers that ask for one (`crt FILE`).
    pub crt: Option<PathBuf>,
    /// The server name sent (SNI) and checked in the certificate.
    pub sni: Option<SniSource>,
    /// `check-sni NAME`: the name the health checks send.
    pub check_sni: Option<String>,
    /// `verifyhost NAME`: the name the certificate must carry (else the SNI's; else none is
    /// checked, as HAProxy does).
    pub verifyhost: Option<String>,
    /// `alpn LIST`.
    pub alpn: Vec<String>,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
    pub ciphers: Option<String>,
    pub ciphersuites: Option<String>,
    /// `no-tls-tickets`: no session tickets (resumption by session ID only).
    pub no_tickets: bool,
    /// `no-ssl-reuse`: every connection makes a full handshake.
    pub no_reuse: bool,
}

/// Where a server connection's SNI comes from (`sni EXPR`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SniSource {
    /// `sni str(NAME)`.
    Fixed(String),
    /// `sni req.hdr(host)` (or `hdr(host)`): the request's Host, without its port.
    RequestHost,
}
