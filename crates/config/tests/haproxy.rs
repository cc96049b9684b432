//! haproxy.cfg: HAProxy's semantics, and messages that name the line and the fix.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fulcrum_config::*;
use fulcrum_model::*;

fn load(text: &str) -> Result<Loaded, Vec<Diagnostic>> {
    load_str(text, Path::new("test.cfg"), &LoadOptions::default())
}

fn lenient(text: &str) -> Result<Loaded, Vec<Diagnostic>> {
    load_str(text, Path::new("test.cfg"), &LoadOptions { lenient: true, ..LoadOptions::default() })
}

fn ok(text: &str) -> Loaded {
    load(text).unwrap_or_else(|errors| panic!("does not load:\n{}", show(&errors)))
}

fn errors(text: &str) -> Vec<Diagnostic> {
    match load(text) {
        Ok(loaded) => panic!("loads, but should not (warnings:\n{})", show(&loaded.warnings)),
        Err(diags) => diags.into_iter().filter(|d| d.severity == Severity::Error).collect(),
    }
}

fn show(diags: &[Diagnostic]) -> String {
    diags.iter().map(|d| format!("  {d}\n")).collect()
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("socket address")
}

/// A fresh directory for files a test needs (errorfiles).
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fulcrum-config-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

const HEAD: &str = "defaults\n    mode http\n";

#[test]
fn every_error_of_a_file_with_line_and_hint() {
    let text = "\
global
    maxconn 10x
    daemonn
defaults
    mode http
    timeout conect 5s
    optoin httpchk
frontend web
    bind *:80
    acl is_api path_beg /api
    use_backend api if is_apii
    use_backend nope if is_api
    default_backend app
backend app
    balance roundrobbin
    server a 127.0.0.1:9001 weight 300
backend api
    server b 127.0.0.1
";
    let found = errors(text);
    let got: Vec<String> = found.iter().map(ToString::to_string).collect();
    let want = [
        "test.cfg:2: invalid maxconn '10x' (expected a whole number)",
        "test.cfg:3: unknown global keyword 'daemonn' (did you mean daemon?)",
        "test.cfg:6: unknown timeout 'conect' (did you mean connect?)",
        "test.cfg:7: unknown keyword 'optoin' in the defaults section (did you mean option?)",
        "test.cfg:11: unknown acl 'is_apii' in condition (did you mean is_api?)",
        "test.cfg:12: frontend 'web' uses backend 'nope', which is not defined",
        "test.cfg:15: unknown balance algorithm 'roundrobbin' (did you mean roundrobin?)",
        "test.cfg:16: weight 300 of server 'a' of backend 'app' is out of range (weights go from 0 to 256)",
        "test.cfg:18: server 'b' needs a port (e.g. 127.0.0.1:80)",
    ];
    assert_eq!(got, want);
}

#[test]
fn unsupported_directives_are_errors_or_lenient_warnings() {
    let text = format!(
        "{HEAD}frontend web\n    bind :80\n    http-request capture req.hdr(host) len 10 if {{ src 10.0.0.0/8 }}\n    option abortonclose\n    \
         acl c sc0_bytes_in_rate gt 10\n    use_backend app if c\n    default_backend app\n\
         backend app\n    server a 127.0.0.1:80 check agent-check agent-port 9999 weight 5\n"
    );
    let strict = errors(&text);
    assert_eq!(strict.iter().map(|e| e.line).collect::<Vec<_>>(), [5, 6, 7, 8, 11, 11]);
    assert_eq!(strict[0].message, "'http-request capture' is not supported yet");
    assert_eq!(strict[0].hint.as_deref(), Some("use --lenient to ignore it"));

    let loaded = lenient(&text).unwrap_or_else(|e| panic!("{}", show(&e)));
    assert_eq!(loaded.warnings.len(), 6, "{}", show(&loaded.warnings));
    assert!(loaded.warnings.iter().all(|w| w.message.ends_with("ignored (lenient mode)")));
    let fe = &loaded.model.frontends[0];
    assert!(fe.use_backends.is_empty(), "the rule on an unsupported acl is dropped");
    let server = &loaded.model.backends[0].servers[0];
    assert_eq!(server.weight, 5, "keywords after unsupported ones are still read");
}

#[test]
fn lenient_keeps_invalid_values_as_errors() {
    let text = format!(
        "{HEAD}frontend web\n    bind :80\n    default_backend app\nbackend app\n    balance roundrobbin\n    retries x\n    server a 127.0.0.1:80\n"
    );
    let diags = lenient(&text).expect_err("invalid values stay errors");
    assert_eq!(diags.iter().filter(|d| d.severity == Severity::Error).count(), 2);
    let tls = format!("{HEAD}frontend web\n    bind :443 ssl crt /x.pem\n    default_backend app\nbackend app\n    server a 127.0.0.1:80\n");
    assert!(lenient(&tls).is_err(), "TLS binds are never ignored");
    let health = "defaults\n    mode health\nfrontend web\n    bind :80\n    default_backend app\nbackend app\n    server a 127.0.0.1:80\n";
    let diags = lenient(health).expect_err("mode health is never ignored");
    assert_eq!(diags.len(), 1, "reported once, on the defaults line: {}", show(&diags));
    assert_eq!((diags[0].line, diags[0].message.as_str()), (2, "mode health is not supported yet"));
}

#[test]
fn missing_mode_is_tcp_in_haproxy() {
    let text = "frontend web\n    bind :80\n    default_backend app\nbackend app\n    server a 127.0.0.1:80\n";
    let loaded = ok(text);
    assert_eq!((loaded.model.frontends[0].mode, loaded.model.backends[0].mode), (Mode::Tcp, Mode::Tcp));
    assert!(loaded.warnings.is_empty(), "{}", show(&loaded.warnings));
    // HTTP-only settings in a tcp frontend are ignored, with a warning; an http frontend
    // cannot use a tcp backend; a tcp frontend's conditional routing is not there yet.
    let ignored = ok("frontend web\n    bind :80\n    option forwardfor\n    default_backend app\nbackend app\n    server a 127.0.0.1:80\n");
    assert_eq!(ignored.warnings[0].to_string(), "test.cfg:1: warning: option forwardfor ignored in frontend 'web': it needs mode http (add 'mode http' if it carries HTTP)");
    let mixed = errors(
        "frontend web\n    mode http\n    bind :80\n    default_backend app\nbackend app\n    server a 127.0.0.1:80\n",
    );
    assert_eq!(mixed[0].to_string(), "test.cfg:1: frontend 'web' (mode http) cannot use backend 'app' (mode tcp) (give both the same mode (backend 'app' is at test.cfg:5))");
    let routed = errors("frontend web\n    bind :80\n    acl a path_beg /x\n    use_backend app if a\n    default_backend app\nbackend app\n    server a 127.0.0.1:80\n");
    assert!(routed[0].message.contains("(mode tcp) needs an HTTP request"), "{}", routed[0]);
    // A tcp frontend routes on the client's address.
    ok("frontend web\n    bind :80\n    acl a src 10.0.0.0/8\n    use_backend app if a\n    default_backend app\nbackend app\n    server a 127.0.0.1:80\n");
}

#[test]
fn defaults_apply_to_the_sections_that_follow() {
    let loaded = ok("\
defaults
    mode http
    timeout connect 1s
    timeout client 11s
    option forwardfor
    default-server inter 3s fall 5
frontend one
    bind :8001
    default_backend a
backend a
    server s 127.0.0.1:9000 check
defaults
    mode http
    timeout connect 2s
frontend two
    bind :8002
    default_backend b
backend b
    server s 127.0.0.1:9000 check
defaults base
    mode http
    timeout server 7s
defaults
    mode http
backend c from base
    server s 127.0.0.1:9000
");
    let m = &loaded.model;
    let (a, b, c) = (m.backend("a").expect("a"), m.backend("b").expect("b"), m.backend("c").expect("c"));
    assert_eq!(a.timeout_connect, Duration::from_secs(1));
    assert_eq!(m.frontends[0].timeout_client, Duration::from_secs(11));
    assert_eq!(a.forwardfor, Some(ForwardFor::default()));
    assert_eq!((a.servers[0].inter, a.servers[0].fall), (Duration::from_secs(3), 5));
    // A new defaults section starts from scratch.
    assert_eq!(b.timeout_connect, Duration::from_secs(2));
    assert_eq!(m.frontends[1].timeout_client, Duration::from_secs(50));
    assert_eq!(b.forwardfor, None);
    assert_eq!((b.servers[0].inter, b.servers[0].fall), (Duration::from_secs(2), 3));
    // `from` picks a named defaults section.
    assert_eq!(c.timeout_server, Duration::from_secs(7));
    let err = errors(&format!("{HEAD}backend x from nosuch\n    server s 127.0.0.1:1\n"));
    assert!(
        err.iter().any(|e| e.line == 3 && e.message.contains("unknown defaults section 'nosuch'")),
        "{}",
        show(&err)
    );
}

#[test]
fn listen_is_a_frontend_and_a_backend() {
    let loaded = ok("defaults\n    mode http\nlisten web\n    bind 127.0.0.1:8080,[::1]:8080\n    bind :::8081\n    bind ipv6@:8082\n    balance leastconn\n    server a 127.0.0.1:9000\n");
    let m = &loaded.model;
    assert_eq!(m.frontends[0].default_backend.as_deref(), Some("web"));
    assert_eq!(
        m.frontends[0].binds,
        [addr("127.0.0.1:8080"), addr("[::1]:8080"), addr("[::]:8081"), addr("[::]:8082")]
    );
    assert_eq!(m.backend("web").expect("backend").algorithm, Algorithm::LeastConn);
}

#[test]
fn server_parameters() {
    let loaded = ok(&format!(
        "{HEAD}frontend f\n    bind 0.0.0.0:80\n    default_backend b\nbackend b\n    cookie SRV insert\n    \
         default-server maxconn 50 slowstart 10s\n    \
         server a 127.0.0.1:9001 check inter 1s fastinter 500ms downinter 5s rise 4 fall 6 weight 20 backup maxconn 10 maxqueue 7 \
         disabled observe layer7 error-limit 3 on-error mark-down cookie A port 9101 addr 127.0.0.2\n    \
         server b localhost:9002 no-check enabled\n"
    ));
    let b = loaded.model.backend("b").expect("backend");
    let a = &b.servers[0];
    assert!(a.check && a.backup && a.disabled);
    assert_eq!(
        (a.inter, a.fastinter, a.downinter),
        (Duration::from_secs(1), Some(Duration::from_millis(500)), Some(Duration::from_secs(5)))
    );
    assert_eq!((a.rise, a.fall, a.weight, a.maxconn, a.maxqueue, a.error_limit), (4, 6, 20, 10, 7, 3));
    assert_eq!((a.observe, a.on_error, a.cookie.as_deref()), (Some(Observe::Layer7), OnError::MarkDown, Some("A")));
    assert_eq!(a.check_addr, Some(addr("127.0.0.2:9101")));
    assert_eq!(a.slowstart, Some(Duration::from_secs(10)));
    let s = &b.servers[1];
    assert_eq!(s.addr, addr("127.0.0.1:9002"), "host names resolve at load time");
    assert_eq!((s.maxconn, s.check, s.disabled), (50, false, false));
}

#[test]
fn acls_conditions_and_anonymous_acls() {
    let loaded = ok(&format!(
        "{HEAD}frontend f\n    bind :80\n    acl api path_beg -i /api\n    acl api hdr(host) -i api.example.com\n    \
         acl local src 127.0.0.0/8 ::1\n    use_backend b if api !local or {{ path_end .php }}\n    \
         use_backend b unless METH_GET\n    use_backend b\n    default_backend b\nbackend b\n    server s 127.0.0.1:80\n"
    ));
    let fe = &loaded.model.frontends[0];
    let names: Vec<&str> = fe.acls.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["api", "api{2}", "local", "{path_end .php}", "METH_GET"]);
    assert_eq!(fe.acls[1].fetch, Fetch::Header("host".into()));
    assert_eq!(fe.acls[2].patterns, ["127.0.0.0/8", "::1/128"]);
    let first = &fe.use_backends[0].condition;
    let terms = |alt: &Vec<AclTerm>| {
        alt.iter().map(|t| format!("{}{}", if t.negate { "!" } else { "" }, t.acl)).collect::<Vec<_>>().join(" ")
    };
    let alts: Vec<String> = first.alternatives.iter().map(terms).collect();
    assert_eq!(alts, ["api !local", "api{2} !local", "{path_end .php}"]);
    assert!(fe.use_backends[1].condition.unless);
    assert_eq!(fe.use_backends[2].condition.alternatives, vec![Vec::<AclTerm>::new()]);
}

#[test]
fn health_checks() {
    let loaded = ok(&format!(
        "{HEAD}frontend f\n    bind :80\n    default_backend b\nbackend b\n    \
         option httpchk GET /check HTTP/1.1\\r\\nHost:\\ www.example.com\n    http-check expect ! rstatus ^5\n    \
         timeout check 3s\n    server s 127.0.0.1:80 check\nbackend c\n    option httpchk HEAD /\n    \
         http-check send meth GET uri /health ver HTTP/1.1 hdr Host example.org\n    http-check expect status 200-299,304\n    server s 127.0.0.1:80 check\n"
    ));
    let b = loaded.model.backend("b").expect("b");
    let check = b.http_check.as_ref().expect("httpchk");
    assert_eq!((check.method.as_str(), check.uri.as_str(), check.version.as_str()), ("GET", "/check", "HTTP/1.1"));
    assert_eq!(check.headers, [("Host".to_string(), "www.example.com".to_string())]);
    assert_eq!(check.expect, Some(Expect { negate: true, rule: ExpectRule::StatusRegex("^5".into()) }));
    assert_eq!(b.timeout_check, Some(Duration::from_secs(3)));
    let c = loaded.model.backend("c").expect("c").http_check.clone().expect("httpchk");
    assert_eq!((c.method.as_str(), c.uri.as_str(), c.version.as_str()), ("GET", "/health", "HTTP/1.1"));
    assert_eq!(c.headers, [("Host".to_string(), "example.org".to_string())]);
    assert_eq!(c.expect.map(|e| e.rule), Some(ExpectRule::Status(vec![(200, 299), (304, 304)])));
    let no_check = ok(&format!("{HEAD}frontend f\n    bind :80\n    default_backend b\nbackend b\n    http-check expect status 200\n    server s 127.0.0.1:80\n"));
    assert!(no_check.warnings.iter().any(|w| w.line == 7 && w.message.contains("without 'option httpchk'")));
}

#[test]
fn timeouts_go_to_their_side() {
    let loaded = ok(&format!(
        "{HEAD}    timeout http-request 4s\n    timeout queue 9s\nfrontend f\n    bind :80\n    timeout client 1m\n    \
         timeout http-keep-alive 2s\n    default_backend b\nbackend b\n    timeout tunnel 2h\n    timeout server 30s\n    \
         timeout client 5s\n    server s 127.0.0.1:80\n"
    ));
    let (fe, be) = (&loaded.model.frontends[0], &loaded.model.backends[0]);
    assert_eq!(
        (fe.timeout_client, fe.timeout_http_request, fe.timeout_http_keep_alive),
        (Duration::from_secs(60), Duration::from_secs(4), Duration::from_secs(2))
    );
    assert_eq!(
        (be.timeout_queue, be.timeout_tunnel, be.timeout_server),
        (Duration::from_secs(9), Some(Duration::from_secs(7200)), Duration::from_secs(30))
    );
    let w = loaded.warnings.iter().find(|w| w.line == 13).expect("warning for timeout client in a backend");
    assert_eq!(w.message, "'timeout client' is ignored in backend 'b': it only applies to frontends");
}

#[test]
fn options_and_legacy_spellings() {
    let loaded = ok(&format!(
        "{HEAD}    option httpclose\nfrontend f\n    bind :80\n    no option httpclose\n    option forwardfor except 127.0.0.0/8 header X-Real-IP if-none\n    \
         default_backend b\n    maxconn 500\n    option httplog\n    no log\nbackend b\n    option forceclose\n    redispatch\n    \
         option allbackups\n    retries 5\n    http-reuse always\n    server s 127.0.0.1:80\n"
    ));
    let (fe, be) = (&loaded.model.frontends[0], &loaded.model.backends[0]);
    assert_eq!(fe.conn_mode, ConnMode::KeepAlive);
    assert_eq!(
        fe.forwardfor,
        Some(ForwardFor { header: "X-Real-IP".into(), if_none: true, except: Some("127.0.0.0/8".into()) })
    );
    assert_eq!(fe.maxconn, Some(500));
    assert!(!fe.httplog, "'no log' wins over 'option httplog'");
    assert_eq!(be.conn_mode, ConnMode::Close);
    assert!(be.redispatch && be.allbackups);
    assert_eq!((be.retries, be.http_reuse), (5, HttpReuse::Always));
    let lines: Vec<usize> = loaded.warnings.iter().map(|w| w.line).collect();
    assert_eq!(lines, [13, 14], "{}", show(&loaded.warnings));
    assert_eq!(loaded.warnings[1].hint.as_deref(), Some("write 'option redispatch'"));
}

#[test]
fn stats_settings() {
    let loaded = ok(&format!(
        "{HEAD}frontend f\n    bind :80\n    default_backend b\n    stats uri /haproxy\n    stats realm \"Haproxy Statistics\"\n    \
         stats auth admin:s3cr3t\n    stats auth 'ops:a b'\n    stats show-node lb1\n    stats admin if LOCALHOST\n\
         listen s\n    bind :81\n    stats enable\n    stats admin if TRUE\nbackend b\n    server s 127.0.0.1:80\n"
    ));
    let stats = loaded.model.frontends[0].stats.clone().expect("stats");
    assert_eq!(stats.uri, "/haproxy");
    assert_eq!(stats.realm.as_deref(), Some("Haproxy Statistics"));
    assert_eq!(stats.auth, [("admin".into(), "s3cr3t".into()), ("ops".into(), "a b".into())]);
    assert_eq!(stats.show_node.as_deref(), Some("lb1"));
    assert!(!stats.admin);
    let cond = stats.admin_if.expect("admin condition");
    assert_eq!(cond.alternatives[0][0].acl, "LOCALHOST");
    assert!(loaded.model.frontends[0].acls.iter().any(|a| a.name == "LOCALHOST" && a.fetch == Fetch::Src));
    let plain = loaded.model.frontends[1].stats.clone().expect("stats");
    assert_eq!(plain.uri, "/haproxy?stats");
    assert!(plain.admin && plain.admin_if.is_none());
}

#[test]
fn errorfiles_are_read_at_load_time() {
    let dir = temp_dir("errorfiles");
    std::fs::write(dir.join("503.http"), "HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/html\r\n\r\nsorry\n")
        .expect("write");
    std::fs::write(dir.join("bad.http"), "<html>not a response</html>").expect("write");
    let cfg = dir.join("haproxy.cfg");
    let text = format!(
        "{HEAD}    errorfile 503 503.http\nfrontend f\n    bind :80\n    default_backend b\nbackend b\n    server s 127.0.0.1:80\n"
    );
    std::fs::write(&cfg, &text).expect("write");
    let loaded = load_files(std::slice::from_ref(&cfg), &LoadOptions::default()).expect("loads");
    let page = &loaded.model.frontends[0].errorfiles[&503];
    assert_eq!(page.path, dir.join("503.http"));
    assert!(page.content.ends_with(b"sorry\n"));
    assert_eq!(loaded.model.backends[0].errorfiles[&503], *page);

    let broken = text.replace(
        "errorfile 503 503.http",
        "errorfile 503 missing.http\n    errorfile 502 bad.http\n    errorfile 999 bad.http",
    );
    std::fs::write(&cfg, broken).expect("write");
    let errors = load_files(&[cfg], &LoadOptions::default()).expect_err("missing file");
    assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), [3, 4, 5]);
    assert!(
        errors[0].message.starts_with("cannot read '") && errors[0].message.contains("missing.http"),
        "{}",
        errors[0]
    );
    assert!(errors[1].message.contains("not an HTTP response"));
    assert!(errors[2].message.contains("999"));
}

#[test]
fn bind_checks_and_references() {
    let found = errors(&format!(
        "{HEAD}frontend a\n    bind :80\n    default_backend appp\nfrontend b\n    bind 0.0.0.0:80\n    default_backend app\n\
         frontend c\n    bind :81\nbackend app\n    server s 127.0.0.1:80\n"
    ));
    let got: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "test.cfg:5: frontend 'a' uses backend 'appp', which is not defined (did you mean app?)",
            "test.cfg:7: address 0.0.0.0:80 is bound twice (frontend 'a' and frontend 'b') (first bound at test.cfg:4)",
            "test.cfg:9: frontend 'c' has no default_backend and no use_backend (add 'default_backend NAME')",
        ]
    );
    let none = errors("defaults\n    mode http\nbackend app\n    server s 127.0.0.1:80\n");
    assert_eq!(
        none[0].to_string(),
        "test.cfg: no frontend binds anything (add a frontend (or listen section) with e.g. 'bind *:80')"
    );
}

#[test]
fn misspelt_section_is_reported_once() {
    let found = errors(&format!(
        "{HEAD}fronted web\n    bind :80\n    default_backend b\nbackend b\n    server s 127.0.0.1:80\n"
    ));
    let want =
        "test.cfg:3: unknown section 'fronted' (did you mean frontend? the lines up to the next section are skipped)";
    assert!(found.iter().any(|e| e.to_string() == want), "{}", show(&found));
    assert!(found.iter().all(|e| e.line != 4 && e.line != 5));
}

#[test]
fn stick_tables_and_cookies() {
    let text = format!(
        "{HEAD}frontend f\n    bind :80\n    default_backend b\nbackend b\n    stick-table type ip size 200k expire 30m\n    \
         stick on src\n    server s 127.0.0.1:80\nbackend c\n    stick on hdr(x-user) table b if {{ path_beg /api }}\n    \
         stick match req.cook(SID)\n    cookie JSESSIONID prefix nocache\n    server s 127.0.0.1:80\n"
    );
    let found = errors(&text);
    assert_eq!(found.len(), 1, "{}", show(&found));
    assert_eq!(found[0].line, 12);
    assert_eq!(found[0].message, "a 'stick' rule without 'table' needs a stick-table in the same backend");
    let loaded = lenient(&text.replace("    stick match req.cook(SID)\n", "")).expect("loads");
    let b = loaded.model.backend("b").expect("b");
    assert_eq!(b.table, Some(StickTable::ip(200 * 1024, Duration::from_secs(1800))));
    assert!(matches!(b.stick.as_slice(), [r] if r.kind == fulcrum_model::StickKind::On
        && r.sample.fetch == fulcrum_model::rules::SampleFetch::Src && r.table.is_none()));
    let c = loaded.model.backend("c").expect("c");
    assert!(matches!(c.stick.as_slice(), [r] if r.kind == fulcrum_model::StickKind::On
        && r.table.as_deref() == Some("b") && r.condition.is_some()));
    assert_eq!(
        c.cookie.as_ref().map(|c| (c.name.as_str(), c.mode, c.nocache)),
        Some(("JSESSIONID", CookieMode::Prefix, true))
    );
    // Every kind, each reading what its direction has.
    let all = ok(&format!(
        "{HEAD}listen f\n    bind :80\nbackend b\n    stick-table type string len 32 size 1k\n    stick match req.cook(JSESSIONID)\n    \
         stick store-request req.cook(JSESSIONID)\n    stick store-response res.cook(JSESSIONID)\n    server s 127.0.0.1:80 id 7\n    \
         server t 127.0.0.1:81\n"
    ));
    let b = all.model.backend("b").expect("b");
    let kinds: Vec<StickKind> = b.stick.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [StickKind::Match, StickKind::StoreRequest, StickKind::StoreResponse]);
    assert_eq!(b.server_ids(), [7, 1]);
    let t = "    stick-table type string size 1k\n";
    for (line, needle) in [
        ("stick store-response req.cook(x)", "response rules do not have"),
        ("stick on res.cook(x)", "request rules do not have"),
        ("stick on src table", "takes: PATTERN [table NAME]"),
        ("stick keep src", "unknown stick rule"),
        ("stick on src table nosuch", "'nosuch', which is not declared"),
        ("server u 127.0.0.1:82 id 3\n    server v 127.0.0.1:83 id 3", "id 3 is already server 'u''s"),
        ("server u 127.0.0.1:82 id 0", "from 1 up"),
    ] {
        let found = errors(&format!("{HEAD}listen f\n    bind :80\nbackend b\n{t}    {line}\n"));
        assert!(found.iter().any(|d| d.message.contains(needle)), "{line}: {}", show(&found));
    }
}

#[test]
fn keepalived_is_read_and_unknown_formats_are_refused() {
    // A keepalived.conf is read as such whatever its name (its own tests are in keepalived.rs).
    let keepalived = "global_defs {\n   router_id LVS_1\n}\nvrrp_instance VI_1 {\n    state MASTER\n}\n";
    let found = load_str(keepalived, Path::new("haproxy.cfg"), &LoadOptions::default()).expect_err("incomplete");
    assert_eq!(found[0].to_string(), "haproxy.cfg:4: vrrp_instance 'VI_1' has no virtual_router_id (add e.g. virtual_router_id 51 (1 to 255, the same on every node of the pair))");
    let unknown = load_str("hello world\n", Path::new("x.conf"), &LoadOptions::default()).expect_err("refused");
    assert!(unknown[0].message.contains("cannot tell"));
    let unreadable =
        load_files(&[PathBuf::from("/nonexistent/fulcrum.cfg")], &LoadOptions::default()).expect_err("refused");
    assert!(unreadable[0].to_string().starts_with("/nonexistent/fulcrum.cfg: cannot read configuration file:"));
}

#[test]
fn quoting_errors_and_environment() {
    let found = errors(&format!(
        "{HEAD}frontend f\n    bind \":80\n    default_backend b\nbackend b\n    server s 127.0.0.1:80\n"
    ));
    assert!(found.iter().any(|e| e.line == 4 && e.message.starts_with("unmatched quote")));
}

#[test]
fn never_panics_on_garbage() {
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let words = [
        "global",
        "defaults",
        "frontend",
        "backend",
        "listen",
        "bind",
        "server",
        "acl",
        "use_backend",
        "if",
        "{",
        "}",
        "!",
        "or",
        "balance",
        "option",
        "httpchk",
        "timeout",
        "stats",
        "cookie",
        "stick",
        "on",
        "src",
        "\"",
        "'",
        "\\",
        "*:80",
        ":",
        "[::]:1",
        "path_beg",
        "hdr(",
        "random(",
        "http-check",
        "expect",
        "status",
        "999-1",
        "mode",
        "http",
        "tcp",
        "default-server",
        "errorfile",
        "503",
        "default_backend",
        "x",
        "-i",
        "-m",
        "=",
        "[",
        "]",
    ];
    for round in 0..300 {
        let mut text = String::new();
        for _ in 0..(next() % 40) {
            for _ in 0..(next() % 8) {
                let w = words[(next() % words.len() as u64) as usize];
                text.push_str(w);
                text.push(if next() % 5 == 0 { '\t' } else { ' ' });
            }
            text.push('\n');
        }
        let _ = load(&text);
        let _ = lenient(&text);
        let _ = load_str(&text, Path::new("x.toml"), &LoadOptions::default());
        let bytes: Vec<u8> = (0..(next() % 300)).map(|_| (next() % 256) as u8).collect();
        let raw = String::from_utf8_lossy(&bytes);
        let _ = load(&raw);
        let _ = load_str(&raw, Path::new("x.toml"), &LoadOptions::default());
        let _ = load_str(&raw, Path::new(&format!("x{round}")), &LoadOptions::default());
    }
    let long = format!(
        "{HEAD}frontend f\n    {} {}\n    acl a path {}\n",
        "k".repeat(1_000_000),
        "v".repeat(100_000),
        "{ ".repeat(50_000)
    );
    assert!(load(&long).is_err());
    let deep = format!(
        "{HEAD}frontend f\n    bind :80\n    use_backend b if {}\nbackend b\n    server s 127.0.0.1:1\n",
        "x or ".repeat(20_000)
    );
    assert!(load(&deep).is_err());
}

#[test]
fn defaults_carry_over_to_the_next_file() {
    let dir = temp_dir("confd");
    let defaults = dir.join("00-defaults.cfg");
    let web = dir.join("10-web.cfg");
    std::fs::write(
        &defaults,
        "global\n    maxconn 100\ndefaults\n    mode http\n    timeout connect 3s\n    default_backend app\n",
    )
    .expect("write");
    std::fs::write(&web, "frontend web\n    bind :80\nbackend app\n    server s 127.0.0.1:80\n").expect("write");
    let loaded = load_files(&[defaults.clone(), web.clone()], &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{}", show(&e)));
    assert_eq!(loaded.model.backends[0].timeout_connect, Duration::from_secs(3));
    assert_eq!(loaded.model.frontends[0].default_backend.as_deref(), Some("app"));
    // A mode the proxy does not run, in the first file, is reported there, once.
    std::fs::write(&defaults, "defaults\n    mode log\n    default_backend nope\n").expect("write");
    let errors = load_files(&[defaults.clone(), web], &LoadOptions::default()).expect_err("mode log");
    let got: Vec<(PathBuf, usize)> = errors.iter().map(|e| (e.file.clone(), e.line)).collect();
    assert_eq!(got, [(defaults.clone(), 2), (defaults, 3)], "{}", show(&errors));
}

#[test]
fn debian_default_global_and_defaults_load() {
    let text = "global
\tlog /dev/log\tlocal0
\tlog /dev/log\tlocal1 notice
\tchroot /var/lib/haproxy
\tstats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners
\tstats timeout 30s
\tuser haproxy
\tgroup haproxy
\tdaemon

\t# Default SSL material locations
\tca-base /etc/ssl/certs
\tcrt-base /etc/ssl/private

\tssl-default-bind-ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256
\tssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384
\tssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets

defaults
\tlog\tglobal
\tmode\thttp
\toption\thttplog
\toption\tdontlognull
        timeout connect 5000
        timeout client  50000
        timeout server  50000

frontend main
\tbind *:80
\tdefault_backend app
backend app
\tserver app1 127.0.0.1:8080 check
";
    let loaded = ok(text);
    assert!(loaded.warnings.iter().all(|w| w.severity == Severity::Warning));
    assert_eq!(loaded.warnings.len(), 6, "{}", show(&loaded.warnings));
    assert!(loaded.model.frontends[0].httplog);
    assert_eq!(loaded.model.global.control_socket, Some("/run/haproxy/admin.sock".into()));
}

#[test]
fn buffer_tuning_sets_the_head_limits() {
    let body = "frontend fe\n    bind 127.0.0.1:1\n    default_backend be\nbackend be\n    server a 127.0.0.1:2\n";
    let defaults = ok(&format!("{HEAD}{body}")).model.global;
    assert_eq!((defaults.max_head(), defaults.max_headers), (15_360, 101));
    let tuned = ok(&format!(
        "global\n    tune.bufsize 32768\n    tune.maxrewrite 2048\n    tune.http.maxhdr 200\n{HEAD}{body}"
    ))
    .model
    .global;
    assert_eq!((tuned.bufsize, tuned.maxrewrite, tuned.max_head(), tuned.max_headers), (32_768, 2048, 30_720, 200));
    let shown = |text: &str| errors(text).iter().map(|d| d.to_string()).collect::<Vec<_>>();
    assert_eq!(
        shown(&format!("global\n    tune.bufsize 512\n{HEAD}{body}")),
        ["test.cfg:2: tune.bufsize 512 is too small (use at least 1024 (HAProxy's default is 16384))"]
    );
    assert_eq!(
        shown(&format!("global\n    tune.http.maxhdr 0\n{HEAD}{body}")),
        ["test.cfg:2: tune.http.maxhdr must be from 1 to 32767"]
    );
    let rewrite = shown(&format!("global\n    tune.bufsize 4096\n    tune.maxrewrite 3000\n{HEAD}{body}"));
    assert!(rewrite[0].contains("tune.maxrewrite 3000 leaves less than half of tune.bufsize 4096"), "{rewrite:?}");
    // Other tune.* settings: the TLS session cache's size is read, other TLS ones are ignored
    // with a warning, the rest not supported yet.
    let ssl = ok(&format!("global\n    tune.ssl.cachesize 100\n    tune.ssl.lifetime 300\n{HEAD}{body}"));
    assert_eq!(ssl.model.global.tls_cache_size, 100);
    assert!(ssl.warnings[0].message.contains("'tune.ssl.lifetime' is ignored"), "{:?}", ssl.warnings);
    let h2 = ok(&format!(
        "global\n    tune.h2.max-concurrent-streams 10\n    tune.h2.initial-window-size 1048576\n{HEAD}{body}"
    ));
    assert_eq!((h2.model.global.h2.max_concurrent_streams, h2.model.global.h2.initial_window_size), (10, 1_048_576));
    assert_eq!(shown(&format!("global\n    tune.h2.max-frame-size 1000\n{HEAD}{body}")).len(), 1);
    assert_eq!(shown(&format!("global\n    tune.vars.global-max-size 10\n{HEAD}{body}")).len(), 1);
}

#[test]
fn conditional_blocks_choose_lines() {
    // PATH is set in every environment the tests run in; FULCRUM_SURELY_UNSET is not.
    let text = "\
global
.if defined(FULCRUM_SURELY_UNSET)
    maxconn 1
.elif feature(THREAD) && version_atleast(2.4) && !version_before(2.6)
    maxconn 2
    .if streq(\"a\",a)
    nbthread 3
    .else
    nbthread 4
    .endif
.else
    maxconn 5
.endif
.if 0
    this line is not read, nor checked
    .if no_such_predicate(x)
    .endif
.endif
.notice \"notice text\"
.warning \"warned\"
defaults
    mode http
frontend web
    bind 127.0.0.1:8080
    default_backend app
backend app
    server s1 127.0.0.1:9000
";
    let loaded = ok(text);
    assert_eq!(loaded.model.global.maxconn, 2);
    assert_eq!(loaded.model.global.nbthread, Some(3));
    let said: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert!(said.contains(&"test.cfg:19: notice: notice text".to_string()), "{said:?}");
    assert!(said.contains(&"test.cfg:20: warning: warned".to_string()), "{said:?}");
}

#[test]
fn conditional_blocks_refuse_what_haproxy_refuses() {
    let base = "defaults\n    mode http\nfrontend web\n    bind 127.0.0.1:8080\n    default_backend app\nbackend app\n    server s1 127.0.0.1:9000\n";
    let first = |text: &str| errors(&format!("{base}{text}"))[0].to_string();
    assert_eq!(first(".endif\n"), "test.cfg:8: '.endif' without a matching '.if'");
    assert_eq!(
        first(".if 1\n.else\n.else\n.endif\n"),
        "test.cfg:10: '.else' after '.else' in the block opened at line 8"
    );
    assert_eq!(
        first(".if 1\n.else\n.elif 1\n.endif\n"),
        "test.cfg:10: '.elif' after '.else' in the block opened at line 8"
    );
    assert_eq!(
        first(".if 1\n    maxconn 3\n"),
        "test.cfg:9: '.if' at line 8 has no matching '.endif' before the end of the file (add the missing '.endif')"
    );
    assert!(first(".if nosuch(1)\n.endif\n").starts_with("test.cfg:8: .if: unknown predicate 'nosuch' (predicates:"));
    assert!(first(".if yes\n.endif\n").starts_with("test.cfg:8: .if: unparsable conditional expression near 'yes'"));
    assert_eq!(first(".alert \"stop here\"\n"), "test.cfg:8: stop here");
    assert_eq!(first(".iff 1\n"), "test.cfg:8: unknown directive '.iff' (did you mean .if?)");
    // An alert in a branch not taken says nothing.
    ok(&format!("{base}.if 0\n.alert \"no\"\n.endif\n"));
}

#[test]
fn tcp_request_rules_and_sni_acls() {
    let base = "defaults\n    mode tcp\nfrontend tls\n    bind :443\n";
    let tail = "    default_backend b\nbackend b\n    server s 127.0.0.1:8443\n";
    let loaded = ok(&format!(
        "{base}    tcp-request inspect-delay 5s\n    tcp-request connection reject if {{ src 10.0.0.0/8 }}\n    \
         tcp-request content accept if {{ req_ssl_hello_type 1 }}\n    use_backend b if {{ req.ssl_sni -i -m end .example.com }}\n{tail}"
    ));
    let fe = &loaded.model.frontends[0];
    assert_eq!(fe.tcp_request.inspect_delay, Some(Duration::from_secs(5)));
    assert_eq!((fe.tcp_request.connection.len(), fe.tcp_request.content.len()), (1, 1));
    assert_eq!(fe.tcp_request.connection[0].action, TcpAction::Reject);
    assert_eq!(fe.tcp_request.content[0].action, TcpAction::Accept);
    assert!(fe.acls.iter().any(|a| a.fetch == Fetch::ReqSslSni && a.kind == MatchKind::Suffix && a.ignore_case));
    assert!(loaded.warnings.is_empty(), "{}", show(&loaded.warnings));
    // Without an inspect delay, an SNI rule rarely matches: said at load.
    let lazy = ok(&format!("{base}    use_backend b if {{ req_ssl_sni -i a.example }}\n{tail}"));
    assert!(
        lazy.warnings.iter().any(|w| w.message.contains("without 'tcp-request inspect-delay'")),
        "{}",
        show(&lazy.warnings)
    );
    let first = |text: String| errors(&text)[0].to_string();
    assert!(first(format!("{base}    tcp-request content track-sc0 src\n{tail}"))
        .contains("'tls' uses the stick-table 'tls', which is not declared"));
    assert!(first(format!("{base}    tcp-request connection track-sc0 req.hdr(host)\n{tail}"))
        .contains("connection rules do not have"));
    assert!(first(format!("{base}    tcp-request connection silent-drop\n{tail}"))
        .contains("'tcp-request connection silent-drop' is not supported yet"));
    assert!(first(format!("{base}    tcp-request contnet accept\n{tail}"))
        .contains("unknown tcp-request rule set 'contnet' (did you mean content?)"));
    assert!(first(format!("{base}    use_backend b if {{ path_beg /api }}\n{tail}"))
        .contains("(mode tcp) needs an HTTP request"));
    // In mode http too, with stick counters.
    let http = "defaults\n    mode http\nfrontend web\n    bind :80\n    stick-table type ip size 1k store conn_cur,conn_rate(10s),sess_cnt\n    \
                tcp-request connection track-sc1 src\n    tcp-request connection reject if { sc1_conn_cur gt 10 }\n    \
                tcp-request content sc-inc-gpc0(1) if { path /x }\n";
    let web = ok(&format!("{http}{tail}"));
    let fe = &web.model.frontends[0];
    assert!(matches!(fe.tcp_request.connection[0].action, TcpAction::TrackSc { slot: 1, .. }));
    assert_eq!(fe.tcp_request.content[0].action, TcpAction::ScIncGpc { slot: 1, gpc: 0 });
}

#[test]
fn tcp_check_rules_and_protocol_checks() {
    let be = |body: &str| {
        format!("defaults\n    mode tcp\nfrontend f\n    bind :6379\n    default_backend b\nbackend b\n{body}    server s 127.0.0.1:6380 check\n")
    };
    let loaded = ok(&be("    option tcp-check\n    tcp-check connect port 6380\n    tcp-check send PING\\r\\n\n    tcp-check send-binary 2a310d0a\n    tcp-check expect min-recv 5 ! rstring ^-ERR\n"));
    match &loaded.model.backends[0].tcp_check {
        Some(TcpCheck::Rules(rules)) => {
            assert_eq!(rules.len(), 4);
            assert_eq!(rules[1], TcpCheckRule::Send { data: b"PING\r\n".to_vec(), comment: None });
            assert_eq!(rules[2], TcpCheckRule::Send { data: b"*1\r\n".to_vec(), comment: None });
            assert!(
                matches!(&rules[3], TcpCheckRule::Expect { negate: true, min_recv: Some(5), pattern: TcpExpect::Rstring(re), .. } if re == "^-ERR")
            );
        }
        other => panic!("{other:?}"),
    }
    // `connect ssl sni NAME`: TLS with the server's settings (verification off here, as the
    // server has no CA file), presenting NAME.
    let tls = ok(&format!(
        "global\n    ssl-server-verify none\n{}",
        be("    option tcp-check\n    tcp-check connect ssl sni redis.example\n")
    ));
    match &tls.model.backends[0].tcp_check {
        Some(TcpCheck::Rules(rules)) => assert!(
            matches!(&rules[0], TcpCheckRule::Connect { ssl: true, sni: Some(n), .. } if n == "redis.example"),
            "{rules:?}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(tls.model.backends[0].servers[0].tls.check);
    // Without `ssl-server-verify none`, a server with no CA file cannot verify: an error.
    assert!(errors(&be("    option tcp-check\n    tcp-check connect ssl\n"))[0].message.contains("verify none"));
    let mysql = ok(&be("    option mysql-check user haproxy pre-41\n"));
    assert_eq!(
        mysql.model.backends[0].tcp_check,
        Some(TcpCheck::Mysql { user: Some("haproxy".into()), post41: false })
    );
    let smtp = ok(&be("    option smtpchk EHLO mail.example.com\n"));
    assert_eq!(smtp.model.backends[0].tcp_check, Some(TcpCheck::Smtp { command: "EHLO mail.example.com".into() }));
    // The last check option wins, as in HAProxy.
    let last = ok(&be("    option httpchk GET /\n    option redis-check\n"));
    assert_eq!(
        (last.model.backends[0].tcp_check.clone(), last.model.backends[0].http_check.is_none()),
        (Some(TcpCheck::Redis), true)
    );
    let message = |body: &str| errors(&be(body)).first().map(|d| d.message.clone()).unwrap_or_default();
    assert_eq!(message("    tcp-check send-binary +a+b\n"), "an hex digit is expected (found '+')");
    assert_eq!(message("    tcp-check send-binary abc\n"), "an even number of hex digit is expected");
    assert!(message("    tcp-check send \\x4\n").starts_with("invalid escape '\\x4"));
    assert_eq!(message("    option pgsql-check\n"), "'option pgsql-check' expects 'user <username>' as argument");
    assert_eq!(message("    tcp-check expect strng +PONG\n"), "unknown tcp-check expect match 'strng'");
}

#[test]
fn peers_sections() {
    let text = format!(
        "global\n    localpeer lb1\n{HEAD}peers mesh\n    peer lb1 127.0.0.1:10001\n    peer lb2 127.0.0.2:10001\n    \
         table hits type ip size 1k expire 1m store http_req_cnt\nfrontend f\n    bind :80\n    \
         http-request track-sc0 src table mesh/hits\n    default_backend b\nbackend b\n    \
         stick-table type ip size 1k expire 1h peers mesh\n    stick on src\n    server s 127.0.0.1:80\n"
    );
    let loaded = ok(&text);
    let m = &loaded.model;
    assert_eq!(m.global.local_peer.as_deref(), Some("lb1"));
    let p = &m.peers[0];
    assert_eq!((p.name.as_str(), p.peers.len(), p.tables.len()), ("mesh", 2, 1));
    assert_eq!(p.listen_addr("lb1"), Some("127.0.0.1:10001".parse().expect("addr")));
    assert_eq!(p.listen_addr("nobody"), None);
    assert_eq!(p.tables[0].1.peers.as_deref(), Some("mesh"));
    assert_eq!(m.backend("b").and_then(|b| b.table.as_ref()).and_then(|t| t.peers.as_deref()), Some("mesh"));
    // The new style: bind, and the local peer's server without an address.
    let new = ok(&format!(
        "{HEAD}peers mesh\n    bind 127.0.0.1:10002\n    server lb1\n    server lb2 127.0.0.2:10002\nlisten l\n    bind :80\n    server s 127.0.0.1:80\n"
    ));
    assert_eq!(new.model.peers[0].listen_addr("lb1"), Some("127.0.0.1:10002".parse().expect("addr")));
    // -L wins over localpeer.
    let opts = LoadOptions { local_peer: Some("lb2".into()), ..LoadOptions::default() };
    let over = load_str(&text, Path::new("test.cfg"), &opts).expect("loads");
    assert_eq!(over.model.global.local_peer.as_deref(), Some("lb2"));
    let listen = "listen l\n    bind :80\n    server s 127.0.0.1:80\n";
    for (section, needle) in [
        ("peers mesh\n    peer lb1 127.0.0.1:1\n    bind 127.0.0.1:2\n", "cannot be mixed"),
        ("peers mesh\n    peer lb1 127.0.0.1:1\n    peer lb1 127.0.0.2:1\n", "already defined"),
        ("peers mesh\n    peer lb1 127.0.0.1\n", "needs a port"),
        ("peers mesh\n    peer lb1 127.0.0.1:1 ssl\n", "'ssl' between peers is not supported yet"),
        ("peers mesh\n    peer lb1 127.0.0.1:1\n    shards 2\n", "unknown peers keyword"),
        ("peers mesh\n", "has no peer"),
        ("peers\n", "'peers' needs one name"),
        ("peers mesh\n    peer lb1 127.0.0.1:1\nbackend x\n    stick-table type ip size 1k peers other\n", "'other', which is not defined"),
        ("peers mesh\n    peer lb1 127.0.0.1:1\nbackend x\n    stick match src table mesh/nope\n    server s 127.0.0.1:80\n", "'mesh/nope', which is not declared"),
    ] {
        let found = errors(&format!("{HEAD}{section}{listen}"));
        assert!(found.iter().any(|d| d.message.contains(needle)), "{section}: {}", show(&found));
    }
}

#[test]
fn userlists() {
    let listen = "listen l\n    bind :80\n    acl ok http_auth(admins)\n    http-request auth if !ok\n    server s 127.0.0.1:80\n";
    let text = format!(
        "userlist admins\n    group ops users alice\n    user alice password $6$salt$abc\n    user bob insecure-password pw groups ops\n{HEAD}{listen}"
    );
    let loaded = ok(&text);
    let list = &loaded.model.userlists[0];
    assert_eq!(list.user("alice").map(|u| u.groups.clone()), Some(vec!["ops".to_string()]));
    assert_eq!(list.user("bob").map(|u| u.password.clone()), Some(Password::Plain("pw".into())));
    for (section, needle) in [
        ("userlist admins\n    user alice password $y$j9T$abc\n", "cannot check yet"),
        ("userlist admins\n    user alice password $6$x$y groups nope\n", "does not define"),
        ("userlist admins\n    group ops users zed\n    user alice insecure-password a\n", "who is not defined"),
        ("userlist admins\n    user alice\n", "has no password"),
        ("userlist other\n    user alice insecure-password a\n", "userlist 'admins', which is not defined"),
    ] {
        let found = errors(&format!("{section}{HEAD}{listen}"));
        assert!(found.iter().any(|d| d.message.contains(needle)), "{section}: {}", show(&found));
    }
}
