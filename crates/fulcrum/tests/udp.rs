//! UDP services (TOML `mode = "udp"`, keepalived `protocol UDP`): flows keyed by the client's
//! address and port, replies to the right client, idle expiry, a bounded flow table; DNS and
//! syslog traffic from real clients. Loopback only.
mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_addr, Fulcrum};

/// A UDP server answering each datagram with `NAME:` and the datagram.
fn echo(name: &'static str) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = socket.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        for _ in 0..10_000 {
            let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
            let mut reply = format!("{name}:").into_bytes();
            reply.extend_from_slice(&buf[..n]);
            let _ = socket.send_to(&reply, from);
        }
    });
    addr
}

fn client() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.set_read_timeout(Some(Duration::from_millis(1500))).expect("timeout");
    socket
}

/// Sends `data` to `to` and returns the answer, or None when none comes.
fn ask(socket: &UdpSocket, to: SocketAddr, data: &str) -> Option<String> {
    socket.send_to(data.as_bytes(), to).expect("send");
    let mut buf = [0u8; 2048];
    let (n, from) = socket.recv_from(&mut buf).ok()?;
    assert_eq!(from, to, "the answer comes from the address the client wrote to");
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// fulcrum with `text`, waiting on a TCP probe frontend (UDP has nothing to connect to).
fn start(name: &str, text: &str) -> Fulcrum {
    let probe = free_addr();
    let text = format!(
        "{text}\n[[frontend]]\nname = \"probe\"\nmode = \"tcp\"\nbind = \"{probe}\"\ndefault_backend = \"sink\"\n\
         [[backend]]\nname = \"sink\"\nmode = \"tcp\"\nretries = 0\n[[backend.server]]\nname = \"nowhere\"\naddress = \"127.0.0.1:9\"\n"
    );
    Fulcrum::start(name, &text, probe)
}

fn free_udp() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr")
}

#[test]
fn flows_stick_answer_the_right_client_expire_and_are_bounded() {
    let (a, b) = (echo("a"), echo("b"));
    let vip = free_udp();
    let text = format!(
        "[[frontend]]\nname = \"dns\"\nmode = \"udp\"\nbind = \"{vip}\"\nmaxconn = 2\ndefault_backend = \"pool\"\n\
         timeouts = {{ client = \"1s\" }}\n\
         [[backend]]\nname = \"pool\"\nmode = \"udp\"\nbalance = \"rr\"\n\
         [[backend.server]]\nname = \"a\"\naddress = \"{a}\"\n[[backend.server]]\nname = \"b\"\naddress = \"{b}\"\n"
    );
    let f = start("udp.toml", &text);
    let one = client();
    let first = ask(&one, vip, "1").expect("an answer");
    let mine = &first[..1];
    // The same socket is one flow: every datagram to the same server, every answer back to it.
    for i in 2..6 {
        assert_eq!(ask(&one, vip, &i.to_string()), Some(format!("{mine}:{i}")));
    }
    // A new socket is a new flow: rr sends it to the other server.
    let two = client();
    let other = ask(&two, vip, "x").expect("an answer");
    assert_ne!(&other[..1], mine, "{other}");
    // The table holds 2 flows: a third client gets nothing, and it is counted.
    let three = client();
    three.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
    assert_eq!(ask(&three, vip, "x"), None);
    f.wait_log("UDP flow table full (2 flows): datagram from", Duration::from_secs(5));
    // After a second of silence the flows expire: the third client gets in, and the first
    // socket's next datagram is a new flow (rr moves on).
    std::thread::sleep(Duration::from_millis(1600));
    let again = ask(&three, vip, "y").expect("room after expiry");
    assert!(again.ends_with(":y"), "{again}");
}

/// A DNS server answering every query with its id, QR set, RCODE 0 and one A record.
fn resolver(queries: Arc<Mutex<Vec<u16>>>) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = socket.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        for _ in 0..10_000 {
            let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
            if n < 12 {
                continue;
            }
            queries.lock().expect("lock").push(u16::from_be_bytes([buf[0], buf[1]]));
            let mut reply = buf[..n].to_vec();
            reply[2] = 0x81;
            reply[3] = 0x80;
            reply[7] = 1; // ANCOUNT 1
            reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
            let _ = socket.send_to(&reply, from);
        }
    });
    addr
}

#[test]
fn a_keepalived_udp_virtual_server_carries_dns_and_syslog() {
    let queries = Arc::new(Mutex::new(Vec::new()));
    let dns = resolver(queries.clone());
    let syslog = UdpSocket::bind("127.0.0.1:0").expect("bind");
    syslog.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let syslog_addr = syslog.local_addr().expect("addr");
    let (dns_vip, syslog_vip) = (free_udp(), free_udp());
    let probe = free_addr();
    let text = format!(
        "virtual_server {} {} {{\n    protocol UDP\n    lvs_sched rr\n    real_server {} {} {{\n        DNS_CHECK {{\n            type A\n            name example.com\n            delay_loop 0.5\n        }}\n    }}\n}}\n\
         virtual_server {} {} {{\n    protocol UDP\n    real_server {} {} {{\n    }}\n}}\n\
         virtual_server {} {} {{\n    protocol TCP\n    real_server 127.0.0.1 9 {{\n    }}\n}}\n",
        dns_vip.ip(),
        dns_vip.port(),
        dns.ip(),
        dns.port(),
        syslog_vip.ip(),
        syslog_vip.port(),
        syslog_addr.ip(),
        syslog_addr.port(),
        probe.ip(),
        probe.port()
    );
    let f = Fulcrum::start("udp.conf", &text, probe);
    // A DNS query through the virtual server: the answer carries the query's id.
    let c = client();
    let query = b"\xbe\xef\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01";
    c.send_to(query, dns_vip).expect("send");
    let mut buf = [0u8; 512];
    let (n, from) = c.recv_from(&mut buf).expect("a DNS answer");
    assert_eq!(from, dns_vip);
    assert_eq!(&buf[..2], b"\xbe\xef");
    assert_eq!(buf[3] & 0x0f, 0, "RCODE 0");
    assert!(n > query.len(), "an answer record");
    // keepalived's DNS_CHECK queried the server too (its own ids), and found it up.
    let deadline = Instant::now() + Duration::from_secs(5);
    while queries.lock().expect("lock").iter().filter(|id| **id != 0xbeef).count() == 0 {
        assert!(Instant::now() < deadline, "no DNS_CHECK query reached the server");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!f.stderr().contains("Removing service"), "{}", f.stderr());
    // util-linux logger, a real syslog client, through the other virtual server.
    let sent = std::process::Command::new("logger")
        .args(["--udp", "-n"])
        .arg(syslog_vip.ip().to_string())
        .arg("-P")
        .arg(syslog_vip.port().to_string())
        .args(["-t", "fulcrum-test", "hello over udp"])
        .status()
        .expect("logger");
    assert!(sent.success());
    let (n, _) = syslog.recv_from(&mut buf).expect("the syslog line");
    let line = String::from_utf8_lossy(&buf[..n]);
    assert!(line.contains("fulcrum-test") && line.contains("hello over udp"), "{line}");
}

#[test]
fn one_address_carries_a_tcp_and_a_udp_service() {
    let udp_echo = echo("u");
    let tcp_echo = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let tcp_addr = tcp_echo.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in tcp_echo.incoming().take(4) {
            use std::io::Write;
            let Ok(mut s) = s else { continue };
            let _ = s.write_all(b"t:");
        }
    });
    // The same address and port for both: a free TCP port, checked free for UDP too.
    let vip = free_addr();
    assert!(UdpSocket::bind(vip).is_ok(), "{vip} is taken for UDP");
    let text = format!(
        "[[frontend]]\nname = \"dns-udp\"\nmode = \"udp\"\nbind = \"{vip}\"\ndefault_backend = \"u\"\n\
         [[frontend]]\nname = \"dns-tcp\"\nmode = \"tcp\"\nbind = \"{vip}\"\ndefault_backend = \"t\"\n\
         [[backend]]\nname = \"u\"\nmode = \"udp\"\n[[backend.server]]\nname = \"u1\"\naddress = \"{udp_echo}\"\n\
         [[backend]]\nname = \"t\"\nmode = \"tcp\"\n[[backend.server]]\nname = \"t1\"\naddress = \"{tcp_addr}\"\n"
    );
    let _f = start("both.toml", &text);
    assert_eq!(ask(&client(), vip, "q"), Some("u:q".into()));
    let mut s = std::net::TcpStream::connect(vip).expect("tcp");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut got = [0u8; 2];
    std::io::Read::read_exact(&mut s, &mut got).expect("tcp answer");
    assert_eq!(&got, b"t:");
}
