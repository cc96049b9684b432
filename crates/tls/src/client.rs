//! TLS to servers (`server ... ssl`): the rustls client configuration of a server, and the
//! name a connection presents. As HAProxy: the certificate is verified (chain to `ca-file`)
//! unless `verify none`; its name is checked against `verifyhost`, else the SNI, else not at
//! all; no SNI is sent unless `sni` says which.
use std::sync::Arc;

use fulcrum_model::{ServerTls, SniSource, TlsBind};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::TlsError;

/// The system's CA bundle, for `ca-file @system-ca` (Debian's ca-certificates).
const SYSTEM_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The rustls client configuration of a server.
pub fn client_config(tls: &ServerTls) -> Result<Arc<ClientConfig>, TlsError> {
    let mut warnings = Vec::new();
    let mut provider = crate::provider();
    // The bind-side selection applies alike: versions, OpenSSL cipher strings.
    let as_bind = TlsBind {
        ciphers: tls.ciphers.clone(),
        ciphersuites: tls.ciphersuites.clone(),
        min_version: tls.min_version,
        max_version: tls.max_version,
        ..TlsBind::default()
    };
    provider.cipher_suites = crate::ciphers::select(&as_bind, &provider.cipher_suites, &mut warnings)?;
    let versions = crate::versions(&as_bind)?;
    let provider = Arc::new(provider);
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::Setting(format!("TLS versions: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = if tls.verify {
        let Some(ca_file) = &tls.ca_file else {
            return Err(TlsError::Setting(
                "'verify required' needs 'ca-file FILE' (or 'ca-file @system-ca'); on a network where the server is trusted, set 'verify none'".into(),
            ));
        };
        let path =
            if ca_file.as_os_str() == "@system-ca" { std::path::PathBuf::from(SYSTEM_CA) } else { ca_file.clone() };
        let mut roots = rustls::RootCertStore::empty();
        for cert in crate::read_pem_certs(&path)? {
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err(TlsError::NoCertificate { path });
        }
        let mut builder = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone());
        if let Some(crl_file) = &tls.crl_file {
            let bytes = std::fs::read(crl_file).map_err(|source| TlsError::Read { path: crl_file.clone(), source })?;
            let crls =
                CertificateRevocationListDer::pem_slice_iter(&bytes).collect::<Result<Vec<_>, _>>().map_err(|e| {
                    TlsError::Invalid { path: crl_file.clone(), reason: format!("not a PEM CRL file: {e}") }
                })?;
            builder = builder.with_crls(crls).only_check_end_entity_revocation();
        }
        let inner = builder.build().map_err(|e| TlsError::Invalid { path: path.clone(), reason: e.to_string() })?;
        // The name is checked only where one is known (verifyhost or sni), as HAProxy does.
        let names = tls.verifyhost.is_some() || tls.sni.is_some();
        Arc::new(Verify { inner, names, verifyhost: tls.verifyhost.clone() })
    } else {
        Arc::new(NoVerify(provider.clone()))
    };
    let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
    let mut config = match &tls.crt {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let loaded = crate::certs::load(path, &provider)?;
            let chain = loaded.key.cert.clone();
            let bytes = std::fs::read(path).map_err(|source| TlsError::Read { path: path.clone(), source })?;
            let key = PrivateKeyDer::from_pem_slice(&bytes)
                .or_else(|_| {
                    let mut key_path = path.as_os_str().to_owned();
                    key_path.push(".key");
                    PrivateKeyDer::from_pem_file(key_path)
                })
                .map_err(|e| TlsError::Invalid { path: path.clone(), reason: format!("no usable private key: {e}") })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsError::Invalid { path: path.clone(), reason: e.to_string() })?
        }
    };
    config.alpn_protocols = tls.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    if tls.no_tickets {
        config.resumption = config.resumption.tls12_resumption(rustls::client::Tls12Resumption::SessionIdOnly);
    }
    if tls.no_reuse {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// The name a connection to `addr` presents: the SNI (`host`: the request's Host header, for
/// `sni req.hdr(host)`), else the address (rustls then sends no SNI).
pub fn server_name(tls: &ServerTls, addr: std::net::IpAddr, host: Option<&str>) -> ServerName<'static> {
    let name = match &tls.sni {
        Some(SniSource::Fixed(name)) => Some(name.as_str()),
        Some(SniSource::RequestHost) => host.map(strip_port),
        None => None,
    };
    name.and_then(|n| ServerName::try_from(n.to_string()).ok()).unwrap_or(ServerName::IpAddress(addr.into()))
}

/// `host:port` → `host` (`[v6]:port` → `v6`).
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// webpki's verification, with the name checked only when one is configured.
#[derive(Debug)]
struct Verify {
    inner: Arc<WebPkiServerVerifier>,
    names: bool,
    verifyhost: Option<String>,
}

impl ServerCertVerifier for Verify {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let host;
        let name = match &self.verifyhost {
            Some(h) => match ServerName::try_from(h.as_str()) {
                Ok(n) => {
                    host = n;
                    &host
                }
                Err(_) => server_name,
            },
            None => server_name,
        };
        match self.inner.verify_server_cert(end_entity, intermediates, name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. },
            )) if !self.names => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `verify none`: any certificate (the handshake's signatures are still checked).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_presented() {
        let ip: std::net::IpAddr = "192.0.2.1".parse().expect("ip");
        let mut tls = ServerTls { enabled: true, ..ServerTls::default() };
        assert!(matches!(server_name(&tls, ip, Some("a.example")), ServerName::IpAddress(_)));
        tls.sni = Some(SniSource::RequestHost);
        assert_eq!(server_name(&tls, ip, Some("a.example:8443")).to_str(), "a.example");
        assert!(matches!(server_name(&tls, ip, None), ServerName::IpAddress(_)));
        tls.sni = Some(SniSource::Fixed("api.example".into()));
        assert_eq!(server_name(&tls, ip, Some("x")).to_str(), "api.example");
        assert_eq!(strip_port("[::1]:443"), "::1");
    }

    #[test]
    fn verify_without_a_ca_file_is_an_error() {
        let tls = ServerTls { enabled: true, verify: true, ..ServerTls::default() };
        assert!(client_config(&tls).is_err_and(|e| e.to_string().contains("verify none")));
        assert!(client_config(&ServerTls { enabled: true, ..ServerTls::default() }).is_ok());
    }
}
