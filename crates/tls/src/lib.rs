//! TLS for fulcrum's listeners, on rustls with the *ring* provider: certificates read from
//! PEM files, directories and crt-lists (`certs`, `crtlist`), the certificate chosen by SNI
//! (`resolve`), versions and OpenSSL cipher lists mapped to what rustls offers (`ciphers`),
//! client certificates checked against a CA file and CRLs, and session resumption whose
//! caches and ticket keys survive reloads (`sessions`).
//!
//! Everything here reads files and returns a typed error naming the file and what is wrong;
//! the config front-end calls [`check`] so that `fulcrum check` (and `haproxy -c`) reports it
//! at the bind line, and the proxy calls [`server_config`] each time it compiles a snapshot,
//! so that a reload (SIGHUP) picks up renewed certificates.
#![forbid(unsafe_code)]

mod certs;
mod ciphers;
mod client;
pub mod crtlist;
mod resolve;
mod sessions;

use std::path::PathBuf;
use std::sync::Arc;

use fulcrum_model::{ClientVerify, TlsBind, TlsVersion};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};

pub use certs::Loaded;
pub use client::{client_config, server_name};
pub use rustls;

/// Why a bind's TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: cannot read it: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{path}: no certificate in it (PEM 'BEGIN CERTIFICATE' blocks)")]
    NoCertificate { path: PathBuf },
    #[error("{path}: no private key in it, nor in {key}")]
    NoKey { path: PathBuf, key: PathBuf },
    #[error("{path}: the private key does not match the certificate")]
    KeyMismatch { path: PathBuf },
    #[error("{path}: the certificate expired on {when}")]
    Expired { path: PathBuf, when: String },
    #[error("{path}:{line}: {reason}")]
    CrtList { path: PathBuf, line: usize, reason: String },
    #[error("{0}")]
    Setting(String),
}

/// A bind's TLS, ready for connections, and what was left out on the way (cipher names
/// rustls does not implement, and the like), for the caller to warn about.
pub struct Built {
    pub config: Arc<ServerConfig>,
    pub warnings: Vec<String>,
}

/// The *ring* provider, with the suites and key exchange groups rustls offers by default
/// (rustls 0.23.48 marks it deprecated only for its lack of post-quantum key exchange; the
/// provider is chosen by measurement in docs/BENCHMARKS.md).
#[allow(deprecated)]
fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Reads and checks everything a bind's TLS needs, as [`server_config`] does, without keeping
/// it: the warnings, or the first error.
pub fn check(bind: &TlsBind) -> Result<Vec<String>, TlsError> {
    build(bind, 16, false).map(|b| b.warnings)
}

/// The rustls configuration of one bind line. `cache_size`: sessions kept for resumption by
/// session ID (`tune.ssl.cachesize`).
pub fn server_config(bind: &TlsBind, cache_size: usize) -> Result<Built, TlsError> {
    build(bind, cache_size, true)
}

fn build(bind: &TlsBind, cache_size: usize, keep: bool) -> Result<Built, TlsError> {
    let mut warnings = Vec::new();
    let mut provider = provider();
    provider.cipher_suites = ciphers::select(bind, &provider.cipher_suites, &mut warnings)?;
    let versions = versions(bind)?;
    let provider = Arc::new(provider);
    let certs = certs::load_all(bind, &provider)?;
    if certs.is_empty() {
        return Err(TlsError::Setting(
            "'ssl' needs at least one certificate: add 'crt FILE' or 'crt-list FILE'".into(),
        ));
    }
    let resolver = resolve::SniResolver::new(certs, bind.strict_sni);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::Setting(format!("TLS versions: {e}")))?;
    let builder = match bind.verify {
        ClientVerify::None => builder.with_no_client_auth(),
        verify => builder.with_client_cert_verifier(client_verifier(bind, verify, &provider)?),
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = bind.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    // OpenSSL as HAProxy sets it up: the server's order of ciphers wins.
    config.ignore_client_order = true;
    let kept = sessions::for_bind(bind, cache_size, keep);
    config.session_storage = kept.cache;
    // `no-tls-tickets`: no stateless (encrypted) tickets; TLS 1.3 still resumes, by stateful
    // tickets that name a session of the cache, as OpenSSL does under SSL_OP_NO_TICKET.
    if !bind.no_tickets {
        config.ticketer = kept.ticketer;
    }
    Ok(Built { config: Arc::new(config), warnings })
}

/// The versions rustls speaks (1.2 and 1.3) within `ssl-min-ver`/`ssl-max-ver`.
fn versions(bind: &TlsBind) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, TlsError> {
    let min = bind.min_version.unwrap_or(TlsVersion::Tls12);
    let max = bind.max_version.unwrap_or(TlsVersion::Tls13);
    let mut out = Vec::new();
    if min <= TlsVersion::Tls12 && max >= TlsVersion::Tls12 {
        out.push(&rustls::version::TLS12);
    }
    if max >= TlsVersion::Tls13 {
        out.push(&rustls::version::TLS13);
    }
    if out.is_empty() {
        return Err(TlsError::Setting(format!(
            "no TLS version left between {} and {}: fulcrum speaks TLSv1.2 and TLSv1.3 (SSLv3, TLSv1.0 and TLSv1.1 are obsolete and not implemented by rustls)",
            min.name(),
            max.name()
        )));
    }
    Ok(out)
}

fn client_verifier(
    bind: &TlsBind,
    verify: ClientVerify,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let Some(ca_file) = &bind.ca_file else {
        return Err(TlsError::Setting(
            "'verify optional|required' needs 'ca-file FILE': the CAs that sign accepted client certificates".into(),
        ));
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_pem_certs(ca_file)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::Invalid { path: ca_file.clone(), reason: format!("a CA certificate: {e}") })?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoCertificate { path: ca_file.clone() });
    }
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    if let Some(crl_file) = &bind.crl_file {
        let bytes = std::fs::read(crl_file).map_err(|source| TlsError::Read { path: crl_file.clone(), source })?;
        let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Invalid { path: crl_file.clone(), reason: format!("not a PEM CRL file: {e}") })?;
        if crls.is_empty() {
            let reason = "no CRL in it (PEM 'BEGIN X509 CRL' blocks)".to_string();
            return Err(TlsError::Invalid { path: crl_file.clone(), reason });
        }
        // As OpenSSL's CRL check that HAProxy turns on: the client's own certificate.
        builder = builder.with_crls(crls).only_check_end_entity_revocation();
    }
    if verify == ClientVerify::Optional {
        builder = builder.allow_unauthenticated();
    }
    builder.build().map_err(|e| TlsError::Invalid { path: ca_file.clone(), reason: e.to_string() })
}

/// Every certificate in a PEM file.
fn read_pem_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source })?;
    CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid { path: path.to_path_buf(), reason: format!("not a PEM file: {e}") })
}

/// What a TLS connection negotiated, for ACLs (`ssl_fc_*`, `ssl_c_*`) and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Negotiated {
    pub sni: Option<String>,
    pub alpn: Option<String>,
    /// `TLSv1.2`, `TLSv1.3`.
    pub protocol: &'static str,
    /// The suite in OpenSSL's spelling, as HAProxy's `ssl_fc_cipher` shows it.
    pub cipher: &'static str,
    /// The client presented a certificate (it was verified, or the handshake would have failed).
    pub client_cert: bool,
    /// The client certificate's subject, OpenSSL's one-line form (`/C=FR/O=Example/CN=client`).
    pub client_subject: Option<String>,
}

impl Negotiated {
    pub fn of(conn: &rustls::ServerConnection) -> Negotiated {
        let protocol = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "",
        };
        let cipher = conn.negotiated_cipher_suite().map(|s| ciphers::openssl_name(s.suite())).unwrap_or("");
        let leaf = conn.peer_certificates().and_then(|c| c.first());
        Negotiated {
            sni: conn.server_name().map(str::to_string),
            alpn: conn.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned()),
            protocol,
            cipher,
            client_cert: leaf.is_some(),
            client_subject: leaf.and_then(|c| certs::subject_oneline(c)),
        }
    }
}
