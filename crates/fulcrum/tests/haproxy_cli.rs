//! fulcrum linked as `haproxy`: HAProxy 2.6's command line, messages and exit codes, and the
//! command lines of Debian's haproxy.service, run for real (systemd's notify socket included).
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{free_addr, temp_dir, Origin};

/// A directory with a `haproxy` link to the fulcrum binary.
fn haproxy_link(dir: &Path) -> PathBuf {
    let link = dir.join("haproxy");
    std::os::unix::fs::symlink(common::bin(), &link).expect("symlink");
    link
}

fn haproxy(dir: &Path, args: &[&str]) -> Output {
    Command::new(haproxy_link_once(dir)).args(args).current_dir(dir).output().expect("run haproxy")
}

fn haproxy_link_once(dir: &Path) -> PathBuf {
    let link = dir.join("haproxy");
    if link.exists() {
        link
    } else {
        haproxy_link(dir)
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn cfg(bind: SocketAddr, server: SocketAddr) -> String {
    format!(
        "global\n    maxconn 100\ndefaults\n    mode http\n    timeout client 5s\n    timeout server 5s\n    \
         timeout connect 1s\nfrontend web\n    bind {bind}\n    default_backend app\nbackend app\n    \
         server s1 {server}\n"
    )
}

fn get(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ")
}

fn kill(pid: u32, sig: &str) {
    let ok = Command::new("kill").args(["-s", sig, &pid.to_string()]).status().expect("kill").success();
    assert!(ok, "kill -{sig} {pid}");
}

#[test]
fn check_mode_exit_codes_and_messages() {
    let dir = temp_dir("hap-check");
    std::fs::write(dir.join("ok.cfg"), cfg(free_addr(), free_addr())).expect("write");
    std::fs::write(dir.join("bad.cfg"), "global\n    maxconn 100\n    foo bar\n").expect("write");

    let ok = haproxy(&dir, &["-c", "-f", "ok.cfg"]);
    assert_eq!((code(&ok), stdout(&ok).as_str()), (0, "Configuration file is valid\n"), "{}", stderr(&ok));
    let quiet = haproxy(&dir, &["-c", "-q", "-f", "ok.cfg"]);
    assert_eq!((code(&quiet), stdout(&quiet).as_str(), stderr(&quiet).as_str()), (0, "", ""));

    let bad = haproxy(&dir, &["-c", "-f", "bad.cfg"]);
    assert_eq!(code(&bad), 1);
    let text = stderr(&bad);
    assert!(text.contains("[NOTICE]   ("), "{text}");
    assert!(text.contains(") : config : parsing [bad.cfg:3] : unknown global keyword 'foo'"), "{text}");
    assert!(
        text.contains("[ALERT]    (") && text.contains(": config : Fatal errors found in configuration."),
        "{text}"
    );
    let bad_quiet = haproxy(&dir, &["-c", "-q", "-f", "bad.cfg"]);
    assert_eq!((code(&bad_quiet), stderr(&bad_quiet).as_str()), (1, ""));

    let missing = haproxy(&dir, &["-c", "-f", "nosuch.cfg"]);
    assert_eq!(code(&missing), 1);
    assert!(stderr(&missing).contains("nosuch.cfg"), "{}", stderr(&missing));

    // A directory: its *.cfg files in lexical order; the rest is not read.
    let confd = dir.join("conf.d");
    std::fs::create_dir_all(&confd).expect("dir");
    std::fs::write(confd.join("10-global.cfg"), "global\n    maxconn 50\n").expect("write");
    std::fs::write(confd.join("20-web.cfg"), cfg(free_addr(), free_addr())).expect("write");
    std::fs::write(confd.join("README"), "not a configuration\n").expect("write");
    assert_eq!(code(&haproxy(&dir, &["-c", "-q", "-f", "conf.d"])), 0);
    // `--` then files; -C changes directory first.
    assert_eq!(code(&haproxy(&dir, &["-c", "-q", "-C", confd.to_str().expect("utf-8"), "--", "20-web.cfg"])), 0);

    // -dW: a warning is fatal.
    let warn = format!(
        "{}frontend web2\n    bind {}\n    default_backend app\n.warning \"careful\"\n",
        cfg(free_addr(), free_addr()),
        free_addr()
    );
    std::fs::write(dir.join("warn.cfg"), warn).expect("write");
    let w = haproxy(&dir, &["-c", "-f", "warn.cfg"]);
    assert_eq!(code(&w), 0, "{}", stderr(&w));
    assert!(stdout(&w).starts_with("Warnings were found.\n"), "{}", stdout(&w));
    assert!(stderr(&w).contains("[WARNING]  (") && stderr(&w).contains("careful"), "{}", stderr(&w));
    let zw = haproxy(&dir, &["-c", "-dW", "-f", "warn.cfg"]);
    assert_eq!(code(&zw), 1);
    assert!(stderr(&zw).contains("'zero-warning' is set. Aborting."), "{}", stderr(&zw));
}

#[test]
fn flags_versions_and_conditions() {
    let dir = temp_dir("hap-flags");
    let unknown = haproxy(&dir, &["-Z"]);
    assert_eq!(code(&unknown), 1);
    assert!(stderr(&unknown).contains("Usage : haproxy"), "{}", stderr(&unknown));
    assert!(stderr(&unknown).contains("unknown option '-Z'"), "{}", stderr(&unknown));
    assert_eq!(code(&haproxy(&dir, &["-f"])), 1);
    assert_eq!(code(&haproxy(&dir, &[])), 1, "no configuration file");

    let v = haproxy(&dir, &["-v"]);
    assert_eq!(code(&v), 0);
    assert!(stdout(&v).starts_with("HAProxy version 2.6.0-fulcrum-"), "{}", stdout(&v));
    let vv = stdout(&haproxy(&dir, &["-vv"]));
    let features = vv.lines().find(|l| l.starts_with("Feature list : ")).expect("feature list");
    assert!(features.contains("+EPOLL") && features.contains("+THREAD"), "{features}");
    assert!(features.contains("-OPENSSL") && features.contains("-LUA") && features.contains("-PCRE2"), "{features}");

    assert_eq!(code(&haproxy(&dir, &["-cc", "version_atleast(2.4) && feature(THREAD)"])), 0);
    assert_eq!(code(&haproxy(&dir, &["-cc", "feature(OPENSSL)"])), 1);
    assert_eq!(code(&haproxy(&dir, &["-cc", "defined(HOME) || 1"])), 0);
    let broken = haproxy(&dir, &["-cc", "nosuch(1)"]);
    assert_eq!(code(&broken), 2);
    assert!(stderr(&broken).contains("Failed to evaluate condition"), "{}", stderr(&broken));

    // The same personality without a link.
    let sub = Command::new(common::bin()).args(["haproxy", "-cc", "1"]).output().expect("run");
    assert_eq!(code(&sub), 0);
}

#[test]
fn daemon_mode_writes_the_pid_file_and_stops_on_usr1() {
    let origin = Origin::spawn("daemon-origin", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let dir = temp_dir("hap-daemon");
    let bind = free_addr();
    std::fs::write(dir.join("h.cfg"), cfg(bind, origin.addr)).expect("write");
    let pidfile = dir.join("haproxy.pid");
    let started = Instant::now();
    let out = haproxy(&dir, &["-D", "-f", "h.cfg", "-p", pidfile.to_str().expect("utf-8")]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(30));
    let pid: u32 = std::fs::read_to_string(&pidfile).expect("pid file").trim().parse().expect("pid");
    assert!(pid_alive(pid));
    // Serving when the command returned: no wait needed.
    let answer = get(bind).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    kill(pid, "USR1");
    wait_until("the daemon to exit", Duration::from_secs(20), || !pid_alive(pid));

    // A daemon that cannot bind makes the command fail.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    std::fs::write(dir.join("busy.cfg"), cfg(busy.local_addr().expect("addr"), origin.addr)).expect("write");
    let failed = haproxy(&dir, &["-D", "-f", "busy.cfg"]);
    assert_ne!(code(&failed), 0);
    // And says why: the background process's messages show until it serves.
    let port = busy.local_addr().expect("addr").port().to_string();
    assert!(stderr(&failed).contains(&port), "{}", stderr(&failed));
}

/// Debian 12's haproxy.service, run as systemd would: `-Ws -f CONFIG -c -q` before start,
/// `-Ws -f CONFIG -p PIDFILE -S SOCKET` as the service (Type=notify: READY=1 on NOTIFY_SOCKET),
/// reload by `-c -q` then `kill -USR2 $MAINPID` (RELOADING=1, READY=1), stop by SIGTERM.
#[test]
fn debian_haproxy_service_command_lines() {
    let origin = Origin::spawn("debian-origin", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let dir = temp_dir("hap-debian");
    let (bind, bind2) = (free_addr(), free_addr());
    let config = dir.join("haproxy.cfg");
    std::fs::write(&config, cfg(bind, origin.addr)).expect("write");
    let config_arg = config.to_str().expect("utf-8");
    let pidfile = dir.join("haproxy.pid");
    let master = dir.join("haproxy-master.sock");

    let pre = haproxy(&dir, &["-Ws", "-f", config_arg, "-c", "-q"]);
    assert_eq!(code(&pre), 0, "ExecStartPre: {}", stderr(&pre));

    let notify_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("notify socket");
    notify.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let log = dir.join("haproxy.log");
    let mut child = Command::new(haproxy_link_once(&dir))
        .args(["-Ws", "-f", config_arg, "-p", pidfile.to_str().expect("utf-8"), "-S"])
        .arg(&master)
        .env("NOTIFY_SOCKET", &notify_path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start");
    let mut buf = [0u8; 512];
    let mut next = || {
        let n = notify.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let ready = next();
    assert!(ready.starts_with("READY=1"), "{ready}");
    assert!(ready.contains(&format!("MAINPID={}", child.id())), "{ready}");
    assert!(get(bind).expect("answer").starts_with("HTTP/1.1 200"));

    // ExecReload: check, then USR2 to the main PID. The new file adds a listener.
    std::fs::write(
        &config,
        format!("{}frontend web2\n    bind {bind2}\n    default_backend app\n", cfg(bind, origin.addr)),
    )
    .expect("write");
    assert_eq!(code(&haproxy(&dir, &["-Ws", "-f", config_arg, "-c", "-q"])), 0);
    kill(child.id(), "USR2");
    assert_eq!(next(), "RELOADING=1");
    assert_eq!(next(), "READY=1");
    assert!(get(bind2).expect("answer on the new listener").starts_with("HTTP/1.1 200"));

    // A broken file: the check fails, and a USR2 anyway keeps the running configuration.
    std::fs::write(&config, "global\n    nosuchkeyword\n").expect("write");
    assert_eq!(code(&haproxy(&dir, &["-Ws", "-f", config_arg, "-c", "-q"])), 1);
    kill(child.id(), "USR2");
    assert_eq!(next(), "RELOADING=1");
    assert_eq!(next(), "READY=1");
    assert!(get(bind).expect("still served").starts_with("HTTP/1.1 200"));

    kill(child.id(), "TERM");
    assert_eq!(next(), "STOPPING=1");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `bind "fd@${FE}"`: a listening socket passed by the parent (as VTest and supervisors pass
/// them) is served; another inherited listener the configuration does not name is left as it
/// was (still blocking: its flags are shared with the parent that owns it).
#[test]
fn bind_fd_serves_a_listener_passed_by_the_parent() {
    use std::os::fd::AsRawFd;
    let origin = Origin::spawn("fd-origin", "127.0.0.1:0".parse().expect("addr")).expect("origin");
    let dir = temp_dir("hap-fd");
    let listener = |_: ()| {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
        s.bind(&"127.0.0.1:0".parse::<SocketAddr>().expect("addr").into()).expect("bind");
        s.listen(16).expect("listen");
        s.set_cloexec(false).expect("inheritable");
        s
    };
    let (passed, other) = (listener(()), listener(()));
    let addr = passed.local_addr().expect("addr").as_socket().expect("inet");
    // The configured address is commented out: the frontend listens on the passed socket only.
    let text =
        cfg(free_addr(), origin.addr).replace("frontend web\n    bind ", "frontend web\n    bind \"fd@${FE}\" # ");
    std::fs::write(dir.join("fd.cfg"), text).expect("write");
    let mut child = Command::new(haproxy_link_once(&dir))
        .args(["-d", "-f", "fd.cfg"])
        .current_dir(&dir)
        .env("FE", passed.as_raw_fd().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    drop(passed);
    let answer = get(addr).expect("an answer on the passed socket");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(!other.nonblocking().expect("flags"), "a listener the configuration does not use was changed");
    kill(child.id(), "INT");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A descriptor that carries no listener is a configuration error naming it.
    std::fs::write(dir.join("nofd.cfg"), cfg(free_addr(), origin.addr).replace("bind 127.0.0.1", "bind fd@77 #"))
        .expect("write");
    let out = haproxy(&dir, &["-c", "-f", "nofd.cfg"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("'fd@77': no listening TCP socket was passed"), "{}", stderr(&out));
}
