//! Proxy sections (`defaults`, `frontend`, `backend`, `listen`): their state while read, the
//! keywords that concern both sides or the frontend side, and turning a section into Model
//! objects once it ends.

use super::keywords::{known, lookup, sort_word, supported, Context, Support, ERRORFILE_CODES};
use super::section::{Kind, ProxyState};
use super::Parser;
use crate::diag::at;
use crate::diag::{Problem, Severity};
use crate::partial::{BackendRef, BindRef};
use crate::values::{parse_duration, parse_net, parse_number};
use fulcrum_model::*;

impl Parser {
    pub(super) fn proxy_line(&mut self, st: &mut ProxyState, line: usize, words: &[String]) {
        let keyword = words.first().map(String::as_str).unwrap_or_default();
        let args = words.get(1..).unwrap_or_default();
        let result = match keyword {
            "mode" => self.mode(st, line, args),
            "bind" => self.bind(st, line, args),
            "default_backend" => self.default_backend(st, line, args),
            "use_backend" => self.use_backend(st, line, args),
            "redirect" => self.redirect(st, args),
            "http-request" | "http-response" | "http-after-response" => Self::http_rule(st, keyword, args),
            "monitor-uri" => Self::monitor_uri(st, args),
            "monitor" => Self::monitor(st, args),
            // A frontend's own table (tracking, rate limiting); a backend's or a listen's is
            // read with the backend keywords.
            "stick-table" if st.kind == Kind::Frontend => {
                super::backend::parse_stick_table(args).map(|t| st.fe.table = Some(t))
            }
            "tcp-request" => self.tcp_request(st, line, args),
            "acl" => self.acl(st, args),
            "option" => self.option(st, line, args, false),
            "no" => match args.split_first() {
                Some((what, rest)) if what == "option" => self.option(st, line, rest, true),
                Some((what, rest)) if what == "log" && rest.is_empty() => {
                    st.log = Some(false);
                    Ok(())
                }
                _ => Err(Problem::invalid("'no' must be followed by 'option NAME' or 'log'")),
            },
            "timeout" => self.timeout(st, line, args),
            "contimeout" | "clitimeout" | "srvtimeout" => self.legacy_timeout(st, line, keyword, args),
            "errorfile" => self.errorfile(st, line, args),
            "maxconn" => self.frontend_maxconn(st, line, args),
            "stats" => self.stats(st, line, args),
            "log" => {
                match args.first().map(String::as_str) {
                    Some(_) => self.log_target(line, args),
                    None => return self.sink.error(line, "'log' needs a target, or 'global'", None),
                }
                st.log = Some(true);
                Ok(())
            }
            _ => self.backend_line(st, line, keyword, args),
        };
        if let Err(problem) = result {
            if matches!(keyword, "bind" | "default_backend" | "use_backend") {
                st.incomplete = true;
            }
            self.sink.report(line, problem);
        }
    }

    /// Keywords of the backend side, and unknown ones.
    fn backend_line(
        &mut self,
        st: &mut ProxyState,
        line: usize,
        keyword: &str,
        args: &[String],
    ) -> Result<(), Problem> {
        match keyword {
            "balance" | "hash-type" | "server" | "default-server" | "http-check" | "tcp-check" | "http-reuse"
            | "retries" | "redispatch" | "redisp" | "cookie" | "stick-table" | "stick" | "dynamic-cookie-key"
            | "force-persist" | "ignore-persist" => self.backend_keyword(st, line, keyword, args),
            k if lookup(Context::Proxy, k).is_some_and(|kw| kw.support == Support::NotYet) => {
                Err(Problem::unsupported(format!("'{k}' is not supported yet")))
            }
            k if lookup(Context::Proxy, k).is_some_and(|kw| matches!(kw.support, Support::Ignored(_))) => {
                if let Some(Support::Ignored(why)) = lookup(Context::Proxy, k).map(|kw| kw.support) {
                    self.sink.warn(line, format!("'{k}' is ignored: {why}"), None);
                }
                Ok(())
            }
            k => {
                let candidates = supported(Context::Proxy).chain(supported(Context::Section));
                let problem = Problem::invalid(format!("unknown keyword '{k}' in {}", st.title()));
                Err(match crate::did_you_mean(k, candidates) {
                    Some(best) => problem.hint(format!("did you mean {best}?")),
                    None => problem,
                })
            }
        }
    }

    /// Whether the section has a frontend side; warns (as HAProxy does) when it has not.
    pub(super) fn need_frontend(&mut self, st: &ProxyState, line: usize, keyword: &str) -> bool {
        if st.kind.has_frontend() {
            return true;
        }
        let message = format!("'{keyword}' is ignored in {}: it only applies to frontends", st.title());
        self.sink.warn(line, message, Some("move it to a frontend or listen section".into()));
        false
    }

    pub(super) fn need_backend(&mut self, st: &ProxyState, line: usize, keyword: &str) -> bool {
        if st.kind.has_backend() {
            return true;
        }
        let message = format!("'{keyword}' is ignored in {}: it only applies to backends", st.title());
        self.sink.warn(line, message, Some("move it to a backend or listen section".into()));
        false
    }

    pub(super) fn not_in_defaults(st: &ProxyState, keyword: &str) -> Result<(), Problem> {
        match st.kind {
            Kind::Defaults => Err(Problem::invalid(format!("'{keyword}' is not allowed in a defaults section"))),
            _ => Ok(()),
        }
    }

    fn mode(&mut self, st: &mut ProxyState, line: usize, args: &[String]) -> Result<(), Problem> {
        let [mode] = args else { return Err(Problem::invalid("'mode' needs one value: http")) };
        match mode.as_str() {
            "http" | "tcp" | "health" | "log" | "spop" => {
                st.mode = Some((mode.clone(), self.origin(line)));
                Ok(())
            }
            other => Err(Problem::unknown("mode", other, ["http", "tcp"])),
        }
    }

    fn bind(&mut self, st: &mut ProxyState, line: usize, args: &[String]) -> Result<(), Problem> {
        Self::not_in_defaults(st, "bind")?;
        if !self.need_frontend(st, line, "bind") {
            return Ok(());
        }
        let Some((addrs, options)) = args.split_first() else {
            return Err(Problem::invalid("'bind' needs an address").hint("e.g. bind *:80"));
        };
        let before = st.binds.len();
        self.bind_addresses(st, line, addrs);
        let added: Vec<std::net::SocketAddr> = st.binds[before..].iter().map(|(a, _)| *a).collect();
        let mut unsupported: Vec<&str> = Vec::new();
        let mut index = 0;
        while let Some(option) = options.get(index) {
            match option.as_str() {
                "name" | "id" => index += 1,
                "accept-proxy" => st.fe.accept_proxy.extend(added.iter().copied()),
                "proto" => {
                    index += 1;
                    match options.get(index).map(String::as_str) {
                        Some("h2") => st.fe.h2_binds.extend(added.iter().copied()),
                        Some("h1") | Some("http/1.1") => {}
                        Some(other) => return Err(Problem::unknown("bind proto", other, ["h2", "h1"])),
                        None => return Err(Problem::invalid("'proto' needs a protocol: h2")),
                    }
                }
                "quic" => {
                    let hint = "serve HTTP/3 elsewhere; fulcrum speaks TLS over TCP".to_string();
                    self.sink.error(line, "QUIC binds are not supported", Some(hint));
                    return Ok(());
                }
                other => match super::tls::bind_option(other) {
                    Some(args) => index += args,
                    None => unsupported.push(other),
                },
            }
            index += 1;
        }
        if !unsupported.is_empty() {
            return Err(Problem::unsupported(format!(
                "bind options '{}' are not supported yet",
                unsupported.join(" ")
            )));
        }
        if let Some(tls) = self.bind_tls(line, added, options) {
            st.fe.tls.push(tls);
        }
        Ok(())
    }

    /// `ADDR:PORT[,ADDR:PORT...]`
    pub(super) fn bind_addresses(&mut self, st: &mut ProxyState, line: usize, list: &str) {
        for text in list.split(',') {
            let addr = crate::values::bind_address(text, &self.inherited);
            match addr {
                Ok(addr) if st.binds.iter().any(|(a, _)| *a == addr) => {
                    self.sink.error(line, format!("{} already binds {addr}", st.title()), None)
                }
                Ok(addr) => st.binds.push((addr, line)),
                Err(e) => {
                    st.incomplete = true;
                    let hint = "e.g. bind *:80, bind 192.0.2.1:80, bind [::]:80, bind fd@3";
                    self.sink.report(line, Problem::from(e).hint(hint));
                }
            }
        }
    }

    fn default_backend(&mut self, st: &mut ProxyState, line: usize, args: &[String]) -> Result<(), Problem> {
        if !self.need_frontend(st, line, "default_backend") {
            return Ok(());
        }
        let [name] = args else { return Err(Problem::invalid("'default_backend' needs one backend name")) };
        if name.contains("%[") {
            return Err(Problem::unsupported("a dynamic default_backend (%[...]) is not supported yet")
                .hint("use 'use_backend %[...]' with a static default_backend"));
        }
        st.fe.default_backend = Some(name.clone());
        st.default_backend = Some((name.clone(), self.origin(line)));
        st.default_backend_here = st.kind != Kind::Defaults;
        Ok(())
    }

    fn use_backend(&mut self, st: &mut ProxyState, line: usize, args: &[String]) -> Result<(), Problem> {
        Self::not_in_defaults(st, "use_backend")?;
        if !self.need_frontend(st, line, "use_backend") {
            return Ok(());
        }
        let Some((name, cond)) = args.split_first() else {
            return Err(Problem::invalid("'use_backend' needs a backend name").hint("e.g. use_backend api if is_api"));
        };
        let dynamic = if name.contains('%') {
            Some(crate::sample::parse_log_format_in(name, crate::sample::Dir::Request)?)
        } else {
            None
        };
        let condition = if cond.is_empty() {
            Condition { unless: false, alternatives: vec![Vec::new()] }
        } else {
            st.acls.parse_condition(cond)?
        };
        st.use_backends.push((UseBackend { backend: name.clone(), condition, dynamic }, line));
        Ok(())
    }

    /// `monitor-uri URI`: a health URL the proxy answers itself (frontends and listens).
    fn monitor_uri(st: &mut ProxyState, args: &[String]) -> Result<(), Problem> {
        if !st.kind.has_frontend() {
            return Err(Problem::invalid("'monitor-uri' belongs in a frontend or listen section"));
        }
        match args {
            [uri] if uri.starts_with('/') || uri.contains("://") => {
                st.fe.monitor_uri = Some(uri.clone());
                Ok(())
            }
            _ => Err(Problem::invalid("'monitor-uri' needs one URI").hint("e.g. monitor-uri /healthz")),
        }
    }

    /// `monitor fail if|unless COND`: the `monitor-uri` answer becomes a 503.
    fn monitor(st: &mut ProxyState, args: &[String]) -> Result<(), Problem> {
        Self::not_in_defaults(st, "monitor fail")?;
        if !st.kind.has_frontend() {
            return Err(Problem::invalid("'monitor fail' belongs in a frontend or listen section"));
        }
        match args.split_first() {
            Some((fail, cond)) if fail == "fail" && !cond.is_empty() => {
                let condition = st.acls.parse_condition(cond)?;
                st.fe.monitor_fail.push(condition);
                Ok(())
            }
            _ => Err(Problem::invalid("'monitor' is written 'monitor fail if|unless COND'")),
        }
    }

    /// `http-request ACTION ...` / `http-response ACTION ...`.
    fn http_rule(st: &mut ProxyState, keyword: &str, args: &[String]) -> Result<(), Problem> {
        if st.kind == Kind::Defaults {
            return Err(Problem::unsupported(format!("'{keyword}' rules in a defaults section are not supported yet"))
                .hint("write the rules in each frontend, listen or backend section"));
        }
        if keyword == "http-after-response" {
            // What HAProxy lets these rules do: edit the answer's headers and status, and
            // variables.
            const AFTER: &[&str] = &[
                "allow",
                "set-header",
                "add-header",
                "del-header",
                "replace-header",
                "replace-value",
                "set-status",
                "set-var",
                "unset-var",
            ];
            let action = args.first().map(|a| a.split('(').next().unwrap_or(a)).unwrap_or_default();
            if !AFTER.contains(&action) {
                return Err(Problem::unknown("http-after-response action", action, AFTER.iter().copied()));
            }
            let rule = super::http_rules::parse_http_rule(args, true, &mut st.acls)?;
            st.http_after_response.push(rule);
            return Ok(());
        }
        let response = keyword == "http-response";
        let rule = super::http_rules::parse_http_rule(args, response, &mut st.acls)?;
        if response {
            st.http_response.push(rule);
        } else {
            st.http_request.push(rule);
        }
        Ok(())
    }

    /// `redirect location|prefix|scheme VALUE [code N] [options] [if|unless COND]`.
    fn redirect(&mut self, st: &mut ProxyState, args: &[String]) -> Result<(), Problem> {
        Self::not_in_defaults(st, "redirect")?;
        if !st.kind.has_frontend() {
            return Err(Problem::unsupported("'redirect' in a backend section is not supported yet")
                .hint("put the redirect in the frontend (or listen) section"));
        }
        let rule = super::http_rules::parse_redirect(args, &mut st.acls)?;
        st.fe.redirects.push(rule);
        Ok(())
    }

    /// `tcp-request inspect-delay T`, `tcp-request connection|content accept|reject [COND]`.
    fn tcp_request(&mut self, st: &mut ProxyState, line: usize, args: &[String]) -> Result<(), Problem> {
        let Some((kind, rest)) = args.split_first() else {
            return Err(Problem::invalid("'tcp-request' needs inspect-delay, connection or content"));
        };
        if kind == "inspect-delay" {
            let [delay] = rest else { return Err(Problem::invalid("'tcp-request inspect-delay' needs a timeout")) };
            if self.need_frontend(st, line, "tcp-request inspect-delay") {
                st.fe.tcp_request.inspect_delay = Some(parse_duration(delay)?);
            }
            return Ok(());
        }
        let rules = match kind.as_str() {
            "connection" | "content" => kind.as_str(),
            "session" => return Err(Problem::unsupported("'tcp-request session' rules are not supported yet")),
            other => {
                return Err(Problem::unknown("tcp-request rule set", other, ["inspect-delay", "connection", "content"]))
            }
        };
        Self::not_in_defaults(st, "tcp-request rules")?;
        if !self.need_frontend(st, line, "tcp-request") {
            return Ok(());
        }
        let Some((action, cond)) = rest.split_first() else {
            return Err(Problem::invalid(format!("'tcp-request {rules}' needs an action: accept or reject")));
        };
        // The condition starts at the first `if` or `unless`.
        let split = cond.iter().position(|w| w == "if" || w == "unless").unwrap_or(cond.len());
        let (words, cond) = cond.split_at(split);
        let bare = |action: TcpAction| -> Result<TcpAction, Problem> {
            match words {
                [] => Ok(action),
                [extra, ..] => Err(Problem::invalid(format!(
                    "unexpected '{extra}' after 'tcp-request {rules} {}'",
                    action_name(&action)
                ))),
            }
        };
        let name = action.split('(').next().unwrap_or(action);
        let action = match name {
            "accept" => bare(TcpAction::Accept)?,
            "reject" => bare(TcpAction::Reject)?,
            "track-sc0" | "track-sc1" | "track-sc2" | "sc-inc-gpc0" | "sc-inc-gpc1" | "sc-set-gpt0" => {
                use super::http_rules::{sc_action, ScAction};
                match sc_action(&format!("tcp-request {rules}"), action, words, crate::sample::Dir::Request)? {
                    ScAction::Track { slot, key, table } => {
                        if rules == "connection" && key.fetch.needs_request() {
                            return Err(Problem::invalid(format!(
                                "'tcp-request connection {action}': the key needs the request, which connection rules do not have"
                            ))
                            .hint("use 'tcp-request content' or 'http-request' for keys read from the request"));
                        }
                        TcpAction::TrackSc { slot, key, table }
                    }
                    ScAction::IncGpc { slot, gpc } => TcpAction::ScIncGpc { slot, gpc },
                    ScAction::SetGpt0 { slot, value } => TcpAction::ScSetGpt0 { slot, value },
                }
            }
            other => {
                let known = ["accept", "reject", "expect-proxy", "capture", "set-var", "silent-drop", "set-src"];
                return Err(match known.contains(&other) || other.starts_with("set-") || other.starts_with("sc-") {
                    true => Problem::unsupported(format!("'tcp-request {rules} {other}' is not supported yet")),
                    false => Problem::unknown(
                        "tcp-request action",
                        other,
                        [
                            "accept",
                            "reject",
                            "track-sc0",
                            "track-sc1",
                            "track-sc2",
                            "sc-inc-gpc0",
                            "sc-inc-gpc1",
                            "sc-set-gpt0",
                        ],
                    ),
                });
            }
        };
        let condition = if cond.is_empty() { None } else { Some(st.acls.parse_condition(cond)?) };
        let rule = TcpRule { action, condition };
        if rules == "connection" {
            st.fe.tcp_request.connection.push(rule);
        } else {
            st.fe.tcp_request.content.push(rule);
        }
        Ok(())
    }

    fn acl(&mut self, st: &mut ProxyState, args: &[String]) -> Result<(), Problem> {
        Self::not_in_defaults(st, "acl")?;
        let Some((name, body)) = args.split_first() else {
            return Err(
                Problem::invalid("'acl' needs a name, a criterion and patterns").hint("e.g. acl is_api path_beg /api")
            );
        };
        st.acls.define(name, body)
    }

    fn option(&mut self, st: &mut ProxyState, line: usize, args: &[String], negated: bool) -> Result<(), Problem> {
        let Some((name, rest)) = args.split_first() else { return Err(Problem::invalid("'option' needs a name")) };
        let name = name.as_str();
        let flag = |rest: &[String]| -> Result<(), Problem> {
            match rest.first() {
                None => Ok(()),
                Some(extra) => Err(Problem::invalid(format!("unexpected '{extra}' after 'option {name}'"))),
            }
        };
        match name {
            "httpchk" | "redispatch" | "allbackups" | "tcp-check" | "mysql-check" | "pgsql-check" | "redis-check"
            | "smtpchk" | "ldap-check" | "ssl-hello-chk" | "persist" => {
                if !self.need_backend(st, line, &format!("option {name}")) {
                    return Ok(());
                }
                self.backend_option(st, name, rest, negated)
            }
            "forwardfor" if negated => {
                st.fe.forwardfor = None;
                st.be.forwardfor = None;
                Ok(())
            }
            "forwardfor" => {
                let ff = parse_forwardfor(rest)?;
                st.fe.forwardfor = Some(ff.clone());
                st.be.forwardfor = Some(ff);
                Ok(())
            }
            "http-server-close" | "httpclose" | "forceclose" | "http-keep-alive" => {
                flag(rest)?;
                if name == "forceclose" {
                    let hint = Some("write 'option httpclose'".to_string());
                    self.sink.warn(line, "'option forceclose' is the old spelling of 'option httpclose'", hint);
                }
                let mode = match (name, negated) {
                    (_, true) | ("http-keep-alive", _) => ConnMode::KeepAlive,
                    ("http-server-close", _) => ConnMode::ServerClose,
                    _ => ConnMode::Close,
                };
                st.fe.conn_mode = mode;
                st.be.conn_mode = mode;
                Ok(())
            }
            "httplog" => {
                if rest.first().is_some_and(|r| r != "clf") || rest.len() > 1 {
                    return Err(Problem::invalid("'option httplog' takes only 'clf'"));
                }
                if self.need_frontend(st, line, "option httplog") {
                    st.option_httplog = !negated;
                    if !rest.is_empty() {
                        self.sink.warn(line, "'option httplog clf' logs in fulcrum's usual format, not CLF", None);
                    }
                }
                Ok(())
            }
            "tcplog" => {
                flag(rest)?;
                if self.need_frontend(st, line, "option tcplog") {
                    // One line per connection; its shape follows the frontend's mode.
                    st.option_httplog = !negated;
                }
                Ok(())
            }
            "dontlognull" => {
                flag(rest)?;
                if self.need_frontend(st, line, "option dontlognull") {
                    st.fe.dontlognull = !negated;
                }
                Ok(())
            }
            n => match sort_word(Context::Option, "option", "option", n) {
                Ok(Some(why)) => {
                    self.sink.warn(line, format!("'option {n}' is ignored: {why}"), None);
                    Ok(())
                }
                // Known and read, but not by the arms above: not reachable while the table and
                // this match agree (a test holds them together).
                Ok(None) => Err(Problem::unsupported(format!("'option {n}' is not supported yet"))),
                Err(problem) => Err(match problem {
                    Problem::Invalid { .. } => Problem::unknown("option", n, known(Context::Option)),
                    other => other,
                }),
            },
        }
    }

    fn timeout(&mut self, st: &mut ProxyState, line: usize, args: &[String]) -> Result<(), Problem> {
        let [name, value] = args else {
            return Err(Problem::invalid("'timeout' needs a name and a duration").hint("e.g. timeout connect 5s"));
        };
        let name = name.as_str();
        sort_word(Context::Timeout, "timeout", "timeout", name)?;
        let d = parse_duration(value)?;
        let keyword = format!("timeout {name}");
        match name {
            // Both halves hold requests: the frontend's rules and the backend's.
            "tarpit" => {
                st.fe.timeout_tarpit = Some(d);
                st.be.timeout_tarpit = Some(d);
            }
            "client" | "http-request" | "http-keep-alive" | "client-fin" => {
                let in_backend = st.kind == Kind::Backend;
                if in_backend && name != "client" {
                    let message = format!("'{keyword}' in {} has no effect in fulcrum", st.title());
                    self.sink.warn(line, message, Some("set it in the frontend or listen section".into()));
                    return Ok(());
                }
                if !self.need_frontend(st, line, &keyword) {
                    return Ok(());
                }
                match name {
                    "client" => st.fe.timeout_client = d,
                    "client-fin" => st.fe.timeout_client_fin = Some(d),
                    "http-request" => st.fe.timeout_http_request = d,
                    _ => st.fe.timeout_http_keep_alive = d,
                }
            }
            _ => {
                if !self.need_backend(st, line, &keyword) {
                    return Ok(());
                }
                match name {
                    "connect" => st.be.timeout_connect = d,
                    "server" => st.be.timeout_server = d,
                    "queue" => st.be.timeout_queue = d,
                    "check" => st.be.timeout_check = Some(d),
                    "server-fin" => st.be.timeout_server_fin = Some(d),
                    _ => st.be.timeout_tunnel = Some(d),
                }
            }
        }
        Ok(())
    }

    /// `contimeout`, `clitimeout`, `srvtimeout`: HAProxy 1.4 names, still common in old guides.
    fn legacy_timeout(
        &mut self,
        st: &mut ProxyState,
        line: usize,
        keyword: &str,
        args: &[String],
    ) -> Result<(), Problem> {
        let modern = match keyword {
            "contimeout" => "connect",
            "clitimeout" => "client",
            _ => "server",
        };
        let value = args.first().map(String::as_str).unwrap_or("VALUE");
        let message = format!("'{keyword}' is the old spelling of 'timeout {modern}'");
        self.sink.warn(line, message, Some(format!("write 'timeout {modern} {value}'")));
        let mut modern_args = vec![modern.to_string()];
        modern_args.extend(args.iter().cloned());
        self.timeout(st, line, &modern_args)
    }

    fn errorfile(&mut self, st: &mut ProxyState, line: usize, args: &[String]) -> Result<(), Problem> {
        let [code, file] = args else {
            return Err(Problem::invalid("'errorfile' needs a status code and a file")
                .hint("e.g. errorfile 503 /etc/haproxy/errors/503.http"));
        };
        let code: u16 = parse_number(code, "status code")?;
        if !ERRORFILE_CODES.contains(&code) {
            let codes: Vec<String> = ERRORFILE_CODES.iter().map(u16::to_string).collect();
            return Err(Problem::invalid(format!("errorfile for status {code} is not possible"))
                .hint(format!("HAProxy and fulcrum accept {}", codes.join(", "))));
        }
        let path = self.resolve_path(file);
        let content = self.read_file(&path)?;
        if let Some(status) = check_errorfile(&content)?.filter(|s| *s != code) {
            let message = format!("errorfile for {code} holds a {status} response; it is sent as is");
            self.sink.warn(line, message, None);
        }
        let errorfile = ErrorFile { path, content };
        st.fe.errorfiles.insert(code, errorfile.clone());
        st.be.errorfiles.insert(code, errorfile);
        Ok(())
    }

    fn frontend_maxconn(&mut self, st: &mut ProxyState, line: usize, args: &[String]) -> Result<(), Problem> {
        let [value] = args else { return Err(Problem::invalid("'maxconn' needs one number")) };
        let n = parse_number(value, "maxconn")?;
        if self.need_frontend(st, line, "maxconn") {
            st.fe.maxconn = Some(n);
        }
        Ok(())
    }

    fn stats(&mut self, st: &mut ProxyState, line: usize, args: &[String]) -> Result<(), Problem> {
        let Some((sub, rest)) = args.split_first() else {
            return Err(Problem::invalid("'stats' needs a keyword").hint("e.g. stats enable, stats uri /stats"));
        };
        let sub = sub.as_str();
        if let Some(why) = sort_word(Context::Stats, "stats", "stats keyword", sub)? {
            self.sink.warn(line, format!("'stats {sub}' is ignored: {why}"), None);
            return Ok(());
        }
        if st.kind == Kind::Backend {
            return Err(Problem::unsupported(format!("'stats' in {} is not supported yet", st.title()))
                .hint("put the stats lines in the frontend or listen section that serves them"));
        }
        let one = |rest: &[String]| -> Result<String, Problem> {
            match rest {
                [value] => Ok(value.clone()),
                _ => Err(Problem::invalid(format!("'stats {sub}' needs one value"))),
            }
        };
        let mut stats =
            st.fe.stats.clone().unwrap_or_else(|| Stats { uri: "/haproxy?stats".into(), ..Stats::default() });
        match sub {
            "enable" => {}
            "uri" => stats.uri = one(rest)?,
            "realm" => stats.realm = Some(one(rest)?),
            "refresh" => stats.refresh = Some(parse_duration(&one(rest)?)?),
            "hide-version" => stats.hide_version = true,
            "show-node" => stats.show_node = Some(rest.first().cloned().unwrap_or_default()),
            "auth" => {
                let value = one(rest)?;
                let (user, pass) =
                    value.split_once(':').ok_or_else(|| Problem::invalid("'stats auth' needs USER:PASSWORD"))?;
                stats.auth.push((user.to_string(), pass.to_string()));
            }
            _ => self.stats_admin(st, &mut stats, line, rest)?,
        }
        st.fe.stats = Some(stats);
        Ok(())
    }

    /// `stats admin if|unless COND`: always-true conditions grant admin outright; others are
    /// kept as a condition for the stats page to evaluate.
    fn stats_admin(
        &mut self,
        st: &mut ProxyState,
        stats: &mut Stats,
        line: usize,
        rest: &[String],
    ) -> Result<(), Problem> {
        if rest.is_empty() {
            return Err(Problem::invalid("'stats admin' needs a condition").hint("e.g. stats admin if LOCALHOST"));
        }
        let condition = st.acls.parse_condition(rest)?;
        let always = |c: &Condition| {
            !c.unless && c.alternatives.iter().any(|alt| alt.iter().all(|t| !t.negate && t.acl == "TRUE"))
        };
        if always(&condition) {
            stats.admin = true;
            stats.admin_if = None;
            st.stats_admin = None;
        } else {
            stats.admin = false;
            st.stats_admin = Some((condition, line));
        }
        Ok(())
    }

    /// Close a section: defaults become the base of what follows; proxies become Model objects.
    pub(super) fn finish_proxy(&mut self, st: ProxyState) {
        if st.kind == Kind::Defaults {
            if !st.name.is_empty() {
                self.named_defaults.push((st.name.clone(), st.clone()));
            }
            self.defaults = st;
            return;
        }
        let mode = self.check_mode(&st);
        let mut st = st;
        if st.kind.has_backend() {
            let mut backend = self.build_backend(&st);
            backend.mode = mode;
            if !st.kind.has_frontend() {
                // A backend section's rules, with the ACLs they use.
                backend.http_request = std::mem::take(&mut st.http_request);
                backend.http_response = std::mem::take(&mut st.http_response);
                backend.http_after_response = std::mem::take(&mut st.http_after_response);
                let mut conditions: Vec<&mut Condition> = backend
                    .http_request
                    .iter_mut()
                    .chain(backend.http_response.iter_mut())
                    .chain(backend.http_after_response.iter_mut())
                    .filter_map(http_rule_condition)
                    .collect();
                conditions.extend(backend.stick.iter_mut().filter_map(|r| r.condition.as_mut()));
                conditions.extend(backend.persist_rules.iter_mut().map(|r| &mut r.condition));
                match std::mem::take(&mut st.acls).finish(&mut conditions) {
                    Ok(acls) => backend.acls = acls,
                    Err(problem) => self.sink.report(st.line, problem),
                }
            }
            self.out.backends.push(backend);
        }
        if st.kind.has_frontend() {
            let listen = st.kind.has_backend();
            let mut frontend = self.build_frontend(st);
            frontend.mode = mode;
            // A listen section's backend half (its `stick` and persist rules) uses the same
            // ACLs.
            if let Some(backend) = self.out.backends.last_mut().filter(|b| listen && b.name == frontend.name) {
                backend.acls = frontend.acls.clone();
            }
            self.out.frontends.push(frontend);
        }
    }

    /// `mode http` or `mode tcp`; none is tcp, HAProxy's default. The other modes (`health`,
    /// `log`, `spop`) are not supported.
    fn check_mode(&mut self, st: &ProxyState) -> Mode {
        match &st.mode {
            Some((mode, _)) if mode == "http" => Mode::Http,
            Some((mode, _)) if mode == "tcp" => Mode::Tcp,
            Some((mode, origin)) => {
                if !self.mode_lines.contains(origin) {
                    self.mode_lines.push(origin.clone());
                    let hint = Some("fulcrum proxies mode http and mode tcp".to_string());
                    self.sink.diags.push(at(
                        origin,
                        Severity::Error,
                        format!("mode {mode} is not supported yet"),
                        hint,
                    ));
                }
                Mode::Http
            }
            None => Mode::Tcp,
        }
    }

    fn build_frontend(&mut self, mut st: ProxyState) -> Frontend {
        let origin = Origin { file: self.sink.file.clone(), line: st.line };
        let mut fe = std::mem::replace(&mut st.fe, Frontend::new(""));
        // Without `timeout tarpit`, a tarpit lasts `timeout connect`, as in HAProxy.
        fe.timeout_tarpit.get_or_insert(st.be.timeout_connect);
        fe.name = st.name.clone();
        fe.origin = origin.clone();
        fe.binds = st.binds.iter().map(|(a, _)| *a).collect();
        for (addr, line) in &st.binds {
            let origin = Origin { file: self.sink.file.clone(), line: *line };
            self.out.binds.push(BindRef { frontend: st.name.clone(), addr: *addr, udp: false, origin });
        }
        if st.kind == Kind::Listen && !st.default_backend_here {
            fe.default_backend = Some(st.name.clone());
        } else if let Some((backend, origin)) = &st.default_backend {
            self.backend_ref(&st.name, backend, origin.clone());
        }
        // A dynamic name is resolved per request: nothing to check here.
        for (rule, line) in st.use_backends.iter().filter(|(r, _)| r.dynamic.is_none()) {
            self.backend_ref(&st.name, &rule.backend, self.origin(*line));
        }
        let mut rules: Vec<UseBackend> = st.use_backends.drain(..).map(|(rule, _)| rule).collect();
        let mut admin = st.stats_admin.take().map(|(cond, _)| cond);
        let mut conditions: Vec<&mut Condition> = rules.iter_mut().map(|r| &mut r.condition).collect();
        conditions.extend(admin.as_mut());
        let tcp = &mut fe.tcp_request;
        conditions.extend(tcp.connection.iter_mut().chain(tcp.content.iter_mut()).filter_map(|r| r.condition.as_mut()));
        fe.http_request = std::mem::take(&mut st.http_request);
        fe.http_response = std::mem::take(&mut st.http_response);
        fe.http_after_response = std::mem::take(&mut st.http_after_response);
        conditions.extend(fe.redirects.iter_mut().filter_map(|r| r.condition.as_mut()));
        conditions.extend(fe.monitor_fail.iter_mut());
        conditions.extend(
            fe.http_request
                .iter_mut()
                .chain(fe.http_response.iter_mut())
                .chain(fe.http_after_response.iter_mut())
                .filter_map(http_rule_condition),
        );
        match std::mem::take(&mut st.acls).finish(&mut conditions) {
            Ok(acls) => fe.acls = acls,
            Err(problem) => self.sink.report(st.line, problem),
        }
        fe.use_backends = rules;
        if let Some(stats) = fe.stats.as_mut() {
            stats.admin_if = admin;
        }
        if st.incomplete {
            self.out.incomplete.push(st.name.clone());
        }
        fe.httplog = match st.log {
            Some(enabled) => enabled,
            None => st.option_httplog,
        };
        fe
    }

    pub(super) fn origin(&self, line: usize) -> Origin {
        Origin { file: self.sink.file.clone(), line }
    }

    fn backend_ref(&mut self, frontend: &str, backend: &str, origin: Origin) {
        self.out.backend_refs.push(BackendRef { frontend: frontend.to_string(), backend: backend.to_string(), origin });
    }
}

/// `option forwardfor [except NETWORK] [header NAME] [if-none]`
pub(crate) fn parse_forwardfor(args: &[String]) -> Result<ForwardFor, Problem> {
    let mut ff = ForwardFor::default();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "if-none" => ff.if_none = true,
            "header" => {
                let name = words.next().ok_or_else(|| Problem::invalid("'header' needs a header name"))?;
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) {
                    return Err(Problem::invalid(format!("invalid header name '{name}'")));
                }
                ff.header = name.clone();
            }
            "except" => {
                let net = words.next().ok_or_else(|| Problem::invalid("'except' needs a network"))?;
                ff.except = Some(crate::values::net_text(parse_net(net)?));
            }
            other => return Err(Problem::unknown("forwardfor option", other, ["header", "if-none", "except"])),
        }
    }
    Ok(ff)
}

/// An errorfile is sent as is: it must be a whole HTTP response. Returns its status code.
fn check_errorfile(content: &[u8]) -> Result<Option<u16>, Problem> {
    let text = String::from_utf8_lossy(content.get(..content.len().min(8192)).unwrap_or_default());
    let status_line = text.lines().next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let version_ok = parts.next().is_some_and(|v| v.starts_with("HTTP/1."));
    let status = parts.next().and_then(|s| s.parse::<u16>().ok());
    if !version_ok || status.is_none() {
        return Err(Problem::invalid(
            "errorfile is not an HTTP response: it must start with a status line like 'HTTP/1.0 503 Service Unavailable'",
        ));
    }
    if !text.contains("\r\n\r\n") && !text.contains("\n\n") {
        return Err(Problem::invalid("errorfile has no empty line after its headers"));
    }
    Ok(status)
}

/// The conditions of a rule: its own, and a redirect action's.
fn http_rule_condition(rule: &mut fulcrum_model::rules::HttpRule) -> Option<&mut Condition> {
    match &mut rule.action {
        fulcrum_model::rules::HttpAction::Redirect(r) => r.condition.as_mut(),
        _ => rule.condition.as_mut(),
    }
}

fn action_name(action: &TcpAction) -> &'static str {
    match action {
        TcpAction::Accept => "accept",
        TcpAction::Reject => "reject",
        _ => "action",
    }
}
