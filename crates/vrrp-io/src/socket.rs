//! VRRP raw sockets: one per instance, bound to its interface, multicast (224.0.0.18 / ff02::12)
//! or unicast to configured peers. Sending needs no clock; receiving validates what the IP layer
//! carries (TTL 255 / hop limit, source) before the codec sees the payload.

use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};

use fulcrum_vrrp::{check_ttl, parse_ipv4_packet, AddrContext, DecodeError, IPPROTO_VRRP, MULTICAST_V4, MULTICAST_V6};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};

/// Where adverts go: the multicast group, or each unicast peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destinations {
    /// The VRRP multicast group of the family.
    Multicast,
    /// `unicast_peer`: send to each, accept only from them.
    Unicast(Vec<IpAddr>),
}

/// What opening a socket needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSpec {
    /// Interface name (SO_BINDTODEVICE).
    pub interface: String,
    /// Interface index (multicast membership).
    pub ifindex: u32,
    /// Source address of adverts.
    pub src: IpAddr,
    /// Multicast or unicast.
    pub destinations: Destinations,
}

/// A received packet that passed the IP-level checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Source and destination, as the v3 checksum needs them.
    pub ctx: AddrContext,
    /// The VRRP payload.
    pub payload: Vec<u8>,
}

/// Why a received packet was dropped before decoding.
#[derive(Debug)]
pub enum RecvError {
    /// Socket error.
    Io(io::Error),
    /// IP header or TTL check failed.
    Invalid(DecodeError),
    /// Unicast mode: not from a configured peer.
    NotAPeer(IpAddr),
    /// Our own advert looped back (unicast to self, or a bridge reflecting).
    Own,
}

/// A VRRP raw socket. Raw sockets are datagram sockets to the kernel's socket calls, so the
/// configured socket is carried as a `UdpSocket` (std for the guard, Tokio for the runtime):
/// `send_to`/`recv_from` work unchanged on it and no unsafe code is needed.
#[derive(Debug)]
pub struct VrrpSocket {
    socket: std::net::UdpSocket,
    spec: SocketSpec,
}

/// TOS / traffic class of adverts: precedence 6, "internetwork control" (DSCP CS6), as
/// keepalived sends them, so that QoS policies queue them with other routing protocols.
const TOS_INTERNETWORK_CONTROL: u32 = 0xc0;

fn configure(spec: &SocketSpec) -> io::Result<Socket> {
    let protocol = Some(Protocol::from(i32::from(IPPROTO_VRRP)));
    let socket = match spec.src {
        IpAddr::V4(src) => {
            let socket = Socket::new(Domain::IPV4, Type::RAW, protocol)?;
            // The multicast source address first: with `use_vmac` it belongs to the base
            // interface, not the VMAC the socket is bound to, and the kernel refuses
            // IP_MULTICAST_IF by address on a socket already bound to another device. Bound
            // afterwards, the socket sends out of its device with this source.
            socket.set_multicast_if_v4(&src)?;
            socket.bind_device(Some(spec.interface.as_bytes()))?;
            socket.set_ttl(255)?;
            socket.set_tos(TOS_INTERNETWORK_CONTROL)?;
            socket.set_multicast_ttl_v4(255)?;
            socket.set_multicast_loop_v4(false)?;
            if spec.destinations == Destinations::Multicast {
                socket.join_multicast_v4_n(&MULTICAST_V4, &InterfaceIndexOrAddress::Index(spec.ifindex))?;
            }
            socket
        }
        IpAddr::V6(src) => {
            let socket = Socket::new(Domain::IPV6, Type::RAW, protocol)?;
            socket.bind_device(Some(spec.interface.as_bytes()))?;
            socket.set_unicast_hops_v6(255)?;
            socket.set_multicast_hops_v6(255)?;
            socket.set_tclass_v6(TOS_INTERNETWORK_CONTROL)?;
            socket.set_multicast_loop_v6(false)?;
            socket.set_multicast_if_v6(spec.ifindex)?;
            socket.set_recv_hoplimit_v6(true)?;
            if spec.destinations == Destinations::Multicast {
                socket.join_multicast_v6(&MULTICAST_V6, spec.ifindex)?;
            }
            socket.bind(&SockAddr::from(SocketAddrV6::new(src, 0, 0, spec.ifindex)))?;
            socket
        }
    };
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn send_contexts(spec: &SocketSpec) -> Vec<AddrContext> {
    match &spec.destinations {
        Destinations::Multicast => vec![AddrContext::multicast(spec.src)],
        Destinations::Unicast(peers) => peers.iter().map(|p| AddrContext { src: spec.src, dst: *p }).collect(),
    }
}

fn destination(spec: &SocketSpec, ctx: &AddrContext) -> SocketAddr {
    match ctx.dst {
        IpAddr::V4(a) => SocketAddr::new(IpAddr::V4(a), 0),
        IpAddr::V6(a) => SocketAddr::V6(SocketAddrV6::new(a, 0, 0, spec.ifindex)),
    }
}

/// IP-level checks of one received datagram.
fn check(spec: &SocketSpec, bytes: &[u8], from: SocketAddr, hop_limit: Option<u8>) -> Result<Received, RecvError> {
    let received = match spec.src {
        IpAddr::V4(_) => {
            let packet = parse_ipv4_packet(bytes).map_err(RecvError::Invalid)?;
            // Multicast adverts must arrive with TTL 255 (unicast ones may cross routers).
            if spec.destinations == Destinations::Multicast || packet.dst == MULTICAST_V4 {
                check_ttl(packet.ttl).map_err(RecvError::Invalid)?;
            }
            Received { ctx: packet.addr_context(), payload: packet.payload.to_vec() }
        }
        IpAddr::V6(_) => {
            // The link-local source rule is enforced by the codec (DecodeExpect); the hop limit
            // comes from the IPV6_HOPLIMIT control message (missing: rejected).
            if spec.destinations == Destinations::Multicast || hop_limit.is_some() {
                check_ttl(hop_limit.unwrap_or(0)).map_err(RecvError::Invalid)?;
            }
            let dst = match &spec.destinations {
                Destinations::Multicast => IpAddr::V6(MULTICAST_V6),
                Destinations::Unicast(_) => spec.src,
            };
            Received { ctx: AddrContext { src: from.ip(), dst }, payload: bytes.to_vec() }
        }
    };
    if received.ctx.src == spec.src {
        return Err(RecvError::Own);
    }
    if let Destinations::Unicast(peers) = &spec.destinations {
        if !peers.contains(&received.ctx.src) {
            return Err(RecvError::NotAPeer(received.ctx.src));
        }
    }
    Ok(received)
}

/// One datagram: IPv4 with `recv_from` (the TTL is in the header), IPv6 with `recvmsg` for the
/// hop limit.
fn recv_one(
    socket: &impl std::os::fd::AsFd,
    spec: &SocketSpec,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<u8>)> {
    let socket = socket2::SockRef::from(socket);
    match spec.src {
        // The IPv4 header carries source and TTL.
        IpAddr::V4(_) => {
            let n = std::io::Read::read(&mut &*socket, buf)?;
            Ok((n, SocketAddr::from(([0, 0, 0, 0], 0)), None))
        }
        IpAddr::V6(_) => {
            let (n, from, hops) = crate::packet_addr::recv_with_hop_limit(socket, buf)?;
            let from = from.as_socket().ok_or_else(|| io::Error::other("datagram from a non-IP address"))?;
            Ok((n, from, hops))
        }
    }
}

impl VrrpSocket {
    /// Opens and configures the socket (non-blocking).
    pub fn open(spec: &SocketSpec) -> io::Result<VrrpSocket> {
        let socket = std::net::UdpSocket::from(configure(spec)?);
        Ok(VrrpSocket { socket, spec: spec.clone() })
    }

    /// The contexts (src, dst) to encode an advert for, one per destination.
    pub fn send_contexts(&self) -> Vec<AddrContext> {
        send_contexts(&self.spec)
    }

    /// Sends one encoded advert to `ctx.dst`.
    pub fn send_to(&self, payload: &[u8], ctx: &AddrContext) -> io::Result<()> {
        self.socket.send_to(payload, destination(&self.spec, ctx)).map(drop)
    }

    /// Receives one packet (non-blocking: WouldBlock when none is queued).
    pub fn recv(&self) -> Result<Received, RecvError> {
        let mut buf = [0u8; 2048];
        let (n, from, hops) = recv_one(&self.socket, &self.spec, &mut buf).map_err(RecvError::Io)?;
        check(&self.spec, &buf[..n], from, hops)
    }
}

/// [`VrrpSocket`] registered with Tokio.
#[derive(Debug)]
pub struct AsyncVrrpSocket {
    socket: tokio::net::UdpSocket,
    spec: SocketSpec,
}

impl AsyncVrrpSocket {
    /// Opens the socket and registers it (needs a Tokio runtime with I/O enabled).
    pub fn open(spec: &SocketSpec) -> io::Result<AsyncVrrpSocket> {
        let socket = tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(configure(spec)?))?;
        Ok(AsyncVrrpSocket { socket, spec: spec.clone() })
    }

    /// The contexts (src, dst) to encode an advert for, one per destination.
    pub fn send_contexts(&self) -> Vec<AddrContext> {
        send_contexts(&self.spec)
    }

    /// Sends one encoded advert to `ctx.dst` (a raw send does not block; if the buffer is
    /// full the advert is dropped, like a lost packet).
    pub fn send_to(&self, payload: &[u8], ctx: &AddrContext) -> io::Result<()> {
        self.socket.try_send_to(payload, destination(&self.spec, ctx)).map(drop)
    }

    /// Waits for the next packet that passes the IP-level checks; dropped packets are logged
    /// at debug level.
    pub async fn recv(&self) -> io::Result<Received> {
        let mut buf = [0u8; 2048];
        loop {
            let (n, from, hops) = match self.spec.src {
                IpAddr::V4(_) => self.socket.recv_from(&mut buf).await.map(|(n, from)| (n, from, None))?,
                IpAddr::V6(_) => {
                    let socket = &self.socket;
                    socket.async_io(tokio::io::Interest::READABLE, || recv_one(socket, &self.spec, &mut buf)).await?
                }
            };
            match check(&self.spec, &buf[..n], from, hops) {
                Ok(received) => return Ok(received),
                Err(RecvError::Own) => {}
                Err(dropped) => tracing::debug!(?dropped, "VRRP packet dropped"),
            }
        }
    }
}

/// The first IPv4 address (or IPv6 link-local address) of the interface: the advert source
/// keepalived uses when no `unicast_src_ip`/`mcast_src_ip` is set.
pub fn primary_address(ifindex: u32, v6: bool) -> io::Result<IpAddr> {
    let addrs = crate::netlink::addresses(ifindex)?;
    addrs
        .iter()
        .map(|a| a.addr)
        .find(|a| match a {
            IpAddr::V4(_) => !v6,
            IpAddr::V6(a6) => v6 && fulcrum_vrrp::is_ipv6_link_local(a6),
        })
        .ok_or_else(|| {
            let what = if v6 { "IPv6 link-local" } else { "IPv4" };
            io::Error::new(io::ErrorKind::NotFound, format!("the interface has no {what} address"))
        })
}
