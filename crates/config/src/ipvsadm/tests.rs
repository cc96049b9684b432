use super::*;
use fulcrum_model::{Algorithm, LvsMethod, Model};

fn args(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

fn ok(line: &str) -> Command {
    parse("ipvsadm", &args(line)).unwrap_or_else(|e| panic!("{line}: {e} ({})", e.code))
}

fn err(line: &str) -> (String, u8) {
    match parse("ipvsadm", &args(line)) {
        Ok(c) => panic!("{line}: parsed as {c:?}"),
        Err(e) => (e.message, e.code),
    }
}

fn tcp(addr: &str) -> Service {
    Service::Tcp(addr.parse().expect("addr"))
}

#[test]
fn services_and_their_options() {
    assert_eq!(
        ok("-A -t 10.0.0.1:80 -s rr -p 50 -M 255.255.255.0"),
        Command::AddService(ServiceSpec {
            service: tcp("10.0.0.1:80"),
            scheduler: "rr".into(),
            persistent: Some(50),
            netmask: Some(24),
            ops: false,
            flags: vec![],
        })
    );
    // Grouped and attached, long forms, -p without a value (360), the default scheduler.
    match ok("-At 10.0.0.1:0 -p") {
        Command::AddService(s) => assert_eq!((s.scheduler.as_str(), s.persistent), ("wlc", Some(360))),
        other => panic!("{other:?}"),
    }
    match ok("--add-service --udp-service=10.0.0.2:53 --scheduler sh -o -b sh-fallback,sh-port") {
        Command::AddService(s) => {
            assert_eq!(s.service, Service::Udp("10.0.0.2:53".parse().expect("addr")));
            assert!(s.ops);
            assert_eq!(s.flags, ["sh-fallback", "sh-port"]);
        }
        other => panic!("{other:?}"),
    }
    match ok("-A -t [2001:db8::1]:80 -s lc -p 10 -M 64") {
        Command::AddService(s) => assert_eq!(s.netmask, Some(64)),
        other => panic!("{other:?}"),
    }
    assert_eq!(ok("-D -t 10.0.0.1:80"), Command::DeleteService(tcp("10.0.0.1:80")));
    assert_eq!(ok("-C"), Command::Clear);
    assert_eq!(ok("--set 900 120 300"), Command::Set(900, 120, 300));
    assert_eq!(ok("-Sn"), Command::Save { numeric: true });
    assert_eq!(ok("-h"), Command::Help);
}

#[test]
fn servers_and_forwarding() {
    assert_eq!(
        ok("-a -t 10.0.0.1:80 -r 192.168.1.2:8080 -m -w 3 -x 100 -y 50"),
        Command::AddServer(DestSpec {
            service: tcp("10.0.0.1:80"),
            addr: "192.168.1.2:8080".parse().expect("addr"),
            forward: Forward::Masq,
            weight: 3,
            upper: 100,
            lower: 50,
        })
    );
    // Direct routing keeps the service's port whatever -r says; no port takes it too.
    match ok("-a -t 10.0.0.1:80 -r 192.168.1.3:8080") {
        Command::AddServer(d) => assert_eq!((d.addr.port(), d.forward, d.weight), (80, Forward::Route, 1)),
        other => panic!("{other:?}"),
    }
    match ok("-a -t 10.0.0.1:80 -r 192.168.1.3 -m") {
        Command::AddServer(d) => assert_eq!(d.addr.port(), 80),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        ok("-d -t 10.0.0.1:80 -r 192.168.1.3:80"),
        Command::DeleteServer(tcp("10.0.0.1:80"), "192.168.1.3:80".parse().expect("addr"))
    );
    match ok("-Ln --stats -t 10.0.0.1:80") {
        Command::List(o) => assert!(o.numeric && o.stats && o.service.is_some()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn errors_are_ipvsadms() {
    assert_eq!(err("-n -L").1, 255);
    assert_eq!(err("").1, 255);
    assert_eq!(err("-c -L").0, "Try `ipvsadm -h' or 'ipvsadm --help' for more information.");
    assert_eq!(
        err("-A -s rr"),
        ("You need to supply the 'service-address' option for the 'add-service' command".into(), 2)
    );
    assert_eq!(
        err("-a -t 10.0.0.1:80"),
        ("You need to supply the 'real-server' option for the 'add-server' command".into(), 2)
    );
    assert_eq!(
        err("-A -t 10.0.0.1:80 -r 1.2.3.4"),
        ("Illegal 'real-server' option with the 'add-service' command".into(), 2)
    );
    assert_eq!(err("-a -t 10.0.0.1:80 -r 1.2.3.4 -m -g").0, "multiple 'forwarding-method' options specified");
    assert_eq!(err("-A -t 10.0.0.1:0").0, "Zero port specified for non-persistent service");
    assert_eq!(err("-A -t 10.0.0.1:80 -o").0, "One-Packet Scheduling is only for UDP virtual services");
    assert_eq!(err("-A -t 10.0.0.300:80").0, "illegal virtual server address[:port] specified");
    assert_eq!(err("-A -t 10.0.0.1:80 -p 0").0, "invalid timeout value `0' specified");
    assert_eq!(err("-A -t 10.0.0.1:80 -s rr -b sh-port").0, "incompatible scheduler flag `sh-port'");
    assert_eq!(err("-a -t 10.0.0.1:80 -r 1.2.3.4 -w 70000").0, "illegal weight specified");
    assert_eq!(err("-L -c --stats").0, "options conflicts in the list command");
    assert_eq!(err("-L --foo"), ("--foo: unknown option".into(), 255));
    assert_eq!(err("-L -A").0, "invalid option `-A'");
    assert_eq!(err("--set 1 2").0, "--set option requires 3 timeout values");
    assert_eq!(err("-L extra").0, "unexpected argument extra");
}

#[test]
fn applied_to_a_model() {
    let mut m = Model::default();
    let run = |m: &mut Model, line: &str| apply(m, &ok(line));
    assert_eq!(run(&mut m, "-A -t 127.0.0.1:8080 -s wrr -p 30"), Ok(Applied::Changed));
    assert_eq!(run(&mut m, "-A -t 127.0.0.1:8080 -s rr").map_err(|e| e.message), Err("Service already exists".into()));
    run(&mut m, "-a -t 127.0.0.1:8080 -r 127.0.0.2:80 -m -w 5").expect("add");
    assert_eq!(
        run(&mut m, "-a -t 127.0.0.1:8080 -r 127.0.0.2:80 -m").map_err(|e| e.message),
        Err("Destination already exists".into())
    );
    assert_eq!(
        run(&mut m, "-a -t 127.0.0.1:9999 -r 127.0.0.2:80 -m").map_err(|e| (e.message, e.code)),
        Err(("Service not defined".into(), 255))
    );
    let be = m.backend("127.0.0.1:8080").expect("backend");
    assert!(matches!(be.algorithm, Algorithm::Lvs(l) if l.scheduler == fulcrum_model::LvsScheduler::Wrr));
    assert_eq!(be.servers[0].weight, 5);
    assert_eq!(be.servers[0].forward, Some(LvsMethod::Nat));
    // -e resets what it does not say: the weight back to 1. Without -m it is direct routing,
    // which forces the service's port: that destination does not exist, as with ipvsadm.
    run(&mut m, "-e -t 127.0.0.1:8080 -r 127.0.0.2:80 -m").expect("edit");
    let be = m.backend("127.0.0.1:8080").expect("backend");
    assert_eq!((be.servers[0].weight, be.servers[0].forward), (1, Some(LvsMethod::Nat)));
    assert_eq!(
        run(&mut m, "-e -t 127.0.0.1:8080 -r 127.0.0.2:80").map_err(|e| e.message),
        Err("No such destination".into())
    );
    assert_eq!(run(&mut m, "-D -t 127.0.0.1:1").map_err(|e| e.message), Err("No such service".into()));
    run(&mut m, "-A -u 127.0.0.1:53").expect("udp");
    assert_eq!(m.frontends.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["127.0.0.1:8080", "127.0.0.1:53/udp"]);
    run(&mut m, "--set 60 0 20").expect("set");
    assert_eq!(m.frontends[1].timeout_client, std::time::Duration::from_secs(20));
    assert_eq!(m.backends[0].timeout_tunnel, Some(std::time::Duration::from_secs(60)));
    run(&mut m, "-C").expect("clear");
    assert!(m.frontends.is_empty() && m.backends.is_empty());
    assert!(apply(&mut m, &ok("-A -f 5")).is_err());
}

#[test]
fn rules_lines() {
    assert!(rules::looks_like("# saved\n-A -t 10.0.0.1:80 -s rr\n"));
    assert!(rules::looks_like("ipvsadm -A -t 10.0.0.1:80 -s rr\n"));
    assert!(!rules::looks_like("frontend x\n"));
    assert_eq!(rules::words("ipvsadm -A\t-t 1.2.3.4:80\r"), ["-A", "-t", "1.2.3.4:80"]);
}
