use super::*;

fn req(text: &str) -> Result<Option<Request>, HeadError> {
    parse_request(&mut BytesMut::from(text.as_bytes()), &Limits::HAPROXY)
}

fn ok(text: &str) -> Request {
    match req(text) {
        Ok(Some(r)) => r,
        other => panic!("{text:?}: {other:?}"),
    }
}

fn err(text: &str) -> HeadError {
    match req(text) {
        Err(e) => e,
        other => panic!("{text:?} should be refused: {other:?}"),
    }
}

#[test]
fn request_heads_and_what_follows_them() {
    let mut buf = BytesMut::from(&b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\nX-A: 2\r\n\r\nNEXT"[..]);
    let r = parse_request(&mut buf, &Limits::HAPROXY).expect("valid").expect("complete");
    assert_eq!(
        (r.head.method.as_str(), r.head.uri.to_string(), r.head.version),
        ("GET", "/a?b=c".to_string(), Version::HTTP_11)
    );
    assert_eq!(r.head.headers.get_all("x-a").iter().count(), 2);
    assert_eq!((r.framing, r.close, r.upgrade, r.expect_continue), (Framing::Empty, false, false, false));
    assert_eq!(&buf[..], b"NEXT", "the rest stays in the buffer");
    assert!(req("GET / HTTP/1.1\r\nHost: x\r\n").expect("partial is fine").is_none());
}

#[test]
fn connection_and_version_decide_closing() {
    assert!(ok("GET / HTTP/1.0\r\n\r\n").close);
    assert!(!ok("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").close);
    assert!(ok("GET / HTTP/1.1\r\nHost: x\r\nConnection: te, CLOSE\r\n\r\n").close);
    assert!(!ok("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n").close);
    let up = ok("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    assert!(up.upgrade);
    assert!(!ok("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\r\n").upgrade, "no Upgrade field");
    assert!(ok("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n").expect_continue);
}

#[test]
fn host_rules_of_rfc_9112() {
    assert_eq!(err("GET / HTTP/1.1\r\n\r\n"), HeadError::MissingHost);
    assert_eq!(err("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), HeadError::DuplicateHost);
    assert_eq!(err("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"), HeadError::DuplicateHost);
    for bad in ["", "a b", "a/b", "a:8x", "user@a", "[zz]", "[::1", "a:80:90x"] {
        assert_eq!(err(&format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n")), HeadError::InvalidHost, "{bad:?}");
    }
    for good in ["a", "a.example:8080", "[::1]:80", "[2001:db8::1]", "10.0.0.1:", "xn--bcher-kva.example"] {
        ok(&format!("GET / HTTP/1.1\r\nHost: {good}\r\n\r\n"));
    }
    // HTTP/1.0 may leave Host out, but not send a bad one.
    ok("GET / HTTP/1.0\r\n\r\n");
    assert_eq!(err("GET / HTTP/1.0\r\nHost: a b\r\n\r\n"), HeadError::InvalidHost);
    // An absolute-form target's authority replaces Host (§3.2.2).
    let abs = ok("GET http://abs.example:81/x HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_eq!(abs.head.headers.get(header::HOST).expect("host"), "abs.example:81");
    assert_eq!(abs.head.uri.path(), "/x");
}

#[test]
fn body_framing_of_requests() {
    assert_eq!(ok("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n").framing, Framing::Length(12));
    assert_eq!(ok("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").framing, Framing::Empty);
    assert_eq!(ok("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 7, 7\r\n\r\n").framing, Framing::Length(7));
    let chunked = ok("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!((chunked.framing, chunked.close), (Framing::Chunked, false));
    // HTTP/1.0 with Transfer-Encoding: read as chunked, then the connection closes (HAProxy's
    // reg-tests/http-messaging/http_transfer_encoding.vtc).
    let old = ok("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!((old.framing, old.close), (Framing::Chunked, true));
    // Both: chunked wins, the length is dropped and the connection closes afterwards.
    let both = ok("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!((both.framing, both.close), (Framing::Chunked, true));
    assert!(!both.head.headers.contains_key(header::CONTENT_LENGTH));
    for bad in
        ["Content-Length: 3\r\nContent-Length: 4", "Content-Length: 3x", "Content-Length: -1", "Content-Length: "]
    {
        assert_eq!(
            err(&format!("POST / HTTP/1.1\r\nHost: x\r\n{bad}\r\n\r\n")),
            HeadError::InvalidContentLength,
            "{bad}"
        );
    }
    for bad in ["Transfer-Encoding: gzip", "Transfer-Encoding: chunked, gzip", "Transfer-Encoding: chunked, chunked"] {
        assert_eq!(
            err(&format!("POST / HTTP/1.1\r\nHost: x\r\n{bad}\r\n\r\n")),
            HeadError::InvalidTransferEncoding,
            "{bad}"
        );
    }
    // A coding before chunked is well formed but not decoded here: 422, as HAProxy.
    assert_eq!(
        err("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        HeadError::UnsupportedTransferCoding
    );
}

#[test]
fn limits_as_haproxy_counts_them() {
    // tune.http.maxhdr 101: 101 fields pass, 102 do not.
    let fields = |n: usize| (1..n).map(|i| format!("X-{i}: y\r\n")).collect::<String>();
    ok(&format!("GET / HTTP/1.1\r\nHost: x\r\n{}\r\n", fields(101)));
    assert_eq!(err(&format!("GET / HTTP/1.1\r\nHost: x\r\n{}\r\n", fields(102))), HeadError::TooManyHeaders(101));
    // 16384 - 1024 bytes of head, complete or not.
    let big = |n: usize| format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(n));
    ok(&big(15_000));
    assert_eq!(err(&big(15_400)), HeadError::TooLarge(15_360));
    assert_eq!(err(&big(120_000)[..20_000]), HeadError::TooLarge(15_360), "an incomplete head past the limit");
    let small = Limits { max_head: 64, max_headers: 2 };
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n"[..]);
    assert_eq!(parse_request(&mut buf, &small).err(), Some(HeadError::TooManyHeaders(2)));
}

#[test]
fn each_target_form_with_its_method() {
    // Found in review: an authority-form target (`host:port`) with GET replaced Host.
    assert_eq!(err("GET evil.example:80 HTTP/1.1\r\nHost: a\r\n\r\n"), HeadError::InvalidTarget);
    assert_eq!(err("CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n"), HeadError::InvalidTarget);
    assert_eq!(err("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), HeadError::InvalidTarget);
    ok("CONNECT db.example:5432 HTTP/1.1\r\nHost: db.example:5432\r\n\r\n");
    ok("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    let connect = Method::CONNECT;
    assert_eq!(resp("HTTP/1.1 200 Connection established\r\n\r\n", &connect).framing, Framing::Empty);
}

#[test]
fn malformed_request_lines() {
    for bad in [
        "GARBAGE\x01\x02 / HTTP/1.1\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
        "GET  / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nX Y: z\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
    ] {
        assert!(req(bad).is_err(), "{bad:?}");
    }
}

fn resp(text: &str, method: &Method) -> Response {
    match parse_response(&mut BytesMut::from(text.as_bytes()), &Limits::HAPROXY, method) {
        Ok(Some(r)) => r,
        other => panic!("{text:?}: {other:?}"),
    }
}

#[test]
fn response_framing() {
    let get = Method::GET;
    let r = resp("HTTP/1.1 200 Fine Thanks\r\nContent-Length: 5\r\n\r\n", &get);
    assert_eq!(
        (r.status, &r.reason[..], r.framing, r.close),
        (StatusCode::OK, &b"Fine Thanks"[..], Framing::Length(5), false)
    );
    assert_eq!(resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", &Method::HEAD).framing, Framing::Empty);
    assert_eq!(resp("HTTP/1.1 204 No Content\r\n\r\n", &get).framing, Framing::Empty);
    assert_eq!(resp("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", &get).framing, Framing::Empty);
    let chunked = resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n", &get);
    assert_eq!(chunked.framing, Framing::Chunked);
    assert!(!chunked.headers.contains_key(header::CONTENT_LENGTH));
    let until_close = resp("HTTP/1.0 200 OK\r\n\r\n", &get);
    assert_eq!((until_close.framing, until_close.close), (Framing::UntilClose, true));
    assert!(resp("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", &get).close);
    let bad = parse_response(
        &mut BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n"[..]),
        &Limits::HAPROXY,
        &get,
    );
    assert_eq!(bad.err(), Some(HeadError::InvalidContentLength));
    let huge = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    let too_large = parse_response(&mut BytesMut::from(huge.as_bytes()), &Limits::HAPROXY, &get);
    assert_eq!(too_large.err(), Some(HeadError::TooLarge(15_360)));
}

#[test]
fn heads_are_written_back() {
    let server: std::net::SocketAddr = "192.0.2.7:8080".parse().expect("addr");
    let r = ok("GET /p?q HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n");
    let mut out = Vec::new();
    write_request_head(&mut out, &r.head.method, &r.head.uri, &r.head.headers, server);
    assert_eq!(out, b"GET /p?q HTTP/1.1\r\nhost: x\r\nx-a: 1\r\n\r\n");
    let abs = ok("GET http://h.example/p HTTP/1.1\r\nHost: x\r\n\r\n");
    out.clear();
    write_request_head(&mut out, &abs.head.method, &abs.head.uri, &abs.head.headers, server);
    assert_eq!(out, b"GET http://h.example/p HTTP/1.1\r\nhost: h.example\r\n\r\n");
    // Found by fuzzing: an HTTP/1.0 request without Host went out as HTTP/1.1 without one,
    // which a strict server refuses. It names the server instead.
    let old = ok("GET /http://abs.example/p HTTP/1.0\r\nConnection: keep-alive\r\nContent%Length: 3\r\n\r\nabc");
    out.clear();
    write_request_head(&mut out, &old.head.method, &old.head.uri, &old.head.headers, server);
    assert!(out.starts_with(b"GET /http://abs.example/p HTTP/1.1\r\nhost: 192.0.2.7:8080\r\n"));
    let mut again = BytesMut::from(&out[..]);
    assert!(parse_request(&mut again, &Limits::HAPROXY).expect("valid").is_some());
    out.clear();
    write_response_head(&mut out, StatusCode::NOT_FOUND, b"", &HeaderMap::new());
    assert_eq!(out, b"HTTP/1.1 404 Not Found\r\n\r\n");
    for n in [0u64, 7, 10, 4096, u64::MAX] {
        assert_eq!(length_value(n), n.to_string().as_str());
    }
}

#[test]
fn chunked_bodies_split_anywhere() {
    let body = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\nNEXT";
    let end = body.len() - 4;
    // Every split point gives the same data and the same end.
    for split in 0..=body.len() {
        let mut c = Chunked::new();
        let mut data = Vec::new();
        let mut used = c.scan(&body[..split], |d| data.extend_from_slice(d)).expect("valid");
        if !c.is_done() {
            used = split + c.scan(&body[split..], |d| data.extend_from_slice(d)).expect("valid");
        }
        assert!(c.is_done(), "split {split}");
        assert_eq!(used, end, "split {split}");
        assert_eq!(data, b"Wikipedia in\r\n\r\nchunks.", "split {split}");
        assert_eq!(c.data, 23);
    }
}

#[test]
fn chunked_errors() {
    // Found in review: an empty size line would end the body here and not at the server.
    for bad in
        [&b"zz\r\n"[..], b"4\r\nWikiXX", b"0\r\nbad trailer\r\n\r\n", b"-1\r\n", b"\r\n\r\n", b";x\r\n", b" 0\r\n"]
    {
        assert!(Chunked::new().scan(bad, |_| {}).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
    let long = [b'1'; 5000];
    assert_eq!(Chunked::new().scan(&long, |_| {}), Err(ChunkError::LineTooLong));
    for n in [0usize, 1, 15, 16, 255, 4096, 65535, usize::MAX] {
        assert_eq!(size_line(n).as_bytes(), format!("{n:x}\r\n").as_bytes());
    }
}
