//! ipvsadm's side: a rules file (what `ipvsadm-save -n` prints) as a configuration, and
//! `fulcrum ctl` (and the binary linked as `ipvsadm`) changing and listing the running table in
//! ipvsadm's formats, live. Loopback only.
mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_addr, tagged_server, Fulcrum};

fn who(addr: SocketAddr, n: usize) -> String {
    (0..n)
        .map(|_| {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
            s.write_all(b"x").expect("send");
            s.shutdown(Shutdown::Write).expect("half-close");
            let mut answer = String::new();
            s.read_to_string(&mut answer).expect("read");
            std::thread::sleep(Duration::from_millis(30));
            answer.chars().next().unwrap_or('-')
        })
        .collect()
}

/// `fulcrum ctl --socket SOCKET ARGS` (stdin for -R): status, stdout, stderr.
fn ctl(socket: &Path, args: &str, stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(common::bin())
        .arg("ctl")
        .arg("--socket")
        .arg(socket)
        .args(args.split_whitespace())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fulcrum ctl");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("ctl output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(socket: &Path, args: &str) -> String {
    let (code, out, err) = ctl(socket, args, "");
    assert_eq!(code, 0, "ctl {args}: {err}");
    out
}

struct Setup {
    fulcrum: Fulcrum,
    socket: PathBuf,
    vip: SocketAddr,
    a: SocketAddr,
    b: SocketAddr,
}

/// fulcrum running a rules file (a rr service of two servers) plus a TOML with the control
/// socket and a probe frontend.
fn setup(tag: &str) -> Setup {
    let (a, b) = (tagged_server("a", 500), tagged_server("b", 500));
    let vip = free_addr();
    let dir = common::temp_dir(tag);
    let socket = dir.join("fulcrum.sock");
    let probe = free_addr();
    let toml = dir.join("base.toml");
    std::fs::write(
        &toml,
        format!(
            "[global]\ncontrol_socket = \"{}\"\n[[frontend]]\nname = \"probe\"\nmode = \"tcp\"\nbind = \"{probe}\"\ndefault_backend = \"sink\"\n\
             [[backend]]\nname = \"sink\"\nmode = \"tcp\"\nretries = 0\n[[backend.server]]\nname = \"nowhere\"\naddress = \"127.0.0.1:9\"\n",
            socket.display()
        ),
    )
    .expect("write toml");
    let rules = format!("# saved by ipvsadm-save -n\n-A -t {vip} -s rr\n-a -t {vip} -r {a} -m -w 1\nipvsadm -a -t {vip} -r {b} -m -w 2\n");
    let toml_arg = toml.display().to_string();
    let fulcrum = Fulcrum::start_with("rules.ipvs", &rules, probe, &["-c", &toml_arg]);
    Setup { fulcrum, socket, vip, a, b }
}

#[test]
fn a_rules_file_runs_and_lists_as_ipvsadm_prints_it() {
    let s = setup("ipvs-list");
    assert_eq!(who(s.vip, 4), "abab", "rr ignores weights");
    // ipvsadm sorts real servers by address and port.
    let mut dests = [(s.a, 1), (s.b, 2)];
    dests.sort_by_key(|(addr, _)| addr.port());
    let saved = ok(&s.socket, "-Sn");
    let expected: String = std::iter::once(format!("-A -t {} -s rr\n", s.vip))
        .chain(dests.iter().map(|(d, w)| format!("-a -t {} -r {d} -m -w {w}\n", s.vip)))
        .collect();
    assert_eq!(saved, expected);
    let listed = ok(&s.socket, "-L -n");
    let expected: String = [
        "IP Virtual Server version 1.2.1 (size=4096)\n".to_string(),
        "Prot LocalAddress:Port Scheduler Flags\n".to_string(),
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n".to_string(),
        format!("TCP  {} rr\n", s.vip),
    ]
    .into_iter()
    .chain(dests.iter().map(|(d, w)| format!("  -> {:<28} Masq    {w}      0          0         \n", d.to_string())))
    .collect();
    assert_eq!(listed, expected);
    // --stats: four connections, two each.
    let stats = ok(&s.socket, "-Ln --stats");
    let lines: Vec<&str> = stats.lines().collect();
    assert_eq!(lines[1], "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes");
    assert_eq!(lines[2], "  -> RemoteAddress:Port");
    let service = lines[3];
    assert!(service.starts_with(&format!("TCP  {}", s.vip)), "{service}");
    let conns: Vec<u64> = service.split_whitespace().skip(2).map(|n| n.parse().expect("number")).collect();
    assert_eq!(conns[0], 4, "{stats}");
    assert_eq!((conns[1], conns[3]), (4, 4), "one read of one byte each from the clients: {stats}");
    let rate = ok(&s.socket, "-Ln --rate");
    assert!(rate.contains("     CPS    InPPS   OutPPS    InBPS   OutBPS"), "{rate}");
    assert_eq!(ok(&s.socket, "-L --timeout"), "Timeout (tcp tcpfin udp): 900 120 300\n");
    let thresholds = ok(&s.socket, &format!("-L -n --thresholds -t {}", s.vip));
    assert!(
        thresholds.starts_with(
            "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n  -> RemoteAddress:Port\n"
        ),
        "{thresholds}"
    );
    // -Z zeroes the counters.
    ok(&s.socket, "-Z");
    let zeroed = ok(&s.socket, "-Ln --stats --exact");
    assert!(zeroed.lines().nth(3).is_some_and(|l| l.split_whitespace().skip(2).all(|n| n == "0")), "{zeroed}");
    // ipvsadm's errors and statuses.
    assert_eq!(ctl(&s.socket, "-D -t 127.0.0.1:1", ""), (255, String::new(), "No such service\n".into()));
    assert_eq!(
        ctl(&s.socket, &format!("-a -t 127.0.0.1:1 -r {}", s.a), ""),
        (255, String::new(), "Service not defined\n".into())
    );
    assert_eq!(ctl(&s.socket, "-A -s rr", "").0, 2, "a command-line error is status 2");
    assert_eq!(ctl(&s.socket, "-L -t 127.0.0.1:1", "").2, "No such service\n");
}

#[test]
fn ctl_changes_the_running_table_live() {
    let s = setup("ipvs-live");
    // A held connection on a: it must survive every change below.
    let mut held = TcpStream::connect(s.vip).expect("connect");
    held.write_all(b"held").expect("send");
    std::thread::sleep(Duration::from_millis(200));
    // -e -w 0: a is quiescent (no new connections); its established one continues.
    ok(&s.socket, &format!("-e -t {} -r {} -m -w 0", s.vip, s.a));
    assert_eq!(who(s.vip, 3), "bbb");
    // A new service, bound at once.
    let vip2 = free_addr();
    ok(&s.socket, &format!("-A -t {vip2} -s wrr"));
    ok(&s.socket, &format!("-a -t {vip2} -r {} -m -w 3", s.a));
    ok(&s.socket, &format!("-a -t {vip2} -r {} -m -w 1", s.b));
    assert_eq!(who(vip2, 4), "aaab");
    // Save, clear, restore: the same table.
    let saved = ok(&s.socket, "-Sn");
    ok(&s.socket, "-C");
    assert_eq!(ok(&s.socket, "-Sn"), "");
    assert!(TcpStream::connect(vip2).is_err(), "a cleared service stops listening");
    let (code, _, err) = ctl(&s.socket, "-R", &saved);
    assert_eq!(code, 0, "{err}");
    assert_eq!(ok(&s.socket, "-Sn"), saved);
    // The restored list is in ipvsadm's order (by address): the same weights, 3 to 1.
    let picks = who(vip2, 4);
    assert_eq!(picks.matches('a').count(), 3, "{picks}");
    // --set: the timeouts ipvsadm lists.
    ok(&s.socket, "--set 60 30 20");
    assert_eq!(ok(&s.socket, "-L --timeout"), "Timeout (tcp tcpfin udp): 60 30 20\n");
    // The held connection lived through it all.
    held.shutdown(Shutdown::Write).expect("half-close");
    let mut answer = String::new();
    held.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    held.read_to_string(&mut answer).expect("read");
    assert_eq!(answer, "a:held");
    assert!(s.fulcrum.stderr().contains("control socket: -C applied"), "{}", s.fulcrum.stderr());
}

#[test]
fn the_binary_linked_as_ipvsadm_talks_to_the_socket() {
    let s = setup("ipvs-link");
    let dir = common::temp_dir("ipvs-bin");
    for name in ["ipvsadm", "ipvsadm-save", "ipvsadm-restore"] {
        let link = dir.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(common::bin(), &link).expect("symlink");
    }
    let run = |name: &str, args: &[&str], stdin: &str| {
        let mut child = Command::new(dir.join(name))
            .args(args)
            .env("FULCRUM_SOCKET", &s.socket)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("stdin");
        let out = child.wait_with_output().expect("output");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, listed) = run("ipvsadm", &["-Ln"], "");
    assert_eq!(code, Some(0));
    assert!(listed.contains(&format!("TCP  {} rr", s.vip)), "{listed}");
    let (code, saved) = run("ipvsadm-save", &["-n"], "");
    assert_eq!(code, Some(0));
    assert!(saved.starts_with(&format!("-A -t {} -s rr\n", s.vip)), "{saved}");
    // ipvsadm-restore clears first, drops comments, then applies.
    let vip2 = free_addr();
    let (code, _) = run("ipvsadm-restore", &[], &format!("# one service\n-A -t {vip2} -s lc\n"));
    assert_eq!(code, Some(0));
    let (_, after) = run("ipvsadm-save", &["-n"], "");
    assert_eq!(after, format!("-A -t {vip2} -s lc\n"));
    let (code, help) = run("ipvsadm", &["-h"], "");
    assert_eq!(code, Some(0));
    assert!(help.starts_with("ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\nUsage:\n"), "{help}");
}

#[test]
fn rules_file_errors_name_the_line() {
    let dir = common::temp_dir("ipvs-errors");
    let path = dir.join("rules");
    std::fs::write(
        &path,
        "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.0.2 -w 99999\n-a -t 10.0.0.9:80 -r 10.0.0.2\n-L -n\n",
    )
    .expect("write");
    let out = Command::new(common::bin()).args(["check", "-c"]).arg(&path).output().expect("check");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let p = path.display();
    assert!(err.contains(&format!("{p}:2: illegal weight specified")), "{err}");
    assert!(err.contains(&format!("{p}:3: Service not defined")), "{err}");
    assert!(err.contains(&format!("{p}:4: this ipvsadm command does not belong in a rules file")), "{err}");
}
