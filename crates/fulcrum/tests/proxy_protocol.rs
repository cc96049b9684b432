//! The PROXY protocol with the real HAProxy on the other side: fulcrum's `send-proxy` /
//! `send-proxy-v2` read by HAProxy's `accept-proxy`, HAProxy's `send-proxy-v2` read by
//! fulcrum's `accept-proxy` (in mode http and mode tcp). Clients connect from 127.0.0.3, so
//! the address each side reports is the client's only if the header carried it.
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_addr, temp_dir, Fulcrum, Origin};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn haproxy(name: &str, config: &str, listens: SocketAddr) -> Option<Killed> {
    if Command::new("haproxy").arg("-v").output().is_err() {
        fulcrum_testkit::skip(name, "haproxy");
        return None;
    }
    let dir = temp_dir(name);
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config).expect("write");
    let child =
        Command::new("haproxy").arg("-db").arg("-f").arg(&path).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
    let child = Killed(child.expect("start haproxy"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(listens).is_err() {
        assert!(Instant::now() < deadline, "haproxy does not listen on {listens}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(child)
}

/// A connection from 127.0.0.3.
fn connect_from_3(to: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    s.bind(&"127.0.0.3:0".parse::<SocketAddr>().expect("addr").into()).expect("bind 127.0.0.3");
    s.connect(&to.into()).expect("connect");
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    s
}

fn get_from_3(to: SocketAddr, path: &str) -> String {
    let mut s = connect_from_3(to);
    write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    answer
}

const DEFAULTS: &str = "defaults\n    timeout client 5s\n    timeout server 5s\n    timeout connect 2s\n";

#[test]
fn haproxy_reads_the_client_address_fulcrum_sends() {
    // HAProxy answers with the source address it believes in.
    let hap = free_addr();
    let hap_cfg = format!(
        "{DEFAULTS}frontend pp\n    mode http\n    bind {hap} accept-proxy\n    \
         http-request return status 200 content-type text/plain lf-string \"src=%[src]\"\n"
    );
    let Some(_h) = haproxy("pp_send", &hap_cfg, hap) else { return };
    for version in ["send-proxy", "send-proxy-v2"] {
        let bind = free_addr();
        let ours = format!(
            "{DEFAULTS}frontend web\n    mode http\n    bind {bind}\n    default_backend hap\n\
             backend hap\n    mode http\n    server h {hap} {version}\n"
        );
        let _f = Fulcrum::start("send.cfg", &ours, bind);
        let answer = get_from_3(bind, "/");
        assert!(answer.starts_with("HTTP/1.1 200"), "{version}: {answer}");
        assert!(answer.ends_with("src=127.0.0.3"), "{version}: {answer}");
        // A second request: a new connection, with its own header (no pooled reuse).
        assert!(get_from_3(bind, "/again").ends_with("src=127.0.0.3"));
    }
}

#[test]
fn fulcrum_reads_the_client_address_haproxy_sends() {
    let origin = Origin::spawn("pp-origin", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let (ours_http, ours_tcp) = (free_addr(), free_addr());
    let ours = format!(
        "{DEFAULTS}frontend web\n    mode http\n    bind {ours_http} accept-proxy\n    option forwardfor\n    default_backend app\n\
         frontend raw\n    mode tcp\n    option tcplog\n    bind {ours_tcp} accept-proxy\n    \
         tcp-request connection reject if {{ src 127.0.0.3 }}\n    default_backend rawapp\n\
         backend app\n    mode http\n    server o {}\nbackend rawapp\n    mode tcp\n    server o {}\n",
        origin.addr, origin.addr
    );
    // The start-up probe would send no header: wait on another listener of the same file.
    let probe = free_addr();
    let ours = format!("{ours}frontend probe\n    mode tcp\n    bind {probe}\n    default_backend rawapp\n");
    let f = Fulcrum::start("accept.cfg", &ours, probe);
    let (hap_http, hap_tcp) = (free_addr(), free_addr());
    let hap_cfg = format!(
        "{DEFAULTS}listen to_http\n    mode tcp\n    bind {hap_http}\n    server f {ours_http} send-proxy-v2\n\
         listen to_tcp\n    mode tcp\n    bind {hap_tcp}\n    server f {ours_tcp} send-proxy\n"
    );
    let Some(_h) = haproxy("pp_accept", &hap_cfg, hap_http) else { return };
    // mode http: the header's source is the client (X-Forwarded-For, the log).
    let answer = get_from_3(hap_http, "/headers");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("x-forwarded-for: 127.0.0.3"), "{answer}");
    // mode tcp: `tcp-request connection` rules see the real address (HAProxy's, 127.0.0.1),
    // so 127.0.0.3 is not rejected there; the log line names the client from the header.
    let mut s = connect_from_3(hap_tcp);
    s.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f.stderr().lines().any(|l| l.starts_with("127.0.0.3:") && l.contains(" raw rawapp/o ")) {
        assert!(Instant::now() < deadline, "no tcplog line for 127.0.0.3:\n{}", f.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Without a header, an accept-proxy listener closes the connection.
    let mut plain = TcpStream::connect(ours_http).expect("connect");
    plain.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    plain.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
    let mut buf = Vec::new();
    let closed = match plain.read_to_end(&mut buf) {
        Ok(_) => buf.is_empty(),
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(closed, "served without a PROXY header: {}", String::from_utf8_lossy(&buf));
}
