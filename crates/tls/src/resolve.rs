//! The certificate for a ClientHello, as HAProxy chooses it: an exact name first, then a
//! wildcard for the name's parent domain; among several for one name, the first whose key the
//! client can verify (an ECDSA and an RSA certificate for the same site); no server name, or
//! no match, the first certificate of the bind (unless `strict-sni`).
use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::certs::Loaded;

#[derive(Debug)]
pub(crate) struct SniResolver {
    keys: Vec<Arc<CertifiedKey>>,
    /// Names each certificate is never served for (a crt-list's `!name`), wildcards included.
    excluded: Vec<Vec<String>>,
    exact: HashMap<String, Vec<usize>>,
    /// By the domain under the `*.`.
    wildcard: HashMap<String, Vec<usize>>,
    strict: bool,
}

impl SniResolver {
    pub(crate) fn new(certs: Vec<Loaded>, strict: bool) -> SniResolver {
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut wildcard: HashMap<String, Vec<usize>> = HashMap::new();
        let mut keys = Vec::with_capacity(certs.len());
        let mut excluded = Vec::with_capacity(certs.len());
        for (i, cert) in certs.into_iter().enumerate() {
            for name in cert.names.iter().filter(|n| !cert.excluded.contains(n)) {
                let list = match name.strip_prefix("*.") {
                    Some(domain) => wildcard.entry(domain.to_string()).or_default(),
                    None => exact.entry(name.clone()).or_default(),
                };
                if !list.contains(&i) {
                    list.push(i);
                }
            }
            keys.push(cert.key);
            excluded.push(cert.excluded);
        }
        SniResolver { keys, excluded, exact, wildcard, strict }
    }

    fn pick(&self, candidates: &[usize], name: &str, hello: &ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let schemes = hello.signature_schemes();
        let allowed: Vec<usize> =
            candidates.iter().copied().filter(|&i| !self.excluded[i].iter().any(|x| x == name)).collect();
        let usable = allowed.iter().find(|&&i| self.keys[i].key.choose_scheme(schemes).is_some());
        usable.or(allowed.first()).map(|&i| Arc::clone(&self.keys[i]))
    }

    /// The certificates served for `name` (lower-case).
    fn for_name(&self, name: &str) -> Option<&[usize]> {
        if let Some(list) = self.exact.get(name) {
            return Some(list);
        }
        let (_, parent) = name.split_once('.')?;
        self.wildcard.get(parent).map(Vec::as_slice)
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = hello.server_name() {
            let lower;
            let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
                lower = name.to_ascii_lowercase();
                lower.as_str()
            } else {
                name
            };
            if let Some(found) = self.for_name(name).and_then(|c| self.pick(c, name, &hello)) {
                return Some(found);
            }
            if self.strict {
                return None;
            }
        } else if self.strict {
            return None;
        }
        self.keys.first().cloned()
    }
}
