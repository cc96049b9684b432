//! fulcrum and the real HAProxy side by side, on the same haproxy.cfg: hash-based balancing
//! sends each key to the same server (HAProxy's hash functions, map-based, equal weights).
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_addr, temp_dir, Origin};

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(program: &str, args: &[&str], config: &std::path::Path, addr: SocketAddr) -> Running {
    let mut child = Command::new(program)
        .args(args)
        .arg("-f")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{program} exited ({status}) on {}", std::fs::read_to_string(config).unwrap_or_default());
        }
        assert!(Instant::now() < deadline, "{program} does not listen on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Running(child)
}

/// The server that answered `target` (with `header: value` if given).
fn served_by(addr: SocketAddr, target: &str, header: Option<(&str, &str)>) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let extra = header.map(|(k, v)| format!("{k}: {v}\r\n")).unwrap_or_default();
    write!(s, "GET {target} HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n").expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    answer
        .lines()
        .find_map(|l| l.strip_prefix("x-served-by: "))
        .unwrap_or_else(|| panic!("no x-served-by in {answer}"))
        .to_string()
}

#[test]
fn hash_balancing_sends_keys_where_haproxy_does() {
    if Command::new("haproxy").arg("-v").output().is_err() && !fulcrum_testkit::skip("hash conformance", "haproxy") {
        return;
    }
    let origins: Vec<Origin> = (1..=4)
        .map(|i| Origin::spawn(&format!("s{i}"), "127.0.0.1:0".parse().expect("addr")).expect("origin"))
        .collect();
    let servers: String =
        origins.iter().map(|o| format!("    server {} {}\n", o.name, o.addr)).collect::<Vec<_>>().join("");
    let dir = temp_dir("conformance");
    let cases = [
        ("balance uri", ""),
        ("balance uri whole", "hash-type map-based djb2"),
        ("balance uri", "hash-type map-based wt6"),
        ("balance uri", "hash-type map-based crc32"),
        ("balance uri len 6", "hash-type map-based sdbm avalanche"),
        ("balance url_param id", ""),
        ("balance hdr(x-key)", "hash-type map-based djb2 avalanche"),
    ];
    let targets: Vec<String> = (0..24)
        .map(|i| format!("/p{i}/item-{}?id=user{}&x={i}", i * 7, i % 9))
        .chain(["/url1", "/url1?ignore=this-arg", "/url2", "/url3", "/url4", "/", "/a/b/c"].map(String::from))
        .collect();
    for (balance, hash_type) in cases {
        let (ours, theirs) = (free_addr(), free_addr());
        let config = |bind: SocketAddr| {
            format!(
                "defaults\n    mode http\n    timeout client 5s\n    timeout server 5s\n    timeout connect 2s\n\
                 listen px\n    bind {bind}\n    {balance}\n    {hash_type}\n{servers}"
            )
        };
        let (ours_cfg, theirs_cfg) = (dir.join("fulcrum.cfg"), dir.join("haproxy.cfg"));
        std::fs::write(&ours_cfg, config(ours)).expect("write");
        std::fs::write(&theirs_cfg, config(theirs)).expect("write");
        let _haproxy = start("haproxy", &["-db"], &theirs_cfg, theirs);
        let _fulcrum = start(common::bin(), &["haproxy", "-db"], &ours_cfg, ours);
        let mut spread = std::collections::BTreeSet::new();
        for target in &targets {
            let key = target.rsplit('=').next().unwrap_or("k");
            let header = balance.contains("hdr").then_some(("x-key", key));
            let want = served_by(theirs, target, header);
            let got = served_by(ours, target, header);
            assert_eq!(got, want, "'{balance}' '{hash_type}': {target} went to {got}, HAProxy sends it to {want}");
            spread.insert(want);
        }
        assert!(spread.len() >= 3, "'{balance}' '{hash_type}': keys should spread, got {spread:?}");
    }
}
