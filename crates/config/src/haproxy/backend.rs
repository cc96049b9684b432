//! Backend-side keywords: `balance`, `hash-type`, `server`/`default-server`, health checks
//! (`option httpchk`, `http-check`), `cookie`, `stick-table`/`stick on`, retries and reuse.
//! The value parsers are shared with the TOML front-end, which uses the same words.
use std::net::SocketAddr;
use std::time::Duration;

use super::keywords::{lookup, supported, Context, Support};
use super::section::{CheckSend, Kind, ProxyState, ServerDefaults};
use super::Parser;
use crate::diag::Problem;
use crate::values::{parse_duration, parse_host_port, parse_number, parse_size, resolve, Host, HostPort};
use fulcrum_model::*;

/// The options that choose a tcp-check ruleset.
pub(super) const TCP_CHECK_OPTIONS: &[&str] =
    &["tcp-check", "mysql-check", "pgsql-check", "redis-check", "smtpchk", "ldap-check", "ssl-hello-chk"];

/// `option tcp-check` and the protocol checks, with their arguments.
pub(crate) fn parse_tcp_check_option(name: &str, rest: &[String]) -> Result<TcpCheck, Problem> {
    let words: Vec<&str> = rest.iter().map(String::as_str).collect();
    let none = |check: TcpCheck| match words.first() {
        None => Ok(check),
        Some(extra) => Err(Problem::invalid(format!("unexpected '{extra}' after 'option {name}'"))),
    };
    match name {
        "tcp-check" => none(TcpCheck::Rules(Vec::new())),
        "redis-check" => none(TcpCheck::Redis),
        "ldap-check" => none(TcpCheck::Ldap),
        "ssl-hello-chk" => none(TcpCheck::SslHello),
        "mysql-check" => match words.as_slice() {
            [] => Ok(TcpCheck::Mysql { user: None, post41: true }),
            ["user", user] => Ok(TcpCheck::Mysql { user: Some((*user).to_string()), post41: true }),
            ["user", user, v @ ("post-41" | "pre-41")] => {
                Ok(TcpCheck::Mysql { user: Some((*user).to_string()), post41: *v == "post-41" })
            }
            _ => Err(Problem::invalid("'option mysql-check' takes [user NAME [post-41|pre-41]]")),
        },
        "pgsql-check" => match words.as_slice() {
            ["user", user] => Ok(TcpCheck::Pgsql { user: (*user).to_string() }),
            _ => Err(Problem::invalid("'option pgsql-check' expects 'user <username>' as argument")),
        },
        // HAProxy sends HELO localhost unless given EHLO|HELO and a domain.
        _ => Ok(TcpCheck::Smtp {
            command: match words.as_slice() {
                [verb @ ("EHLO" | "HELO"), domain, ..] => format!("{verb} {domain}"),
                _ => "HELO localhost".into(),
            },
        }),
    }
}

fn hex_bytes(text: &str) -> Result<Vec<u8>, Problem> {
    if !text.len().is_multiple_of(2) {
        return Err(Problem::invalid("an even number of hex digit is expected"));
    }
    // `from_str_radix` would take a sign: only hex digits are.
    if let Some(bad) = text.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(Problem::invalid(format!("an hex digit is expected (found '{bad}')")));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            let pair = text.get(i..i + 2).unwrap_or_default();
            u8::from_str_radix(pair, 16)
                .map_err(|_| Problem::invalid(format!("an hex digit is expected (found '{pair}')")))
        })
        .collect()
}

/// One `tcp-check` line; None for `comment` (its text goes nowhere fulcrum shows yet).
pub(crate) fn parse_tcp_check(args: &[String]) -> Result<Option<TcpCheckRule>, Problem> {
    let Some((action, rest)) = args.split_first() else {
        return Err(
            Problem::invalid("'tcp-check' needs an action").hint("connect, send, send-binary, expect or comment")
        );
    };
    let mut comment = None;
    let mut words: Vec<&str> = Vec::new();
    let mut it = rest.iter();
    while let Some(w) = it.next() {
        if w == "comment" {
            comment = it.next().cloned();
        } else {
            words.push(w);
        }
    }
    match action.as_str() {
        "comment" => Ok(None),
        "connect" => {
            let (mut port, mut addr, mut send_proxy, mut ssl, mut sni) = (None, None, false, false, None);
            let mut it = words.iter();
            while let Some(w) = it.next() {
                match *w {
                    "port" => {
                        port = Some(
                            it.next()
                                .and_then(|p| p.parse::<u16>().ok())
                                .filter(|p| *p > 0)
                                .ok_or_else(|| Problem::invalid("'tcp-check connect port' takes 1..65535"))?,
                        )
                    }
                    "addr" => {
                        let a =
                            it.next().ok_or_else(|| Problem::invalid("'tcp-check connect addr' needs an address"))?;
                        let (ip, p) = match a.parse::<SocketAddr>() {
                            Ok(sa) => (sa.ip(), Some(sa.port())),
                            Err(_) => {
                                (a.parse().map_err(|_| Problem::invalid(format!("invalid address '{a}'")))?, None)
                            }
                        };
                        addr = Some(ip);
                        port = port.or(p);
                    }
                    "send-proxy" => send_proxy = true,
                    "ssl" => ssl = true,
                    "sni" => {
                        let name = it.next().ok_or_else(|| Problem::invalid("'tcp-check connect sni' needs a name"))?;
                        sni = Some((*name).to_string());
                    }
                    "default" | "linger" => {}
                    w @ ("alpn" | "via-socks4" | "proto") => {
                        return Err(Problem::unsupported(format!("'tcp-check connect {w}' is not supported yet")))
                    }
                    other => {
                        return Err(Problem::unknown(
                            "tcp-check connect option",
                            other,
                            ["port", "addr", "send-proxy", "ssl", "sni", "default", "linger", "comment"],
                        ))
                    }
                }
            }
            Ok(Some(TcpCheckRule::Connect { port, addr, send_proxy, ssl, sni, comment }))
        }
        "send" => match words.as_slice() {
            // The line's tokenizer has already turned `\r`, `\n`, `\xHH`... into bytes.
            [data] => Ok(Some(TcpCheckRule::Send { data: data.as_bytes().to_vec(), comment })),
            _ => Err(Problem::invalid("'tcp-check send' takes one string (quote it if it has spaces)")),
        },
        "send-binary" => match words.as_slice() {
            [hex] => Ok(Some(TcpCheckRule::Send { data: hex_bytes(hex)?, comment })),
            _ => Err(Problem::invalid("'tcp-check send-binary' takes one hex string")),
        },
        "expect" => {
            let mut negate = false;
            let mut min_recv = None;
            let mut it = words.iter().peekable();
            let mut kind = None;
            while let Some(w) = it.next() {
                match *w {
                    "!" => negate = !negate,
                    "min-recv" => {
                        min_recv = it
                            .next()
                            .and_then(|n| n.parse::<usize>().ok())
                            .map(Some)
                            .ok_or_else(|| Problem::invalid("'min-recv' needs a number"))?
                    }
                    "ok-status" | "error-status" | "tout-status" | "on-success" | "on-error" | "status-code" => {
                        it.next();
                    }
                    w if w.starts_with('!') && w.len() > 1 => {
                        negate = !negate;
                        kind = Some(w.trim_start_matches('!'));
                        break;
                    }
                    w => {
                        kind = Some(w);
                        break;
                    }
                }
            }
            let kind = kind.ok_or_else(|| {
                Problem::invalid("'tcp-check expect' needs a match").hint("e.g. tcp-check expect string +PONG")
            })?;
            let pattern =
                it.next().ok_or_else(|| Problem::invalid(format!("'tcp-check expect {kind}' needs a pattern")))?;
            let pattern = match kind {
                "string" => TcpExpect::String(pattern.as_bytes().to_vec()),
                "binary" => TcpExpect::Binary(hex_bytes(pattern)?),
                "rstring" | "rbinary" => {
                    regex::Regex::new(pattern)
                        .map_err(|e| Problem::invalid(format!("invalid regex '{pattern}': {e}")))?;
                    if kind == "rstring" {
                        TcpExpect::Rstring((*pattern).to_string())
                    } else {
                        TcpExpect::Rbinary((*pattern).to_string())
                    }
                }
                "string-lf" | "binary-lf" => {
                    return Err(Problem::unsupported(format!("'tcp-check expect {kind}' is not supported yet")))
                }
                other => {
                    return Err(Problem::unknown(
                        "tcp-check expect match",
                        other,
                        ["string", "binary", "rstring", "rbinary"],
                    ))
                }
            };
            Ok(Some(TcpCheckRule::Expect { negate, pattern, min_recv, comment }))
        }
        a @ ("send-lf" | "send-binary-lf" | "set-var" | "set-var-fmt" | "unset-var") => {
            Err(Problem::unsupported(format!("'tcp-check {a}' is not supported yet")))
        }
        other => {
            Err(Problem::unknown("tcp-check action", other, ["connect", "send", "send-binary", "expect", "comment"]))
        }
    }
}

const BALANCE_WORDS: &[&str] =
    &["roundrobin", "static-rr", "leastconn", "first", "source", "uri", "url_param", "hdr", "random"];

impl Parser {
    pub(super) fn backend_keyword(
        &mut self,
        st: &mut ProxyState,
        line: usize,
        keyword: &str,
        args: &[String],
    ) -> Result<(), Problem> {
        if matches!(keyword, "server" | "stick-table" | "stick") {
            Self::not_in_defaults(st, keyword)?;
            if keyword == "server" && !st.kind.has_backend() {
                return Err(Problem::invalid(format!("'server' is not allowed in frontend '{}'", st.name))
                    .hint("servers belong in a backend or listen section"));
            }
        }
        if !self.need_backend(st, line, keyword) {
            return Ok(());
        }
        match keyword {
            "balance" => st.be.algorithm = parse_balance(args)?,
            "hash-type" => {
                let (hash_type, key_hash) = parse_hash_type(args)?;
                st.be.hash_type = hash_type;
                st.be.key_hash = key_hash;
            }
            "server" => self.server(st, line, args)?,
            "default-server" => self.server_params(&mut st.server_defaults, line, args),
            "http-check" => self.http_check(st, line, args)?,
            "tcp-check" => {
                let rule = parse_tcp_check(args)?;
                if !st.tcp_rules_here {
                    st.tcp_rules.clear();
                    st.tcp_rules_here = true;
                }
                if let Some(rule) = rule {
                    st.tcp_rules.push(rule);
                }
            }
            "http-reuse" => {
                let [mode] = args else { return Err(Problem::invalid("'http-reuse' needs one value")) };
                st.be.http_reuse = parse_http_reuse(mode)?;
            }
            "retries" => {
                let [n] = args else { return Err(Problem::invalid("'retries' needs one number")) };
                st.be.retries = parse_number(n, "retries")?;
            }
            "cookie" => st.be.cookie = Some(parse_cookie(args)?),
            "dynamic-cookie-key" => {
                let [key] = args else { return Err(Problem::invalid("'dynamic-cookie-key' needs one key")) };
                st.be.dynamic_cookie_key = Some(key.clone());
            }
            "force-persist" | "ignore-persist" => {
                if !args.first().is_some_and(|w| w == "if" || w == "unless") {
                    return Err(Problem::invalid(format!("'{keyword}' needs a condition"))
                        .hint(format!("e.g. {keyword} if {{ path_beg /static }}")));
                }
                let condition = st.acls.parse_condition(args)?;
                st.be.persist_rules.push(fulcrum_model::PersistRule { force: keyword == "force-persist", condition });
            }
            "stick-table" => st.stick_table = Some((parse_stick_table(args)?, line)),
            "stick" => self.stick(st, line, args)?,
            // `redispatch` and `redisp`: HAProxy 1.x spellings.
            _ => {
                let message = format!("'{keyword}' is the old spelling of 'option redispatch'");
                self.sink.warn(line, message, Some("write 'option redispatch'".into()));
                st.be.redispatch = true;
            }
        }
        Ok(())
    }

    pub(super) fn backend_option(
        &mut self,
        st: &mut ProxyState,
        name: &str,
        rest: &[String],
        negated: bool,
    ) -> Result<(), Problem> {
        match name {
            "httpchk" if negated => st.be.http_check = None,
            "httpchk" => {
                st.be.http_check = Some(parse_httpchk(rest)?);
                st.be.tcp_check = None;
            }
            _ if TCP_CHECK_OPTIONS.contains(&name) && negated => st.be.tcp_check = None,
            _ if TCP_CHECK_OPTIONS.contains(&name) => {
                st.be.tcp_check = Some(parse_tcp_check_option(name, rest)?);
                st.be.http_check = None;
            }
            _ if !rest.is_empty() => {
                return Err(Problem::unsupported(format!("arguments to 'option {name}' are not supported yet")))
            }
            "redispatch" => st.be.redispatch = !negated,
            "persist" => st.be.persist = !negated,
            _ => st.be.allbackups = !negated,
        }
        Ok(())
    }

    fn http_check(&mut self, st: &mut ProxyState, line: usize, args: &[String]) -> Result<(), Problem> {
        let Some((sub, rest)) = args.split_first() else {
            return Err(Problem::invalid("'http-check' needs a keyword").hint("e.g. http-check expect status 200"));
        };
        let here = |previous: &Option<(_, Option<usize>)>| previous.as_ref().is_some_and(|(_, l)| l.is_some());
        match sub.as_str() {
            "expect" if here(&st.expect) => {
                Err(Problem::unsupported("several 'http-check expect' rules in one backend are not supported yet"))
            }
            "expect" => {
                st.expect = Some((parse_expect(rest)?, Some(line)));
                Ok(())
            }
            "send" => {
                st.check_send = Some((parse_check_send(rest)?, Some(line)));
                Ok(())
            }
            s @ ("disable-on-404" | "send-state" | "connect" | "comment" | "set-var" | "unset-var") => {
                Err(Problem::unsupported(format!("'http-check {s}' is not supported yet")))
            }
            other => Err(Problem::unknown("http-check keyword", other, ["expect", "send"])),
        }
    }

    /// `stick on|match|store-request|store-response PATTERN [table NAME] [if|unless COND]`.
    fn stick(&mut self, st: &mut ProxyState, line: usize, args: &[String]) -> Result<(), Problem> {
        use fulcrum_model::{StickKind, StickRule};
        let usage = "e.g. stick on src, stick match req.cook(JSESSIONID), stick store-response res.cook(JSESSIONID)";
        let Some((kind, rest)) = args.split_first() else {
            return Err(Problem::invalid("'stick' needs a rule").hint(usage));
        };
        let kind = match kind.as_str() {
            "on" => StickKind::On,
            "match" => StickKind::Match,
            "store-request" => StickKind::StoreRequest,
            "store-response" => StickKind::StoreResponse,
            other => {
                return Err(Problem::unknown("stick rule", other, ["on", "match", "store-request", "store-response"]))
            }
        };
        let split = rest.iter().position(|w| w == "if" || w == "unless").unwrap_or(rest.len());
        let (words, cond) = rest.split_at(split);
        let (pattern, table) = match words {
            [pattern] => (pattern, None),
            [pattern, kw, name] if kw == "table" => (pattern, Some(name.clone())),
            _ => {
                return Err(Problem::invalid(format!(
                    "'stick {}' takes: PATTERN [table NAME] [if|unless COND]",
                    args[0]
                ))
                .hint(usage))
            }
        };
        let dir = match kind {
            StickKind::StoreResponse => crate::sample::Dir::Response,
            _ => crate::sample::Dir::Request,
        };
        let sample = crate::sample::parse_sample_in(pattern, dir)?;
        let condition = if cond.is_empty() { None } else { Some(st.acls.parse_condition(cond)?) };
        st.stick_rules.push((StickRule { kind, sample, table, condition }, line));
        Ok(())
    }

    fn server(&mut self, st: &mut ProxyState, line: usize, args: &[String]) -> Result<(), Problem> {
        let [name, addr, params @ ..] = args else {
            return Err(
                Problem::invalid("'server' needs a name and an address").hint("e.g. server web1 192.0.2.10:80 check")
            );
        };
        if !crate::acl::valid_acl_name(name) {
            return Err(Problem::invalid(format!("invalid server name '{name}'"))
                .hint("names use letters, digits, '-', '_', '.' and ':'"));
        }
        if let Some(line) = st.server_lines.get(name.as_str()) {
            return Err(Problem::invalid(format!(
                "server '{name}' is already defined in backend '{}' (line {line})",
                st.name
            )));
        }
        let hp = parse_host_port(addr)?;
        if hp.port.is_none() {
            return Err(Problem::invalid(format!("server '{name}' needs a port")).hint(format!("e.g. {addr}:80")));
        }
        let addr = resolve(&hp, "server address")?;
        let mut defaults = st.server_defaults.clone();
        self.server_params(&mut defaults, line, params);
        let mut server = defaults.server.clone();
        server.name = name.clone();
        server.origin = Origin { file: self.sink.file.clone(), line };
        server.addr = addr;
        server.check_addr = check_address(&defaults, addr)?;
        if server.h2 && server.tls.enabled && server.tls.alpn.is_empty() {
            // An HTTP/2 server over TLS is reached with ALPN h2 (gRPC servers insist on it).
            server.tls.alpn = vec!["h2".into()];
        }
        if server.tls.enabled || defaults.check_ssl == Some(true) {
            self.server_tls_paths(&mut server.tls);
            server.tls.verify = defaults.tls_verify.unwrap_or(self.tls_server_verify());
            // As HAProxy: checks speak TLS with the traffic, unless they go elsewhere.
            server.tls.check = defaults.check_ssl.unwrap_or(server.tls.enabled && server.check_addr.is_none());
            if let Err(e) = fulcrum_tls::client_config(&server.tls) {
                return Err(Problem::invalid(format!("server '{name}': {e}")));
            }
        }
        if let Some(other) = server.id.and_then(|id| st.be.servers.iter().find(|s| s.id == Some(id))) {
            return Err(Problem::invalid(format!(
                "server '{name}': id {} is already server '{}''s in backend '{}'",
                other.id.unwrap_or_default(),
                other.name,
                st.name
            ))
            .hint("each server of a backend has its own id"));
        }
        st.server_lines.insert(name.clone(), line);
        st.be.servers.push(server);
        Ok(())
    }

    /// The keywords after `server NAME ADDR` or `default-server`; every problem is reported
    /// and reading goes on, so one line can give several messages.
    pub(super) fn server_params(&mut self, defaults: &mut ServerDefaults, line: usize, params: &[String]) {
        let mut index = 0;
        while let Some(keyword) = params.get(index) {
            index += 1;
            let keyword = keyword.as_str();
            let support = lookup(Context::Server, keyword);
            if let Some(kw) = support.filter(|kw| kw.support == Support::NotYet) {
                index += kw.values;
                let problem = Problem::unsupported(format!("server keyword '{keyword}' is not supported yet"));
                self.sink.report(line, problem);
                continue;
            }
            let takes_value = !matches!(
                keyword,
                "check"
                    | "no-check"
                    | "backup"
                    | "no-backup"
                    | "disabled"
                    | "enabled"
                    | "send-proxy"
                    | "send-proxy-v2"
                    | "no-send-proxy"
                    | "no-send-proxy-v2"
                    | "ssl"
                    | "no-ssl"
                    | "check-ssl"
                    | "no-check-ssl"
                    | "no-tls-tickets"
                    | "tls-tickets"
                    | "ssl-reuse"
                    | "no-ssl-reuse"
                    | "no-verifyhost"
                    | "allow-0rtt"
                    | "force-tlsv12"
                    | "force-tlsv13"
                    | "no-sslv3"
                    | "no-tlsv10"
                    | "no-tlsv11"
                    | "no-tlsv12"
                    | "no-tlsv13"
            );
            let value = if takes_value && support.is_some() {
                let Some(value) = params.get(index) else {
                    self.sink.error(line, format!("server keyword '{keyword}' needs a value"), None);
                    return;
                };
                index += 1;
                value.as_str()
            } else {
                ""
            };
            match apply_server_param(defaults, keyword, value) {
                Ok(None) => {}
                Ok(Some(note)) => self.sink.warn(line, note, None),
                Err(problem) => {
                    let unknown = support.is_none();
                    self.sink.report(line, problem);
                    if unknown {
                        // Its number of values is unknown: the rest of the line cannot be read.
                        return;
                    }
                }
            }
        }
    }

    pub(super) fn build_backend(&mut self, st: &ProxyState) -> Backend {
        let mut be = st.be.clone();
        // Without `timeout tarpit`, a tarpit lasts `timeout connect`, as in HAProxy.
        be.timeout_tarpit.get_or_insert(be.timeout_connect);
        if let Some(TcpCheck::Rules(rules)) = be.tcp_check.as_mut() {
            rules.clone_from(&st.tcp_rules);
        }
        // `tcp-check connect ssl` speaks TLS with the servers' TLS settings (as HAProxy), so a
        // server without `ssl` gets them for its checks, verification as `ssl-server-verify`.
        let ssl_checks = matches!(&be.tcp_check, Some(TcpCheck::Rules(rules))
            if rules.iter().any(|r| matches!(r, fulcrum_model::TcpCheckRule::Connect { ssl: true, .. })));
        if ssl_checks {
            let verify = self.tls_server_verify();
            for server in be.servers.iter_mut().filter(|s| !s.tls.enabled && !s.tls.check) {
                server.tls.check = true;
                server.tls.verify = verify;
                if let Err(e) = fulcrum_tls::client_config(&server.tls) {
                    let message = format!("server '{}' (tcp-check connect ssl): {e}", server.name);
                    self.sink.error(server.origin.line, message, None);
                }
            }
        }
        be.name = st.name.clone();
        be.origin = Origin { file: self.sink.file.clone(), line: st.line };
        match be.http_check.as_mut() {
            Some(check) => {
                if let Some((send, _)) = &st.check_send {
                    apply_check_send(check, send);
                }
                if let Some((expect, _)) = &st.expect {
                    check.expect = Some(expect.clone());
                }
            }
            None => {
                let lines = [st.check_send.as_ref().and_then(|(_, l)| *l), st.expect.as_ref().and_then(|(_, l)| *l)];
                if let Some(line) = lines.into_iter().flatten().min() {
                    let message =
                        format!("'http-check' rules in backend '{}' have no effect without 'option httpchk'", st.name);
                    self.sink.warn(line, message, Some("add 'option httpchk'".into()));
                }
            }
        }
        be.table = st.stick_table.as_ref().map(|(t, _)| t.clone());
        for (rule, line) in st.stick_rules.iter().cloned() {
            if rule.table.is_none() && st.stick_table.is_none() {
                let hint = Some(
                    "add e.g. 'stick-table type ip size 1m expire 1h' to this backend, or name another's: table NAME"
                        .to_string(),
                );
                self.sink.error(line, "a 'stick' rule without 'table' needs a stick-table in the same backend", hint);
                continue;
            }
            be.stick.push(rule);
        }
        if be.servers.is_empty() && st.kind == Kind::Backend {
            let message = format!("backend '{}' has no server: its requests get 503", st.name);
            self.sink.warn(st.line, message, None);
        }
        be
    }
}

/// One server keyword and its value. Returns a note for keywords accepted without effect.
pub(crate) fn apply_server_param(
    d: &mut ServerDefaults,
    keyword: &str,
    value: &str,
) -> Result<Option<String>, Problem> {
    let s = &mut d.server;
    let duration = |v: &str| -> Result<Duration, Problem> {
        let d = parse_duration(v)?;
        if d.is_zero() {
            return Err(Problem::invalid(format!("'{keyword}' must be greater than 0")));
        }
        Ok(d)
    };
    match keyword {
        "check" => s.check = true,
        "no-check" => s.check = false,
        "send-proxy" => s.send_proxy = Some(ProxyVersion::V1),
        "send-proxy-v2" => s.send_proxy = Some(ProxyVersion::V2),
        "no-send-proxy" | "no-send-proxy-v2" => s.send_proxy = None,
        "backup" => s.backup = true,
        "no-backup" => s.backup = false,
        "disabled" => s.disabled = true,
        "enabled" => s.disabled = false,
        "inter" => s.inter = duration(value)?,
        "fastinter" => s.fastinter = Some(duration(value)?),
        "downinter" => s.downinter = Some(duration(value)?),
        "slowstart" => s.slowstart = Some(parse_duration(value)?),
        "rise" => s.rise = parse_number(value, "rise")?,
        "fall" => s.fall = parse_number(value, "fall")?,
        "weight" => s.weight = parse_number(value, "weight")?,
        "maxconn" => s.maxconn = parse_number(value, "maxconn")?,
        "maxqueue" => s.maxqueue = parse_number(value, "maxqueue")?,
        "error-limit" => s.error_limit = parse_number(value, "error-limit")?,
        "observe" => s.observe = Some(parse_observe(value)?),
        "on-error" => s.on_error = parse_on_error(value)?,
        "cookie" => s.cookie = Some(value.to_string()),
        "id" => {
            let id: u32 = parse_number(value, "id")?;
            if id == 0 {
                return Err(Problem::invalid("a server's 'id' is a number from 1 up"));
            }
            s.id = Some(id);
        }
        "port" => d.check_port = Some(parse_number(value, "port")?),
        "addr" => {
            let hp = parse_host_port(value)?;
            if hp.port.is_some() || hp.host == Host::Any {
                return Err(Problem::invalid(format!("'addr' takes an address without a port, not '{value}'"))
                    .hint("set the port with 'port N'"));
            }
            d.check_host = Some(hp.host);
        }
        "npn" => return Ok(Some("server 'npn' is ignored: NPN is obsolete (ALPN replaced it)".into())),
        "allow-0rtt" => return Ok(Some("server 'allow-0rtt' is ignored: early data is not sent".into())),
        "proto" => {
            s.h2 = match value {
                "h2" => true,
                "h1" | "http/1.1" => false,
                other => return Err(Problem::unknown("server proto", other, ["h2", "h1"])),
            }
        }
        "ssl" => s.tls.enabled = true,
        "no-ssl" => s.tls.enabled = false,
        "check-ssl" => d.check_ssl = Some(true),
        "no-check-ssl" => d.check_ssl = Some(false),
        "verify" => {
            d.tls_verify = Some(match value {
                "none" => false,
                "required" => true,
                other => return Err(Problem::unknown("verify mode", other, ["none", "required"])),
            })
        }
        "ca-file" => s.tls.ca_file = Some(value.into()),
        "crl-file" => s.tls.crl_file = Some(value.into()),
        "crt" => s.tls.crt = Some(value.into()),
        "verifyhost" => s.tls.verifyhost = Some(value.to_string()),
        "no-verifyhost" => s.tls.verifyhost = None,
        "sni" => s.tls.sni = Some(parse_sni(value)?),
        "check-sni" => s.tls.check_sni = Some(value.to_string()),
        "alpn" => s.tls.alpn = value.split(',').filter(|p| !p.is_empty()).map(str::to_string).collect(),
        "ciphers" => s.tls.ciphers = Some(value.to_string()),
        "ciphersuites" => s.tls.ciphersuites = Some(value.to_string()),
        "ssl-min-ver" | "ssl-max-ver" => {
            let v = fulcrum_model::TlsVersion::parse(value)
                .ok_or_else(|| Problem::unknown("TLS version", value, ["TLSv1.2", "TLSv1.3"]))?;
            if keyword == "ssl-min-ver" {
                s.tls.min_version = Some(v);
            } else {
                s.tls.max_version = Some(v);
            }
        }
        "no-sslv3" | "no-tlsv10" | "no-tlsv11" => {}
        "no-tlsv12" => s.tls.min_version = Some(fulcrum_model::TlsVersion::Tls13),
        "no-tlsv13" => s.tls.max_version = Some(fulcrum_model::TlsVersion::Tls12),
        "force-tlsv12" => {
            (s.tls.min_version, s.tls.max_version) =
                (Some(fulcrum_model::TlsVersion::Tls12), Some(fulcrum_model::TlsVersion::Tls12))
        }
        "force-tlsv13" => {
            (s.tls.min_version, s.tls.max_version) =
                (Some(fulcrum_model::TlsVersion::Tls13), Some(fulcrum_model::TlsVersion::Tls13))
        }
        "no-tls-tickets" => s.tls.no_tickets = true,
        "tls-tickets" => s.tls.no_tickets = false,
        "no-ssl-reuse" => s.tls.no_reuse = true,
        "ssl-reuse" => s.tls.no_reuse = false,
        other => return Err(Problem::unknown("server keyword", other, supported(Context::Server))),
    }
    Ok(None)
}

/// `sni EXPR`: `str(NAME)`, or the request's Host (`req.hdr(host)`, `hdr(host)`, `req.host`).
fn parse_sni(value: &str) -> Result<fulcrum_model::SniSource, Problem> {
    use fulcrum_model::SniSource;
    let lower = value.to_ascii_lowercase();
    if let Some(name) = value.strip_prefix("str(").and_then(|v| v.strip_suffix(')')) {
        return Ok(SniSource::Fixed(name.to_string()));
    }
    match lower.as_str() {
        "req.hdr(host)" | "hdr(host)" | "req.hdr(host,1)" | "hdr(host,1)" | "req.host" => Ok(SniSource::RequestHost),
        _ => Err(Problem::unsupported(format!("sni expression '{value}' is not supported yet"))
            .hint("use sni str(NAME) or sni req.hdr(host)")),
    }
}

/// Where health checks go when `addr`/`port` differ from the traffic address.
pub(crate) fn check_address(d: &ServerDefaults, addr: SocketAddr) -> Result<Option<SocketAddr>, Problem> {
    if d.check_host.is_none() && d.check_port.is_none() {
        return Ok(None);
    }
    let port = d.check_port.unwrap_or(addr.port());
    let ip = match &d.check_host {
        None => addr.ip(),
        Some(host) => resolve(&HostPort { host: host.clone(), port: Some(port) }, "check address")?.ip(),
    };
    Ok(Some(SocketAddr::new(ip, port)))
}

pub(crate) fn parse_observe(value: &str) -> Result<Observe, Problem> {
    match value {
        "layer4" => Ok(Observe::Layer4),
        "layer7" => Ok(Observe::Layer7),
        other => Err(Problem::unknown("observe mode", other, ["layer4", "layer7"])),
    }
}

pub(crate) fn parse_on_error(value: &str) -> Result<OnError, Problem> {
    match value {
        "fastinter" => Ok(OnError::FastInter),
        "fail-check" => Ok(OnError::FailCheck),
        "sudden-death" => Ok(OnError::SuddenDeath),
        "mark-down" => Ok(OnError::MarkDown),
        other => {
            Err(Problem::unknown("on-error action", other, ["fastinter", "fail-check", "sudden-death", "mark-down"]))
        }
    }
}

pub(crate) fn parse_http_reuse(value: &str) -> Result<HttpReuse, Problem> {
    match value {
        "never" => Ok(HttpReuse::Never),
        "safe" => Ok(HttpReuse::Safe),
        "aggressive" => Ok(HttpReuse::Aggressive),
        "always" => Ok(HttpReuse::Always),
        other => Err(Problem::unknown("http-reuse mode", other, ["never", "safe", "aggressive", "always"])),
    }
}

/// `balance ALGORITHM [OPTIONS]` in HAProxy's words.
pub(crate) fn parse_balance(args: &[String]) -> Result<Algorithm, Problem> {
    let Some((algo, opts)) = args.split_first() else {
        return Err(Problem::invalid("'balance' needs an algorithm").hint("e.g. balance roundrobin"));
    };
    let word = algo.as_str();
    let no_options = |algo: Algorithm| match opts.first() {
        None => Ok(algo),
        Some(extra) => Err(Problem::invalid(format!("unexpected '{extra}' after 'balance {word}'"))),
    };
    let (base, arg) = match algo.split_once('(') {
        Some((base, rest)) => match rest.strip_suffix(')') {
            Some(arg) => (base, Some(arg)),
            None => return Err(Problem::invalid(format!("'{algo}' misses its closing parenthesis"))),
        },
        None => (algo.as_str(), None),
    };
    match (base, arg) {
        ("roundrobin", None) => no_options(Algorithm::RoundRobin),
        ("static-rr", None) => no_options(Algorithm::StaticRr),
        ("leastconn", None) => no_options(Algorithm::LeastConn),
        ("first", None) => no_options(Algorithm::First),
        ("source", None) => no_options(Algorithm::Source),
        ("uri", None) => parse_balance_uri(opts),
        ("url_param", None) => match opts {
            [name] => Ok(Algorithm::UrlParam { name: name.clone() }),
            [_, extra, ..] if extra == "check_post" => {
                Err(Problem::unsupported("'balance url_param ... check_post' is not supported yet"))
            }
            [] => Err(Problem::invalid("'balance url_param' needs a parameter name")),
            [_, extra, ..] => Err(Problem::invalid(format!("unexpected '{extra}' after 'balance url_param'"))),
        },
        ("hdr", Some(name)) if !name.is_empty() => {
            let use_domain_only = match opts {
                [] => false,
                [o] if o == "use_domain_only" => true,
                [o, ..] => return Err(Problem::unknown("balance hdr option", o, ["use_domain_only"])),
            };
            Ok(Algorithm::Hdr { name: name.to_ascii_lowercase(), use_domain_only })
        }
        ("hdr", _) => Err(Problem::invalid("'balance hdr' needs a header name").hint("e.g. balance hdr(host)")),
        ("random", arg) => {
            let draws = match arg {
                None => 2,
                Some(n) => parse_number::<u32>(n, "random draws")?,
            };
            if draws == 0 {
                return Err(Problem::invalid("'random' needs at least 1 draw"));
            }
            no_options(Algorithm::Random { draws })
        }
        ("rdp-cookie" | "hash" | "sticky" | "log-hash", _) => {
            Err(Problem::unsupported(format!("balance algorithm '{base}' is not supported yet")))
        }
        (other, _) => Err(Problem::unknown("balance algorithm", other, BALANCE_WORDS.iter().copied())),
    }
}

fn parse_balance_uri(opts: &[String]) -> Result<Algorithm, Problem> {
    let (mut whole, mut len, mut depth, mut path_only) = (false, None, None, false);
    let mut words = opts.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "whole" => whole = true,
            "len" | "depth" => {
                let value = words.next().ok_or_else(|| Problem::invalid(format!("'{word}' needs a number")))?;
                let n: usize = parse_number(value, word)?;
                if word == "len" {
                    len = Some(n);
                } else {
                    depth = Some(n);
                }
            }
            "path-only" => path_only = true,
            other => return Err(Problem::unknown("balance uri option", other, ["whole", "len", "depth", "path-only"])),
        }
    }
    Ok(Algorithm::Uri { whole, len, depth, path_only })
}

/// `hash-type map-based|consistent [FUNCTION] [avalanche]` (function sdbm, djb2, wt6, crc32 or
/// none; sdbm by default, as in HAProxy).
pub(crate) fn parse_hash_type(args: &[String]) -> Result<(HashType, KeyHash), Problem> {
    let Some((method, rest)) = args.split_first() else {
        return Err(Problem::invalid("'hash-type' needs map-based or consistent"));
    };
    let hash_type = match method.as_str() {
        "map-based" => HashType::MapBased,
        "consistent" => HashType::Consistent,
        other => return Err(Problem::unknown("hash-type", other, ["map-based", "consistent"])),
    };
    let mut key_hash = KeyHash::default();
    let mut function_seen = false;
    for word in rest {
        let function = match word.as_str() {
            "avalanche" => {
                key_hash.avalanche = true;
                continue;
            }
            "sdbm" => HashFunction::Sdbm,
            "djb2" => HashFunction::Djb2,
            "wt6" => HashFunction::Wt6,
            "crc32" => HashFunction::Crc32,
            "none" => HashFunction::None,
            other => {
                return Err(Problem::unknown("hash function", other, ["sdbm", "djb2", "wt6", "crc32", "avalanche"]))
            }
        };
        if std::mem::replace(&mut function_seen, true) {
            return Err(Problem::invalid("'hash-type' takes one hash function"));
        }
        key_hash.function = function;
    }
    Ok((hash_type, key_hash))
}

/// `option httpchk [[METHOD] URI [VERSION]]`; header lines smuggled in the version
/// (`HTTP/1.1\r\nHost:\ www`) become headers.
pub(crate) fn parse_httpchk(args: &[String]) -> Result<HttpCheck, Problem> {
    let mut check = HttpCheck::default();
    let (method, uri, version) = match args {
        [] => (None, None, None),
        [uri] => (None, Some(uri), None),
        [method, uri] => (Some(method), Some(uri), None),
        [method, uri, version] => (Some(method), Some(uri), Some(version)),
        [_, _, _, extra, ..] => {
            return Err(Problem::invalid(format!("unexpected '{extra}' after the HTTP version"))
                .hint("escape blanks inside headers with '\\ ', e.g. HTTP/1.1\\r\\nHost:\\ www.example.com"))
        }
    };
    if let Some(method) = method {
        check.method = check_method(method)?;
    }
    if let Some(uri) = uri {
        check.uri = check_uri(uri)?;
    }
    if let Some(version) = version {
        let mut lines = version.split('\n').map(|l| l.trim_end_matches('\r'));
        check.version = check_version(lines.next().unwrap_or_default())?;
        for header in lines.filter(|l| !l.is_empty()) {
            let (name, value) = header
                .split_once(':')
                .ok_or_else(|| Problem::invalid(format!("header line '{header}' in 'option httpchk' has no ':'")))?;
            check.headers.push((check_header_name(name.trim())?, value.trim().to_string()));
        }
    }
    Ok(check)
}

fn check_method(method: &str) -> Result<String, Problem> {
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-' || b == b'_') {
        return Err(Problem::invalid(format!("invalid HTTP method '{method}'")));
    }
    Ok(method.to_string())
}

fn check_uri(uri: &str) -> Result<String, Problem> {
    if uri.is_empty() || uri.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
        return Err(Problem::invalid(format!("invalid check URI '{uri}'")));
    }
    Ok(uri.to_string())
}

fn check_version(version: &str) -> Result<String, Problem> {
    match version {
        "HTTP/1.0" | "HTTP/1.1" => Ok(version.to_string()),
        other => Err(Problem::invalid(format!("invalid HTTP version '{other}'")).hint("use HTTP/1.0 or HTTP/1.1")),
    }
}

fn check_header_name(name: &str) -> Result<String, Problem> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) {
        return Err(Problem::invalid(format!("invalid header name '{name}'")));
    }
    Ok(name.to_string())
}

/// `http-check send [meth M] [uri U] [ver V] [hdr NAME VALUE]...`
pub(crate) fn parse_check_send(args: &[String]) -> Result<CheckSend, Problem> {
    let mut send = CheckSend::default();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        let mut value =
            || words.next().map(String::as_str).ok_or_else(|| Problem::invalid(format!("'{word}' needs a value")));
        match word.as_str() {
            "meth" => send.method = Some(check_method(value()?)?),
            "uri" => send.uri = Some(check_uri(value()?)?),
            "ver" => send.version = Some(check_version(value()?)?),
            "hdr" => {
                let name = check_header_name(value()?)?;
                send.headers.push((name, value()?.to_string()));
            }
            w @ ("uri-lf" | "body" | "body-lf" | "comment") => {
                return Err(Problem::unsupported(format!("'http-check send {w}' is not supported yet")))
            }
            other => return Err(Problem::unknown("http-check send option", other, ["meth", "uri", "ver", "hdr"])),
        }
    }
    Ok(send)
}

pub(crate) fn apply_check_send(check: &mut HttpCheck, send: &CheckSend) {
    if let Some(m) = &send.method {
        check.method = m.clone();
    }
    if let Some(u) = &send.uri {
        check.uri = u.clone();
    }
    if let Some(v) = &send.version {
        check.version = v.clone();
    }
    check.headers.extend(send.headers.iter().cloned());
}

/// `http-check expect [!] status|rstatus|string|rstring PATTERN`
pub(crate) fn parse_expect(args: &[String]) -> Result<Expect, Problem> {
    let (negate, args) = match args.split_first() {
        Some((bang, rest)) if bang == "!" => (true, rest),
        _ => (false, args),
    };
    let Some((kind, rest)) = args.split_first() else {
        return Err(Problem::invalid("'http-check expect' needs a rule").hint("e.g. http-check expect status 200"));
    };
    let kind = kind.as_str();
    const KINDS: [&str; 4] = ["status", "rstatus", "string", "rstring"];
    const UNSUPPORTED: [&str; 12] = [
        "hdr",
        "fhdr",
        "custom",
        "min-recv",
        "comment",
        "ok-status",
        "error-status",
        "tout-status",
        "on-success",
        "on-error",
        "status-code",
        "!",
    ];
    if UNSUPPORTED.contains(&kind) {
        return Err(Problem::unsupported(format!("'http-check expect {kind}' is not supported yet")));
    }
    if !KINDS.contains(&kind) {
        return Err(Problem::unknown("http-check expect rule", kind, KINDS));
    }
    let pattern = match rest {
        [pattern] => pattern.clone(),
        [] => return Err(Problem::invalid(format!("'expect {kind}' needs a pattern"))),
        [_, extra, ..] => {
            return Err(Problem::invalid(format!("unexpected '{extra}' after the pattern"))
                .hint("escape blanks in the pattern with '\\ ' or quote it"))
        }
    };
    let rule = match kind {
        "status" => ExpectRule::Status(parse_status_list(&pattern)?),
        "rstatus" => ExpectRule::StatusRegex(check_regex(&pattern)?),
        "string" => ExpectRule::String(pattern),
        _ => ExpectRule::BodyRegex(check_regex(&pattern)?),
    };
    Ok(Expect { negate, rule })
}

/// `200`, `200,301`, `200-399`, `200-299,304`.
pub(crate) fn parse_status_list(text: &str) -> Result<Vec<(u16, u16)>, Problem> {
    let code = |s: &str| -> Result<u16, Problem> {
        let n: u16 = parse_number(s, "status code")?;
        if !(100..=599).contains(&n) {
            return Err(Problem::invalid(format!("status code {n} is not between 100 and 599")));
        }
        Ok(n)
    };
    text.split(',')
        .map(|part| match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (code(lo)?, code(hi)?);
                if lo > hi {
                    return Err(Problem::invalid(format!("status range '{part}' is reversed")));
                }
                Ok((lo, hi))
            }
            None => code(part).map(|c| (c, c)),
        })
        .collect()
}

fn check_regex(pattern: &str) -> Result<String, Problem> {
    regex::Regex::new(pattern).map(|_| pattern.to_string()).map_err(|e| {
        Problem::invalid(format!("invalid regular expression '{pattern}': {}", crate::acl::regex_error(&e)))
    })
}

/// `cookie NAME insert|prefix|rewrite [indirect] [nocache] [httponly] [secure] [domain D] [preserve]`
pub(crate) fn parse_cookie(args: &[String]) -> Result<Cookie, Problem> {
    let Some((name, opts)) = args.split_first() else {
        return Err(
            Problem::invalid("'cookie' needs a cookie name").hint("e.g. cookie SERVERID insert indirect nocache")
        );
    };
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)) {
        return Err(Problem::invalid(format!("invalid cookie name '{name}'")));
    }
    let mut mode = None;
    let mut cookie = Cookie {
        name: name.clone(),
        mode: CookieMode::Passive,
        indirect: false,
        nocache: false,
        httponly: false,
        secure: false,
        domains: Vec::new(),
        preserve: false,
        postonly: false,
        maxidle: None,
        maxlife: None,
        dynamic: false,
        attrs: Vec::new(),
    };
    let mut words = opts.iter();
    while let Some(word) = words.next() {
        let mut value =
            || words.next().ok_or_else(|| Problem::invalid(format!("cookie option '{word}' needs a value")));
        let chosen = match word.as_str() {
            "insert" => Some(CookieMode::Insert),
            "prefix" => Some(CookieMode::Prefix),
            "rewrite" => Some(CookieMode::Rewrite),
            "indirect" => {
                cookie.indirect = true;
                None
            }
            "nocache" => {
                cookie.nocache = true;
                None
            }
            "httponly" => {
                cookie.httponly = true;
                None
            }
            "secure" => {
                cookie.secure = true;
                None
            }
            "preserve" => {
                cookie.preserve = true;
                None
            }
            "postonly" => {
                cookie.postonly = true;
                None
            }
            "dynamic" => {
                cookie.dynamic = true;
                None
            }
            "domain" => {
                let domain = value()?;
                if domain.contains(';') || domain.chars().any(char::is_whitespace) {
                    return Err(Problem::invalid(format!("cookie domain '{domain}' is not a domain")));
                }
                cookie.domains.push(domain.clone());
                None
            }
            "attr" => {
                let attr = value()?;
                if attr.contains(';') || attr.chars().any(|c| c.is_control()) {
                    return Err(Problem::invalid(format!("cookie attr '{attr}' has a ';' or a control character")));
                }
                cookie.attrs.push(attr.clone());
                None
            }
            w @ ("maxidle" | "maxlife") => {
                let d = parse_duration(value()?)?;
                if w == "maxidle" {
                    cookie.maxidle = Some(d);
                } else {
                    cookie.maxlife = Some(d);
                }
                None
            }
            other => {
                let known = [
                    "insert", "prefix", "rewrite", "indirect", "nocache", "httponly", "secure", "domain", "preserve",
                    "postonly", "maxidle", "maxlife", "dynamic", "attr",
                ];
                return Err(Problem::unknown("cookie option", other, known));
            }
        };
        if let Some(chosen) = chosen {
            if mode.is_some_and(|m| m != chosen) {
                return Err(Problem::invalid("choose one of insert, prefix and rewrite"));
            }
            mode = Some(chosen);
        }
    }
    cookie.mode = mode.unwrap_or(CookieMode::Passive);
    if cookie.preserve && cookie.mode != CookieMode::Insert && !cookie.indirect {
        return Err(Problem::invalid("cookie option 'preserve' needs 'insert' or 'indirect'"));
    }
    Ok(cookie)
}

/// `stick-table type ip|ipv6|integer|string [len N] size N [expire T] [store ...]`
pub(crate) fn parse_stick_table(args: &[String]) -> Result<StickTable, Problem> {
    use fulcrum_model::{TableKey, TableStore};
    let (mut size, mut expire, mut kind, mut len, mut store) = (None, None, None, None, Vec::new());
    let mut peers = None;
    let mut words = args.iter();
    while let Some(word) = words.next() {
        let mut value = || words.next().ok_or_else(|| Problem::invalid(format!("'{word}' needs a value")));
        match word.as_str() {
            "type" => kind = Some(value()?.clone()),
            "len" => {
                let n = value()?;
                len = Some(n.parse::<usize>().ok().filter(|n| (1..=4096).contains(n)).ok_or_else(|| {
                    Problem::invalid(format!("stick-table len '{n}' is not a length from 1 to 4096"))
                })?);
            }
            "size" => {
                let n = parse_size(value()?)?;
                size = Some(usize::try_from(n).map_err(|_| Problem::invalid("stick-table size is too large"))?);
            }
            "expire" => expire = Some(parse_duration(value()?)?),
            "store" => {
                for item in value()?.split(',').filter(|i| !i.is_empty()) {
                    let (name, period) = match item.split_once('(') {
                        Some((n, rest)) => {
                            let p = rest
                                .strip_suffix(')')
                                .ok_or_else(|| Problem::invalid(format!("'{item}' misses its ')'")))?;
                            (n, Some(parse_duration(p)?))
                        }
                        None => (item, None),
                    };
                    let needs_period = |p: Option<Duration>| {
                        p.ok_or_else(|| Problem::invalid(format!("'{name}' needs a period, e.g. {name}(10s)")))
                    };
                    if matches!(name, "server_id" | "server_key" | "server_name") {
                        // Every table keeps a key's server.
                        continue;
                    }
                    let Some(data) = fulcrum_model::TableData::from_name(name) else {
                        let not_yet = [
                            "bytes_in_cnt",
                            "bytes_in_rate",
                            "bytes_out_cnt",
                            "bytes_out_rate",
                            "gpc",
                            "gpc_rate",
                            "gpt",
                            "http_fail_cnt",
                            "http_fail_rate",
                            "glitch_cnt",
                            "glitch_rate",
                        ];
                        if not_yet.contains(&name) {
                            return Err(Problem::unsupported(format!("stick-table store '{name}' is not supported yet"))
                                .hint("stored so far: conn_cnt, conn_cur, conn_rate(P), sess_cnt, sess_rate(P), http_req_cnt, http_req_rate(P), http_err_cnt, http_err_rate(P), gpc0, gpc0_rate(P), gpc1, gpc1_rate(P), gpt0"));
                        }
                        let known = fulcrum_model::TableData::ALL.iter().map(|d| d.name()).chain(["server_id"]);
                        return Err(Problem::unknown("stick-table data type", name, known));
                    };
                    let period = if data.is_rate() {
                        Some(needs_period(period)?)
                    } else if period.is_some() {
                        return Err(Problem::invalid(format!("'{name}' takes no period")));
                    } else {
                        None
                    };
                    store.push(TableStore { data, period });
                }
            }
            "peers" => peers = Some(value()?.clone()),
            // A server is identified by its name on the wire, HAProxy's default.
            "srvkey" if value()? == "name" => {}
            w @ ("nopurge" | "srvkey" | "write-to" | "recv-only") => {
                return Err(Problem::unsupported(format!("stick-table option '{w}' is not supported yet")))
            }
            other => {
                let known = ["type", "len", "size", "expire", "store", "peers"];
                return Err(Problem::unknown("stick-table option", other, known));
            }
        }
    }
    let key = match kind.as_deref() {
        Some("ip") => TableKey::Ip,
        Some("ipv6") => TableKey::Ipv6,
        Some("integer") => TableKey::Integer,
        Some("string") => TableKey::String { len: len.unwrap_or(32) },
        Some(t @ "binary") => return Err(Problem::unsupported(format!("stick-table type '{t}' is not supported yet"))),
        Some(other) => {
            return Err(Problem::unknown("stick-table type", other, ["ip", "ipv6", "integer", "string", "binary"]))
        }
        None => {
            return Err(Problem::invalid("stick-table needs a type").hint("e.g. stick-table type ip size 1m expire 1h"))
        }
    };
    let size = size.ok_or_else(|| Problem::invalid("stick-table needs a size").hint("e.g. size 1m"))?;
    // No expire: entries live until the table is full, as in HAProxy.
    Ok(StickTable { size, expire: expire.unwrap_or(Duration::MAX), key, store, peers })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn balance_words() {
        assert_eq!(parse_balance(&w("roundrobin")), Ok(Algorithm::RoundRobin));
        assert_eq!(
            parse_balance(&w("uri whole len 10 depth 2")),
            Ok(Algorithm::Uri { whole: true, len: Some(10), depth: Some(2), path_only: false })
        );
        assert_eq!(
            parse_balance(&w("hdr(Host) use_domain_only")),
            Ok(Algorithm::Hdr { name: "host".into(), use_domain_only: true })
        );
        assert_eq!(parse_balance(&w("random")), Ok(Algorithm::Random { draws: 2 }));
        assert_eq!(parse_balance(&w("random(3)")), Ok(Algorithm::Random { draws: 3 }));
        assert_eq!(parse_balance(&w("url_param user")), Ok(Algorithm::UrlParam { name: "user".into() }));
        let Err(Problem::Invalid { message, hint }) = parse_balance(&w("roundrobbin")) else { panic!("invalid") };
        assert_eq!(message, "unknown balance algorithm 'roundrobbin'");
        assert_eq!(hint.as_deref(), Some("did you mean roundrobin?"));
        assert!(matches!(parse_balance(&w("rdp-cookie")), Err(Problem::Unsupported { .. })));
        assert!(parse_balance(&w("roundrobin extra")).is_err());
        assert!(parse_balance(&w("random(0)")).is_err());
    }

    #[test]
    fn httpchk_and_expect() {
        let check = parse_httpchk(&["GET".into(), "/health".into(), "HTTP/1.1\r\nHost: www.example.com".into()])
            .expect("valid");
        assert_eq!((check.method.as_str(), check.uri.as_str(), check.version.as_str()), ("GET", "/health", "HTTP/1.1"));
        assert_eq!(check.headers, [("Host".to_string(), "www.example.com".to_string())]);
        assert_eq!(parse_httpchk(&w("/ping")).expect("valid").uri, "/ping");
        assert_eq!(parse_httpchk(&[]).expect("valid"), HttpCheck::default());
        let e = parse_expect(&w("! status 200,301-302")).expect("valid");
        assert!(e.negate);
        assert_eq!(e.rule, ExpectRule::Status(vec![(200, 200), (301, 302)]));
        assert_eq!(parse_expect(&w("rstring ^OK")).expect("valid").rule, ExpectRule::BodyRegex("^OK".into()));
        assert!(parse_expect(&w("status 999")).is_err());
        assert!(parse_expect(&w("rstatus (")).is_err());
        assert!(parse_expect(&w("stauts 200")).is_err());
    }

    #[test]
    fn cookie_and_stick_table() {
        let c = parse_cookie(&w("SRV insert indirect nocache domain .example.com domain .example.org attr SameSite=Lax maxidle 30m maxlife 8h postonly dynamic")).expect("valid");
        assert_eq!(
            (c.mode, c.indirect, c.nocache, c.domains.clone(), c.attrs.clone()),
            (
                CookieMode::Insert,
                true,
                true,
                vec![".example.com".into(), ".example.org".into()],
                vec!["SameSite=Lax".into()]
            )
        );
        assert_eq!((c.maxidle, c.maxlife), (Some(Duration::from_secs(1800)), Some(Duration::from_secs(8 * 3600))));
        assert!(c.postonly && c.dynamic);
        assert_eq!(parse_cookie(&w("SRV")).expect("passive").mode, CookieMode::Passive);
        assert!(parse_cookie(&w("SRV prefix preserve")).is_err());
        assert!(parse_cookie(&w("SRV insert attr a;b")).is_err());
        assert!(parse_cookie(&w("SRV insert prefix")).is_err());
        let t = parse_stick_table(&w("type ip size 1m expire 1h")).expect("valid");
        assert_eq!((t.size, t.expire), (1 << 20, Duration::from_secs(3600)));
        assert!(matches!(parse_stick_table(&w("type binary size 1k")), Err(Problem::Unsupported { .. })));
        let t =
            parse_stick_table(&w("type string len 16 size 1k store http_req_rate(10s),gpc0,server_id")).expect("ok");
        assert_eq!(t.key, fulcrum_model::TableKey::String { len: 16 });
        assert_eq!(t.store.len(), 2);
        assert!(matches!(
            parse_stick_table(&w("type ip size 1k store bytes_in_cnt")),
            Err(Problem::Unsupported { .. })
        ));
        assert_eq!(parse_stick_table(&w("type ip size 1k store conn_cur,sess_rate(1s)")).expect("ok").store.len(), 2);
        assert!(parse_stick_table(&w("type ip size 1k store conn_cur(1s)")).is_err());
        assert!(parse_stick_table(&w("type ip size 1k store http_req_rate")).is_err());
        assert!(parse_stick_table(&w("type ip")).is_err());
    }
}
