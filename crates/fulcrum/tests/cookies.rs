//! Cookie persistence with every option, checked against HAProxy itself: the same haproxy.cfg
//! in HAProxy 2.6 and fulcrum, the same requests; the servers reached and the `Set-Cookie`
//! headers (dates aside, which follow the clock) must agree. `maxidle`/`maxlife` dates,
//! several domains, `attr`, `postonly`, `dynamic` with `dynamic-cookie-key` (the same value
//! as HAProxy's), passive mode, `ignore-persist`, `force-persist` and `option persist`.
mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use fulcrum_testkit::Origin;

fn cfg(bind: SocketAddr, servers: &[SocketAddr]) -> String {
    let [a, b, c] = servers else { panic!("three servers") };
    format!(
        r#"defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
    timeout check 2s
frontend fe
    bind {bind}
    use_backend post if {{ path_beg /post }}
    use_backend dyn if {{ path_beg /dyn }}
    use_backend passive if {{ path_beg /passive }}
    default_backend app
backend app
    balance roundrobin
    cookie SRV insert indirect nocache maxidle 30m maxlife 8h domain .example.com domain .example.org attr SameSite=Lax httponly
    ignore-persist if {{ path_beg /static }}
    force-persist if {{ req.hdr(x-force) 1 }}
    option httpchk GET /health
    server s0 {a} cookie c0 check inter 100ms fall 2 rise 1
    server s1 {b} cookie c1 check inter 100ms fall 2 rise 1
    server s2 {c} cookie c2 check inter 100ms fall 2 rise 1
backend post
    balance roundrobin
    cookie P insert postonly
    server s0 {a} cookie p0
    server s1 {b} cookie p1
backend dyn
    balance roundrobin
    cookie D insert dynamic
    dynamic-cookie-key s3cr3t
    server s0 {a}
    server s1 {b}
backend passive
    balance roundrobin
    cookie JSESSIONID
    option persist
    server s0 {a} cookie s0
    server s1 {b} cookie s1
"#
    )
}

/// `curl ARGS URL` → (the server that answered, the Set-Cookie header with its dates masked).
fn get(args: &[&str], url: &str) -> (String, String) {
    let out = Command::new("curl").args(["-s", "-i", "--max-time", "5"]).args(args).arg(url).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    let header = |name: &str| {
        text.lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
            .unwrap_or("-")
            .to_string()
    };
    (header("x-served-by"), mask(&header("set-cookie")))
}

/// A `|DATE|DATE` cookie's dates replaced by `|D` (five base64 digits each).
fn mask(cookie: &str) -> String {
    let mut out = String::new();
    let mut rest = cookie;
    while let Some(at) = rest.find('|') {
        out.push_str(&rest[..at]);
        out.push_str("|D");
        rest = rest.get(at + 6..).unwrap_or("");
    }
    out + rest
}

/// HAProxy's 30-bit date (seconds / 4) in its five base64 digits.
fn date(secs: u64) -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let v = (secs >> 2) as u32;
    (0..5).map(|i| char::from(B64[((v >> (24 - 6 * i)) & 0x3f) as usize])).collect()
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

fn scenario(bind: SocketAddr, origins: &[Origin]) -> Vec<String> {
    let url = |p: &str| format!("http://{bind}{p}");
    let mut seen = Vec::new();
    let note = |seen: &mut Vec<String>, what: &str, (server, cookie): (String, String)| {
        seen.push(format!("{what}: {server} {cookie}"))
    };
    // A first visit: the cookie with its dates, both domains and the attribute.
    note(&mut seen, "first", get(&[], &url("/")));
    // A valid cookie (dates now) keeps the client on c1's server.
    let fresh = format!("Cookie: SRV=c1|{}|{}", date(now() + 3), date(now()));
    for _ in 0..3 {
        let (server, _) = get(&["-H", &fresh], &url("/"));
        seen.push(format!("fresh: {server}"));
    }
    // Idle beyond maxidle, or older than maxlife: ignored, a new one is set.
    let idle = format!("Cookie: SRV=c1|{}|{}", date(now() - 3600), date(now() - 3600));
    note(&mut seen, "idle", get(&["-H", &idle], &url("/")));
    let old = format!("Cookie: SRV=c1|{}|{}", date(now()), date(now() - 10 * 3600));
    note(&mut seen, "old", get(&["-H", &old], &url("/")));
    // ignore-persist: the cookie does not count, and none is set.
    let (_, cookie) = get(&["-H", &fresh], &url("/static/x"));
    seen.push(format!("ignored: {cookie}"));
    // postonly: a cookie in answers to POST only.
    note(&mut seen, "get", get(&[], &url("/post")));
    note(&mut seen, "post", get(&["-X", "POST", "-d", "x"], &url("/post")));
    // dynamic: the same value HAProxy computes from the key and the server's address.
    for _ in 0..2 {
        note(&mut seen, "dyn", get(&[], &url("/dyn")));
    }
    // passive: read, never set.
    for _ in 0..3 {
        note(&mut seen, "passive", get(&["-H", "Cookie: JSESSIONID=s1"], &url("/passive")));
    }
    // c2's server goes down: the cookie is ignored, unless force-persist holds.
    origins[2].set_healthy(false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while (0..4).any(|_| get(&[], &url("/health")).0 == "s2") {
        assert!(Instant::now() < deadline, "s2 never went down");
        std::thread::sleep(Duration::from_millis(100));
    }
    let down = format!("Cookie: SRV=c2|{}|{}", date(now() + 3), date(now()));
    let (server, _) = get(&["-H", &down], &url("/"));
    seen.push(format!("down: moved {}", server != "s2"));
    let (server, _) = get(&["-H", &down, "-H", "X-Force: 1"], &url("/"));
    seen.push(format!("forced: {server}"));
    origins[2].set_healthy(true);
    seen
}

#[test]
fn cookie_options_behave_as_in_haproxy() {
    if common::no_haproxy("cookie options against HAProxy") {
        return;
    }
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    // The same servers for both: the dynamic cookie depends on their addresses.
    let origins: Vec<Origin> = (0..3).map(|i| Origin::spawn(&format!("s{i}"), any).expect("origin")).collect();
    let servers: Vec<SocketAddr> = origins.iter().map(|o| o.addr).collect();
    let (got, want) = common::against_haproxy("cookies", |bind| cfg(bind, &servers), |bind| scenario(bind, &origins));
    if std::env::var("DEBUG_COOKIES").is_ok() {
        eprintln!("{want:#?}");
    }
    assert_eq!(got, want, "fulcrum (left) and HAProxy (right)");
    assert!(want.iter().any(|l| l.starts_with("dyn:") && l.contains("D=")), "{want:?}");
}
