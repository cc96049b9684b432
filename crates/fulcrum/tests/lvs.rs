//! keepalived.conf `virtual_server`: LVS services served by fulcrum's TCP proxy on loopback,
//! with the kernel's schedulers, persistence, keepalived's checkers, quorum and sorry server.
//! Servers answer `NAME:` and what the client sent before half-closing.
mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{free_addr, tagged_server, Fulcrum, Killed};

/// An HTTP health endpoint: `hello\n` (MD5 b1946ac92492d2347c6235b4d2611184) with 200 while
/// `healthy`, else a 503.
fn health(healthy: Arc<AtomicBool>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(5000) {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut head = [0u8; 1024];
            let _ = s.read(&mut head);
            let answer: &[u8] = if healthy.load(Ordering::Relaxed) {
                b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n"
            } else {
                b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nsick\n"
            };
            let _ = s.write_all(answer);
        }
    });
    addr
}

fn exchange_from(source: Option<IpAddr>, addr: SocketAddr, data: &str) -> String {
    let socket = match addr {
        SocketAddr::V4(_) => socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None),
        SocketAddr::V6(_) => socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None),
    }
    .expect("socket");
    if let Some(ip) = source {
        socket.bind(&SocketAddr::new(ip, 0).into()).expect("bind source");
    }
    socket.connect_timeout(&addr.into(), Duration::from_secs(5)).expect("connect");
    let mut s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    s.write_all(data.as_bytes()).expect("send");
    s.shutdown(Shutdown::Write).expect("half-close");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

fn exchange(addr: SocketAddr, data: &str) -> String {
    exchange_from(None, addr, data)
}

/// Who answered each of `n` connections.
fn who(addr: SocketAddr, n: usize) -> String {
    (0..n).map(|_| exchange(addr, "x").chars().next().unwrap_or('-')).collect()
}

/// A probe virtual server the start-up wait connects to, so the services under test see only
/// the test's connections.
fn probe() -> (SocketAddr, String) {
    let addr = free_addr();
    let text = format!(
        "virtual_server {} {} {{\n    protocol TCP\n    real_server 127.0.0.1 9 {{\n    }}\n}}\n",
        addr.ip(),
        addr.port()
    );
    (addr, text)
}

fn start(name: &str, text: &str) -> Fulcrum {
    let (addr, probe) = probe();
    Fulcrum::start(name, &format!("{text}{probe}"), addr)
}

fn vs(addr: SocketAddr, body: &str) -> String {
    format!("virtual_server {} {} {{\n    protocol TCP\n{body}}}\n", addr.ip(), addr.port())
}

fn rs(addr: SocketAddr, body: &str) -> String {
    format!("    real_server {} {} {{\n{body}    }}\n", addr.ip(), addr.port())
}

#[test]
fn schedulers_choose_as_the_kernel_does() {
    let (a, b, c) = (tagged_server("a", 500), tagged_server("b", 500), tagged_server("c", 500));
    let (wrr, fo, rr, wlc) = (free_addr(), free_addr(), free_addr(), free_addr());
    let weighted = |w: [u32; 3]| {
        [a, b, c].iter().zip(w).map(|(s, w)| rs(*s, &format!("        weight {w}\n"))).collect::<String>()
    };
    let text = [
        vs(wrr, &format!("    lb_algo wrr\n{}", weighted([3, 1, 0]))),
        vs(fo, &format!("    lvs_sched fo\n{}", weighted([1, 5, 5]))),
        vs(rr, &format!("    lvs_sched rr\n{}", weighted([1, 9, 1]))),
        vs(wlc, &format!("    lvs_sched wlc\n{}", weighted([1, 1, 1]))),
    ]
    .concat();
    let _f = start("schedulers.conf", &text);
    // wrr 3,1 (and a quiescent 0): the kernel's stepping gives a a a b, again and again.
    assert_eq!(who(wrr, 8), "aaabaaab");
    // fo: the highest weight, the first of equals.
    assert_eq!(who(fo, 3), "bbb");
    // rr ignores weights (except 0).
    assert_eq!(who(rr, 6), "abcabc");
    // wlc: idle servers tie, the first wins (once the previous connection is over: a closing
    // one still counts, as the kernel's inactive connections do); a connection held open on a
    // sends the next to b.
    for _ in 0..2 {
        assert_eq!(who(wlc, 1), "a");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut held = TcpStream::connect(wlc).expect("connect");
    held.write_all(b"held").expect("send");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(who(wlc, 1), "b");
    held.shutdown(Shutdown::Write).expect("half-close");
    let mut answer = String::new();
    held.read_to_string(&mut answer).expect("read");
    assert_eq!(answer, "a:held");
}

#[test]
fn source_hashing_keeps_a_client_and_spreads_ports_with_sh_port() {
    let (a, b, c) = (tagged_server("a", 500), tagged_server("b", 500), tagged_server("c", 500));
    let (sh, sh_port, mh) = (free_addr(), free_addr(), free_addr());
    let three = [a, b, c].iter().map(|s| rs(*s, "")).collect::<String>();
    let text = [
        vs(sh, &format!("    lvs_sched sh\n{three}")),
        vs(sh_port, &format!("    lvs_sched sh\n    sh-port\n{three}")),
        vs(mh, &format!("    lvs_sched mh\n{three}")),
    ]
    .concat();
    let _f = start("hashing.conf", &text);
    for addr in [sh, mh] {
        let seen = who(addr, 6);
        assert!(seen.chars().all(|ch| seen.starts_with(ch)), "one client, one server: {seen}");
        // Other client addresses spread.
        let spread: std::collections::BTreeSet<char> = (2..40)
            .map(|i| exchange_from(Some(IpAddr::from([127, 0, 0, i])), addr, "x").chars().next().unwrap_or('-'))
            .collect();
        assert!(spread.len() >= 2, "40 clients all on one server: {spread:?}");
    }
    // With sh-port, one client's connections (new source ports) spread too.
    let spread: std::collections::BTreeSet<char> = who(sh_port, 30).chars().collect();
    assert!(spread.len() >= 2, "{spread:?}");
}

#[test]
fn persistence_with_a_netmask_keeps_a_network_on_its_server_until_it_dies() {
    let (a, b) = (tagged_server("a", 500), tagged_server("b", 500));
    let healthy = [Arc::new(AtomicBool::new(true)), Arc::new(AtomicBool::new(true))];
    let checks = healthy.iter().map(|h| health(h.clone())).collect::<Vec<_>>();
    let addr = free_addr();
    let check = |port: u16| {
        format!("        HTTP_GET {{\n            url {{ path /health digest b1946ac92492d2347c6235b4d2611184 }}\n            connect_port {port}\n            retry 0\n            delay_loop 0.2\n        }}\n")
    };
    let body = format!(
        "    lvs_sched rr\n    persistence_timeout 30\n    persistence_granularity 255.255.255.0\n{}{}",
        rs(a, &check(checks[0].port())),
        rs(b, &check(checks[1].port()))
    );
    let f = start("persist.conf", &vs(addr, &body));
    let first = exchange_from(Some(IpAddr::from([127, 0, 0, 1])), addr, "1");
    let mine = first.chars().next().expect("an answer");
    // rr alone would alternate; the template keeps 127.0.0.0/24 on one server.
    for i in 2..8 {
        let answer = exchange_from(Some(IpAddr::from([127, 0, 0, i])), addr, "x");
        assert_eq!(answer.chars().next(), Some(mine), "client 127.0.0.{i}: {answer}");
    }
    // Another /24 starts its own template: rr gives it the other server.
    let other = exchange_from(Some(IpAddr::from([127, 0, 1, 1])), addr, "x");
    assert_ne!(other.chars().next(), Some(mine), "{other}");
    // A reload keeps the templates (rr starts over, the clients stay).
    f.signal("HUP");
    f.wait_log("reload applied", Duration::from_secs(10));
    for i in [20, 21] {
        let answer = exchange_from(Some(IpAddr::from([127, 0, 0, i])), addr, "x");
        assert_eq!(answer.chars().next(), Some(mine), "after the reload, 127.0.0.{i}: {answer}");
    }
    // The sticky server fails its check: the network is redispatched, and stays on the new one.
    let index = usize::from(mine == 'b');
    healthy[index].store(false, Ordering::Relaxed);
    f.wait_log("Removing service", Duration::from_secs(10));
    let moved = exchange_from(Some(IpAddr::from([127, 0, 0, 9])), addr, "x");
    assert_ne!(moved.chars().next(), Some(mine), "{moved}");
    healthy[index].store(true, Ordering::Relaxed);
    f.wait_log("Adding service", Duration::from_secs(10));
    let stays = exchange_from(Some(IpAddr::from([127, 0, 0, 10])), addr, "x");
    assert_eq!(stays.chars().next(), moved.chars().next(), "the new template holds: {stays}");
}

#[test]
fn checkers_remove_and_restore_servers_and_the_sorry_server_takes_over() {
    let (a, b, sorry) = (tagged_server("a", 500), tagged_server("b", 500), tagged_server("s", 500));
    let healthy = [Arc::new(AtomicBool::new(true)), Arc::new(AtomicBool::new(true))];
    let check_a = health(healthy[0].clone());
    let b_check_dead = Arc::new(AtomicBool::new(false));
    let addr = free_addr();
    // a: HTTP_GET with a digest; b: TCP_CHECK on a port the test opens and closes.
    let b_check = TcpListener::bind("127.0.0.1:0").expect("bind");
    let b_check_addr = b_check.local_addr().expect("addr");
    {
        let dead = b_check_dead.clone();
        std::thread::spawn(move || {
            for s in b_check.incoming().take(5000) {
                // Once told, the listener closes: connects are refused from then on.
                drop(s);
                if dead.load(Ordering::Relaxed) {
                    break;
                }
            }
        });
    }
    let body = format!(
        "    lvs_sched rr\n    delay_loop 0.2\n    sorry_server {} {}\n{}{}",
        sorry.ip(),
        sorry.port(),
        rs(
            a,
            &format!(
                "        HTTP_GET {{\n            url {{\n                path /health\n                digest b1946ac92492d2347c6235b4d2611184\n                status_code 200\n            }}\n            connect_port {}\n            retry 0\n        }}\n",
                check_a.port()
            )
        ),
        rs(b, &format!("        TCP_CHECK {{\n            connect_port {}\n            retry 1\n            delay_before_retry 0.1\n        }}\n", b_check_addr.port()))
    );
    let f = start("checkers.conf", &vs(addr, &body));
    assert_eq!(who(addr, 4), "abab");
    // a's digest no longer matches (503 "sick"): removed; b takes everything.
    healthy[0].store(false, Ordering::Relaxed);
    f.wait_log(&format!("Removing service {a}"), Duration::from_secs(10));
    assert_eq!(who(addr, 3), "bbb");
    // b's check port closes: b goes too (after its retry), and the sorry server serves.
    b_check_dead.store(true, Ordering::Relaxed);
    let _ = TcpStream::connect(b_check_addr);
    f.wait_log(&format!("Removing service {b}"), Duration::from_secs(10));
    f.wait_log("Lost quorum", Duration::from_secs(10));
    assert_eq!(who(addr, 2), "ss");
    // a recovers: quorum is back, the sorry server steps aside.
    healthy[0].store(true, Ordering::Relaxed);
    f.wait_log("Gained quorum", Duration::from_secs(10));
    assert_eq!(who(addr, 2), "aa");
}

#[test]
fn misc_dynamic_sets_the_weight_from_the_exit_status() {
    let (a, b) = (tagged_server("a", 500), tagged_server("b", 500));
    let dir = common::temp_dir("misc");
    let status = dir.join("status");
    std::fs::write(&status, "0").expect("write");
    let addr = free_addr();
    let misc = format!(
        "        MISC_CHECK {{\n            misc_path \"/bin/sh -c 'exit $(cat {})'\"\n            misc_dynamic\n            delay_loop 0.2\n        }}\n",
        status.display()
    );
    let body = format!("    lvs_sched wrr\n{}{}", rs(a, &misc), rs(b, ""));
    let f = start("misc.conf", &vs(addr, &body));
    assert_eq!(who(addr, 4), "abab");
    // Exit 2 with misc_dynamic: up, at weight 2 − 2 = 0 (quiescent): b takes everything.
    std::fs::write(&status, "2").expect("write");
    f.wait_log("Changing weight to 0", Duration::from_secs(10));
    assert_eq!(who(addr, 3), "bbb");
    // Exit 5: weight 3 against b's 1.
    std::fs::write(&status, "5").expect("write");
    f.wait_log("Changing weight to 3", Duration::from_secs(10));
    let seen = who(addr, 8);
    assert_eq!(seen.matches('a').count(), 6, "{seen}");
    // Exit 1: a failure; a goes down.
    std::fs::write(&status, "1").expect("write");
    f.wait_log(&format!("Removing service {a}"), Duration::from_secs(10));
    assert_eq!(who(addr, 2), "bb");
}

#[test]
fn the_seeds_keepalived_conf_checks_like_keepalived_and_runs_on_loopback() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/keepalived.conf");
    let out = std::process::Command::new(common::bin()).args(["check", "-c"]).arg(&example).output().expect("check");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The same file with its addresses moved into 127.0.0.0/8, and a real server there.
    let web = tagged_server("w", 500);
    let healthy = Arc::new(AtomicBool::new(true));
    let check = health(healthy);
    let text = std::fs::read_to_string(&example).expect("example");
    let start_at = text.find("virtual_server 10.10.10.2 1358").expect("second virtual server");
    let end_at = text.find("virtual_server 10.10.10.3 1358").expect("third virtual server");
    let vip = free_addr();
    let service = text[start_at..end_at]
        .replace("10.10.10.2 1358", &format!("{} {}", vip.ip(), vip.port()))
        .replace("sorry_server 192.168.200.200 1358", &format!("sorry_server {} {}", web.ip(), web.port()))
        .replace("192.168.200.2 1358", &format!("{} {}", web.ip(), web.port()))
        .replace("192.168.200.3 1358", &format!("127.0.0.1 {}", free_addr().port()))
        .replace("delay_loop 6", "delay_loop 0.2")
        .replace("delay_before_retry 3", "delay_before_retry 0.1")
        .replace("connect_timeout 3", &format!("connect_timeout 3\n            connect_port {}", check.port()));
    let f = start("seed.conf", &service);
    // The real servers' checks fail (their digests are the article's), so the sorry server
    // (here the same test server) answers, and the log says why.
    f.wait_log("Lost quorum", Duration::from_secs(10));
    assert_eq!(exchange(vip, "hi"), "w:hi");
    assert!(f.stderr().contains("MD5 digest error"), "{}", f.stderr());
}

#[test]
fn ssl_get_checks_a_real_tls_server_by_its_digest() {
    let dir = common::temp_dir("ssl-get");
    common::self_signed(&dir);
    std::fs::write(dir.join("health"), "hello\n").expect("write");
    let tls = free_addr();
    let _server = Killed(
        std::process::Command::new("openssl")
            .args(["s_server", "-quiet", "-WWW", "-accept"])
            .arg(tls.to_string())
            .args(["-cert", "cert.pem", "-key", "key.pem"])
            .current_dir(&dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("openssl s_server"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(tls).is_err() {
        assert!(std::time::Instant::now() < deadline, "s_server does not listen on {tls}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (a, b) = (tagged_server("a", 500), tagged_server("b", 500));
    let addr = free_addr();
    // a is checked over TLS (s_server -WWW serves the file `health`); b has no checker.
    let check = format!(
        "        SSL_GET {{\n            url {{ path /health digest b1946ac92492d2347c6235b4d2611184 }}\n            connect_port {}\n            retry 0\n            delay_loop 0.3\n        }}\n",
        tls.port()
    );
    let body = format!("    lvs_sched rr\n    alpha\n{}{}", rs(a, &check), rs(b, ""));
    let f = start("ssl_get.conf", &vs(addr, &body));
    // alpha: a starts down and comes up on its first good TLS check.
    f.wait_log(&format!("Adding service {a}"), Duration::from_secs(10));
    assert_eq!(who(addr, 4), "abab");
    // The body changes: the digest no longer matches.
    std::fs::write(dir.join("health"), "changed\n").expect("write");
    f.wait_log(&format!("Removing service {a}"), Duration::from_secs(10));
    assert!(f.stderr().contains("MD5 digest error"), "{}", f.stderr());
    assert_eq!(who(addr, 2), "bb");
}

/// A DNS server for the test: answers every query with its id, QR set and `rcode`.
fn dns(rcode: Arc<std::sync::atomic::AtomicU8>) -> SocketAddr {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = socket.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        for _ in 0..5000 {
            let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
            if n < 12 {
                continue;
            }
            let mut reply = buf[..n].to_vec();
            reply[2] = 0x81;
            reply[3] = 0x80 | rcode.load(Ordering::Relaxed);
            let _ = socket.send_to(&reply, from);
        }
    });
    addr
}

#[test]
fn dns_check_follows_the_answers_rcode() {
    let rcode = Arc::new(std::sync::atomic::AtomicU8::new(0));
    let resolver = dns(rcode.clone());
    let (a, b) = (tagged_server("a", 500), tagged_server("b", 500));
    let addr = free_addr();
    let check = format!(
        "        DNS_CHECK {{\n            type A\n            name example.com\n            connect_ip {}\n            connect_port {}\n            retry 0\n            delay_loop 0.2\n        }}\n",
        resolver.ip(),
        resolver.port()
    );
    let body = format!("    lvs_sched rr\n{}{}", rs(a, &check), rs(b, ""));
    let f = start("dns.conf", &vs(addr, &body));
    assert_eq!(who(addr, 2), "ab");
    // SERVFAIL: a is removed, and back once the server answers again.
    rcode.store(2, Ordering::Relaxed);
    f.wait_log(&format!("Removing service {a}"), Duration::from_secs(10));
    assert!(f.stderr().contains("rcode = 2"), "{}", f.stderr());
    assert_eq!(who(addr, 2), "bb");
    rcode.store(0, Ordering::Relaxed);
    f.wait_log(&format!("Adding service {a}"), Duration::from_secs(10));
}
