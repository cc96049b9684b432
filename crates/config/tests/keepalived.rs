//! keepalived.conf (VRRP part): keepalived's semantics, and messages that name the line and the fix.
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fulcrum_config::*;
use fulcrum_model::*;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name)
}

fn load(text: &str) -> Result<Loaded, Vec<Diagnostic>> {
    load_str(text, Path::new("k.conf"), &LoadOptions::default())
}

fn lenient(text: &str) -> Result<Loaded, Vec<Diagnostic>> {
    load_str(text, Path::new("k.conf"), &LoadOptions { lenient: true, ..LoadOptions::default() })
}

fn show(diags: &[Diagnostic]) -> String {
    diags.iter().map(|d| format!("  {d}\n")).collect()
}

fn ok(text: &str) -> Loaded {
    load(text).unwrap_or_else(|errors| panic!("does not load:\n{}", show(&errors)))
}

fn errors(text: &str) -> Vec<String> {
    match load(text) {
        Ok(loaded) => panic!("loads, but should not (warnings:\n{})", show(&loaded.warnings)),
        Err(diags) => diags.iter().filter(|d| d.severity == Severity::Error).map(ToString::to_string).collect(),
    }
}

fn warnings(loaded: &Loaded) -> Vec<String> {
    loaded.warnings.iter().map(ToString::to_string).collect()
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip")
}

fn vip(addr: &str, prefix: u8) -> Vip {
    Vip { addr: ip(addr), prefix, dev: None, label: None }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fulcrum-keepalived-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A valid instance, lines 1-6; a test's lines go from line 7, then `}`.
fn instance(body: &str) -> String {
    format!("vrrp_instance VI_1 {{\n    interface eth0\n    virtual_router_id 51\n    virtual_ipaddress {{\n        10.0.0.10/24\n    }}\n{body}}}\n")
}

#[test]
fn example_keepalived_conf_seed_004() {
    let path = example("keepalived.conf");
    let loaded = load_files(std::slice::from_ref(&path), &LoadOptions::default())
        .unwrap_or_else(|e| panic!("examples/keepalived.conf:\n{}", show(&e)));
    let text = std::fs::read_to_string(&path).expect("example");
    let line = |needle: &str| text.lines().position(|l| l.contains(needle)).expect("line") + 1;
    let warned: Vec<(usize, String)> = loaded.warnings.iter().map(|d| (d.line, d.message.clone())).collect();
    for (word, why) in [
        ("notification_email {", "fulcrum does not send mail"),
        ("notification_email_from", "fulcrum does not send mail"),
        ("smtp_server", "fulcrum does not send mail"),
        ("smtp_connect_timeout", "fulcrum does not send mail"),
        ("vrrp_skip_check_adv_addr", "received adverts"),
        ("vrrp_garp_interval", "fulcrum paces them itself"),
        ("vrrp_gna_interval", "fulcrum paces them itself"),
    ] {
        let at = line(word);
        assert!(
            warned.iter().any(|(l, m)| *l == at && m.contains("is ignored") && m.contains(why)),
            "no warning for {word} at line {at}: {warned:?}"
        );
    }
    let strict = line("authentication {");
    assert!(warned.iter().any(|(l, m)| *l == strict && m.contains("dropped in strict mode")), "{warned:?}");
    // vrrp_strict implies no_accept, which the runtime enforces: nothing to warn about.
    assert!(!warned.iter().any(|(_, m)| m.contains("no_accept")), "{warned:?}");
    assert_eq!(loaded.warnings.len(), 8, "{}", show(&loaded.warnings));

    let m = &loaded.model;
    let services: Vec<(&str, usize)> = m.backends.iter().map(|b| (b.name.as_str(), b.servers.len())).collect();
    assert_eq!(services, [("192.168.200.100:443", 1), ("10.10.10.2:1358", 3), ("10.10.10.3:1358", 2)]);
    assert_eq!(m.frontends.len(), 3);
    assert_eq!(m.vrrp.router_id.as_deref(), Some("LVS_DEVEL"));
    assert!(m.vrrp.scripts.is_empty() && m.vrrp.sync_groups.is_empty());
    assert_eq!(m.vrrp.instances.len(), 1);
    let vi = &m.vrrp.instances[0];
    assert_eq!(vi.name, "VI_1");
    assert_eq!(vi.origin, Origin { file: path.clone(), line: line("vrrp_instance VI_1 {") });
    assert_eq!(vi.state, VrrpState::Master);
    assert_eq!(vi.interface, "eth0");
    assert_eq!(vi.vrid, 51);
    assert_eq!(vi.priority, 100);
    assert_eq!(vi.advert_int, Duration::from_secs(1));
    assert_eq!(vi.version, 2);
    // `auth_type PASS` / `auth_pass 1111` are read, then dropped by strict mode as keepalived does.
    assert_eq!(vi.auth_pass, None);
    assert!(vi.strict);
    assert_eq!(vi.vips, [vip("192.168.200.16", 32), vip("192.168.200.17", 32), vip("192.168.200.18", 32)]);
    assert!(vi.vips_excluded.is_empty());
    assert!(!vi.nopreempt);
    assert_eq!(vi.preempt_delay, Duration::ZERO);
    assert_eq!((vi.unicast_src_ip, vi.unicast_peers.len()), (None, 0));
    assert_eq!(
        (vi.garp_master_delay, vi.garp_master_repeat, vi.garp_master_refresh),
        (Duration::from_secs(5), 5, None)
    );
    assert!(vi.track_interfaces.is_empty() && vi.track_scripts.is_empty() && vi.track_backends.is_empty());
    assert_eq!(
        (&vi.notify_master, &vi.notify_backup, &vi.notify_fault, &vi.notify_stop, &vi.notify),
        (&None, &None, &None, &None, &None)
    );
    assert_eq!((&vi.use_vmac, vi.accept), (&None, None));

    // Without vrrp_strict, the password is kept.
    let relaxed = text.replace("    vrrp_strict\n", "");
    let loaded = load_str(&relaxed, &path, &LoadOptions::default()).expect("loads");
    assert_eq!(loaded.model.vrrp.instances[0].auth_pass.as_deref(), Some("1111"));
    assert!(!loaded.model.vrrp.instances[0].strict);
}

#[test]
fn example_keepalived_v3() {
    let loaded = load_files(&[example("keepalived-v3.conf")], &LoadOptions::default())
        .unwrap_or_else(|e| panic!("examples/keepalived-v3.conf:\n{}", show(&e)));
    assert!(loaded.warnings.is_empty(), "{}", show(&loaded.warnings));
    let v = &loaded.model.vrrp;
    assert_eq!(v.router_id.as_deref(), Some("lb1"));
    let script = &v.scripts[0];
    assert_eq!(script.name, "chk_haproxy");
    assert_eq!(script.script, "/usr/bin/killall -0 haproxy");
    assert_eq!((script.interval, script.timeout), (Duration::from_secs(2), Some(Duration::from_secs(1))));
    assert_eq!((script.weight, script.rise, script.fall), (-20, 2, 3));
    let web = &v.instances[0];
    assert_eq!((web.name.as_str(), web.version, web.vrid, web.priority), ("VI_WEB", 3, 60, 150));
    assert_eq!(web.advert_int, Duration::from_millis(100));
    assert_eq!(web.unicast_src_ip, Some(ip("192.0.2.11")));
    assert_eq!(web.unicast_peers, [ip("192.0.2.12")]);
    let want = Vip { addr: ip("192.0.2.100"), prefix: 24, dev: Some("eth0".into()), label: Some("eth0:vip".into()) };
    assert_eq!(web.vips, [want]);
    assert_eq!(web.track_scripts, [Tracked { name: "chk_haproxy".into(), weight: None }]);
    assert_eq!(web.track_interfaces, [Tracked { name: "eth1".into(), weight: Some(-10) }]);
    assert_eq!(web.notify_master.as_deref(), Some("/etc/keepalived/notify.sh master"));
    assert_eq!(web.notify.as_deref(), Some("/etc/keepalived/notify.sh"));
    let db = &v.instances[1];
    assert_eq!((db.name.as_str(), db.state, db.nopreempt, db.version), ("VI_DB", VrrpState::Backup, true, 3));
    let group = &v.sync_groups[0];
    assert_eq!(group.name, "VG_1");
    assert_eq!(group.instances, ["VI_WEB", "VI_DB"]);
    assert_eq!(group.notify_master.as_deref(), Some("/etc/keepalived/notify.sh group-master"));
}

/// The seed's LVS part, with its slips (`lbKind`, `HTTPᐈET`).
const SEED_LVS: &str = "\
virtual_server 192.168.200.100 443 {
    delay_loop 6
    lb_algo rr
    lbKind NAT
    persistence_timeout 50
    protocol TCP
    real_server 192.168.201.100 443 {
        weight 1
        SSL_GET {
            url {
                path /
                digest ff20ad2481f97b1754ef3e12ecd3a9cc
            }
            connect_timeout 3
            retry 3
            delay_before_retry 3
        }
    }
}
virtual_server 10.10.10.2 1358 {
    sorry_server 192.168.200.200 1358
    real_server 192.168.200.2 1358 {
        HTTP\u{1408}ET {
            url { path /testurl/test.jsp digest 640205b7b0fc66c1ea91c463fac6334d }
        }
    }
}
";

#[test]
fn the_seeds_virtual_servers_name_their_slips() {
    let text = format!("{SEED_LVS}{}", instance(""));
    assert_eq!(
        errors(&text),
        [
            "k.conf:4: unknown virtual_server keyword 'lbKind' (did you mean lb_kind?)",
            "k.conf:23: unknown real_server keyword 'HTTP\u{1408}ET' (did you mean HTTP_GET?)",
        ]
    );
    // Without `protocol`, keepalived makes a virtual server UDP, with a warning: so does fulcrum.
    let fixed = text.replace("lbKind", "lb_kind").replace('\u{1408}', "_G");
    let loaded = ok(&fixed);
    assert!(
        warnings(&loaded).iter().any(|w| w
            .starts_with("k.conf:20: warning: virtual server 10.10.10.2:1358: no protocol set - defaulting to UDP")),
        "{:?}",
        warnings(&loaded)
    );
    assert_eq!(loaded.model.backends[1].mode, Mode::Udp);
    assert_eq!(loaded.model.backends[1].name, "10.10.10.2:1358/udp");
}

#[test]
fn the_seeds_virtual_servers_run_once_fixed() {
    let fixed = SEED_LVS
        .replace("lbKind", "lb_kind")
        .replace('\u{1408}', "_G")
        .replace("virtual_server 10.10.10.2 1358 {\n", "virtual_server 10.10.10.2 1358 {\n    protocol TCP\n");
    let loaded = ok(&format!("{fixed}{}", instance("")));
    let names: Vec<&str> = loaded.model.backends.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["192.168.200.100:443", "10.10.10.2:1358"]);
    let https = &loaded.model.backends[0];
    assert_eq!(https.mode, Mode::Tcp);
    assert_eq!(https.algorithm, Algorithm::Lvs(Lvs::new(LvsScheduler::Rr)));
    assert_eq!(
        https.persistence,
        Some(Persistence { timeout: Duration::from_secs(50), prefix_v4: 32, prefix_v6: 128 })
    );
    let rs = &https.servers[0];
    assert_eq!(rs.addr, "192.168.201.100:443".parse().expect("addr"));
    let checker = &rs.checkers[0];
    assert_eq!(
        (checker.timeout, checker.retry, checker.delay_before_retry, checker.interval),
        (Duration::from_secs(3), 3, Duration::from_secs(3), Duration::from_secs(6))
    );
    match &checker.kind {
        CheckerKind::HttpGet { tls: true, urls, .. } => {
            assert_eq!(urls[0].path, "/");
            assert_eq!(urls[0].digest.as_deref(), Some("ff20ad2481f97b1754ef3e12ecd3a9cc"));
        }
        other => panic!("SSL_GET read as {other:?}"),
    }
    let sorry = loaded.model.backends[1].servers.last().expect("sorry server");
    assert!(sorry.backup);
    assert_eq!(sorry.addr, "192.168.200.200:1358".parse().expect("addr"));
    // Frontends bind the virtual addresses, in TCP.
    let fe = &loaded.model.frontends[0];
    assert_eq!((fe.mode, fe.binds.clone()), (Mode::Tcp, vec!["192.168.200.100:443".parse().expect("addr")]));
    assert_eq!(loaded.model.vrrp.instances.len(), 1);
}

#[test]
fn virtual_server_keywords_and_their_cascade() {
    let text = "\
virtual_server_group WEB {
    127.0.0.1-3 8080
    fwmark 7
}
virtual_server group WEB {
    delay_loop 2 lvs_sched mh mh-port mh-fallback
    protocol tcp
    persistence_granularity 255.255.255.0
    quorum 3
    hysteresis 1
    quorum_up \"/bin/true up\"
    connect_timeout 4
    alpha
    real_server 10.0.0.1 {
        weight 3
        uthreshold 100
        lthreshold 50
        notify_down /etc/keepalived/down.sh
        TCP_CHECK {
            connect_port 81
        }
        MISC_CHECK {
            misc_path \"/usr/local/bin/check 10.0.0.1\"
            misc_dynamic
        }
    }
    real_server 10.0.0.2 8080 {
        retry 2
        HTTP_GET {
            url { path /health status_code 200 301-302 }
            url { path /ready digest B1946AC92492D2347C6235B4D2611184 }
            virtualhost app.example.com
            delay_before_retry 0.5
        }
        DNS_CHECK { type a name example.com connect_port 53 }
    }
}
";
    let loaded = ok(text);
    assert!(warnings(&loaded).iter().any(|w| w.contains("fwmark entries of virtual_server_group 'WEB' are ignored")));
    let fe = &loaded.model.frontends[0];
    let binds: Vec<String> = fe.binds.iter().map(ToString::to_string).collect();
    assert_eq!(binds, ["127.0.0.1:8080", "127.0.0.2:8080", "127.0.0.3:8080"]);
    let be = &loaded.model.backends[0];
    let mut mh = Lvs::new(LvsScheduler::Mh);
    (mh.port, mh.fallback) = (true, true);
    assert_eq!(be.algorithm, Algorithm::Lvs(mh));
    assert_eq!(be.persistence, Some(Persistence { timeout: Duration::from_secs(360), prefix_v4: 24, prefix_v6: 128 }));
    let q = be.quorum.as_ref().expect("quorum");
    assert_eq!((q.quorum, q.hysteresis, q.up.as_deref()), (3, 1, Some("/bin/true up")));
    let [first, second] = &be.servers[..] else { panic!("two servers: {:?}", be.servers) };
    // A real server without a port in a group serves the port the client came to.
    assert_eq!(first.addr, "10.0.0.1:0".parse().expect("addr"));
    assert_eq!((first.weight, first.upper_threshold, first.lower_threshold), (3, 100, 50));
    assert!(first.start_down, "alpha cascades from the virtual server");
    assert_eq!(first.notify_down.as_deref(), Some("/etc/keepalived/down.sh"));
    assert_eq!(first.checkers[0].target, "10.0.0.1:81".parse().expect("addr"));
    assert_eq!(
        (first.checkers[0].timeout, first.checkers[0].interval),
        (Duration::from_secs(4), Duration::from_secs(2))
    );
    assert_eq!((first.checkers[0].retry, first.checkers[0].delay_before_retry), (1, Duration::from_secs(1)));
    match &first.checkers[1].kind {
        CheckerKind::Misc { path, dynamic: true, .. } => assert_eq!(path, "/usr/local/bin/check 10.0.0.1"),
        other => panic!("{other:?}"),
    }
    assert_eq!(first.checkers[1].retry, 0, "MISC_CHECK's default retry");
    let http = &second.checkers[0];
    assert_eq!((http.retry, http.delay_before_retry), (2, Duration::from_millis(500)));
    match &http.kind {
        CheckerKind::HttpGet { tls: false, urls, virtualhost, .. } => {
            assert_eq!(urls[0].status, [(200, 200), (301, 302)]);
            assert_eq!(urls[1].digest.as_deref(), Some("b1946ac92492d2347c6235b4d2611184"));
            assert_eq!(virtualhost.as_deref(), Some("app.example.com"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(second.checkers[1].kind, CheckerKind::Dns { kind: "A".into(), name: "example.com".into() });
    assert_eq!(second.checkers[1].retry, 2, "the real server's retry");
}

#[test]
fn virtual_server_errors_name_the_line_and_the_fix() {
    let vs = |body: &str| {
        format!("virtual_server 10.0.0.1 80 {{\n    protocol TCP\n{body}    real_server 10.0.0.2 80 {{\n    }}\n}}\n")
    };
    assert_eq!(errors(&vs("    lb_algo wrrr\n")), ["k.conf:3: unknown lvs_sched 'wrrr' (did you mean wrr?)"]);
    assert_eq!(
        errors(&vs("    persistence_granularity 255.0.255.0\n")),
        ["k.conf:3: invalid persistence_granularity '255.0.255.0' (an IPv4 netmask (255.255.255.0) or an IPv6 prefix length (64))"]
    );
    assert_eq!(
        errors(&vs("    lb_kind DRR\n")),
        ["k.conf:3: unknown routing method 'DRR' (NAT, DR or TUN (upper case))"]
    );
    let udp = ok("virtual_server 10.0.0.1 53 {\n    protocol UDP\n    ops\n    real_server 10.0.0.2 53 {\n    }\n}\n");
    assert_eq!(udp.model.frontends[0].mode, Mode::Udp);
    assert_eq!(udp.model.backends[0].lvs.as_ref().map(|l| l.one_packet), Some(true));
    assert_eq!(udp.model.frontends[0].timeout_client, Duration::from_secs(300));
    // One address, TCP and UDP: two services.
    let both = ok("virtual_server 10.0.0.1 53 {\n    protocol UDP\n    real_server 10.0.0.2 53 {\n    }\n}\n\
                   virtual_server 10.0.0.1 53 {\n    protocol TCP\n    real_server 10.0.0.2 53 {\n    }\n}\n");
    let names: Vec<&str> = both.model.frontends.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["10.0.0.1:53/udp", "10.0.0.1:53"]);
    assert_eq!(
        errors("virtual_server 10.0.0.1 0 {\n    protocol TCP\n    persistence_timeout\n    real_server 10.0.0.2 80 {\n    }\n}\n"),
        ["k.conf:1: a virtual server on port 0 (every port of the address) is not supported (a proxy listens on given ports: write one virtual_server (or group entry) per port)"]
    );
    assert_eq!(
        errors("virtual_server 10.0.0.1 80 {\n    protocol TCP\n}\n"),
        ["k.conf:1: virtual server 10.0.0.1:80 has no real servers (add real_server IP PORT { ... })"]
    );
    assert_eq!(
        errors("virtual_server fwmark 5 {\n    real_server 10.0.0.2 80 {\n    }\n}\n"),
        ["k.conf:1: virtual_server fwmark 5: fulcrum does not read packet marks (list the addresses and ports the mark stands for in a virtual_server_group and write virtual_server group NAME; or use --lenient to ignore it)"]
    );
    let checker = |c: &str| vs(&format!("    real_server 10.0.0.3 80 {{\n        {c}\n    }}\n"));
    assert_eq!(
        errors(&checker("HTTP_GET {\n url { path / digest xyz }\n }")),
        ["k.conf:5: digest is 32 hexadecimal digits (the MD5 of the body, as genhash prints it)"]
    );
    assert_eq!(
        errors(&checker("HTTP_GET {\n url { path / status_code 2000 }\n }")),
        ["k.conf:5: Invalid HTTP_GET status code '2000' (codes or ranges within 100-599, e.g. status_code 200 301-302)"]
    );
    assert_eq!(
        errors(&checker("HTTP_GET {\n }")),
        ["k.conf:4: HTTP_GET has no url (add url { path / status_code 200 })"]
    );
    assert_eq!(
        errors(&checker("SMTP_CHECK {\n }")),
        ["k.conf:4: SMTP_CHECK is not supported yet (TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK and DNS_CHECK are; or use --lenient to ignore it)"]
    );
    assert_eq!(
        errors(&checker("TCP_CHECK {\n conect_timeout 3\n }")),
        ["k.conf:5: unknown TCP_CHECK keyword 'conect_timeout' (did you mean connect_timeout?)"]
    );
    assert_eq!(
        errors(&format!("{}real_server 10.0.0.2 80 {{\n}}\n", instance(""))),
        ["k.conf:8: 'real_server' is outside any virtual_server block (is a '}' misplaced above it?)"]
    );
}

#[test]
fn seed_as_transcribed_names_the_slips() {
    // The article's instance on one line: the `#` comments swallow the rest of it.
    let found = errors("vrrp_instance VI_1 {\n state MASTER\n interface eth0\n virtualRouterID 51\n priority 100\n}\n");
    assert_eq!(
        found,
        [
            "k.conf:1: vrrp_instance 'VI_1' has no virtual_router_id (add e.g. virtual_router_id 51 (1 to 255, the same on every node of the pair))",
            "k.conf:1: vrrp_instance 'VI_1' has no virtual address (add e.g. virtual_ipaddress { 192.168.200.16/24 })",
            "k.conf:4: unknown vrrp_instance keyword 'virtualRouterID' (did you mean virtual_router_id?)",
        ]
    );
    let one_line = "global_defs {# comment router_id LVS_DEVEL\n}\n";
    let found = load(one_line).expect_err("nothing to run");
    assert_eq!(found[0].message, "no frontend binds anything");
}

#[test]
fn one_line_blocks_and_statements() {
    let text = "vrrp_instance VI_1 { state BACKUP interface eth0 virtual_router_id 7 priority 90 advert_int 2\n\
                authentication { auth_type PASS auth_pass secret }\n\
                virtual_ipaddress { 10.0.0.1 10.0.0.2/24 dev eth1 label eth1:0 10.0.0.3 }\n\
                unicast_peer { 10.0.0.5 10.0.0.6 } }\n";
    let loaded = ok(text);
    let vi = &loaded.model.vrrp.instances[0];
    assert_eq!((vi.state, vi.interface.as_str(), vi.vrid, vi.priority), (VrrpState::Backup, "eth0", 7, 90));
    assert_eq!(vi.advert_int, Duration::from_secs(2));
    assert_eq!(vi.auth_pass.as_deref(), Some("secret"));
    assert_eq!(vi.vips.len(), 3);
    assert_eq!(
        (vi.vips[1].prefix, vi.vips[1].dev.as_deref(), vi.vips[1].label.as_deref()),
        (24, Some("eth1"), Some("eth1:0"))
    );
    assert_eq!(vi.unicast_peers, [ip("10.0.0.5"), ip("10.0.0.6")]);
    let one = "vrrp_instance WEB { interface eth0 virtual_router_id 1 virtual_ipaddress { 10.0.0.1 } } vrrp_sync_group G { group { WEB DATABASE } }\n";
    assert_eq!(errors(one), ["k.conf:1: vrrp_sync_group 'G' names instance 'DATABASE', which is not defined"]);
}

#[test]
fn global_defs_set_instance_defaults() {
    let text = format!(
        "global_defs {{\n  vrrp_version 3\n  vrrp_garp_master_delay 2\n  vrrp_garp_master_repeat 3\n  vrrp_garp_master_refresh 60\n  lvs_id X\n  max_auto_priority\n}}\n{}",
        instance("    use_vmac\n    accept\n")
    );
    let loaded = ok(&text);
    let vi = &loaded.model.vrrp.instances[0];
    assert_eq!(vi.version, 3);
    assert_eq!((vi.garp_master_delay, vi.garp_master_repeat), (Duration::from_secs(2), 3));
    assert_eq!(vi.garp_master_refresh, Some(Duration::from_secs(60)));
    assert_eq!((vi.use_vmac.as_deref(), vi.accept), (Some("vrrp.51"), Some(true)));
    let w = warnings(&loaded);
    assert_eq!(w.len(), 2, "use_vmac and accept are enforced, not warned about: {w:?}");
    assert!(
        w[0].starts_with("k.conf:6: warning: 'lvs_id' is ignored: it is keepalived 1.x's name for router_id"),
        "{w:?}"
    );
    assert!(w[1].starts_with("k.conf:7: warning: 'max_auto_priority' is ignored"), "{w:?}");
}

#[test]
fn ipv6_instances_run_version_3() {
    let v2 = errors("vrrp_instance V6 {\n interface eth0\n virtual_router_id 9\n version 2\n virtual_ipaddress {\n  2001:db8::10\n }\n}\n");
    assert_eq!(
        v2,
        ["k.conf:4: vrrp_instance 'V6' has IPv6 addresses, which VRRP version 2 cannot carry (use version 3)"]
    );
    let loaded = ok("vrrp_instance V6 {\n interface eth0\n virtual_router_id 9\n virtual_ipaddress {\n  2001:db8::10/64\n }\n virtual_ipaddress_excluded {\n  10.0.0.1\n }\n}\n");
    let vi = &loaded.model.vrrp.instances[0];
    assert_eq!((vi.version, vi.vips[0].prefix, vi.vips_excluded.len()), (3, 64, 1));
}

#[test]
fn mcast_src_ip_is_the_source_address() {
    let loaded = ok(&instance("    mcast_src_ip 10.0.0.2\n"));
    assert_eq!(loaded.model.vrrp.instances[0].unicast_src_ip, Some(ip("10.0.0.2")));
    assert!(
        warnings(&loaded)[0].starts_with("k.conf:7: warning: 'mcast_src_ip' is read as the source address of adverts")
    );
    let loaded = ok(&instance("    dont_track_primary\n    smtp_alert\n    lvs_sync_daemon_interface eth1\n"));
    let w = warnings(&loaded);
    assert!(w[0].starts_with("k.conf:7: warning: 'dont_track_primary' is ignored"), "{w:?}");
    assert!(w[1].starts_with("k.conf:8: warning: 'smtp_alert' is ignored"), "{w:?}");
    assert!(w[2].starts_with("k.conf:9: warning: 'lvs_sync_daemon_interface' is ignored"), "{w:?}");
}

#[test]
fn every_instance_error_with_line_and_hint() {
    let cases: &[(&str, &str)] = &[
        ("    state MASTR\n", "k.conf:7: unknown state 'MASTR' (did you mean MASTER?)"),
        ("    priority 0\n", "k.conf:7: priority 0 is out of range (1 to 255)"),
        ("    priority 300\n", "k.conf:7: priority 300 is out of range (1 to 255)"),
        ("    priority x\n", "k.conf:7: invalid priority 'x' (expected a whole number)"),
        ("    advert_int 0.5\n", "k.conf:7: advert_int 0.5 of vrrp_instance 'VI_1' is not valid for VRRP version 2 (whole seconds from 1 to 255) (use version 3 for sub-second adverts (0.01 to 40.95 seconds))"),
        ("    advert_int 256\n", "k.conf:7: advert_int 256 of vrrp_instance 'VI_1' is not valid for VRRP version 2 (whole seconds from 1 to 255) (use version 3 for sub-second adverts (0.01 to 40.95 seconds))"),
        ("    version 3\n    advert_int 41\n", "k.conf:8: advert_int 41 of vrrp_instance 'VI_1' is not valid for VRRP version 3 (0.01 to 40.95 seconds, in hundredths)"),
        ("    version 3\n    advert_int 0.005\n", "k.conf:8: advert_int 0.005 of vrrp_instance 'VI_1' is not valid for VRRP version 3 (0.01 to 40.95 seconds, in hundredths)"),
        ("    advert_int fast\n", "k.conf:7: invalid advert_int 'fast' (expected seconds, e.g. 1 or 0.5)"),
        ("    version 4\n", "k.conf:7: version must be 2 or 3, not '4'"),
        ("    authentication {\n        auth_type AH\n        auth_pass x\n    }\n", "k.conf:8: AH authentication is not supported (deprecated by RFC 3768 errata); use PASS or none (use PASS, or no authentication block)"),
        ("    authentication {\n        auth_type PSS\n    }\n", "k.conf:8: unknown auth_type 'PSS' (did you mean PASS?)"),
        ("    authentication {\n        auth_type PASS\n    }\n", "k.conf:8: authentication with auth_type PASS needs auth_pass (add e.g. auth_pass 1111)"),
        ("    authentication {\n        auth_pas 1\n    }\n", "k.conf:8: unknown authentication keyword 'auth_pas' (did you mean auth_pass?)"),
        ("    version 3\n    authentication {\n        auth_type PASS\n        auth_pass 1\n    }\n", "k.conf:8: vrrp_instance 'VI_1' uses authentication, which VRRP version 3 does not have (RFC 5798) (remove the authentication block, or use version 2)"),
        ("    virtual_ipaddress {\n        10.0.0.11 dev eth0 lable x\n    }\n", "k.conf:8: unknown virtual address option 'lable' (did you mean label?)"),
        ("    virtual_ipaddress {\n        10.0.0.300\n    }\n", "k.conf:8: invalid virtual address '10.0.0.300' (expected e.g. 192.168.200.16 or 192.168.200.16/24)"),
        ("    virtual_ipaddress {\n        10.0.0.11/33\n    }\n", "k.conf:8: invalid virtual address '10.0.0.11/33' (expected e.g. 192.168.200.16 or 192.168.200.16/24)"),
        ("    virtual_ipaddress {\n        10.0.0.11 nodad\n    }\n", "k.conf:8: virtual address option 'nodad' is not supported yet (use --lenient to ignore it)"),
        ("    version 3\n    virtual_ipaddress {\n        2001:db8::1\n    }\n", "k.conf:9: virtual address 2001:db8::1 of vrrp_instance 'VI_1' is IPv6, the instance is IPv4 (put addresses of the other family in virtual_ipaddress_excluded, or in another instance)"),
        ("    unicast_peer {\n        2001:db8::2\n    }\n", "k.conf:8: unicast peer 2001:db8::2 of vrrp_instance 'VI_1' is IPv6, the instance is IPv4"),
        ("    unicast_peer {\n        peer1\n    }\n", "k.conf:8: invalid unicast peer 'peer1' (expected an IP address)"),
        ("    unicast_src_ip 2001:db8::3\n", "k.conf:7: unicast_src_ip 2001:db8::3 of vrrp_instance 'VI_1' is IPv6, the instance is IPv4"),
        ("    vrrp_strict\n    unicast_peer {\n        10.0.0.2\n    }\n", "k.conf:9: vrrp_instance 'VI_1' has unicast peers, which strict mode (vrrp_strict) forbids (remove vrrp_strict, or unicast_peer)"),
        ("    track_script {\n        chk_haproxi\n    }\n", "k.conf:8: vrrp_instance 'VI_1' tracks script 'chk_haproxi', which is not defined (define it with vrrp_script chk_haproxi { script \"...\" })"),
        ("    track_backend {\n        app weight 10\n    }\n", "k.conf:8: vrrp_instance 'VI_1' tracks backend 'app', which is not defined (track_backend names a backend of the haproxy.cfg or TOML file loaded with this one)"),
        ("    track_interface {\n        eth1 weight 300\n    }\n", "k.conf:8: weight 300 is out of range (-254 to 254)"),
        ("    preempt_delay 2000\n", "k.conf:7: preempt_delay 2000 is out of range (0 to 1000 seconds)"),
        ("    nopreempt yes\n", "k.conf:7: unexpected 'yes' after 'nopreempt'"),
        ("    interface\n", "k.conf:7: 'interface' needs a value"),
        ("    notify_master\n", "k.conf:7: 'notify_master' needs a script (e.g. notify_master \"/etc/keepalived/notify.sh\")"),
        ("    virtual_routes {\n    }\n", "k.conf:7: vrrp_instance 'virtual_routes' is not supported yet (use --lenient to ignore it)"),
        ("    priorty 100\n", "k.conf:7: unknown vrrp_instance keyword 'priorty' (did you mean priority?)"),
        ("    virtual_ipaddress\n", "k.conf:7: 'virtual_ipaddress' needs a block (write virtual_ipaddress { ... })"),
        ("    state MASTER {\n    }\n", "k.conf:7: 'state' takes no block"),
    ];
    for (body, want) in cases {
        let got = errors(&instance(body));
        assert_eq!(got, [want.to_string()], "for:\n{body}");
    }
}

#[test]
fn instance_level_errors() {
    let found = errors("vrrp_instance VI_1 {\n    virtual_router_id 300\n}\n");
    assert_eq!(
        found,
        [
            "k.conf:1: vrrp_instance 'VI_1' has no interface (add e.g. interface eth0)",
            "k.conf:1: vrrp_instance 'VI_1' has no virtual address (add e.g. virtual_ipaddress { 192.168.200.16/24 })",
            "k.conf:2: virtual_router_id 300 is out of range (1 to 255)",
        ]
    );
    let twice = format!("{}{}", instance(""), instance("").replace("VI_1", "VI_2"));
    assert_eq!(
        errors(&twice),
        ["k.conf:10: vrrp_instances 'VI_1' and 'VI_2' both use virtual_router_id 51 on interface eth0 (give each its own virtual_router_id (see k.conf:1))"]
    );
    let same_name = format!("{}{}", instance(""), instance(""));
    assert_eq!(errors(&same_name), ["k.conf:8: vrrp_instance 'VI_1' is defined twice (first defined at k.conf:1)"]);
    assert_eq!(errors("vrrp_instance {\n}\n"), ["k.conf:1: 'vrrp_instance' needs a name (e.g. vrrp_instance VI_1)"]);
    assert_eq!(
        errors("vrrp_instance VI_1\n"),
        ["k.conf:1: vrrp_instance 'VI_1' has no block (write vrrp_instance VI_1 { ... })"]
    );
    let owner = ok(&instance("    priority 255\n"));
    assert!(
        warnings(&owner)[0].starts_with("k.conf:7: warning: priority 255 makes vrrp_instance 'VI_1' the address owner")
    );
    let long = ok(&instance("    authentication {\n        auth_type PASS\n        auth_pass 0123456789\n    }\n"));
    assert_eq!(long.model.vrrp.instances[0].auth_pass.as_deref(), Some("01234567"));
    assert_eq!(warnings(&long), ["k.conf:9: warning: auth_pass is longer than 8 characters: keepalived (and fulcrum) use only '01234567' (shorten it to 8 characters)"]);
}

#[test]
fn global_script_and_group_errors() {
    let text = format!(
        "global_defs {{\n  router_idd x\n  vrrp_version 4\n  vrrp_mcast_group4 224.0.0.19\n}}\n\
         vrrp_script chk {{\n  script \"/bin/true\"\n  interval 0\n  fall 0\n  weight 2 reverse\n  intervall 2\n}}\n\
         vrrp_script empty {{\n}}\n\
         vrrp_sync_group G1 {{\n  group {{\n    VI_1\n    VI_9\n  }}\n  notify_mastr x\n}}\n\
         vrrp_sync_group G2 {{\n  group {{\n    VI_1\n  }}\n}}\n\
         vrrp_sync_group G3 {{\n}}\n\
         vrrp_instanse VI_2 {{\n}}\n{}",
        instance("")
    );
    assert_eq!(
        errors(&text),
        [
            "k.conf:2: unknown global_defs keyword 'router_idd' (did you mean router_id?)",
            "k.conf:3: vrrp_version must be 2 or 3, not '4'",
            "k.conf:4: global_defs 'vrrp_mcast_group4' is not supported yet (use --lenient to ignore it)",
            "k.conf:8: interval must be greater than 0",
            "k.conf:9: fall must be at least 1",
            "k.conf:10: 'weight ... reverse' is not supported yet (use --lenient to ignore it)",
            "k.conf:11: unknown vrrp_script keyword 'intervall' (did you mean interval?)",
            "k.conf:13: vrrp_script 'empty' has no 'script' (add e.g. script \"/usr/bin/killall -0 haproxy\")",
            "k.conf:18: vrrp_sync_group 'G1' names instance 'VI_9', which is not defined (did you mean VI_1?)",
            "k.conf:20: unknown vrrp_sync_group keyword 'notify_mastr' (did you mean notify_master?)",
            "k.conf:24: instance 'VI_1' is in two sync groups ('G1' and 'G2') (first at k.conf:17)",
            "k.conf:27: vrrp_sync_group 'G3' has no instance (add e.g. group { VI_1 VI_2 })",
            "k.conf:29: unknown keyword 'vrrp_instanse' (did you mean vrrp_instance?)",
        ]
    );
    let user = ok(&format!("vrrp_script chk {{\n  script /bin/true\n  user nobody\n}}\n{}", instance("")));
    assert!(warnings(&user)[0].starts_with("k.conf:3: warning: 'user' is ignored"));
}

#[test]
fn syntax_errors() {
    assert_eq!(errors(&format!("{}}}\n", instance(""))), ["k.conf:8: unexpected '}' (is there one '}' too many?)"]);
    let open = errors("vrrp_instance VI_1 {\n    interface eth0\n");
    assert!(open.contains(&"k.conf:1: this block is not closed: '}' is missing".to_string()), "{open:?}");
    let quote = errors(&instance("    notify \"/bin/x\n"));
    assert_eq!(quote, ["k.conf:7: unmatched quote: a quoted string is not closed on this line"]);
    assert_eq!(errors(&format!("$VIP=10.0.0.1\n{}", instance("")))[0], "k.conf:1: keepalived configuration variables and conditional lines ($NAME, @host) are not supported yet (write the values out; or use --lenient to ignore it)");
}

#[test]
fn includes_relative_to_the_including_file() {
    let dir = temp_dir("include");
    std::fs::create_dir_all(dir.join("conf.d")).expect("dir");
    std::fs::write(dir.join("conf.d/10-vi1.conf"), instance("")).expect("write");
    std::fs::write(dir.join("conf.d/20-vi2.conf"), instance("").replace("VI_1", "VI_2").replace(" 51", " 52"))
        .expect("write");
    std::fs::write(dir.join("conf.d/skip.txt"), "garbage").expect("write");
    std::fs::write(dir.join("keepalived.conf"), "global_defs {\n  router_id A\n}\ninclude conf.d/*.conf\n")
        .expect("write");
    let loaded =
        load_files(&[dir.join("keepalived.conf")], &LoadOptions::default()).unwrap_or_else(|e| panic!("{}", show(&e)));
    let names: Vec<&str> = loaded.model.vrrp.instances.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["VI_1", "VI_2"]);
    assert_eq!(loaded.model.vrrp.instances[1].origin, Origin { file: dir.join("conf.d/20-vi2.conf"), line: 1 });

    std::fs::write(
        dir.join("conf.d/30-bad.conf"),
        instance("    priorty 1\n").replace("VI_1", "VI_3").replace(" 51", " 53"),
    )
    .expect("write");
    std::fs::write(dir.join("missing.conf"), format!("include nothing/*.conf\n{}", instance(""))).expect("write");
    std::fs::write(dir.join("self.conf"), format!("include self.conf\n{}", instance(""))).expect("write");
    let found = load_files(
        &[dir.join("keepalived.conf"), dir.join("missing.conf"), dir.join("self.conf")],
        &LoadOptions::default(),
    )
    .expect_err("errors");
    let got: Vec<String> = found
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| {
            let file = d.file.strip_prefix(&dir).unwrap_or(&d.file).display().to_string();
            format!("{file}:{}: {}", d.line, d.message)
        })
        .collect();
    assert!(got.contains(&"conf.d/30-bad.conf:7: unknown vrrp_instance keyword 'priorty'".to_string()), "{got:?}");
    assert!(got.iter().any(|g| g.starts_with("missing.conf:1: include 'nothing/*.conf' matches no file")), "{got:?}");
    assert!(
        got.iter().any(|g| g.starts_with("self.conf:1: '") && g.ends_with("self.conf' includes itself")),
        "{got:?}"
    );
    assert!(got.iter().any(|g| g.starts_with("missing.conf:2: vrrp_instance 'VI_1' is defined twice")), "{got:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

const HAPROXY: &str = "\
defaults
    mode http
frontend web
    bind 127.0.0.1:8080
    default_backend app
backend app
    server a 127.0.0.1:9001 check
";

#[test]
fn haproxy_cfg_and_keepalived_conf_combine() {
    let dir = temp_dir("combine");
    std::fs::write(dir.join("haproxy.cfg"), HAPROXY).expect("write");
    std::fs::write(dir.join("keepalived.conf"), instance("    track_backend {\n        app weight -30\n    }\n"))
        .expect("write");
    let files = [dir.join("haproxy.cfg"), dir.join("keepalived.conf")];
    let loaded = load_files(&files, &LoadOptions::default()).unwrap_or_else(|e| panic!("{}", show(&e)));
    assert_eq!(loaded.model.frontends.len(), 1);
    assert_eq!(loaded.model.vrrp.instances[0].track_backends, [Tracked { name: "app".into(), weight: Some(-30) }]);

    std::fs::write(dir.join("keepalived.conf"), instance("    track_backend {\n        ap\n    }\n")).expect("write");
    std::fs::write(dir.join("more.conf"), instance("")).expect("write");
    let files = [dir.join("haproxy.cfg"), dir.join("keepalived.conf"), dir.join("more.conf")];
    let found = load_files(&files, &LoadOptions::default()).expect_err("errors");
    let got: Vec<String> = found
        .iter()
        .map(|d| {
            format!(
                "{}:{}: {} ({})",
                d.file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
                d.line,
                d.message,
                d.hint.clone().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            "keepalived.conf:8: vrrp_instance 'VI_1' tracks backend 'ap', which is not defined (did you mean app?)"
                .to_string(),
            format!(
                "more.conf:1: vrrp_instance 'VI_1' is defined twice (first defined at {}:1)",
                dir.join("keepalived.conf").display()
            ),
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nothing_to_run_is_still_an_error() {
    let found = load("global_defs {\n  router_id A\n}\n").expect_err("nothing");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].message, "no frontend binds anything");
}

#[test]
fn never_panics_on_garbage() {
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let words = [
        "vrrp_instance",
        "{",
        "}",
        "\"",
        "#",
        "!",
        "include",
        "*",
        "virtual_ipaddress",
        "10.0.0.1/99",
        "::1",
        "dev",
        "weight",
        "-",
        "advert_int",
        "0.",
        ".5",
        "version",
        "3",
        "authentication",
        "auth_type",
        "AH",
        "track_script",
        "vrrp_script",
        "group",
        "vrrp_sync_group",
        "virtual_server",
        "\n",
        "\n",
        " ",
        "global_defs",
        "use_vmac",
        "\u{1408}",
        "999999999999999999999",
        "unicast_peer",
        "state",
        "notify",
        "$X",
        "priority",
    ];
    for _ in 0..400 {
        let len = (next() % 80) as usize;
        let text: String =
            (0..len).map(|_| words[(next() % words.len() as u64) as usize]).collect::<Vec<_>>().join(" ");
        let _ = load(&text);
        let _ = lenient(&text);
        let bytes: Vec<u8> = (0..len * 3).map(|_| (next() & 0xff) as u8).collect();
        let _ = load(&format!("vrrp_instance X {{\n{}\n}}\n", String::from_utf8_lossy(&bytes)));
    }
    let _ = load(&"{".repeat(100_000));
    assert_eq!(
        errors(&format!("{}    state BACKUP\n}}\n", instance(""))),
        [
            "k.conf:8: 'state' is outside any vrrp_instance block (is a '}' misplaced above it?)",
            "k.conf:9: unexpected '}' (is there one '}' too many?)"
        ]
    );
    // Wrong types everywhere in [vrrp]: errors, never a panic.
    for doc in [
        "vrrp = 3\n",
        "[vrrp]\ninstance = 1\nscript = \"x\"\nsync_group = [1]\nversion = \"3\"\nstrict = 1\n",
        "[[vrrp.instance]]\nname = 5\n",
        "[[vrrp.instance]]\nname = \"a b\"\n",
        "[[vrrp.instance]]\nname = \"V\"\nvips = 1\ntrack_script = \"x\"\nuse_vmac = 3\nstate = 1\npriority = -1\nunicast_peer = [1]\ntrack_backend = [{ weight = \"x\" }]\nvips_excluded = [{ dev = \"x\" }, 1.5, \"10.0.0.1 dev\"]\nadvert_int = \"1.5s\"\nnopreempt = \"yes\"\n",
        "[[vrrp.sync_group]]\nname = \"G\"\ngroup = 1\n[[vrrp.script]]\nname = \"s\"\nweight = 999\nrise = 0\n",
    ] {
        assert!(toml(doc).is_err(), "{doc}");
    }
    let _ = load(&format!("vrrp_instance X {{ {} }}", "virtual_ipaddress { 10.0.0.1 } ".repeat(2000)));
}

fn toml(text: &str) -> Result<Loaded, Vec<Diagnostic>> {
    load_str(text, Path::new("t.toml"), &LoadOptions::default())
}

fn toml_errors(text: &str) -> Vec<String> {
    match toml(text) {
        Ok(loaded) => panic!("loads, but should not (warnings:\n{})", show(&loaded.warnings)),
        Err(diags) => diags.iter().filter(|d| d.severity == Severity::Error).map(ToString::to_string).collect(),
    }
}

/// The Model without where things came from, to compare front-ends.
fn without_origins(mut vrrp: Vrrp) -> Vrrp {
    vrrp.instances.iter_mut().for_each(|i| i.origin = Origin::default());
    vrrp.scripts.iter_mut().for_each(|s| s.origin = Origin::default());
    vrrp.sync_groups.iter_mut().for_each(|g| g.origin = Origin::default());
    vrrp
}

#[test]
fn toml_vrrp_equals_keepalived_conf() {
    let from_toml = load_files(&[example("fulcrum-vrrp.toml")], &LoadOptions::default())
        .unwrap_or_else(|e| panic!("examples/fulcrum-vrrp.toml:\n{}", show(&e)));
    assert!(from_toml.warnings.is_empty(), "{}", show(&from_toml.warnings));
    let from_conf = load_files(&[example("keepalived-v3.conf")], &LoadOptions::default()).expect("loads");
    assert_eq!(without_origins(from_toml.model.vrrp.clone()), without_origins(from_conf.model.vrrp));
    assert_eq!(from_toml.model.vrrp.instances[1].origin.line, 35);
}

#[test]
fn toml_vrrp_defaults_and_tracking_a_backend() {
    let text = "[[frontend]]\nname = \"web\"\nbind = \"127.0.0.1:8080\"\ndefault_backend = \"app\"\n\
                [[backend]]\nname = \"app\"\n[[backend.server]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"\n\
                [vrrp]\nstrict = true\ngarp_master_refresh = \"1m\"\n\
                [[vrrp.instance]]\nname = \"VI_1\"\ninterface = \"eth0\"\nvirtual_router_id = 51\nversion = 2\n\
                vips = [\"10.0.0.10\", \"2001:db8::1\"]\nuse_vmac = true\nauth_pass = \"1111\"\n\
                track_backend = [{ name = \"app\", weight = -50 }]\n";
    let found = toml_errors(text);
    assert_eq!(
        found,
        [
            "t.toml:18: virtual address 2001:db8::1 of vrrp_instance 'VI_1' is IPv6, the instance is IPv4 (put addresses of the other family in virtual_ipaddress_excluded, or in another instance)",
        ]
    );
    let loaded = toml(&text.replace(", \"2001:db8::1\"", "")).unwrap_or_else(|e| panic!("{}", show(&e)));
    let vi = &loaded.model.vrrp.instances[0];
    assert!(vi.strict);
    assert_eq!(vi.auth_pass, None, "dropped in strict mode");
    let warned = warnings(&loaded);
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned
        .iter()
        .any(|w| w.starts_with("t.toml:20: warning: vrrp_instance 'VI_1': authentication is dropped in strict mode")));
    assert_eq!((vi.use_vmac.as_deref(), vi.garp_master_refresh), (Some("vrrp.51"), Some(Duration::from_secs(60))));
    assert_eq!(vi.track_backends, [Tracked { name: "app".into(), weight: Some(-50) }]);
    assert_eq!((vi.version, vi.advert_int), (2, Duration::from_secs(1)), "v2 keeps keepalived's 1 s");

    // fulcrum's own defaults are the fast ones: VRRPv3, 100 ms adverts.
    let fast = "[vrrp]\n[[vrrp.instance]]\nname = \"VI_2\"\ninterface = \"eth0\"\nvirtual_router_id = 52\nvips = [\"10.0.0.20\"]\n";
    let loaded = toml(fast).unwrap_or_else(|e| panic!("{}", show(&e)));
    let vi = &loaded.model.vrrp.instances[0];
    assert_eq!((vi.version, vi.advert_int), (3, Duration::from_millis(100)));
}

#[test]
fn toml_vrrp_errors_with_lines() {
    let text = "\
[vrrp]
routerid = \"x\"
[[vrrp.instance]]
name = \"VI_1\"
interface = \"eth0\"
virtual_router_id = 300
priority = 100
advert_int = 1
virtual_ipaddress = [\"10.0.0.1\"]
vips = [\"10.0.0.1 dve eth0\", { address = \"10.0.0.2\", lable = \"x\" }, \"10.0.0.300\"]
track_script = [\"chk\"]
state = \"MASTR\"
version = 4
[[vrrp.instance]]
interface = \"eth0\"
[[vrrp.script]]
name = \"chk2\"
interval = \"0s\"
[[vrrp.sync_group]]
name = \"G\"
group = [\"VI_1\", \"VI_X\"]
";
    assert_eq!(
        toml_errors(text),
        [
            "t.toml:2: unknown key 'routerid' in [vrrp] (did you mean router_id?)",
            "t.toml:6: virtual_router_id 300 is out of range (1 to 255)",
            "t.toml:8: 'advert_int' must be a duration with a unit (write e.g. advert_int = \"1s\" or \"100ms\")",
            "t.toml:9: unknown key 'virtual_ipaddress' in vrrp instance 'VI_1' (did you mean vips?)",
            "t.toml:10: unknown virtual address option 'dve' (did you mean dev?)",
            "t.toml:10: unknown key 'lable' in a virtual address (did you mean label?)",
            "t.toml:10: invalid virtual address '10.0.0.300' (expected e.g. 192.168.200.16 or 192.168.200.16/24)",
            "t.toml:11: vrrp_instance 'VI_1' tracks script 'chk', which is not defined (did you mean chk2?)",
            "t.toml:12: unknown state 'MASTR' (did you mean MASTER?)",
            "t.toml:13: version must be 2 or 3",
            "t.toml:14: vrrp.instance without a name (add name = \"...\" to this [[vrrp.instance]])",
            "t.toml:17: vrrp script 'chk2' has no 'script' (add e.g. script = \"/usr/bin/killall -0 haproxy\")",
            "t.toml:17: interval must be greater than 0",
            "t.toml:21: vrrp_sync_group 'G' names instance 'VI_X', which is not defined (did you mean VI_1?)",
        ]
    );
}

#[test]
fn use_vmac_name_must_be_an_interface_name() {
    let found = errors(&instance("    use_vmac vrrp.very-long-name\n"));
    assert_eq!(
        found,
        ["k.conf:7: use_vmac name 'vrrp.very-long-name' of vrrp_instance 'VI_1' is not a valid interface name (at most 15 characters, without '/', ':' or blanks; the default is vrrp.VRID)"]
    );
    let loaded = ok(&instance("    use_vmac vmac51\n    no_accept\n"));
    let vi = &loaded.model.vrrp.instances[0];
    assert_eq!((vi.use_vmac.as_deref(), vi.accept), (Some("vmac51"), Some(false)));
    assert!(loaded.warnings.is_empty(), "{}", show(&loaded.warnings));
}

#[test]
fn preempt_is_read_as_keepalived_reads_it() {
    // keepalived 2.2.7 accepts `preempt`, the default, silently; after `nopreempt` it undoes it.
    let plain = ok(&instance("    preempt\n"));
    assert!(!plain.model.vrrp.instances[0].nopreempt);
    assert!(warnings(&plain).is_empty(), "{:?}", warnings(&plain));
    assert!(!ok(&instance("    nopreempt\n    preempt\n")).model.vrrp.instances[0].nopreempt);
    assert!(ok(&instance("    preempt\n    nopreempt\n")).model.vrrp.instances[0].nopreempt);
    assert_eq!(errors(&instance("    preempt now\n")), ["k.conf:7: unexpected 'now' after 'preempt'"]);
}
