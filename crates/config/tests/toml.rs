//! fulcrum's TOML format: the example loads, every key is checked, errors carry lines.
use std::path::{Path, PathBuf};
use std::time::Duration;

use fulcrum_config::*;
use fulcrum_model::*;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name)
}

fn load(text: &str) -> Result<Loaded, Vec<Diagnostic>> {
    load_str(text, Path::new("test.toml"), &LoadOptions::default())
}

fn show(diags: &[Diagnostic]) -> String {
    diags.iter().map(|d| format!("  {d}\n")).collect()
}

fn ok(text: &str) -> Loaded {
    load(text).unwrap_or_else(|errors| panic!("does not load:\n{}", show(&errors)))
}

fn errors(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => panic!("loads, but should not"),
        Err(diags) => diags.iter().filter(|d| d.severity == Severity::Error).map(ToString::to_string).collect(),
    }
}

const MINIMAL: &str = "[[frontend]]\nname = \"web\"\nbind = \"127.0.0.1:8080\"\ndefault_backend = \"app\"\n\n\
                       [[backend]]\nname = \"app\"\n[[backend.server]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"\n";

#[test]
fn example_fulcrum_toml() {
    let loaded = load_files(&[example("fulcrum.toml")], &LoadOptions::default())
        .unwrap_or_else(|e| panic!("examples/fulcrum.toml:\n{}", show(&e)));
    assert!(loaded.warnings.is_empty(), "{}", show(&loaded.warnings));
    let m = &loaded.model;
    assert_eq!(
        (m.global.maxconn, m.global.nbthread, m.global.hard_stop_after),
        (10000, Some(2), Duration::from_secs(30))
    );
    let fe = &m.frontends[0];
    assert_eq!(fe.name, "cloudstack-http");
    assert_eq!(fe.binds, ["0.0.0.0:8080".parse().expect("addr")]);
    assert_eq!(fe.timeout_client, Duration::from_secs(50));
    assert!(fe.httplog && fe.dontlognull);
    assert_eq!(fe.errorfiles.keys().copied().collect::<Vec<_>>(), [503, 504]);
    assert_eq!(fe.use_backends.len(), 2);
    assert_eq!(fe.use_backends[0].condition.alternatives[0].len(), 3, "is_admin has two definitions");
    let stats = fe.stats.as_ref().expect("stats");
    assert_eq!((stats.uri.as_str(), stats.refresh), ("/stats", Some(Duration::from_secs(30))));
    assert!(stats.admin_if.is_some() && !stats.admin);

    let web = m.backend("cloudstack-backend").expect("backend");
    assert_eq!((web.algorithm.clone(), web.retries, web.redispatch), (Algorithm::RoundRobin, 3, true));
    assert_eq!(web.timeout_connect, Duration::from_secs(5));
    let check = web.http_check.as_ref().expect("check");
    assert_eq!((check.method.as_str(), check.uri.as_str()), ("GET", "/client/"));
    assert!(web.servers.iter().all(|s| s.check && s.inter == Duration::from_secs(2)));
    assert_eq!(web.servers.iter().map(|s| s.backup).collect::<Vec<_>>(), [false, false, true]);
    assert_eq!(
        web.cookie.as_ref().map(|c| (c.name.as_str(), c.mode, c.indirect)),
        Some(("SERVERID", CookieMode::Insert, true))
    );

    let api = m.backend("cloudstack-api").expect("backend");
    assert_eq!((api.algorithm.clone(), api.hash_type), (Algorithm::Source, HashType::Consistent));
    assert_eq!(api.table, Some(StickTable::ip(1 << 20, Duration::from_secs(3600))));
    assert!(matches!(api.stick.as_slice(), [r] if r.kind == fulcrum_model::StickKind::On
        && r.sample.fetch == fulcrum_model::rules::SampleFetch::Src && r.table.is_none()));
    assert_eq!(api.conn_mode, ConnMode::ServerClose);
    let check = api.http_check.as_ref().expect("check");
    assert_eq!(check.headers, [("Host".to_string(), "cloudstack.example.com".to_string())]);
    assert_eq!(check.expect.as_ref().map(|e| e.rule.clone()), Some(ExpectRule::Status(vec![(200, 399)])));
    let a = &api.servers[0];
    assert_eq!(
        (a.weight, a.maxconn, a.slowstart, a.inter),
        (10, 200, Some(Duration::from_secs(30)), Duration::from_secs(5))
    );
    assert_eq!(api.servers[1].check_addr, Some("192.168.1.102:8096".parse().expect("addr")));
}

#[test]
fn minimal_and_defaults() {
    let loaded = ok(MINIMAL);
    let server = &loaded.model.backends[0].servers[0];
    assert!(!server.check, "no health table: no check unless asked");
    assert_eq!(server.origin.line, 9);
    assert_eq!(loaded.model.frontends[0].origin.line, 2);
    let loaded = ok(&format!("{MINIMAL}check = true\ninter = 500\nslowstart = \"1m\"\n"));
    let server = &loaded.model.backends[0].servers[0];
    assert_eq!(
        (server.check, server.inter, server.slowstart),
        (true, Duration::from_millis(500), Some(Duration::from_secs(60)))
    );
}

#[test]
fn unknown_keys_and_bad_values_with_lines() {
    let text = "\
[global]
nbthread = 2
acces_log = \"/tmp/x\"

[[frontend]]
name = \"web\"
bind = [\"127.0.0.1:8080\", \"nope\"]
default_backend = \"ap\"
acl = { api = \"path_bgn /api\" }
timeouts = { client = \"5x\", http_requst = \"1s\" }

[[backend]]
name = \"app\"
balance = \"roundrobbin\"
retries = \"3\"
health = { http = { expect = \"stauts 200\" }, rize = 2 }

[[backend.server]]
name = \"a\"
address = \"127.0.0.1:9000\"
wieght = 3
";
    assert_eq!(errors(text), [
        "test.toml:2: unknown key 'nbthread' in [global] (did you mean threads?)",
        "test.toml:3: unknown key 'acces_log' in [global] (did you mean access_log?)",
        "test.toml:7: bind address 'nope' needs a port (HOST:PORT) (e.g. bind = [\"0.0.0.0:80\", \"[::]:80\"])",
        "test.toml:8: frontend 'web' uses backend 'ap', which is not defined (did you mean app?)",
        "test.toml:9: unknown acl criterion 'path_bgn' (did you mean path_beg?)",
        "test.toml:10: 'client': invalid duration '5x' (expected a number with an optional unit: 500ms, 5s, 2m, 1h, 1d; a bare number is milliseconds)",
        "test.toml:10: unknown key 'http_requst' in timeouts of frontend 'web' (did you mean http_request?)",
        "test.toml:14: unknown balance algorithm 'roundrobbin' (did you mean roundrobin?)",
        "test.toml:15: 'retries' must be an integer, not a string",
        "test.toml:16: unknown http-check expect rule 'stauts' (did you mean status?)",
        "test.toml:16: unknown key 'rize' in health of backend 'app' (did you mean rise?)",
        "test.toml:21: unknown key 'wieght' in server 'a' of backend 'app' (did you mean weight?)",
    ]);
}

#[test]
fn syntax_errors_have_lines() {
    let found = errors("[global]\nmaxconn = 10\n\n[[frontend]\nname = \"x\"\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("test.toml:4: invalid TOML: "), "{}", found[0]);
    let found = errors("[global]\nmaxconn = 10\nmaxconn = 11\n");
    assert!(found[0].starts_with("test.toml:3: invalid TOML: "), "{}", found[0]);
    let found = errors(&format!("{MINIMAL}weight = 1979-05-27T07:32:00Z\n"));
    assert_eq!(found, ["test.toml:11: 'weight' must be a string or an integer, not a date"]);
}

#[test]
fn conditions_use_haproxy_syntax() {
    let text = format!(
        "{MINIMAL}\n[[frontend]]\nname = \"api\"\nbind = \"127.0.0.1:8081\"\nacl = {{ v1 = \"path_beg /v1\", local = \"src 127.0.0.0/8\" }}\n\
         [[frontend.use_backend]]\nbackend = \"app\"\nunless = \"v1 or {{ hdr_end(host) -i .example.com }} !local\"\n"
    );
    let loaded = ok(&text);
    let rule = &loaded.model.frontends[1].use_backends[0];
    assert!(rule.condition.unless);
    assert_eq!(rule.condition.alternatives.len(), 2);
    assert_eq!(rule.condition.alternatives[1][0].acl, "{hdr_end(host) -i .example.com}");
    let bad = text.replace("!local", "!locl");
    assert_eq!(errors(&bad), ["test.toml:18: unknown acl 'locl' in condition (did you mean local?)"]);
}

#[test]
fn files_combine_and_later_global_wins() {
    let dir = std::env::temp_dir().join(format!("fulcrum-config-{}-combine", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let a = dir.join("a.toml");
    let b = dir.join("b.cfg");
    std::fs::write(&a, format!("[global]\nmaxconn = 100\nthreads = 4\n{MINIMAL}")).expect("write");
    std::fs::write(&b, "global\n    maxconn 200\ndefaults\n    mode http\nbackend more\n    server s 127.0.0.1:1\n")
        .expect("write");
    let loaded = load_files(&[a.clone(), b.clone()], &LoadOptions::default()).expect("combines");
    let m = &loaded.model;
    assert_eq!((m.global.maxconn, m.global.nbthread), (200, Some(4)));
    assert_eq!(m.backends.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(), ["app", "more"]);
    // A frontend in one file may use a backend from another.
    std::fs::write(&b, "defaults\n    mode http\nbackend app\n    server s 127.0.0.1:1\n").expect("write");
    let errors = load_files(&[a, b], &LoadOptions::default()).expect_err("duplicate backend");
    assert!(
        errors[0]
            .to_string()
            .ends_with("b.cfg:3: backend 'app' is defined twice (first defined at ".to_string().as_str())
            || errors.iter().any(|e| e.message == "backend 'app' is defined twice")
    );
}

#[test]
fn never_panics_on_structured_garbage() {
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let keys = [
        "name",
        "bind",
        "backend",
        "frontend",
        "server",
        "address",
        "weight",
        "health",
        "http",
        "expect",
        "acl",
        "if",
        "unless",
        "use_backend",
        "timeouts",
        "client",
        "stats",
        "cookie",
        "stick_src",
        "size",
        "balance",
        "global",
        "defaults",
        "errorfiles",
        "503",
        "forwardfor",
        "check_address",
        "check_port",
        "admin_if",
    ];
    let values = [
        "\"x\"",
        "1",
        "-1",
        "9999999999999",
        "true",
        "\"1m\"",
        "{}",
        "[]",
        "[\"a\", 1]",
        "{ a = 1 }",
        "\"{ src\"",
        "\"127.0.0.1:80\"",
        "\"roundrobin\"",
        "1.5",
        "1979-05-27",
        "\"status 200\"",
        "\"path_beg /x\"",
        "\"\\\"\"",
    ];
    for _ in 0..400 {
        let mut text = String::new();
        for _ in 0..(next() % 25) {
            match next() % 4 {
                0 => text.push_str(&format!("[[{}]]\n", keys[(next() % keys.len() as u64) as usize])),
                1 => text.push_str(&format!(
                    "[{}.{}]\n",
                    keys[(next() % 4) as usize + 19],
                    keys[(next() % keys.len() as u64) as usize]
                )),
                _ => text.push_str(&format!(
                    "{} = {}\n",
                    keys[(next() % keys.len() as u64) as usize],
                    values[(next() % values.len() as u64) as usize]
                )),
            }
        }
        let _ = load(&text);
    }
    // Deep nesting and huge values are refused or read, never a crash.
    let _ = load(&format!("a = {}", "[".repeat(100_000)));
    let _ = load(&format!("a = {}1{}", "[".repeat(60), "]".repeat(60)));
    let _ = load(&format!("{} = 1", "x".repeat(1_000_000)));
    let _ = load(&format!("[global]\nthreads = {}", "9".repeat(5000)));
}

#[test]
fn documented_examples_are_valid() {
    let doc = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md"))
        .expect("docs/configuration.md");
    let blocks: Vec<&str> = doc.split("```toml\n").skip(1).filter_map(|b| b.split("```").next()).collect();
    assert!(blocks.len() > 10, "found {} toml blocks", blocks.len());
    for block in &blocks {
        if let Err(e) = toml::from_str::<toml::Table>(block) {
            panic!("invalid TOML in docs/configuration.md:\n{block}\n{e}");
        }
    }
    // The first block is a complete file; the frontend example loads with a backend beside it.
    ok(blocks[0]);
    let frontend = blocks.iter().find(|b| b.contains("name = \"www\"")).expect("frontend example");
    let dir = std::env::temp_dir().join(format!("fulcrum-config-{}-docs", std::process::id()));
    std::fs::create_dir_all(dir.join("errors")).expect("dir");
    std::fs::write(dir.join("errors/503.http"), "HTTP/1.0 503 Service Unavailable\r\n\r\n").expect("write");
    let text = format!("{frontend}\n[[backend]]\nname = \"web\"\n[[backend]]\nname = \"api\"\n");
    let loaded =
        load_str(&text, &dir.join("www.toml"), &LoadOptions::default()).unwrap_or_else(|e| panic!("{}", show(&e)));
    assert_eq!(loaded.model.frontends[0].stats.as_ref().map(|s| s.uri.as_str()), Some("/stats"));
}

#[test]
fn layer_4_services_modes_lvs_schedulers_and_persistence() {
    let text = r#"
[[frontend]]
name = "dns"
mode = "udp"
bind = "127.0.0.1:5353"
default_backend = "resolvers"

[[backend]]
name = "resolvers"
mode = "udp"
balance = "mh mh-port mh-fallback"
mh_table_size = 65521
persistence = { timeout = "30s", prefix_v4 = 24 }

[[backend.server]]
name = "r1"
address = "127.0.0.1:53"
"#;
    let loaded = ok(text);
    let fe = &loaded.model.frontends[0];
    assert_eq!((fe.mode, fe.timeout_client), (Mode::Udp, std::time::Duration::from_secs(300)));
    let be = &loaded.model.backends[0];
    let mut mh = Lvs::new(LvsScheduler::Mh);
    (mh.port, mh.fallback, mh.mh_table) = (true, true, 65521);
    assert_eq!(be.algorithm, Algorithm::Lvs(mh));
    assert_eq!(
        be.persistence,
        Some(Persistence { timeout: std::time::Duration::from_secs(30), prefix_v4: 24, prefix_v6: 128 })
    );
    let bad = errors(&text.replace("65521", "4000"));
    assert!(bad.iter().any(|e| e.contains("mh_table_size 4000 is not one of the Maglev table sizes")), "{bad:?}");
    let bad = errors(&text.replace("mh mh-port mh-fallback", "wrr sh-port"));
    assert!(bad.iter().any(|e| e.contains("incompatible scheduler flag 'sh-port'")), "{bad:?}");
    let bad = errors(&text.replace("mode = \"udp\"\nbind", "mode = \"tcp\"\nbind"));
    assert!(
        bad.iter().any(|e| e.contains("frontend 'dns' (mode tcp) cannot use backend 'resolvers' (mode udp)")),
        "{bad:?}"
    );
}

#[test]
fn servers_speak_http2_and_tls_when_told() {
    let text = r#"
[[frontend]]
name = "grpc"
bind = "127.0.0.1:50051"
default_backend = "grpc"

[[backend]]
name = "grpc"
[[backend.server]]
name = "g1"
address = "127.0.0.1:50052"
proto = "h2"
[[backend.server]]
name = "g2"
address = "127.0.0.1:50053"
proto = "h2"
tls = { verify = "none", sni = "grpc.internal" }
"#;
    let loaded = ok(text);
    let servers = &loaded.model.backends[0].servers;
    assert!(servers.iter().all(|s| s.h2));
    assert!(!servers[0].tls.enabled);
    assert!(servers[1].tls.enabled && !servers[1].tls.verify);
    assert_eq!(servers[1].tls.alpn, ["h2"]);
    assert_eq!(servers[1].tls.sni, Some(fulcrum_model::SniSource::Fixed("grpc.internal".into())));
    let bad = text.replace("proto = \"h2\"\ntls", "proto = \"h3\"\ntls");
    assert!(load_str(&bad, std::path::Path::new("t.toml"), &LoadOptions::default()).is_err());
}
