//! ipvsadm's text: `-L` in its formats (default, `--stats`, `--rate`, `--thresholds`,
//! `--persistent-conn`, `--timeout`), and `-S`. Column layouts, number scaling and sorting are
//! ipvsadm 1.31's.
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use fulcrum_config::ipvsadm::{port_name, IpvsError, ListOptions, Service, IPVS_VERSION};
use fulcrum_model::{Algorithm, Backend, LvsMethod, Mode, Model};
use fulcrum_proxy::{BackendRt, Snapshot};

/// The connection table size ipvsadm's header reports (the kernel's default).
const TABLE_SIZE: u32 = 4096;

/// ipvsadm's `-h`.
pub(crate) fn help() -> String {
    include_str!("help.txt").to_string()
}

/// One virtual service of the table: an address of an LVS backend's frontend.
struct Row<'m> {
    udp: bool,
    addr: SocketAddr,
    backend: &'m Backend,
    live: Option<&'m Arc<BackendRt>>,
}

fn rows<'m>(model: &'m Model, snap: Option<&'m Arc<Snapshot>>, nosort: bool) -> Vec<Row<'m>> {
    let mut rows = Vec::new();
    for be in model.backends.iter().filter(|b| b.lvs.is_some()) {
        let live = snap.and_then(|s| s.backends.iter().find(|b| b.cfg.name == be.name));
        for fe in model.frontends.iter().filter(|f| f.default_backend.as_deref() == Some(be.name.as_str())) {
            for addr in &fe.binds {
                rows.push(Row { udp: fe.mode == Mode::Udp, addr: *addr, backend: be, live });
            }
        }
    }
    if !nosort {
        rows.sort_by_key(|r| (r.addr.is_ipv6(), r.udp, ip_key(r.addr.ip()), r.addr.port()));
    }
    rows
}

fn ip_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// A real server as listed: address, forwarding, weight, its live counters' index.
struct Dest {
    addr: SocketAddr,
    forward: &'static str,
    forward_flag: &'static str,
    weight: u32,
    upper: u32,
    lower: u32,
    id: usize,
}

/// The servers of a service that are in the table now: those taking traffic (a server a
/// checker took out is not there, as keepalived removes it; a sorry server only while it
/// serves), sorted by address.
fn dests(row: &Row<'_>, nosort: bool) -> Vec<Dest> {
    let serving: Vec<usize> = match row.live {
        Some(live) => live.serving(),
        None => (0..row.backend.servers.len()).filter(|i| !row.backend.servers[*i].backup).collect(),
    };
    let method = row.backend.lvs.as_ref().map_or(LvsMethod::Nat, |l| l.method);
    let mut out: Vec<Dest> = serving
        .into_iter()
        .filter_map(|id| {
            let s = row.backend.servers.get(id)?;
            let (forward, forward_flag) = match s.forward.unwrap_or(method) {
                LvsMethod::Nat => ("Masq", "-m"),
                LvsMethod::Dr => ("Route", "-g"),
                LvsMethod::Tun => ("Tunnel", "-i"),
            };
            let weight = row.live.map_or(s.weight, |l| l.weight_of(id));
            Some(Dest {
                addr: s.addr_for(row.addr),
                forward,
                forward_flag,
                weight,
                upper: s.upper_threshold,
                lower: s.lower_threshold,
                id,
            })
        })
        .collect();
    if !nosort {
        out.sort_by_key(|d| (ip_key(d.addr.ip()), d.addr.port()));
    }
    out
}

/// `a.b.c.d:port` / `[v6]:port`, or with names (`-L` without `-n`).
fn addr_text(addr: SocketAddr, numeric: bool, udp: bool) -> String {
    let host = if numeric { None } else { host_name(addr.ip()) };
    let port = if numeric { None } else { port_name(addr.port(), udp) };
    let host = host.unwrap_or_else(|| match addr.ip() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    });
    format!("{host}:{}", port.unwrap_or_else(|| addr.port().to_string()))
}

/// A name for an address from /etc/hosts.
fn host_name(ip: IpAddr) -> Option<String> {
    let hosts = std::fs::read_to_string("/etc/hosts").ok()?;
    hosts.lines().find_map(|line| {
        let mut words = line.split('#').next().unwrap_or_default().split_whitespace();
        let addr: IpAddr = words.next()?.parse().ok()?;
        (addr == ip).then(|| words.next().map(str::to_string)).flatten()
    })
}

fn service_text(row: &Row<'_>, numeric: bool) -> String {
    let proto = if row.udp { "UDP" } else { "TCP" };
    let mut text = format!("{proto:<4} {}", addr_text(row.addr, numeric, row.udp));
    if row.addr.is_ipv4() {
        // ipvsadm cuts at 33 bytes; a host name from /etc/hosts may not be ASCII.
        let mut end = text.len().min(33);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

fn scheduler(be: &Backend) -> (String, Option<String>) {
    match &be.algorithm {
        Algorithm::Lvs(l) => {
            let name = l.scheduler.name();
            let mut flags = Vec::new();
            if l.fallback {
                flags.push(format!("{name}-fallback"));
            }
            if l.port {
                flags.push(format!("{name}-port"));
            }
            (name.to_string(), (!flags.is_empty()).then(|| flags.join(",")))
        }
        other => (format!("{other:?}").to_lowercase(), None),
    }
}

fn mask_text(prefix: u8, v6: bool) -> Option<String> {
    if v6 {
        return (prefix < 128).then(|| prefix.to_string());
    }
    (prefix < 32).then(|| {
        let bits = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        std::net::Ipv4Addr::from(bits).to_string()
    })
}

/// The service line of the default listing.
fn service_line(row: &Row<'_>, numeric: bool) -> String {
    let (sched, flags) = scheduler(row.backend);
    let mut line = format!("{} {sched}", service_text(row, numeric));
    if let Some(f) = flags {
        line.push_str(&format!(" ({f})"));
    }
    if let Some(p) = &row.backend.persistence {
        line.push_str(&format!(" persistent {}", p.timeout.as_secs()));
        let v6 = row.addr.is_ipv6();
        if let Some(mask) = mask_text(if v6 { p.prefix_v6 } else { p.prefix_v4 }, v6) {
            line.push_str(&format!(" mask {mask}"));
        }
    }
    if row.backend.lvs.as_ref().is_some_and(|l| l.one_packet) {
        line.push_str(" ops");
    }
    line
}

/// ipvsadm's scaled numbers: 8 digits, then K, M, G, T.
fn largenum(v: u64, exact: bool) -> String {
    if exact {
        let digits = v.to_string();
        let width = if digits.len() <= 8 { 9 } else { digits.len() + 1 };
        return format!("{digits:>width$}");
    }
    match v {
        0..100_000_000 => format!("{v:>9}"),
        100_000_000..1_000_000_000 => format!("{:>8}K", v / 1_000),
        1_000_000_000..100_000_000_000 => format!("{:>8}M", v / 1_000_000),
        100_000_000_000..100_000_000_000_000 => format!("{:>8}G", v / 1_000_000_000),
        _ => format!("{:>8}T", v / 1_000_000_000_000),
    }
}

fn sum(row: &Row<'_>, f: impl Fn(&fulcrum_proxy::ServerLive) -> [u64; 5]) -> [u64; 5] {
    let mut total = [0u64; 5];
    if let Some(live) = row.live {
        for s in &live.servers {
            for (t, v) in total.iter_mut().zip(f(&s.live)) {
                *t = t.saturating_add(v);
            }
        }
    }
    total
}

fn rates(s: &fulcrum_proxy::ServerLive) -> [u64; 5] {
    fulcrum_proxy::lock(&s.rates).per_second()
}

/// `-L` (and `-l`).
pub(crate) fn list(model: &Model, snap: Option<&Arc<Snapshot>>, o: &ListOptions) -> Result<String, IpvsError> {
    if o.connections {
        return Err(IpvsError {
            message: "connection entries are not listed by fulcrum (it keeps no IPVS connection table)".into(),
            code: 1,
        });
    }
    if o.daemon {
        return Ok(String::new());
    }
    if o.timeout {
        let t = &model.global.ipvs_timeouts;
        return Ok(format!(
            "Timeout (tcp tcpfin udp): {} {} {}\n",
            t.tcp.as_secs(),
            t.tcpfin.as_secs(),
            t.udp.as_secs()
        ));
    }
    let mut all = rows(model, snap, o.nosort);
    let mut out = String::new();
    if let Some(service) = &o.service {
        let wanted = |r: &Row<'_>| match service {
            Service::Tcp(a) => !r.udp && r.addr == *a,
            Service::Udp(a) => r.udp && r.addr == *a,
            _ => false,
        };
        all.retain(wanted);
        if all.is_empty() {
            return Err(IpvsError { message: "No such service".into(), code: 1 });
        }
    } else {
        out.push_str(&format!("IP Virtual Server version {IPVS_VERSION} (size={TABLE_SIZE})\n"));
    }
    if o.stats || o.rate {
        let titles = if o.stats {
            ["Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"]
        } else {
            ["CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"]
        };
        out.push_str(&format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", titles[0], titles[1], titles[2], titles[3], titles[4]
        ));
        for row in &all {
            let totals = if o.stats { sum(row, |s| s.counters()) } else { sum(row, rates) };
            out.push_str(&format!("{:<33}", service_text(row, o.numeric)));
            for v in totals {
                out.push_str(&largenum(v, o.exact));
            }
            out.push('\n');
            for d in dests(row, o.nosort) {
                let Some(live) = row.live.and_then(|l| l.servers.get(d.id)) else { continue };
                out.push_str(&format!("  -> {:<28}", addr_text(d.addr, o.numeric, row.udp)));
                if o.stats {
                    for v in live.live.counters() {
                        out.push_str(&largenum(v, o.exact));
                    }
                } else {
                    let r = rates(&live.live);
                    // ipvsadm prints a server's three first rates unscaled.
                    for v in &r[..3] {
                        out.push_str(&format!(" {v:>8}"));
                    }
                    for v in &r[3..] {
                        out.push_str(&largenum(*v, o.exact));
                    }
                }
                out.push('\n');
            }
        }
        return Ok(out);
    }
    if o.thresholds {
        out.push_str(&format!(
            "{:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        ));
    } else if o.persistent_conn {
        out.push_str(&format!(
            "{:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn"
        ));
    } else {
        out.push_str("Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n");
    }
    for row in &all {
        out.push_str(&service_line(row, o.numeric));
        out.push('\n');
        let templates = row.live.map(|l| l.templates()).unwrap_or_default();
        for d in dests(row, o.nosort) {
            let load = row.live.and_then(|l| l.servers.get(d.id)).map(|s| s.live.load()).unwrap_or_default();
            let addr = addr_text(d.addr, o.numeric, row.udp);
            if o.thresholds {
                out.push_str(&format!(
                    "  -> {addr:<28} {:<10} {:<10} {:<10} {:<10}\n",
                    d.upper, d.lower, load.active, load.inactive
                ));
            } else if o.persistent_conn {
                let persist = templates.get(d.id).copied().unwrap_or(0);
                out.push_str(&format!(
                    "  -> {addr:<28} {:<9} {persist:<11} {:<10} {:<10}\n",
                    d.weight, load.active, load.inactive
                ));
            } else {
                out.push_str(&format!(
                    "  -> {addr:<28} {:<7} {:<6} {:<10} {:<10}\n",
                    d.forward, d.weight, load.active, load.inactive
                ));
            }
        }
    }
    Ok(out)
}

/// `-S` (`ipvsadm-save`): the commands that rebuild the table.
pub(crate) fn save(model: &Model, numeric: bool) -> String {
    let mut out = String::new();
    for row in rows(model, None, false) {
        let svc = format!("{} {}", if row.udp { "-u" } else { "-t" }, addr_text(row.addr, numeric, row.udp));
        let (sched, flags) = scheduler(row.backend);
        out.push_str(&format!("-A {svc} -s {sched}"));
        if let Some(p) = &row.backend.persistence {
            out.push_str(&format!(" -p {}", p.timeout.as_secs()));
            let v6 = row.addr.is_ipv6();
            if let Some(mask) = mask_text(if v6 { p.prefix_v6 } else { p.prefix_v4 }, v6) {
                out.push_str(&format!(" -M {mask}"));
            }
        }
        if row.backend.lvs.as_ref().is_some_and(|l| l.one_packet) {
            out.push_str(" -o");
        }
        if let Some(f) = flags {
            out.push_str(&format!(" -b {f}"));
        }
        out.push('\n');
        for d in dests(&row, false) {
            out.push_str(&format!(
                "-a {svc} -r {} {} -w {}\n",
                addr_text(d.addr, numeric, row.udp),
                d.forward_flag,
                d.weight
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::largenum;

    #[test]
    fn numbers_scale_as_ipvsadm_does() {
        assert_eq!(largenum(99_999_999, false), " 99999999");
        assert_eq!(largenum(100_000_000, false), "  100000K");
        assert_eq!(largenum(1_000_000_000, false), "    1000M");
        assert_eq!(largenum(100_000_000_000, false), "     100G");
        assert_eq!(largenum(7, true), "        7");
        assert_eq!(largenum(1_234_567_890, true), " 1234567890");
    }
}
