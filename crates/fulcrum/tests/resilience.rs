//! Health checks, retries, backups, reload and drain with the real binary and real origins.
mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

fn any() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

/// GETs in a loop on a few keep-alive connections until `stop`, bounded by `limit` requests
/// and 60 s. Returns (ok, failed, failures' text).
fn load_loop(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    limit: usize,
) -> std::thread::JoinHandle<(usize, usize, Vec<String>)> {
    std::thread::spawn(move || {
        runtime().block_on(async move {
            let ok = Arc::new(AtomicUsize::new(0));
            let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut tasks = Vec::new();
            for _ in 0..4 {
                let (ok, failed, stop) = (ok.clone(), failed.clone(), stop.clone());
                tasks.push(tokio::spawn(async move {
                    let mut client: Option<Client> = None;
                    while !stop.load(Ordering::Relaxed)
                        && Instant::now() < deadline
                        && ok.load(Ordering::Relaxed) < limit
                    {
                        if client.is_none() {
                            client = Client::connect(addr).await.ok();
                        }
                        let Some(c) = client.as_mut() else {
                            failed.lock().expect("lock").push("connect failed".to_string());
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            continue;
                        };
                        match c.get("/").await {
                            Ok(r) if r.status == 200 => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => failed.lock().expect("lock").push(format!("status {} {}", r.status, r.body)),
                            Err(e) => {
                                failed.lock().expect("lock").push(e);
                                client = None;
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
            let failed = failed.lock().expect("lock").clone();
            (ok.load(Ordering::Relaxed), failed.len(), failed)
        })
    })
}

fn base(bind: SocketAddr, backend: &str) -> String {
    format!(
        "global\n    nbthread 2\ndefaults\n    mode http\n    timeout connect 500ms\n    timeout client 10s\n    timeout server 10s\n    retries 3\n    option redispatch\n\
         frontend fe\n    bind {bind}\n    default_backend be\n\
         backend be\n{backend}"
    )
}

#[test]
fn killed_server_costs_no_request_and_returns_after_rise() {
    let a = Origin::spawn("a", any()).expect("origin");
    let b = Origin::spawn("b", any()).expect("origin");
    let b_addr = b.addr;
    let bind = free_addr();
    let cfg = base(
        bind,
        &format!(
            "    option httpchk GET /health\n    server a {} check inter 200ms rise 2 fall 2\n    server b {} check inter 200ms rise 2 fall 2\n",
            a.addr, b.addr
        ),
    );
    let f = Fulcrum::start("kill.cfg", &cfg, bind);
    std::thread::sleep(Duration::from_millis(300));
    let stop = Arc::new(AtomicBool::new(false));
    let load = load_loop(bind, stop.clone(), 1_000_000);
    std::thread::sleep(Duration::from_millis(500));
    b.kill();
    // fall 2 x inter 200ms: out of rotation within ~400ms plus one check's time.
    let down_after = f.wait_log("Server be/b is DOWN", Duration::from_secs(5));
    assert!(down_after < Duration::from_millis(1500), "took {down_after:?}");
    std::thread::sleep(Duration::from_millis(500));
    let b2 = Origin::spawn("b", b_addr).expect("restart b on the same port");
    let up_after = f.wait_log("Server be/b is UP", Duration::from_secs(5));
    assert!(up_after < Duration::from_millis(1500), "took {up_after:?}");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let (ok, failed, why) = load.join().expect("load thread");
    assert!(ok > 100, "only {ok} requests went through");
    assert_eq!(failed, 0, "failed requests: {why:?}");
    assert!(b2.requests() > 0, "b serves again after coming back");
}

#[test]
fn dead_server_without_checks_is_retried_and_redispatched() {
    let a = Origin::spawn("a", any()).expect("origin");
    let (_held, dead) = common::dead_addr();
    let bind = free_addr();
    // Each retry of the dead server waits min(timeout connect, 1 s) first, as in HAProxy; the
    // last one (retries 3) goes to the other server at once (option redispatch).
    let cfg = base(bind, &format!("    server a {} \n    server dead {}\n", a.addr, dead))
        .replace("timeout connect 500ms", "timeout connect 100ms");
    let _f = Fulcrum::start("retry.cfg", &cfg, bind);
    let counts = runtime().block_on(tally(bind, "/", 40));
    assert_eq!(counts.get("a"), Some(&40), "{counts:?}");
}

#[test]
fn backups_take_over_only_when_all_primaries_are_down() {
    let p1 = Origin::spawn("p1", any()).expect("origin");
    let p2 = Origin::spawn("p2", any()).expect("origin");
    let k1 = Origin::spawn("k1", any()).expect("origin");
    let k2 = Origin::spawn("k2", any()).expect("origin");
    let servers = format!(
        "    option httpchk GET /health\n    server p1 {} check inter 100ms rise 1 fall 1\n    server p2 {} check inter 100ms rise 1 fall 1\n    server k1 {} check inter 100ms backup\n    server k2 {} check inter 100ms backup\n",
        p1.addr, p2.addr, k1.addr, k2.addr
    );
    let bind = free_addr();
    let f = Fulcrum::start("backup.cfg", &base(bind, &servers), bind);
    let rt = runtime();
    let counts = rt.block_on(tally(bind, "/", 20));
    assert_eq!(counts.keys().cloned().collect::<Vec<_>>(), vec!["p1", "p2"]);
    p1.set_healthy(false);
    f.wait_log("Server be/p1 is DOWN", Duration::from_secs(5));
    assert_eq!(rt.block_on(tally(bind, "/", 10)).keys().cloned().collect::<Vec<_>>(), vec!["p2"]);
    p2.set_healthy(false);
    f.wait_log("Server be/p2 is DOWN", Duration::from_secs(5));
    // Only the first backup, as HAProxy does without `option allbackups`.
    assert_eq!(rt.block_on(tally(bind, "/", 10)).keys().cloned().collect::<Vec<_>>(), vec!["k1"]);
    p2.set_healthy(true);
    f.wait_log("Server be/p2 is UP", Duration::from_secs(5));
    assert_eq!(rt.block_on(tally(bind, "/", 10)).keys().cloned().collect::<Vec<_>>(), vec!["p2"]);

    let bind2 = free_addr();
    let all = servers.replace("option httpchk", "option allbackups\n    option httpchk");
    let g = Fulcrum::start("allbackups.cfg", &base(bind2, &all), bind2);
    g.wait_log("Server be/p1 is DOWN", Duration::from_secs(5));
    p2.set_healthy(false);
    g.wait_log("Server be/p2 is DOWN", Duration::from_secs(5));
    assert_eq!(rt.block_on(tally(bind2, "/", 10)).keys().cloned().collect::<Vec<_>>(), vec!["k1", "k2"]);
    // Nothing healthy at all: a proper 503 page.
    k1.set_healthy(false);
    k2.set_healthy(false);
    g.wait_log("backend be has no server available", Duration::from_secs(5));
    let r = rt.block_on(get(bind2, "/")).expect("get");
    assert_eq!(r.status, 503);
    assert!(r.body.contains("No server is available"), "{}", r.body);
}

#[test]
fn keep_alive_reuses_upstream_connections() {
    let a = Origin::spawn("a", any()).expect("origin");
    let bind = free_addr();
    let cfg =
        base(bind, &format!("    http-reuse always\n    server a {}\n", a.addr)).replace("nbthread 2", "nbthread 1");
    let _f = Fulcrum::start("reuse.cfg", &cfg, bind);
    runtime().block_on(async {
        // 200 requests on 4 keep-alive client connections.
        for _ in 0..4 {
            let mut c = Client::connect(bind).await.expect("connect");
            for _ in 0..50 {
                assert_eq!(c.get("/").await.expect("get").status, 200);
            }
        }
        // 100 more, each on its own client connection that asks to close.
        for _ in 0..100 {
            let r = get_with(bind, "/", &[("connection", "close")]).await.expect("get");
            assert_eq!(r.status, 200);
        }
    });
    assert_eq!(a.requests(), 300);
    assert!(a.connections() <= 2, "300 requests used {} upstream connections", a.connections());
}

#[test]
fn sighup_reload_under_load_drops_nothing_and_applies() {
    let a = Origin::spawn("a", any()).expect("origin");
    let b = Origin::spawn("b", any()).expect("origin");
    let bind = free_addr();
    let one = base(bind, &format!("    option httpchk GET /health\n    server a {} check inter 200ms\n", a.addr));
    let f = Fulcrum::start("reload.cfg", &one, bind);
    let stop = Arc::new(AtomicBool::new(false));
    let load = load_loop(bind, stop.clone(), 1_000_000);
    std::thread::sleep(Duration::from_millis(300));
    let two = base(
        bind,
        &format!(
            "    option httpchk GET /health\n    server a {} check inter 200ms\n    server b {} check inter 200ms\n",
            a.addr, b.addr
        ),
    );
    for round in 0..4 {
        let text = if round % 2 == 0 { &two } else { &one };
        std::fs::write(&f.config, text).expect("write");
        f.signal("HUP");
        std::thread::sleep(Duration::from_millis(400));
    }
    // A broken file is refused and the running configuration stays.
    std::fs::write(&f.config, format!("{two}    balance roundrobbin\n")).expect("write");
    f.signal("HUP");
    f.wait_log("reload failed, keeping the running configuration", Duration::from_secs(5));
    f.wait_log("did you mean roundrobin", Duration::from_secs(1));
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let (ok, failed, why) = load.join().expect("load");
    assert!(ok > 100, "only {ok}");
    assert_eq!(failed, 0, "{why:?}");
    assert!(b.requests() > 0, "the reloaded configuration's new server took traffic");
    // The last good configuration (round 3: a only) is still the one in force.
    let counts = runtime().block_on(tally(bind, "/", 10));
    assert_eq!(counts.len(), 1, "config 'one' (a only) stays after the failed reload: {counts:?}");
}

#[test]
fn sigterm_drains_in_flight_requests() {
    let a = Origin::spawn("a", any()).expect("origin");
    let bind = free_addr();
    let mut f = Fulcrum::start("drain.cfg", &base(bind, &format!("    server a {}\n", a.addr)), bind);
    let rt = runtime();
    rt.block_on(async {
        let slow = tokio::spawn(get(bind, "/slow?ms=800"));
        tokio::time::sleep(Duration::from_millis(200)).await;
        f.signal("TERM");
        let r = slow.await.expect("join").expect("in-flight request completes");
        assert_eq!(r.status, 200);
    });
    let status = f.wait_exit(Duration::from_secs(10)).expect("fulcrum exits after draining");
    assert!(status.success(), "{status}");
    assert!(std::net::TcpStream::connect_timeout(&bind, Duration::from_millis(200)).is_err(), "no longer listening");
}

#[test]
fn maxconn_queues_and_timeout_queue_answers_503() {
    let a = Origin::spawn("a", any()).expect("origin");
    let bind = free_addr();
    let cfg = base(bind, &format!("    timeout queue 300ms\n    server a {} maxconn 1\n", a.addr));
    let _f = Fulcrum::start("queue.cfg", &cfg, bind);
    runtime().block_on(async {
        let first = tokio::spawn(get(bind, "/slow?ms=1000"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Waits in the queue, then gives up after 300 ms.
        let r = get(bind, "/").await.expect("get");
        assert_eq!(r.status, 503);
        assert_eq!(first.await.expect("join").expect("slow").status, 200);
        // With the slot free, queued requests go through.
        let quick: Vec<_> = (0..3).map(|_| tokio::spawn(get(bind, "/slow?ms=50"))).collect();
        for q in quick {
            assert_eq!(q.await.expect("join").expect("get").status, 200);
        }
    });
}
