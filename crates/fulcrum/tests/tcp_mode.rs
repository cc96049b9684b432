//! `mode tcp` (haproxy.cfg): a full TCP proxy, tested with real sockets on loopback. Servers
//! here read until the client half-closes, answer `NAME:` and what they read, then close.
mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{free_addr, tagged_server, Fulcrum};

/// Sends `data`, half-closes, reads the answer to its end.
fn exchange(addr: SocketAddr, data: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    s.write_all(data).expect("send");
    s.shutdown(Shutdown::Write).expect("half-close");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    answer
}

fn cfg(bind: SocketAddr, mode: &str, backend: &str) -> String {
    format!(
        "global\n    maxconn 100\ndefaults\n{mode}    timeout client 5s\n    timeout server 5s\n    timeout connect 1s\n\
         frontend tcpin\n    bind {bind}\n    default_backend app\nbackend app\n{backend}"
    )
}

/// Starts fulcrum on `text` plus a probe frontend of its own, which the start-up wait connects
/// to: the frontends under test see no connection but the test's, so sequences are exact.
fn start(name: &str, text: &str) -> Fulcrum {
    let probe = free_addr();
    let text = format!(
        "{text}frontend probe\n    mode tcp\n    bind {probe}\n    default_backend sink\n\
         backend sink\n    mode tcp\n    retries 0\n    server nowhere 127.0.0.1:9\n"
    );
    Fulcrum::start(name, &text, probe)
}

#[test]
fn relays_both_ways_with_half_close_and_round_robin() {
    let (s1, s2) = (tagged_server("s1", 8), tagged_server("s2", 8));
    let bind = free_addr();
    let backend = format!("    balance roundrobin\n    server s1 {s1}\n    server s2 {s2}\n");
    let _f = start("tcp.cfg", &cfg(bind, "    mode tcp\n", &backend));
    let answers: Vec<String> = (0..4).map(|i| exchange(bind, format!("hello {i}").as_bytes())).collect();
    assert_eq!(answers, ["s1:hello 0", "s2:hello 1", "s1:hello 2", "s2:hello 3"]);
    // A large upload and its echo: bytes are relayed as they are, both ways.
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let answer = {
        let mut s = TcpStream::connect(bind).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        let writer = {
            let mut w = s.try_clone().expect("clone");
            let big = big.clone();
            std::thread::spawn(move || {
                w.write_all(&big).expect("send");
                w.shutdown(Shutdown::Write).expect("half-close");
            })
        };
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).expect("read");
        writer.join().expect("writer");
        answer
    };
    assert_eq!(&answer[..3], b"s1:");
    assert!(answer[3..] == big[..], "the echo differs from what was sent");
}

#[test]
fn a_section_without_mode_is_tcp_as_in_haproxy() {
    let s1 = tagged_server("plain", 2);
    let bind = free_addr();
    let _f = start("nomode.cfg", &cfg(bind, "", &format!("    server s1 {s1}\n")));
    assert_eq!(exchange(bind, b"GET / HTTP/1.1\r\n\r\n"), "plain:GET / HTTP/1.1\r\n\r\n");
}

#[test]
fn connection_failures_retry_then_redispatch() {
    let good = tagged_server("good", 8);
    let (_held, dead) = common::dead_addr();
    let bind = free_addr();
    let backend = format!("    retries 2\n    option redispatch\n    server dead {dead}\n    server good {good}\n");
    let f = start("redispatch.cfg", &cfg(bind, "    mode tcp\n    option tcplog\n", &backend));
    for i in 0..4 {
        assert_eq!(exchange(bind, format!("{i}").as_bytes()), format!("good:{i}"));
    }
    // The log shows it: a retry, then the good server.
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let log = f.stderr();
        if let Some(l) = log.lines().find(|l| l.contains(" tcpin app/good ") && l.ends_with(" 2")) {
            break l.to_string();
        }
        assert!(Instant::now() < deadline, "no tcplog line with two retries:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(line.contains(" -- "), "{line}");
    // Nothing to connect to at all: the client is closed without a byte (SC in the log).
    let bind2 = free_addr();
    let f2 = start(
        "dead.cfg",
        &cfg(bind2, "    mode tcp\n    option tcplog\n", &format!("    retries 1\n    server dead {dead}\n")),
    );
    assert_eq!(exchange(bind2, b"x"), "");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f2.stderr().lines().any(|l| l.contains(" tcpin app/dead ") && l.contains(" SC ")) {
        assert!(Instant::now() < deadline, "no SC line:\n{}", f2.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn idle_connections_end_after_the_inactivity_timeout() {
    // A server that keeps the connection open and silent.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let held: Vec<TcpStream> = listener.incoming().take(2).filter_map(Result::ok).collect();
        std::thread::sleep(Duration::from_secs(15));
        drop(held);
    });
    let bind = free_addr();
    let text = cfg(bind, "    mode tcp\n", &format!("    timeout server 400ms\n    server quiet {silent}\n"))
        .replace("timeout client 5s", "timeout client 400ms");
    let _f = start("idle.cfg", &text);
    let mut s = TcpStream::connect(bind).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let started = Instant::now();
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf).expect("closed by the proxy"), 0);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300), "closed before the timeout: {waited:?}");

    // With `timeout tunnel 10s`, the same silence is kept open past the client/server timeouts.
    let bind2 = free_addr();
    let text2 = text
        .replace(&bind.to_string(), &bind2.to_string())
        .replace("    timeout server 400ms\n", "    timeout server 400ms\n    timeout tunnel 10s\n");
    let _f2 = start("tunnel.cfg", &text2);
    let mut s2 = TcpStream::connect(bind2).expect("connect");
    s2.set_read_timeout(Some(Duration::from_millis(1500))).expect("timeout");
    let kept = s2.read(&mut buf).expect_err("still open after 1.5 s");
    assert!(matches!(kept.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "{kept}");
}

#[test]
fn balance_source_keeps_a_client_on_one_server() {
    let (a, b, c) = (tagged_server("a", 16), tagged_server("b", 16), tagged_server("c", 16));
    let bind = free_addr();
    let backend = format!("    balance source\n    server a {a}\n    server b {b}\n    server c {c}\n");
    let _f = start("source.cfg", &cfg(bind, "    mode tcp\n", &backend));
    let first = exchange(bind, b"1");
    let name = first.split(':').next().expect("name").to_string();
    for i in 0..5 {
        assert_eq!(exchange(bind, format!("{i}").as_bytes()), format!("{name}:{i}"));
    }
}

#[test]
fn modes_must_agree() {
    let dir = common::temp_dir("modes");
    let path = dir.join("mixed.cfg");
    let text = "defaults\n    timeout client 5s\n    timeout server 5s\n    timeout connect 1s\n\
                frontend web\n    mode http\n    bind 127.0.0.1:18081\n    default_backend raw\n\
                backend raw\n    mode tcp\n    server s1 127.0.0.1:9\n";
    std::fs::write(&path, text).expect("write");
    let out = std::process::Command::new(common::bin()).arg("check").arg("-c").arg(&path).output().expect("check");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("frontend 'web' (mode http) cannot use backend 'raw' (mode tcp)"), "{err}");
}

#[test]
fn timeout_server_fin_ends_a_half_closed_tunnel() {
    // A server that reads to the end and then neither answers nor closes.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(2) {
            let Ok(mut s) = stream else { continue };
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            held.push(s);
        }
        std::thread::sleep(Duration::from_secs(60));
    });
    let bind = free_addr();
    let backend = format!("    timeout tunnel 60s\n    timeout server-fin 1s\n    server s1 {silent}\n");
    let _f = start("serverfin.cfg", &cfg(bind, "    mode tcp\n", &backend));
    let mut s = TcpStream::connect(bind).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    s.write_all(b"bye").expect("send");
    s.shutdown(Shutdown::Write).expect("half-close");
    // The client has closed its side: the silent server gets `server-fin`, not the 60 s
    // tunnel timeout, and the client sees the end.
    let started = Instant::now();
    let mut rest = Vec::new();
    let read = s.read_to_end(&mut rest);
    assert!(read.is_ok(), "the proxy closed the connection: {read:?}");
    assert!(started.elapsed() < Duration::from_secs(20), "closed by server-fin, long before the tunnel timeout");
}
