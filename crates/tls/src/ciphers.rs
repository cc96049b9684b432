//! OpenSSL cipher lists (`ciphers`, `ssl-default-bind-ciphers`) and TLS 1.3 suite lists
//! (`ciphersuites`) mapped onto the suites rustls has. As OpenSSL does, names it does not have
//! are left out (a warning says which) and a list that leaves nothing is an error.
use fulcrum_model::TlsBind;
use rustls::{CipherSuite, SupportedCipherSuite};

use crate::TlsError;

/// A TLS 1.2 suite's OpenSSL name and the words of OpenSSL's cipher-string language that
/// select it.
struct Tls12 {
    suite: CipherSuite,
    name: &'static str,
    tags: &'static [&'static str],
}

/// Aliases every suite rustls has belongs to. (`RSA` is OpenSSL's static-RSA key exchange,
/// which none of them uses: `!RSA` removes nothing, as in OpenSSL.)
const COMMON: [&str; 13] = [
    "ALL", "DEFAULT", "HIGH", "TLSv1.2", "AEAD", "ECDHE", "EECDH", "kEECDH", "kECDHE", "ECDH", "kECDH", "FIPS", "SHA2",
];

const TLS12: [Tls12; 6] = [
    Tls12 {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        name: "ECDHE-ECDSA-AES256-GCM-SHA384",
        tags: &["aECDSA", "ECDSA", "AESGCM", "AES", "AES256", "AESGCM256", "SHA384"],
    },
    Tls12 {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        name: "ECDHE-ECDSA-AES128-GCM-SHA256",
        tags: &["aECDSA", "ECDSA", "AESGCM", "AES", "AES128", "SHA256"],
    },
    Tls12 {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        name: "ECDHE-ECDSA-CHACHA20-POLY1305",
        tags: &["aECDSA", "ECDSA", "CHACHA20", "SHA256"],
    },
    Tls12 {
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        name: "ECDHE-RSA-AES256-GCM-SHA384",
        tags: &["aRSA", "AESGCM", "AES", "AES256", "SHA384"],
    },
    Tls12 {
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        name: "ECDHE-RSA-AES128-GCM-SHA256",
        tags: &["aRSA", "AESGCM", "AES", "AES128", "SHA256"],
    },
    Tls12 {
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        name: "ECDHE-RSA-CHACHA20-POLY1305",
        tags: &["aRSA", "CHACHA20", "SHA256"],
    },
];

const TLS13: [(CipherSuite, &str); 3] = [
    (CipherSuite::TLS13_AES_256_GCM_SHA384, "TLS_AES_256_GCM_SHA384"),
    (CipherSuite::TLS13_AES_128_GCM_SHA256, "TLS_AES_128_GCM_SHA256"),
    (CipherSuite::TLS13_CHACHA20_POLY1305_SHA256, "TLS_CHACHA20_POLY1305_SHA256"),
];

/// OpenSSL's name of a suite (HAProxy's `ssl_fc_cipher`).
pub(crate) fn openssl_name(suite: CipherSuite) -> &'static str {
    TLS12
        .iter()
        .find(|t| t.suite == suite)
        .map(|t| t.name)
        .or_else(|| TLS13.iter().find(|(s, _)| *s == suite).map(|(_, n)| *n))
        .unwrap_or("")
}

fn matches(t: &Tls12, term: &str) -> bool {
    term.split('+').all(|word| word == t.name || COMMON.contains(&word) || t.tags.contains(&word))
}

/// The suites a bind allows, in the order its lists give (rustls's own order where it sets
/// none).
pub(crate) fn select(
    bind: &TlsBind,
    available: &[SupportedCipherSuite],
    warnings: &mut Vec<String>,
) -> Result<Vec<SupportedCipherSuite>, TlsError> {
    let find = |suite: CipherSuite| available.iter().find(|s| s.suite() == suite).copied();
    let tls12: Vec<CipherSuite> = match &bind.ciphers {
        None => TLS12.iter().map(|t| t.suite).collect(),
        Some(list) => tls12_list(list, warnings)?,
    };
    let tls13: Vec<CipherSuite> = match &bind.ciphersuites {
        None => TLS13.iter().map(|(s, _)| *s).collect(),
        Some(list) => {
            let mut out = Vec::new();
            let mut unknown = Vec::new();
            for name in list.split([':', ',']).map(str::trim).filter(|n| !n.is_empty()) {
                match TLS13.iter().find(|(_, n)| *n == name) {
                    Some((s, _)) if !out.contains(s) => out.push(*s),
                    Some(_) => {}
                    None => unknown.push(name),
                }
            }
            if out.is_empty() {
                return Err(TlsError::Setting(format!(
                    "ciphersuites '{list}': none is a TLS 1.3 suite rustls has ({})",
                    TLS13.map(|(_, n)| n).join(":")
                )));
            }
            if !unknown.is_empty() {
                warnings.push(format!("ciphersuites: {} left out (not implemented by rustls)", unknown.join(", ")));
            }
            out
        }
    };
    Ok(tls13.into_iter().chain(tls12).filter_map(find).collect())
}

/// OpenSSL's cipher-string language, for what rustls has: names and aliases joined by `+`,
/// `!X` (removed for good), `-X` (removed), `+X` (moved to the end), `@STRENGTH` and the like
/// (ignored), separated by `:`, `,` or spaces.
fn tls12_list(list: &str, warnings: &mut Vec<String>) -> Result<Vec<CipherSuite>, TlsError> {
    let mut chosen: Vec<CipherSuite> = Vec::new();
    let mut banned: Vec<CipherSuite> = Vec::new();
    let mut unknown = Vec::new();
    for item in list.split([':', ',', ' ']).map(str::trim).filter(|n| !n.is_empty()) {
        if item.starts_with('@') {
            continue;
        }
        let (op, term) = match item.as_bytes()[0] {
            b'!' | b'-' | b'+' => (item.as_bytes()[0], &item[1..]),
            _ => (b' ', item),
        };
        let hits: Vec<CipherSuite> = TLS12.iter().filter(|t| matches(t, term)).map(|t| t.suite).collect();
        match op {
            b'!' => banned.extend(&hits),
            b'-' => chosen.retain(|s| !hits.contains(s)),
            b'+' => {
                let (moved, kept): (Vec<CipherSuite>, Vec<CipherSuite>) = chosen.iter().partition(|s| hits.contains(s));
                chosen = kept.into_iter().chain(moved).collect();
            }
            _ => {
                if hits.is_empty() && term.contains('-') {
                    unknown.push(term);
                }
                for s in hits {
                    if !chosen.contains(&s) {
                        chosen.push(s);
                    }
                }
            }
        }
    }
    chosen.retain(|s| !banned.contains(s));
    if chosen.is_empty() {
        return Err(TlsError::Setting(format!(
            "ciphers '{list}': none is a TLS 1.2 suite rustls has ({})",
            TLS12.map(|t| t.name).join(":")
        )));
    }
    if !unknown.is_empty() {
        warnings.push(format!("ciphers: {} left out (not implemented by rustls)", unknown.join(", ")));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &str) -> Result<Vec<&'static str>, String> {
        let mut w = Vec::new();
        tls12_list(list, &mut w).map(|v| v.into_iter().map(openssl_name).collect()).map_err(|e| e.to_string())
    }

    #[test]
    fn mozilla_intermediate_keeps_what_rustls_has_in_order() {
        let list = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384";
        let mut w = Vec::new();
        let got = tls12_list(list, &mut w).expect("valid");
        assert_eq!(got.len(), 6);
        assert_eq!(openssl_name(got[0]), "ECDHE-ECDSA-AES128-GCM-SHA256");
        assert_eq!(openssl_name(got[1]), "ECDHE-RSA-AES128-GCM-SHA256");
        assert!(w[0].contains("DHE-RSA-AES128-GCM-SHA256"), "{w:?}");
    }

    #[test]
    fn aliases_and_exclusions() {
        assert_eq!(
            names("ECDH+AESGCM:!aRSA").expect("valid"),
            ["ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256"]
        );
        assert_eq!(names("HIGH:!aNULL:!MD5").expect("valid").len(), 6);
        assert_eq!(names("CHACHA20:AESGCM:-aECDSA").expect("valid").len(), 3);
        assert_eq!(
            names("AES128:+aECDSA").expect("valid"),
            ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"]
        );
        assert!(names("DHE-RSA-AES128-SHA:RC4-MD5").is_err());
        assert!(names("HIGH:!ECDHE").is_err());
        // `!RSA` (static RSA key exchange) leaves the ECDHE-RSA suites alone, as in OpenSSL.
        assert_eq!(names("HIGH:!RSA:!aNULL").expect("valid").len(), 6);
    }

    #[test]
    fn tls13_lists() {
        let provider = crate::provider();
        let bind = TlsBind {
            ciphersuites: Some("TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_CCM_SHA256".into()),
            ..TlsBind::default()
        };
        let mut w = Vec::new();
        let got = select(&bind, &provider.cipher_suites, &mut w).expect("valid");
        assert_eq!(openssl_name(got[0].suite()), "TLS_CHACHA20_POLY1305_SHA256");
        assert_eq!(got.len(), 7);
        assert_eq!(w.len(), 1);
        let bind = TlsBind { ciphersuites: Some("TLS_AES_128_CCM_SHA256".into()), ..TlsBind::default() };
        assert!(select(&bind, &provider.cipher_suites, &mut w).is_err());
    }
}
