//! Telling the segment where a virtual address now lives: gratuitous ARP for IPv4 (an ARP
//! request whose sender and target are the VIP, to the Ethernet broadcast) and unsolicited
//! neighbour advertisements for IPv6 (to all nodes, override flag set).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const ETH_P_ARP: u16 = 0x0806;
const BROADCAST: [u8; 6] = [0xff; 6];
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The ARP payload (Ethernet/IPv4 request) announcing `vip` at `mac`.
pub fn garp_payload(mac: [u8; 6], vip: Ipv4Addr) -> Vec<u8> {
    let mut p = Vec::with_capacity(28);
    p.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]); // Ethernet, IPv4, request
    p.extend_from_slice(&mac);
    p.extend_from_slice(&vip.octets());
    p.extend_from_slice(&BROADCAST);
    p.extend_from_slice(&vip.octets());
    p
}

/// The ICMPv6 neighbour advertisement for `vip` at `mac` (the kernel fills the checksum).
pub fn na_payload(mac: [u8; 6], vip: Ipv6Addr) -> Vec<u8> {
    let mut p = Vec::with_capacity(32);
    p.extend_from_slice(&[136, 0, 0, 0]); // type NA, code 0, checksum (kernel)
    p.extend_from_slice(&[0x20, 0, 0, 0]); // override flag, not solicited, not router
    p.extend_from_slice(&vip.octets());
    p.extend_from_slice(&[2, 1]); // target link-layer address option, 8 bytes
    p.extend_from_slice(&mac);
    p
}

/// The sockets that announce one instance's virtual addresses, opened once and kept: closing
/// an AF_PACKET socket waits for an RCU grace period in the kernel (about 15 ms each time here),
/// which a transition to MASTER must not wait for, let alone once per `garp_master_repeat`.
#[derive(Debug)]
pub struct Announcer {
    mac: [u8; 6],
    /// AF_PACKET socket, broadcast destination and the IPv4 addresses.
    v4: Option<(Socket, SockAddr, Vec<Ipv4Addr>)>,
    /// All-nodes destination, and per IPv6 address an ICMPv6 socket bound to it.
    v6: Option<(SockAddr, Vec<(Socket, Ipv6Addr)>)>,
}

impl Announcer {
    /// Opens what announcing `vips` out of interface `interface` (index `ifindex`) needs.
    pub fn open(interface: &str, ifindex: u32, mac: [u8; 6], vips: &[IpAddr]) -> io::Result<Announcer> {
        let v4: Vec<Ipv4Addr> =
            vips.iter().filter_map(|a| if let IpAddr::V4(a) = a { Some(*a) } else { None }).collect();
        let v6: Vec<Ipv6Addr> =
            vips.iter().filter_map(|a| if let IpAddr::V6(a) = a { Some(*a) } else { None }).collect();
        let v4 = if v4.is_empty() {
            None
        } else {
            // Protocol 0: this socket only sends, it receives nothing.
            let socket = Socket::new(Domain::PACKET, Type::DGRAM, Some(Protocol::from(0)))?;
            socket.set_nonblocking(true)?;
            Some((socket, crate::packet_addr::link_layer(ifindex, ETH_P_ARP, BROADCAST)?, v4))
        };
        let v6 = if v6.is_empty() {
            None
        } else {
            let sockets = v6
                .into_iter()
                .map(|vip| {
                    let socket = na_socket(interface, ifindex, vip)?;
                    socket.set_nonblocking(true)?;
                    Ok((socket, vip))
                })
                .collect::<io::Result<Vec<_>>>()?;
            Some((SockAddr::from(SocketAddr::V6(SocketAddrV6::new(ALL_NODES, 0, 0, ifindex))), sockets))
        };
        Ok(Announcer { mac, v4, v6 })
    }

    /// Sends one announcement per address (a full send buffer drops it, like a lost packet).
    pub fn announce(&self) -> io::Result<()> {
        if let Some((socket, dst, vips)) = &self.v4 {
            for vip in vips {
                socket.send_to(&garp_payload(self.mac, *vip), dst)?;
            }
        }
        if let Some((dst, sockets)) = &self.v6 {
            for (socket, vip) in sockets {
                socket.send_to(&na_payload(self.mac, *vip), dst)?;
            }
        }
        Ok(())
    }
}

/// Sends one announcement per address in `vips` out of interface `ifindex` (opening and closing
/// the sockets: for one-off use; an instance keeps an [`Announcer`]).
pub fn announce(interface: &str, ifindex: u32, mac: [u8; 6], vips: &[IpAddr]) -> io::Result<()> {
    Announcer::open(interface, ifindex, mac, vips)?.announce()
}

/// A raw ICMPv6 socket on `interface` whose packets leave from `vip` itself: keepalived and the
/// kernel's own unsolicited advertisements use the target address as the source, not the
/// link-local address the kernel would pick (freebind: the address need not be usable yet).
fn na_socket(interface: &str, ifindex: u32, vip: Ipv6Addr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    socket.bind_device(Some(interface.as_bytes()))?;
    socket.set_multicast_hops_v6(255)?;
    socket.set_multicast_if_v6(ifindex)?;
    socket.set_freebind_ipv6(true)?;
    let scope = if fulcrum_vrrp::is_ipv6_link_local(&vip) { ifindex } else { 0 };
    socket.bind(&SockAddr::from(SocketAddrV6::new(vip, 0, 0, scope)))?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garp_layout() {
        let p = garp_payload([2, 0, 0, 0, 0, 1], Ipv4Addr::new(10, 0, 0, 100));
        assert_eq!(p.len(), 28);
        assert_eq!(&p[14..18], &[10, 0, 0, 100]); // sender protocol address
        assert_eq!(&p[24..28], &[10, 0, 0, 100]); // target protocol address
        assert_eq!(&p[8..14], &[2, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn na_layout() {
        let p = na_payload([2, 0, 0, 0, 0, 1], "fd00::1".parse().expect("v6"));
        assert_eq!(p.len(), 32);
        assert_eq!(p[0], 136);
        assert_eq!(p[4], 0x20);
    }
}
