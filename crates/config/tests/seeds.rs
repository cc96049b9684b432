//! The seed documents' configurations (examples/) load, and give the Model they describe.
use std::path::{Path, PathBuf};
use std::time::Duration;

use fulcrum_config::*;
use fulcrum_model::*;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name)
}

fn load(name: &str) -> Loaded {
    match load_files(&[example(name)], &LoadOptions::default()) {
        Ok(loaded) => loaded,
        Err(errors) => panic!("{name} does not load:\n{}", lines(&errors)),
    }
}

fn lines(diags: &[Diagnostic]) -> String {
    diags.iter().map(|d| format!("  {d}\n")).collect()
}

/// The line of `example` that contains `needle` (so tests survive edits to the comments).
fn line_of(name: &str, needle: &str) -> usize {
    let text = std::fs::read_to_string(example(name)).expect("example");
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1).expect("needle in example")
}

fn has_warning(loaded: &Loaded, line: usize, text: &str) -> bool {
    loaded.warnings.iter().any(|w| w.line == line && w.message.contains(text))
}

#[test]
fn cloudstack_haproxy_cfg() {
    let loaded = load("cloudstack-haproxy.cfg");
    let m = &loaded.model;
    assert_eq!(m.frontends.len(), 1);
    let fe = &m.frontends[0];
    assert_eq!(fe.name, "cloudstack-http");
    assert_eq!(fe.binds, ["0.0.0.0:8080".parse().expect("addr")]);
    assert_eq!(fe.default_backend.as_deref(), Some("cloudstack-backend"));
    assert_eq!(fe.timeout_client, Duration::from_secs(50));
    assert!(fe.httplog && fe.dontlognull);
    assert_eq!(fe.errorfiles.keys().copied().collect::<Vec<_>>(), [400, 403, 408, 500, 502, 503, 504]);
    assert!(fe.errorfiles[&503].content.starts_with(b"HTTP/1.0 503 Service Unavailable\r\n"));

    let be = m.backend("cloudstack-backend").expect("backend");
    assert_eq!(be.algorithm, Algorithm::RoundRobin);
    assert_eq!(be.timeout_connect, Duration::from_secs(5));
    assert_eq!(be.timeout_server, Duration::from_secs(50));
    assert_eq!(be.errorfiles.len(), 7);
    let check = be.http_check.as_ref().expect("httpchk");
    assert_eq!((check.method.as_str(), check.uri.as_str(), check.version.as_str()), ("GET", "/client/", "HTTP/1.0"));
    let names: Vec<&str> = be.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["mgmt01", "mgmt02", "mgmt03"]);
    for (i, s) in be.servers.iter().enumerate() {
        assert_eq!(s.addr, format!("192.168.1.10{}:8080", i + 1).parse().expect("addr"));
        assert!(s.check);
        assert_eq!((s.inter, s.rise, s.fall, s.weight), (Duration::from_secs(2), 2, 3, 1));
        assert_eq!(s.origin.line, line_of("cloudstack-haproxy.cfg", &format!("server mgmt0{}", i + 1)));
    }

    // Every ignored global line says so, on its line; syslog is mentioned once.
    let cfg = "cloudstack-haproxy.cfg";
    // `stats socket PATH` is fulcrum's control socket (`fulcrum ctl`), not ignored.
    assert_eq!(loaded.model.global.control_socket.as_deref(), Some(Path::new("/run/haproxy/admin.sock")));
    for word in ["chroot", "stats timeout", "user", "group", "daemon"] {
        let line = line_of(cfg, &format!("    {word}"));
        assert!(has_warning(&loaded, line, word), "no warning for {word} on line {line}:\n{}", lines(&loaded.warnings));
    }
    assert!(has_warning(&loaded, line_of(cfg, "log /dev/log local0"), "syslog"));
    assert_eq!(loaded.warnings.iter().filter(|w| w.message.contains("syslog")).count(), 1);
    assert_eq!(loaded.warnings.len(), 6, "{}", lines(&loaded.warnings));
    assert!(loaded.warnings.iter().all(|w| w.severity == Severity::Warning));
    let first =
        format!("cloudstack-haproxy.cfg:{}: warning: syslog targets are not used", line_of(cfg, "log /dev/log local0"));
    assert!(loaded.warnings[0].to_string().contains(&first), "{}", loaded.warnings[0]);
}

/// What every seed 003 variant shares: the `listen cluster_web` with two web servers, legacy
/// timeouts in defaults, errorfiles and the stats page.
fn cluster_web(name: &str, auth: (&str, &str)) -> (Loaded, Frontend, Backend) {
    let loaded = load(name);
    let m = &loaded.model;
    assert_eq!((m.frontends.len(), m.backends.len()), (1, 1));
    let fe = m.frontends[0].clone();
    let be = m.backends[0].clone();
    assert_eq!((fe.name.as_str(), be.name.as_str()), ("cluster_web", "cluster_web"));
    assert_eq!(fe.binds, ["192.0.2.10:80".parse().expect("addr")]);
    assert_eq!(fe.default_backend.as_deref(), Some("cluster_web"));
    assert_eq!(be.timeout_connect, Duration::from_secs(5));
    assert_eq!(be.timeout_server, Duration::from_secs(50));
    assert_eq!(fe.timeout_client, Duration::from_secs(50));
    assert_eq!(fe.errorfiles.len(), 7);
    assert_eq!(be.errorfiles.len(), 7);
    assert_eq!(be.servers.len(), 2);
    assert_eq!(be.servers[0].addr, "192.0.2.11:80".parse().expect("addr"));
    assert_eq!(be.servers[1].addr, "192.0.2.12:80".parse().expect("addr"));
    assert!(be.servers.iter().all(|s| s.check));
    assert_eq!(be.forwardfor, Some(ForwardFor::default()));
    let stats = fe.stats.clone().expect("stats");
    assert_eq!(stats.uri, "/stats");
    assert_eq!(stats.auth, [(auth.0.to_string(), auth.1.to_string())]);
    assert_eq!(stats.refresh, Some(Duration::from_secs(30)));
    assert!(stats.hide_version);
    assert_eq!(stats.show_node.as_deref(), Some(""));
    assert!(!stats.admin);
    for (legacy, modern) in
        [("contimeout", "timeout connect"), ("clitimeout", "timeout client"), ("srvtimeout", "timeout server")]
    {
        let line = line_of(name, legacy);
        let w = loaded.warnings.iter().find(|w| w.line == line).expect("legacy timeout warning");
        assert!(w.message.contains(modern), "{w}");
        assert!(w.hint.as_deref().is_some_and(|h| h.contains(modern)), "{w}");
    }
    (loaded, fe, be)
}

#[test]
fn cloudstack_listen_legacy_address() {
    let (loaded, fe, be) = cluster_web("cloudstack-listen.cfg", ("ikoula", "ikoula"));
    assert_eq!(be.algorithm, Algorithm::RoundRobin);
    assert_eq!((fe.conn_mode, be.conn_mode), (ConnMode::Close, ConnMode::Close));
    let w = loaded.warnings.iter().find(|w| w.message.contains("old syntax")).expect("legacy listen warning");
    assert_eq!(w.line, line_of("cloudstack-listen.cfg", "listen cluster_web"));
    assert_eq!(w.hint.as_deref(), Some("write it as 'listen cluster_web' followed by 'bind 192.0.2.10:80'"));
}

#[test]
fn cloudstack_stick_on_source() {
    let (_, _, be) = cluster_web("cloudstack-stick.cfg", ("utilisateur", "motdepasse"));
    assert_eq!(be.algorithm, Algorithm::Source);
    assert_eq!(be.hash_type, HashType::Consistent);
    assert_eq!(be.table, Some(StickTable::ip(1 << 20, Duration::from_secs(3600))));
    assert!(matches!(be.stick.as_slice(), [r] if r.kind == fulcrum_model::StickKind::On
        && r.sample.fetch == fulcrum_model::rules::SampleFetch::Src && r.table.is_none()));
}

#[test]
fn cloudstack_cookie_insert() {
    let (_, _, be) = cluster_web("cloudstack-cookie-insert.cfg", ("utilisateur", "motdepasse"));
    let cookie = be.cookie.expect("cookie");
    assert_eq!((cookie.name.as_str(), cookie.mode), ("SRVNAME", CookieMode::Insert));
    assert!(cookie.indirect && cookie.nocache && !cookie.httponly && !cookie.preserve);
    let values: Vec<Option<&str>> = be.servers.iter().map(|s| s.cookie.as_deref()).collect();
    assert_eq!(values, [Some("WeB1"), Some("WeB2")]);
}

#[test]
fn cloudstack_cookie_prefix() {
    let (_, _, be) = cluster_web("cloudstack-cookie-prefix.cfg", ("utilisateur", "motdepasse"));
    let cookie = be.cookie.expect("cookie");
    assert_eq!((cookie.name.as_str(), cookie.mode), ("PHPSESSID", CookieMode::Prefix));
    assert!(cookie.indirect && cookie.nocache);
}

#[test]
fn cloudstack_keepalive() {
    let (_, fe, be) = cluster_web("cloudstack-keepalive.cfg", ("utilisateur", "motdepasse"));
    assert_eq!((fe.conn_mode, be.conn_mode), (ConnMode::ServerClose, ConnMode::ServerClose));
    assert_eq!(fe.timeout_http_keep_alive, Duration::from_millis(3000));
}

#[test]
fn examples_combine_with_duplicate_names_reported() {
    let files = [example("cloudstack-haproxy.cfg"), example("cloudstack-listen.cfg")];
    let loaded = load_files(&files, &LoadOptions::default()).expect("two distinct files combine");
    assert_eq!(loaded.model.frontends.len(), 2);
    let files = [example("cloudstack-listen.cfg"), example("cloudstack-stick.cfg")];
    let errors = load_files(&files, &LoadOptions::default()).expect_err("same names twice");
    let dup = errors.iter().find(|e| e.message == "frontend 'cluster_web' is defined twice").expect("duplicate");
    assert!(dup.file.ends_with("cloudstack-stick.cfg"));
    let first = format!("cloudstack-listen.cfg:{}", line_of("cloudstack-listen.cfg", "listen cluster_web"));
    assert!(dup.hint.as_deref().is_some_and(|h| h.contains(&first)), "{dup}");
    assert!(errors.iter().any(|e| e.message.contains("address 192.0.2.10:80 is bound twice")));
}
