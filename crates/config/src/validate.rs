//! Checks on the combined Model that no single line can make: something must listen, every
//! frontend must lead somewhere, values must be in range whichever format wrote them.
use std::path::Path;

use crate::diag::Severity;
use crate::diag::{at, place};
use crate::Diagnostic;
use fulcrum_model::*;

/// `incomplete`: frontends whose routing lines were already reported; `summary`: whether to
/// report that nothing listens (not when other errors explain it).
pub(crate) fn validate(
    model: &Model,
    fallback: &Path,
    incomplete: &[String],
    summary: bool,
    diags: &mut Vec<Diagnostic>,
) {
    // A keepalived.conf alone holds only VRRP instances: a node may just hold the address.
    if summary && model.vrrp.instances.is_empty() && !model.frontends.iter().any(|f| !f.binds.is_empty()) {
        let file = model.frontends.first().map(|f| f.origin.file.clone()).unwrap_or_else(|| fallback.to_path_buf());
        let hint = "add a frontend (or listen section) with e.g. 'bind *:80'";
        diags.push(Diagnostic {
            severity: Severity::Error,
            file,
            line: 0,
            message: "no frontend binds anything".into(),
            hint: Some(hint.into()),
        });
    }
    global(model, fallback, diags);
    userlists(model, diags);
    let some_bind = model.frontends.iter().any(|f| !f.binds.is_empty());
    for fe in model.frontends.iter().filter(|f| !incomplete.contains(&f.name)) {
        if some_bind && fe.binds.is_empty() {
            let message = format!("frontend '{}' binds no address: it receives no traffic", fe.name);
            diags.push(at(&fe.origin, Severity::Warning, message, Some("add e.g. 'bind *:80'".into())));
        }
        frontend(fe, diags);
        modes(model, fe, diags);
    }
    for be in &model.backends {
        backend(be, diags);
    }
    tables(model, diags);
}

/// The stick tables rules and fetches use exist: `table NAME` names a section that declares
/// one, and `track-sc*` / `src_*` without a name need their own section's, as HAProxy checks.
fn tables(model: &Model, diags: &mut Vec<Diagnostic>) {
    let declared = |name: &str| {
        model.frontends.iter().any(|f| f.name == name && f.table.is_some())
            || model.backends.iter().any(|b| b.name == name && b.table.is_some())
            || model.peers.iter().any(|p| p.tables.iter().any(|(t, _)| name.split_once('/') == Some((&p.name, t))))
    };
    // A table shared with a peers section that does not exist (HAProxy: "unable to find sync
    // peers").
    let proxies = model.frontends.iter().map(|f| (&f.name, &f.origin, &f.table));
    let proxies = proxies.chain(model.backends.iter().map(|b| (&b.name, &b.origin, &b.table)));
    for (proxy, origin, table) in proxies {
        let Some(section) = table.as_ref().and_then(|t| t.peers.as_ref()) else { continue };
        if !model.peers.iter().any(|p| &p.name == section) {
            let message =
                format!("the stick-table of '{proxy}' is shared with peers section '{section}', which is not defined");
            let hint = match model.peers.first() {
                Some(p) => format!("did you mean peers {}?", p.name),
                None => format!("add a 'peers {section}' section listing this node and the others"),
            };
            diags.push(at(origin, Severity::Error, message, Some(hint)));
        }
    }
    let sections = model
        .frontends
        .iter()
        .map(|f| (&f.name, &f.origin, &f.http_request, &f.http_response, &f.acls[..], &[][..]))
        .chain(model.backends.iter().map(|b| {
            // A listen section's ACLs are its frontend half's (checked there).
            let acls = if listen(model, b) { &[][..] } else { &b.acls[..] };
            (&b.name, &b.origin, &b.http_request, &b.http_response, acls, &b.stick[..])
        }));
    for (proxy, origin, request, response, acls, stick) in sections {
        let from_rules = request.iter().chain(response).flat_map(|r| r.tables_used());
        let from_rules = from_rules.chain(stick.iter().map(|r| r.table.as_deref()));
        let tcp = model.frontends.iter().filter(|f| &f.name == proxy).flat_map(|f| {
            f.tcp_request.connection.iter().chain(&f.tcp_request.content).filter_map(|r| match &r.action {
                fulcrum_model::TcpAction::TrackSc { table, .. } => Some(table.as_deref()),
                _ => None,
            })
        });
        let from_rules = from_rules.chain(tcp);
        let from_acls = acls.iter().flat_map(|a| match &a.fetch {
            fulcrum_model::Fetch::Sample(s) => s.tables_used().collect::<Vec<_>>(),
            _ => Vec::new(),
        });
        let mut missing: Vec<&str> =
            from_rules.chain(from_acls).map(|t| t.unwrap_or(proxy)).filter(|t| !declared(t)).collect();
        missing.dedup();
        for table in missing {
            let message = format!("'{proxy}' uses the stick-table '{table}', which is not declared");
            let hint =
                format!("add e.g. 'stick-table type ip size 100k expire 30s store http_req_rate(10s)' to '{table}'");
            diags.push(at(origin, Severity::Error, message, Some(hint)));
        }
    }
}

/// A backend that is a listen section's backend half.
fn listen(model: &Model, b: &Backend) -> bool {
    model.frontends.iter().any(|f| f.name == b.name)
}

/// Every userlist an ACL checks credentials against must exist.
fn userlists(model: &Model, diags: &mut Vec<Diagnostic>) {
    let sections = model.frontends.iter().map(|f| (&f.name, &f.origin, &f.acls));
    let sections =
        sections.chain(model.backends.iter().filter(|b| !listen(model, b)).map(|b| (&b.name, &b.origin, &b.acls)));
    for (proxy, origin, acls) in sections {
        for acl in acls {
            let fulcrum_model::Fetch::Sample(s) = &acl.fetch else { continue };
            use fulcrum_model::rules::SampleFetch as F;
            let server = match &s.fetch {
                F::NbSrv(Some(b)) => Some((b, None)),
                F::SrvIsUp { backend, server } => Some((backend, Some(server))),
                _ => None,
            };
            if let Some((b, srv)) = server {
                let found =
                    model.backend(b).is_some_and(|be| srv.is_none_or(|s| be.servers.iter().any(|x| x.name == *s)));
                if !found {
                    let what = srv.map_or(format!("backend '{b}'"), |s| format!("server '{b}/{s}'"));
                    let message = format!("acl '{}' of '{proxy}' reads {what}, which is not defined", acl.name);
                    diags.push(at(origin, Severity::Error, message, None));
                }
            }
            let Some(list) = s.fetch.userlist() else { continue };
            if !model.userlists.iter().any(|l| l.name == list) {
                let message = format!("acl '{}' of '{proxy}' checks userlist '{list}', which is not defined", acl.name);
                let hint = format!("add e.g. 'userlist {list}' with 'user NAME password HASH' lines");
                diags.push(at(origin, Severity::Error, message, Some(hint)));
            }
        }
    }
}

/// The buffer settings must leave room for a head: HAProxy refuses to start otherwise.
fn global(model: &Model, fallback: &Path, diags: &mut Vec<Diagnostic>) {
    let g = &model.global;
    let file = model.frontends.first().map(|f| f.origin.file.clone()).unwrap_or_else(|| fallback.to_path_buf());
    let mut error = |message: String, hint: &str| {
        diags.push(Diagnostic {
            severity: Severity::Error,
            file: file.clone(),
            line: 0,
            message,
            hint: Some(hint.into()),
        })
    };
    if g.bufsize < 1024 {
        error(format!("tune.bufsize {} is too small", g.bufsize), "use at least 1024 (HAProxy's default is 16384)");
    } else if g.maxrewrite >= g.bufsize / 2 {
        error(
            format!(
                "tune.maxrewrite {} leaves less than half of tune.bufsize {} for a message head",
                g.maxrewrite, g.bufsize
            ),
            "keep it under half of tune.bufsize (the default, 1024, fits the default bufsize)",
        );
    }
    if g.max_headers == 0 || g.max_headers > 32767 {
        error(format!("tune.http.maxhdr {} is out of range", g.max_headers), "use 1 to 32767 (the default is 101)");
    }
}

fn frontend(fe: &Frontend, diags: &mut Vec<Diagnostic>) {
    let mut error =
        |message: String, hint: &str| diags.push(at(&fe.origin, Severity::Error, message, Some(hint.into())));
    // A frontend that only serves the stats page needs no backend.
    if fe.default_backend.is_none() && fe.use_backends.is_empty() && fe.stats.is_none() {
        error(
            format!("frontend '{}' has no default_backend and no use_backend", fe.name),
            "add 'default_backend NAME'",
        );
    }
    if let Some(stats) = &fe.stats {
        if !stats.uri.starts_with('/') {
            error(
                format!("stats uri '{}' of frontend '{}' must start with '/'", stats.uri, fe.name),
                "e.g. stats uri /stats",
            );
        }
    }
    if fe.timeout_client.is_zero() {
        let hint = "HAProxy reads 0 as no timeout; fulcrum needs a limit, e.g. timeout client 50s";
        error(format!("timeout client of frontend '{}' must be greater than 0", fe.name), hint);
    }
}

/// A frontend and its backends carry the same kind of traffic, and a `mode tcp` frontend has
/// no use for what needs HTTP (HAProxy ignores those settings with a warning, as here).
fn modes(model: &Model, fe: &Frontend, diags: &mut Vec<Diagnostic>) {
    let names =
        fe.default_backend.iter().chain(fe.use_backends.iter().filter(|r| r.dynamic.is_none()).map(|r| &r.backend));
    for be in names.filter_map(|name| model.backend(name)) {
        let message = match (fe.mode, be.mode) {
            (Mode::Tcp, Mode::Http) => format!(
                "frontend '{}' (mode tcp) using backend '{}' (mode http) is not supported yet",
                fe.name, be.name
            ),
            (f, b) if f != b => format!(
                "frontend '{}' (mode {}) cannot use backend '{}' (mode {})",
                fe.name,
                f.name(),
                be.name,
                b.name()
            ),
            _ => continue,
        };
        let hint = format!("give both the same mode (backend '{}' is at {})", be.name, place(&be.origin));
        diags.push(at(&fe.origin, Severity::Error, message, Some(hint)));
    }
    let tcp = &fe.tcp_request;
    if fe.mode == Mode::Http {
        for acl in fe.acls.iter().filter(|a| a.fetch.needs_payload()) {
            let message =
                format!("acl '{}' of frontend '{}' reads a TLS ClientHello, which needs mode tcp", acl.name, fe.name);
            diags.push(at(&fe.origin, Severity::Error, message, Some("route by SNI in a mode tcp frontend".into())));
        }
        return;
    }
    let keys = tcp.connection.iter().chain(&tcp.content).filter_map(|r| match &r.action {
        fulcrum_model::TcpAction::TrackSc { key, .. } if key.fetch.needs_request() => Some(key),
        _ => None,
    });
    for key in keys {
        let message =
            format!("a track-sc key of frontend '{}' (mode tcp) reads an HTTP request: {:?}", fe.name, key.fetch);
        diags.push(at(&fe.origin, Severity::Error, message, Some("in mode tcp: src, dst, ...".into())));
    }
    for acl in fe.acls.iter().filter(|a| a.fetch.needs_http()) {
        let message = format!("acl '{}' of frontend '{}' (mode tcp) needs an HTTP request", acl.name, fe.name);
        let hint = "in mode tcp: src, req.ssl_sni, req.ssl_hello_type";
        diags.push(at(&fe.origin, Severity::Error, message, Some(hint.into())));
    }
    if tcp.inspect_delay.is_none() && fe.acls.iter().any(|a| a.fetch.needs_payload()) {
        let message = format!(
            "frontend '{}' matches on the TLS ClientHello (req.ssl_sni) without 'tcp-request inspect-delay': \
             the first bytes are not waited for, so those ACLs rarely match",
            fe.name
        );
        diags.push(at(&fe.origin, Severity::Warning, message, Some("add e.g. 'tcp-request inspect-delay 5s'".into())));
    }
    let mut ignored = Vec::new();
    if fe.stats.is_some() {
        ignored.push("stats");
    }
    if fe.forwardfor.is_some() {
        ignored.push("option forwardfor");
    }
    if !fe.errorfiles.is_empty() {
        ignored.push("errorfile");
    }
    if !fe.redirects.is_empty() {
        ignored.push("redirect");
    }
    if !ignored.is_empty() {
        let message = format!("{} ignored in frontend '{}': it needs mode http", ignored.join(", "), fe.name);
        diags.push(at(&fe.origin, Severity::Warning, message, Some("add 'mode http' if it carries HTTP".into())));
    }
}

fn backend(be: &Backend, diags: &mut Vec<Diagnostic>) {
    // `stick` rules of a mode tcp backend have no HTTP message to read a key from.
    if be.mode == Mode::Tcp {
        for rule in be.stick.iter().filter(|r| r.sample.fetch.needs_request() || r.sample.fetch.needs_response()) {
            let message = format!(
                "a stick rule of backend '{}' (mode tcp) reads an HTTP message: {:?}",
                be.name, rule.sample.fetch
            );
            diags.push(at(&be.origin, Severity::Error, message, Some("in mode tcp, stick on src".into())));
        }
    }
    // Linear in the servers: a backend may have 100k of them.
    let mut seen: std::collections::HashMap<&str, &Server> = std::collections::HashMap::new();
    for server in &be.servers {
        let mut error =
            |message: String, hint: Option<String>| diags.push(at(&server.origin, Severity::Error, message, hint));
        let name = format!("server '{}' of backend '{}'", server.name, be.name);
        if let Some(first) = seen.get(server.name.as_str()) {
            error(format!("{name} is defined twice"), Some(format!("first defined at {}", place(&first.origin))));
        } else {
            seen.insert(&server.name, server);
        }
        if server.weight > 256 {
            error(
                format!("weight {} of {name} is out of range", server.weight),
                Some("weights go from 0 to 256".into()),
            );
        }
        if server.rise == 0 || server.fall == 0 {
            error(format!("rise and fall of {name} must be at least 1"), None);
        }
        if server.inter.is_zero() {
            error(format!("inter of {name} must be greater than 0"), None);
        }
        if server.addr.ip().is_unspecified() {
            error(format!("{name} has no destination address ({})", server.addr), None);
        }
        // Without a port, a `mode tcp` server is reached on the port the client connected to
        // (as in HAProxy and LVS fwmark services).
        if server.addr.port() == 0 && be.mode == Mode::Http {
            error(format!("{name} has port 0"), Some("give the port the server listens on".into()));
        }
        if server.cookie.is_some() && be.cookie.is_none() {
            let message = format!("cookie value of {name} has no effect: backend '{}' sets no 'cookie'", be.name);
            diags.push(at(
                &server.origin,
                Severity::Warning,
                message,
                Some("add e.g. 'cookie SERVERID insert indirect nocache'".into()),
            ));
        }
    }
    if be.cookie.is_some() {
        let mut values: std::collections::HashMap<&str, &Server> = std::collections::HashMap::new();
        for server in &be.servers {
            let Some(value) = &server.cookie else { continue };
            if let Some(first) = values.get(value.as_str()).copied().or_else(|| {
                values.insert(value, server);
                None
            }) {
                let message = format!("servers '{}' and '{}' share cookie value '{value}'", first.name, server.name);
                diags.push(at(
                    &server.origin,
                    Severity::Warning,
                    message,
                    Some("give each server its own value".into()),
                ));
            }
        }
    }
    if be.timeout_connect.is_zero() || be.timeout_server.is_zero() {
        let message = format!("timeouts connect and server of backend '{}' must be greater than 0", be.name);
        let hint = "HAProxy reads 0 as no timeout; fulcrum needs a limit, e.g. timeout connect 5s";
        diags.push(at(&be.origin, Severity::Error, message, Some(hint.into())));
    }
    if matches!(be.algorithm, Algorithm::First) && be.servers.iter().any(|s| s.maxconn == 0) {
        let message =
            format!("'balance first' in backend '{}' needs maxconn on its servers to move on to the next", be.name);
        diags.push(at(&be.origin, Severity::Warning, message, Some("add e.g. 'maxconn 100' to each server".into())));
    }
}
