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
            .map(|(i, a)| format!("    server {prefix}{i} {a} check inter 100ms fall 1 rise 1\n"))
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
    stick-table type string len 32 size 1k expire 30m
    stick on req.cook(JSESSIONID)
    stick store-response res.cook(JSESSIONID)
{app}backend by_user
    balance roundrobin
    option httpchk GET /health
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
    if Command::new("haproxy").arg("-v").output().is_err() {
        fulcrum_testkit::skip("stick rules against HAProxy", "haproxy");
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
         listen tcp\n    bind {bind}\n    balance roundrobin\n    stick-table type ip size 1k expire 10m\n    stick on src\n\
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
        &text.replace(&bind.to_string(), &bind2.to_string()).replace("    stick on src\n", ""),
        bind2,
    );
    let servers: Vec<String> = (0..4).map(|_| curl(&[], &format!("http://{bind2}/")).0).collect();
    assert!(servers.iter().any(|s| s != &servers[0]), "{servers:?}");
}
