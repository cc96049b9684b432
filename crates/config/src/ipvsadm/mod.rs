//! ipvsadm 1.31's command line, read as ipvsadm reads it (popt: grouped short options,
//! attached or separate arguments, `--long=value`), into a [`Command`]: for `fulcrum ctl`
//! (the running table) and for rules files (what `ipvsadm-save -n` prints, one command a
//! line). Errors carry ipvsadm's text and exit status. [`apply`] applies a command to a Model.
mod apply;
pub(crate) mod rules;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub use apply::{apply, service_name, Applied};
pub use rules::words;

/// The `IP Virtual Server version` fulcrum reports, as the kernel's IPVS.
pub const IPVS_VERSION: &str = "1.2.1";
/// ipvsadm's `-v` line.
pub const VERSION_LINE: &str = "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)";

/// A virtual service as ipvsadm names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Tcp(SocketAddr),
    Udp(SocketAddr),
    Sctp(SocketAddr),
    Fwmark(u32, bool),
}

impl Service {
    pub fn addr(&self) -> Option<SocketAddr> {
        match self {
            Service::Tcp(a) | Service::Udp(a) | Service::Sctp(a) => Some(*a),
            Service::Fwmark(..) => None,
        }
    }
}

/// `-g`, `-m`, `-i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    Route,
    Masq,
    Tunnel,
}

/// `-A`/`-E`: what a service is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub service: Service,
    pub scheduler: String,
    /// `-p [T]`: seconds (360 without a value).
    pub persistent: Option<u32>,
    /// `-M`: the prefix length the netmask stands for.
    pub netmask: Option<u8>,
    pub ops: bool,
    pub flags: Vec<String>,
}

/// `-a`/`-e`: what a real server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestSpec {
    pub service: Service,
    pub addr: SocketAddr,
    pub forward: Forward,
    pub weight: u32,
    pub upper: u32,
    pub lower: u32,
}

/// What `-L` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    pub service: Option<Service>,
    pub numeric: bool,
    pub stats: bool,
    pub rate: bool,
    pub thresholds: bool,
    pub persistent_conn: bool,
    pub exact: bool,
    pub nosort: bool,
    pub connections: bool,
    pub timeout: bool,
    pub daemon: bool,
    pub tun_info: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    AddService(ServiceSpec),
    EditService(ServiceSpec),
    DeleteService(Service),
    Clear,
    AddServer(DestSpec),
    EditServer(DestSpec),
    DeleteServer(Service, SocketAddr),
    List(ListOptions),
    Zero(Option<Service>),
    /// `--set tcp tcpfin udp` (seconds; 0 leaves one unchanged).
    Set(u32, u32, u32),
    Save {
        numeric: bool,
    },
    Restore,
    Help,
    Version,
}

/// An ipvsadm error: its message and exit status (2: the command line; 255: the operation;
/// 1: a listing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct IpvsError {
    pub message: String,
    pub code: u8,
}

impl IpvsError {
    pub fn usage(message: impl Into<String>) -> Self {
        IpvsError { message: message.into(), code: 2 }
    }

    pub fn op(message: impl Into<String>) -> Self {
        IpvsError { message: message.into(), code: 255 }
    }
}

/// The "Try ..." line ipvsadm prints when the first option is not a command.
pub fn try_help(program: &str) -> IpvsError {
    IpvsError::op(format!("Try `{program} -h' or '{program} --help' for more information."))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Add,
    Edit,
    Delete,
    Clear,
    List,
    AddDest,
    EditDest,
    DeleteDest,
    Zero,
    Set,
    Save,
    Restore,
}

impl Cmd {
    fn name(self) -> &'static str {
        match self {
            Cmd::Add => "add-service",
            Cmd::Edit => "edit-service",
            Cmd::Delete => "delete-service",
            Cmd::Clear => "flush",
            Cmd::List => "list",
            Cmd::AddDest => "add-server",
            Cmd::EditDest => "edit-server",
            Cmd::DeleteDest => "delete-server",
            Cmd::Zero => "zero",
            Cmd::Set => "set",
            Cmd::Save => "save",
            Cmd::Restore => "restore",
        }
    }
}

/// Every option: long name, short letter, whether it takes a value (`Some(true)` required,
/// `Some(false)` optional), and the name ipvsadm's messages use.
const OPTIONS: &[(&str, Option<char>, Option<bool>, &str)] = &[
    ("tcp-service", Some('t'), Some(true), "service-address"),
    ("udp-service", Some('u'), Some(true), "service-address"),
    ("sctp-service", None, Some(true), "service-address"),
    ("fwmark-service", Some('f'), Some(true), "service-address"),
    ("ipv6", Some('6'), None, "ipv6"),
    ("scheduler", Some('s'), Some(true), "scheduler"),
    ("persistent", Some('p'), Some(false), "persistent"),
    ("netmask", Some('M'), Some(true), "netmask"),
    ("real-server", Some('r'), Some(true), "real-server"),
    ("gatewaying", Some('g'), None, "forwarding-method"),
    ("ipip", Some('i'), None, "forwarding-method"),
    ("masquerading", Some('m'), None, "forwarding-method"),
    ("weight", Some('w'), Some(true), "weight"),
    ("u-threshold", Some('x'), Some(true), "u-threshold"),
    ("l-threshold", Some('y'), Some(true), "l-threshold"),
    ("numeric", Some('n'), None, "numeric"),
    ("connection", Some('c'), None, "connection"),
    ("timeout", None, None, "timeout"),
    ("daemon", None, None, "daemon"),
    ("stats", None, None, "stats"),
    ("rate", None, None, "rate"),
    ("thresholds", None, None, "thresholds"),
    ("persistent-conn", None, None, "persistent-conn"),
    ("nosort", None, None, "nosort"),
    ("sort", None, None, "sort"),
    ("exact", Some('X'), None, "exact"),
    ("tun-info", None, None, "tun-info"),
    ("ops", Some('o'), None, "ops"),
    ("pe", None, Some(true), "pe"),
    ("sched-flags", Some('b'), Some(true), "sched-flags"),
    ("tun-type", None, Some(true), "tun-type"),
    ("tun-port", None, Some(true), "tun-port"),
    ("tun-nocsum", None, None, "tun-nocsum"),
    ("tun-csum", None, None, "tun-csum"),
    ("tun-remcsum", None, None, "tun-remcsum"),
];

const COMMANDS: &[(&str, char, Cmd)] = &[
    ("add-service", 'A', Cmd::Add),
    ("edit-service", 'E', Cmd::Edit),
    ("delete-service", 'D', Cmd::Delete),
    ("clear", 'C', Cmd::Clear),
    ("list", 'L', Cmd::List),
    ("add-server", 'a', Cmd::AddDest),
    ("edit-server", 'e', Cmd::EditDest),
    ("delete-server", 'd', Cmd::DeleteDest),
    ("zero", 'Z', Cmd::Zero),
    ("save", 'S', Cmd::Save),
    ("restore", 'R', Cmd::Restore),
];

/// One option as given: its message name, and its value.
#[derive(Debug)]
struct Given {
    name: &'static str,
    long: &'static str,
    value: Option<String>,
}

/// Parses an ipvsadm command line (without the program name). `program` is how it was called,
/// for the "Try" line.
pub fn parse(program: &str, args: &[String]) -> Result<Command, IpvsError> {
    let first = args.first().ok_or_else(|| try_help(program))?;
    // The command comes first.
    let (cmd, rest_of_first) = match first.as_str() {
        "-h" | "--help" => return Ok(Command::Help),
        "-v" | "--version" => return Ok(Command::Version),
        "--set" => (Cmd::Set, None),
        "--start-daemon" | "--stop-daemon" => {
            return Err(IpvsError::op(
                "connection sync daemons are not run by fulcrum (it proxies; there is no kernel table to sync)",
            ));
        }
        word => {
            if let Some(long) = word.strip_prefix("--") {
                match COMMANDS.iter().find(|(l, _, _)| *l == long) {
                    Some((_, _, c)) => (*c, None),
                    None => return Err(try_help(program)),
                }
            } else if let Some(short) = word.strip_prefix('-') {
                let mut chars = short.chars();
                let letter = chars.next().ok_or_else(|| try_help(program))?;
                let letter = if letter == 'l' { 'L' } else { letter };
                match COMMANDS.iter().find(|(_, s, _)| *s == letter) {
                    Some((_, _, c)) => (*c, Some(chars.as_str().to_string()).filter(|s| !s.is_empty())),
                    None => return Err(try_help(program)),
                }
            } else {
                return Err(try_help(program));
            }
        }
    };
    let mut given: Vec<Given> = Vec::new();
    let mut positional: Vec<String> = Vec::new();
    let mut queue: std::collections::VecDeque<String> = args.iter().skip(1).cloned().collect();
    if let Some(rest) = rest_of_first {
        queue.push_front(format!("-{rest}"));
    }
    while let Some(word) = queue.pop_front() {
        if let Some(long) = word.strip_prefix("--") {
            let (name, attached) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            if COMMANDS.iter().any(|(l, _, _)| *l == name) || name == "set" || name == "help" || name == "version" {
                return Err(IpvsError::usage(format!("invalid option `{word}'")));
            }
            let Some(&(long, _, takes, msg)) = OPTIONS.iter().find(|(l, _, _, _)| *l == name) else {
                return Err(IpvsError::op(format!("{word}: unknown option")));
            };
            let value = match (takes, attached) {
                (None, Some(_)) => return Err(IpvsError::op(format!("{word}: option does not take an argument"))),
                (None, None) => None,
                (Some(_), Some(v)) => Some(v),
                (Some(true), None) => {
                    Some(queue.pop_front().ok_or_else(|| IpvsError::op(format!("{word}: missing argument")))?)
                }
                (Some(false), None) => take_optional(&mut queue),
            };
            given.push(Given { name: msg, long, value });
        } else if let Some(cluster) = word.strip_prefix('-').filter(|c| !c.is_empty()) {
            for (at, letter) in cluster.char_indices() {
                if COMMANDS.iter().any(|(_, s, _)| *s == letter) || letter == 'l' || letter == 'h' || letter == 'v' {
                    return Err(IpvsError::usage(format!("invalid option `-{letter}'")));
                }
                let Some(&(long, _, takes, msg)) = OPTIONS.iter().find(|(_, s, _, _)| *s == Some(letter)) else {
                    return Err(IpvsError::op(format!("-{letter}: unknown option")));
                };
                let attached = cluster.get(at + letter.len_utf8()..).unwrap_or_default();
                let value = match takes {
                    None => None,
                    Some(required) => {
                        let value = if !attached.is_empty() {
                            Some(attached.to_string())
                        } else if required {
                            Some(
                                queue
                                    .pop_front()
                                    .ok_or_else(|| IpvsError::op(format!("-{letter}: missing argument")))?,
                            )
                        } else {
                            take_optional(&mut queue)
                        };
                        given.push(Given { name: msg, long, value });
                        break;
                    }
                };
                given.push(Given { name: msg, long, value });
            }
        } else {
            positional.push(word);
        }
    }
    build(cmd, given, positional)
}

/// `-p`'s optional value: the next word, when it is not an option.
fn take_optional(queue: &mut std::collections::VecDeque<String>) -> Option<String> {
    if queue.front().is_some_and(|w| !w.starts_with('-')) {
        queue.pop_front()
    } else {
        None
    }
}

fn build(cmd: Cmd, given: Vec<Given>, positional: Vec<String>) -> Result<Command, IpvsError> {
    if cmd == Cmd::Set {
        if positional.len() != 3 {
            return Err(IpvsError::usage("--set option requires 3 timeout values"));
        }
        let t = |s: &String| {
            s.parse::<u32>()
                .ok()
                .filter(|v| *v <= 2_678_400)
                .ok_or_else(|| IpvsError::usage(format!("invalid timeout value `{s}' specified")))
        };
        illegal(cmd, &given, &[])?;
        return Ok(Command::Set(t(&positional[0])?, t(&positional[1])?, t(&positional[2])?));
    }
    if let Some(extra) = positional.first() {
        return Err(IpvsError::usage(format!("unexpected argument {extra}")));
    }
    let has = |name: &str| given.iter().any(|g| g.long == name);
    let value = |name: &str| given.iter().rev().find(|g| g.long == name).and_then(|g| g.value.clone());
    if given.iter().filter(|g| g.name == "forwarding-method").count() > 1 {
        return Err(IpvsError::usage("multiple 'forwarding-method' options specified"));
    }
    let service = parse_service(&given)?;
    let allowed: &[&str] = match cmd {
        Cmd::Add | Cmd::Edit => {
            &["service-address", "ipv6", "scheduler", "persistent", "netmask", "ops", "pe", "sched-flags"]
        }
        Cmd::Delete => &["service-address", "ipv6"],
        Cmd::Clear | Cmd::Restore => &[],
        Cmd::List => &[
            "service-address",
            "ipv6",
            "numeric",
            "connection",
            "timeout",
            "daemon",
            "stats",
            "rate",
            "thresholds",
            "persistent-conn",
            "nosort",
            "sort",
            "exact",
            "tun-info",
        ],
        Cmd::AddDest | Cmd::EditDest => &[
            "service-address",
            "ipv6",
            "real-server",
            "forwarding-method",
            "weight",
            "u-threshold",
            "l-threshold",
            "tun-type",
            "tun-port",
            "tun-nocsum",
            "tun-csum",
            "tun-remcsum",
        ],
        Cmd::DeleteDest => &["service-address", "ipv6", "real-server"],
        Cmd::Zero => &["service-address", "ipv6"],
        Cmd::Save => &["numeric"],
        Cmd::Set => &[],
    };
    illegal(cmd, &given, allowed)?;
    let need_service =
        matches!(cmd, Cmd::Add | Cmd::Edit | Cmd::Delete | Cmd::AddDest | Cmd::EditDest | Cmd::DeleteDest);
    if need_service && service.is_none() {
        return Err(IpvsError::usage(format!(
            "You need to supply the 'service-address' option for the '{}' command",
            cmd.name()
        )));
    }
    let need_dest = matches!(cmd, Cmd::AddDest | Cmd::EditDest | Cmd::DeleteDest);
    if need_dest && !has("real-server") {
        return Err(IpvsError::usage(format!(
            "You need to supply the 'real-server' option for the '{}' command",
            cmd.name()
        )));
    }
    match cmd {
        Cmd::Add | Cmd::Edit => {
            let Some(service) = service else {
                return Err(IpvsError::usage("illegal virtual server address[:port] specified"));
            };
            let persistent = if has("persistent") {
                Some(match value("persistent") {
                    None => 360,
                    Some(v) => v
                        .parse::<u32>()
                        .ok()
                        .filter(|t| (1..=2_678_400).contains(t))
                        .ok_or_else(|| IpvsError::usage(format!("invalid timeout value `{v}' specified")))?,
                })
            } else {
                None
            };
            let netmask = match value("netmask") {
                None => None,
                Some(m) => Some(parse_netmask(&m, &service)?),
            };
            let scheduler = value("scheduler").unwrap_or_else(|| "wlc".into());
            let flags: Vec<String> = value("sched-flags")
                .map(|f| f.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
                .unwrap_or_default();
            for flag in &flags {
                let ok = match flag.as_str() {
                    "flag-1" | "flag-2" | "flag-3" => true,
                    "sh-fallback" | "sh-port" => scheduler == "sh",
                    "mh-fallback" | "mh-port" => scheduler == "mh",
                    _ => return Err(IpvsError::usage(format!("invalid scheduler flag `{flag}'"))),
                };
                if !ok {
                    return Err(IpvsError::usage(format!("incompatible scheduler flag `{flag}'")));
                }
            }
            if service.addr().is_some_and(|a| a.port() == 0) && persistent.is_none() {
                return Err(IpvsError::usage("Zero port specified for non-persistent service"));
            }
            let ops = has("ops");
            if ops && matches!(service, Service::Tcp(_) | Service::Sctp(_)) {
                return Err(IpvsError::usage("One-Packet Scheduling is only for UDP virtual services"));
            }
            if has("pe") {
                return Err(IpvsError::op("Scheduler or persistence engine not found"));
            }
            let spec = ServiceSpec { service, scheduler, persistent, netmask, ops, flags };
            Ok(if cmd == Cmd::Add { Command::AddService(spec) } else { Command::EditService(spec) })
        }
        Cmd::Delete => service
            .map(Command::DeleteService)
            .ok_or_else(|| IpvsError::usage("illegal virtual server address[:port] specified")),
        Cmd::Clear => Ok(Command::Clear),
        Cmd::Restore => Ok(Command::Restore),
        Cmd::Save => Ok(Command::Save { numeric: has("numeric") }),
        Cmd::Zero => Ok(Command::Zero(service)),
        Cmd::List => {
            let opts = ListOptions {
                service,
                numeric: has("numeric"),
                stats: has("stats"),
                rate: has("rate"),
                thresholds: has("thresholds"),
                persistent_conn: has("persistent-conn"),
                exact: has("exact"),
                nosort: has("nosort"),
                connections: has("connection"),
                timeout: has("timeout"),
                daemon: has("daemon"),
                tun_info: has("tun-info"),
            };
            let exclusive = [opts.connections, opts.service.is_some(), opts.timeout, opts.daemon];
            if exclusive.iter().filter(|b| **b).count() > 1 {
                let names = ["connection", "service-address", "timeout", "daemon"];
                let set: Vec<&str> = names.iter().zip(exclusive).filter(|(_, b)| *b).map(|(n, _)| *n).collect();
                return Err(IpvsError::usage(format!(
                    "The option '{}' conflicts with the '{}' option in the 'list' command",
                    set.get(1).copied().unwrap_or_default(),
                    set.first().copied().unwrap_or_default()
                )));
            }
            let formats = opts.stats || opts.rate || opts.thresholds;
            if ((opts.connections || opts.timeout || opts.daemon) && formats)
                || ((opts.timeout || opts.daemon) && opts.persistent_conn)
            {
                return Err(IpvsError::usage("options conflicts in the list command"));
            }
            Ok(Command::List(opts))
        }
        Cmd::AddDest | Cmd::EditDest | Cmd::DeleteDest => {
            let Some(service) = service else {
                return Err(IpvsError::usage("illegal virtual server address[:port] specified"));
            };
            let text = value("real-server").unwrap_or_default();
            let vport = service.addr().map_or(0, |a| a.port());
            let mut addr = parse_addr(&text, vport)
                .ok_or_else(|| IpvsError::usage("illegal real server address[:port] specified"))?;
            if cmd == Cmd::DeleteDest {
                return Ok(Command::DeleteServer(service, addr));
            }
            let forward = if has("masquerading") {
                Forward::Masq
            } else if has("ipip") {
                Forward::Tunnel
            } else {
                Forward::Route
            };
            // Direct routing and tunnels cannot change the port.
            if forward != Forward::Masq && !matches!(service, Service::Fwmark(..)) {
                addr.set_port(vport);
            }
            let number = |name: &str, what: &str, max: u32| -> Result<u32, IpvsError> {
                match value(name) {
                    None => Ok(if name == "weight" { 1 } else { 0 }),
                    Some(v) => v
                        .parse::<u32>()
                        .ok()
                        .filter(|n| *n <= max)
                        .ok_or_else(|| IpvsError::usage(format!("illegal {what} specified"))),
                }
            };
            let weight = number("weight", "weight", 65_535)?;
            let upper = number("u-threshold", "u_threshold", i32::MAX as u32)?;
            let lower = number("l-threshold", "l_threshold", i32::MAX as u32)?;
            if lower > upper && upper != 0 {
                return Err(IpvsError::op("Numerical result out of range"));
            }
            let spec = DestSpec { service, addr, forward, weight, upper, lower };
            Ok(if cmd == Cmd::AddDest { Command::AddServer(spec) } else { Command::EditServer(spec) })
        }
        Cmd::Set => Ok(Command::Set(0, 0, 0)),
    }
}

/// The first option not allowed with `cmd`.
fn illegal(cmd: Cmd, given: &[Given], allowed: &[&str]) -> Result<(), IpvsError> {
    match given.iter().find(|g| !allowed.contains(&g.name)) {
        Some(g) => Err(IpvsError::usage(format!("Illegal '{}' option with the '{}' command", g.name, cmd.name()))),
        None => Ok(()),
    }
}

fn parse_service(given: &[Given]) -> Result<Option<Service>, IpvsError> {
    let services: Vec<&Given> = given.iter().filter(|g| g.name == "service-address").collect();
    if services.len() > 1 {
        return Err(IpvsError::usage("multiple 'service-address' options specified"));
    }
    let ipv6 = given.iter().any(|g| g.long == "ipv6");
    let Some(g) = services.first() else {
        if ipv6 {
            return Err(IpvsError::usage("-6 used before -f\n"));
        }
        return Ok(None);
    };
    let text = g.value.clone().unwrap_or_default();
    let bad = || IpvsError::usage("illegal virtual server address[:port] specified");
    Ok(Some(match g.long {
        "fwmark-service" => {
            let mark = text
                .parse::<u32>()
                .ok()
                .filter(|m| *m > 0)
                .ok_or_else(|| IpvsError::usage(format!("invalid fwmark value `{text}' specified")))?;
            Service::Fwmark(mark, ipv6)
        }
        long => {
            if ipv6 {
                return Err(IpvsError::usage("-6 used before -f\n"));
            }
            let addr = parse_addr(&text, 0).ok_or_else(bad)?;
            match long {
                "tcp-service" => Service::Tcp(addr),
                "udp-service" => Service::Udp(addr),
                _ => Service::Sctp(addr),
            }
        }
    }))
}

/// `host[:port]` or `[v6]:port` (a bare IPv6 address too); ports by number or by the name
/// /etc/services gives them; hosts by address, or `localhost`.
pub fn parse_addr(text: &str, default_port: u16) -> Option<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, default_port));
    }
    if text.starts_with('[') {
        let (host, port) = text.strip_prefix('[')?.split_once("]:")?;
        return Some(SocketAddr::new(host.parse().ok()?, port_number(port)?));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) => (h, port_number(p)?),
        None => (text, default_port),
    };
    let ip: IpAddr = match host {
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        h => h.parse().ok()?,
    };
    Some(SocketAddr::new(ip, port))
}

/// A port number, or a service name from /etc/services.
fn port_number(text: &str) -> Option<u16> {
    if let Ok(n) = text.parse::<u16>() {
        return Some(n);
    }
    let services = std::fs::read_to_string("/etc/services").ok()?;
    services.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or_default();
        let mut words = line.split_whitespace();
        let name = words.next()?;
        let port = words.next()?.split('/').next()?.parse().ok()?;
        (name == text || words.any(|alias| alias == text)).then_some(port)
    })
}

/// A service's port by name, for listings without `-n`.
pub fn port_name(port: u16, udp: bool) -> Option<String> {
    let services = std::fs::read_to_string("/etc/services").ok()?;
    let proto = if udp { "udp" } else { "tcp" };
    services.lines().find_map(|line| {
        let mut words = line.split('#').next().unwrap_or_default().split_whitespace();
        let name = words.next()?;
        let (p, pr) = words.next()?.split_once('/')?;
        (p.parse::<u16>().ok()? == port && pr == proto).then(|| name.to_string())
    })
}

/// `-M`: an IPv4 netmask (as its prefix length), or for IPv6 a prefix length.
fn parse_netmask(text: &str, service: &Service) -> Result<u8, IpvsError> {
    let v6 = match service {
        Service::Fwmark(_, v6) => *v6,
        other => other.addr().is_some_and(|a| a.is_ipv6()),
    };
    if v6 {
        return text
            .parse::<u8>()
            .ok()
            .filter(|p| (1..=128).contains(p))
            .ok_or_else(|| IpvsError::usage("illegal ipv6 netmask specified"));
    }
    let mask: Ipv4Addr =
        text.parse().map_err(|_| IpvsError::usage("illegal virtual server persistent mask specified"))?;
    let bits = u32::from(mask);
    if bits.leading_ones() + bits.trailing_zeros() != 32 {
        return Err(IpvsError::usage("illegal virtual server persistent mask specified"));
    }
    u8::try_from(bits.leading_ones()).map_err(|_| IpvsError::usage("illegal virtual server persistent mask specified"))
}

#[cfg(test)]
mod tests;
