//! TLS pass-through routed by SNI (`mode tcp`, `tcp-request inspect-delay`, `req.ssl_sni`),
//! with real peers: curl as the TLS client, `openssl s_server` as the TLS servers (fulcrum
//! reads the ClientHello and relays it; it does not terminate TLS), and `tcp-request`
//! connection and content rules.
mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_addr, temp_dir, Fulcrum, Killed};

/// `openssl s_server -WWW` in `dir` (which holds `who`, naming it), on a free port.
fn tls_server(dir: &Path, name: &str) -> (Killed, SocketAddr) {
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(dir.join("who"), name).expect("write");
    let addr = free_addr();
    let child = Command::new("openssl")
        .args(["s_server", "-quiet", "-WWW", "-accept"])
        .arg(addr.to_string())
        .args(["-cert", "../cert.pem", "-key", "../key.pem"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "s_server does not listen on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Killed(child), addr)
}

/// `curl -k https://HOST:PORT/who` through `bind`, the name resolved to it: what it printed.
fn curl(bind: SocketAddr, host: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "10", "--resolve"])
        .arg(format!("{host}:{}:127.0.0.1", bind.port()))
        .arg(format!("https://{host}:{}/who", bind.port()))
        .output()
        .expect("curl");
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn tls_pass_through_is_routed_by_sni() {
    let dir = temp_dir("sni");
    common::self_signed(&dir);
    let (_alpha, alpha) = tls_server(&dir.join("alpha"), "alpha");
    let (_beta, beta) = tls_server(&dir.join("beta"), "beta");
    // A plain server for everything else: answers `fallback:` and what it read.
    let plain = TcpListener::bind("127.0.0.1:0").expect("bind");
    let fallback = plain.local_addr().expect("addr");
    std::thread::spawn(move || {
        for mut s in plain.incoming().take(8).filter_map(Result::ok) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            let _ = s.write_all(b"fallback:");
            let _ = s.write_all(&got);
        }
    });
    let bind = free_addr();
    let config = format!(
        "defaults\n    mode tcp\n    option tcplog\n    timeout client 10s\n    timeout server 10s\n    timeout connect 2s\n\
         frontend tls\n    bind {bind}\n    tcp-request inspect-delay 5s\n\
         \x20   tcp-request connection reject if {{ src 127.0.0.2 }}\n\
         \x20   tcp-request content reject if {{ req_ssl_sni -i blocked.test }}\n\
         \x20   tcp-request content accept if {{ req_ssl_hello_type 1 }}\n\
         \x20   use_backend alpha if {{ req_ssl_sni -i a.example.com }}\n\
         \x20   use_backend beta if {{ req.ssl_sni -m end .beta.test }}\n    default_backend plain\n\
         backend alpha\n    server a {alpha}\nbackend beta\n    server b {beta}\nbackend plain\n    server p {fallback}\n"
    );
    let f = Fulcrum::start("sni.cfg", &config, bind);
    assert_eq!(curl(bind, "a.example.com").as_deref(), Some("alpha"), "{}", f.stderr());
    assert_eq!(curl(bind, "x.beta.test").as_deref(), Some("beta"), "{}", f.stderr());
    assert_eq!(curl(bind, "A.Example.COM").as_deref(), Some("alpha"));
    // Not TLS: decided at the first byte, no wait for the inspect delay.
    let started = Instant::now();
    let mut s = TcpStream::connect(bind).expect("connect");
    s.write_all(b"hello").expect("send");
    s.shutdown(Shutdown::Write).expect("half-close");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    assert_eq!(answer, "fallback:hello");
    assert!(started.elapsed() < Duration::from_secs(4), "waited for the inspect delay on a non-TLS client");
    // A rejected name: the connection is closed, logged as PR.
    assert_eq!(curl(bind, "blocked.test"), None);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f.stderr().lines().any(|l| l.contains(" tls tls/<NOSRV> ") && l.contains(" PR ")) {
        assert!(Instant::now() < deadline, "no PR line:\n{}", f.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    // `tcp-request connection reject` on the client's address: closed before any byte.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.bind(&"127.0.0.2:0".parse::<SocketAddr>().expect("addr").into()).expect("bind 127.0.0.2");
    socket.connect(&bind.into()).expect("connect");
    let mut from_other: TcpStream = socket.into();
    from_other.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut buf = [0u8; 8];
    let closed = match from_other.read(&mut buf) {
        Ok(n) => n == 0,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(closed, "a rejected client was served");
}
