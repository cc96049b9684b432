//! A small, synchronous rtnetlink client: the link (index, carrier, MAC, kind) and its addresses,
//! adding/removing one address, and what `use_vmac` needs: creating, raising and deleting a
//! macvlan link and setting per-interface IPv4 settings (`IFLA_INET_CONF`, the sysctls of
//! `net.ipv4.conf.IF`). Messages are built and parsed by hand (a few fixed layouts), so
//! no unsafe code and no extra dependency is needed; each call opens its own socket, as these
//! calls are rare (startup, state changes, tracking once per advert interval).

use std::io::{self, Read};
use std::net::IpAddr;

use socket2::{Domain, Protocol, Socket, Type};

const NETLINK_ROUTE: i32 = 0;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_LABEL: u16 = 3;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINK: u16 = 5;
const IFLA_LINKINFO: u16 = 18;
const IFLA_AF_SPEC: u16 = 26;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_MACVLAN_MODE: u16 = 1;
const IFLA_INET_CONF: u16 = 1;
const IFLA_INET6_ADDR_GEN_MODE: u16 = 8;
const IN6_ADDR_GEN_MODE_NONE: u8 = 1;
const IFA_F_NODAD: u8 = 0x02;
const IFF_UP: u32 = 0x1;
const IFF_RUNNING: u32 = 0x40;
const IFF_LOWER_UP: u32 = 0x10000;
const RT_SCOPE_UNIVERSE: u8 = 0;
const NLMSG_HDR_LEN: usize = 16;

/// An interface as netlink describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Administratively up, running and with carrier: usable for VRRP.
    pub up: bool,
    /// Hardware address (zeros when the link has none of 6 bytes).
    pub mac: [u8; 6],
    /// The link kind (`IFLA_INFO_KIND`: "macvlan", "veth", "bridge"…), None for physical links.
    pub kind: Option<String>,
    /// The lower link (`IFLA_LINK`) of a macvlan, VLAN or veth, when it has one.
    pub parent: Option<u32>,
    /// The mode of a macvlan (`IFLA_MACVLAN_MODE`).
    pub macvlan_mode: Option<u32>,
    /// The IPv4 settings of the interface (`IFLA_INET_CONF`: entry `i` is `IPV4_DEVCONF` `i + 1`),
    /// empty when the kernel did not send them.
    pub ipv4_conf: Vec<u32>,
}

/// macvlan mode "private" (`MACVLAN_MODE_PRIVATE`): what keepalived creates for `use_vmac`.
pub const MACVLAN_MODE_PRIVATE: u32 = 1;

/// The `net.ipv4.conf.IF` settings fulcrum changes (`IPV4_DEVCONF_*` numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ipv4Conf {
    /// `rp_filter`.
    RpFilter = 8,
    /// `arp_filter`.
    ArpFilter = 13,
    /// `arp_announce`.
    ArpAnnounce = 18,
    /// `arp_ignore`.
    ArpIgnore = 19,
    /// `promote_secondaries`.
    PromoteSecondaries = 20,
    /// `accept_local`.
    AcceptLocal = 23,
}

impl Link {
    /// The current value of an IPv4 setting, if the kernel reported it.
    pub fn ipv4(&self, conf: Ipv4Conf) -> Option<u32> {
        self.ipv4_conf.get(conf as usize - 1).copied()
    }
}

/// One address of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkAddr {
    /// The address.
    pub addr: IpAddr,
    /// Its prefix length.
    pub prefix: u8,
}

fn open() -> io::Result<Socket> {
    Socket::new(Domain::from(libc::AF_NETLINK), Type::RAW, Some(Protocol::from(NETLINK_ROUTE)))
}

fn push_attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(buf.len() + (4 - len % 4) % 4, 0);
}

fn message(kind: u16, flags: u16, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(NLMSG_HDR_LEN + body.len()).unwrap_or(u32::MAX);
    let mut buf = Vec::with_capacity(NLMSG_HDR_LEN + body.len());
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
    buf.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    buf.extend_from_slice(body);
    buf
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_ne_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

/// Splits a buffer into netlink messages: (type, payload).
fn messages(buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while let (Some(len), Some(kind)) = (u32_at(buf, at), u16_at(buf, at + 4)) {
        let len = len as usize;
        if len < NLMSG_HDR_LEN || at + len > buf.len() {
            break;
        }
        out.push((kind, &buf[at + NLMSG_HDR_LEN..at + len]));
        at += (len + 3) & !3;
    }
    out
}

/// Route attributes: (type, data).
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while let (Some(len), Some(kind)) = (u16_at(b, 0), u16_at(b, 2)) {
        let len = usize::from(len);
        if len < 4 || len > b.len() {
            break;
        }
        out.push((kind & 0x3fff, &b[4..len]));
        b = b.get((len + 3) & !3..).unwrap_or_default();
    }
    out
}

/// Sends one request and reads until its ACK (or NLMSG_DONE for a dump); returns the data
/// messages of the given type.
fn request(req: &[u8], want: u16) -> io::Result<Vec<Vec<u8>>> {
    let sock = open()?;
    // Never hang on a reply that does not come (every request asks for an ACK or is a dump).
    sock.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
    sock.send(req)?;
    let mut found = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    // A dump of one interface's addresses or all links fits in a few reads; bound the loop.
    for _ in 0..1000 {
        let n = (&sock).read(&mut buf)?;
        for (kind, payload) in messages(&buf[..n]) {
            match kind {
                NLMSG_ERROR => {
                    let code = u32_at(payload, 0).map(|c| c as i32).unwrap_or(-libc::EIO);
                    return if code == 0 { Ok(found) } else { Err(io::Error::from_raw_os_error(-code)) };
                }
                NLMSG_DONE => return Ok(found),
                k if k == want => found.push(payload.to_vec()),
                _ => {}
            }
        }
    }
    Err(io::Error::other("netlink: no end of reply"))
}

/// The link named `name`, or NotFound.
pub fn link(name: &str) -> io::Result<Link> {
    let mut body = vec![0u8; 16]; // struct ifinfomsg: family, pad, type, index, flags, change
    let mut ifname = name.as_bytes().to_vec();
    ifname.push(0);
    push_attr(&mut body, IFLA_IFNAME, &ifname);
    let replies =
        request(&message(RTM_GETLINK, NLM_F_ACK, &body), RTM_NEWLINK).map_err(|e| match e.raw_os_error() {
            Some(libc::ENODEV) => io::Error::new(io::ErrorKind::NotFound, format!("no interface named {name}")),
            _ => e,
        })?;
    let reply = replies.first().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, name.to_string()))?;
    let index = u32_at(reply, 4).unwrap_or(0);
    let flags = u32_at(reply, 8).unwrap_or(0);
    let up = flags & IFF_UP != 0 && flags & IFF_RUNNING != 0 && flags & IFF_LOWER_UP != 0;
    let mut link = Link { index, up, mac: [0; 6], kind: None, parent: None, macvlan_mode: None, ipv4_conf: Vec::new() };
    for (kind, data) in attrs(reply.get(16..).unwrap_or_default()) {
        match kind {
            IFLA_ADDRESS if data.len() == 6 => link.mac.copy_from_slice(data),
            IFLA_LINK => link.parent = u32_at(data, 0),
            IFLA_LINKINFO => {
                for (info, value) in attrs(data) {
                    match info {
                        IFLA_INFO_KIND => {
                            link.kind = Some(String::from_utf8_lossy(value).trim_end_matches('\0').to_string())
                        }
                        IFLA_INFO_DATA => {
                            let mode = attrs(value).into_iter().find(|(k, _)| *k == IFLA_MACVLAN_MODE);
                            link.macvlan_mode = mode.and_then(|(_, v)| u32_at(v, 0));
                        }
                        _ => {}
                    }
                }
            }
            IFLA_AF_SPEC => {
                let inet = attrs(data).into_iter().find(|(family, _)| i32::from(*family) == libc::AF_INET);
                let conf = inet.and_then(|(_, d)| attrs(d).into_iter().find(|(k, _)| *k == IFLA_INET_CONF));
                if let Some((_, values)) = conf {
                    link.ipv4_conf = values.chunks_exact(4).filter_map(|c| u32_at(c, 0)).collect();
                }
            }
            _ => {}
        }
    }
    Ok(link)
}

/// struct ifinfomsg for interface `index` (0: a new link), with `flags` changed under `change`.
fn ifinfomsg(index: u32, flags: u32, change: u32) -> Vec<u8> {
    let mut body = vec![0u8; 4]; // family AF_UNSPEC, pad, type
    body.extend_from_slice(&i32::try_from(index).unwrap_or(0).to_ne_bytes());
    body.extend_from_slice(&flags.to_ne_bytes());
    body.extend_from_slice(&change.to_ne_bytes());
    body
}

/// An attribute holding other attributes.
fn nested(kind: u16, inner: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    push_attr(&mut out, kind, inner);
    out
}

/// `IFLA_LINKINFO { IFLA_INFO_KIND "macvlan", IFLA_INFO_DATA { IFLA_MACVLAN_MODE mode } }`.
fn macvlan_info(mode: u32) -> Vec<u8> {
    let mut info = Vec::new();
    push_attr(&mut info, IFLA_INFO_KIND, b"macvlan");
    info.extend_from_slice(&nested(IFLA_INFO_DATA, &nested(IFLA_MACVLAN_MODE, &mode.to_ne_bytes())));
    nested(IFLA_LINKINFO, &info)
}

/// Creates macvlan `name` on link `parent` with address `mac` and the given mode (down).
pub fn create_macvlan(name: &str, parent: u32, mac: [u8; 6], mode: u32) -> io::Result<()> {
    request(&create_macvlan_message(name, parent, mac, mode), 0).map(drop)
}

fn create_macvlan_message(name: &str, parent: u32, mac: [u8; 6], mode: u32) -> Vec<u8> {
    let mut body = ifinfomsg(0, 0, 0);
    let mut ifname = name.as_bytes().to_vec();
    ifname.push(0);
    push_attr(&mut body, IFLA_IFNAME, &ifname);
    push_attr(&mut body, IFLA_LINK, &parent.to_ne_bytes());
    push_attr(&mut body, IFLA_ADDRESS, &mac);
    body.extend_from_slice(&macvlan_info(mode));
    message(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &body)
}

/// Sets the address and mode of existing macvlan `index`.
pub fn update_macvlan(index: u32, mac: [u8; 6], mode: u32) -> io::Result<()> {
    let mut body = ifinfomsg(index, 0, 0);
    push_attr(&mut body, IFLA_ADDRESS, &mac);
    body.extend_from_slice(&macvlan_info(mode));
    request(&message(RTM_NEWLINK, NLM_F_ACK, &body), 0).map(drop)
}

/// Sets link `index` administratively up.
pub fn set_up(index: u32) -> io::Result<()> {
    request(&message(RTM_NEWLINK, NLM_F_ACK, &ifinfomsg(index, IFF_UP, IFF_UP)), 0).map(drop)
}

/// Deletes link `index`. Returns whether it was there.
pub fn delete_link(index: u32) -> io::Result<bool> {
    match request(&message(RTM_DELLINK, NLM_F_ACK, &ifinfomsg(index, 0, 0)), 0) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Sets IPv4 settings of link `index` (`net.ipv4.conf.IF.*`), as keepalived does: `IFLA_AF_SPEC
/// { AF_INET { IFLA_INET_CONF { setting: value … } } }`.
pub fn set_ipv4_conf(index: u32, settings: &[(Ipv4Conf, u32)]) -> io::Result<()> {
    let mut conf = Vec::new();
    for (setting, value) in settings {
        push_attr(&mut conf, *setting as u16, &value.to_ne_bytes());
    }
    let inet = nested(libc::AF_INET as u16, &nested(IFLA_INET_CONF, &conf));
    let mut body = ifinfomsg(index, 0, 0);
    body.extend_from_slice(&nested(IFLA_AF_SPEC, &inet));
    request(&message(RTM_NEWLINK, NLM_F_ACK, &body), 0).map(drop)
}

/// Stops the kernel from generating an IPv6 link-local address on link `index` (RFC 5798 7.4:
/// a VMAC has no address derived from the virtual MAC).
pub fn set_ipv6_addr_gen_none(index: u32) -> io::Result<()> {
    let inet6 = nested(libc::AF_INET6 as u16, &nested(IFLA_INET6_ADDR_GEN_MODE, &[IN6_ADDR_GEN_MODE_NONE]));
    let mut body = ifinfomsg(index, 0, 0);
    body.extend_from_slice(&nested(IFLA_AF_SPEC, &inet6));
    request(&message(RTM_NEWLINK, NLM_F_ACK, &body), 0).map(drop)
}

fn family(addr: &IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

fn addr_bytes(addr: &IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn ifaddrmsg(addr: &IpAddr, prefix: u8, flags: u8, index: u32) -> Vec<u8> {
    let mut body = vec![family(addr), prefix, flags, RT_SCOPE_UNIVERSE];
    body.extend_from_slice(&index.to_ne_bytes());
    body
}

/// Every address of interface `index` (both families), primary addresses first as the kernel
/// lists them.
pub fn addresses(index: u32) -> io::Result<Vec<LinkAddr>> {
    let body = [0u8; 8];
    let replies = request(&message(RTM_GETADDR, NLM_F_DUMP, &body), RTM_NEWADDR)?;
    let mut out = Vec::new();
    for reply in replies {
        let (Some(&fam), Some(&prefix), Some(ifindex)) = (reply.first(), reply.get(1), u32_at(&reply, 4)) else {
            continue;
        };
        if ifindex != index {
            continue;
        }
        let mut local = None;
        let mut address = None;
        for (kind, data) in attrs(reply.get(8..).unwrap_or_default()) {
            let ip = match (fam as i32, data.len()) {
                (libc::AF_INET, 4) => IpAddr::from([data[0], data[1], data[2], data[3]]),
                (libc::AF_INET6, 16) => {
                    let mut o = [0u8; 16];
                    o.copy_from_slice(data);
                    IpAddr::from(o)
                }
                _ => continue,
            };
            match kind {
                IFA_LOCAL => local = Some(ip),
                IFA_ADDRESS => address = Some(ip),
                _ => {}
            }
        }
        if let Some(addr) = local.or(address) {
            out.push(LinkAddr { addr, prefix });
        }
    }
    Ok(out)
}

/// Adds `addr/prefix` to interface `index` with an optional label (IPv4 only, as the kernel
/// wants; it must start with the interface name). An address already present is not an error.
///
/// IPv6 addresses are added without duplicate address detection (`nodad`), as keepalived adds
/// them: a VIP moves between routers, and a dead master may still hold it (keepalived leaves
/// its VIPs behind when killed). With DAD the new master's VIP would stay tentative for a
/// second and then fail as a duplicate, dropping every packet sent to it; the unsolicited
/// neighbour advertisement (override flag) is what moves the neighbours instead.
pub fn add_address(index: u32, addr: IpAddr, prefix: u8, label: Option<&str>) -> io::Result<()> {
    add_with_flags(index, addr, prefix, label, vip_flags(&addr))
}

/// Address flags of a VIP: IPv6 ones without duplicate address detection.
fn vip_flags(addr: &IpAddr) -> u8 {
    if addr.is_ipv6() {
        IFA_F_NODAD
    } else {
        0
    }
}

/// Adds an IPv6 link-local address without duplicate address detection (the VMAC of an IPv6
/// instance carries the base interface's link-local address, the source of its adverts).
pub fn add_link_local_nodad(index: u32, addr: std::net::Ipv6Addr) -> io::Result<()> {
    add_with_flags(index, IpAddr::V6(addr), 64, None, IFA_F_NODAD)
}

fn add_with_flags(index: u32, addr: IpAddr, prefix: u8, label: Option<&str>, flags: u8) -> io::Result<()> {
    match request(
        &message(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &add_body(index, addr, prefix, label, flags)),
        0,
    ) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        other => other.map(drop),
    }
}

/// The RTM_NEWADDR body of [`add_address`].
fn add_body(index: u32, addr: IpAddr, prefix: u8, label: Option<&str>, flags: u8) -> Vec<u8> {
    let mut body = ifaddrmsg(&addr, prefix, flags, index);
    push_attr(&mut body, IFA_LOCAL, &addr_bytes(&addr));
    push_attr(&mut body, IFA_ADDRESS, &addr_bytes(&addr));
    if let (Some(label), IpAddr::V4(_)) = (label, addr) {
        let mut l = label.as_bytes().to_vec();
        l.push(0);
        push_attr(&mut body, IFA_LABEL, &l);
    }
    body
}

/// Removes `addr/prefix` from interface `index`. Returns whether it was there: an absent
/// address is not an error (this is how leftovers are cleared).
pub fn remove_address(index: u32, addr: IpAddr, prefix: u8) -> io::Result<bool> {
    let mut body = ifaddrmsg(&addr, prefix, 0, index);
    push_attr(&mut body, IFA_LOCAL, &addr_bytes(&addr));
    push_attr(&mut body, IFA_ADDRESS, &addr_bytes(&addr));
    match request(&message(RTM_DELADDR, NLM_F_ACK, &body), 0) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) || e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip() {
        let mut b = Vec::new();
        push_attr(&mut b, IFA_LABEL, b"vr0:1\0");
        push_attr(&mut b, IFA_LOCAL, &[10, 0, 0, 1]);
        assert_eq!(b.len() % 4, 0);
        let parsed = attrs(&b);
        assert_eq!(parsed, vec![(IFA_LABEL, &b"vr0:1\0"[..]), (IFA_LOCAL, &[10u8, 0, 0, 1][..])]);
    }

    #[test]
    fn truncated_messages_are_ignored() {
        let m = message(RTM_GETLINK, 0, &[1, 2, 3, 4]);
        assert_eq!(messages(&m).len(), 1);
        assert!(messages(&m[..10]).is_empty());
        assert!(attrs(&[8, 0, 1]).is_empty());
    }

    #[test]
    fn macvlan_creation_message() {
        let m = create_macvlan_message("vrrp.51", 7, [0, 0, 0x5e, 0, 1, 51], MACVLAN_MODE_PRIVATE);
        let parsed = messages(&m);
        assert_eq!(parsed.len(), 1);
        let (kind, payload) = parsed[0];
        assert_eq!(kind, RTM_NEWLINK);
        let a = attrs(&payload[16..]);
        assert_eq!(a[0], (IFLA_IFNAME, &b"vrrp.51\0"[..]));
        assert_eq!(a[1], (IFLA_LINK, &7u32.to_ne_bytes()[..]));
        assert_eq!(a[2], (IFLA_ADDRESS, &[0u8, 0, 0x5e, 0, 1, 51][..]));
        assert_eq!(a[3].0, IFLA_LINKINFO);
        let info = attrs(a[3].1);
        assert_eq!(info[0], (IFLA_INFO_KIND, &b"macvlan"[..]));
        let data = attrs(info[1].1);
        assert_eq!(data, vec![(IFLA_MACVLAN_MODE, &MACVLAN_MODE_PRIVATE.to_ne_bytes()[..])]);
    }

    #[test]
    fn ipv6_addresses_are_added_without_dad() {
        let v6: IpAddr = "fd00::100".parse().expect("v6");
        let v6 = add_body(2, v6, 64, None, vip_flags(&v6));
        assert_eq!(&v6[..4], &[libc::AF_INET6 as u8, 64, IFA_F_NODAD, RT_SCOPE_UNIVERSE]);
        let v4: IpAddr = "10.0.0.100".parse().expect("v4");
        let v4 = add_body(2, v4, 24, Some("vr0:1"), vip_flags(&v4));
        assert_eq!(&v4[..4], &[libc::AF_INET as u8, 24, 0, RT_SCOPE_UNIVERSE]);
    }

    #[test]
    fn loopback_exists() {
        // Every network namespace has `lo`; reading it is harmless.
        let lo = link("lo").expect("lo");
        assert!(lo.index > 0);
        assert_eq!(lo.kind, None);
        assert_eq!(lo.ipv4(Ipv4Conf::ArpIgnore).map(|v| v <= 8), Some(true), "IFLA_INET_CONF is read");
        assert!(link("fulcrum-no-such-if0").is_err());
    }
}
