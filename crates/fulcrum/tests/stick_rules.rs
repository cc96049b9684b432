//! `stick` rules, checked against HAProxy itself: an application's session cookie learned
//! from its responses (`stick store-response res.cook(JSESSIONID)`) and followed
//! (`stick on req.cook(JSESSIONID)`), `stick match`/`store-request` on another backend's table
//! under a condition, a sticky server that goes down, and `stick on src` in `mode tcp`.
mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_addr, temp_dir, Fulcrum};
use fulcrum_testkit::Origin;

const DEFAULTS: &str =
    "defaults\n    mode http\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s";

/// `curl ARGS URL` → (the server that answered, its session cookie if it set one).
fn curl(args: &[&str], url: &str) -> (String, Option<String>) {
    let out = Command::new("curl").args(["-s", "-i", "--max-time", "10"]).args(args).arg(url).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    let header = |name: &str| {
        text.lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
            .map(str::to_string)
    };
    let session = header("set-cookie").and_then(|c| c.strip_prefix("JSESSIONID=")?.split(';').next().map(String::from));
    (header("x-served-by").unwrap_or_default(), session)
}

fn cfg(bind: SocketAddr, h2: SocketAddr, servers: &[SocketAddr]) -> String {
    let list = |prefix: &str| {
        servers
            .iter()
            .enumerate()
            .map(|(i, a)| format!("    server {prefix}{i} {a} check inter 100ms fall 2 rise 1\n"))
            .collect::<String>()
    };
    format!(
        r#"{DEFAULTS}
frontend fe
    bind {bind}
    bind {h2} proto h2
    use_backend by_user if {{ req.hdr(x-user) -m found }}
    default_backend app
backend app
    balance roundrobin
    option httpchk GET /health
    timeout check 2s
    stick-table type string len 32 size 1k expire 30m
    stick on req.cook(JSESSIONID)
    stick store-response res.cook(JSESSIONID)
{app}backend by_user
    balance roundrobin
    option httpchk GET /health
    timeout check 2s
    stick match req.hdr(x-user) table users
    stick store-request req.hdr(x-user) table users if {{ path_beg /login }}
{user}backend users
    stick-table type string len 16 size 1k expire 30m
"#,
        app = list("s"),
        user = list("u"),
    )
}

/// Waits until requests no longer reach `server` (its health check failed).
fn until_avoided(url: &str, server: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if (0..3).all(|_| curl(&[], url).0 != server) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{server} still serves {url}");
}

/// One run of the scenario against a proxy; what it saw, for comparing the two proxies.
fn scenario(name: &str, bind: SocketAddr, h2: Option<SocketAddr>, origins: &[Origin]) -> Vec<String> {
    let url = format!("http://{bind}");
    let mut seen = Vec::new();
    // Two sessions opened: each on the server that set its cookie, learned from the response.
    let (first, cookie1) = curl(&[], &format!("{url}/login"));
    let (second, cookie2) = curl(&[], &format!("{url}/login"));
    let (cookie1, cookie2) = (cookie1.expect("a session cookie"), cookie2.expect("a session cookie"));
    assert_ne!(first, second, "{name}: round robin spreads new sessions");
    for (server, cookie) in [(&first, &cookie1), (&second, &cookie2)] {
        assert!(cookie.starts_with(server.as_str()), "{name}: {server} set {cookie}");
        let header = format!("Cookie: JSESSIONID={cookie}; theme=dark");
        for _ in 0..6 {
            assert_eq!(&curl(&["-H", &header], &format!("{url}/")).0, server, "{name}: session {cookie}");
        }
        if let Some(h2) = h2 {
            let (over_h2, _) = curl(&["--http2-prior-knowledge", "-H", &header], &format!("http://{h2}/"));
            assert_eq!(&over_h2, server, "{name}: session {cookie} over HTTP/2");
        }
    }
    seen.push(format!("sessions on distinct servers: {}", first != second));
    // A cookie no server set sticks too (`stick on` stores what the request carried).
    let (stray, _) = curl(&["-H", "Cookie: JSESSIONID=stray"], &format!("{url}/"));
    for _ in 0..4 {
        assert_eq!(curl(&["-H", "Cookie: JSESSIONID=stray"], &format!("{url}/")).0, stray, "{name}: stray");
    }
    // `stick match` on another backend's table, stored only by /login requests.
    let user = |path: &str, who: &str| curl(&["-H", &format!("X-User: {who}")], &format!("{url}{path}")).0;
    let alice = user("/login", "alice");
    let mut free: Vec<String> = (0..6).map(|_| user("/", "bob")).collect();
    free.sort();
    free.dedup();
    assert!(free.len() > 1, "{name}: bob never logged in, so he is not stuck: {free:?}");
    for _ in 0..6 {
        assert_eq!(user("/", "alice"), alice, "{name}: alice is stuck after her login");
    }
    seen.push(format!("users: unstuck spread {}", free.len() > 1));
    // The first session's server goes down: its client moves, and sticks to the new server.
    let index: usize = first.trim_start_matches('s').parse().expect("server index");
    origins[index].set_healthy(false);
    let header = format!("Cookie: JSESSIONID={cookie1}");
    until_avoided(&format!("{url}/health"), &first);
    let moved = curl(&["-H", &header], &format!("{url}/")).0;
    assert_ne!(moved, first, "{name}: a down server loses its sessions");
    for _ in 0..4 {
        assert_eq!(curl(&["-H", &header], &format!("{url}/")).0, moved, "{name}: the moved session sticks");
    }
    origins[index].set_healthy(true);
    std::thread::sleep(Duration::from_millis(400));
    // Back up, the server does not take the session back: the table now names the new one.
    assert_eq!(curl(&["-H", &header], &format!("{url}/")).0, moved, "{name}: the session stays where it moved");
    seen.push("redispatched and stuck again".to_string());
    seen
}

#[test]
fn application_cookies_are_learned_and_followed_as_haproxy_does() {
    if common::no_haproxy("stick rules against HAProxy") {
        return;
    }
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let dir = temp_dir("stick");
    // Each proxy gets its own origins, so health states and round robin start alike.
    let run = |haproxy: bool| {
        let origins: Vec<Origin> = (0..3).map(|i| Origin::spawn(&format!("s{i}"), any).expect("origin")).collect();
        let addrs: Vec<SocketAddr> = origins.iter().map(|o| o.addr).collect();
        let (bind, h2) = (free_addr(), free_addr());
        let text = cfg(bind, h2, &addrs);
        if haproxy {
            let _hap = common::start_haproxy(&dir, &text, bind);
            scenario("HAProxy", bind, None, &origins)
        } else {
            let _f = Fulcrum::start("stick.cfg", &text, bind);
            scenario("fulcrum", bind, Some(h2), &origins)
        }
    };
    let want = run(true);
    let got = run(false);
    assert_eq!(got, want);
}

/// `mode tcp` with `stick on src`: every connection of a client goes to one server, where
/// round robin alone would alternate.
#[test]
fn stick_on_src_holds_tcp_connections() {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let origins: Vec<Origin> = (0..2).map(|i| Origin::spawn(&format!("t{i}"), any).expect("origin")).collect();
    let bind = free_addr();
    let text = format!(
        "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\n\
         listen tcp\n    bind {bind}\n    balance roundrobin\n    stick-table type ip size 1k expire 10m\n    stick on src if {{ src 127.0.0.0/8 }}\n\
         \x20   server t0 {}\n    server t1 {}\n",
        origins[0].addr, origins[1].addr
    );
    let _f = Fulcrum::start("stick-tcp.cfg", &text, bind);
    let servers: Vec<String> = (0..8).map(|_| curl(&[], &format!("http://{bind}/")).0).collect();
    assert!(servers.iter().all(|s| s == &servers[0]) && !servers[0].is_empty(), "{servers:?}");
    // Without the rule, the same listener alternates (the rule is what holds them).
    let bind2 = free_addr();
    let _g = Fulcrum::start(
        "rr-tcp.cfg",
        &text.replace(&bind.to_string(), &bind2.to_string()).replace("    stick on src if { src 127.0.0.0/8 }\n", ""),
        bind2,
    );
    let servers: Vec<String> = (0..4).map(|_| curl(&[], &format!("http://{bind2}/")).0).collect();
    assert!(servers.iter().any(|s| s != &servers[0]), "{servers:?}");
}

/// The connection and request counters of stick tables, checked against HAProxy: `tcp-request
/// connection track-sc1` (the connection's entry: connections, sessions, current connections,
/// requests and errors of all its requests), `http-request track-sc0` in another table (each
/// request a connection there), `sc-inc-gpc1`, `sc-set-gpt0`, and a `tcp-request connection
/// reject` on a tag. The same requests through both; the counts the origin sees must agree.
#[test]
fn connection_and_request_counters_match_haproxy() {
    if common::no_haproxy("stick counters against HAProxy") {
        return;
    }
    let origin = Origin::spawn("web", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let cfg = |bind: SocketAddr| {
        format!(
            r#"{DEFAULTS}
frontend fe
    bind {bind}
    stick-table type ip size 1k expire 1m store conn_cnt,conn_cur,conn_rate(10s),sess_cnt,sess_rate(10s),http_req_cnt,http_err_cnt,http_err_rate(10s),gpc1,gpt0
    tcp-request connection track-sc1 src
    tcp-request connection reject if {{ sc1_get_gpt0 eq 7 }}
    http-request track-sc0 src table t2
    http-request sc-inc-gpc1(1) if {{ path /mark }}
    http-request sc-set-gpt0(1) 7 if {{ path /tag }}
    http-request deny deny_status 403 if {{ path /deny }}
    http-request set-header X-C "%[sc1_conn_cnt] %[sc1_sess_cnt] %[sc1_http_req_cnt] %[sc1_http_err_cnt] %[sc1_get_gpc1] %[sc1_get_gpt0] %[sc0_conn_cnt] %[sc0_http_req_cnt] %[sc0_tracked] %[sc2_tracked] %[src_conn_cnt] %[src_http_err_cnt(t2)]"
    http-request set-header X-T "%[src,table_conn_cnt(t2)] %[src,in_table(t2)] %[str(192.0.2.9),in_table(t2)] %[src,table_http_req_cnt(fe)] %[src,table_server_id(t2)]"
    http-request set-header X-Cur %[sc1_conn_cur]
    http-request set-header X-Rate "%[sc1_conn_rate] %[sc1_sess_rate] %[sc1_http_err_rate]"
    http-request set-path /headers unless {{ path_beg /status }}
    default_backend web
backend web
    server web {}
backend t2
    stick-table type ip size 1k store conn_cnt,conn_cur,http_req_cnt,http_err_cnt
"#,
            origin.addr
        )
    };
    let header = |text: &str, name: &str| {
        text.lines().find_map(|l| l.strip_prefix(&format!("{name}: "))).unwrap_or("-").trim().to_string()
    };
    let run = |addr: SocketAddr| -> Vec<String> {
        let url = |p: &str| format!("http://{addr}{p}");
        let mut seen = Vec::new();
        let get = |paths: &[&str]| -> String {
            let out = Command::new("curl")
                .args(["-s", "--max-time", "5", "-w", "%{http_code}\n"])
                .args(paths.iter().map(|p| url(p)))
                .output()
                .expect("curl");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        // Two requests on one connection, then one per connection.
        for paths in [&["/a", "/b"][..], &["/status/404"], &["/mark"], &["/deny"], &["/c"]] {
            let text = get(paths);
            seen.push(format!("{paths:?}: {} | {}", header(&text, "x-c"), header(&text, "x-t")));
            let rates = header(&text, "x-rate");
            assert!(rates == "-" || rates.split(' ').all(|r| r.parse::<u32>().is_ok()), "{text}");
        }
        // A connection held open counts in conn_cur while another asks.
        let mut held = std::net::TcpStream::connect(addr).expect("connect");
        use std::io::{Read, Write};
        held.write_all(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
        let mut buf = [0u8; 4096];
        let n = held.read(&mut buf).expect("read");
        assert!(n > 0);
        let text = get(&["/d"]);
        seen.push(format!("held: cur {} {}", header(&text, "x-cur"), header(&text, "x-c")));
        drop(held);
        // A tag set on the client's entry: its next connections are refused.
        seen.push(format!("tag: {}", get(&["/tag"]).lines().last().unwrap_or("")));
        seen.push(format!("after: {}", get(&["/after"]).trim()));
        seen
    };
    let (got, want) = common::against_haproxy("counters", cfg, run);
    assert_eq!(got, want, "fulcrum (left) and HAProxy (right)");
    assert_eq!(want.last().map(String::as_str), Some("after: 000"), "{want:?}");
}

/// `mode tcp`: at most one connection per client address (`conn_cur`), and the limit lifts
/// when the held connection ends.
#[test]
fn tcp_connections_per_client_are_limited() {
    let origin = Origin::spawn("t", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let bind = free_addr();
    let text = format!(
        "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\n\
         frontend f\n    bind {bind}\n    stick-table type ip size 1k expire 1m store conn_cur,conn_cnt\n\
         \x20   tcp-request connection track-sc0 src\n    tcp-request connection reject if {{ sc0_conn_cur gt 1 }}\n\
         \x20   default_backend b\nbackend b\n    server t {}\n",
        origin.addr
    );
    let _f = Fulcrum::start("limit.cfg", &text, bind);
    // The harness's own check connection is gone once the first request is answered.
    let url = format!("http://{bind}/");
    let ok = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while curl(&[], &url).0.is_empty() {
            assert!(Instant::now() < deadline, "{what}: never served");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    ok("alone");
    use std::io::{Read, Write};
    // (The connection just served may take a moment to end: until then a new one is refused.)
    let deadline = Instant::now() + Duration::from_secs(5);
    let held = loop {
        let mut held = std::net::TcpStream::connect(bind).expect("connect");
        held.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
        let mut buf = [0u8; 1024];
        if held.read(&mut buf).is_ok_and(|n| n > 0) {
            break held;
        }
        assert!(Instant::now() < deadline, "the held connection is never served");
        std::thread::sleep(Duration::from_millis(50));
    };
    for _ in 0..3 {
        assert_eq!(curl(&[], &url).0, "", "a second connection at once is refused");
    }
    drop(held);
    ok("after the first ended");
}
