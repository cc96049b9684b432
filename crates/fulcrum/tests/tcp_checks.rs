//! `option tcp-check` and HAProxy's protocol checks against real peers where Debian has them
//! (redis-server, PostgreSQL, openssl s_server) and scripted ones for MySQL, SMTP and LDAP.
//! Each server starts down (its peer is not there yet), and goes up when the peer answers as
//! the protocol wants: the log line says why, in HAProxy's words.
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_addr, Fulcrum, Killed};

/// fulcrum with one backend per check, each server checked on `port`, every 200 ms, down
/// after one failure and up after one success.
fn start(name: &str, backends: &[(&str, &str, SocketAddr)]) -> Fulcrum {
    let probe = free_addr();
    let mut text = format!(
        "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n    timeout check 2s\n\
         frontend probe\n    bind {probe}\n    default_backend sink\nbackend sink\n    server nowhere 127.0.0.1:9\n"
    );
    for (backend, check, peer) in backends {
        text.push_str(&format!(
            "backend {backend}\n{check}    server s1 127.0.0.1:9 check port {} inter 200 rise 1 fall 1\n",
            peer.port()
        ));
    }
    Fulcrum::start(name, &text, probe)
}

/// A one-connection-at-a-time scripted server: `answer` gets what was read so far and says
/// what to send (None: read more).
fn scripted(addr: SocketAddr, answer: fn(&[u8], usize) -> Option<Vec<u8>>) {
    let listener = TcpListener::bind(addr).expect("bind the scripted peer");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(200) {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
            let mut got = Vec::new();
            let mut step = 0;
            // The server may speak first (a banner, a greeting).
            if let Some(first) = answer(&got, step) {
                let _ = s.write_all(&first);
                step += 1;
            }
            let mut buf = [0u8; 4096];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
                if let Some(reply) = answer(&got, step) {
                    let _ = s.write_all(&reply);
                    step += 1;
                    got.clear();
                }
            }
        }
    });
}

fn up_line(f: &Fulcrum, backend: &str) -> String {
    let needle = format!("Server {backend}/s1 is UP");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = f.stderr();
        if let Some(line) = log.lines().find(|l| l.contains(&needle)) {
            return line.to_string();
        }
        assert!(Instant::now() < deadline, "{backend} never came up:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_down(f: &Fulcrum, backend: &str) {
    f.wait_log(&format!("Server {backend}/s1 is DOWN"), Duration::from_secs(10));
}

fn redis(port: u16) -> Killed {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (scripts/test.sh installs it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server does not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Killed(child)
}

#[test]
fn redis_and_tcp_check_rules_against_redis_server() {
    let (peer, running) = (free_addr(), free_addr());
    // One redis is there from the start: a rule that does not match takes its server down.
    let _first = redis(running.port());
    let f = start(
        "redis.cfg",
        &[
            ("redis", "    option redis-check\n", peer),
            ("rules", "    option tcp-check\n    tcp-check send PING\\r\\n\n    tcp-check expect string +PONG\n", peer),
            (
                "wrong",
                "    option tcp-check\n    tcp-check send PING\\r\\n\n    tcp-check expect min-recv 5 string NOPE\n",
                running,
            ),
        ],
    );
    for b in ["redis", "rules", "wrong"] {
        wait_down(&f, b);
    }
    assert!(f.stderr().contains("Server wrong/s1 is DOWN, reason: Layer7 invalid response, info: \"TCPCHK did not match content 'NOPE' at step 2\""), "{}", f.stderr());
    let _redis = redis(peer.port());
    assert!(up_line(&f, "redis").contains("reason: Layer7 check passed, info: \"Redis server is ok\""));
    assert!(up_line(&f, "rules").contains("Layer7 check passed, info: \"(tcp-check)\""));
}

#[test]
fn pgsql_check_against_postgresql() {
    let dir = common::temp_dir("pg");
    let data = dir.join("data");
    let bin = ["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/local/bin"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|d| d.join("initdb").exists())
        .expect("PostgreSQL's initdb (scripts/test.sh installs postgresql)");
    // PostgreSQL refuses to run as root: its own user runs it, in a directory it owns.
    let _ = Command::new("chown").args(["-R", "postgres"]).arg(&dir).status();
    let init = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join("initdb"))
        .args(["-A", "trust", "-U", "haproxy", "-D"])
        .arg(&data)
        .output()
        .expect("initdb");
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let peer = free_addr();
    let f = start("pgsql.cfg", &[("pg", "    option pgsql-check user haproxy\n", peer)]);
    wait_down(&f, "pg");
    let _pg = Killed(
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &peer.port().to_string(), "-h", "127.0.0.1", "-k"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres"),
    );
    assert!(up_line(&f, "pg").contains("Layer7 check passed, info: \"PostgreSQL server is ok\""));
}

/// A MySQL server: a protocol-10 greeting, then OK to any login (`user` haproxy) or ERR 1045.
fn mysql(got: &[u8], step: usize) -> Option<Vec<u8>> {
    match step {
        0 => {
            let mut payload = vec![0x0a];
            payload.extend_from_slice(b"10.11.0-fulcrum-test\0");
            payload.extend_from_slice(&[1, 0, 0, 0]);
            payload.extend_from_slice(b"abcdefgh\0");
            payload.extend_from_slice(&[0xff, 0xf7, 0x21, 0x02, 0x00]);
            let mut p = vec![u8::try_from(payload.len()).expect("small"), 0, 0, 0];
            p.extend_from_slice(&payload);
            Some(p)
        }
        1 if got.len() >= 4 => {
            let denied = got.windows(7).any(|w| w == b"nobody\0");
            Some(if denied {
                let mut e = vec![0xff, 0x15, 0x04];
                e.extend_from_slice(b"#28000Access denied");
                let mut p = vec![u8::try_from(e.len()).expect("small"), 0, 0, 2];
                p.extend_from_slice(&e);
                p
            } else {
                vec![7, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0]
            })
        }
        _ => None,
    }
}

fn smtp(got: &[u8], step: usize) -> Option<Vec<u8>> {
    match step {
        0 => Some(b"220 mail.test ESMTP\r\n".to_vec()),
        1 if got.ends_with(b"\r\n") => {
            Some(if got.starts_with(b"HELO localhost") { b"250 hello\r\n".to_vec() } else { b"500 what\r\n".to_vec() })
        }
        _ => None,
    }
}

fn ldap(got: &[u8], step: usize) -> Option<Vec<u8>> {
    match step {
        1.. if got.len() >= 14 => {
            Some(vec![0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00])
        }
        0 => None,
        _ => None,
    }
}

fn ldap_first(got: &[u8], step: usize) -> Option<Vec<u8>> {
    if step == 0 && got.is_empty() {
        return None;
    }
    ldap(got, step.max(1))
}

#[test]
fn mysql_smtp_and_ldap_checks_against_scripted_peers() {
    let (my_ok, my_denied, mail, directory) = (free_addr(), free_addr(), free_addr(), free_addr());
    // The peer that refuses the login is there from the start: its server goes down, and why.
    scripted(my_denied, mysql);
    let f = start(
        "protocols.cfg",
        &[
            ("my", "    option mysql-check user haproxy\n", my_ok),
            ("mydenied", "    option mysql-check user nobody\n", my_denied),
            ("mail", "    option smtpchk\n", mail),
            ("dir", "    option ldap-check\n", directory),
        ],
    );
    for b in ["my", "mydenied", "mail", "dir"] {
        wait_down(&f, b);
    }
    assert!(
        f.stderr().contains("Server mydenied/s1 is DOWN, reason: Layer7 wrong status, info: \"code: 1045"),
        "{}",
        f.stderr()
    );
    scripted(my_ok, mysql);
    scripted(mail, smtp);
    scripted(directory, ldap_first);
    assert!(up_line(&f, "my").contains("Layer7 check passed"));
    assert!(up_line(&f, "mail").contains("Layer7 check passed"));
    assert!(up_line(&f, "dir").contains("Layer7 check passed"));
    assert!(!f.stderr().contains("Server mydenied/s1 is UP"), "{}", f.stderr());
}

#[test]
fn ssl_hello_chk_against_openssl() {
    let dir = common::temp_dir("sslhello");
    common::self_signed(&dir);
    let peer = free_addr();
    let f = start("sslhello.cfg", &[("tls", "    option ssl-hello-chk\n", peer)]);
    wait_down(&f, "tls");
    let _server = Killed(
        Command::new("openssl")
            .args(["s_server", "-quiet", "-accept"])
            .arg(peer.to_string())
            .args(["-cert", "cert.pem", "-key", "key.pem"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server"),
    );
    // A modern server answers an SSLv3 hello with an alert record: that passes, as in HAProxy.
    assert!(up_line(&f, "tls").contains("Layer6 check passed"));
}

#[test]
fn tcp_check_connect_ssl_speaks_tls_to_redis() {
    let dir = common::temp_dir("redis-tls");
    common::self_signed(&dir);
    let (tls_port, plain) = (free_addr(), free_addr());
    let _plain_redis = redis(plain.port());
    let probe = free_addr();
    let rules = "    option tcp-check\n    tcp-check connect ssl\n    tcp-check send PING\\r\\n\n    tcp-check expect string +PONG\n";
    let text = format!(
        "global\n    ssl-server-verify none\n\
         defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n    timeout check 2s\n\
         frontend probe\n    bind {probe}\n    default_backend tls\n\
         backend tls\n{rules}    server s1 {tls_port} check inter 200 rise 1 fall 1\n\
         backend plain\n{rules}    server s1 {plain} check inter 200 rise 1 fall 1\n"
    );
    let f = Fulcrum::start("redis-tls.cfg", &text, probe);
    // Nothing listens yet on the TLS port: down. A server that does not speak TLS: down too.
    wait_down(&f, "tls");
    wait_down(&f, "plain");
    // redis-server with TLS only (its own certificate, no client certificates asked for):
    // PING over TLS gets +PONG.
    let child = Command::new("redis-server")
        .args(["--port", "0", "--tls-port", &tls_port.port().to_string(), "--bind", "127.0.0.1", "--save", ""])
        .args(["--tls-cert-file", "cert.pem", "--tls-key-file", "key.pem", "--tls-ca-cert-file", "cert.pem"])
        .args(["--tls-auth-clients", "no"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server");
    let _tls_redis = Killed(child);
    assert!(up_line(&f, "tls").contains("Layer7 check passed"), "{}", f.stderr());
    assert!(!f.stderr().contains("Server plain/s1 is UP"), "{}", f.stderr());
}
