//! `http-request` and `http-response` rules, checked against HAProxy itself: the same
//! haproxy.cfg runs in HAProxy 2.6 and in fulcrum in front of the same origin, the same
//! requests go to both (curl, over HTTP/1.1 and, for fulcrum, HTTP/2 too), and what the origin
//! saw and what the client got must be the same.
mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::{free_addr, temp_dir, Fulcrum};
use fulcrum_testkit::Origin;

const DEFAULTS: &str =
    "defaults\n    mode http\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s";

/// A map of hosts and a pattern file, written once for the comparison test.
fn rule_files(dir: &std::path::Path) -> (String, String) {
    let map = dir.join("hosts.map");
    std::fs::write(&map, "# host -> tier\nexample.com gold\nwww.example.org   silver tier\n\nexample bronze-prefix\n")
        .expect("map");
    std::fs::write(dir.join("nets.map"), "10.0.0.0/8 internal\n127.0.0.0/8 loopback\n127.0.0.1 me\n").expect("map");
    std::fs::write(dir.join("route.map"), "example.com st\nwww.example.org gone\nnosuch.example nosuch\n")
        .expect("map");
    let pats = dir.join("blocked.lst");
    std::fs::write(&pats, "# blocked paths\n/blocked\n  /secret  \n").expect("patterns");
    (map.display().to_string(), pats.display().to_string())
}

fn rules_cfg(bind: SocketAddr, h2: SocketAddr, origin: SocketAddr, (map, pats): &(String, String)) -> String {
    let nets = std::path::Path::new(map).with_file_name("nets.map").display().to_string();
    let route = std::path::Path::new(map).with_file_name("route.map").display().to_string();
    format!(
        r#"{DEFAULTS}
frontend fe
    bind {bind}
    bind {h2} proto h2
    monitor-uri /healthz
    monitor fail if {{ hdr(x-down) 1 }}
    acl admin path_beg /admin
    http-request deny deny_status 403 if admin
    http-request deny deny_status 429 if {{ hdr(x-flood) 1 }}
    http-request return status 200 content-type text/plain lf-string "pong %[req.hdr(host),lower]" if {{ path /ping }}
    http-request redirect prefix https://www.example.com code 301 if {{ path_beg /old }}
    http-request allow if {{ path /allowed }}
    http-request set-header X-Forwarded-Proto http
    http-request add-header X-Client %[src]
    http-request set-header X-Host %[req.hdr(host),lower,field(1,:)]
    http-request set-header X-Agent-B64 %[req.hdr(user-agent),base64]
    http-request del-header X-Secret
    http-request set-var(txn.path) path
    http-request set-header X-Path-Len %[var(txn.path),length]
    http-request set-header X-Mask %[src,ipmask(16)]
    http-request set-header X-Words "%[str(a/b//c),word(2,/)] %[str(a/b//c),field(3,/)] 100%%"
    http-request set-header X-Hashes "%[str(abc),sdbm] %[str(abc),djb2] %[str(abc),crc32] %[str(abc),hex]"
    http-request set-header X-Conv "%[str(abcdef),bytes(1,2)] %[int(5),add(3),mul(2)] %[int(7),div(2)] %[path,regsub(/,_,g)] %[str(QUIET),lower,upper]"
    http-request set-header X-B64 %[str(aGVsbG8=),b64dec]
    http-request replace-header User-Agent ^curl/(.*)$ Curl-\1
    http-request set-header X-Urlp "%[url_param(id)] %[urlp(x,;)] %[nbsrv(web)] %[srv_is_up(web/web)] %[nbsrv(st)]"
    http-request set-header X-Uuid-Len %[uuid,length] if {{ url_param(id) -m found }}
    http-request set-header X-Rand-Ok 1 if {{ rand(10) lt 10 }} {{ date gt 1700000000 }}
    # ACLs on any fetch, with converters and every match method.
    acl api url_beg /api
    acl jpg path_end .jpg
    acl has_query query -m found
    acl long_query query -m len gt 3
    acl high_port dst_port gt 1024
    acl one_host hdr_cnt(host) eq 1
    acl dom_example hdr(host) -m dom example
    acl dir_b path -m dir b
    acl has_session req.cook(sess) -m found
    acl loud req.hdr(x-case),lower -m str yes
    acl short_path path,length lt 5
    acl blocked path_beg -f {pats}
    http-request deny deny_status 410 if blocked
    http-request set-header X-Tier %[req.hdr(host),lower,field(1,:),map({map},bronze)]
    http-request set-header X-Tier-Beg %[req.hdr(host),lower,map_beg({map})]
    http-request set-header X-Tier-Ip %[src,map_ip({nets},none)]
    http-request add-header X-Acl api if api
    http-request add-header X-Acl jpg if jpg
    http-request add-header X-Acl query if has_query
    http-request add-header X-Acl long-query if long_query
    http-request add-header X-Acl high-port if high_port
    http-request add-header X-Acl one-host if one_host
    http-request add-header X-Acl dom if dom_example
    http-request add-header X-Acl dir if dir_b
    http-request add-header X-Acl session if has_session
    http-request add-header X-Acl loud if loud
    http-request add-header X-Acl short if short_path
    http-request set-path /headers if api or jpg or {{ path_beg /b/ }}
    http-request set-path /headers if {{ path /show }}
    # A variable routes (a condition on what an earlier rule set).
    http-request set-var(txn.route) str(st) if {{ path_beg /status/ }}
    use_backend st if {{ var(txn.route) -m str st }}
    # A backend named per request, from a map (an unknown name: the default backend).
    use_backend %[req.hdr(host),lower,field(1,:),map({route},web)] if {{ path_beg /dyn }}
    use_backend dn if {{ path_beg /denied }}
    use_backend gone if {{ path_beg /gone }}
    default_backend web
backend web
    http-request set-header X-Backend %[be_name]
    http-response set-header X-Frame-Options DENY
    http-response add-header X-Status %[status]
    http-response set-header X-Was %[var(txn.path)]
    # Request fetches find nothing in a response rule's condition (HAProxy warns that it
    # never matches).
    http-response deny if {{ path /show }}
    server web {origin}
backend st
    # Response fetches in conditions see the response.
    acl missing status 404
    http-response set-header X-Missing yes if missing
    http-response set-header X-Server-Web yes if {{ res.hdr(x-served-by) -m str web }} {{ status 200:299 }}
    http-response set-status 202 if {{ src 127.0.0.1 }}
    http-response set-header X-Status-Seen %[status]
    server web {origin}
backend dn
    # In a response rule, %[hdr()] is the response's header; an hdr() ACL never matches
    # (HAProxy warns).
    http-response set-header X-Seen-By %[hdr(x-served-by)]
    http-response deny deny_status 503 if {{ hdr(x-served-by) web }}
    server web {origin}
backend gone
    http-response deny deny_status 503 if {{ src 127.0.0.1 }}
    server web {origin}
"#
    )
}

/// `curl ARGS URL`: the status line's code, the response headers we compare, the body.
fn curl(args: &[&str], url: &str) -> (String, Vec<String>, String) {
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "10", "-A", "curl/8.0", "-H", "X-Secret: s"])
        .args(if args.iter().any(|a| a.starts_with("Host:")) { &[][..] } else { &["-H", "Host: Example.COM:8080"][..] })
        .args(args)
        .arg(url)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    if std::env::var("DEBUG_CURL").is_ok() {
        eprintln!("curl {args:?} {url}:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    }
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let code = lines.next().and_then(|l| l.split_whitespace().nth(1)).unwrap_or("").to_string();
    let mut compared: Vec<String> = lines
        .map(str::to_ascii_lowercase)
        .filter(|l| l.starts_with("x-") || l.starts_with("location") || l.starts_with("content-type"))
        .collect();
    compared.sort();
    // The origin's view: only the headers the rules touch.
    let mut body_lines: Vec<String> = body
        .lines()
        .map(str::to_ascii_lowercase)
        .filter(|l| l.starts_with("x-") || l.starts_with("user-agent") || l.starts_with("pong"))
        .collect();
    body_lines.sort();
    (code, compared, body_lines.join("\n"))
}

#[test]
fn rules_do_what_haproxy_does() {
    if common::no_haproxy("http rules against HAProxy") {
        return;
    }
    let origin = Origin::spawn("web", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let (hap, ful, hap2, ful2) = (free_addr(), free_addr(), free_addr(), free_addr());
    let dir = temp_dir("rules");
    let files = rule_files(&dir);
    std::fs::write(dir.join("hap.cfg"), rules_cfg(hap, hap2, origin.addr, &files)).expect("write");
    let check = Command::new("haproxy").arg("-c").arg("-f").arg(dir.join("hap.cfg")).output().expect("haproxy -c");
    assert!(check.status.success(), "HAProxy refuses the test's config: {}", String::from_utf8_lossy(&check.stderr));
    let _hap = common::start_haproxy(&dir, &rules_cfg(hap, hap2, origin.addr, &files), hap);
    let _f = Fulcrum::start("rules.cfg", &rules_cfg(ful, ful2, origin.addr, &files), ful);
    let cases: &[(&str, &[&str])] = &[
        ("/show", &[]),
        ("/show?q=1", &["-H", "X-Forwarded-Proto: https"]),
        ("/show?id=42&x=1", &[]),
        ("/show?a=1;x=7&id", &[]),
        ("/admin/x", &[]),
        ("/ping", &[]),
        ("/old/page?a=b", &[]),
        ("/allowed", &[]),
        ("/status/200", &[]),
        ("/status/418", &[]),
        ("/status/404", &[]),
        ("/denied", &[]),
        ("/api/x?abcd", &[]),
        ("/api?a", &["-H", "X-Case: YES"]),
        ("/b/c.jpg", &["-b", "sess=1"]),
        ("/b/c", &["-b", "other=1"]),
        ("/blocked/x", &[]),
        ("/secret", &[]),
        ("/show", &["-H", "Host: WWW.example.org"]),
        ("/show", &["-H", "Host: unknown.example"]),
        ("/healthz", &[]),
        ("/healthz", &["-H", "X-Down: 1"]),
        ("/healthz?x", &[]),
        ("/dyn/status/200", &[]),
        ("/dyn/x", &["-H", "Host: www.example.org"]),
        ("/dyn/x", &["-H", "Host: nosuch.example"]),
        ("/dyn/x", &["-H", "Host: other.example"]),
        ("/gone", &[]),
        ("/show", &["-H", "X-Flood: 1"]),
        ("/show", &["-X", "POST", "-d", "body"]),
    ];
    for (path, args) in cases {
        let want = curl(args, &format!("http://{hap}{path}"));
        let got = curl(args, &format!("http://{ful}{path}"));
        assert_eq!(got, want, "{path} {args:?}: fulcrum (left) and HAProxy (right) differ");
        // And over HTTP/2 (prior knowledge, on `proto h2` binds), both again.
        let mut h2 = vec!["--http2-prior-knowledge"];
        h2.extend_from_slice(args);
        let want2 = curl(&h2, &format!("http://{hap2}{path}"));
        let got2 = curl(&h2, &format!("http://{ful2}{path}"));
        assert_eq!(got2, want2, "{path} {args:?} over HTTP/2: fulcrum (left) and HAProxy (right) differ");
    }
    // The rules did run (so that equality above is not two proxies ignoring them alike).
    let (code, _, seen) = curl(&[], &format!("http://{ful}/show"));
    assert_eq!(code, "200");
    for line in ["x-forwarded-proto: http", "x-client: 127.0.0.1", "x-host: example.com", "user-agent: curl-8.0"] {
        assert!(seen.lines().any(|l| l == line), "{line} missing in:\n{seen}");
    }
    assert!(!seen.contains("x-secret"), "{seen}");
    // monitor-uri answers before any rule (the admin deny and the rewrites do not apply).
    assert_eq!(curl(&[], &format!("http://{ful}/healthz")).0, "200");
    assert_eq!(curl(&["-H", "X-Down: 1"], &format!("http://{ful}/healthz")).0, "503");
    // The map-named backends were reached: `st` sets 202, `gone` answers 503.
    assert_eq!(curl(&[], &format!("http://{ful}/dyn/status/200")).0, "202");
    assert_eq!(curl(&["-H", "Host: www.example.org"], &format!("http://{ful}/dyn/x")).0, "503");
    assert_eq!(curl(&["-H", "Host: nosuch.example"], &format!("http://{ful}/dyn/x")).0, "200");
    assert_eq!(curl(&[], &format!("http://{ful}/admin/")).0, "403");
}

#[test]
fn rules_fulcrum_cannot_do_are_errors_naming_the_line() {
    let bind = free_addr();
    let cases = [
        ("http-request capture req.hdr(host) len 10", "not supported yet"),
        ("http-request deny deny_status 451", "has no error page"),
        ("http-request deny if { sc0_bytes_in_rate gt 1 }", "not supported yet"),
        ("http-request set-header", "takes: NAME FORMAT"),
        ("http-request sett-header X y", "did you mean set-header"),
        ("http-request set-header X %[src,lowr]", "did you mean lower"),
        ("http-request set-header X %[req.body]", "not supported yet"),
        ("http-request deny if { nope }", "nope"),
        ("http-response set-path /x", "not supported yet"),
        ("http-response set-header X %[path]", "response rules do not have"),
        ("http-request set-header X %[status]", "request rules do not have"),
    ];
    for (line, expected) in cases {
        let cfg = format!(
            "defaults\n    mode http\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\n\
             frontend fe\n    bind {bind}\n    {line}\n    default_backend b\nbackend b\n    server s 127.0.0.1:9\n"
        );
        let dir = temp_dir("rules-err");
        let path = dir.join("bad.cfg");
        std::fs::write(&path, cfg).expect("write");
        let out = Command::new(common::bin()).args(["check", "-c"]).arg(&path).output().expect("check");
        let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{line}: accepted");
        assert!(text.contains("bad.cfg:8"), "{line}: no file:line in {text}");
        assert!(text.contains(expected), "{line}: '{expected}' not in {text}");
    }
    // Tracking needs a table: named after the section, reported there.
    let dir = temp_dir("rules-err");
    let path = dir.join("notable.cfg");
    let cfg = format!(
        "defaults\n    mode http\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\n\
         frontend fe\n    bind {bind}\n    http-request track-sc0 src table nope\n    default_backend b\nbackend b\n    server s 127.0.0.1:9\n"
    );
    std::fs::write(&path, cfg).expect("write");
    let out = Command::new(common::bin()).args(["check", "-c"]).arg(&path).output().expect("check");
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && text.contains("notable.cfg:6") && text.contains("'nope'"), "{text}");
}

#[test]
fn the_rules_examples_are_valid_for_both() {
    for name in ["header-rules.cfg", "rate-limit.cfg", "peers.cfg"] {
        let example = format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"));
        let out = Command::new(common::bin()).args(["check", "-c", &example]).output().expect("check");
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        if Command::new("haproxy").arg("-v").output().is_err() {
            fulcrum_testkit::skip("the examples against haproxy -c", "haproxy");
            return;
        }
        let out = Command::new("haproxy").args(["-c", "-f", &example]).output().expect("haproxy -c");
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Rate limiting by a stick table, the HAProxy way: `track-sc0 src`, then a 429 above 10
/// requests per 10 s. The same configuration in HAProxy and fulcrum, the same burst: both let
/// the first 10 through (11 when the burst straddles the end of a rate period, as HAProxy's
/// sliding estimate allows) and refuse the rest; the exact counters agree request by request.
#[test]
fn rate_limiting_with_a_stick_table_matches_haproxy() {
    if common::no_haproxy("rate limiting against HAProxy") {
        return;
    }
    let origin = Origin::spawn("web", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let cfg = |bind: SocketAddr| {
        format!(
            r#"{DEFAULTS}
frontend fe
    bind {bind}
    stick-table type ip size 100k expire 30s store http_req_rate(10s),http_req_cnt,gpc0
    http-request track-sc0 src
    http-request sc-inc-gpc0(0) if {{ path /mark }}
    http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt 10 }}
    http-request set-header X-Cnt %[sc0_http_req_cnt]
    http-request set-header X-Gpc %[sc0_get_gpc0]
    http-request set-header X-Src-Cnt %[src_http_req_cnt]
    http-request set-path /headers
    default_backend web
backend web
    server web {}
"#,
            origin.addr
        )
    };
    let (hap, ful) = (free_addr(), free_addr());
    let dir = temp_dir("rate");
    let _hap = common::start_haproxy(&dir, &cfg(hap), hap);
    let _f = Fulcrum::start("rate.cfg", &cfg(ful), ful);
    let burst = |addr: SocketAddr| -> Vec<(String, String)> {
        (0..15)
            .map(|i| {
                let path = if i == 3 { "/mark" } else { "/x" };
                let (code, _, seen) = curl(&[], &format!("http://{addr}{path}"));
                let counters: Vec<&str> = seen
                    .lines()
                    .filter(|l| l.starts_with("x-cnt") || l.starts_with("x-gpc") || l.starts_with("x-src-cnt"))
                    .collect();
                (code, counters.join(" "))
            })
            .collect()
    };
    let want = burst(hap);
    let got = burst(ful);
    for (name, run) in [("HAProxy", &want), ("fulcrum", &got)] {
        let passed = run.iter().filter(|(c, _)| c == "200").count();
        assert!((10..=11).contains(&passed), "{name}: {passed} passed: {run:?}");
        assert!(run[..10].iter().all(|(c, _)| c == "200"), "{name}: {run:?}");
        assert!(run[12..].iter().all(|(c, _)| c == "429"), "{name}: {run:?}");
    }
    // The counters the origin saw, request by request (exact counts, not rates).
    let seen = |run: &[(String, String)]| run.iter().take(10).map(|(_, s)| s.clone()).collect::<Vec<_>>();
    assert_eq!(seen(&got), seen(&want), "fulcrum (left) and HAProxy (right)");
    assert_eq!(got[0].1, "x-cnt: 1 x-gpc: 0 x-src-cnt: 1");
    assert_eq!(got[5].1, "x-cnt: 6 x-gpc: 1 x-src-cnt: 6");
}

/// Requests answered by rules are logged as HAProxy logs them: the status, `PR--` for a deny
/// (the proxy blocked the request), `LR--` for a `return` or a redirect (handled locally), and
/// the request line as it came (before rules rewrote it); over HTTP/1.1 and HTTP/2.
#[test]
fn answers_made_by_rules_are_logged_with_their_termination_state() {
    let origin = Origin::spawn("web", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let (bind, h2) = (free_addr(), free_addr());
    let cfg = format!(
        "{DEFAULTS}\n    option httplog\nfrontend fe\n    bind {bind}\n    bind {h2} proto h2\n\
         \x20   http-request deny if {{ path_beg /admin }}\n\
         \x20   http-request return status 200 content-type text/plain string pong if {{ path /ping }}\n\
         \x20   http-request redirect location /new code 301 if {{ path /old }}\n\
         \x20   http-request set-path /rewritten if {{ path /orig }}\n\
         \x20   default_backend web\nbackend web\n    http-response deny deny_status 502 if {{ src 127.0.0.2 }}\n    server web {}\n",
        origin.addr
    );
    let f = Fulcrum::start("logged.cfg", &cfg, bind);
    for (path, code) in [("/admin/x", "403"), ("/ping", "200"), ("/old", "301"), ("/orig", "200")] {
        assert_eq!(curl(&[], &format!("http://{bind}{path}")).0, code, "{path}");
        assert_eq!(curl(&["--http2-prior-knowledge"], &format!("http://{h2}{path}")).0, code, "{path} over HTTP/2");
    }
    // (HTTP/2 request lines carry the absolute URI, as HAProxy logs them.)
    f.wait_log("/orig HTTP/2.0", Duration::from_secs(5));
    let log = f.stderr();
    let line = |needle: &str| -> Vec<&str> { log.lines().filter(|l| l.contains(needle)).collect() };
    for (request, status, state) in
        [("/admin/x", " 403 ", "PR--"), ("/ping", " 200 ", "LR--"), ("/old", " 301 ", "LR--")]
    {
        let lines = line(&format!("{request} HTTP/"));
        assert_eq!(lines.len(), 2, "one line per protocol for {request}:\n{log}");
        assert!(lines.iter().all(|l| l.contains(status) && l.contains(state)), "{request}:\n{log}");
    }
    // Forwarded after a rewrite: the line shows the request as it came, and the server.
    let orig = line("/orig HTTP/");
    assert_eq!(orig.len(), 2, "{log}");
    assert!(orig.iter().all(|l| l.contains("web/web") && l.contains(" 200 ")), "{log}");
}

/// `userlist` and `http-request auth`, checked against HAProxy: the same users (a SHA-512 and
/// an MD5 crypt hash, a plain password), the same requests with and without credentials; the
/// statuses, the realm asked for, and the user the origin is told of must agree.
#[test]
fn basic_auth_with_userlists_matches_haproxy() {
    if common::no_haproxy("userlists against HAProxy") {
        return;
    }
    let hash = |alg: &str, pass: &str| {
        let out = Command::new("openssl").args(["passwd", alg, "-salt", "fulcrum", pass]).output().expect("openssl");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let (sha, md5) = (hash("-6", "alice-pw"), hash("-1", "bob-pw"));
    assert!(sha.starts_with("$6$") && md5.starts_with("$1$"), "{sha} {md5}");
    let origin = Origin::spawn("web", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let cfg = |bind: SocketAddr| {
        format!(
            r#"{DEFAULTS}
userlist admins
    group ops users alice
    group dev
    user alice password {sha}
    user bob password {md5} groups dev
    user carol insecure-password s3cret
frontend fe
    bind {bind}
    acl auth_ok http_auth(admins)
    acl is_ops http_auth_group(admins) ops
    http-request auth realm Admin if {{ path_beg /admin }} !auth_ok
    http-request auth if {{ path_beg /plain }} !auth_ok
    http-request deny if {{ path_beg /admin/ops }} !is_ops
    http-request set-header X-User %[http_auth_user] if auth_ok
    http-request set-path /headers
    default_backend web
backend web
    server web {}
"#,
            origin.addr
        )
    };
    let run = |addr: SocketAddr| -> Vec<String> {
        let cases: &[(&str, &[&str])] = &[
            ("/admin/x", &[]),
            ("/admin/x", &["-u", "alice:alice-pw"]),
            ("/admin/x", &["-u", "alice:wrong"]),
            ("/admin/x", &["-u", "bob:bob-pw"]),
            ("/admin/x", &["-u", "carol:s3cret"]),
            ("/admin/x", &["-u", "nobody:x"]),
            ("/admin/ops", &["-u", "alice:alice-pw"]),
            ("/admin/ops", &["-u", "bob:bob-pw"]),
            ("/plain", &[]),
            ("/open", &["-u", "carol:s3cret"]),
        ];
        cases
            .iter()
            .map(|(path, args)| {
                let out = Command::new("curl")
                    .args(["-s", "-i", "--max-time", "5"])
                    .args(*args)
                    .arg(format!("http://{addr}{path}"))
                    .output()
                    .expect("curl");
                let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
                let code = text.split_whitespace().nth(1).unwrap_or("").to_string();
                let pick = |name: &str| {
                    text.lines().find(|l| l.to_ascii_lowercase().starts_with(name)).unwrap_or("").to_string()
                };
                format!("{path} {args:?}: {code} {} {}", pick("www-authenticate"), pick("x-user"))
            })
            .collect()
    };
    let (got, want) = common::against_haproxy("auth", cfg, run);
    assert_eq!(got, want, "fulcrum (left) and HAProxy (right)");
    assert!(want[0].contains("401") && want[0].contains("realm=\"Admin\""), "{want:?}");
    assert!(want[1].contains("200") && want[1].contains("x-user: alice"), "{want:?}");
}

/// `set-src`: a trusted proxy's header gives the client's address; the rules after it, the
/// server's `X-Forwarded-For` and stick tables see that address. Checked against HAProxy.
#[test]
fn set_src_gives_the_client_address_as_haproxy_does() {
    if common::no_haproxy("set-src against HAProxy") {
        return;
    }
    let origin = Origin::spawn("web", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let cfg = |bind: SocketAddr| {
        format!(
            r#"{DEFAULTS}
frontend fe
    bind {bind}
    option forwardfor
    stick-table type ip size 1k store http_req_cnt
    acl from_lb src 127.0.0.0/8
    http-request set-src hdr(x-real-ip) if from_lb {{ hdr(x-real-ip) -m found }}
    http-request deny deny_status 403 if {{ src 10.9.9.9 }}
    http-request track-sc0 src
    http-request set-header X-Src "%[src] %[sc0_http_req_cnt]"
    http-request set-path /headers
    default_backend web
backend web
    server web {}
"#,
            origin.addr
        )
    };
    let run = |addr: SocketAddr| -> Vec<String> {
        let cases: &[&[&str]] = &[
            &[],
            &["-H", "X-Real-IP: 192.0.2.5"],
            &["-H", "X-Real-IP: 192.0.2.5"],
            &["-H", "X-Real-IP: 2001:db8::7"],
            &["-H", "X-Real-IP: 10.9.9.9"],
            &["-H", "X-Real-IP: not-an-address"],
        ];
        cases
            .iter()
            .map(|args| {
                let (code, _, seen) = curl(args, &format!("http://{addr}/x"));
                let xff = seen.lines().filter(|l| l.starts_with("x-src")).collect::<Vec<_>>().join(" ");
                format!("{args:?}: {code} {xff}")
            })
            .collect()
    };
    let ful = free_addr();
    let (got, want) = common::against_haproxy("set-src", cfg, run);
    assert_eq!(got, want, "fulcrum (left) and HAProxy (right)");
    assert!(want[2].contains("x-src: 192.0.2.5 2"), "{want:?}");
    // The server is told of the new address too.
    let _f = Fulcrum::start("set-src2.cfg", &cfg(ful), ful);
    let out2 = Command::new("curl")
        .args(["-s", "--max-time", "5", "-H", "X-Real-IP: 192.0.2.5"])
        .arg(format!("http://{ful}/x"))
        .output()
        .expect("curl");
    assert!(
        String::from_utf8_lossy(&out2.stdout).contains("x-forwarded-for: 192.0.2.5"),
        "{}",
        String::from_utf8_lossy(&out2.stdout)
    );
}

/// `set-status N reason R`: the status line says R, in HAProxy and in fulcrum alike.
#[test]
fn set_status_keeps_its_reason() {
    if common::no_haproxy("set-status against HAProxy") {
        return;
    }
    let origin = Origin::spawn("web", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let cfg = |bind: SocketAddr| {
        format!(
            "{DEFAULTS}\nfrontend fe\n    bind {bind}\n    default_backend web\nbackend web\n    \
             http-response set-status 299 reason \"Fine Anyway\" if {{ status 404 }}\n    \
             http-response set-status 201 if {{ status 418 }}\n    server web {}\n",
            origin.addr
        )
    };
    let status_line = |addr: SocketAddr, path: &str| {
        let out =
            Command::new("curl").args(["-s", "-i", "--max-time", "5"]).arg(format!("http://{addr}{path}")).output();
        String::from_utf8_lossy(&out.expect("curl").stdout).lines().next().unwrap_or("").trim().to_string()
    };
    let run = |addr: SocketAddr| -> Vec<String> {
        ["/status/404", "/status/418", "/status/200"].iter().map(|p| status_line(addr, p)).collect()
    };
    let (got, want) = common::against_haproxy("set-status", cfg, run);
    assert_eq!(got, want);
    assert_eq!(want[0], "HTTP/1.1 299 Fine Anyway");
}

/// `http-after-response`: on every answer — the server's, a rule's deny, a redirect, an error
/// page — the backend's rules then the frontend's, over HTTP/1.1 and HTTP/2, as in HAProxy.
#[test]
fn after_response_rules_see_every_answer_as_in_haproxy() {
    if common::no_haproxy("http-after-response against HAProxy") {
        return;
    }
    let origin = Origin::spawn("web", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let cfg = |bind: SocketAddr, h2: SocketAddr| {
        format!(
            r#"{DEFAULTS}
frontend fe
    bind {bind}
    bind {h2} proto h2
    http-after-response set-header X-Hsts max-age=63072000
    http-after-response add-header X-After-Fe %[status]
    http-request deny deny_status 403 if {{ path /deny }}
    http-request redirect location /elsewhere code 302 if {{ path /moved }}
    use_backend empty if {{ path /empty }}
    default_backend web
backend web
    http-after-response set-header X-After-Be yes
    http-after-response set-status 299 if {{ status 418 }}
    http-response deny deny_status 502 if {{ status 500 }}
    server web {}
backend empty
    http-after-response set-header X-Empty yes
"#,
            origin.addr
        )
    };
    let dir = temp_dir("after");
    let (hap, hap2, ful, ful2) = (free_addr(), free_addr(), free_addr(), free_addr());
    let paths = ["/x", "/deny", "/moved", "/status/418", "/status/500", "/empty"];
    let run = |one: SocketAddr, two: SocketAddr| -> Vec<String> {
        let mut seen = Vec::new();
        for path in paths {
            let (code, headers, _) = curl(&[], &format!("http://{one}{path}"));
            seen.push(format!("{path}: {code} {headers:?}"));
            let (code, headers, _) = curl(&["--http2-prior-knowledge"], &format!("http://{two}{path}"));
            seen.push(format!("{path} h2: {code} {headers:?}"));
        }
        seen
    };
    let want = {
        let _hap = common::start_haproxy(&dir, &cfg(hap, hap2), hap);
        run(hap, hap2)
    };
    let got = {
        let _f = Fulcrum::start("after.cfg", &cfg(ful, ful2), ful);
        run(ful, ful2)
    };
    assert_eq!(got, want, "fulcrum (left) and HAProxy (right)");
    assert!(want.iter().any(|l| l.starts_with("/deny: 403") && l.contains("x-hsts")), "{want:?}");
    assert!(want.iter().any(|l| l.starts_with("/empty: 503") && l.contains("x-empty: yes")), "{want:?}");
    assert!(want.iter().any(|l| l.starts_with("/status/418: 299") && l.contains("x-after-be: yes")), "{want:?}");
}

/// `http-request tarpit`: the request is held, then answered with the tarpit's status (500,
/// or `deny_status`), as HAProxy answers it; logged `PT--`; over HTTP/1.1 and HTTP/2.
#[test]
fn tarpit_answers_as_haproxy_does() {
    if common::no_haproxy("tarpit against HAProxy") {
        return;
    }
    let origin = Origin::spawn("web", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let cfg = |bind: SocketAddr, h2: SocketAddr| {
        format!(
            "{DEFAULTS}\n    option httplog\n    timeout tarpit 200ms\nfrontend fe\n    bind {bind}\n    bind {h2} proto h2\n    \
             http-request tarpit if {{ path /trap }}\n    default_backend web\nbackend web\n    \
             http-request tarpit deny_status 429 if {{ path /slow }}\n    server web {}\n",
            origin.addr
        )
    };
    let dir = temp_dir("tarpit");
    let (hap, hap2, ful, ful2) = (free_addr(), free_addr(), free_addr(), free_addr());
    let run = |one: SocketAddr, two: SocketAddr| -> Vec<String> {
        ["/trap", "/slow", "/ok"]
            .iter()
            .flat_map(|p| {
                let (code, headers, _) = curl(&[], &format!("http://{one}{p}"));
                let (code2, headers2, _) = curl(&["--http2-prior-knowledge"], &format!("http://{two}{p}"));
                [format!("{p}: {code} {headers:?}"), format!("{p} h2: {code2} {headers2:?}")]
            })
            .collect()
    };
    let want = {
        let _hap = common::start_haproxy(&dir, &cfg(hap, hap2), hap);
        run(hap, hap2)
    };
    let f = Fulcrum::start("tarpit.cfg", &cfg(ful, ful2), ful);
    let got = run(ful, ful2);
    assert_eq!(got, want, "fulcrum (left) and HAProxy (right)");
    assert!(want[0].starts_with("/trap: 500") && want[2].starts_with("/slow: 429"), "{want:?}");
    f.wait_log("PT--", Duration::from_secs(5));
}
