//! HTTP/1 hardening: heads over HAProxy's limits (`tune.bufsize` less `tune.maxrewrite`,
//! `tune.http.maxhdr`), Host as RFC 9112 §3.2 wants it, and body framing that could smuggle a
//! request, refused with 400 and never forwarded; the same limits on servers' responses (502).
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use common::*;

fn any() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

fn cfg(bind: SocketAddr, global: &str, server: SocketAddr) -> String {
    format!(
        "global\n    nbthread 1\n{global}defaults\n    mode http\n    option httplog\n    timeout connect 1s\n    timeout client 5s\n    timeout server 2s\n\
         frontend fe\n    bind {bind}\n    default_backend be\nbackend be\n    server a {server}\n"
    )
}

fn fields(n: usize) -> String {
    (0..n).map(|i| format!("X-Field-{i}: y\r\n")).collect()
}

#[test]
fn heads_over_the_limits_are_refused_logged_and_never_forwarded() {
    let a = Origin::spawn("a", any()).expect("origin");
    let bind = free_addr();
    let log = temp_dir("hardening").join("access.log");
    let path = log.to_str().expect("utf-8 path");
    let _f = Fulcrum::start_with("limits.cfg", &cfg(bind, "", a.addr), bind, &["--access-log", path]);
    let ok =
        |extra: &str| raw(bind, format!("GET / HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n").as_bytes());
    // tune.http.maxhdr 101: Host and Connection plus 99 more pass, one more does not.
    assert!(ok(&fields(99)).starts_with("HTTP/1.1 200"));
    let before = a.requests();
    assert!(ok(&fields(100)).starts_with("HTTP/1.1 400"));
    // 16384 - 1024 bytes of head: a 15,000-byte field passes, 15,400 and 120 KB do not.
    assert!(ok(&format!("X-Big: {}\r\n", "a".repeat(15_000))).starts_with("HTTP/1.1 200"));
    let before_big = a.requests();
    assert!(ok(&format!("X-Big: {}\r\n", "a".repeat(15_400))).starts_with("HTTP/1.1 400"));
    let huge = ok(&format!("X-Big: {}\r\n", "a".repeat(120_000)));
    assert!(huge.starts_with("HTTP/1.1 400"), "{:?}", &huge[..huge.len().min(60)]);
    assert_eq!(a.requests(), before_big, "a refused head reached the server");
    assert_eq!(before + 1, before_big);
    std::thread::sleep(Duration::from_millis(200));
    let text = std::fs::read_to_string(&log).expect("access log");
    let refused: Vec<&str> = text.lines().filter(|l| l.contains(" 400 ")).collect();
    assert_eq!(refused.len(), 3, "{text}");
    assert!(refused.iter().all(|l| l.contains(" PR-- ") && l.contains("<BADREQ>")), "{text}");

    // The limits follow tune.bufsize, tune.maxrewrite and tune.http.maxhdr.
    let bind2 = free_addr();
    let tuned = "    tune.bufsize 8192\n    tune.maxrewrite 1024\n    tune.http.maxhdr 10\n";
    let _g = Fulcrum::start("tuned.cfg", &cfg(bind2, tuned, a.addr), bind2);
    let ok2 =
        |extra: &str| raw(bind2, format!("GET / HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n").as_bytes());
    assert!(ok2(&fields(8)).starts_with("HTTP/1.1 200"));
    assert!(ok2(&fields(9)).starts_with("HTTP/1.1 400"));
    assert!(ok2(&format!("X-Big: {}\r\n", "a".repeat(7_000))).starts_with("HTTP/1.1 200"));
    assert!(ok2(&format!("X-Big: {}\r\n", "a".repeat(7_200))).starts_with("HTTP/1.1 400"));
}

#[test]
fn host_must_be_there_once_and_valid() {
    let a = Origin::spawn("a", any()).expect("origin");
    let bind = free_addr();
    let _f = Fulcrum::start("host.cfg", &cfg(bind, "", a.addr), bind);
    let before = a.requests();
    for bad in [
        "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a/b\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a:80x\r\nConnection: close\r\n\r\n",
    ] {
        let reply = raw(bind, bad.as_bytes());
        assert!(reply.starts_with("HTTP/1.1 400"), "{bad:?} -> {reply:?}");
    }
    assert_eq!(a.requests(), before, "a request with a bad Host reached the server");
    // HTTP/1.0 may leave Host out; the server, spoken to in HTTP/1.1, gets its own address.
    let old = raw(bind, b"GET /headers HTTP/1.0\r\n\r\n");
    assert!(old.contains(" 200 ") && old.contains(&format!("host: {}", a.addr)), "{old}");
    // An absolute-form target's authority replaces Host (RFC 9112 §3.2.2).
    let abs = raw(bind, b"GET http://abs.example:81/headers HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n");
    assert!(abs.starts_with("HTTP/1.1 200"), "{abs}");
    assert!(abs.contains("host: abs.example:81"), "{abs}");
    assert!(!abs.contains("host: other"), "{abs}");
}

#[test]
fn framing_that_could_smuggle_a_request_is_refused() {
    let a = Origin::spawn("a", any()).expect("origin");
    let bind = free_addr();
    let _f = Fulcrum::start("framing.cfg", &cfg(bind, "", a.addr), bind);
    let before = a.requests();
    for bad in [
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3x\r\n\r\nabc",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    ] {
        let reply = raw(bind, bad.as_bytes());
        assert!(reply.starts_with("HTTP/1.1 400"), "{bad:?} -> {reply:?}");
    }
    // A coding before chunked is well formed, but not decoded here: 422, as HAProxy answers.
    let gzip =
        raw(bind, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    assert!(gzip.starts_with("HTTP/1.1 422"), "{gzip:?}");
    assert_eq!(a.requests(), before);
    // HTTP/1.0 with chunked: read as chunked, answered, and the connection closes.
    let old = raw(bind, b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(old.contains(" 200 ") && old.contains("a received 3 bytes"), "{old}");
    assert_eq!(old.matches("HTTP/1.").count(), 1, "{old}");
    assert_eq!(a.requests(), before + 1);
    let before = a.requests();
    // Both framings: chunked wins, Content-Length does not reach the server, and the
    // connection closes after the answer, so the bytes after the body are never a request.
    let both = raw(
        bind,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(both.starts_with("HTTP/1.1 200") && both.contains("a received 3 bytes"), "{both}");
    assert_eq!(both.matches("HTTP/1.1").count(), 1, "{both}");
    assert_eq!(a.requests(), before + 1);
}

/// An origin that answers every request with `answer`, as it is.
fn raw_origin(answer: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind(any()).expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut s) = stream else { continue };
            s.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
                head.push(b[0]);
            }
            let _ = s.write_all(answer);
        }
    });
    addr
}

#[test]
fn response_heads_over_the_limits_get_502() {
    let big: &'static [u8] = Box::leak(
        format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok", "a".repeat(20_000))
            .into_bytes()
            .into_boxed_slice(),
    );
    let many: &'static [u8] = Box::leak(
        format!("HTTP/1.1 200 OK\r\n{}Content-Length: 2\r\n\r\nok", fields(150)).into_bytes().into_boxed_slice(),
    );
    for (what, answer) in [
        ("a head over 15,360 bytes", big),
        ("150 header fields", many),
        ("a bad status line", &b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok"[..]),
        ("conflicting lengths", &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"[..]),
        (
            "a final coding that is not chunked",
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"[..],
        ),
        ("chunked twice", &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"[..]),
    ] {
        let origin = raw_origin(answer);
        let bind = free_addr();
        let _f = Fulcrum::start("response.cfg", &cfg(bind, "", origin), bind);
        let reply = raw(bind, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert!(reply.starts_with("HTTP/1.1 502"), "{what}: {:?}", &reply[..reply.len().min(80)]);
    }
}

/// An HTTP/1.0 response with Transfer-Encoding is read as chunked, and the client connection
/// closes after it (RFC 9112 §6.1; HAProxy's http_transfer_encoding.vtc): a kept-alive client
/// gets the answer, then the end of the connection.
#[test]
fn an_http10_response_with_transfer_encoding_closes_the_client() {
    let origin = raw_origin(b"HTTP/1.0 200 Ok\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    let bind = free_addr();
    let _f = Fulcrum::start("te10.cfg", &cfg(bind, "", origin), bind);
    let mut s = std::net::TcpStream::connect(bind).expect("connect");
    // Shorter than the keep-alive timeout (10 s): an end seen here is the proxy's close.
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    let mut reply = Vec::new();
    let ended = s.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply).to_ascii_lowercase();
    assert!(ended.is_ok(), "the client connection stayed open after: {reply:?}");
    assert!(reply.starts_with("http/1.1 200"), "{reply:?}");
    assert!(reply.contains("transfer-encoding: chunked") && !reply.contains("content-length"), "{reply:?}");
}

#[test]
fn connection_cannot_smuggle_a_request_past_the_framing() {
    // `Connection: content-length` once took the length away from the head the server got,
    // which then read the body as a request of its own.
    let a = Origin::spawn("a", any()).expect("origin");
    let bind = free_addr();
    let _f = Fulcrum::start("smuggle.cfg", &cfg(bind, "", a.addr), bind);
    let hidden = "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n";
    let reply = raw(
        bind,
        format!(
            "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\nConnection: content-length, close\r\n\r\n{hidden}",
            hidden.len()
        )
        .as_bytes(),
    );
    assert!(reply.contains(&format!("a received {} bytes", hidden.len())), "{reply}");
    assert_eq!(a.requests(), 1, "the server saw a second request");
    // `Connection: host` cannot take Host away either.
    let host = raw(bind, b"GET /headers HTTP/1.1\r\nHost: www.example\r\nConnection: host, close\r\n\r\n");
    assert!(host.contains("host: www.example"), "{host}");
}

#[test]
fn an_empty_chunk_size_is_refused_not_read_as_the_last_chunk() {
    let a = Origin::spawn("a", any()).expect("origin");
    let bind = free_addr();
    let _f = Fulcrum::start("chunk.cfg", &cfg(bind, "", a.addr), bind);
    let reply = raw(bind, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\r\n\r\nGET /x HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply:?}");
    assert_eq!(reply.matches("HTTP/1.1").count(), 1, "{reply:?}");
}

#[test]
fn head_answers_carry_no_body_on_a_kept_alive_connection() {
    let a = Origin::spawn("a", any()).expect("origin");
    let bind = free_addr();
    let fe = "    stats enable\n    stats uri /stats\n";
    let config = cfg(bind, "", a.addr).replace("    default_backend be\n", &format!("    default_backend be\n{fe}"));
    let _f = Fulcrum::start("head.cfg", &config, bind);
    // HEAD on the stats page, then a GET on the same connection: the GET's answer must be
    // the first thing after the HEAD's head.
    let reply = raw(
        bind,
        b"HEAD /stats HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let second = reply.find("\r\n\r\n").map(|i| &reply[i + 4..]).unwrap_or_default();
    assert!(second.starts_with("HTTP/1.1 200"), "{reply:?}");
    assert!(second.contains("served by a"), "{reply:?}");
}

#[test]
fn a_server_that_answers_head_with_a_body_costs_only_its_connection() {
    // Bytes after a bodiless answer are not the next answer: the head still reaches the
    // client, and the connection they came on is not reused.
    let origin = raw_origin(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    let bind = free_addr();
    let _f = Fulcrum::start("headbody.cfg", &cfg(bind, "", origin), bind);
    let head = raw(bind, b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200") && head.contains("content-length: 5"), "{head:?}");
    assert!(!head.contains("hello"), "{head:?}");
    let get = raw(bind, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(get.starts_with("HTTP/1.1 200") && get.ends_with("hello"), "{get:?}");
}

#[test]
fn connections_beyond_twice_maxconn_wait_in_the_kernel() {
    // Past `maxconn` a connection waits accepted but unread; past as many again it is left in
    // the listen backlog, so a flood holds no more descriptors than twice the limit.
    let a = Origin::spawn("a", any()).expect("origin");
    let bind = free_addr();
    let config = cfg(bind, "    maxconn 2\n", a.addr);
    let f = Fulcrum::start("flood.cfg", &config, bind);
    let fds = || std::fs::read_dir(format!("/proc/{}/fd", f.child.id())).map(|d| d.count()).unwrap_or(0);
    std::thread::sleep(Duration::from_millis(300));
    let before = fds();
    let flood: Vec<std::net::TcpStream> =
        (0..30).map(|_| std::net::TcpStream::connect(bind).expect("connect")).collect();
    std::thread::sleep(Duration::from_millis(500));
    let held = fds() - before;
    assert!(held <= 4, "{held} descriptors held for 30 waiting connections with maxconn 2");
    // They are served in turn as slots free up.
    drop(flood);
    assert!(raw(bind, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").contains("served by a"));
}
