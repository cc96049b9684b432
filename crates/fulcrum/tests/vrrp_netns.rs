//! VRRP in network namespaces: fulcrum pairs, and fulcrum beside keepalived 2.2.7 on the wire.
//!
//! Each test builds its own lab (testkit::netns: a bridge in a switch namespace, nodes with
//! `vr0`, addresses 10.213.X.0/24, and fd00:213:X::/64 for IPv6 tests, only inside the
//! namespaces) and tears it down on drop. They
//! need root and `ip netns`; without them they print SKIPPED and pass, or fail under
//! `FULCRUM_REQUIRE_NETNS=1` (which CI sets). They run one at a time
//! (VRRP timers of 0.1 s on a 2-core machine).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fulcrum_testkit::netns::{keepalived_conf, netns_available, Daemon, Lab};

static SERIAL: Mutex<()> = Mutex::new(());
const KEEPALIVED: &str = "/usr/sbin/keepalived";
const PORT: u16 = 8000;

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn lab(test: &str, subnet: u8, nodes: usize) -> Option<Lab> {
    if !netns_available(test) {
        return None;
    }
    Some(Lab::new(test, subnet, nodes).expect("lab"))
}

fn fulcrum(lab: &Lab, i: usize, conf: &str) -> Daemon {
    fulcrum_files(lab, i, &[("conf", conf)])
}

/// fulcrum on node `i` with several configuration files (`node{i}.EXT` each, in order: e.g. a
/// haproxy.cfg as `cfg` and a keepalived.conf as `conf`).
fn fulcrum_files(lab: &Lab, i: usize, files: &[(&str, &str)]) -> Daemon {
    let mut c = match std::env::var("FULCRUM_TEST_STRACE") {
        Ok(out) => {
            let mut c = lab.nodes[i].command("strace");
            c.args(["-f", "-tt", "-o", &format!("{out}.{i}"), env!("CARGO_BIN_EXE_fulcrum")]);
            c
        }
        Err(_) => lab.nodes[i].command(env!("CARGO_BIN_EXE_fulcrum")),
    };
    c.arg("run");
    for (ext, text) in files {
        let path = lab.path(&format!("node{i}.{ext}"));
        std::fs::write(&path, text).expect("write config");
        c.arg("-c").arg(&path);
    }
    c.env("FULCRUM_LOG", std::env::var("FULCRUM_TEST_LOG").unwrap_or_else(|_| "info".into()));
    Daemon::spawn(c, &log_path(lab, i), Vec::new()).expect("spawn fulcrum")
}

fn keepalived_available(test: &str) -> bool {
    std::path::Path::new(KEEPALIVED).exists()
        || fulcrum_testkit::skip(test, &format!("{KEEPALIVED} (Debian keepalived 2.2.7)"))
}

fn keepalived(lab: &Lab, i: usize, conf: &str) -> Daemon {
    let path = lab.path(&format!("node{i}.conf"));
    std::fs::write(&path, conf).expect("write config");
    // Fresh pid files per start: a SIGKILLed keepalived leaves them behind (and its child may
    // linger as a zombie), and keepalived refuses to start over a live-looking one.
    let log = log_path(lab, i);
    let pid: PathBuf = log.with_extension("pid");
    let vrrp_pid: PathBuf = log.with_extension("vrrp.pid");
    let mut c = lab.nodes[i].command(KEEPALIVED);
    c.args(["-n", "-l", "-D", "-f"]).arg(&path).arg("-p").arg(&pid).arg("-r").arg(&vrrp_pid).arg("--vrrp");
    Daemon::spawn(c, &log, vec![vrrp_pid]).expect("spawn keepalived")
}

/// Fails with the logs of every daemon.
fn check<T, E: std::fmt::Display>(r: Result<T, E>, daemons: &[&Daemon]) -> T {
    match r {
        Ok(v) => v,
        Err(e) => {
            let logs: Vec<String> = daemons.iter().map(|d| format!("--- {}\n{}", d.log.display(), d.log())).collect();
            panic!("{e}\n{}", logs.join("\n"));
        }
    }
}

/// Over `span`, the VIP is never on two nodes (sampled every 20 ms).
fn never_two_masters(lab: &Lab, vip: &str, span: Duration, daemons: &[&Daemon]) {
    never_two_masters_on(lab, "vr0", vip, span, daemons);
}

fn wait_held_by(lab: &Lab, vip: &str, node: usize, limit: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if lab.holders(vip).contains(&node) {
            return Ok(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(format!("after {limit:?}, {vip} is held by nodes {:?}, not by node {node}", lab.holders(vip)))
}

/// A fresh log file name for each daemon started (a restarted node keeps the earlier log).
fn log_path(lab: &Lab, i: usize) -> PathBuf {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    lab.path(&format!("node{i}-run{}.log", RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)))
}

#[test]
fn fulcrum_pair_election_preemption_and_sigterm_failover() {
    let _serial = serial();
    let Some(lab) = lab("fulcrum_pair", 31, 2) else { return };
    let vip = lab.addr(100);
    let _www0 = lab.serve(0, PORT, "node0").expect("serve");
    let _www1 = lab.serve(1, PORT, "node1").expect("serve");
    let n1 = fulcrum(&lab, 1, &keepalived_conf("n1", 31, 100, 3, "0.1", &vip, ""));
    let mut n0 = fulcrum(&lab, 0, &keepalived_conf("n0", 31, 150, 3, "0.1", &vip, ""));
    // Higher priority wins the election.
    check(lab.wait_holders(&vip, &[0], Duration::from_secs(5)), &[&n0, &n1]);
    check(lab.wait_client_get(&vip, PORT, "node0", Duration::from_secs(5)), &[&n0, &n1]);
    never_two_masters(&lab, &vip, Duration::from_millis(500), &[&n0, &n1]);
    check(n0.wait_log("VRRP_Instance(VI_1) Entering MASTER STATE", Duration::from_secs(1)), &[&n0]);
    // SIGTERM: priority 0, the backup takes over in about Skew_Time.
    n0.signal("TERM");
    check(lab.wait_holders(&vip, &[1], Duration::from_secs(2)), &[&n0, &n1]);
    assert!(n0.wait_exit(Duration::from_secs(10)).is_some(), "node0 did not exit on SIGTERM");
    check(lab.wait_client_get(&vip, PORT, "node1", Duration::from_secs(5)), &[&n0, &n1]);
    // node0 comes back with the higher priority and preempts.
    let n0 = fulcrum(&lab, 0, &keepalived_conf("n0", 31, 150, 3, "0.1", &vip, ""));
    check(lab.wait_holders(&vip, &[0], Duration::from_secs(5)), &[&n0, &n1]);
    check(lab.wait_client_get(&vip, PORT, "node0", Duration::from_secs(5)), &[&n0, &n1]);
}

#[test]
fn fulcrum_nopreempt_keeps_the_running_master() {
    let _serial = serial();
    let Some(lab) = lab("fulcrum_nopreempt", 32, 2) else { return };
    let vip = lab.addr(100);
    let n0 = fulcrum(&lab, 0, &keepalived_conf("n0", 32, 100, 3, "0.1", &vip, ""));
    check(lab.wait_holders(&vip, &[0], Duration::from_secs(5)), &[&n0]);
    let n1 = fulcrum(&lab, 1, &keepalived_conf("n1", 32, 150, 3, "0.1", &vip, "    nopreempt\n"));
    check(n1.wait_log("VRRP_Instance(VI_1) started", Duration::from_secs(5)), &[&n1]);
    // Well past Master_Down_Interval (about 0.3 s): still node0.
    never_two_masters(&lab, &vip, Duration::from_secs(2), &[&n0, &n1]);
    assert_eq!(lab.holders(&vip), vec![0], "nopreempt backup took over:\n{}", n1.log());
}

#[test]
fn fulcrum_sigkill_guard_releases_the_vip() {
    let _serial = serial();
    let Some(lab) = lab("fulcrum_sigkill", 33, 2) else { return };
    let vip = lab.addr(100);
    let _www1 = lab.serve(1, PORT, "node1").expect("serve");
    let n1 = fulcrum(&lab, 1, &keepalived_conf("n1", 33, 100, 3, "0.1", &vip, ""));
    let mut n0 = fulcrum(&lab, 0, &keepalived_conf("n0", 33, 150, 3, "0.1", &vip, ""));
    check(lab.wait_holders(&vip, &[0], Duration::from_secs(5)), &[&n0, &n1]);
    n0.kill9_all();
    // The guard removes the VIP from the dead node and sends priority 0: the backup takes over
    // in about Skew_Time instead of Master_Down_Interval.
    check(lab.wait_holders(&vip, &[1], Duration::from_secs(2)), &[&n0, &n1]);
    check(
        n0.wait_log(
            "vrrp-guard: the main process exited without a clean shutdown; released VI_1",
            Duration::from_secs(2),
        ),
        &[&n0],
    );
    check(lab.wait_client_get(&vip, PORT, "node1", Duration::from_secs(5)), &[&n0, &n1]);
}

/// fulcrum on node 0, keepalived on node 1, each side winning in turn, failover both ways. With
/// `ipv6` the lab gets IPv6 addresses and the VIP is `fd00:213:SUBNET::100/64` (VRRPv3 to
/// ff02::12 from link-local sources).
fn interop(test: &str, subnet: u8, version: u8, advert_int: &str, extra: [&str; 2], failover: Duration, ipv6: bool) {
    let _serial = serial();
    if !keepalived_available(test) {
        return;
    }
    let Some(lab) = lab(test, subnet, 2) else { return };
    let vip = if ipv6 {
        check(lab.enable_ipv6(), &[]);
        lab.addr6(100)
    } else {
        lab.addr(100)
    };
    let conf = |router_id: &str, priority: u8, extra: &str| {
        let conf = keepalived_conf(router_id, subnet, priority, version, advert_int, &vip, extra);
        if ipv6 {
            conf.replace("/24", "/64")
        } else {
            conf
        }
    };
    let _www0 = lab.serve(0, PORT, "fulcrum").expect("serve");
    let _www1 = lab.serve(1, PORT, "keepalived").expect("serve");
    let startup = Duration::from_secs(10);
    // 1. fulcrum has the higher priority.
    let mut ka = keepalived(&lab, 1, &conf("ka", 100, extra[1]));
    let mut fu = fulcrum(&lab, 0, &conf("fu", 150, extra[0]));
    check(lab.wait_holders(&vip, &[0], startup), &[&fu, &ka]);
    check(lab.wait_client_get(&vip, PORT, "fulcrum", Duration::from_secs(5)), &[&fu, &ka]);
    never_two_masters(&lab, &vip, failover, &[&fu, &ka]);
    check(ka.wait_log("Entering BACKUP STATE", Duration::from_secs(1)), &[&ka]);
    // Failover fulcrum → keepalived (graceful: priority 0).
    fu.signal("TERM");
    check(lab.wait_holders(&vip, &[1], failover), &[&fu, &ka]);
    assert!(fu.wait_exit(Duration::from_secs(10)).is_some(), "fulcrum did not exit");
    check(lab.wait_client_get(&vip, PORT, "keepalived", Duration::from_secs(5)), &[&fu, &ka]);
    // 2. keepalived has the higher priority: fulcrum (lower) stays backup.
    let fu = fulcrum(&lab, 0, &conf("fu", 50, extra[0]));
    check(fu.wait_log("VRRP_Instance(VI_1) started", Duration::from_secs(5)), &[&fu]);
    never_two_masters(&lab, &vip, failover, &[&fu, &ka]);
    assert_eq!(lab.holders(&vip), vec![1]);
    // Failover keepalived → fulcrum: kill -9 both keepalived processes (no priority 0). The
    // dead keepalived leaves the VIP on its interface (what fulcrum's guard avoids); gratuitous
    // ARP (IPv6: an unsolicited neighbour advertisement with the override flag) moves the
    // client to fulcrum all the same.
    ka.kill9_all();
    check(wait_held_by(&lab, &vip, 0, failover * 2), &[&fu, &ka]);
    check(lab.wait_client_get(&vip, PORT, "fulcrum", Duration::from_secs(5)), &[&fu, &ka]);
    // keepalived comes back: it clears its leftover and preempts (100 > 50).
    let ka = keepalived(&lab, 1, &conf("ka", 100, extra[1]));
    check(lab.wait_holders(&vip, &[1], startup), &[&fu, &ka]);
    never_two_masters(&lab, &vip, failover, &[&fu, &ka]);
    check(lab.wait_client_get(&vip, PORT, "keepalived", Duration::from_secs(5)), &[&fu, &ka]);
}

#[test]
fn keepalived_interop_v3_fast_timers() {
    interop("keepalived_interop_v3", 34, 3, "0.1", ["", ""], Duration::from_secs(2), false);
}

#[test]
fn keepalived_interop_v2_pass_auth() {
    interop("keepalived_interop_v2", 35, 2, "1", ["", ""], Duration::from_secs(5), false);
}

#[test]
fn keepalived_interop_v3_ipv6() {
    interop("keepalived_interop_v3_ipv6", 60, 3, "0.1", ["", ""], Duration::from_secs(2), true);
}

/// The other two ways out, over IPv6: fulcrum is SIGKILLed (its guard removes the VIP and
/// sends priority 0 from the link-local source, keepalived takes over in about Skew_Time), then
/// keepalived is stopped (SIGTERM: it sends priority 0, fulcrum takes over likewise).
#[test]
fn keepalived_interop_v3_ipv6_fulcrum_sigkill_keepalived_sigterm() {
    let test = "keepalived_interop_v3_ipv6_kill";
    let _serial = serial();
    if !keepalived_available(test) {
        return;
    }
    let Some(lab) = lab(test, 61, 2) else { return };
    check(lab.enable_ipv6(), &[]);
    let vip = lab.addr6(100);
    let conf = |router_id: &str, priority: u8| {
        keepalived_conf(router_id, 61, priority, 3, "0.1", &vip, "").replace("/24", "/64")
    };
    let _www0 = lab.serve(0, PORT, "fulcrum").expect("serve");
    let _www1 = lab.serve(1, PORT, "keepalived").expect("serve");
    let mut ka = keepalived(&lab, 1, &conf("ka", 100));
    let mut fu = fulcrum(&lab, 0, &conf("fu", 150));
    check(lab.wait_holders(&vip, &[0], Duration::from_secs(10)), &[&fu, &ka]);
    check(lab.wait_client_get(&vip, PORT, "fulcrum", Duration::from_secs(5)), &[&fu, &ka]);
    never_two_masters(&lab, &vip, Duration::from_secs(1), &[&fu, &ka]);
    check(ka.wait_log("Entering BACKUP STATE", Duration::from_secs(1)), &[&ka]);
    // SIGKILL fulcrum: no clean shutdown, the guard releases VI_1 (VIP removed, priority 0).
    fu.kill9_all();
    let took = check(lab.wait_holders(&vip, &[1], Duration::from_secs(2)), &[&fu, &ka]);
    eprintln!("fulcrum SIGKILL → keepalived MASTER in {took:?}");
    check(
        fu.wait_log(
            "vrrp-guard: the main process exited without a clean shutdown; released VI_1",
            Duration::from_secs(2),
        ),
        &[&fu],
    );
    check(ka.wait_log("Backup received priority 0 advertisement", Duration::from_secs(1)), &[&fu, &ka]);
    check(lab.wait_client_get(&vip, PORT, "keepalived", Duration::from_secs(5)), &[&fu, &ka]);
    // fulcrum returns with a lower priority and stays backup.
    let fu = fulcrum(&lab, 0, &conf("fu", 50));
    check(fu.wait_log("VRRP_Instance(VI_1) Entering BACKUP STATE", Duration::from_secs(5)), &[&fu]);
    never_two_masters(&lab, &vip, Duration::from_secs(1), &[&fu, &ka]);
    assert_eq!(lab.holders(&vip), vec![1], "{}", fu.log());
    // Stop keepalived: it sends priority 0 and removes its VIP; fulcrum takes over.
    ka.signal("TERM");
    let took = check(lab.wait_holders(&vip, &[0], Duration::from_secs(2)), &[&fu, &ka]);
    eprintln!("keepalived SIGTERM → fulcrum MASTER in {took:?}");
    assert!(ka.wait_exit(Duration::from_secs(10)).is_some(), "keepalived did not exit on SIGTERM");
    check(lab.wait_client_get(&vip, PORT, "fulcrum", Duration::from_secs(5)), &[&fu, &ka]);
    never_two_masters(&lab, &vip, Duration::from_millis(500), &[&fu, &ka]);
}

#[test]
fn keepalived_interop_unicast_peers() {
    let peers = |src: u8, peer: u8| {
        format!("    unicast_src_ip 10.213.36.{src}\n    unicast_peer {{\n        10.213.36.{peer}\n    }}\n")
    };
    let (fu, ka) = (peers(1, 2), peers(2, 1));
    interop("keepalived_interop_unicast", 36, 3, "0.1", [&fu, &ka], Duration::from_secs(2), false);
}

#[test]
fn fulcrum_track_script_weight_and_notify() {
    let _serial = serial();
    let Some(lab) = lab("fulcrum_track_script", 37, 2) else { return };
    let vip = lab.addr(100);
    let flag = lab.path("healthy");
    let notes = lab.path("notify.log");
    std::fs::write(&flag, "").expect("flag");
    let script = format!(
        "vrrp_script chk {{\n    script \"test -f {}\"\n    interval 1\n    rise 1\n    fall 1\n}}\n\n",
        flag.display()
    );
    let extra =
        format!("    track_script {{\n        chk weight -100\n    }}\n    notify \"echo >> {} \"\n", notes.display());
    let conf0 = format!("{script}{}", keepalived_conf("n0", 37, 150, 3, "0.1", &vip, &extra));
    let n1 = fulcrum(&lab, 1, &keepalived_conf("n1", 37, 100, 3, "0.1", &vip, ""));
    let n0 = fulcrum(&lab, 0, &conf0);
    check(lab.wait_holders(&vip, &[0], Duration::from_secs(5)), &[&n0, &n1]);
    // The check fails: priority 150 - 100 = 50 < 100, node1 preempts.
    std::fs::remove_file(&flag).expect("remove flag");
    check(lab.wait_holders(&vip, &[1], Duration::from_secs(5)), &[&n0, &n1]);
    // And comes back: 150 again, node0 preempts.
    std::fs::write(&flag, "").expect("flag");
    check(lab.wait_holders(&vip, &[0], Duration::from_secs(5)), &[&n0, &n1]);
    let start = Instant::now();
    let mut text = String::new();
    while start.elapsed() < Duration::from_secs(2) && !text.contains("INSTANCE VI_1 BACKUP") {
        text = std::fs::read_to_string(&notes).unwrap_or_default();
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(text.contains("INSTANCE VI_1 MASTER 150"), "notify lines:\n{text}\n{}", n0.log());
    assert!(text.contains("INSTANCE VI_1 BACKUP"), "notify lines:\n{text}\n{}", n0.log());
}

#[test]
fn fulcrum_sighup_restarts_only_changed_instances() {
    let _serial = serial();
    let Some(lab) = lab("fulcrum_reload", 38, 2) else { return };
    let vip = lab.addr(100);
    let n0 = fulcrum(&lab, 0, &keepalived_conf("n0", 38, 150, 3, "0.1", &vip, ""));
    let n1 = fulcrum(&lab, 1, &keepalived_conf("n1", 38, 100, 3, "0.1", &vip, ""));
    check(lab.wait_holders(&vip, &[0], Duration::from_secs(5)), &[&n0, &n1]);
    // Same file again: nothing restarts, node0 stays master.
    n0.signal("HUP");
    check(n0.wait_log("reload applied", Duration::from_secs(5)), &[&n0]);
    never_two_masters(&lab, &vip, Duration::from_millis(500), &[&n0, &n1]);
    assert_eq!(n0.log().matches("VRRP_Instance(VI_1) started").count(), 1, "{}", n0.log());
    assert_eq!(lab.holders(&vip), vec![0]);
    // node1 gets priority 200: its instance restarts and preempts.
    std::fs::write(lab.path("node1.conf"), keepalived_conf("n1", 38, 200, 3, "0.1", &vip, "")).expect("write");
    n1.signal("HUP");
    check(lab.wait_holders(&vip, &[1], Duration::from_secs(5)), &[&n0, &n1]);
    assert_eq!(n1.log().matches("VRRP_Instance(VI_1) started").count(), 2, "{}", n1.log());
}

/// Waits until no address of `vr0` is tentative (IPv6 duplicate address detection), bounded.
fn wait_ipv6_ready(lab: &Lab) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        let tentative = lab.nodes.iter().any(|n| {
            n.ip(&["-6", "-o", "addr", "show", "dev", "vr0", "tentative"]).map(|o| !o.stdout.is_empty()).unwrap_or(true)
        });
        if !tentative {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn fulcrum_pair_ipv6_vip() {
    let _serial = serial();
    let Some(lab) = lab("fulcrum_ipv6", 39, 2) else { return };
    wait_ipv6_ready(&lab);
    let vip = "fd00:213:39::100";
    let n1 = fulcrum(&lab, 1, &keepalived_conf("n1", 39, 100, 3, "0.1", vip, "").replace("/24", "/64"));
    let mut n0 = fulcrum(&lab, 0, &keepalived_conf("n0", 39, 150, 3, "0.1", vip, "").replace("/24", "/64"));
    check(lab.wait_holders(vip, &[0], Duration::from_secs(5)), &[&n0, &n1]);
    never_two_masters(&lab, vip, Duration::from_millis(500), &[&n0, &n1]);
    n0.signal("TERM");
    check(lab.wait_holders(vip, &[1], Duration::from_secs(2)), &[&n0, &n1]);
    assert!(n0.wait_exit(Duration::from_secs(10)).is_some(), "node0 did not exit on SIGTERM");
}

/// A haproxy.cfg: frontend `web` on `*:FRONT` (inside the node's namespace), backend `app`
/// with one server `server` checked every 200 ms, rise 1 fall 1.
fn haproxy_cfg(front: u16, server: &str) -> String {
    format!(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\n\
         frontend web\n    bind *:{front}\n    default_backend app\n\n\
         backend app\n    server s1 {server} check inter 200ms rise 1 fall 1\n"
    )
}

#[test]
fn fulcrum_track_backend_moves_the_vip() {
    let _serial = serial();
    let Some(lab) = lab("fulcrum_track_backend", 40, 2) else { return };
    let vip = lab.addr(100);
    let front = 8080;
    let mut www0 = lab.serve(0, PORT, "node0").expect("serve");
    let _www1 = lab.serve(1, PORT, "node1").expect("serve");
    let track = "    track_backend {\n        app weight -100\n    }\n";
    let cfg0 = haproxy_cfg(front, &format!("{}:{PORT}", lab.addr(1)));
    let cfg1 = haproxy_cfg(front, &format!("{}:{PORT}", lab.addr(2)));
    let ka0 = keepalived_conf("n0", 40, 150, 3, "0.1", &vip, track);
    let ka1 = keepalived_conf("n1", 40, 100, 3, "0.1", &vip, "");
    let n1 = fulcrum_files(&lab, 1, &[("cfg", &cfg1), ("conf", &ka1)]);
    let n0 = fulcrum_files(&lab, 0, &[("cfg", &cfg0), ("conf", &ka0)]);
    check(lab.wait_holders(&vip, &[0], Duration::from_secs(5)), &[&n0, &n1]);
    check(lab.wait_client_get(&vip, front, "node0", Duration::from_secs(5)), &[&n0, &n1]);
    // node0's only server dies: backend `app` has no usable server, 150 - 100 = 50 < 100.
    www0.kill9_all();
    check(lab.wait_holders(&vip, &[1], Duration::from_secs(5)), &[&n0, &n1]);
    check(lab.wait_client_get(&vip, front, "node1", Duration::from_secs(5)), &[&n0, &n1]);
    // It comes back: 150 again, node0 preempts.
    let _www0 = lab.serve(0, PORT, "node0").expect("serve");
    check(lab.wait_holders(&vip, &[0], Duration::from_secs(5)), &[&n0, &n1]);
    check(lab.wait_client_get(&vip, front, "node0", Duration::from_secs(5)), &[&n0, &n1]);
    never_two_masters(&lab, &vip, Duration::from_millis(500), &[&n0, &n1]);
}

#[test]
fn fulcrum_pair_unicast_peers() {
    let _serial = serial();
    let Some(lab) = lab("fulcrum_unicast", 41, 2) else { return };
    let vip = lab.addr(100);
    let peers = |src: u8, peer: u8| {
        format!("    unicast_src_ip 10.213.41.{src}\n    unicast_peer {{\n        10.213.41.{peer}\n    }}\n")
    };
    let _www0 = lab.serve(0, PORT, "node0").expect("serve");
    let _www1 = lab.serve(1, PORT, "node1").expect("serve");
    let n1 = fulcrum(&lab, 1, &keepalived_conf("n1", 41, 100, 3, "0.1", &vip, &peers(2, 1)));
    let mut n0 = fulcrum(&lab, 0, &keepalived_conf("n0", 41, 150, 3, "0.1", &vip, &peers(1, 2)));
    check(lab.wait_holders(&vip, &[0], Duration::from_secs(5)), &[&n0, &n1]);
    check(lab.wait_client_get(&vip, PORT, "node0", Duration::from_secs(5)), &[&n0, &n1]);
    never_two_masters(&lab, &vip, Duration::from_millis(500), &[&n0, &n1]);
    // SIGTERM: the unicast priority-0 advert hands over in about Skew_Time.
    n0.signal("TERM");
    check(lab.wait_holders(&vip, &[1], Duration::from_secs(2)), &[&n0, &n1]);
    assert!(n0.wait_exit(Duration::from_secs(10)).is_some(), "node0 did not exit on SIGTERM");
    check(lab.wait_client_get(&vip, PORT, "node1", Duration::from_secs(5)), &[&n0, &n1]);
    // node0 comes back and preempts over unicast.
    let n0 = fulcrum(&lab, 0, &keepalived_conf("n0", 41, 150, 3, "0.1", &vip, &peers(1, 2)));
    check(lab.wait_holders(&vip, &[0], Duration::from_secs(5)), &[&n0, &n1]);
    never_two_masters(&lab, &vip, Duration::from_millis(500), &[&n0, &n1]);
}

#[test]
fn fulcrum_track_interface_fault() {
    let _serial = serial();
    let Some(lab) = lab("fulcrum_track_interface", 42, 2) else { return };
    let vip = lab.addr(100);
    // A second link on node0: a veth pair created inside its namespace (vr1 and its peer).
    let ns0 = &lab.nodes[0];
    ns0.ip(&["link", "add", "vr1", "type", "veth", "peer", "name", "vr1p"]).expect("veth");
    ns0.ip(&["link", "set", "vr1p", "up"]).expect("vr1p up");
    ns0.ip(&["link", "set", "vr1", "up"]).expect("vr1 up");
    let track = "    track_interface {\n        vr1\n    }\n";
    let n1 = fulcrum(&lab, 1, &keepalived_conf("n1", 42, 100, 3, "0.1", &vip, ""));
    let n0 = fulcrum(&lab, 0, &keepalived_conf("n0", 42, 150, 3, "0.1", &vip, track));
    check(lab.wait_holders(&vip, &[0], Duration::from_secs(5)), &[&n0, &n1]);
    // vr1 goes down: node0's instance is at fault, node1 takes the VIP.
    ns0.ip(&["link", "set", "vr1", "down"]).expect("vr1 down");
    check(n0.wait_log("VRRP_Instance(VI_1) Entering FAULT STATE", Duration::from_secs(3)), &[&n0]);
    check(lab.wait_holders(&vip, &[1], Duration::from_secs(3)), &[&n0, &n1]);
    never_two_masters(&lab, &vip, Duration::from_millis(500), &[&n0, &n1]);
    assert_eq!(lab.holders(&vip), vec![1], "{}", n0.log());
    // vr1 comes back: node0 leaves FAULT and preempts (150 > 100).
    ns0.ip(&["link", "set", "vr1", "up"]).expect("vr1 up");
    check(n0.wait_log("Entering BACKUP STATE (was FAULT)", Duration::from_secs(3)), &[&n0]);
    check(lab.wait_holders(&vip, &[0], Duration::from_secs(5)), &[&n0, &n1]);
    never_two_masters(&lab, &vip, Duration::from_millis(500), &[&n0, &n1]);
}

/// A keepalived.conf with `vrrp_sync_group G` holding VI_1 (VRID `vrid`, `vips[0]`) and VI_2
/// (VRID `vrid + 1`, `vips[1]`), both on `vr0`, version 3, advert_int 0.1.
fn sync_group_conf(router_id: &str, vrid: u8, priorities: [u8; 2], vips: [&str; 2]) -> String {
    let instance = |n: usize| {
        keepalived_conf(router_id, vrid + n as u8, priorities[n], 3, "0.1", vips[n], "")
            .split_once("vrrp_instance VI_1")
            .map(|(_, body)| format!("vrrp_instance VI_{}{body}", n + 1))
            .expect("instance block")
    };
    format!(
        "global_defs {{\n    router_id {router_id}\n}}\n\nvrrp_sync_group G {{\n    group {{\n        VI_1\n        \
         VI_2\n    }}\n}}\n\n{}\n{}",
        instance(0),
        instance(1)
    )
}

#[test]
fn fulcrum_sync_group_follows_to_backup() {
    let _serial = serial();
    let Some(lab) = lab("fulcrum_sync_group", 43, 2) else { return };
    let (vip1, vip2) = (lab.addr(100), lab.addr(101));
    let n0 = fulcrum(&lab, 0, &sync_group_conf("n0", 43, [150, 150], [&vip1, &vip2]));
    check(lab.wait_holders(&vip1, &[0], Duration::from_secs(5)), &[&n0]);
    check(lab.wait_holders(&vip2, &[0], Duration::from_secs(5)), &[&n0]);
    // A better VI_1 master appears (node1 runs VI_1 alone, priority 200): node0's VI_1 goes
    // BACKUP behind it and its VI_2 follows to BACKUP although nobody outranks it there
    // (keepalived's sync group prefers BACKUP: it goes master only when every member can).
    let n1 = fulcrum(&lab, 1, &keepalived_conf("n1", 43, 200, 3, "0.1", &vip1, ""));
    check(lab.wait_holders(&vip1, &[1], Duration::from_secs(3)), &[&n0, &n1]);
    check(lab.wait_holders(&vip2, &[], Duration::from_secs(3)), &[&n0, &n1]);
    check(n0.wait_log("VRRP_Group(G) Syncing instances to BACKUP state", Duration::from_secs(1)), &[&n0]);
    check(n0.wait_log("VRRP_Instance(VI_2) Entering BACKUP STATE (was MASTER)", Duration::from_secs(1)), &[&n0]);
    // Stable: node0's VI_2 does not take its VIP back while VI_1 follows node1.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        assert!(lab.holders(&vip2).is_empty(), "VI_2 went master again:\n{}", n0.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(lab.holders(&vip1), vec![1], "{}", n0.log());
    // node1 leaves: node0 takes both back.
    n1.signal("TERM");
    check(lab.wait_holders(&vip1, &[0], Duration::from_secs(3)), &[&n0, &n1]);
    check(lab.wait_holders(&vip2, &[0], Duration::from_secs(3)), &[&n0, &n1]);
}

/// `ip -d link show DEV` in a namespace: None when the interface does not exist.
fn link_details(ns: &fulcrum_testkit::netns::Netns, dev: &str) -> Option<String> {
    ns.ip(&["-d", "link", "show", "dev", dev]).ok().map(|o| String::from_utf8_lossy(&o.stdout).to_string())
}

/// The MAC address the client's neighbour table has for `addr` (`ip neigh show ADDR dev vr0`).
fn client_neighbour(lab: &Lab, addr: &str) -> Option<String> {
    let out = lab.client.ip(&["neigh", "show", addr, "dev", "vr0"]).ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut words = text.split_whitespace();
    words.find(|w| *w == "lladdr")?;
    words.next().map(str::to_string)
}

#[test]
fn fulcrum_use_vmac_failover_keeps_the_client_neighbour_entry() {
    let _serial = serial();
    let Some(lab) = lab("fulcrum_use_vmac", 50, 2) else { return };
    let vip = lab.addr(100);
    let (vmac, mac) = ("vrrp.50", "00:00:5e:00:01:32");
    let _www0 = lab.serve(0, PORT, "node0").expect("serve");
    let _www1 = lab.serve(1, PORT, "node1").expect("serve");
    // A leftover of a crashed run on node0: a macvlan of that name with another MAC and mode
    // and the VIP on it. It is reused, with the right MAC and mode, and the VIP cleared.
    let ns0 = &lab.nodes[0];
    ns0.ip(&["link", "add", vmac, "link", "vr0", "address", "02:00:00:00:00:50", "type", "macvlan", "mode", "bridge"])
        .expect("stale vmac");
    ns0.ip(&["addr", "add", &format!("{vip}/24"), "dev", vmac]).expect("stale vip");
    let conf = |id: &str, prio: u8| keepalived_conf(id, 50, prio, 3, "0.1", &vip, "    use_vmac\n");
    let n1 = fulcrum(&lab, 1, &conf("n1", 100));
    let mut n0 = fulcrum(&lab, 0, &conf("n0", 150));
    check(n0.wait_log("VRRP_Instance(VI_1) started", Duration::from_secs(5)), &[&n0, &n1]);
    check(lab.wait_holders_on(vmac, &vip, &[0], Duration::from_secs(5)), &[&n0, &n1]);
    assert!(lab.holders(&vip).is_empty(), "the VIP must be on the VMAC, not on vr0");
    check(n0.wait_log("reusing VMAC interface vrrp.50", Duration::from_secs(1)), &[&n0]);
    check(n0.wait_log(&format!("removed {vip}/24 left by an earlier run"), Duration::from_secs(1)), &[&n0]);
    // Only the VMAC answers ARP for the VIP (keepalived's settings, plus arp_announce).
    assert_eq!(ipv4_conf(&lab, 0, "vr0", "arp_ignore"), "1");
    assert_eq!(ipv4_conf(&lab, 0, "vr0", "arp_announce"), "2");
    assert_eq!(ipv4_conf(&lab, 0, vmac, "arp_ignore"), "1");
    for i in 0..2 {
        let details = link_details(&lab.nodes[i], vmac).unwrap_or_default();
        assert!(details.contains(&format!("link/ether {mac}")), "node{i} {vmac}:\n{details}");
        assert!(details.contains("macvlan mode private"), "node{i} {vmac}:\n{details}");
    }
    // The client resolves the VIP to the virtual MAC (answered by node0's VMAC, not by vr0).
    check(lab.wait_client_get(&vip, PORT, "node0", Duration::from_secs(5)), &[&n0, &n1]);
    assert_eq!(client_neighbour(&lab, &vip).as_deref(), Some(mac), "client neighbour table");
    never_two_masters_on(&lab, vmac, &vip, Duration::from_millis(500), &[&n0, &n1]);
    assert_eq!(client_neighbour(&lab, &vip).as_deref(), Some(mac), "the entry did not change");
    // From now on the client never asks again: the failover must work with the entry it has.
    lab.client.ip(&["neigh", "replace", &vip, "lladdr", mac, "dev", "vr0", "nud", "permanent"]).expect("pin");
    // Crash of node0: the guard removes the VIP and the VMAC; node1's VMAC takes the VIP with
    // the same MAC, and its gratuitous ARP moves the switch's entry to node1's port.
    n0.kill9_all();
    check(lab.wait_holders_on(vmac, &vip, &[1], Duration::from_secs(3)), &[&n0, &n1]);
    check(lab.wait_client_get(&vip, PORT, "node1", Duration::from_secs(5)), &[&n0, &n1]);
    assert_eq!(link_details(&lab.nodes[0], vmac), None, "the guard left the VMAC on node0:\n{}", n0.log());
    // node0 comes back, creates its VMAC again and preempts; same MAC for the client.
    let n0 = fulcrum(&lab, 0, &conf("n0", 150));
    check(lab.wait_holders_on(vmac, &vip, &[0], Duration::from_secs(5)), &[&n0, &n1]);
    check(lab.wait_client_get(&vip, PORT, "node0", Duration::from_secs(5)), &[&n0, &n1]);
    // A clean stop deletes the VMAC.
    let mut n1 = n1;
    n1.signal("TERM");
    assert!(n1.wait_exit(Duration::from_secs(10)).is_some(), "node1 did not exit on SIGTERM");
    assert_eq!(link_details(&lab.nodes[1], vmac), None, "node1 left its VMAC:\n{}", n1.log());
    assert_eq!(ipv4_conf(&lab, 1, "vr0", "arp_ignore"), "0", "node1's vr0 settings are restored");
    assert_eq!(ipv4_conf(&lab, 1, "vr0", "arp_announce"), "0", "node1's vr0 settings are restored");
}

/// `net.ipv4.conf.DEV.NAME` in node `i`'s namespace.
fn ipv4_conf(lab: &Lab, i: usize, dev: &str, name: &str) -> String {
    let out = lab.nodes[i].command("cat").arg(format!("/proc/sys/net/ipv4/conf/{dev}/{name}")).output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
}

/// Over `span`, the VIP is never on interface `dev` of two nodes (sampled every 20 ms).
fn never_two_masters_on(lab: &Lab, dev: &str, vip: &str, span: Duration, daemons: &[&Daemon]) {
    let start = Instant::now();
    while start.elapsed() < span {
        let holders = lab.holders_on(dev, vip);
        if holders.len() > 1 {
            check::<(), String>(Err(format!("two masters: {vip} on {dev} of nodes {holders:?}")), daemons);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether nftables table `inet TABLE` exists in node `i`'s namespace.
fn nft_table_exists(lab: &Lab, i: usize, table: &str) -> bool {
    lab.nodes[i]
        .command("nft")
        .args(["list", "table", "inet", table])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The client cannot reach `vip:PORT` (two attempts of 1 s each).
fn client_refused(lab: &Lab, vip: &str) -> bool {
    (0..2).all(|_| lab.client_get(vip, PORT).is_none())
}

#[test]
fn fulcrum_no_accept_drops_traffic_to_the_vip() {
    let _serial = serial();
    if !std::path::Path::new("/usr/sbin/nft").exists() {
        fulcrum_testkit::skip("fulcrum_no_accept_drops_traffic_to_the_vip", "nft (apt-get install nftables)");
        return;
    }
    let Some(lab) = lab("fulcrum_no_accept", 51, 2) else { return };
    let vip = lab.addr(100);
    let table = "fulcrum_VI_1_51";
    let _www0 = lab.serve(0, PORT, "node0").expect("serve");
    let _www1 = lab.serve(1, PORT, "node1").expect("serve");
    let conf = |id: &str, prio: u8, extra: &str| keepalived_conf(id, 51, prio, 3, "0.1", &vip, extra);
    // no_accept: node0 holds the VIP but drops what is sent to it.
    let mut n0 = fulcrum(&lab, 0, &conf("n0", 150, "    no_accept\n"));
    check(lab.wait_holders(&vip, &[0], Duration::from_secs(5)), &[&n0]);
    assert!(nft_table_exists(&lab, 0, table), "no table {table}:\n{}", n0.log());
    assert!(client_refused(&lab, &vip), "no_accept master answered on the VIP");
    // The node's own address still answers: only the VIP is dropped.
    check(lab.wait_client_get(&lab.addr(1), PORT, "node0", Duration::from_secs(3)), &[&n0]);
    // A better master appears: node0 goes BACKUP and removes its rules.
    let n1 = fulcrum(&lab, 1, &conf("n1", 200, "    no_accept\n"));
    check(lab.wait_holders(&vip, &[1], Duration::from_secs(5)), &[&n0, &n1]);
    assert!(!nft_table_exists(&lab, 0, table), "node0 kept {table} as BACKUP:\n{}", n0.log());
    assert!(nft_table_exists(&lab, 1, table), "node1 has no {table}:\n{}", n1.log());
    assert!(client_refused(&lab, &vip), "no_accept master node1 answered on the VIP");
    // node1 crashes: its guard removes the VIP and the rules; node0 takes over.
    let mut n1 = n1;
    n1.kill9_all();
    check(lab.wait_holders(&vip, &[0], Duration::from_secs(3)), &[&n0, &n1]);
    assert!(!nft_table_exists(&lab, 1, table), "the guard left {table} on node1:\n{}", n1.log());
    // vrrp_strict implies no_accept; a clean stop removes the rules.
    n0.signal("TERM");
    assert!(n0.wait_exit(Duration::from_secs(10)).is_some(), "node0 did not exit on SIGTERM");
    assert!(!nft_table_exists(&lab, 0, table), "node0 left {table} after SIGTERM:\n{}", n0.log());
    let mut n0 = fulcrum(&lab, 0, &conf("n0", 150, "    vrrp_strict\n"));
    check(lab.wait_holders(&vip, &[0], Duration::from_secs(5)), &[&n0]);
    assert!(nft_table_exists(&lab, 0, table), "vrrp_strict: no table {table}:\n{}", n0.log());
    assert!(client_refused(&lab, &vip), "vrrp_strict master answered on the VIP");
    n0.signal("TERM");
    assert!(n0.wait_exit(Duration::from_secs(10)).is_some(), "node0 did not exit on SIGTERM");
    // accept: the master answers on the VIP, and there is no table.
    let n0 = fulcrum(&lab, 0, &conf("n0", 150, "    vrrp_strict\n    accept\n"));
    check(lab.wait_holders(&vip, &[0], Duration::from_secs(5)), &[&n0]);
    check(lab.wait_client_get(&vip, PORT, "node0", Duration::from_secs(5)), &[&n0]);
    assert!(!nft_table_exists(&lab, 0, table), "accept: table {table} exists:\n{}", n0.log());
}

#[test]
fn fulcrum_use_vmac_ipv6() {
    let _serial = serial();
    let Some(lab) = lab("fulcrum_use_vmac_ipv6", 52, 2) else { return };
    wait_ipv6_ready(&lab);
    let vip = "fd00:213:52::100";
    let (vmac, mac) = ("vrrp.52", "00:00:5e:00:02:34");
    let conf =
        |id: &str, prio: u8| keepalived_conf(id, 52, prio, 3, "0.1", vip, "    use_vmac\n").replace("/24", "/64");
    let n1 = fulcrum(&lab, 1, &conf("n1", 100));
    let mut n0 = fulcrum(&lab, 0, &conf("n0", 150));
    check(lab.wait_holders_on(vmac, vip, &[0], Duration::from_secs(5)), &[&n0, &n1]);
    never_two_masters_on(&lab, vmac, vip, Duration::from_millis(500), &[&n0, &n1]);
    let details = link_details(&lab.nodes[0], vmac).unwrap_or_default();
    assert!(details.contains(&format!("link/ether {mac}")), "node0 {vmac}:\n{details}");
    n0.signal("TERM");
    check(lab.wait_holders_on(vmac, vip, &[1], Duration::from_secs(2)), &[&n0, &n1]);
    assert!(n0.wait_exit(Duration::from_secs(10)).is_some(), "node0 did not exit on SIGTERM");
    assert_eq!(link_details(&lab.nodes[0], vmac), None, "node0 left its VMAC:\n{}", n0.log());
}

#[test]
fn keepalived_interop_use_vmac() {
    let _serial = serial();
    if !keepalived_available("keepalived_interop_use_vmac") {
        return;
    }
    let Some(lab) = lab("keepalived_interop_use_vmac", 53, 2) else { return };
    let vip = lab.addr(100);
    let vmac = "vrrp.53";
    let _www0 = lab.serve(0, PORT, "fulcrum").expect("serve");
    let _www1 = lab.serve(1, PORT, "keepalived").expect("serve");
    // Both send their adverts from the same virtual MAC: each must still hear the other.
    let ka = keepalived(&lab, 1, &keepalived_conf("ka", 53, 100, 3, "0.1", &vip, "    use_vmac\n"));
    let fu = fulcrum(&lab, 0, &keepalived_conf("fu", 53, 150, 3, "0.1", &vip, "    use_vmac\n"));
    check(lab.wait_holders_on(vmac, &vip, &[0], Duration::from_secs(10)), &[&fu, &ka]);
    check(ka.wait_log("Entering BACKUP STATE", Duration::from_secs(5)), &[&fu, &ka]);
    never_two_masters_on(&lab, vmac, &vip, Duration::from_secs(1), &[&fu, &ka]);
    check(lab.wait_client_get(&vip, PORT, "fulcrum", Duration::from_secs(5)), &[&fu, &ka]);
    fu.signal("TERM");
    check(lab.wait_holders_on(vmac, &vip, &[1], Duration::from_secs(3)), &[&fu, &ka]);
    check(lab.wait_client_get(&vip, PORT, "keepalived", Duration::from_secs(5)), &[&fu, &ka]);
}

const STATS: u16 = 8404;

/// [`haproxy_cfg`] plus a `listen stats` section on `*:8404` serving `/stats`.
fn haproxy_cfg_with_stats(front: u16, server: &str) -> String {
    format!(
        "{}\nlisten stats\n    bind *:{STATS}\n    stats enable\n    stats uri /stats\n",
        haproxy_cfg(front, server)
    )
}

/// The VRRP row of the HTML stats page for `instance`.
fn stats_row(instance: &str, state: &str, priority: u8, master: &str) -> String {
    format!("<td>{instance}</td><td>{state}</td><td>{priority}</td><td>{master}</td>")
}

/// Polls `http://127.0.0.1:8404/stats{suffix}` inside node `i` until the page contains every
/// needle; returns the page.
fn wait_stats(lab: &Lab, i: usize, suffix: &str, needles: &[&str], limit: Duration) -> Result<String, String> {
    let url = format!("http://127.0.0.1:{STATS}/stats{suffix}");
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < limit {
        last = lab.nodes[i].http_get(&url);
        if last.as_deref().is_some_and(|page| needles.iter().all(|n| page.contains(n))) {
            return last.ok_or_else(|| "no page".to_string());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("after {limit:?}, node {i}'s {url} lacks one of {needles:?}:\n{}", last.unwrap_or_default()))
}

#[test]
fn fulcrum_stats_page_shows_vrrp_state() {
    let _serial = serial();
    let Some(lab) = lab("fulcrum_stats_vrrp", 62, 2) else { return };
    let vip = lab.addr(100);
    let _www0 = lab.serve(0, PORT, "node0").expect("serve");
    let _www1 = lab.serve(1, PORT, "node1").expect("serve");
    let cfg = |i: u8| haproxy_cfg_with_stats(8080, &format!("{}:{PORT}", lab.addr(i + 1)));
    let ka = |router_id: &str, priority: u8| {
        keepalived_conf(router_id, 62, priority, 3, "0.1", &vip, "").replace("VI_1", "VI_WEB")
    };
    let mut n1 = fulcrum_files(&lab, 1, &[("cfg", &cfg(1)), ("conf", &ka("n1", 100))]);
    let n0 = fulcrum_files(&lab, 0, &[("cfg", &cfg(0)), ("conf", &ka("n0", 150))]);
    check(lab.wait_holders(&vip, &[0], Duration::from_secs(5)), &[&n0, &n1]);
    let limit = Duration::from_secs(3);
    // Each node's page: its instance, state and priority, and the master a backup follows.
    let (addr0, addr1) = (lab.addr(1), lab.addr(2));
    let page = check(wait_stats(&lab, 0, "", &[&stats_row("VI_WEB", "MASTER", 150, "-")], limit), &[&n0, &n1]);
    assert!(page.contains("<th colspan=4>VRRP</th>") && page.contains("<th colspan=8>app</th>"), "{page}");
    check(wait_stats(&lab, 1, "", &[&stats_row("VI_WEB", "BACKUP", 100, &addr0)], limit), &[&n0, &n1]);
    // The CSV keeps HAProxy's columns (proxies and servers only, no VRRP rows): tools that parse
    // HAProxy's CSV read it unchanged.
    let csv = check(wait_stats(&lab, 0, ";csv", &["# pxname,svname,", "\napp,s1,", "\napp,BACKEND,"], limit), &[&n0]);
    assert!(!csv.contains("VI_WEB"), "{csv}");
    // The peer is raised above node0 (reload with priority 200): it preempts, and both pages
    // follow.
    std::fs::write(lab.path("node1.conf"), ka("n1", 200)).expect("write");
    n1.signal("HUP");
    check(lab.wait_holders(&vip, &[1], Duration::from_secs(5)), &[&n0, &n1]);
    check(wait_stats(&lab, 1, "", &[&stats_row("VI_WEB", "MASTER", 200, "-")], limit), &[&n0, &n1]);
    check(wait_stats(&lab, 0, "", &[&stats_row("VI_WEB", "BACKUP", 150, &addr1)], limit), &[&n0, &n1]);
    // The master stops (SIGTERM, priority 0): node0 takes over and its page says so.
    n1.signal("TERM");
    check(lab.wait_holders(&vip, &[0], Duration::from_secs(2)), &[&n0, &n1]);
    check(wait_stats(&lab, 0, "", &[&stats_row("VI_WEB", "MASTER", 150, "-")], limit), &[&n0, &n1]);
    assert!(n1.wait_exit(Duration::from_secs(10)).is_some(), "node1 did not exit on SIGTERM");
}

/// A node that starts with VRRP only (its haproxy.cfg has no frontend yet) and gets its stats
/// listener by a reload: the new page shows the instance that was already running.
#[test]
fn fulcrum_stats_page_added_by_reload_shows_vrrp() {
    let _serial = serial();
    let Some(lab) = lab("fulcrum_stats_reload", 63, 1) else { return };
    let vip = lab.addr(100);
    let ka = keepalived_conf("n0", 63, 150, 3, "0.1", &vip, "");
    let n0 = fulcrum_files(&lab, 0, &[("cfg", "global\n    maxconn 100\n"), ("conf", &ka)]);
    check(lab.wait_holders(&vip, &[0], Duration::from_secs(5)), &[&n0]);
    assert!(lab.nodes[0].http_get(&format!("http://127.0.0.1:{STATS}/stats")).is_none(), "a stats page before any");
    let cfg = haproxy_cfg_with_stats(8080, &format!("{}:{PORT}", lab.addr(1)));
    std::fs::write(lab.path("node0.cfg"), cfg).expect("write");
    n0.signal("HUP");
    check(n0.wait_log("reload applied", Duration::from_secs(5)), &[&n0]);
    let limit = Duration::from_secs(3);
    check(wait_stats(&lab, 0, "", &[&stats_row("VI_1", "MASTER", 150, "-")], limit), &[&n0]);
    assert_eq!(n0.log().matches("VRRP_Instance(VI_1) started").count(), 1, "{}", n0.log());
    assert_eq!(lab.holders(&vip), vec![0]);
}

/// Samples node `i`'s addresses (one `ip` call per sample) until every one of `vips` is on it
/// (`present`) or gone from it (`!present`), up to `limit`; returns when each first got there.
fn first_seen(lab: &Lab, i: usize, vips: [&str; 2], present: bool, limit: Duration) -> Result<[Duration; 2], String> {
    let start = Instant::now();
    let mut seen = [None, None];
    while start.elapsed() < limit {
        let addrs = lab.nodes[i].addresses("vr0");
        let elapsed = start.elapsed();
        for (k, vip) in vips.iter().enumerate() {
            let here = addrs.iter().any(|a| a.split('/').next() == Some(*vip));
            if here == present && seen[k].is_none() {
                seen[k] = Some(elapsed);
            }
        }
        if let [Some(a), Some(b)] = seen {
            return Ok([a, b]);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Err(format!("after {limit:?}, {vips:?} present={present} on node {i}: {seen:?}"))
}

/// The two VIPs of a sync group changed hands within one advert interval (0.1 s) of each other.
fn moved_together(times: [Duration; 2], what: &str, daemons: &[&Daemon]) {
    let split = times[0].abs_diff(times[1]);
    eprintln!("{what}: VIPs moved at {times:?}, split {split:?}");
    if split > Duration::from_millis(100) {
        check::<(), String>(Err(format!("{what}: the VIPs were split for {split:?} ({times:?})")), daemons);
    }
}

#[test]
fn fulcrum_sync_group_pulls_members_to_master() {
    let _serial = serial();
    let Some(lab) = lab("fulcrum_sync_pull", 44, 2) else { return };
    let (vip1, vip2) = (lab.addr(100), lab.addr(101));
    // node1 runs VI_1 alone: priority 200, or 50 while its check fails.
    let flag = lab.path("node1-healthy");
    std::fs::write(&flag, "").expect("flag");
    let script = format!(
        "vrrp_script chk {{\n    script \"test -f {}\"\n    interval 0.2\n    rise 1\n    fall 1\n}}\n\n",
        flag.display()
    );
    let track = "    track_script {\n        chk weight -150\n    }\n";
    let n1 = fulcrum(&lab, 1, &format!("{script}{}", keepalived_conf("n1", 44, 200, 3, "0.1", &vip1, track)));
    check(lab.wait_holders(&vip1, &[1], Duration::from_secs(5)), &[&n1]);
    // node0 runs VI_1 and VI_2 at 150 in group G. VI_1 follows node1 (200). Nobody else runs
    // VI_2, but the group keeps it BACKUP: each time its Master_Down timer expires it is held
    // back, wanting MASTER.
    let notes = lab.path("group-notify.log");
    let conf0 = sync_group_conf("n0", 44, [150, 150], [&vip1, &vip2]).replace(
        "vrrp_sync_group G {\n",
        &format!("vrrp_sync_group G {{\n    notify \"echo >> {} \"\n", notes.display()),
    );
    let n0 = fulcrum(&lab, 0, &conf0);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        let taken = [&vip1, &vip2].into_iter().any(|v| lab.nodes[0].has_address("vr0", v));
        assert!(!taken, "node0 took a VIP:\n{}", n0.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(lab.holders(&vip1), vec![1], "{}", n0.log());
    // node1's check fails: it advertises 50 for VI_1 (and VI_2 is not involved). node0's VI_1
    // discards the lower adverts and takes over when its own Master_Down timer expires; VI_2 is
    // pulled to MASTER with it at once, not when its own restarted timer next expires (which
    // would split the VIPs for up to a Master_Down_Interval, 0.34 s).
    std::fs::remove_file(&flag).expect("remove flag");
    let arrived = check(first_seen(&lab, 0, [&vip1, &vip2], true, Duration::from_secs(5)), &[&n0, &n1]);
    moved_together(arrived, "to node0", &[&n0, &n1]);
    check(n0.wait_log("VRRP_Group(G) Syncing instances to MASTER state", Duration::from_secs(1)), &[&n0]);
    check(n0.wait_log("VRRP_Instance(VI_2) Entering MASTER STATE (was BACKUP)", Duration::from_secs(1)), &[&n0]);
    check(lab.wait_holders(&vip1, &[0], Duration::from_secs(2)), &[&n0, &n1]);
    never_two_masters(&lab, &vip1, Duration::from_millis(500), &[&n0, &n1]);
    assert_eq!(lab.holders(&vip2), vec![0], "{}", n0.log());
    // The check recovers: node1 (200) preempts VI_1 and node0's VI_2 follows to BACKUP, again
    // together.
    std::fs::write(&flag, "").expect("flag");
    let left = check(first_seen(&lab, 0, [&vip1, &vip2], false, Duration::from_secs(5)), &[&n0, &n1]);
    moved_together(left, "back from node0", &[&n0, &n1]);
    check(lab.wait_holders(&vip1, &[1], Duration::from_secs(2)), &[&n0, &n1]);
    check(lab.wait_holders(&vip2, &[], Duration::from_secs(2)), &[&n0, &n1]);
    // The group's notify ran once per group transition, not once per member.
    let want = ["GROUP G BACKUP 0", "GROUP G MASTER 0", "GROUP G BACKUP 0"];
    let start = Instant::now();
    let mut lines = Vec::new();
    while start.elapsed() < Duration::from_secs(2) && lines.len() < want.len() {
        lines = std::fs::read_to_string(&notes).unwrap_or_default().lines().map(str::to_string).collect();
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    lines = std::fs::read_to_string(&notes).unwrap_or_default().lines().map(str::to_string).collect();
    assert_eq!(lines, want, "{}", n0.log());
}

#[test]
fn fulcrum_sighup_with_a_missing_interface_changes_nothing() {
    let _serial = serial();
    let Some(lab) = lab("fulcrum_reload_atomic", 45, 1) else { return };
    let vip = lab.addr(100);
    let n0 = fulcrum(&lab, 0, &keepalived_conf("n0", 45, 150, 3, "0.1", &vip, ""));
    check(lab.wait_holders(&vip, &[0], Duration::from_secs(5)), &[&n0]);
    // The new file changes VI_1 (priority 200) and adds VI_2 on an interface that does not
    // exist: VI_1 is prepared first, VI_2 fails, so nothing may change.
    let vi2 =
        "vrrp_instance VI_2 {\n    state BACKUP\n    interface vr9\n    virtual_router_id 46\n    priority 100\n    \
               advert_int 0.1\n    version 3\n    virtual_ipaddress {\n        10.213.45.101/24\n    }\n}\n";
    let changed = keepalived_conf("n0", 45, 200, 3, "0.1", &vip, "");
    std::fs::write(lab.path("node0.conf"), format!("{changed}\n{vi2}")).expect("write");
    n0.signal("HUP");
    check(n0.wait_log("reload failed, keeping the running configuration", Duration::from_secs(5)), &[&n0]);
    assert!(n0.log().contains("vr9"), "the error does not name the interface:\n{}", n0.log());
    // VI_1 keeps running as it was: never restarted, the VIP never released.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        assert_eq!(lab.holders(&vip), vec![0], "VI_1 released its VIP:\n{}", n0.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    let log = n0.log();
    assert_eq!(log.matches("VRRP_Instance(VI_1) started").count(), 1, "{log}");
    assert_eq!(log.matches("VRRP_Instance(VI_1) Entering").count(), 2, "{log}");
    assert!(!log.contains("VRRP_Instance(VI_2) started"), "{log}");
    // Without VI_2 the same change applies: VI_1 restarts with priority 200.
    std::fs::write(lab.path("node0.conf"), changed).expect("write");
    n0.signal("HUP");
    check(n0.wait_log("reload applied", Duration::from_secs(5)), &[&n0]);
    assert_eq!(n0.log().matches("VRRP_Instance(VI_1) started").count(), 2, "{}", n0.log());
    check(lab.wait_holders(&vip, &[0], Duration::from_secs(5)), &[&n0]);
    check(n0.wait_log("Entering MASTER STATE", Duration::from_secs(1)), &[&n0]);
}

/// A reload that changes a `use_vmac` instance: the old instance deletes its VMAC as it stops,
/// the new one creates it again (same name) and takes the VIP back on it.
#[test]
fn fulcrum_sighup_restarts_a_use_vmac_instance() {
    let _serial = serial();
    let Some(lab) = lab("fulcrum_reload_vmac", 54, 1) else { return };
    let vip = lab.addr(100);
    let vmac = "vrrp.54";
    let n0 = fulcrum(&lab, 0, &keepalived_conf("n0", 54, 150, 3, "0.1", &vip, "    use_vmac\n"));
    check(lab.wait_holders_on(vmac, &vip, &[0], Duration::from_secs(5)), &[&n0]);
    std::fs::write(lab.path("node0.conf"), keepalived_conf("n0", 54, 160, 3, "0.1", &vip, "    use_vmac\n"))
        .expect("write");
    n0.signal("HUP");
    check(n0.wait_log("reload applied", Duration::from_secs(5)), &[&n0]);
    check(lab.wait_holders_on(vmac, &vip, &[0], Duration::from_secs(5)), &[&n0]);
    assert_eq!(n0.log().matches("VRRP_Instance(VI_1) started").count(), 2, "{}", n0.log());
    assert!(!n0.log().contains("use_vmac vrrp.54:"), "{}", n0.log());
}

/// A node that ran VRRP alone gets its proxy by a reload, together with a `track_backend`:
/// the tracking works from then on (the runtime is handed the new proxy's backends).
#[test]
fn fulcrum_track_backend_added_by_reload() {
    let _serial = serial();
    let Some(lab) = lab("fulcrum_track_backend_reload", 46, 2) else { return };
    let vip = lab.addr(100);
    let front = 8080;
    let mut www0 = lab.serve(0, PORT, "node0").expect("serve");
    let n1 = fulcrum(&lab, 1, &keepalived_conf("n1", 46, 100, 3, "0.1", &vip, ""));
    let n0 = fulcrum_files(
        &lab,
        0,
        &[("cfg", "global\n    maxconn 100\n"), ("conf", &keepalived_conf("n0", 46, 150, 3, "0.1", &vip, ""))],
    );
    check(lab.wait_holders(&vip, &[0], Duration::from_secs(5)), &[&n0, &n1]);
    let track = "    track_backend {\n        app weight -100\n    }\n";
    std::fs::write(lab.path("node0.cfg"), haproxy_cfg(front, &format!("{}:{PORT}", lab.addr(1)))).expect("write");
    std::fs::write(lab.path("node0.conf"), keepalived_conf("n0", 46, 150, 3, "0.1", &vip, track)).expect("write");
    n0.signal("HUP");
    check(n0.wait_log("reload applied", Duration::from_secs(5)), &[&n0, &n1]);
    check(lab.wait_holders(&vip, &[0], Duration::from_secs(5)), &[&n0, &n1]);
    check(lab.wait_client_get(&vip, front, "node0", Duration::from_secs(5)), &[&n0, &n1]);
    // node0's only server dies: 150 - 100 = 50 < 100, node1 takes the VIP.
    www0.kill9_all();
    check(lab.wait_holders(&vip, &[1], Duration::from_secs(5)), &[&n0, &n1]);
}

/// Debian 12's keepalived.service, run as systemd would (in a lab namespace): fulcrum linked as
/// `keepalived`, `ExecStart=keepalived --dont-fork $DAEMON_ARGS` with Type=notify (READY=1 on
/// NOTIFY_SOCKET), `ExecReload=kill -HUP $MAINPID`, stop by SIGTERM: the VIP is taken, moved by
/// a reload, released at stop, and the PID files are written, then removed.
#[test]
fn debian_keepalived_service_command_line() {
    let _serial = serial();
    let Some(lab) = lab("keepalived_unit", 70, 1) else { return };
    let (vip, vip2) = (lab.addr(100), lab.addr(101));
    let conf = lab.path("keepalived.conf");
    std::fs::write(&conf, keepalived_conf("n0", 70, 150, 2, "1", &vip, "")).expect("write");
    let link = lab.path("keepalived");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_fulcrum"), &link).expect("link");
    let test = std::process::Command::new(&link).arg("-t").arg("-f").arg(&conf).output().expect("-t");
    assert_eq!(test.status.code(), Some(0), "{}", String::from_utf8_lossy(&test.stderr));

    let notify_path = lab.path("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("notify socket");
    notify.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let (pid, vrrp_pid) = (lab.path("keepalived.pid"), lab.path("keepalived_vrrp.pid"));
    let daemon_args = ["-f", conf.to_str().expect("utf-8"), "-p", pid.to_str().expect("utf-8")];
    let mut c = lab.nodes[0].command(&link);
    c.arg("--dont-fork").args(daemon_args).arg("-r").arg(&vrrp_pid).env("NOTIFY_SOCKET", &notify_path);
    let mut k = Daemon::spawn(c, &log_path(&lab, 0), Vec::new()).expect("spawn");
    let mut buf = [0u8; 256];
    let mut next = || {
        let n = notify.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(next().starts_with("READY=1"));
    let main_pid = k.child.id().to_string();
    assert_eq!(std::fs::read_to_string(&pid).expect("pid file").trim(), main_pid);
    assert_eq!(std::fs::read_to_string(&vrrp_pid).expect("vrrp pid file").trim(), main_pid);
    check(lab.wait_holders(&vip, &[0], Duration::from_secs(10)), &[&k]);

    std::fs::write(&conf, keepalived_conf("n0", 70, 150, 2, "1", &vip2, "")).expect("write");
    k.signal("HUP");
    assert_eq!(next(), "RELOADING=1");
    assert_eq!(next(), "READY=1");
    check(lab.wait_holders(&vip2, &[0], Duration::from_secs(10)), &[&k]);
    assert!(lab.holders(&vip).is_empty(), "the old VIP is released");

    k.signal("TERM");
    assert_eq!(next(), "STOPPING=1");
    assert!(k.wait_exit(Duration::from_secs(10)).is_some_and(|s| s.success()), "{}", k.log());
    assert!(lab.holders(&vip2).is_empty(), "the VIP is released at stop");
    assert!(!pid.exists() && !vrrp_pid.exists(), "the PID files are removed");
}
