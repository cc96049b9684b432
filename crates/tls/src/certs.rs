//! Certificates as HAProxy finds them: a PEM file with the certificate, its chain and its key
//! (the key may be in `FILE.key` instead), `FILE.ocsp` beside it stapled when present; a
//! directory loads every file in it but those; a crt-list names files with SNI filters.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use fulcrum_model::{CertSource, TlsBind};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use x509_cert::der::Decode as _;

use crate::TlsError;

/// One certificate with its key, and the names it is served for.
#[derive(Debug)]
pub struct Loaded {
    pub key: Arc<CertifiedKey>,
    /// Lower-case DNS names (`*.example.com` for a wildcard): a crt-list's filters, else the
    /// certificate's subjectAltName DNS entries, else its CN.
    pub names: Vec<String>,
    /// Names a crt-list's `!name` filters exclude.
    pub excluded: Vec<String>,
    pub path: PathBuf,
}

/// Extensions of the files beside a certificate that are not certificates.
const EXTRA: [&str; 5] = ["key", "ocsp", "issuer", "sctl", "ckch"];

/// Every certificate of a bind, in order.
pub(crate) fn load_all(bind: &TlsBind, provider: &CryptoProvider) -> Result<Vec<Loaded>, TlsError> {
    let mut out = Vec::new();
    for source in &bind.certs {
        match source {
            CertSource::Path(path) if path.is_dir() => {
                let entries =
                    std::fs::read_dir(path).map_err(|source| TlsError::Read { path: path.clone(), source })?;
                let mut files: Vec<PathBuf> = entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.is_file())
                    .filter(|p| !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')))
                    .filter(|p| !p.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTRA.contains(&e)))
                    .collect();
                files.sort();
                for file in files {
                    out.push(load(&file, provider)?);
                }
            }
            CertSource::Path(path) => out.push(load(path, provider)?),
            CertSource::List(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| TlsError::Read { path: path.clone(), source })?;
                let entries = crate::crtlist::parse(&text).map_err(|(line, reason)| TlsError::CrtList {
                    path: path.clone(),
                    line,
                    reason,
                })?;
                let base = bind.crt_base.clone().or_else(|| path.parent().map(Path::to_path_buf)).unwrap_or_default();
                for entry in entries {
                    let file = base.join(&entry.file);
                    let mut loaded = load(&file, provider).map_err(|e| TlsError::CrtList {
                        path: path.clone(),
                        line: entry.line,
                        reason: e.to_string(),
                    })?;
                    let (excluded, names): (Vec<String>, Vec<String>) =
                        entry.filters.iter().map(|f| f.to_ascii_lowercase()).partition(|f| f.starts_with('!'));
                    if !names.is_empty() {
                        loaded.names = names;
                    }
                    loaded.excluded = excluded.into_iter().map(|f| f.trim_start_matches('!').to_string()).collect();
                    out.push(loaded);
                }
            }
        }
    }
    Ok(out)
}

/// `FILE` with `.EXT` appended.
fn beside(path: &Path, ext: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

/// One PEM file: its certificate chain, its key (or `FILE.key`), `FILE.ocsp` if present.
pub(crate) fn load(path: &Path, provider: &CryptoProvider) -> Result<Loaded, TlsError> {
    let invalid = |reason: String| TlsError::Invalid { path: path.to_path_buf(), reason };
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source })?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("not a PEM file: {e}")))?;
    let Some(leaf) = chain.first() else { return Err(TlsError::NoCertificate { path: path.to_path_buf() }) };
    let key = match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => key,
        Err(rustls::pki_types::pem::Error::NoItemsFound) => {
            let key_path = beside(path, "key");
            match std::fs::read(&key_path) {
                Ok(key_bytes) => PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| TlsError::Invalid {
                    path: key_path.clone(),
                    reason: format!("no usable private key in it: {e}"),
                })?,
                Err(_) => return Err(TlsError::NoKey { path: path.to_path_buf(), key: key_path }),
            }
        }
        Err(e) => return Err(invalid(format!("the private key cannot be read: {e}"))),
    };
    let leaf_info = x509_cert::Certificate::from_der(leaf)
        .map_err(|e| invalid(format!("the certificate is not valid X.509: {e}")))?;
    let validity = leaf_info.tbs_certificate().validity();
    if validity.not_after.to_system_time() < SystemTime::now() {
        return Err(TlsError::Expired {
            path: path.to_path_buf(),
            when: validity.not_after.to_date_time().to_string(),
        });
    }
    let names = names_of(&leaf_info);
    let signer = provider.key_provider.load_private_key(key).map_err(|e| {
        invalid(format!("the private key is not one rustls can use (RSA, ECDSA P-256/P-384, Ed25519): {e}"))
    })?;
    let mut certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(_)) => return Err(TlsError::KeyMismatch { path: path.to_path_buf() }),
        // A certificate webpki does not parse (an X.509 v1 one): the key cannot be compared
        // here; clients judge the certificate.
        Err(_) => {}
    }
    let ocsp_path = beside(path, "ocsp");
    if let Ok(ocsp) = std::fs::read(&ocsp_path) {
        if ocsp.is_empty() {
            return Err(TlsError::Invalid { path: ocsp_path, reason: "empty OCSP response".into() });
        }
        certified.ocsp = Some(ocsp);
    }
    Ok(Loaded { key: Arc::new(certified), names, excluded: Vec::new(), path: path.to_path_buf() })
}

/// The DNS names of a certificate: subjectAltName, else the subject's CN; lower-case.
fn names_of(cert: &x509_cert::Certificate) -> Vec<String> {
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::SubjectAltName;
    let tbs = cert.tbs_certificate();
    let mut names: Vec<String> = match tbs.get_extension::<SubjectAltName>() {
        Ok(Some((_, san))) => san
            .0
            .iter()
            .filter_map(|n| match n {
                GeneralName::DnsName(d) => Some(d.to_string().to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        if let Ok(Some(cn)) = tbs.subject().common_name() {
            names.push(cn.value().to_ascii_lowercase());
        }
    }
    names
}

/// A certificate's subject as OpenSSL's one-line form shows it (`/C=FR/O=Example/CN=client`),
/// HAProxy's `ssl_c_s_dn`.
pub(crate) fn subject_oneline(der: &CertificateDer<'_>) -> Option<String> {
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    Some(cert.tbs_certificate().subject().iter().map(|atv| format!("/{atv}")).collect())
}
