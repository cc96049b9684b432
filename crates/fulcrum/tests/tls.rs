//! TLS termination (`bind ... ssl crt ...`) with real peers: certificates and a CA made by
//! `openssl`, curl and `openssl s_client` as the clients, fulcrum's own test origins behind.
//! The certificate is chosen by SNI (exact names, wildcards, the first as default), clients
//! verify it against the CA; client certificates are required and read by ACLs; broken
//! certificate files are errors naming the file; a reload serves a renewed certificate.
mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_addr, temp_dir, Fulcrum};
use fulcrum_testkit::Origin;

/// The defaults section of every test configuration.
const DEFAULTS: &str =
    "defaults\n    mode http\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\n";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A certificate for `cn` with `sans` (DNS names), signed by the CA in `dir`: `NAME.pem` holds
/// the certificate then its key, as HAProxy wants it; `extra` adds X.509 extensions.
fn make_cert(dir: &Path, name: &str, cn: &str, sans: &[&str], extra: &str) {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let crt = format!("{name}.crt");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/O=Fulcrum Test/CN={cn}"),
        ],
    );
    // A v3 certificate (an empty extension file would make a v1 one).
    let mut ext = String::from("basicConstraints=CA:FALSE\n");
    if !sans.is_empty() {
        let list: Vec<String> = sans.iter().map(|s| format!("DNS:{s}")).collect();
        ext.push_str(&format!("subjectAltName={}\n", list.join(",")));
    }
    ext.push_str(extra);
    std::fs::write(dir.join(format!("{name}.ext")), ext).expect("ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
    let pem = [std::fs::read(dir.join(&crt)).expect("crt"), std::fs::read(dir.join(&key)).expect("key")].concat();
    std::fs::write(dir.join(format!("{name}.pem")), pem).expect("pem");
}

/// A test CA in `dir`: `ca.pem` and `ca.key`, subject `subject`.
fn make_ca(dir: &Path, subject: &str) {
    let args = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(dir, &[&args[..], &["-keyout", "ca.key", "-out", "ca.pem", "-subj", subject, "-days", "2"]].concat());
}

fn setup() -> std::path::PathBuf {
    let dir = temp_dir("tls");
    make_ca(&dir, "/CN=fulcrum test CA");
    dir
}

/// `curl https://HOST:PORT/PATH` resolved to 127.0.0.1, verifying against the test CA: the
/// status code, or None when the TLS handshake (or its verification) failed.
fn curl(dir: &Path, bind: SocketAddr, host: &str, path: &str, extra: &[&str]) -> Option<(u16, String)> {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "--cacert", "ca.pem", "-w", "\n%{http_code}", "--resolve"])
        .arg(format!("{host}:{}:127.0.0.1", bind.port()))
        .args(extra)
        .arg(format!("https://{host}:{}{path}", bind.port()))
        .current_dir(dir)
        .stderr(Stdio::null())
        .output()
        .expect("curl");
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n')?;
    Some((code.trim().parse().ok()?, body.to_string()))
}

/// The subject of the certificate fulcrum presents for `sni` (None: no server name sent).
fn served_subject(bind: SocketAddr, sni: Option<&str>) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &bind.to_string()]);
    match sni {
        Some(name) => cmd.args(["-servername", name]),
        None => cmd.arg("-noservername"),
    };
    let out = cmd.stdin(Stdio::null()).stderr(Stdio::null()).output().expect("s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().find(|l| l.starts_with("subject=")).unwrap_or_default().to_string()
}

#[test]
fn https_is_served_with_the_certificate_for_each_name() {
    let dir = setup();
    make_cert(&dir, "site", "www.example.com", &["www.example.com", "*.apps.example.com"], "");
    make_cert(&dir, "other", "other.example.net", &[], "");
    let origin = Origin::spawn("web", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let bind = free_addr();
    let cfg = format!(
        "global\n    ssl-default-bind-options ssl-min-ver TLSv1.2\n\
         defaults\n    mode http\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\n\
         frontend fe\n    bind {bind} ssl crt {d}/site.pem crt {d}/other.pem alpn h2,http/1.1\n    option httplog\n    default_backend be\n\
         backend be\n    server web {}\n",
        origin.addr,
        d = dir.display()
    );
    let f = Fulcrum::start("tls.cfg", &cfg, bind);
    // Each name gets its certificate: curl verifies it against the CA and the name.
    for host in ["www.example.com", "shop.apps.example.com", "other.example.net"] {
        let got = curl(&dir, bind, host, "/", &[]);
        assert_eq!(got.map(|(c, b)| (c, b.contains("served by web"))), Some((200, true)), "{host}");
    }
    // A name no certificate has: the first one is served (and curl refuses it for that name).
    assert!(served_subject(bind, Some("nobody.example.org")).contains("www.example.com"));
    assert!(served_subject(bind, None).contains("www.example.com"));
    assert!(served_subject(bind, Some("other.example.net")).contains("other.example.net"));
    assert_eq!(curl(&dir, bind, "nobody.example.org", "/", &[]), None);
    // ALPN: curl asks for h2 and gets it.
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_version}", "--cacert", "ca.pem", "--http2", "--resolve"])
        .arg(format!("www.example.com:{}:127.0.0.1", bind.port()))
        .arg(format!("https://www.example.com:{}/", bind.port()))
        .current_dir(&dir)
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2");
    // The access log marks the frontend as reached over TLS, as HAProxy does.
    f.wait_log(" fe~ be/web ", Duration::from_secs(5));
    // A client speaking plain HTTP to the TLS port gets no answer in HTTP.
    let reply = common::raw(bind, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(!reply.contains("HTTP/1.1 200"), "{reply}");
    // TLS 1.1 is refused, 1.2 and 1.3 are spoken.
    for (flag, ok) in [("-tls1_1", false), ("-tls1_2", true), ("-tls1_3", true)] {
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &bind.to_string(), flag, "-servername", "www.example.com"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .expect("s_client");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.contains("Cipher is TLS") || text.contains("Cipher is ECDHE"), ok, "{flag}: {text}");
    }
}

#[test]
fn acls_route_by_what_tls_negotiated_and_client_certificates_are_checked() {
    let dir = setup();
    make_cert(&dir, "site", "www.example.com", &["www.example.com", "api.example.com"], "");
    make_cert(&dir, "alice", "alice", &[], "extendedKeyUsage=clientAuth\n");
    // A client certificate from a CA fulcrum does not trust.
    let rogue = dir.join("rogue");
    std::fs::create_dir_all(&rogue).expect("dir");
    make_ca(&rogue, "/CN=rogue CA");
    make_cert(&rogue, "mallory", "mallory", &[], "extendedKeyUsage=clientAuth\n");
    let web = Origin::spawn("web", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let api = Origin::spawn("api", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let admin = Origin::spawn("admin", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let (open, mtls) = (free_addr(), free_addr());
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind {open} ssl crt {d}/site.pem\n    bind {mtls} ssl crt {d}/site.pem verify optional ca-file {d}/ca.pem\n\
         \x20   acl api_name ssl_fc_sni api.example.com\n    acl tls13 ssl_fc_protocol TLSv1.3\n\
         \x20   acl has_cert ssl_c_used\n    acl is_alice ssl_c_s_dn -m end /CN=alice\n    acl verified ssl_c_verify 0\n\
         \x20   use_backend admin if has_cert is_alice verified\n    use_backend api if api_name tls13\n    default_backend web\n\
         backend web\n    server web {}\nbackend api\n    server api {}\nbackend admin\n    server admin {}\n",
        web.addr,
        api.addr,
        admin.addr,
        d = dir.display()
    );
    let _f = Fulcrum::start("mtls.cfg", &cfg, open);
    let served =
        |bind, host, extra: &[&str]| curl(&dir, bind, host, "/", extra).map(|(_, body)| body.trim().to_string());
    let by = |name: &str| Some(format!("served by {name}"));
    assert_eq!(served(open, "www.example.com", &[]), by("web"));
    assert_eq!(served(open, "api.example.com", &[]), by("api"));
    // TLS 1.2 is not 1.3: the api rule does not hold.
    assert_eq!(served(open, "api.example.com", &["--tls-max", "1.2"]), by("web"));
    // verify optional: no certificate is fine; alice's (signed by the CA) routes to admin;
    // mallory's (another CA) ends the handshake.
    assert_eq!(served(mtls, "www.example.com", &[]), by("web"));
    let alice = ["--cert", "alice.crt", "--key", "alice.key"];
    assert_eq!(served(mtls, "www.example.com", &alice), by("admin"));
    let mallory = ["--cert", "rogue/mallory.crt", "--key", "rogue/mallory.key"];
    assert_eq!(served(mtls, "www.example.com", &mallory), None);
    // Offered on the bind without `verify`, alice's certificate is not even asked for.
    assert_eq!(served(open, "www.example.com", &alice), by("web"));
}

#[test]
fn verify_required_refuses_clients_without_a_certificate() {
    let dir = setup();
    make_cert(&dir, "site", "www.example.com", &["www.example.com"], "");
    make_cert(&dir, "alice", "alice", &[], "extendedKeyUsage=clientAuth\n");
    let web = Origin::spawn("web", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let bind = free_addr();
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind {bind} ssl crt {d}/site.pem verify required ca-file {d}/ca.pem\n    default_backend web\n\
         backend web\n    server web {}\n",
        web.addr,
        d = dir.display()
    );
    let _f = Fulcrum::start("required.cfg", &cfg, bind);
    assert_eq!(curl(&dir, bind, "www.example.com", "/", &[]), None);
    let alice = ["--cert", "alice.crt", "--key", "alice.key"];
    assert_eq!(curl(&dir, bind, "www.example.com", "/", &alice).map(|(c, _)| c), Some(200));
    // Other clients are still served while the refused ones come and go.
    for _ in 0..3 {
        assert_eq!(curl(&dir, bind, "www.example.com", "/", &[]), None);
        assert_eq!(curl(&dir, bind, "www.example.com", "/", &alice).map(|(c, _)| c), Some(200));
    }
}

/// `fulcrum check` on a config whose bind line is `bind 127.0.0.1:1 ssl OPTIONS`: its exit
/// status and its messages.
fn check(dir: &Path, options: &str) -> (bool, String) {
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:1 ssl {options}\n    default_backend be\nbackend be\n    server s 127.0.0.1:2\n"
    );
    let path = dir.join("check.cfg");
    std::fs::write(&path, cfg).expect("write");
    let out = Command::new(common::bin()).args(["check", "-c"]).arg(&path).output().expect("check");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn broken_certificates_are_errors_naming_the_line_and_the_file() {
    let dir = setup();
    make_cert(&dir, "good", "good.example", &["good.example"], "");
    make_cert(&dir, "second", "second.example", &["second.example"], "");
    let d = dir.display();
    assert!(check(&dir, &format!("crt {d}/good.pem")).0);
    // A certificate without its key (and no good.crt.key beside it).
    let (ok, out) = check(&dir, &format!("crt {d}/good.crt"));
    assert!(!ok && out.contains("check.cfg:7") && out.contains("good.crt: no private key"), "{out}");
    // ... which is found in FILE.key.
    std::fs::copy(dir.join("good.key"), dir.join("good.crt.key")).expect("copy");
    assert!(check(&dir, &format!("crt {d}/good.crt")).0);
    // A key that belongs to another certificate.
    let mixed =
        [std::fs::read(dir.join("good.crt")).expect("crt"), std::fs::read(dir.join("second.key")).expect("key")]
            .concat();
    std::fs::write(dir.join("mixed.pem"), mixed).expect("write");
    let (ok, out) = check(&dir, &format!("crt {d}/mixed.pem"));
    assert!(!ok && out.contains("mixed.pem: the private key does not match the certificate"), "{out}");
    // A missing file, a file that is not PEM.
    let (ok, out) = check(&dir, &format!("crt {d}/missing.pem"));
    assert!(!ok && out.contains("missing.pem: cannot read it"), "{out}");
    std::fs::write(dir.join("junk.pem"), "not a certificate\n").expect("write");
    let (ok, out) = check(&dir, &format!("crt {d}/junk.pem"));
    assert!(!ok && out.contains("junk.pem: no certificate"), "{out}");
    // An expired certificate (signed for 2020 by `openssl ca`).
    std::fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\ndefault_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n",
    )
    .expect("write");
    std::fs::write(dir.join("index.txt"), "").expect("write");
    std::fs::write(dir.join("serial"), "1000\n").expect("write");
    openssl(
        &dir,
        &[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-cert",
            "ca.pem",
            "-keyfile",
            "ca.key",
            "-in",
            "good.csr",
            "-out",
            "old.crt",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200102000000Z",
            "-notext",
        ],
    );
    let old =
        [std::fs::read(dir.join("old.crt")).expect("crt"), std::fs::read(dir.join("good.key")).expect("key")].concat();
    std::fs::write(dir.join("old.pem"), old).expect("write");
    let (ok, out) = check(&dir, &format!("crt {d}/old.pem"));
    assert!(!ok && out.contains("old.pem: the certificate expired on 2020-01-02"), "{out}");
    // Settings rustls cannot honour, and ones that leave nothing.
    let (ok, out) = check(&dir, &format!("crt {d}/good.pem ssl-max-ver TLSv1.1"));
    assert!(!ok && out.contains("no TLS version left"), "{out}");
    let (ok, out) = check(&dir, &format!("crt {d}/good.pem ciphers DHE-RSA-AES128-SHA:RC4-MD5"));
    assert!(!ok && out.contains("none is a TLS 1.2 suite rustls has"), "{out}");
    let (ok, out) = check(&dir, &format!("crt {d}/good.pem verify required"));
    assert!(!ok && out.contains("needs 'ca-file FILE'"), "{out}");
    let (ok, out) = check(&dir, "");
    assert!(!ok && out.contains("at least one certificate"), "{out}");
    // A crt-list with a bad line names the list's line.
    std::fs::write(dir.join("list.txt"), format!("{d}/good.pem good.example\n{d}/missing.pem x.example\n"))
        .expect("write");
    let (ok, out) = check(&dir, &format!("crt-list {d}/list.txt"));
    assert!(!ok && out.contains("list.txt:2:") && out.contains("missing.pem"), "{out}");
    // A directory loads every certificate in it (keys and other extras skipped).
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).expect("dir");
    for name in ["good.pem", "second.pem"] {
        std::fs::copy(dir.join(name), certs.join(name)).expect("copy");
    }
    std::fs::copy(dir.join("good.key"), certs.join("good.pem.key")).expect("copy");
    assert!(check(&dir, &format!("crt {}", certs.display())).0);
}

#[test]
fn crt_lists_filter_names_and_a_reload_serves_a_renewed_certificate() {
    let dir = setup();
    make_cert(&dir, "one", "one.example", &["one.example", "shared.example"], "");
    make_cert(&dir, "two", "two.example", &["two.example", "shared.example"], "");
    make_cert(&dir, "three", "three.example", &["three.example"], "");
    let d = dir.display();
    // `two` is served for shared.example by the list's filter, whatever its certificate says
    // (and `one` is kept out of that name by `!shared.example`).
    // `three` serves a wildcard, except one name under it.
    let list =
        "# certificates\none.pem one.example !shared.example\ntwo.pem\nthree.pem *.wild.example !admin.wild.example\n";
    std::fs::write(dir.join("list.txt"), list).expect("write");
    std::fs::copy(dir.join("one.pem"), dir.join("live.pem")).expect("copy");
    let web = Origin::spawn("web", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let (listed, live) = (free_addr(), free_addr());
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind {listed} ssl crt-list {d}/list.txt\n    bind {live} ssl crt {d}/live.pem\n    default_backend web\n\
         backend web\n    server web {}\n",
        web.addr
    );
    let f = Fulcrum::start("list.cfg", &cfg, listed);
    assert!(served_subject(listed, Some("shared.example")).contains("two.example"));
    assert!(served_subject(listed, Some("one.example")).contains("one.example"));
    assert!(served_subject(listed, Some("x.wild.example")).contains("three.example"));
    // The excluded name falls back to the default certificate.
    assert!(served_subject(listed, Some("admin.wild.example")).contains("one.example"));
    assert!(served_subject(live, Some("anything")).contains("one.example"));
    // A keep-alive connection open across the reload keeps being served.
    let mut before = std::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &live.to_string(), "-servername", "one.example"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("s_client");
    // The certificate is renewed in place, then SIGHUP.
    std::fs::copy(dir.join("two.pem"), dir.join("live.pem")).expect("copy");
    f.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !served_subject(live, Some("anything")).contains("two.example") {
        assert!(std::time::Instant::now() < deadline, "the renewed certificate is not served:\n{}", f.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    use std::io::{Read, Write};
    let mut stdin = before.stdin.take().expect("stdin");
    stdin.write_all(b"GET / HTTP/1.1\r\nHost: one.example\r\nConnection: close\r\n\r\n").expect("write");
    let mut out = String::new();
    let _ = before.stdout.take().expect("stdout").read_to_string(&mut out);
    let _ = before.wait();
    assert!(out.contains("served by web"), "{out}");
}

/// `openssl s_client -quiet` to `bind` with `sni`: writes `input`, then reads until the
/// connection closes or `wait` passes; what came back.
fn s_client(bind: SocketAddr, sni: &str, input: &[u8], wait: Duration) -> String {
    use std::io::{Read, Write};
    let mut child = Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &bind.to_string(), "-servername", sni])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("s_client");
    child.stdin.as_mut().expect("stdin").write_all(input).expect("write");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let deadline = std::time::Instant::now() + wait;
    while std::time::Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned()
}

/// A TCP server that reads one line per connection and answers `NAME:LINE`, then closes.
fn line_server(name: &'static str) -> SocketAddr {
    use std::io::{BufRead, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let mut reader = std::io::BufReader::new(stream);
            let mut line = String::new();
            if reader.read_line(&mut line).is_ok() {
                let _ = reader.get_mut().write_all(format!("{name}:{line}").as_bytes());
            }
        }
    });
    addr
}

#[test]
fn mode_tcp_terminates_tls_and_routes_by_the_negotiated_name() {
    let dir = setup();
    make_cert(&dir, "site", "ldap.example.com", &["ldap.example.com", "db.example.com"], "");
    let (ldap, db) = (line_server("ldap"), line_server("db"));
    let bind = free_addr();
    let cfg = format!(
        "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\n\
         frontend fe\n    bind {bind} ssl crt {d}/site.pem\n    option tcplog\n\
         \x20   acl to_db ssl_fc_sni db.example.com\n    use_backend db if to_db\n    default_backend ldap\n\
         backend ldap\n    server l {ldap}\nbackend db\n    server d {db}\n",
        d = dir.display()
    );
    let f = Fulcrum::start("tcp-tls.cfg", &cfg, bind);
    // The server closes after its answer: fulcrum closes the TLS side too, and s_client exits.
    let got = s_client(bind, "ldap.example.com", b"hello\n", Duration::from_secs(10));
    assert_eq!(got, "ldap:hello\n");
    let got = s_client(bind, "db.example.com", b"select 1\n", Duration::from_secs(10));
    assert_eq!(got, "db:select 1\n");
    f.wait_log(" fe~ db/d ", Duration::from_secs(5));
    // One certificate carries both names.
    assert!(served_subject(bind, Some("db.example.com")).contains("ldap.example.com"));
}

#[test]
fn a_websocket_upgrade_works_over_tls() {
    let dir = setup();
    make_cert(&dir, "site", "www.example.com", &["www.example.com"], "");
    let web = Origin::spawn("web", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let bind = free_addr();
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind {bind} ssl crt {d}/site.pem\n    default_backend web\nbackend web\n    server web {}\n",
        web.addr,
        d = dir.display()
    );
    let _f = Fulcrum::start("ws.cfg", &cfg, bind);
    let upgrade =
        b"GET /ws HTTP/1.1\r\nHost: www.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nping over tls";
    // The origin echoes until the client leaves: s_client is stopped after a while.
    let got = s_client(bind, "www.example.com", upgrade, Duration::from_secs(3));
    assert!(got.starts_with("HTTP/1.1 101"), "{got}");
    assert!(got.ends_with("ping over tls"), "{got}");
}

#[test]
fn plain_http_is_redirected_to_https() {
    let dir = setup();
    make_cert(&dir, "site", "www.example.com", &["www.example.com"], "");
    let web = Origin::spawn("web", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let (plain, secure) = (free_addr(), free_addr());
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind {plain}\n    bind {secure} ssl crt {d}/site.pem\n\
         \x20   redirect scheme https code 301 if !{{ ssl_fc }}\n    redirect prefix https://new.example.com code 308 drop-query if {{ path_beg /old }}\n\
         \x20   default_backend web\nbackend web\n    server web {}\n",
        web.addr,
        d = dir.display()
    );
    let _f = Fulcrum::start("redirect.cfg", &cfg, plain);
    let head = |url: &str, host: &str| {
        let out = Command::new("curl")
            .args(["-s", "-D", "-", "-o", "/dev/null", "--cacert", "ca.pem", "--max-time", "10", "-H"])
            .arg(format!("Host: {host}"))
            .arg(url)
            .current_dir(&dir)
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).to_lowercase()
    };
    let got = head(&format!("http://{plain}/a/b?x=1"), "www.example.com");
    assert!(got.starts_with("http/1.1 301"), "{got}");
    assert!(got.contains("location: https://www.example.com/a/b?x=1\r\n"), "{got}");
    // Over TLS the first rule does not hold; the second does for /old, with its code.
    let secure_url = |path: &str| format!("https://www.example.com:{}{path}", secure.port());
    let resolve = format!("www.example.com:{}:127.0.0.1", secure.port());
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null", "--cacert", "ca.pem", "--resolve", &resolve])
        .arg(secure_url("/old/page?q=2"))
        .current_dir(&dir)
        .output()
        .expect("curl");
    let got = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(got.starts_with("http/1.1 308") && got.contains("location: https://new.example.com/old/page\r\n"), "{got}");
    assert_eq!(curl(&dir, secure, "www.example.com", "/new", &[]).map(|(c, _)| c), Some(200));
}

/// HAProxy running `config`; waits until it listens on `listens`.
fn haproxy(dir: &Path, config: &str, listens: SocketAddr) -> Option<common::Killed> {
    if Command::new("haproxy").arg("-v").output().is_err() {
        fulcrum_testkit::skip("TLS with HAProxy", "haproxy");
        return None;
    }
    let path = dir.join(format!("haproxy-{}.cfg", listens.port()));
    std::fs::write(&path, config).expect("write");
    let child =
        Command::new("haproxy").arg("-db").arg("-f").arg(&path).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
    let child = common::Killed(child.expect("start haproxy"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(listens).is_err() {
        assert!(std::time::Instant::now() < deadline, "haproxy does not listen on {listens}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(child)
}

#[test]
fn tls_to_servers_with_haproxy_on_both_sides() {
    let dir = setup();
    make_cert(&dir, "backend", "backend.example", &["backend.example"], "");
    make_cert(&dir, "site", "www.example.com", &["www.example.com"], "");
    // HAProxy as the TLS server behind fulcrum: it answers who it is and what SNI it saw.
    let hap_tls = free_addr();
    let backend_cfg = format!(
        "defaults\n    mode http\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\n\
         frontend tls\n    bind {hap_tls} ssl crt {d}/backend.pem\n\
         \x20   http-request return status 200 content-type text/plain lf-string \"haproxy sni=%[ssl_fc_sni] proto=%[ssl_fc_protocol]\"\n",
        d = dir.display()
    );
    let Some(_backend) = haproxy(&dir, &backend_cfg, hap_tls) else { return };
    // A second CA that did not sign HAProxy's certificate.
    let other = dir.join("other");
    std::fs::create_dir_all(&other).expect("dir");
    make_ca(&other, "/CN=other CA");
    let (front, front_tls) = (free_addr(), free_addr());
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind {front}\n    bind {front_tls} ssl crt {d}/site.pem\n\
         \x20   use_backend wrong_ca if {{ path_beg /wrong }}\n    use_backend no_verify if {{ path_beg /any }}\n    default_backend good\n\
         backend good\n    server h {hap_tls} ssl verify required ca-file {d}/ca.pem sni str(backend.example) check inter 500ms\n\
         backend wrong_ca\n    retries 0\n    server h {hap_tls} ssl verify required ca-file {d}/other/ca.pem sni str(backend.example)\n\
         backend no_verify\n    server h {hap_tls} ssl verify none\n",
        d = dir.display()
    );
    let f = Fulcrum::start("to-tls.cfg", &cfg, front);
    let get = |path: &str| {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "10", "-w", "\n%{http_code}"])
            .arg(format!("http://{front}{path}"))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Verified against the CA, with the SNI it was told to send; keep-alive connections to
    // HAProxy are reused for the next requests.
    for _ in 0..3 {
        assert_eq!(get("/"), "haproxy sni=backend.example proto=TLSv1.3\n200");
    }
    // The wrong CA: the handshake fails, the client gets 503 (no retry was allowed).
    let wrong = get("/wrong");
    assert!(wrong.ends_with("\n503"), "{wrong}");
    // verify none: no SNI sent, any certificate accepted.
    assert_eq!(get("/any"), "haproxy sni= proto=TLSv1.3\n200");
    // The health check speaks TLS too: the server is up, and stays so.
    std::thread::sleep(Duration::from_millis(1200));
    assert!(!f.stderr().contains("is DOWN"), "{}", f.stderr());
    // HAProxy as a TLS client in front of fulcrum: plain HTTP in, TLS to fulcrum's ssl bind
    // (verified, with SNI), then TLS again to the HAProxy behind.
    let hap_front = free_addr();
    let front_cfg = format!(
        "defaults\n    mode http\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\n\
         frontend plain\n    bind {hap_front}\n    default_backend fulcrum\n\
         backend fulcrum\n    server f {front_tls} ssl verify required ca-file {d}/ca.pem sni str(www.example.com)\n",
        d = dir.display()
    );
    let Some(_front) = haproxy(&dir, &front_cfg, hap_front) else { return };
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .arg(format!("http://{hap_front}/"))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "haproxy sni=backend.example proto=TLSv1.3");
}

#[test]
fn a_server_that_requires_verification_needs_a_ca_file() {
    let dir = setup();
    let cfg = "defaults\n    mode http\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\n\
               frontend fe\n    bind 127.0.0.1:1\n    default_backend be\nbackend be\n    server s 127.0.0.1:2 ssl\n";
    let path = dir.join("verify.cfg");
    std::fs::write(&path, cfg).expect("write");
    let out = Command::new(common::bin()).args(["check", "-c"]).arg(&path).output().expect("check");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && text.contains("verify.cfg:10") && text.contains("verify none"), "{text}");
    // `ssl-server-verify none` in global, or `verify none` on the line, accept it.
    std::fs::write(&path, format!("global\n    ssl-server-verify none\n{cfg}")).expect("write");
    let out = Command::new(common::bin()).args(["check", "-c"]).arg(&path).output().expect("check");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn an_ocsp_response_beside_the_certificate_is_stapled() {
    let dir = setup();
    // The certificate is signed by `openssl ca`, whose index the OCSP responder reads.
    std::fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\ndefault_md=sha256\npolicy=p\ndefault_days=2\n[p]\ncommonName=supplied\n",
    )
    .expect("write");
    std::fs::write(dir.join("index.txt"), "").expect("write");
    std::fs::write(dir.join("serial"), "2000\n").expect("write");
    std::fs::write(dir.join("site.ext"), "subjectAltName=DNS:www.example.com\n").expect("write");
    let newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        &dir,
        &[&["req"][..], &newkey, &["-keyout", "site.key", "-out", "site.csr", "-subj", "/CN=www.example.com"]].concat(),
    );
    openssl(
        &dir,
        &[
            "ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key", "-in", "site.csr", "-out",
            "site.crt", "-notext", "-extfile", "site.ext",
        ],
    );
    let pem =
        [std::fs::read(dir.join("site.crt")).expect("crt"), std::fs::read(dir.join("site.key")).expect("key")].concat();
    std::fs::write(dir.join("site.pem"), pem).expect("pem");
    openssl(&dir, &["ocsp", "-issuer", "ca.pem", "-cert", "site.crt", "-reqout", "req.der", "-no_nonce"]);
    openssl(
        &dir,
        &[
            "ocsp",
            "-index",
            "index.txt",
            "-rsigner",
            "ca.pem",
            "-rkey",
            "ca.key",
            "-CA",
            "ca.pem",
            "-reqin",
            "req.der",
            "-respout",
            "site.pem.ocsp",
            "-ndays",
            "1",
        ],
    );
    let web = Origin::spawn("web", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let bind = free_addr();
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind {bind} ssl crt {d}/site.pem\n    default_backend web\nbackend web\n    server web {}\n",
        web.addr,
        d = dir.display()
    );
    let _f = Fulcrum::start("ocsp.cfg", &cfg, bind);
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &bind.to_string(),
            "-servername",
            "www.example.com",
            "-status",
            "-CAfile",
            "ca.pem",
        ])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("OCSP Response Status: successful"), "{text}");
    assert!(text.contains("Cert Status: good"), "{text}");
}

#[test]
fn certificates_are_renewed_under_load_without_a_failed_request() {
    let dir = setup();
    make_cert(&dir, "one", "www.example.com", &["www.example.com"], "");
    make_cert(&dir, "two", "www.example.com", &["www.example.com"], "");
    std::fs::copy(dir.join("one.pem"), dir.join("live.pem")).expect("copy");
    let web = Origin::spawn("web", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let bind = free_addr();
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind {bind} ssl crt {d}/live.pem\n    default_backend web\nbackend web\n    server web {}\n",
        web.addr,
        d = dir.display()
    );
    let f = Fulcrum::start("renew.cfg", &cfg, bind);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Load: curl processes, each with five requests on one keep-alive connection, until told
    // to stop (bounded: at most 200 rounds).
    let load = {
        let (dir, stop) = (dir.clone(), stop.clone());
        std::thread::spawn(move || {
            let url = format!("https://www.example.com:{}/", bind.port());
            let resolve = format!("www.example.com:{}:127.0.0.1", bind.port());
            let mut codes = Vec::new();
            for _ in 0..200 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let mut cmd = Command::new("curl");
                cmd.args([
                    "-s",
                    "--max-time",
                    "10",
                    "--cacert",
                    "ca.pem",
                    "--resolve",
                    &resolve,
                    "-w",
                    "%{http_code}\n",
                ]);
                for _ in 0..5 {
                    cmd.args(["-o", "/dev/null", &url]);
                }
                let out = cmd.current_dir(&dir).output().expect("curl");
                codes.extend(String::from_utf8_lossy(&out.stdout).lines().map(str::to_string));
                if !out.status.success() {
                    codes.push(format!("curl exit {:?}", out.status.code()));
                }
            }
            codes
        })
    };
    for round in 0..4 {
        std::thread::sleep(Duration::from_millis(300));
        let next = if round % 2 == 0 { "two.pem" } else { "one.pem" };
        std::fs::copy(dir.join(next), dir.join("live.pem")).expect("copy");
        f.signal("HUP");
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let codes = load.join().expect("load");
    assert!(codes.len() >= 20, "too little load: {codes:?}");
    let failed: Vec<&String> = codes.iter().filter(|c| c.as_str() != "200").collect();
    assert!(failed.is_empty(), "{} of {} requests failed: {failed:?}\n{}", failed.len(), codes.len(), f.stderr());
}

#[test]
fn the_native_format_configures_tls_both_ways() {
    let dir = setup();
    make_cert(&dir, "site", "www.example.com", &["www.example.com"], "");
    make_cert(&dir, "backend", "backend.example", &["backend.example"], "");
    let web = Origin::spawn("web", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let (plain, secure, inner) = (free_addr(), free_addr(), free_addr());
    // The outer frontend re-encrypts to the inner one (same process), which verifies nothing
    // of its client and forwards in the clear to the origin.
    let toml = format!(
        r#"
[[frontend]]
name = "outer"
bind = ["{plain}"]
default_backend = "inner"
[[frontend.tls]]
bind = ["{secure}"]
certificates = ["site.pem"]
alpn = ["http/1.1"]
min_version = "TLSv1.2"

[[frontend]]
name = "inner"
default_backend = "web"
[[frontend.tls]]
bind = "{inner}"
certificates = ["backend.pem"]

[[backend]]
name = "inner"
[[backend.server]]
name = "tls"
address = "{inner}"
tls = {{ ca_file = "ca.pem", sni = "backend.example" }}

[[backend]]
name = "web"
[[backend.server]]
name = "web"
address = "{}"
"#,
        web.addr
    );
    let path = dir.join("fulcrum.toml");
    std::fs::write(&path, &toml).expect("write");
    let mut child = common::Killed(
        Command::new(common::bin())
            .args(["run", "-c"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("fulcrum"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(secure).is_err() {
        assert!(std::time::Instant::now() < deadline, "fulcrum does not listen");
        assert!(child.0.try_wait().ok().flatten().is_none(), "fulcrum exited");
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = curl(&dir, secure, "www.example.com", "/", &[]).map(|(c, b)| (c, b.trim().to_string()));
    assert_eq!(got, Some((200, "served by web".to_string())));
    let out =
        Command::new("curl").args(["-s", "--max-time", "10"]).arg(format!("http://{plain}/")).output().expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "served by web");
    // A server without a CA file is an error naming the line, as in haproxy.cfg.
    std::fs::write(&path, toml.replace("ca_file = \"ca.pem\", ", "")).expect("write");
    let out = Command::new(common::bin()).args(["check", "-c"]).arg(&path).output().expect("check");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && text.contains("fulcrum.toml:") && text.contains("verify none"), "{text}");
}

/// `openssl s_client` to `bind` for `sni`, saving its session to `out` and resuming from `from`:
/// whether the handshake was a resumption.
fn resumed(dir: &Path, bind: SocketAddr, from: Option<&str>, out: &str, extra: &[&str]) -> bool {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &bind.to_string(), "-servername", "www.example.com", "-sess_out", out]);
    if let Some(from) = from {
        cmd.args(["-sess_in", from]);
    }
    // TLS 1.3 tickets come after the handshake: a request and its answer make sure they did.
    let mut child = cmd
        .args(extra)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("s_client");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        let _ = stdin.write_all(b"GET / HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n");
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = child.wait_with_output().expect("s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().any(|l| l.starts_with("Reused,"))
}

#[test]
fn sessions_resume_by_ticket_and_by_session_id_across_a_reload() {
    let dir = setup();
    make_cert(&dir, "site", "www.example.com", &["www.example.com"], "");
    let web = Origin::spawn("web", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let (tickets, ids) = (free_addr(), free_addr());
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind {tickets} ssl crt {d}/site.pem\n    bind {ids} ssl crt {d}/site.pem no-tls-tickets\n\
         \x20   default_backend web\nbackend web\n    server web {}\n",
        web.addr,
        d = dir.display()
    );
    let f = Fulcrum::start("resume.cfg", &cfg, tickets);
    // TLS 1.3 by ticket; TLS 1.2 by ticket and, without tickets, by session ID.
    // (`no-tls-tickets` under TLS 1.3: stateful tickets naming a cached session, as OpenSSL.)
    for (bind, version) in [(tickets, "-tls1_3"), (tickets, "-tls1_2"), (ids, "-tls1_2"), (ids, "-tls1_3")] {
        assert!(!resumed(&dir, bind, None, "s.pem", &[version]), "first handshake {bind} {version}");
        assert!(resumed(&dir, bind, Some("s.pem"), "s2.pem", &[version]), "resumption {bind} {version}");
    }
    // A reload keeps the ticket keys and the session cache.
    assert!(!resumed(&dir, tickets, None, "t.pem", &["-tls1_3"]));
    assert!(!resumed(&dir, ids, None, "i.pem", &["-tls1_2"]));
    f.signal("HUP");
    f.wait_log("reload applied", Duration::from_secs(10));
    assert!(resumed(&dir, tickets, Some("t.pem"), "t2.pem", &["-tls1_3"]), "ticket after reload");
    assert!(resumed(&dir, ids, Some("i.pem"), "i2.pem", &["-tls1_2"]), "session id after reload");
}

#[test]
fn mode_tcp_reencrypts_to_a_tls_server_and_half_closes_through_it() {
    let dir = setup();
    make_cert(&dir, "backend", "backend.example", &["backend.example"], "");
    // HAProxy terminates the TLS fulcrum opens and relays to a server that answers once the
    // client has half-closed.
    let echo = common::tagged_server("echo", 4);
    let hap = free_addr();
    let hap_cfg = format!(
        "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\n\
         frontend tls\n    bind {hap} ssl crt {d}/backend.pem\n    default_backend echo\nbackend echo\n    server e {echo}\n",
        d = dir.display()
    );
    let Some(_hap) = haproxy(&dir, &hap_cfg, hap) else { return };
    let bind = free_addr();
    let cfg = format!(
        "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\n\
         frontend fe\n    bind {bind}\n    default_backend tls\n\
         backend tls\n    server h {hap} ssl verify required ca-file {d}/ca.pem sni str(backend.example)\n",
        d = dir.display()
    );
    let _f = Fulcrum::start("tcp-to-tls.cfg", &cfg, bind);
    use std::io::{Read, Write};
    for message in [&b"hello"[..], &[7u8; 200_000][..]] {
        let mut client = std::net::TcpStream::connect(bind).expect("connect");
        client.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        client.write_all(message).expect("write");
        client.shutdown(std::net::Shutdown::Write).expect("half-close");
        let mut got = Vec::new();
        client.read_to_end(&mut got).expect("read");
        assert_eq!(&got[..5], b"echo:");
        assert_eq!(&got[5..], message, "{} bytes back of {}", got.len() - 5, message.len());
    }
}

#[test]
fn a_proxy_protocol_header_then_tls_from_haproxy() {
    let dir = setup();
    make_cert(&dir, "site", "www.example.com", &["www.example.com"], "");
    let web = Origin::spawn("web", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let (bind, tcp_bind) = (free_addr(), free_addr());
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind {bind} ssl crt {d}/site.pem accept-proxy\n    option forwardfor\n    default_backend web\n\
         frontend tcp\n    mode tcp\n    bind {tcp_bind} ssl crt {d}/site.pem accept-proxy\n    default_backend echo\n\
         backend web\n    server web {}\nbackend echo\n    mode tcp\n    server e {}\n",
        web.addr,
        common::tagged_server("echo", 2),
        d = dir.display()
    );
    let _f = Fulcrum::start("pp-tls.cfg", &cfg, bind);
    // HAProxy sends the PROXY v2 header, then TLS on the same connection (AWS NLB and the
    // like do the same): the client address is the PROXY header's.
    let hap = free_addr();
    let hap_cfg = format!(
        "defaults\n    mode http\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\n\
         frontend plain\n    bind {hap}\n    default_backend f\n\
         backend f\n    server f {bind} send-proxy-v2 ssl verify required ca-file {d}/ca.pem sni str(www.example.com)\n",
        d = dir.display()
    );
    let Some(_hap) = haproxy(&dir, &hap_cfg, hap) else { return };
    for _ in 0..3 {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "10"])
            .arg(format!("http://{hap}/headers"))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
        assert!(text.contains("x-forwarded-for: 127.0.0.1"), "{text}");
    }
}
