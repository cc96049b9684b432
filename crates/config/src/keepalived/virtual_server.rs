//! keepalived's LVS side: `virtual_server` (by address or `group`), `virtual_server_group`,
//! `real_server` and their checkers, into a `mode tcp` frontend and backend each, with the
//! kernel's scheduler (`fulcrum_model::Lvs`), persistence templates, thresholds, quorum and
//! the sorry server (a backup server). Values cascade as in keepalived: a virtual server's
//! `delay_loop`, `connect_timeout`, `retry`, `delay_before_retry`, `warmup`, `alpha`,
//! `virtualhost` are its real servers' defaults, and a real server's are its checkers'.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use fulcrum_model::{
    Checker, CheckerKind, Lvs, LvsMethod, LvsScheduler, Origin, Persistence, Quorum, Server, UrlCheck,
};

use super::tokenize::Stmt;
use super::Parser;
use crate::diag::Problem;
use crate::partial::BindRef;
use crate::values::{parse_number, parse_seconds};

/// keepalived's `persistence_timeout` without a value, and with only a granularity.
const PERSISTENCE_DEFAULT: Duration = Duration::from_secs(360);

/// What cascades from a virtual server to its real servers and from those to their checkers.
#[derive(Debug, Clone, Default)]
struct Timing {
    delay_loop: Option<Duration>,
    connect_timeout: Option<Duration>,
    retry: Option<u32>,
    delay_before_retry: Option<Duration>,
    warmup: Option<Duration>,
    alpha: Option<bool>,
    virtualhost: Option<String>,
}

impl Timing {
    fn under(&self, outer: &Timing) -> Timing {
        Timing {
            delay_loop: self.delay_loop.or(outer.delay_loop),
            connect_timeout: self.connect_timeout.or(outer.connect_timeout),
            retry: self.retry.or(outer.retry),
            delay_before_retry: self.delay_before_retry.or(outer.delay_before_retry),
            warmup: self.warmup.or(outer.warmup),
            alpha: self.alpha.or(outer.alpha),
            virtualhost: self.virtualhost.clone().or_else(|| outer.virtualhost.clone()),
        }
    }
}

/// A `virtual_server_group`'s addresses.
#[derive(Debug, Clone)]
pub(super) struct Group {
    pub name: String,
    pub addrs: Vec<SocketAddr>,
    pub fwmarks: bool,
}

impl Parser {
    /// `virtual_server_group NAME { IP [PORT] | A.B.C.D-E [PORT] | fwmark N ... }`
    pub(super) fn vs_group(&mut self, at: &Origin, name: &str, body: &[Stmt]) {
        let mut group = Group { name: name.to_string(), addrs: Vec::new(), fwmarks: false };
        for item in body {
            let words = &item.words;
            let first = words.first().map(String::as_str).unwrap_or_default();
            if first == "fwmark" {
                group.fwmarks = true;
                continue;
            }
            let port = match words.get(1) {
                Some(p) => match parse_number::<u16>(p, "port") {
                    Ok(p) => p,
                    Err(e) => {
                        self.report(&item.at, e.into());
                        continue;
                    }
                },
                None => 0,
            };
            match expand_range(first) {
                Some(ips) => group.addrs.extend(ips.into_iter().map(|ip| SocketAddr::new(ip, port))),
                None => self.error(
                    &item.at,
                    format!("invalid virtual_server_group entry '{first}'"),
                    Some("write IP [PORT], A.B.C.D-E [PORT] or fwmark N".into()),
                ),
            }
        }
        self.groups.push((at.clone(), group));
    }

    /// `virtual_server IP PORT { ... }` / `virtual_server group NAME { ... }`.
    pub(super) fn virtual_server(&mut self, at: &Origin, args: &[String], body: &[Stmt]) {
        let (name, binds, vs_port) = match args {
            [kind, mark, ..] if kind == "fwmark" => {
                let problem = Problem::unsupported(format!("virtual_server fwmark {mark}: fulcrum does not read packet marks"))
                    .hint("list the addresses and ports the mark stands for in a virtual_server_group and write virtual_server group NAME");
                return self.report(at, problem);
            }
            [kind, group] if kind == "group" => {
                let Some(g) = self.groups.iter().find(|(_, g)| &g.name == group).map(|(_, g)| g.clone()) else {
                    let hint = Some(format!("define virtual_server_group {group} {{ ... }} before it"));
                    return self.error(at, format!("virtual_server_group '{group}' is not defined"), hint);
                };
                if g.addrs.is_empty() {
                    let problem = Problem::unsupported(format!(
                        "virtual_server_group '{group}' has only fwmark entries: fulcrum does not read packet marks"
                    ))
                    .hint("list the addresses and ports in the group");
                    return self.report(at, problem);
                }
                if g.fwmarks {
                    self.warn(at, format!("the fwmark entries of virtual_server_group '{group}' are ignored: fulcrum serves its addresses"), None);
                }
                (group.clone(), g.addrs, 0)
            }
            [ip, port] => {
                let (Ok(ip), Ok(port)) = (ip.parse::<IpAddr>(), port.parse::<u16>()) else {
                    return self.error(
                        at,
                        format!("Invalid virtual server IP address/port {ip}/{port}"),
                        Some("write virtual_server IP PORT, e.g. virtual_server 192.168.200.100 443".into()),
                    );
                };
                let addr = SocketAddr::new(ip, port);
                (addr.to_string(), vec![addr], port)
            }
            _ => {
                let hint =
                    Some("write virtual_server IP PORT { ... } or virtual_server group NAME { ... }".to_string());
                return self.error(at, "virtual_server needs an address and a port", hint);
            }
        };
        let mut lvs = Lvs::new(LvsScheduler::Wlc);
        let (mut sched_set, mut protocol, mut method) = (false, None::<bool>, LvsMethod::Nat);
        let mut one_packet = false;
        let mut persistence: Option<Persistence> = None;
        let mut timing = Timing::default();
        let mut weight = 1u32;
        let mut quorum = Quorum { quorum: 1, hysteresis: 0, up: None, down: None };
        let mut sorry: Option<Server> = None;
        let mut reals: Vec<(Origin, &[String], &[Stmt])> = Vec::new();
        let vs_known = vs_words();
        for (at, words, block) in statements(body, &vs_known) {
            let kw = words.first().map(String::as_str).unwrap_or_default();
            let args = words.get(1..).unwrap_or_default();
            if kw != "real_server" && vs_known.contains(&kw) {
                self.no_block(at, kw, block);
            }
            match kw {
                "real_server" => match block {
                    Some(block) => reals.push((at.clone(), args, block)),
                    None => self.error(
                        at,
                        "real_server has no block",
                        Some("write real_server IP PORT { weight 1 ... }".into()),
                    ),
                },
                "lb_algo" | "lvs_sched" => {
                    if let Some(v) = self.one(at, kw, args) {
                        match LvsScheduler::from_name(v) {
                            Some(s) => {
                                lvs.scheduler = s;
                                sched_set = true;
                            }
                            None => {
                                let names = LvsScheduler::ALL.iter().map(|s| s.name());
                                let problem = match crate::did_you_mean(v, names) {
                                    Some(best) => Problem::invalid(format!("unknown lvs_sched '{v}'"))
                                        .hint(format!("did you mean {best}?")),
                                    None => Problem::invalid(format!("unknown lvs_sched '{v}'"))
                                        .hint("the IPVS schedulers: rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh"),
                                };
                                self.report(at, problem);
                            }
                        }
                    }
                }
                "sh-port" | "mh-port" => lvs.port = true,
                "sh-fallback" | "mh-fallback" => lvs.fallback = true,
                "flag-1" | "flag-2" | "flag-3" | "hashed" => {}
                "ops" => one_packet = true,
                "lb_kind" | "lvs_method" => match args.first().map(String::as_str) {
                    Some("NAT") => method = LvsMethod::Nat,
                    Some(m @ ("DR" | "TUN")) => {
                        method = if m == "DR" { LvsMethod::Dr } else { LvsMethod::Tun };
                        self.warn(at, format!("lvs_method {m} is served by proxying: the real servers see connections from this host, not from the clients, and reply through it (no VIP on their loopback is needed)"), None);
                    }
                    Some(other) => self.error(
                        at,
                        format!("unknown routing method '{other}'"),
                        Some("NAT, DR or TUN (upper case)".into()),
                    ),
                    None => self.error(at, format!("'{kw}' needs a method"), Some("NAT, DR or TUN".into())),
                },
                "protocol" => match self.one(at, kw, args).map(str::to_ascii_uppercase).as_deref() {
                    Some("TCP") => protocol = Some(false),
                    Some("UDP") => protocol = Some(true),
                    Some("SCTP") => self.report(at, Problem::unsupported("protocol SCTP is not supported")),
                    Some(other) => {
                        self.error(at, format!("unknown protocol '{other}'"), Some("TCP, UDP or SCTP".into()))
                    }
                    None => {}
                },
                "persistence_timeout" => {
                    let timeout = match args.first() {
                        None => Some(PERSISTENCE_DEFAULT),
                        Some(v) => match parse_number::<u64>(v, kw) {
                            Ok(n @ 1..=2_678_400) => Some(Duration::from_secs(n)),
                            Ok(_) => {
                                self.error(
                                    at,
                                    format!("persistence_timeout {v} is out of range"),
                                    Some("1 to 2678400 seconds".into()),
                                );
                                None
                            }
                            Err(e) => {
                                self.report(at, e.into());
                                None
                            }
                        },
                    };
                    if let Some(timeout) = timeout {
                        let p = persistence.get_or_insert(Persistence { timeout, prefix_v4: 32, prefix_v6: 128 });
                        p.timeout = timeout;
                    }
                }
                "persistence_granularity" => {
                    if let Some(v) = self.one(at, kw, args) {
                        match granularity(v) {
                            Some((v4, v6)) => {
                                let p = persistence.get_or_insert(Persistence {
                                    timeout: PERSISTENCE_DEFAULT,
                                    prefix_v4: 32,
                                    prefix_v6: 128,
                                });
                                if let Some(v4) = v4 {
                                    p.prefix_v4 = v4;
                                }
                                if let Some(v6) = v6 {
                                    p.prefix_v6 = v6;
                                }
                            }
                            None => self.error(
                                at,
                                format!("invalid persistence_granularity '{v}'"),
                                Some("an IPv4 netmask (255.255.255.0) or an IPv6 prefix length (64)".into()),
                            ),
                        }
                    }
                }
                "persistence_engine" => {
                    self.report(at, Problem::unsupported("persistence_engine (SIP) is not supported"))
                }
                "sorry_server" => match args {
                    [ip, rest @ ..] => match (ip.parse::<IpAddr>(), rest.first().map(|p| p.parse::<u16>())) {
                        (Ok(ip), None) => sorry = Some(sorry_server(ip, vs_port, at)),
                        (Ok(ip), Some(Ok(port))) => sorry = Some(sorry_server(ip, port, at)),
                        _ => self.error(at, format!("Invalid sorry server IP address {}", args.join(" ")), None),
                    },
                    [] => self.error(
                        at,
                        "'sorry_server' needs an address",
                        Some("e.g. sorry_server 192.168.200.200 1358".into()),
                    ),
                },
                "sorry_server_inhibit" | "sorry_server_lvs_method" | "ip_family" | "snmp_name" | "omega" => {}
                // Removal and weight 0 are the same for a proxy: open connections go on.
                "inhibit_on_failure" => {}
                "ha_suspend" => self.warn(
                    at,
                    "'ha_suspend' is ignored: checks run whether or not this node holds the address",
                    None,
                ),
                "smtp_alert" => self.warn(
                    at,
                    "'smtp_alert' is ignored: fulcrum does not send mail; use notify_up/notify_down",
                    None,
                ),
                "weight" => {
                    if let Some(w) = self.u32_in(at, kw, args, 1) {
                        weight = w;
                    }
                }
                "quorum" => {
                    if let Some(q) = self.u32_in(at, kw, args, 1) {
                        quorum.quorum = q;
                    }
                }
                "hysteresis" => {
                    if let Some(h) = self.u32_in(at, kw, args, 0) {
                        quorum.hysteresis = h;
                    }
                }
                "quorum_up" | "quorum_down" => {
                    let command = self.command(at, kw, args);
                    if kw == "quorum_up" {
                        quorum.up = command;
                    } else {
                        quorum.down = command;
                    }
                }
                k => {
                    if !self.timing(at, k, args, &mut timing, true) {
                        self.report(at, Problem::unknown("virtual_server keyword", k, vs_known.iter().copied()));
                    }
                }
            }
        }
        if !sched_set {
            self.warn(at, "no scheduler set (lb_algo/lvs_sched): keepalived's default wlc is used", None);
        }
        if binds.iter().any(|b| b.port() == 0) {
            let hint =
                Some("a proxy listens on given ports: write one virtual_server (or group entry) per port".to_string());
            return self.error(at, "a virtual server on port 0 (every port of the address) is not supported", hint);
        }
        let mut servers = Vec::new();
        for (rs_at, rs_args, rs_body) in reals {
            if let Some(mut server) = self.real_server(&rs_at, rs_args, rs_body, vs_port, &timing, weight) {
                if servers.iter().any(|s: &Server| s.addr == server.addr) {
                    self.warn(&rs_at, format!("real server {} is duplicated - removing second rs", server.name), None);
                    continue;
                }
                server.maxconn = 0;
                servers.push(server);
            }
        }
        let udp = match protocol {
            Some(udp) => udp,
            None => {
                self.warn(
                    at,
                    format!("virtual server {name}: no protocol set - defaulting to UDP, as keepalived does"),
                    Some("write protocol TCP if the service is TCP".into()),
                );
                true
            }
        };
        if one_packet && !udp {
            self.warn(at, "one packet scheduling requires UDP - resetting", None);
            one_packet = false;
        }
        let name = if udp { format!("{name}/udp") } else { name };
        if servers.is_empty() {
            let hint = Some("add real_server IP PORT { ... }".to_string());
            return self.error(at, format!("virtual server {name} has no real servers"), hint);
        }
        let total: u64 = servers.iter().map(|s| u64::from(s.weight)).sum();
        if u64::from(quorum.quorum) > total {
            self.warn(
                at,
                format!(
                    "quorum {} exceeds total weight of real servers {total}, reducing quorum to {total}",
                    quorum.quorum
                ),
                None,
            );
            quorum.quorum = u32::try_from(total).unwrap_or(u32::MAX).max(1);
        }
        if quorum.hysteresis >= quorum.quorum {
            quorum.hysteresis = quorum.quorum - 1;
        }
        for s in &mut servers {
            s.forward = s.forward.or(Some(method));
        }
        servers.extend(sorry);
        let parts = crate::lvs::ServiceParts {
            name: name.clone(),
            origin: at.clone(),
            binds: binds.clone(),
            udp,
            lvs,
            method,
            one_packet,
            persistence,
            quorum: Some(quorum),
            servers,
        };
        let (frontend, backend) = crate::lvs::virtual_service(parts, &fulcrum_model::IpvsTimeouts::default());
        for addr in binds {
            self.out.binds.push(BindRef { frontend: name.clone(), addr, udp, origin: at.clone() });
        }
        if self.out.backends.iter().any(|b| b.name == name) {
            return self.error(at, format!("virtual server {name} is defined twice"), None);
        }
        self.out.frontends.push(frontend);
        self.out.backends.push(backend);
    }

    /// `real_server IP [PORT] { ... }`
    fn real_server(
        &mut self,
        at: &Origin,
        args: &[String],
        body: &[Stmt],
        vs_port: u16,
        outer: &Timing,
        default_weight: u32,
    ) -> Option<Server> {
        let ip = args.first().and_then(|ip| ip.parse::<IpAddr>().ok());
        let port = match args.get(1) {
            None => Some(vs_port),
            Some(p) => p.parse::<u16>().ok(),
        };
        let (Some(ip), Some(port)) = (ip, port) else {
            self.error(
                at,
                format!("Invalid real server ip address/port {}", args.join("/")),
                Some("write real_server IP PORT { ... }".into()),
            );
            return None;
        };
        self.extra(at, "real_server", args, 2);
        let addr = SocketAddr::new(ip, port);
        let mut server = Server::new(addr.to_string(), addr);
        server.origin = at.clone();
        server.weight = default_weight;
        let mut timing = Timing::default();
        let mut checkers: Vec<(Origin, &str, &[String], &[Stmt])> = Vec::new();
        let known: Vec<&str> = with_timing(RS_OWN).into_iter().chain(CHECKERS.iter().copied()).collect();
        for (at, words, block) in statements(body, &known) {
            let kw = words.first().map(String::as_str).unwrap_or_default();
            let args = words.get(1..).unwrap_or_default();
            if CHECKERS.contains(&kw) {
                match block {
                    Some(block) => checkers.push((at.clone(), kw, args, block)),
                    None => self.error(at, format!("{kw} has no block"), Some(format!("write {kw} {{ ... }}"))),
                }
                continue;
            }
            if known.contains(&kw) {
                self.no_block(at, kw, block);
            }
            match kw {
                "weight" => {
                    if let Some(w) = self.u32_in(at, kw, args, 0) {
                        server.weight = w;
                    }
                }
                "uthreshold" | "lthreshold" => {
                    if let Some(n) = self.u32_in(at, kw, args, 0) {
                        *(if kw == "uthreshold" { &mut server.upper_threshold } else { &mut server.lower_threshold }) =
                            n;
                    }
                }
                "notify_up" => server.notify_up = self.command(at, kw, args),
                "notify_down" => server.notify_down = self.command(at, kw, args),
                "lvs_method" | "lb_kind" => {
                    server.forward = match args.first().map(String::as_str) {
                        Some("DR") => Some(LvsMethod::Dr),
                        Some("TUN") => Some(LvsMethod::Tun),
                        _ => Some(LvsMethod::Nat),
                    }
                }
                "inhibit_on_failure" | "snmp_name" => {}
                "smtp_alert" => self.warn(
                    at,
                    "'smtp_alert' is ignored: fulcrum does not send mail; use notify_up/notify_down",
                    None,
                ),
                k => {
                    if !self.timing(at, k, args, &mut timing, true) {
                        self.report(at, Problem::unknown("real_server keyword", k, known.iter().copied()));
                    }
                }
            }
        }
        let timing = timing.under(outer);
        server.start_down = timing.alpha.unwrap_or(false);
        for (c_at, kind, c_args, c_body) in checkers {
            self.extra(&c_at, kind, c_args, 0);
            if let Some(checker) = self.checker(&c_at, kind, c_body, addr, &timing) {
                server.checkers.push(checker);
            }
        }
        server.check = !server.checkers.is_empty();
        if !server.check {
            server.start_down = false;
        }
        Some(server)
    }

    /// One checker block.
    fn checker(
        &mut self,
        at: &Origin,
        kind: &str,
        body: &[Stmt],
        server: SocketAddr,
        outer: &Timing,
    ) -> Option<Checker> {
        if UNSUPPORTED_CHECKERS.contains(&kind) {
            self.report(
                at,
                Problem::unsupported(format!("{kind} is not supported yet"))
                    .hint("TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK and DNS_CHECK are"),
            );
            return None;
        }
        let mut timing = Timing::default();
        let (mut connect_ip, mut connect_port, mut bind_ip, mut bind_port) = (None, None, None, None);
        let mut urls = Vec::new();
        let (mut misc_path, mut misc_timeout, mut misc_dynamic, mut user) = (None, None, false, None);
        let (mut dns_type, mut dns_name) = ("SOA".to_string(), String::new());
        let mut sni = false;
        let checker_known = with_timing(CHECKER_OWN);
        for (at, words, block) in statements(body, &checker_known) {
            let kw = words.first().map(String::as_str).unwrap_or_default();
            let args = words.get(1..).unwrap_or_default();
            if kw != "url" && checker_known.contains(&kw) {
                self.no_block(at, kw, block);
            }
            let http = matches!(kind, "HTTP_GET" | "SSL_GET");
            match kw {
                "url" if http => match block {
                    Some(block) => {
                        if let Some(url) = self.url(at, block) {
                            urls.push(url);
                        }
                    }
                    None => self.error(at, "url has no block", Some("write url { path / status_code 200 }".into())),
                },
                "nb_get_retry" if http => {
                    self.warn(at, "nb_get_retry is deprecated - please use 'retry'", None);
                    timing.retry = self.u32_in(at, kw, args, 0);
                }
                "connect_ip" if kind != "MISC_CHECK" => connect_ip = self.ip(at, kw, args),
                "connect_port" if kind != "MISC_CHECK" => {
                    connect_port = self.u32_in(at, kw, args, 1).and_then(|p| u16::try_from(p).ok())
                }
                "bindto" if kind != "MISC_CHECK" => bind_ip = self.ip(at, kw, args),
                "bind_port" if kind != "MISC_CHECK" => {
                    bind_port = self.u32_in(at, kw, args, 1).and_then(|p| u16::try_from(p).ok())
                }
                "bind_if" | "fwmark" | "log_all_failures" | "fast_recovery" if kind != "MISC_CHECK" => {}
                "http_protocol" if http => {
                    if !matches!(args.first().map(String::as_str), Some("1.0" | "1.0C" | "1.0c" | "1.1")) {
                        self.error(at, "http_protocol is 1.0, 1.0C or 1.1", None);
                    }
                }
                "enable_sni" if kind == "SSL_GET" => sni = true,
                "misc_path" if kind == "MISC_CHECK" => misc_path = self.command(at, kw, args),
                "misc_timeout" if kind == "MISC_CHECK" => {
                    misc_timeout = self.u32_in(at, kw, args, 0).map(|s| Duration::from_secs(u64::from(s)))
                }
                "misc_dynamic" if kind == "MISC_CHECK" => misc_dynamic = true,
                "user" if kind == "MISC_CHECK" => user = args.first().cloned(),
                "type" if kind == "DNS_CHECK" => match args.first() {
                    Some(t) if fulcrum_health_type(t) => dns_type = t.to_ascii_uppercase(),
                    _ => self.error(at, "DNS_CHECK type is one of A NS CNAME SOA MX TXT AAAA RRSIG DNSKEY", None),
                },
                "name" if kind == "DNS_CHECK" => dns_name = args.first().cloned().unwrap_or_default(),
                k => {
                    if !self.timing(at, k, args, &mut timing, false) {
                        self.report(at, Problem::unknown(&format!("{kind} keyword"), k, checker_known.iter().copied()));
                    }
                }
            }
        }
        let timing = timing.under(outer);
        let (default_retry, default_pause) = match kind {
            "HTTP_GET" | "SSL_GET" => (1, Duration::from_secs(3)),
            "DNS_CHECK" => (3, timing.delay_loop.unwrap_or(Duration::from_secs(60))),
            "MISC_CHECK" => (0, Duration::from_secs(1)),
            _ => (1, Duration::from_secs(1)),
        };
        let target = SocketAddr::new(connect_ip.unwrap_or(server.ip()), connect_port.unwrap_or(server.port()));
        if target.port() == 0 && kind != "MISC_CHECK" {
            self.error(
                at,
                format!("{kind} of a real server without a port needs connect_port"),
                Some("add connect_port PORT".into()),
            );
            return None;
        }
        let kind = match kind {
            "TCP_CHECK" => CheckerKind::Tcp,
            "HTTP_GET" | "SSL_GET" => {
                if urls.is_empty() {
                    self.error(at, format!("{kind} has no url"), Some("add url { path / status_code 200 }".into()));
                    return None;
                }
                CheckerKind::HttpGet { tls: kind == "SSL_GET", urls, virtualhost: timing.virtualhost.clone(), sni }
            }
            "MISC_CHECK" => {
                let Some(path) = misc_path else {
                    self.error(
                        at,
                        "No script path has been specified for MISC_CHECK",
                        Some("add misc_path \"/path/to/check args\"".into()),
                    );
                    return None;
                };
                CheckerKind::Misc { path, timeout: misc_timeout, dynamic: misc_dynamic, user }
            }
            _ => CheckerKind::Dns { kind: dns_type, name: dns_name },
        };
        Some(Checker {
            kind,
            target,
            bind: bind_ip.map(|ip| SocketAddr::new(ip, bind_port.unwrap_or(0))),
            timeout: timing.connect_timeout.unwrap_or(Duration::from_secs(5)),
            interval: timing.delay_loop.unwrap_or(Duration::from_secs(60)),
            retry: timing.retry.unwrap_or(default_retry),
            delay_before_retry: timing.delay_before_retry.unwrap_or(default_pause),
            warmup: timing.warmup,
        })
    }

    /// `url { path P; digest HEX; status_code C [C-D]...; virtualhost H }`
    fn url(&mut self, at: &Origin, body: &[Stmt]) -> Option<UrlCheck> {
        let mut url = UrlCheck { path: String::new(), digest: None, status: Vec::new(), virtualhost: None };
        for item in body {
            for words in super::segments(&item.words, URL_WORDS, |_| Some(1)) {
                let kw = words.first().map(String::as_str).unwrap_or_default();
                let args = words.get(1..).unwrap_or_default();
                match kw {
                    "path" => url.path = args.first().cloned().unwrap_or_default(),
                    "digest" => match args.first() {
                        Some(d) if d.len() == 32 && d.bytes().all(|b| b.is_ascii_hexdigit()) => {
                            url.digest = Some(d.to_ascii_lowercase())
                        }
                        _ => self.error(
                            &item.at,
                            "digest is 32 hexadecimal digits (the MD5 of the body, as genhash prints it)",
                            None,
                        ),
                    },
                    "status_code" => {
                        for code in args {
                            match status_range(code) {
                                Some(range) => url.status.push(range),
                                None => self.error(
                                    &item.at,
                                    format!("Invalid HTTP_GET status code '{code}'"),
                                    Some("codes or ranges within 100-599, e.g. status_code 200 301-302".into()),
                                ),
                            }
                        }
                    }
                    "virtualhost" => url.virtualhost = args.first().cloned(),
                    "regex" | "regex_no_match" | "regex_options" | "regex_min_offset" | "regex_max_offset"
                    | "regex_stack" => {
                        self.report(
                            &item.at,
                            Problem::unsupported(format!("url '{kw}' is not supported yet"))
                                .hint("digest and status_code are"),
                        );
                    }
                    k => self.report(&item.at, Problem::unknown("url keyword", k, URL_WORDS.iter().copied())),
                }
            }
        }
        if url.path.is_empty() {
            self.error(at, "HTTP/SSL_GET checker url has no path", Some("add path /".into()));
            return None;
        }
        Some(url)
    }

    /// The keywords that cascade; false when `kw` is not one of them.
    fn timing(&mut self, at: &Origin, kw: &str, args: &[String], t: &mut Timing, positive_retry: bool) -> bool {
        match kw {
            "delay_loop" | "connect_timeout" | "delay_before_retry" | "warmup" => {
                if let Some(v) = self.one(at, kw, args) {
                    match parse_seconds(v, kw) {
                        Ok(d) if d.is_zero() && kw != "warmup" && kw != "delay_before_retry" => {
                            self.error(at, format!("{kw} must be greater than 0"), None)
                        }
                        Ok(d) => {
                            *match kw {
                                "delay_loop" => &mut t.delay_loop,
                                "connect_timeout" => &mut t.connect_timeout,
                                "delay_before_retry" => &mut t.delay_before_retry,
                                _ => &mut t.warmup,
                            } = Some(d)
                        }
                        Err(e) => self.report(at, e.into()),
                    }
                }
                true
            }
            "retry" => {
                t.retry = self.u32_in(at, kw, args, u32::from(positive_retry));
                true
            }
            "alpha" => {
                t.alpha = Some(!matches!(args.first().map(String::as_str), Some("off" | "false" | "no")));
                true
            }
            "virtualhost" => {
                t.virtualhost = self.one(at, kw, args).map(str::to_string);
                true
            }
            _ => false,
        }
    }

    fn u32_in(&mut self, at: &Origin, kw: &str, args: &[String], min: u32) -> Option<u32> {
        let v = self.one(at, kw, args)?;
        match parse_number::<u32>(v, kw) {
            Ok(n) if n >= min => Some(n),
            Ok(n) => {
                self.error(at, format!("{kw} {n} is below {min}"), None);
                None
            }
            Err(e) => {
                self.report(at, e.into());
                None
            }
        }
    }

    fn ip(&mut self, at: &Origin, kw: &str, args: &[String]) -> Option<IpAddr> {
        let v = self.one(at, kw, args)?;
        match v.parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.error(at, format!("{kw}: '{v}' is not an IP address"), None);
                None
            }
        }
    }
}

/// The statements of a block, several to a line where keepalived users write them so
/// (`delay_loop 6 lb_algo rr`): `(line, words, block)`, the block going to the line's last.
/// One statement of a block: its line, its words, its block.
type Statement<'a> = (&'a Origin, &'a [String], Option<&'a [Stmt]>);

fn statements<'a>(body: &'a [Stmt], known: &[&str]) -> Vec<Statement<'a>> {
    let mut out = Vec::new();
    for item in body {
        let segments = super::segments(&item.words, known, arity);
        let count = segments.len();
        for (i, words) in segments.into_iter().enumerate() {
            let block = if i + 1 == count { item.block.as_deref() } else { None };
            out.push((&item.at, words, block));
        }
        if count == 0 {
            out.push((&item.at, &item.words[..], item.block.as_deref()));
        }
    }
    out
}

/// How many words an LVS keyword takes for sure (flags none; commands and code lists all).
fn arity(kw: &str) -> Option<usize> {
    match kw {
        "quorum_up"
        | "quorum_down"
        | "notify_up"
        | "notify_down"
        | "misc_path"
        | "status_code"
        | "sorry_server"
        | "persistence_timeout"
        | "lb_kind"
        | "lvs_method"
        | "sorry_server_lvs_method"
        | "alpha"
        | "smtp_alert"
        | "user"
        | "real_server" => None,
        "ops"
        | "sh-port"
        | "sh-fallback"
        | "mh-port"
        | "mh-fallback"
        | "flag-1"
        | "flag-2"
        | "flag-3"
        | "hashed"
        | "inhibit_on_failure"
        | "omega"
        | "ha_suspend"
        | "sorry_server_inhibit"
        | "misc_dynamic"
        | "enable_sni"
        | "fast_recovery"
        | "log_all_failures"
        | "url" => Some(0),
        _ => Some(1),
    }
}

fn fulcrum_health_type(t: &str) -> bool {
    matches!(t.to_ascii_uppercase().as_str(), "A" | "NS" | "CNAME" | "SOA" | "MX" | "TXT" | "AAAA" | "RRSIG" | "DNSKEY")
}

fn sorry_server(ip: IpAddr, port: u16, at: &Origin) -> Server {
    let addr = SocketAddr::new(ip, port);
    let mut s = Server::new(format!("sorry:{addr}"), addr);
    s.origin = at.clone();
    s.backup = true;
    s
}

/// `200` or `301-302` within 100–599.
fn status_range(text: &str) -> Option<(u16, u16)> {
    let (lo, hi) = text.split_once('-').unwrap_or((text, text));
    let (lo, hi) = (lo.parse::<u16>().ok()?, hi.parse::<u16>().ok()?);
    ((100..=599).contains(&lo) && (lo..=599).contains(&hi)).then_some((lo, hi))
}

/// `persistence_granularity`: an IPv4 netmask, or an IPv6 prefix length.
fn granularity(text: &str) -> Option<(Option<u8>, Option<u8>)> {
    if let Ok(mask) = text.parse::<Ipv4Addr>() {
        let bits = u32::from(mask);
        if bits.leading_ones() + bits.trailing_zeros() != 32 {
            return None;
        }
        return Some((u8::try_from(bits.leading_ones()).ok(), None));
    }
    text.parse::<u8>().ok().filter(|p| (1..=128).contains(p)).map(|p| (None, Some(p)))
}

/// `A.B.C.D`, `A.B.C.D-E` (the last octet, or the last group of an IPv6 address, ranges to E).
fn expand_range(text: &str) -> Option<Vec<IpAddr>> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(vec![ip]);
    }
    let (start, end) = text.rsplit_once('-')?;
    match start.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            let end: u8 = end.parse().ok()?;
            (d <= end).then(|| (d..=end).map(|x| IpAddr::V4(Ipv4Addr::new(a, b, c, x))).collect())
        }
        IpAddr::V6(v6) => {
            let mut segs = v6.segments();
            let last = segs[7];
            let end = u16::from_str_radix(end, 16).ok()?;
            (last <= end && end - last < 4096).then(|| {
                (last..=end)
                    .map(|x| {
                        segs[7] = x;
                        IpAddr::V6(std::net::Ipv6Addr::from(segs))
                    })
                    .collect()
            })
        }
    }
}

const CHECKERS: &[&str] = &[
    "HTTP_GET",
    "SSL_GET",
    "TCP_CHECK",
    "MISC_CHECK",
    "DNS_CHECK",
    "SMTP_CHECK",
    "UDP_CHECK",
    "PING_CHECK",
    "FILE_CHECK",
    "BFD_CHECK",
];
const UNSUPPORTED_CHECKERS: &[&str] = &["SMTP_CHECK", "UDP_CHECK", "PING_CHECK", "FILE_CHECK", "BFD_CHECK"];
/// The keywords every level takes, cascading from the virtual server to its checkers.
const TIMING_WORDS: &[&str] =
    &["delay_loop", "connect_timeout", "retry", "delay_before_retry", "warmup", "alpha", "virtualhost"];
/// A virtual server's own keywords (with [`TIMING_WORDS`]: [`vs_words`]).
const VS_OWN: &[&str] = &[
    "real_server",
    "lb_algo",
    "lvs_sched",
    "lb_kind",
    "lvs_method",
    "protocol",
    "persistence_timeout",
    "persistence_granularity",
    "persistence_engine",
    "sorry_server",
    "sorry_server_inhibit",
    "sorry_server_lvs_method",
    "ip_family",
    "ha_suspend",
    "ops",
    "sh-port",
    "sh-fallback",
    "mh-port",
    "mh-fallback",
    "flag-1",
    "flag-2",
    "flag-3",
    "hashed",
    "weight",
    "inhibit_on_failure",
    "omega",
    "quorum",
    "hysteresis",
    "quorum_up",
    "quorum_down",
    "smtp_alert",
    "snmp_name",
];
const RS_OWN: &[&str] = &[
    "weight",
    "uthreshold",
    "lthreshold",
    "notify_up",
    "notify_down",
    "inhibit_on_failure",
    "lvs_method",
    "snmp_name",
    "smtp_alert",
];
const CHECKER_OWN: &[&str] = &[
    "url",
    "nb_get_retry",
    "connect_ip",
    "connect_port",
    "bindto",
    "bind_port",
    "bind_if",
    "fwmark",
    "log_all_failures",
    "fast_recovery",
    "http_protocol",
    "enable_sni",
    "misc_path",
    "misc_timeout",
    "misc_dynamic",
    "user",
    "type",
    "name",
];

fn with_timing(own: &[&'static str]) -> Vec<&'static str> {
    own.iter().chain(TIMING_WORDS).copied().collect()
}

/// Every keyword of a virtual server.
pub(super) fn vs_words() -> Vec<&'static str> {
    with_timing(VS_OWN)
}

const URL_WORDS: &[&str] = &[
    "path",
    "digest",
    "status_code",
    "virtualhost",
    "regex",
    "regex_no_match",
    "regex_options",
    "regex_min_offset",
    "regex_max_offset",
    "regex_stack",
];
