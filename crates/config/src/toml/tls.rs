//! TLS in the native format: `[[frontend.tls]]` tables (a bind group with its certificates
//! and options) and a server's `tls = { ... }`. The values mean what the haproxy.cfg keywords
//! of the same names mean (docs/tls.md); certificates are read and checked here, at the line.
use fulcrum_model::{CertSource, ClientVerify, Frontend, TlsBind, TlsVersion};

use super::{Doc, Table};
use crate::diag::Problem;
use crate::haproxy::section::ServerDefaults;

pub(super) const TLS_KEYS: &[&str] = &[
    "bind",
    "certificates",
    "crt_list",
    "alpn",
    "min_version",
    "max_version",
    "ciphers",
    "ciphersuites",
    "verify",
    "ca_file",
    "crl_file",
    "tickets",
    "strict_sni",
];

pub(super) const SERVER_TLS_KEYS: &[&str] = &[
    "verify",
    "ca_file",
    "crl_file",
    "crt",
    "sni",
    "sni_from_host",
    "verifyhost",
    "alpn",
    "min_version",
    "max_version",
    "ciphers",
    "ciphersuites",
    "tickets",
    "check",
    "check_sni",
];

impl Doc<'_> {
    /// `[[frontend.tls]]`: its binds are added to the frontend's, with TLS.
    pub(super) fn frontend_tls(&mut self, t: &mut Table<'_>, fe: &mut Frontend, udp: bool) {
        let Some(node) = t.get("tls") else { return };
        for item in self.tables(node, "frontend.tls") {
            let Some(mut tt) = self.table(item, format!("tls of frontend '{}'", fe.name)) else { continue };
            let line = tt.line;
            let mut bind = TlsBind { origin: self.origin(line), ..TlsBind::default() };
            for (text, line) in self.strings(&mut tt, "bind") {
                for part in text.split(',') {
                    match crate::values::bind_address(part.trim(), &self.inherited) {
                        Ok(addr) => {
                            fe.binds.push(addr);
                            bind.addrs.push(addr);
                            let origin = self.origin(line);
                            let frontend = fe.name.clone();
                            self.out.binds.push(crate::partial::BindRef { frontend, addr, udp, origin });
                        }
                        Err(e) => self.sink.error(line, e.to_string(), Some("e.g. bind = [\"0.0.0.0:443\"]".into())),
                    }
                }
            }
            for (path, _) in self.strings(&mut tt, "certificates") {
                bind.certs.push(CertSource::Path(self.path(&path)));
            }
            if let Some((path, _)) = self.string(&mut tt, "crt_list") {
                bind.certs.push(CertSource::List(self.path(&path)));
            }
            bind.alpn = self.strings(&mut tt, "alpn").into_iter().map(|(p, _)| p).collect();
            bind.min_version = self.version(&mut tt, "min_version");
            bind.max_version = self.version(&mut tt, "max_version");
            bind.ciphers = self.string(&mut tt, "ciphers").map(|(c, _)| c);
            bind.ciphersuites = self.string(&mut tt, "ciphersuites").map(|(c, _)| c);
            if let Some((v, line)) = self.string(&mut tt, "verify") {
                bind.verify = match v.as_str() {
                    "none" => ClientVerify::None,
                    "optional" => ClientVerify::Optional,
                    "required" => ClientVerify::Required,
                    other => {
                        self.report(line, Problem::unknown("verify", other, ["none", "optional", "required"]));
                        ClientVerify::None
                    }
                };
            }
            bind.ca_file = self.string(&mut tt, "ca_file").map(|(p, _)| self.path(&p));
            bind.crl_file = self.string(&mut tt, "crl_file").map(|(p, _)| self.path(&p));
            bind.no_tickets = self.boolean(&mut tt, "tickets") == Some(false);
            bind.strict_sni = self.boolean(&mut tt, "strict_sni") == Some(true);
            self.finish(tt, TLS_KEYS);
            if bind.addrs.is_empty() {
                self.sink.error(
                    line,
                    "a tls table without a bind address",
                    Some("e.g. bind = [\"0.0.0.0:443\"]".into()),
                );
                continue;
            }
            match fulcrum_tls::check(&bind) {
                Ok(warnings) => {
                    for w in warnings {
                        self.sink.warn(line, w, None);
                    }
                    fe.tls.push(bind);
                }
                Err(e) => self.sink.error(line, e.to_string(), None),
            }
        }
    }

    /// A server's (or `default_server`'s) `tls = { ... }`, by the haproxy.cfg keywords.
    pub(super) fn server_tls(&mut self, t: &mut Table<'_>, defaults: &mut ServerDefaults) {
        let Some(node) = t.get("tls") else { return };
        let Some(mut tt) = self.table(node, format!("tls of {}", t.context)) else { return };
        let mut apply = |doc: &mut Self, keyword: &str, value: &str, line: usize| {
            if let Err(problem) = crate::haproxy::backend::apply_server_param(defaults, keyword, value) {
                doc.report(line, problem);
            }
        };
        let line = tt.line;
        apply(self, "ssl", "", line);
        // The native format verifies unless told not to, as HAProxy's default does.
        let verify = self.string(&mut tt, "verify").unwrap_or(("required".into(), line));
        apply(self, "verify", &verify.0, verify.1);
        for (key, keyword) in
            [("ca_file", "ca-file"), ("crl_file", "crl-file"), ("crt", "crt"), ("verifyhost", "verifyhost")]
        {
            if let Some((value, line)) = self.string(&mut tt, key) {
                let value = match key {
                    "verifyhost" => value,
                    _ if value == "@system-ca" => value,
                    _ => self.path(&value).to_string_lossy().into_owned(),
                };
                apply(self, keyword, &value, line);
            }
        }
        for (key, keyword) in [("ciphers", "ciphers"), ("ciphersuites", "ciphersuites"), ("check_sni", "check-sni")] {
            if let Some((value, line)) = self.string(&mut tt, key) {
                apply(self, keyword, &value, line);
            }
        }
        for (key, keyword) in [("min_version", "ssl-min-ver"), ("max_version", "ssl-max-ver")] {
            if let Some((value, line)) = self.string(&mut tt, key) {
                apply(self, keyword, &value, line);
            }
        }
        if let Some((name, line)) = self.string(&mut tt, "sni") {
            apply(self, "sni", &format!("str({name})"), line);
        }
        if self.boolean(&mut tt, "sni_from_host") == Some(true) {
            apply(self, "sni", "req.hdr(host)", line);
        }
        let alpn: Vec<String> = self.strings(&mut tt, "alpn").into_iter().map(|(p, _)| p).collect();
        if !alpn.is_empty() {
            apply(self, "alpn", &alpn.join(","), line);
        }
        if self.boolean(&mut tt, "tickets") == Some(false) {
            apply(self, "no-tls-tickets", "", line);
        }
        match self.boolean(&mut tt, "check") {
            Some(true) => apply(self, "check-ssl", "", line),
            Some(false) => apply(self, "no-check-ssl", "", line),
            None => {}
        }
        self.finish(tt, SERVER_TLS_KEYS);
    }

    fn version(&mut self, t: &mut Table<'_>, key: &str) -> Option<TlsVersion> {
        let (text, line) = self.string(t, key)?;
        let version = TlsVersion::parse(&text);
        if version.is_none() {
            self.report(line, Problem::unknown("TLS version", &text, ["TLSv1.2", "TLSv1.3"]));
        }
        version
    }

    /// A file name relative to the configuration file.
    fn path(&self, name: &str) -> std::path::PathBuf {
        let path = std::path::Path::new(name);
        match path.is_absolute() {
            true => path.to_path_buf(),
            false => self.sink.file.parent().map(|d| d.join(path)).unwrap_or_else(|| path.to_path_buf()),
        }
    }
}
