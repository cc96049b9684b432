//! TLS in haproxy.cfg: the `ssl` options of `bind` lines, and the `global` settings that
//! give them defaults (`ssl-default-bind-ciphers`, `-ciphersuites`, `-options`, `crt-base`,
//! `ca-base`, `tune.ssl.cachesize`). The certificates are read and checked at the bind line
//! (by the `tls` crate), so that `fulcrum check` names the line and the file.
use std::path::PathBuf;

use fulcrum_model::{CertSource, ClientVerify, TlsBind, TlsVersion};

use super::Parser;
use crate::diag::Problem;
use crate::values::parse_number;

/// What `global` says about TLS binds.
#[derive(Debug, Clone, Default)]
pub(super) struct TlsDefaults {
    crt_base: Option<PathBuf>,
    ca_base: Option<PathBuf>,
    ciphers: Option<String>,
    ciphersuites: Option<String>,
    /// `ssl-default-bind-options`: bind options applied before the line's own.
    options: Vec<String>,
    /// `ssl-server-verify none|required` (required when unset, as in HAProxy).
    server_verify: Option<bool>,
}

/// Bind options that take one argument and concern TLS.
const WITH_ARG: [&str; 13] = [
    "crt",
    "crt-list",
    "alpn",
    "npn",
    "ssl-min-ver",
    "ssl-max-ver",
    "ciphers",
    "ciphersuites",
    "verify",
    "ca-file",
    "crl-file",
    "curves",
    "ecdhe",
];

/// Bind options without an argument that concern TLS.
const FLAGS: [&str; 16] = [
    "ssl",
    "no-sslv3",
    "no-tlsv10",
    "no-tlsv11",
    "no-tlsv12",
    "no-tlsv13",
    "force-sslv3",
    "force-tlsv10",
    "force-tlsv11",
    "force-tlsv12",
    "force-tlsv13",
    "no-tls-tickets",
    "strict-sni",
    "prefer-client-ciphers",
    "allow-0rtt",
    "no-ca-names",
];

/// Whether `option` is a TLS option of `bind`, and how many words it takes after it.
pub(super) fn bind_option(option: &str) -> Option<usize> {
    if WITH_ARG.contains(&option) {
        Some(1)
    } else if FLAGS.contains(&option) {
        Some(0)
    } else {
        None
    }
}

impl Parser {
    /// Whether servers' certificates are verified unless a server says (`ssl-server-verify`).
    pub(super) fn tls_server_verify(&self) -> bool {
        self.tls.server_verify.unwrap_or(true)
    }

    /// A server's TLS file names resolved: `ca-file` and `crl-file` under `ca-base`, `crt` under
    /// `crt-base`, else as `default-path` says (`@system-ca` stays as it is).
    pub(super) fn server_tls_paths(&self, tls: &mut fulcrum_model::ServerTls) {
        let place = |path: &mut Option<PathBuf>, base: &Option<PathBuf>| {
            if let Some(p) = path.as_mut().filter(|p| p.is_relative() && p.as_os_str() != "@system-ca") {
                *p = match base {
                    Some(dir) => dir.join(&*p),
                    None => self.resolve_path(&p.to_string_lossy()),
                };
            }
        };
        place(&mut tls.ca_file, &self.tls.ca_base);
        place(&mut tls.crl_file, &self.tls.ca_base);
        place(&mut tls.crt, &self.tls.crt_base);
    }

    /// `global` keywords about TLS; None when `keyword` is not one of them.
    pub(super) fn global_tls(&mut self, line: usize, keyword: &str, args: &[String]) -> Option<Result<(), Problem>> {
        let value = || args.first().cloned().ok_or_else(|| Problem::invalid(format!("'{keyword}' needs a value")));
        let result = match keyword {
            "crt-base" => value().map(|v| self.tls.crt_base = Some(self.resolve_path(&v))),
            "ca-base" => value().map(|v| self.tls.ca_base = Some(self.resolve_path(&v))),
            "ssl-default-bind-ciphers" => value().map(|v| self.tls.ciphers = Some(v)),
            "ssl-default-bind-ciphersuites" => value().map(|v| self.tls.ciphersuites = Some(v)),
            "ssl-default-bind-options" => {
                let mut words = args.iter();
                let mut options = Vec::new();
                while let Some(word) = words.next() {
                    match bind_option(word) {
                        Some(0) => options.push(word.clone()),
                        Some(_) if matches!(word.as_str(), "ssl-min-ver" | "ssl-max-ver") => {
                            let Some(v) = words.next() else {
                                return Some(Err(Problem::invalid(format!("'{word}' needs a version"))));
                            };
                            options.extend([word.clone(), v.clone()]);
                        }
                        _ => {
                            let known = ["no-sslv3", "no-tlsv10", "no-tlsv11", "ssl-min-ver", "no-tls-tickets"];
                            return Some(Err(Problem::unknown("ssl-default-bind-options option", word, known)));
                        }
                    }
                }
                self.tls.options = options;
                Ok(())
            }
            "ssl-server-verify" => value().and_then(|v| {
                let verify = match v.as_str() {
                    "none" => false,
                    "required" => true,
                    other => return Err(Problem::unknown("ssl-server-verify", other, ["none", "required"])),
                };
                self.tls.server_verify = Some(verify);
                Ok(())
            }),
            "tune.ssl.cachesize" => value().and_then(|v| {
                parse_number::<usize>(&v, "tune.ssl.cachesize")
                    .map(|n| self.out.global.tls_cache_size = Some(n))
                    .map_err(Problem::from)
            }),
            "tune.h2.max-concurrent-streams"
            | "tune.h2.header-table-size"
            | "tune.h2.initial-window-size"
            | "tune.h2.max-frame-size" => value().and_then(|v| {
                let n = parse_number::<u32>(&v, keyword).map_err(Problem::from)?;
                let h2 = self.out.global.h2.get_or_insert_with(fulcrum_model::H2Settings::default);
                match keyword {
                    "tune.h2.max-concurrent-streams" => h2.max_concurrent_streams = n.max(1),
                    "tune.h2.header-table-size" => h2.header_table_size = n.min(65_536),
                    "tune.h2.initial-window-size" => h2.initial_window_size = n.min(i32::MAX as u32),
                    _ if !(16_384..=16_777_215).contains(&n) => {
                        return Err(Problem::invalid("tune.h2.max-frame-size must be from 16384 to 16777215"))
                    }
                    _ => h2.max_frame_size = n,
                }
                Ok(())
            }),
            "tune.ssl.default-dh-param" | "ssl-dh-param-file" => {
                let why =
                    "rustls has no finite-field Diffie-Hellman (DHE): key exchange is ECDHE (X25519, P-256, P-384)";
                self.sink.warn(line, format!("'{keyword}' is ignored: {why}"), None);
                Ok(())
            }
            _ => return None,
        };
        Some(result)
    }

    /// The TLS options of one bind line (`options` are the words after its addresses), with
    /// the global defaults; None when the line has no `ssl`. Certificates are loaded here, and
    /// what is wrong with them is reported at this line.
    pub(super) fn bind_tls(
        &mut self,
        line: usize,
        addrs: Vec<std::net::SocketAddr>,
        options: &[String],
    ) -> Option<TlsBind> {
        let words: Vec<String> = self.tls.options.iter().chain(options).cloned().collect();
        if !words.iter().any(|w| w == "ssl") {
            if words.iter().any(|w| w == "crt" || w == "crt-list") {
                let hint = "add 'ssl' to the bind line: without it HAProxy serves plain TCP/HTTP there";
                self.sink.error(line, "'crt' on a bind line without 'ssl'", Some(hint.into()));
            }
            return None;
        }
        let mut bind = TlsBind {
            addrs,
            ciphers: self.tls.ciphers.clone(),
            ciphersuites: self.tls.ciphersuites.clone(),
            crt_base: self.tls.crt_base.clone(),
            origin: self.origin(line),
            ..TlsBind::default()
        };
        let mut index = 0;
        while let Some(word) = words.get(index) {
            // The bind line's other options were read by `bind` (with their value, if any).
            if bind_option(word).is_none() {
                index += if matches!(word.as_str(), "name" | "id" | "proto") { 2 } else { 1 };
                continue;
            }
            let arg = words.get(index + 1);
            let result = self.tls_word(&mut bind, line, word, arg);
            if let Err(problem) = result {
                self.sink.report(line, problem);
                return None;
            }
            index += 1 + bind_option(word).unwrap_or(0);
        }
        match fulcrum_tls::check(&bind) {
            Ok(warnings) => {
                for w in warnings {
                    self.sink.warn(line, w, None);
                }
                Some(bind)
            }
            Err(e) => {
                let hint = match &e {
                    fulcrum_tls::TlsError::NoKey { .. } => {
                        Some("put the key in the PEM file after the certificate, or in FILE.key".into())
                    }
                    fulcrum_tls::TlsError::Expired { .. } => Some("renew the certificate".into()),
                    fulcrum_tls::TlsError::KeyMismatch { .. } => {
                        Some("each PEM file needs the key of its own certificate".into())
                    }
                    _ => None,
                };
                self.sink.error(line, e.to_string(), hint);
                None
            }
        }
    }

    fn tls_word(&mut self, bind: &mut TlsBind, line: usize, word: &str, arg: Option<&String>) -> Result<(), Problem> {
        let needs = |what: &str| Problem::invalid(format!("'{word}' needs {what}"));
        let version = |arg: Option<&String>| {
            let v = arg.ok_or_else(|| needs("a version: TLSv1.2 or TLSv1.3"))?;
            TlsVersion::parse(v).ok_or_else(|| Problem::unknown("TLS version", v, ["TLSv1.2", "TLSv1.3"]))
        };
        let file = |base: &Option<PathBuf>, arg: Option<&String>| -> Result<PathBuf, Problem> {
            let name = arg.ok_or_else(|| needs("a file name"))?;
            Ok(match base {
                Some(dir) if !name.starts_with('/') => dir.join(name),
                _ => self.resolve_path(name),
            })
        };
        match word {
            "ssl" => {}
            "crt" => bind.certs.push(CertSource::Path(file(&self.tls.crt_base, arg)?)),
            "crt-list" => bind.certs.push(CertSource::List(file(&None, arg)?)),
            "ca-file" => bind.ca_file = Some(file(&self.tls.ca_base, arg)?),
            "crl-file" => bind.crl_file = Some(file(&self.tls.ca_base, arg)?),
            "alpn" => {
                let list = arg.ok_or_else(|| needs("a list of protocols, e.g. h2,http/1.1"))?;
                bind.alpn = list.split(',').filter(|p| !p.is_empty()).map(str::to_string).collect();
            }
            "ssl-min-ver" => bind.min_version = Some(version(arg)?),
            "ssl-max-ver" => bind.max_version = Some(version(arg)?),
            "ciphers" => bind.ciphers = Some(arg.ok_or_else(|| needs("a cipher list"))?.clone()),
            "ciphersuites" => bind.ciphersuites = Some(arg.ok_or_else(|| needs("a TLS 1.3 suite list"))?.clone()),
            "verify" => {
                bind.verify = match arg.map(String::as_str) {
                    Some("none") => ClientVerify::None,
                    Some("optional") => ClientVerify::Optional,
                    Some("required") => ClientVerify::Required,
                    Some(other) => {
                        return Err(Problem::unknown("verify mode", other, ["none", "optional", "required"]))
                    }
                    None => return Err(needs("none, optional or required")),
                }
            }
            // What rustls cannot speak anyway: nothing to turn off.
            "no-sslv3" | "no-tlsv10" | "no-tlsv11" => {}
            "no-tlsv12" => bind.min_version = Some(TlsVersion::Tls13),
            "no-tlsv13" => bind.max_version = Some(TlsVersion::Tls12),
            "force-tlsv12" => (bind.min_version, bind.max_version) = (Some(TlsVersion::Tls12), Some(TlsVersion::Tls12)),
            "force-tlsv13" => (bind.min_version, bind.max_version) = (Some(TlsVersion::Tls13), Some(TlsVersion::Tls13)),
            "force-sslv3" | "force-tlsv10" | "force-tlsv11" => {
                return Err(Problem::unsupported(format!(
                    "'{word}': fulcrum speaks TLSv1.2 and TLSv1.3 only (older versions are obsolete and not in rustls)"
                )))
            }
            "no-tls-tickets" => bind.no_tickets = true,
            "strict-sni" => bind.strict_sni = true,
            "npn" | "curves" | "ecdhe" | "prefer-client-ciphers" | "allow-0rtt" | "no-ca-names" => {
                let why = match word {
                    "npn" => "NPN is obsolete (ALPN replaced it)",
                    "curves" | "ecdhe" => "key exchange groups are rustls's (X25519, P-256, P-384)",
                    "prefer-client-ciphers" => "the server's cipher order is used",
                    "allow-0rtt" => "early data is not accepted",
                    _ => "CA names are not sent",
                };
                self.sink.warn(line, format!("bind option '{word}' is ignored: {why}"), None);
            }
            other => return Err(Problem::unsupported(format!("bind option '{other}' is not supported yet"))),
        }
        Ok(())
    }
}
