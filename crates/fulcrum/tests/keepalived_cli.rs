//! fulcrum linked as `keepalived`: keepalived 2.2.7's command line, `-t` messages and exit
//! codes (as ansible's `validate: keepalived -t -f %s` uses them). Running it (Debian's unit
//! command line) is in vrrp_netns.rs: it needs a network namespace.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn keepalived(dir: &Path, args: &[&str]) -> Output {
    let link: PathBuf = dir.join("keepalived");
    if !link.exists() {
        std::os::unix::fs::symlink(common::bin(), &link).expect("symlink");
    }
    Command::new(&link).args(args).current_dir(dir).output().expect("run keepalived")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const GOOD: &str = "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n    priority 100\n    \
                    preempt\n    virtual_ipaddress {\n        10.0.0.10/24\n    }\n}\n";

#[test]
fn config_test_exit_codes_and_messages() {
    let dir = common::temp_dir("ka-test");
    std::fs::write(dir.join("good.conf"), GOOD).expect("write");
    std::fs::write(dir.join("bad.conf"), GOOD.replace("51", "300").replace("preempt", "foo bar")).expect("write");

    let good = keepalived(&dir, &["-t", "-f", "good.conf"]);
    assert_eq!((good.status.code(), stderr(&good).as_str()), (Some(0), ""));
    let bad = keepalived(&dir, &["-t", "-f", "bad.conf"]);
    assert_eq!(bad.status.code(), Some(5));
    let text = stderr(&bad);
    assert!(text.contains("(bad.conf: Line 3) virtual_router_id 300 is out of range"), "{text}");
    assert!(text.contains("(bad.conf: Line 5) unknown vrrp_instance keyword 'foo'"), "{text}");
    // --config-test=LOG writes the messages there; --use-file= is the long -f.
    let log = dir.join("test.log");
    let long = keepalived(&dir, &[&format!("--config-test={}", log.display()), "--use-file=bad.conf"]);
    assert_eq!((long.status.code(), stderr(&long).as_str()), (Some(5), ""));
    assert!(std::fs::read_to_string(&log).expect("log").contains("Line 3"));
    // A missing file: keepalived 2.2.7 says so and exits 0.
    let missing = keepalived(&dir, &["-t", "-f", "nosuch.conf"]);
    assert_eq!((missing.status.code(), stderr(&missing).as_str()), (Some(0), "Config files missing 'nosuch.conf'.\n"));
}

#[test]
fn flags_as_keepalived_reads_them() {
    let dir = common::temp_dir("ka-flags");
    let unknown = keepalived(&dir, &["-Z"]);
    assert_eq!((unknown.status.code(), stderr(&unknown).as_str()), (Some(1), "Unknown option -Z\n"));
    assert_eq!(keepalived(&dir, &["--bogus"]).status.code(), Some(1));
    let reload = keepalived(&dir, &["--signum=RELOAD"]);
    assert_eq!((reload.status.code(), String::from_utf8_lossy(&reload.stdout).as_ref()), (Some(0), "1\n"));
    assert_eq!(keepalived(&dir, &["--signum=NOPE"]).status.code(), Some(1));
    let v = keepalived(&dir, &["-v"]);
    assert!(stderr(&v).starts_with("Keepalived v2.2.7 (fulcrum "), "{}", stderr(&v));
    assert!(stderr(&keepalived(&dir, &["-h"])).starts_with("Usage: keepalived [OPTION...]"));
    // Bundled short flags and attached values, as getopt reads them.
    std::fs::write(dir.join("good.conf"), GOOD).expect("write");
    assert_eq!(keepalived(&dir, &["-lDt", "-fgood.conf"]).status.code(), Some(0));
    let sub = Command::new(common::bin()).args(["keepalived", "--signum=STOP"]).output().expect("run");
    assert_eq!(String::from_utf8_lossy(&sub.stdout), "15\n");
}
