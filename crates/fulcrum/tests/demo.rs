//! `fulcrum demo` does what the README says: three origins behind a balancer, each answer
//! naming its origin, and it stops on SIGTERM.
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn demo_balances_over_three_named_origins() {
    let bind = free_addr();
    let mut child = Command::new(bin())
        .args(["demo", "--port", &bind.port().to_string(), "--origin-port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect_timeout(&bind, Duration::from_millis(100)).is_err() {
        assert!(Instant::now() < deadline, "demo never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    let bodies: Vec<String> = runtime().block_on(async {
        let mut out = Vec::new();
        for _ in 0..6 {
            out.push(get(bind, "/").await.expect("get").body);
        }
        out
    });
    let mut names: Vec<&str> = bodies.iter().map(|b| b.trim()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names, vec!["served by web1", "served by web2", "served by web3"]);
    let stats = runtime().block_on(get(bind, "/stats;csv")).expect("stats");
    assert!(stats.body.contains("web,web2,"), "{}", stats.body);

    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            assert!(s.success(), "{s}");
            break;
        }
        assert!(Instant::now() < deadline, "demo did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
