//! HTTP behaviour of the proxy: headers, errors, upgrades, routing, persistence, stats, and
//! `fulcrum check` messages.
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::*;

fn any() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

fn simple(bind: SocketAddr, extra_fe: &str, backend: &str) -> String {
    format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 500ms\n    timeout client 5s\n    timeout server 5s\n    timeout http-request 2s\n\
         frontend fe\n    bind {bind}\n    default_backend be\n{extra_fe}\
         backend be\n{backend}"
    )
}

#[test]
fn forwards_host_appends_xff_and_strips_hop_by_hop() {
    let a = Origin::spawn("a", any()).expect("origin");
    let bind = free_addr();
    let _f = Fulcrum::start(
        "xff.cfg",
        &simple(bind, "", &format!("    option forwardfor\n    server a {}\n", a.addr)),
        bind,
    );
    let r = runtime()
        .block_on(get_with(
            bind,
            "/headers",
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("connection", "keep-alive, x-secret"),
                ("x-secret", "1"),
                ("keep-alive", "timeout=5"),
            ],
        ))
        .expect("get");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("host: test.local"), "{}", r.body);
    let xff: Vec<&str> = r.body.lines().filter(|l| l.starts_with("x-forwarded-for")).collect();
    assert_eq!(xff, vec!["x-forwarded-for: 203.0.113.9", "x-forwarded-for: 127.0.0.1"], "{}", r.body);
    assert!(!r.body.contains("x-secret"), "{}", r.body);
    assert!(!r.body.contains("keep-alive: timeout"), "{}", r.body);

    // `except`: no header for clients of that network (we are 127.0.0.1).
    let bind2 = free_addr();
    let cfg = simple(bind2, "", &format!("    option forwardfor except 127.0.0.0/8\n    server a {}\n", a.addr));
    let _g = Fulcrum::start("xff-except.cfg", &cfg, bind2);
    let r = runtime().block_on(get(bind2, "/headers")).expect("get");
    assert!(!r.body.contains("x-forwarded-for"), "{}", r.body);
}

#[test]
fn bad_requests_get_4xx_not_a_crash() {
    let a = Origin::spawn("a", any()).expect("origin");
    let bind = free_addr();
    let _f = Fulcrum::start("bad.cfg", &simple(bind, "", &format!("    server a {}\n", a.addr)), bind);
    let garbage = raw(bind, b"GARBAGE\x01\x02 / HTTP/1.1\r\n\r\n");
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage:?}");
    // A head over tune.bufsize less tune.maxrewrite: 400, as HAProxy answers it.
    let huge = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(512 * 1024));
    let big = raw(bind, huge.as_bytes());
    assert!(big.starts_with("HTTP/1.1 400"), "{:?}", &big[..big.len().min(80)]);
    // Still serving.
    assert_eq!(runtime().block_on(get(bind, "/")).expect("get").status, 200);
}

#[test]
fn expect_100_continue_and_streamed_upload() {
    let a = Origin::spawn("a", any()).expect("origin");
    let bind = free_addr();
    let _f = Fulcrum::start("expect.cfg", &simple(bind, "", &format!("    server a {}\n", a.addr)), bind);
    let mut s = TcpStream::connect(bind).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n").expect("write");
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).expect("read 100");
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100 Continue"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    s.write_all(b"hello").expect("body");
    let n = s.read(&mut buf).expect("read reply");
    let reply = String::from_utf8_lossy(&buf[..n]);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("a received 5 bytes"), "{reply}");
}

#[test]
fn websocket_upgrade_is_tunnelled() {
    let a = Origin::spawn("a", any()).expect("origin");
    let bind = free_addr();
    let _f = Fulcrum::start("ws.cfg", &simple(bind, "", &format!("    server a {}\n", a.addr)), bind);
    let mut s = TcpStream::connect(bind).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").expect("write");
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).expect("read 101");
    let head = String::from_utf8_lossy(&buf[..n]).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    s.write_all(b"ping over the tunnel").expect("write");
    let n = s.read(&mut buf).expect("echo");
    assert_eq!(&buf[..n], b"ping over the tunnel");
}

#[test]
fn error_pages_502_503_504_and_errorfile() {
    let a = Origin::spawn("a", any()).expect("origin");
    let dir = temp_dir("errorfile");
    let ef = dir.join("503.http");
    std::fs::write(&ef, "HTTP/1.0 503 Service Unavailable\r\nCache-Control: no-cache\r\nContent-Type: text/html\r\n\r\n<html><body>custom sorry page</body></html>\n").expect("write");
    let (_held, dead) = common::dead_addr();
    let bind = free_addr();
    let cfg = format!(
        "defaults\n    mode http\n    timeout connect 200ms\n    timeout client 5s\n    timeout server 300ms\n    retries 1\n\
         frontend fe\n    bind {bind}\n    acl slow path_beg /slow\n    use_backend live if slow\n    default_backend gone\n\
         backend gone\n    errorfile 503 {}\n    server dead {dead}\n\
         backend live\n    server a {}\n",
        ef.display(),
        a.addr
    );
    let _f = Fulcrum::start("err.cfg", &cfg, bind);
    let rt = runtime();
    let r = rt.block_on(get(bind, "/")).expect("get");
    assert_eq!(r.status, 503);
    assert!(r.body.contains("custom sorry page"), "{}", r.body);
    let r = rt.block_on(get(bind, "/slow?ms=2000")).expect("get");
    assert_eq!(r.status, 504, "timeout server 300ms: {}", r.body);
    assert!(r.body.contains("504 Gateway Time-out") || r.body.contains("504"), "{}", r.body);
}

#[test]
fn acl_routing() {
    let web = Origin::spawn("web", any()).expect("origin");
    let api = Origin::spawn("api", any()).expect("origin");
    let admin = Origin::spawn("admin", any()).expect("origin");
    let bind = free_addr();
    let cfg = format!(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\
         frontend fe\n    bind {bind}\n    acl is_api path_beg /api\n    acl api_host hdr(host) -i api.example.com\n    acl is_post method POST\n    acl local src 127.0.0.0/8\n\
         \x20   use_backend admin if {{ path_end .admin }} local\n    use_backend api if is_api or api_host\n    use_backend admin if is_post !is_api\n    default_backend web\n\
         backend web\n    server web {}\nbackend api\n    server api {}\nbackend admin\n    server admin {}\n",
        web.addr, api.addr, admin.addr
    );
    let _f = Fulcrum::start("acl.cfg", &cfg, bind);
    runtime().block_on(async {
        assert_eq!(get(bind, "/").await.expect("get").served_by(), "web");
        assert_eq!(get(bind, "/api/v1").await.expect("get").served_by(), "api");
        assert_eq!(get_with(bind, "/x", &[("host", "API.example.com")]).await.expect("get").served_by(), "api");
        assert_eq!(get(bind, "/page.admin").await.expect("get").served_by(), "admin");
    });
}

#[test]
fn cookie_insert_and_stick_on_src_persist() {
    let s1 = Origin::spawn("s1", any()).expect("origin");
    let s2 = Origin::spawn("s2", any()).expect("origin");
    let bind = free_addr();
    let cfg = simple(
        bind,
        "",
        &format!("    balance roundrobin\n    cookie SRVNAME insert indirect nocache\n    server s1 {} cookie WeB1\n    server s2 {} cookie WeB2\n", s1.addr, s2.addr),
    );
    let _f = Fulcrum::start("cookie.cfg", &cfg, bind);
    runtime().block_on(async {
        let first = get(bind, "/").await.expect("get");
        let set = first.headers.get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let server = first.served_by();
        let expected = if server == "s1" { "SRVNAME=WeB1" } else { "SRVNAME=WeB2" };
        assert!(set.starts_with(expected), "{set}");
        assert_eq!(first.headers.get("cache-control").and_then(|v| v.to_str().ok()), Some("private"));
        for _ in 0..6 {
            let r = get_with(bind, "/headers", &[("cookie", &format!("{expected}; other=1"))]).await.expect("get");
            assert_eq!(r.served_by(), server);
            // indirect: the server doesn't see our cookie, only the application's.
            assert!(r.body.contains("cookie: other=1"), "{}", r.body);
            assert!(!r.body.contains("SRVNAME"), "{}", r.body);
            assert!(r.headers.get("set-cookie").is_none());
        }
        // A value that names no server (stale, or forged) is ours too: removed before the
        // server, and a new cookie set (HAProxy's reg-tests/http-cookies/cookie_insert_indirect).
        let r = get_with(bind, "/headers", &[("cookie", "SRVNAME=nosuch; other=2")]).await.expect("get");
        assert!(r.body.contains("cookie: other=2"), "{}", r.body);
        assert!(!r.body.contains("SRVNAME"), "{}", r.body);
        let set = r.headers.get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or("");
        assert!(set.starts_with("SRVNAME=WeB"), "{set}");
    });

    let bind2 = free_addr();
    let cfg2 = simple(
        bind2,
        "",
        &format!("    balance roundrobin\n    stick-table type ip size 1m expire 1h\n    stick on src\n    server s1 {}\n    server s2 {}\n", s1.addr, s2.addr),
    );
    let _g = Fulcrum::start("stick.cfg", &cfg2, bind2);
    let counts = runtime().block_on(async {
        let mut counts = std::collections::BTreeMap::new();
        for _ in 0..10 {
            *counts.entry(get(bind2, "/").await.expect("get").served_by()).or_insert(0) += 1;
        }
        counts
    });
    assert_eq!(counts.len(), 1, "stick on src keeps one client on one server: {counts:?}");
}

#[test]
fn stats_page_with_auth() {
    let a = Origin::spawn("a", any()).expect("origin");
    let bind = free_addr();
    let cfg = simple(
        bind,
        "    stats enable\n    stats uri /stats\n    stats auth admin:secret\n",
        &format!("    server a {}\n", a.addr),
    );
    let _f = Fulcrum::start("stats.cfg", &cfg, bind);
    runtime().block_on(async {
        assert_eq!(get(bind, "/stats").await.expect("get").status, 401);
        let ok = get_with(bind, "/stats;csv", &[("authorization", "Basic YWRtaW46c2VjcmV0")]).await.expect("get");
        assert_eq!(ok.status, 200);
        assert!(ok.body.starts_with("# pxname,svname,"), "{}", ok.body);
        assert!(ok.body.contains("be,a,"), "{}", ok.body);
    });
}

#[test]
fn access_log_line_per_request() {
    let a = Origin::spawn("a", any()).expect("origin");
    let bind = free_addr();
    let dir = temp_dir("log");
    let log = dir.join("access.log");
    let cfg = simple(bind, "    option httplog\n", &format!("    server a {}\n", a.addr));
    let _f = Fulcrum::start_with("log.cfg", &cfg, bind, &["--access-log", log.to_str().expect("utf-8 path")]);
    runtime().block_on(async {
        for _ in 0..3 {
            get(bind, "/hello").await.expect("get");
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let text = std::fs::read_to_string(&log).expect("access log");
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("\"GET /hello HTTP/1.1\"")).collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].contains(" fe be/a "), "{}", lines[0]);
    assert!(lines[0].contains(" 200 "), "{}", lines[0]);

    // TR, the first timing, runs from the request's first byte to its last header.
    let mut s = TcpStream::connect(bind).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    s.write_all(b"GET /split HTTP/1.1\r\n").expect("write");
    std::thread::sleep(Duration::from_millis(300));
    s.write_all(b"Host: x\r\nConnection: close\r\n\r\n").expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    std::thread::sleep(Duration::from_millis(200));
    let text = std::fs::read_to_string(&log).expect("access log");
    let line = text.lines().find(|l| l.contains("GET /split")).expect("a line for /split");
    let timers = line.split(' ').find(|w| w.matches('/').count() == 4).expect("TR/Tw/Tc/Tr/Tt");
    let tr: i64 = timers.split('/').next().and_then(|t| t.parse().ok()).expect("TR");
    assert!(tr >= 300, "TR {tr} in {line}");
}

#[test]
fn check_reports_file_and_line_with_hints() {
    let dir = temp_dir("check");
    let path = dir.join("haproxy.cfg");
    std::fs::write(
        &path,
        "defaults\n    mode http\nfrontend fe\n    bind 127.0.0.1:1\n    default_backend be\nbackend be\n    balance roundrobbin\n    server a 127.0.0.1:2\n",
    )
    .expect("write");
    let out = Command::new(bin()).args(["check", "-c"]).arg(&path).output().expect("run check");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:7:", path.display())), "{err}");
    assert!(err.contains("did you mean roundrobin"), "{err}");

    std::fs::write(&path, "defaults\n    mode http\nfrontend fe\n    bind 127.0.0.1:1\n    default_backend be\nbackend be\n    server a 127.0.0.1:2\n").expect("write");
    let out = Command::new(bin()).args(["check", "-c"]).arg(&path).output().expect("run check");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn http10_clients_still_reuse_upstream_connections() {
    let a = Origin::spawn("a", any()).expect("origin");
    let bind = free_addr();
    let _f = Fulcrum::start(
        "http10.cfg",
        &simple(bind, "", &format!("    http-reuse always\n    server a {}\n", a.addr)),
        bind,
    );
    for _ in 0..20 {
        let reply = raw(bind, b"GET / HTTP/1.0\r\nHost: x\r\n\r\n");
        assert!(reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.contains("served by a"), "{reply}");
    }
    assert_eq!(a.requests(), 20);
    assert!(a.connections() <= 2, "20 HTTP/1.0 requests used {} upstream connections", a.connections());
}

/// Reads one response off a kept-alive connection (up to its body's last byte, which the test
/// origin's answers end with `want`).
fn read_until(s: &mut TcpStream, want: &str) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&out).contains(want) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn client_timeouts_keep_alive_body_and_slow_server() {
    let a = Origin::spawn("a", any()).expect("origin");
    let bind = free_addr();
    let fe = "    timeout http-keep-alive 300ms\n    timeout client 400ms\n";
    let _f = Fulcrum::start("client-timeouts.cfg", &simple(bind, fe, &format!("    server a {}\n", a.addr)), bind);

    // Keep-alive: a second request soon after the first is served on the same connection;
    // then, idle for `timeout http-keep-alive`, the connection is closed by the proxy.
    let mut s = TcpStream::connect(bind).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    for _ in 0..2 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
        let r = read_until(&mut s, "served by a");
        assert!(r.starts_with("HTTP/1.1 200") && r.contains("served by a"), "{r:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Well before `timeout http-request` (2 s), which bounded the idle wait before.
    s.set_read_timeout(Some(Duration::from_millis(1500))).expect("timeout");
    let mut buf = [0u8; 64];
    assert_eq!(s.read(&mut buf).expect("closed after timeout http-keep-alive, not http-request"), 0);

    // A body that stops coming: `timeout client` answers 408.
    let stalled = raw(bind, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b");
    assert!(stalled.starts_with("HTTP/1.1 408"), "{stalled:?}");

    // A server slower than `timeout client`: the client is not expected to send anything
    // meanwhile, so no client timer runs.
    let slow = raw(bind, b"GET /slow?ms=900 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(slow.starts_with("HTTP/1.1 200"), "{slow:?}");
    let upload = raw(bind, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
    assert!(upload.contains("a received 5 bytes"), "{upload:?}");
}

#[test]
fn request_body_over_max_request_body_gets_413() {
    let a = Origin::spawn("a", any()).expect("origin");
    let bind = free_addr();
    let toml = format!(
        "[global]\nthreads = 1\n\n[[frontend]]\nname = \"web\"\nbind = [\"{bind}\"]\ndefault_backend = \"app\"\n\
         max_request_body = 100\n\n[[backend]]\nname = \"app\"\n\n[[backend.server]]\nname = \"a\"\naddress = \"{}\"\n",
        a.addr
    );
    let _f = Fulcrum::start("limit.toml", &toml, bind);
    let body = "x".repeat(1000);
    let declared =
        raw(bind, format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{body}").as_bytes());
    assert!(declared.starts_with("HTTP/1.1 413"), "{declared:?}");
    // Chunked: no length up front; the proxy counts and stops at the limit.
    let chunked = raw(
        bind,
        format!("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n{body}\r\n0\r\n\r\n")
            .as_bytes(),
    );
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked:?}");
    let small = raw(bind, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
    assert!(small.starts_with("HTTP/1.1 200") && small.contains("a received 5 bytes"), "{small:?}");
}

#[test]
fn request_head_not_in_time_gets_408() {
    let a = Origin::spawn("a", any()).expect("origin");
    let bind = free_addr();
    let fe = "    timeout http-request 500ms\n";
    let _f = Fulcrum::start("head-timeout.cfg", &simple(bind, fe, &format!("    server a {}\n", a.addr)), bind);
    // A head that trickles in, one header at a time, never finishing: its deadline does not
    // move with each byte.
    let mut s = TcpStream::connect(bind).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    for i in 0..40 {
        if s.write_all(format!("X-Slow-{i}: y\r\n").as_bytes()).is_err() {
            break;
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    // A connection that sends nothing at all gets the same answer.
    let silent = raw(bind, b"");
    assert!(silent.starts_with("HTTP/1.1 408"), "{silent:?}");
    assert_eq!(runtime().block_on(get(bind, "/")).expect("get").status, 200);
}

#[test]
fn big_and_finely_chunked_responses_reach_a_slow_reader_whole() {
    // Many small writes are gathered per turn and sent together; a reader that stops
    // reading must still get every byte, in order, on a kept-alive connection and on a
    // closing one (whose last bytes may still be waiting when the proxy lets go of it).
    use fulcrum_testkit::pattern_byte;
    use http_body_util::BodyExt;
    let a = Origin::spawn("a", any()).expect("origin");
    let bind = free_addr();
    let _f = Fulcrum::start("pattern.cfg", &simple(bind, "", &format!("    server a {}\n", a.addr)), bind);
    runtime().block_on(async {
        let stream = tokio::net::TcpStream::connect(bind).await.expect("connect");
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.expect("handshake");
        tokio::spawn(conn);
        for (bytes, chunk, close) in [(12_000_000usize, 1000, false), (3_000_000, 65_536, false), (200_000, 7, true)] {
            let mut req = hyper::Request::get(format!("/pattern?bytes={bytes}&chunk={chunk}")).header("host", "x");
            if close {
                req = req.header("connection", "close");
            }
            let req = req.body(http_body_util::Empty::<bytes::Bytes>::new()).expect("request");
            let resp = send.send_request(req).await.expect("response");
            assert_eq!(resp.status(), 200);
            // Not reading for a while: the proxy's writes to us back up.
            tokio::time::sleep(Duration::from_millis(700)).await;
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            assert_eq!(body.len(), bytes, "chunk {chunk}");
            let bad = body.iter().enumerate().position(|(i, b)| *b != pattern_byte(i));
            assert_eq!(bad, None, "first wrong byte, chunk {chunk}");
        }
    });
}

#[test]
fn an_idle_upstream_connection_the_server_closes_is_closed_here_too() {
    // Pooled connections are not watched by a task of their own; the worker's sweep must
    // still notice the server's close, so no socket lingers in CLOSE_WAIT, and the next
    // request goes over a new connection.
    let origin = std::net::TcpListener::bind(any()).expect("bind");
    let oaddr = origin.local_addr().expect("addr");
    let bind = free_addr();
    let _f = Fulcrum::start(
        "idleclose.cfg",
        &simple(bind, "", &format!("    http-reuse always\n    server a {oaddr}\n")),
        bind,
    );
    let answer = |s: &mut TcpStream| {
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
            head.push(b[0]);
        }
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n").expect("answer");
    };
    let server = std::thread::spawn(move || {
        let (mut s, _) = origin.accept().expect("accept");
        answer(&mut s);
        std::thread::sleep(Duration::from_millis(100));
        s.shutdown(std::net::Shutdown::Write).expect("shutdown");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut buf = [0u8; 16];
        let closed = s.read(&mut buf);
        let (mut s2, _) = origin.accept().expect("accept again");
        answer(&mut s2);
        closed.map_err(|e| e.kind())
    });
    let first = raw(bind, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(first.starts_with("HTTP/1.1 200") && first.ends_with("ok\n"), "{first:?}");
    // Sent once the server's close was seen (or 5 s passed): a new connection serves it.
    std::thread::sleep(Duration::from_millis(2500));
    let second = raw(bind, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(second.starts_with("HTTP/1.1 200") && second.ends_with("ok\n"), "{second:?}");
    assert_eq!(server.join().expect("server"), Ok(0), "the proxy closed its end of the idle connection");
}

#[test]
fn a_client_that_stops_reading_is_cut_off_after_timeout_client() {
    // The response's writes back up (the flusher cannot send, the connection waits for the
    // socket): after `timeout client` without progress the proxy closes, with the body short.
    let a = Origin::spawn("a", any()).expect("origin");
    let bind = free_addr();
    let _f = Fulcrum::start(
        "stall.cfg",
        &simple(bind, "    timeout client 400ms\n", &format!("    server a {}\n", a.addr)),
        bind,
    );
    let total = 40_000_000usize;
    let mut s = TcpStream::connect(bind).expect("connect");
    s.write_all(format!("GET /pattern?bytes={total}&chunk=1000 HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .expect("request");
    std::thread::sleep(Duration::from_millis(2000));
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut got = 0usize;
    let mut buf = vec![0u8; 65536];
    let ended = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got += n,
            Err(_) => break false,
        }
    };
    assert!(ended, "the proxy closed the connection (read {got} bytes)");
    assert!(got < total, "only part of the body went out ({got} of {total} bytes)");
}
