//! HTTP/2 from clients, with real peers: curl (`--http2` over TLS by ALPN, and
//! `--http2-prior-knowledge` in clear text, detected by the preface or on a `proto h2` bind),
//! h2load from Debian's nghttp2-client for many concurrent streams, and abusive clients
//! written with the h2 crate for the test (rapid reset, an oversized header block): each is
//! cut off while fulcrum goes on serving the others.
mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{free_addr, temp_dir, Fulcrum};
use fulcrum_testkit::Origin;

/// A self-signed certificate and key in one PEM, `site.pem` in `dir`.
fn site_pem(dir: &Path) {
    common::self_signed(dir);
    let pem =
        [std::fs::read(dir.join("cert.pem")).expect("cert"), std::fs::read(dir.join("key.pem")).expect("key")].concat();
    std::fs::write(dir.join("site.pem"), pem).expect("pem");
}

/// `curl ARGS URL`: the status, the HTTP version and the body.
fn curl(args: &[&str], url: &str) -> (String, String, String) {
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "20", "-w", "\n%{http_code} %{http_version}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n').unwrap_or(("", &text));
    let (code, version) = tail.split_once(' ').unwrap_or((tail, ""));
    (code.to_string(), version.to_string(), body.trim().to_string())
}

fn start(dir: &Path, origin: SocketAddr, api: SocketAddr) -> (Fulcrum, SocketAddr, SocketAddr, SocketAddr) {
    let (tls, plain, h2) = (free_addr(), free_addr(), free_addr());
    let cfg = format!(
        "global\n    tune.h2.max-concurrent-streams 50\n\
         defaults\n    mode http\n    option httplog\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\n\
         frontend fe\n    bind {tls} ssl crt {d}/site.pem alpn h2,http/1.1\n    bind {plain}\n    bind {h2} proto h2\n\
         \x20   option forwardfor\n    acl api path_beg /api\n    use_backend api if api\n    default_backend web\n\
         backend web\n    server web {origin}\nbackend api\n    http-reuse always\n    server api {api}\n",
        d = dir.display()
    );
    let f = Fulcrum::start("h2.cfg", &cfg, plain);
    (f, tls, plain, h2)
}

#[test]
fn http2_is_spoken_over_tls_by_alpn_and_in_prior_knowledge() {
    let dir = temp_dir("h2");
    site_pem(&dir);
    let origin = Origin::spawn("web", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let api = Origin::spawn("api", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let (f, tls, plain, h2) = start(&dir, origin.addr, api.addr);
    assert_eq!(curl(&["--http2"], &format!("https://{tls}/")), ("200".into(), "2".into(), "served by web".into()));
    // Without ALPN h2 (curl --http1.1), the same bind speaks HTTP/1.1.
    assert_eq!(curl(&["--http1.1"], &format!("https://{tls}/")).1, "1.1");
    // Clear text: the preface is detected on a plain bind; a `proto h2` bind expects it.
    assert_eq!(curl(&["--http2-prior-knowledge"], &format!("http://{plain}/")).1, "2");
    assert_eq!(curl(&["--http2-prior-knowledge"], &format!("http://{h2}/")).1, "2");
    assert_eq!(curl(&[], &format!("http://{plain}/")).1, "1.1");
    // Requests are routed as HTTP/1 ones are, and the server sees the client's address and
    // a Host made of the :authority.
    let (code, _, body) = curl(&["--http2-prior-knowledge"], &format!("http://{plain}/api/x"));
    assert_eq!((code.as_str(), body.as_str()), ("200", "served by api"));
    let (_, _, headers) = curl(&["--http2"], &format!("https://{tls}/headers"));
    assert!(headers.to_lowercase().contains("x-forwarded-for: 127.0.0.1"), "{headers}");
    assert!(headers.to_lowercase().contains(&format!("host: {tls}")), "{headers}");
    f.wait_log(" fe~ web/web ", Duration::from_secs(5));
    assert!(f.stderr().contains("HTTP/2.0\""), "{}", f.stderr());
}

#[test]
fn bodies_both_ways_and_many_concurrent_streams() {
    let dir = temp_dir("h2-bodies");
    site_pem(&dir);
    let origin = Origin::spawn("web", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let (_f, tls, plain, _) = start(&dir, origin.addr, origin.addr);
    // A 3 MB upload (with and without a length): the origin counts what it got.
    let upload = dir.join("upload.bin");
    std::fs::write(&upload, vec![7u8; 3_000_000]).expect("write");
    let data = format!("@{}", upload.display());
    let (code, _, body) = curl(&["--http2", "--data-binary", &data], &format!("https://{tls}/echo"));
    assert_eq!((code.as_str(), body.as_str()), ("200", "web received 3000000 bytes"));
    let (code, _, body) = curl(
        &["--http2-prior-knowledge", "-H", "Content-Length:", "-H", "Transfer-Encoding:", "--data-binary", &data],
        &format!("http://{plain}/echo"),
    );
    assert_eq!((code.as_str(), body.as_str()), ("200", "web received 3000000 bytes"));
    // A 4 MB chunked download, byte for byte.
    let out = Command::new("curl")
        .args(["-sk", "--http2", "--max-time", "20"])
        .arg(format!("https://{tls}/pattern?bytes=4000000&chunk=10000"))
        .output()
        .expect("curl");
    assert_eq!(out.stdout.len(), 4_000_000);
    assert!(out.stdout.iter().enumerate().all(|(i, b)| *b == fulcrum_testkit::pattern_byte(i)));
    // h2load: 2 connections, 20 streams each in flight, 2000 requests: all answered 2xx.
    let out = Command::new("h2load")
        .args(["-n", "2000", "-c", "2", "-m", "20"])
        .arg(format!("https://{tls}/"))
        .output()
        .expect("h2load (apt-get install nghttp2-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2000 succeeded, 0 failed, 0 errored"), "{text}");
    assert!(text.contains("status codes: 2000 2xx"), "{text}");
}

/// An h2 client on a clear-text prior-knowledge connection.
async fn h2_client(
    addr: SocketAddr,
) -> (h2::client::SendRequest<bytes::Bytes>, tokio::task::JoinHandle<Result<(), h2::Error>>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (send, conn) = h2::client::handshake(tcp).await.expect("handshake");
    (send, tokio::spawn(conn))
}

#[test]
fn abusive_http2_clients_are_cut_off_while_others_are_served() {
    let dir = temp_dir("h2-abuse");
    site_pem(&dir);
    let origin = Origin::spawn("web", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let (f, _tls, plain, _) = start(&dir, origin.addr, origin.addr);
    let rt = common::runtime();
    rt.block_on(async {
        // Rapid reset (CVE-2023-44487): streams opened and cancelled at once, by the thousand.
        let (mut send, conn) = h2_client(plain).await;
        let mut opened = 0;
        for _ in 0..5000 {
            let req = http::Request::get(format!("http://{plain}/slow?ms=200")).body(()).expect("request");
            let Ok(ready) = send.clone().ready().await else { break };
            send = ready;
            match send.send_request(req, true) {
                Ok((_, mut stream)) => {
                    stream.send_reset(h2::Reason::CANCEL);
                    opened += 1;
                }
                Err(_) => break,
            }
        }
        // fulcrum ends the connection (GOAWAY ENHANCE_YOUR_CALM, then the close the client
        // meets while it is still writing), and says why.
        let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
        assert!(matches!(ended, Ok(Ok(Err(_)))), "rapid reset ({opened} streams): {ended:?}");
        // A header block far over tune.bufsize: refused (431 or a reset), fulcrum stays up.
        let (mut send, _conn) = h2_client(plain).await;
        let req = http::Request::get(format!("http://{plain}/"))
            .header("x-big", "a".repeat(200_000))
            .body(())
            .expect("request");
        send = send.ready().await.expect("ready");
        let outcome = match send.send_request(req, true) {
            Ok((resp, _)) => {
                tokio::time::timeout(Duration::from_secs(5), resp).await.ok().map(|r| r.map(|r| r.status()))
            }
            Err(e) => Some(Err(e)),
        };
        assert!(!matches!(outcome, Some(Ok(s)) if s.is_success()), "an oversized header block was served: {outcome:?}");
        // HTTP/1's rules hold for HTTP/2 requests: a Host that contradicts :authority, and
        // more fields than tune.http.maxhdr, are answered 400.
        let (send, _conn) = h2_client(plain).await;
        let mismatched = http::Request::get(format!("http://{plain}/"))
            .header("host", "elsewhere.example")
            .body(())
            .expect("request");
        let mut many = http::Request::get(format!("http://{plain}/"));
        for i in 0..150 {
            many = many.header(format!("x-field-{i}"), "1");
        }
        for req in [mismatched, many.body(()).expect("request")] {
            let mut s = send.clone().ready().await.expect("ready");
            let (resp, _) = s.send_request(req, true).expect("send");
            let resp = tokio::time::timeout(Duration::from_secs(10), resp).await.expect("in time").expect("response");
            assert_eq!(resp.status(), 400);
        }
        // More streams than announced at once: the extra ones wait or are refused, never served
        // beyond the limit; and a well-behaved client is served throughout.
        let (send, _conn) = h2_client(plain).await;
        let mut pending = Vec::new();
        for _ in 0..10 {
            let req = http::Request::get(format!("http://{plain}/")).body(()).expect("request");
            let mut s = send.clone().ready().await.expect("ready");
            let (resp, _) = s.send_request(req, true).expect("send");
            pending.push(resp);
        }
        for resp in pending {
            let resp = tokio::time::timeout(Duration::from_secs(10), resp).await.expect("in time").expect("response");
            assert_eq!(resp.status(), 200);
        }
    });
    assert_eq!(curl(&["--http2-prior-knowledge"], &format!("http://{plain}/")).0, "200");
    f.wait_log("too many streams reset", Duration::from_secs(5));
}

/// Debian's python3 with grpcio (python3-grpcio), or None when it is missing.
fn grpc_python() -> Option<&'static str> {
    let ok = Command::new("/usr/bin/python3").args(["-c", "import grpc"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        fulcrum_testkit::skip("gRPC through fulcrum", "python3-grpcio");
        return None;
    }
    Some("/usr/bin/python3")
}

/// A gRPC server (grpcio, no generated code: methods on raw bytes): `Echo` (unary, reversed),
/// `Count` (server streaming), `Chat` (bidirectional), `Fail` (NOT_FOUND with a message and
/// trailing metadata). Prints its port, then serves until killed.
const GRPC_SERVER: &str = r#"
import grpc, sys, time
from concurrent import futures
def echo(req, ctx):
    ctx.set_trailing_metadata((("x-trailer", "kept"),))
    return req[::-1]
def count(req, ctx):
    for i in range(int(req)):
        yield b"n%d" % i
def chat(reqs, ctx):
    for r in reqs:
        yield b"re:" + r
def fail(req, ctx):
    ctx.set_trailing_metadata((("x-why", "nothing-here"),))
    ctx.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
h = grpc.method_handlers_generic_handler("t.S", {
    "Echo": grpc.unary_unary_rpc_method_handler(echo),
    "Count": grpc.unary_stream_rpc_method_handler(count),
    "Chat": grpc.stream_stream_rpc_method_handler(chat),
    "Fail": grpc.unary_unary_rpc_method_handler(fail),
})
s = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
s.add_generic_rpc_handlers((h,))
port = s.add_insecure_port("127.0.0.1:0")
s.start()
print(port, flush=True)
time.sleep(60)
"#;

/// The gRPC server of [`GRPC_SERVER`], started in `dir`, and its port.
fn grpc_server(python: &str, dir: &Path) -> (common::Killed, u16) {
    use std::io::BufRead;
    std::fs::write(dir.join("server.py"), GRPC_SERVER).expect("write");
    let mut server = Command::new(python)
        .arg(dir.join("server.py"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("grpc server");
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().expect("stdout")).read_line(&mut line).expect("port");
    (common::Killed(server), line.trim().parse::<u16>().expect("a port"))
}

/// The client: each call through fulcrum, its results printed one per line.
const GRPC_CLIENT: &str = r#"
import grpc, sys, queue, threading
ch = grpc.insecure_channel(sys.argv[1])
grpc.channel_ready_future(ch).result(timeout=10)
echo = ch.unary_unary("/t.S/Echo")
resp, call = echo.with_call(b"hello", timeout=10)
print("echo", resp.decode(), dict(call.trailing_metadata()).get("x-trailer"))
print("count", ",".join(r.decode() for r in ch.unary_stream("/t.S/Count")(b"5", timeout=10)))
# Bidirectional: each message is sent only once the previous answer came back.
q = queue.Queue()
def gen():
    for m in [b"a", b"b", b"c"]:
        yield m
        q.get(timeout=10)
answers = []
for r in ch.stream_stream("/t.S/Chat")(gen(), timeout=10):
    answers.append(r.decode())
    q.put(1)
print("chat", ",".join(answers))
try:
    ch.unary_unary("/t.S/Fail")(b"x", timeout=10)
except grpc.RpcError as e:
    print("fail", e.code().name, e.details(), dict(e.trailing_metadata()).get("x-why"))
"#;

#[test]
fn grpc_calls_of_every_kind_go_through() {
    let Some(python) = grpc_python() else { return };
    let dir = temp_dir("grpc");
    std::fs::write(dir.join("client.py"), GRPC_CLIENT).expect("write");
    let (_server, port) = grpc_server(python, &dir);
    let bind = free_addr();
    let cfg = format!(
        "defaults\n    mode http\n    option httplog\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\n\
         frontend grpc\n    bind {bind} proto h2\n    default_backend grpc\n\
         backend grpc\n    server g 127.0.0.1:{port} proto h2\n"
    );
    let f = Fulcrum::start("grpc.cfg", &cfg, bind);
    let out = Command::new(python).arg(dir.join("client.py")).arg(bind.to_string()).output().expect("grpc client");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}\n{}", String::from_utf8_lossy(&out.stderr), f.stderr());
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["echo olleh kept", "count n0,n1,n2,n3,n4", "chat re:a,re:b,re:c", "fail NOT_FOUND no such thing nothing-here"]
    );
    f.wait_log("\"POST http://", Duration::from_secs(5));
}

/// An HTTP/1.1 server that answers the first request of each connection (keeping it open) and
/// closes the connection, unanswered, when a second request comes on it: a keep-alive
/// connection the server drops just as it is reused.
fn one_request_per_connection() -> SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh");
                // The next request on this connection is met with a close.
                let _ = s.read(&mut buf);
            });
        }
    });
    addr
}

#[test]
fn a_reused_connection_closed_by_the_server_is_retried_on_a_new_one() {
    let server = one_request_per_connection();
    let bind = free_addr();
    let cfg = format!(
        "global\n    nbthread 1\n\
         defaults\n    mode http\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\n\
         frontend fe\n    bind {bind} proto h2\n    default_backend be\nbackend be\n    http-reuse always\n    server s {server}\n"
    );
    let _f = Fulcrum::start("reuse.cfg", &cfg, bind);
    // Sequential requests: from the second on, each meets the closed pooled connection first.
    for i in 0..4 {
        let (code, _, body) = curl(&["--http2-prior-knowledge"], &format!("http://{bind}/{i}"));
        assert_eq!((code.as_str(), body.as_str()), ("200", "fresh"), "request {i}");
    }
}

#[test]
fn http1_clients_reach_http2_servers() {
    let dir = temp_dir("h1-to-h2");
    // HAProxy as an HTTP/2 (clear text) server that says what it got.
    let hap = free_addr();
    let hap_cfg = format!(
        "defaults\n    mode http\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\n\
         frontend h2\n    bind {hap} proto h2\n    http-request wait-for-body time 2s\n\
         \x20   http-request return status 200 content-type text/plain lf-string \"v=%[req.ver] len=%[req.body_len] host=%[req.hdr(host)]\"\n"
    );
    if Command::new("haproxy").arg("-v").output().is_err() {
        fulcrum_testkit::skip("HTTP/1 to HTTP/2 servers", "haproxy");
        return;
    }
    let _hap = common::start_haproxy(&dir, &hap_cfg, hap);
    let bind = free_addr();
    let cfg = format!(
        "defaults\n    mode http\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\n\
         frontend fe\n    bind {bind}\n    default_backend h2\nbackend h2\n    server h {hap} proto h2\n"
    );
    let _f = Fulcrum::start("h1-h2.cfg", &cfg, bind);
    let url = format!("http://{bind}/x");
    let host = format!("host={bind}");
    assert_eq!(curl(&[], &url), ("200".into(), "1.1".into(), format!("v=2.0 len=0 {host}")));
    assert_eq!(curl(&["-d", "hello world"], &url).2, format!("v=2.0 len=11 {host}"));
    assert_eq!(
        curl(&["-H", "Transfer-Encoding: chunked", "-d", "chunked body!"], &url).2,
        format!("v=2.0 len=13 {host}")
    );
    // (An HTTP/1.0 client is answered with an HTTP/1.1 status line, as HAProxy does.)
    assert_eq!(curl(&["--http1.0"], &url).2, format!("v=2.0 len=0 {host}"));
    // Several requests on one kept-alive HTTP/1.1 connection.
    let out =
        Command::new("curl").args(["-s", "-w", "|%{num_connects}\n"]).args([&url, &url, &url]).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("v=2.0").count(), 3, "{text}");
    assert_eq!(text.matches("|0").count(), 2, "one connection for the three: {text}");
}

#[test]
fn grpc_trailers_reach_an_http1_client_as_chunked_trailers() {
    let Some(python) = grpc_python() else { return };
    let dir = temp_dir("grpc-h1");
    let (_server, port) = grpc_server(python, &dir);
    let bind = free_addr();
    let cfg = format!(
        "defaults\n    mode http\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\n\
         frontend fe\n    bind {bind}\n    default_backend grpc\nbackend grpc\n    server g 127.0.0.1:{port} proto h2\n"
    );
    let _f = Fulcrum::start("grpc-h1.cfg", &cfg, bind);
    // One gRPC message (no compression, length 5, "hello") over HTTP/1.1.
    std::fs::write(dir.join("msg"), [&[0u8, 0, 0, 0, 5][..], b"hello"].concat()).expect("write");
    let out = Command::new("curl")
        .args([
            "-s",
            "--raw",
            "--http1.1",
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            "--data-binary",
        ])
        .arg(format!("@{}", dir.join("msg").display()))
        .arg(format!("http://{bind}/t.S/Echo"))
        .output()
        .expect("curl");
    let raw = String::from_utf8_lossy(&out.stdout);
    assert!(raw.contains("olleh"), "{raw:?}");
    assert!(raw.contains("grpc-status: 0\r\n"), "the trailers as chunked trailers: {raw:?}");
    assert!(raw.contains("x-trailer: kept\r\n"), "{raw:?}");
}

#[test]
fn trailers_of_a_chunked_http1_answer_reach_an_http2_client() {
    use std::io::{Read, Write};
    // An HTTP/1.1 server answering chunked, with trailers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let server = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: abc123\r\nGrpc-Status: 0\r\n\r\n",
            );
        }
    });
    let bind = free_addr();
    let cfg = format!(
        "defaults\n    mode http\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\n\
         frontend fe\n    bind {bind} proto h2\n    default_backend be\nbackend be\n    server s {server}\n"
    );
    let _f = Fulcrum::start("trailers.cfg", &cfg, bind);
    let rt = common::runtime();
    rt.block_on(async {
        let (send, _conn) = h2_client(bind).await;
        let mut send = send.ready().await.expect("ready");
        let req = http::Request::get(format!("http://{bind}/")).body(()).expect("request");
        let (resp, _) = send.send_request(req, true).expect("send");
        let resp = tokio::time::timeout(Duration::from_secs(10), resp).await.expect("in time").expect("response");
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let mut data = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.expect("data");
            data.extend_from_slice(&chunk);
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        assert_eq!(data, b"hello");
        let trailers = body.trailers().await.expect("trailers").expect("some trailers");
        assert_eq!(trailers.get("x-checksum").map(|v| v.as_bytes()), Some(&b"abc123"[..]));
        assert_eq!(trailers.get("grpc-status").map(|v| v.as_bytes()), Some(&b"0"[..]));
    });
}

/// A WebSocket echo server (Debian's python3-websockets, which checks the handshake: key,
/// version 13) on a free port it prints, and a client that sends `ping N` three times through
/// `ws://ADDR/chat` and prints each echo.
const WS_SERVER: &str = r#"
import asyncio, sys, websockets
async def echo(ws, path):
    async for m in ws:
        await ws.send("echo " + path + " " + m)
async def main():
    async with websockets.serve(echo, "127.0.0.1", 0) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()
asyncio.run(main())
"#;
const WS_CLIENT: &str = r#"
import asyncio, sys, websockets
async def main():
    async with websockets.connect("ws://" + sys.argv[1] + "/chat", open_timeout=10) as ws:
        for i in range(3):
            await ws.send("ping %d" % i)
            print(await asyncio.wait_for(ws.recv(), 10), flush=True)
asyncio.run(main())
"#;

#[test]
fn websockets_over_http2_reach_http1_servers() {
    let ok =
        Command::new("/usr/bin/python3").args(["-c", "import websockets"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        fulcrum_testkit::skip("WebSockets over HTTP/2", "python3-websockets");
        return;
    }
    if Command::new("haproxy").arg("-v").output().is_err() {
        fulcrum_testkit::skip("WebSockets over HTTP/2", "haproxy");
        return;
    }
    let dir = temp_dir("ws-h2");
    let mut server = common::Killed(
        Command::new("/usr/bin/python3")
            .args(["-c", WS_SERVER])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("websocket server"),
    );
    let mut line = String::new();
    let out = server.0.stdout.take().expect("stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).expect("port");
    let ws: SocketAddr = format!("127.0.0.1:{}", line.trim()).parse().expect("port");
    // fulcrum speaks HTTP/2 only on its bind; HAProxy in front turns the client's HTTP/1.1
    // upgrade into an RFC 8441 extended CONNECT, which fulcrum announces and turns back into
    // an HTTP/1.1 upgrade to the server.
    let (fbind, hap) = (free_addr(), free_addr());
    let cfg = format!(
        "defaults\n    mode http\n    option httplog\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\n\
         frontend fe\n    bind {fbind} proto h2\n    default_backend ws\nbackend ws\n    server ws {ws}\n"
    );
    let _f = Fulcrum::start("ws-h2.cfg", &cfg, fbind);
    let hap_cfg = format!(
        "defaults\n    mode http\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\n\
         frontend ws\n    bind {hap}\n    default_backend f\nbackend f\n    server f {fbind} proto h2\n"
    );
    let _hap = common::start_haproxy(&dir, &hap_cfg, hap);
    let out =
        Command::new("/usr/bin/python3").args(["-c", WS_CLIENT, &hap.to_string()]).output().expect("websocket client");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(text.lines().collect::<Vec<_>>(), ["echo /chat ping 0", "echo /chat ping 1", "echo /chat ping 2"]);
}
