//! The real binary, real origins on loopback: how requests spread per `balance` algorithm.
mod common;

use std::net::SocketAddr;

use common::*;

struct Farm {
    origins: Vec<Origin>,
}

impl Farm {
    fn new(n: usize) -> Farm {
        let origins = (0..n)
            .map(|i| Origin::spawn(&format!("s{}", i + 1), "127.0.0.1:0".parse().expect("addr")).expect("origin"))
            .collect();
        Farm { origins }
    }

    fn servers(&self, params: &[&str]) -> String {
        self.origins
            .iter()
            .enumerate()
            .map(|(i, o)| format!("    server {} {} {}\n", o.name, o.addr, params.get(i).copied().unwrap_or("")))
            .collect()
    }
}

fn config(bind: SocketAddr, backend: &str, servers: &str) -> String {
    format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n\
         frontend fe\n    bind {bind}\n    default_backend be\n\
         backend be\n{backend}\n{servers}"
    )
}

#[test]
fn roundrobin_follows_weights_exactly() {
    let farm = Farm::new(3);
    let bind = free_addr();
    let _f = Fulcrum::start(
        "rr.cfg",
        &config(bind, "    balance roundrobin", &farm.servers(&["weight 1", "weight 2", "weight 3"])),
        bind,
    );
    let counts = runtime().block_on(tally(bind, "/", 60));
    assert_eq!(counts.get("s1"), Some(&10), "{counts:?}");
    assert_eq!(counts.get("s2"), Some(&20), "{counts:?}");
    assert_eq!(counts.get("s3"), Some(&30), "{counts:?}");
}

#[test]
fn static_rr_follows_weights_exactly() {
    let farm = Farm::new(2);
    let bind = free_addr();
    let _f = Fulcrum::start(
        "srr.cfg",
        &config(bind, "    balance static-rr", &farm.servers(&["weight 3", "weight 1"])),
        bind,
    );
    let counts = runtime().block_on(tally(bind, "/", 40));
    assert_eq!(counts.get("s1"), Some(&30), "{counts:?}");
    assert_eq!(counts.get("s2"), Some(&10), "{counts:?}");
}

#[test]
fn source_and_uri_hashing_are_sticky_and_spread() {
    let farm = Farm::new(3);
    let bind = free_addr();
    let _f = Fulcrum::start("src.cfg", &config(bind, "    balance source", &farm.servers(&[])), bind);
    let counts = runtime().block_on(tally(bind, "/", 30));
    assert_eq!(counts.len(), 1, "one client address must always reach one server: {counts:?}");

    let bind2 = free_addr();
    let _g = Fulcrum::start(
        "uri.cfg",
        &config(bind2, "    balance uri\n    hash-type consistent", &farm.servers(&[])),
        bind2,
    );
    runtime().block_on(async {
        let mut c = Client::connect(bind2).await.expect("connect");
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..60 {
            let path = format!("/item/{i}");
            let a = c.get(&path).await.expect("get").served_by();
            let b = c.get(&path).await.expect("get").served_by();
            assert_eq!(a, b, "the same URI must reach the same server");
            seen.insert(a);
        }
        assert_eq!(seen.len(), 3, "60 URIs should reach all 3 servers: {seen:?}");
    });
}

#[test]
fn url_param_and_header_hashing() {
    let farm = Farm::new(3);
    let bind = free_addr();
    let _f = Fulcrum::start("up.cfg", &config(bind, "    balance url_param user", &farm.servers(&[])), bind);
    runtime().block_on(async {
        let mut c = Client::connect(bind).await.expect("connect");
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..30 {
            let first = c.get(&format!("/?user=u{i}")).await.expect("get").served_by();
            for _ in 0..3 {
                assert_eq!(c.get(&format!("/?x=1&user=u{i}")).await.expect("get").served_by(), first);
            }
            seen.insert(first);
        }
        assert!(seen.len() >= 2, "{seen:?}");
        // Without the parameter: round robin.
        let mut rr = std::collections::BTreeSet::new();
        for _ in 0..3 {
            rr.insert(c.get("/").await.expect("get").served_by());
        }
        assert_eq!(rr.len(), 3);
    });
    let bind2 = free_addr();
    let _g = Fulcrum::start("hdr.cfg", &config(bind2, "    balance hdr(x-tenant)", &farm.servers(&[])), bind2);
    runtime().block_on(async {
        let mut c = Client::connect(bind2).await.expect("connect");
        for t in ["alpha", "beta", "gamma"] {
            let a = c.request(get_request("/", &[("x-tenant", t)])).await.expect("get").served_by();
            let b = c.request(get_request("/", &[("x-tenant", t)])).await.expect("get").served_by();
            assert_eq!(a, b);
        }
    });
}

#[test]
fn leastconn_avoids_the_busy_server() {
    let farm = Farm::new(2);
    let bind = free_addr();
    let _f = Fulcrum::start("lc.cfg", &config(bind, "    balance leastconn", &farm.servers(&[])), bind);
    runtime().block_on(async {
        // Park slow requests: leastconn spreads them, one per server in turn.
        let slow: Vec<_> = (0..4).map(|_| tokio::spawn(get(bind, "/slow?ms=1500"))).collect();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        // Two on each server now; fast requests still alternate and all succeed.
        let counts = tally(bind, "/", 10).await;
        assert_eq!(counts.values().sum::<usize>(), 10);
        for s in slow {
            assert_eq!(s.await.expect("join").expect("slow request").status, 200);
        }
    });
    // Now skew: s1 holds 3 slow requests, s2 none; new requests must go to s2.
    let bind2 = free_addr();
    let _g = Fulcrum::start("lc2.cfg", &config(bind2, "    balance leastconn", &farm.servers(&[])), bind2);
    runtime().block_on(async {
        let mut first = Vec::new();
        for _ in 0..3 {
            first.push(tokio::spawn(get(bind2, "/slow?ms=2000")));
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        // The 3 slow requests left one server with 2 active and the other with 1: every
        // sequential fast request goes to the less loaded one.
        let counts = tally(bind2, "/", 6).await;
        assert_eq!(counts.len(), 1, "fast requests should all go to the less loaded server: {counts:?}");
        for s in first {
            let _ = s.await;
        }
    });
}

#[test]
fn first_fills_servers_in_order() {
    let farm = Farm::new(2);
    let bind = free_addr();
    let _f = Fulcrum::start(
        "first.cfg",
        &config(bind, "    balance first", &farm.servers(&["maxconn 2", "maxconn 2"])),
        bind,
    );
    runtime().block_on(async {
        let counts = tally(bind, "/", 10).await;
        assert_eq!(counts.get("s1"), Some(&10), "{counts:?}");
        let slow: Vec<_> = (0..2).map(|_| tokio::spawn(get(bind, "/slow?ms=1000"))).collect();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let r = get(bind, "/").await.expect("get");
        assert_eq!(r.served_by(), "s2", "s1 is full at maxconn 2: the next request overflows to s2");
        for s in slow {
            assert_eq!(s.await.expect("join").expect("slow").served_by(), "s1");
        }
    });
}

#[test]
fn random_two_choices_spreads() {
    let farm = Farm::new(3);
    let bind = free_addr();
    let _f = Fulcrum::start("rand.cfg", &config(bind, "    balance random(2)", &farm.servers(&[])), bind);
    let counts = runtime().block_on(tally(bind, "/", 90));
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|c| *c >= 10), "{counts:?}");
}
