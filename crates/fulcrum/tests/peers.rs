//! Peers: stick tables kept in step between nodes over HAProxy's peers protocol. A session
//! learned on one node (an application cookie stored with its server) sends the client to the
//! same server through the other, between fulcrum and HAProxy 2.6 both ways, and between two
//! fulcrum processes; a node that starts again is taught everything by a full resync; counters
//! travel too.
mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_addr, temp_dir, Fulcrum};
use fulcrum_testkit::Origin;

/// The configuration of one node; `me` is its peer name, `others` its peers.
fn cfg(dir: &Path, me: &str, bind: SocketAddr, peers: &[(&str, SocketAddr)], servers: &[SocketAddr]) -> String {
    let peer_lines: String = peers.iter().map(|(n, a)| format!("    peer {n} {a}\n")).collect();
    let server_lines: String = servers.iter().enumerate().map(|(i, a)| format!("    server s{i} {a}\n")).collect();
    format!(
        "global\n    localpeer {me}\n    stats socket {sock} mode 600 level admin\n\
         defaults\n    mode http\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\n\
         peers mypeers\n{peer_lines}    table hits type ip size 1k expire 10m store http_req_cnt,http_req_rate(1m)\n\
         frontend fe\n    bind {bind}\n    http-request track-sc0 src table mypeers/hits if {{ path /count }}\n\
         \x20   http-request return status 200 content-type text/plain lf-string \"%[src_http_req_cnt(mypeers/hits)]\" if {{ path /seen }}\n\
         \x20   default_backend app\n\
         backend app\n    balance roundrobin\n    stick-table type string len 32 size 1k expire 30m peers mypeers\n\
         \x20   stick match req.cook(JSESSIONID)\n    stick store-response res.cook(JSESSIONID)\n{server_lines}",
        sock = dir.join(format!("{me}.sock")).display(),
    )
}

/// `curl` → (the server that answered, the body, the session cookie it set).
fn get(url: &str, cookie: Option<&str>) -> (String, String, Option<String>) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-i", "--max-time", "5"]);
    if let Some(c) = cookie {
        cmd.args(["-H", &format!("Cookie: JSESSIONID={c}")]);
    }
    let out = cmd.arg(url).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let header = |name: &str| {
        head.lines().find_map(|l| {
            l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string())
        })
    };
    let session = header("set-cookie").and_then(|c| c.strip_prefix("JSESSIONID=")?.split(';').next().map(String::from));
    (header("x-served-by").unwrap_or_default(), body.trim().to_string(), session)
}

/// Waits until requests with `cookie` through `url` keep going to `server` (6 in a row: round
/// robin over three servers would not do that by chance); panics after 10 s.
fn until_stuck(url: &str, cookie: &str, server: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut in_a_row = 0;
    while in_a_row < 6 {
        assert!(Instant::now() < deadline, "{what}: {cookie} never stuck to {server}");
        if get(url, Some(cookie)).0 == server {
            in_a_row += 1;
        } else {
            in_a_row = 0;
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `show table NAME` through a stats socket (HAProxy's, or fulcrum's).
fn show_table(sock: &Path, table: &str) -> String {
    show_table_cmd(sock, &format!("show table {table}"))
}

/// A runtime API command line through a stats socket; its answer (nothing while the socket
/// is not answered yet: a process just started).
fn show_table_cmd(sock: &Path, line: &str) -> String {
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(sock) else { return String::new() };
    let mut out = String::new();
    if s.write_all(format!("{line}\n").as_bytes()).is_ok() {
        let _ = s.read_to_string(&mut out);
    }
    out
}

fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn origins() -> (Vec<Origin>, Vec<SocketAddr>) {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let origins: Vec<Origin> = (0..3).map(|i| Origin::spawn(&format!("s{i}"), any).expect("origin")).collect();
    let addrs = origins.iter().map(|o| o.addr).collect();
    (origins, addrs)
}

#[test]
fn sessions_and_counters_travel_between_fulcrum_and_haproxy() {
    if common::no_haproxy("peers with HAProxy") {
        return;
    }
    let (_origins, servers) = origins();
    let dir = temp_dir("peers-hap");
    let (hap_bind, ful_bind) = (free_addr(), free_addr());
    let peers = [("hap", free_addr()), ("ful", free_addr())];
    let _hap = common::start_haproxy(&dir, &cfg(&dir, "hap", hap_bind, &peers, &servers), hap_bind);
    let ful_cfg = cfg(&dir, "ful", ful_bind, &peers, &servers);
    let mut ful = Fulcrum::start("ful.cfg", &ful_cfg, ful_bind);
    let (hap_url, ful_url) = (format!("http://{hap_bind}"), format!("http://{ful_bind}"));

    // HAProxy → fulcrum: a session opened through HAProxy is followed by fulcrum.
    let (server, _, cookie) = get(&format!("{hap_url}/login"), None);
    let cookie = cookie.expect("a session cookie");
    until_stuck(&ful_url, &cookie, &server, "learned from HAProxy");

    // fulcrum → HAProxy: HAProxy's own table shows the entry with the server's number and
    // name, and HAProxy follows it.
    let (server2, _, cookie2) = get(&format!("{ful_url}/login"), None);
    let cookie2 = cookie2.expect("a session cookie");
    let sock = dir.join("hap.sock");
    let line = until("HAProxy learns fulcrum's entry", || {
        show_table(&sock, "app").lines().find(|l| l.contains(&format!("key={cookie2} "))).map(String::from)
    });
    let index: usize = server2.trim_start_matches('s').parse().expect("index");
    assert!(line.contains(&format!("server_id={} ", index + 1)), "{line}");
    assert!(line.ends_with(&format!("server_key={server2}")), "{line}");
    until_stuck(&hap_url, &cookie2, &server2, "learned from fulcrum");

    // Both tables hold the same entries, as both runtime APIs show them (`show table` on the
    // stats socket; the entries' addresses and remaining times aside).
    let norm = |text: String| -> Vec<String> {
        let mut lines: Vec<String> = text
            .lines()
            .map(|l| {
                let l = l.split_once(": key=").map_or(l.to_string(), |(_, rest)| format!("key={rest}"));
                l.split(' ').filter(|w| !w.starts_with("exp=")).collect::<Vec<_>>().join(" ")
            })
            .collect();
        lines.sort();
        lines
    };
    let ful_sock = dir.join("ful.sock");
    let agree = || norm(show_table(&ful_sock, "app")) == norm(show_table(&sock, "app"));
    if !(0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        agree()
    }) {
        panic!("the tables differ:\n{}\n{}", show_table(&ful_sock, "app"), show_table(&sock, "app"));
    }
    assert!(show_table(&ful_sock, "app").contains(&format!("key={cookie2} use=0")), "{}", show_table(&ful_sock, "app"));
    // Counters: requests counted on fulcrum appear in HAProxy's table, and the other way.
    for _ in 0..3 {
        get(&format!("{ful_url}/count"), None);
    }
    until("HAProxy sees fulcrum's counter", || {
        show_table(&sock, "mypeers/hits").contains("http_req_cnt=3").then_some(())
    });
    get(&format!("{hap_url}/count"), None);
    until("fulcrum sees HAProxy's counter", || (get(&format!("{ful_url}/seen"), None).1 == "4").then_some(()));

    // fulcrum starts again: HAProxy teaches it everything (a full resync).
    drop(std::mem::replace(&mut ful, Fulcrum::start("ful2.cfg", &ful_cfg, ful_bind)));
    until_stuck(&ful_url, &cookie, &server, "taught after a restart");
    until_stuck(&ful_url, &cookie2, &server2, "its own entry, back from HAProxy");
    assert_eq!(get(&format!("{ful_url}/seen"), None).1, "4");
}

#[test]
fn two_fulcrum_nodes_share_their_tables() {
    let (_origins, servers) = origins();
    let dir = temp_dir("peers-ful");
    let (a_bind, b_bind) = (free_addr(), free_addr());
    let peers = [("a", free_addr()), ("b", free_addr())];
    let a = Fulcrum::start("a.cfg", &cfg(&dir, "a", a_bind, &peers, &servers), a_bind);
    let b_cfg = cfg(&dir, "b", b_bind, &peers, &servers);
    let mut b = Fulcrum::start("b.cfg", &b_cfg, b_bind);
    let (a_url, b_url) = (format!("http://{a_bind}"), format!("http://{b_bind}"));
    let mut sessions = Vec::new();
    for url in [&a_url, &b_url, &a_url] {
        let (server, _, cookie) = get(&format!("{url}/login"), None);
        sessions.push((server, cookie.expect("a session cookie")));
    }
    for (server, cookie) in &sessions {
        until_stuck(&a_url, cookie, server, "on a");
        until_stuck(&b_url, cookie, server, "on b");
    }
    for _ in 0..2 {
        get(&format!("{a_url}/count"), None);
    }
    until("b sees a's counter", || (get(&format!("{b_url}/seen"), None).1 == "2").then_some(()));
    // b starts again and is taught by a; a restarted node's peer name is refused elsewhere.
    // Many entries on a (set through its runtime API): more than one batch of a full resync.
    let many: Vec<String> = (0..450)
        .map(|i| format!("set table mypeers/hits key 10.9.{}.{} data.http_req_cnt 7", i / 200, i % 200))
        .collect();
    show_table_cmd(&dir.join("a.sock"), &many.join(";"));
    until("a holds them", || show_table(&dir.join("a.sock"), "mypeers/hits").contains("used:451").then_some(()));
    drop(std::mem::replace(&mut b, Fulcrum::start("b2.cfg", &b_cfg, b_bind)));
    until("b is taught every entry", || {
        show_table(&dir.join("b.sock"), "mypeers/hits").contains("used:451").then_some(())
    });
    assert!(show_table(&dir.join("b.sock"), "mypeers/hits").contains("key=10.9.2.49 use=0"));
    for (server, cookie) in &sessions {
        until_stuck(&b_url, cookie, server, "b after its restart");
    }
    let log = a.stderr();
    assert!(log.contains("connected"), "{log}");
}
