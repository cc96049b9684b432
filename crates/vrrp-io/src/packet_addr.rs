//! The one piece of unsafe code: building a `sockaddr_ll` for an AF_PACKET send. socket2 only
//! builds IP and Unix addresses safely, and the gratuitous ARP must leave on one interface to
//! the Ethernet broadcast address, which needs a link-layer address.
#![allow(unsafe_code)]

use std::io;

use socket2::SockAddr;

/// `sockaddr_ll { AF_PACKET, protocol, ifindex, dst MAC }`.
pub fn link_layer(ifindex: u32, ethertype: u16, dst: [u8; 6]) -> io::Result<SockAddr> {
    let mut addr = [0u8; 8];
    addr[..6].copy_from_slice(&dst);
    let ll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: ethertype.to_be(),
        sll_ifindex: i32::try_from(ifindex).map_err(|_| io::Error::other("interface index out of range"))?,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr: addr,
    };
    let len = std::mem::size_of::<libc::sockaddr_ll>();
    // SAFETY: try_init hands us a zeroed sockaddr_storage, which is larger than and at least as
    // aligned as sockaddr_ll (the C library guarantees storage fits every address type); we
    // write one fully initialised sockaddr_ll at its start and report exactly its size.
    let ((), sockaddr) = unsafe {
        SockAddr::try_init(|storage, socklen| {
            std::ptr::write(storage.cast::<libc::sockaddr_ll>(), ll);
            *socklen = libc::socklen_t::try_from(len).unwrap_or(0);
            Ok(())
        })?
    };
    Ok(sockaddr)
}
