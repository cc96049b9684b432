//! Passive health (observe), slowstart, HTTP check expectations, the TOML format and frontend
//! maxconn, with the real binary.
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

fn any() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

fn cfg(bind: SocketAddr, fe_extra: &str, backend: &str) -> String {
    format!(
        "defaults\n    mode http\n    timeout connect 500ms\n    timeout client 5s\n    timeout server 5s\n\
         frontend fe\n    bind {bind}\n    default_backend be\n{fe_extra}\
         backend be\n{backend}"
    )
}

#[test]
fn observe_layer7_marks_a_failing_server_down_and_checks_bring_it_back() {
    let a = Origin::spawn("a", any()).expect("origin");
    let bind = free_addr();
    let backend = format!(
        "    option httpchk GET /health\n    server a {} check inter 300ms rise 2 fall 3 observe layer7 error-limit 3 on-error mark-down\n",
        a.addr
    );
    let f = Fulcrum::start("observe.cfg", &cfg(bind, "", &backend), bind);
    let rt = runtime();
    for _ in 0..3 {
        assert_eq!(rt.block_on(get(bind, "/status/500")).expect("get").status, 500);
    }
    f.wait_log("Server be/a is DOWN", Duration::from_secs(3));
    assert!(f.stderr().contains("consecutive errors observed"), "{}", f.stderr());
    // Its active checks still pass, so it comes back after `rise` good checks.
    f.wait_log("Server be/a is UP", Duration::from_secs(5));
    assert_eq!(rt.block_on(get(bind, "/")).expect("get").status, 200);
}

#[test]
fn http_check_expect_string() {
    let a = Origin::spawn("a", any()).expect("origin");
    let b = Origin::spawn("b", any()).expect("origin");
    let bind = free_addr();
    // Only a's answer to /headers... every origin answers "served by NAME": expect a's name.
    let backend = format!(
        "    option httpchk GET /whoami\n    http-check expect string \"served by a\"\n    server a {} check inter 200ms\n    server b {} check inter 200ms\n",
        a.addr, b.addr
    );
    let f = Fulcrum::start("expect.cfg", &cfg(bind, "", &backend), bind);
    f.wait_log("Server be/b is DOWN, reason: Layer7 content mismatch", Duration::from_secs(3));
    let counts = runtime().block_on(tally(bind, "/", 10));
    assert_eq!(counts.keys().cloned().collect::<Vec<_>>(), vec!["a"]);
}

#[test]
fn slowstart_ramps_a_returning_server() {
    let a = Origin::spawn("a", any()).expect("origin");
    let b = Origin::spawn("b", any()).expect("origin");
    let bind = free_addr();
    let backend = format!(
        "    option httpchk GET /health\n    server a {} check inter 100ms rise 1 fall 1 weight 100\n    server b {} check inter 100ms rise 1 fall 1 weight 100 slowstart 4s\n",
        a.addr, b.addr
    );
    let f = Fulcrum::start("slowstart.cfg", &cfg(bind, "", &backend), bind);
    b.set_healthy(false);
    f.wait_log("Server be/b is DOWN", Duration::from_secs(3));
    b.set_healthy(true);
    f.wait_log("Server be/b is UP", Duration::from_secs(3));
    // Right after coming back b has a small fraction of its weight: far less than half.
    let early = runtime().block_on(tally(bind, "/", 40));
    let b_early = early.get("b").copied().unwrap_or(0);
    assert!(b_early < 12, "b got {b_early} of 40 right after returning: {early:?}");
    // After the ramp it is back to an equal share.
    std::thread::sleep(Duration::from_millis(4500));
    let late = runtime().block_on(tally(bind, "/", 40));
    assert_eq!(late.get("b"), Some(&20), "{late:?}");
}

#[test]
fn toml_config_runs() {
    let a = Origin::spawn("a", any()).expect("origin");
    let b = Origin::spawn("b", any()).expect("origin");
    let bind = free_addr();
    let toml = format!(
        "[global]\nthreads = 1\n\n[[frontend]]\nname = \"web\"\nbind = [\"{bind}\"]\ndefault_backend = \"app\"\n\n\
         [[backend]]\nname = \"app\"\nbalance = \"roundrobin\"\n\n\
         [[backend.server]]\nname = \"a\"\naddress = \"{}\"\nweight = 2\n\n\
         [[backend.server]]\nname = \"b\"\naddress = \"{}\"\n",
        a.addr, b.addr
    );
    let _f = Fulcrum::start("fulcrum.toml", &toml, bind);
    let counts = runtime().block_on(tally(bind, "/", 30));
    assert_eq!(counts.get("a"), Some(&20), "{counts:?}");
    assert_eq!(counts.get("b"), Some(&10), "{counts:?}");
}

#[test]
fn frontend_maxconn_holds_extra_connections_back() {
    let a = Origin::spawn("a", any()).expect("origin");
    let bind = free_addr();
    let f_cfg = cfg(bind, "    maxconn 1\n", &format!("    server a {}\n", a.addr));
    let _f = Fulcrum::start("maxconn.cfg", &f_cfg, bind);
    runtime().block_on(async {
        // One connection holds the only slot with a slow request...
        let slow = tokio::spawn(get(bind, "/slow?ms=800"));
        tokio::time::sleep(Duration::from_millis(200)).await;
        // ...so a second connection is not served until it is released.
        let started = std::time::Instant::now();
        let r = get(bind, "/").await.expect("get");
        assert_eq!(r.status, 200);
        assert!(started.elapsed() >= Duration::from_millis(400), "served after {:?}", started.elapsed());
        assert_eq!(slow.await.expect("join").expect("slow").status, 200);
    });
}
