//! The only unsafe code of the crate, two small pieces socket2 has no safe API for:
//! building a `sockaddr_ll` for an AF_PACKET send (the gratuitous ARP must leave on one
//! interface to the Ethernet broadcast address), and `recvmsg` into initialised buffers (to
//! read the IPv6 hop limit from its control message).
#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv6Addr, SocketAddrV6};

use socket2::{MaybeUninitSlice, MsgHdrMut, SockAddr, SockRef};

const IPPROTO_IPV6: i32 = 41;
const IPV6_HOPLIMIT: i32 = 52;

/// Views an initialised byte buffer as a buffer the kernel may write into.
fn as_uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: MaybeUninit<u8> has the layout of u8, and every byte stays initialised: the
    // only writer is recvmsg(2), which writes initialised bytes (and nothing writes
    // MaybeUninit::uninit() through this view).
    unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) }
}

/// `recvmsg` on an IPv6 socket with IPV6_RECVHOPLIMIT set: (length, source, hop limit).
pub fn recv_with_hop_limit(socket: SockRef<'_>, buf: &mut [u8]) -> io::Result<(usize, SockAddr, Option<u8>)> {
    let mut control = [0u8; 64];
    let mut from = SockAddr::from(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0));
    let (n, control_len) = {
        let mut bufs = [MaybeUninitSlice::new(as_uninit(buf))];
        let mut msg =
            MsgHdrMut::new().with_addr(&mut from).with_buffers(&mut bufs).with_control(as_uninit(&mut control));
        let n = socket.recvmsg(&mut msg, 0)?;
        (n, msg.control_len())
    };
    Ok((n, from, hop_limit(control.get(..control_len).unwrap_or_default())))
}

/// The IPV6_HOPLIMIT control message in `control` (cmsghdr: length as usize, level, type, then
/// the data at the next usize-aligned offset).
fn hop_limit(mut control: &[u8]) -> Option<u8> {
    const WORD: usize = std::mem::size_of::<usize>();
    let header = (WORD + 8 + WORD - 1) & !(WORD - 1);
    while control.len() >= header {
        let len = usize::from_ne_bytes(control.get(..WORD)?.try_into().ok()?);
        let level = i32::from_ne_bytes(control.get(WORD..WORD + 4)?.try_into().ok()?);
        let kind = i32::from_ne_bytes(control.get(WORD + 4..WORD + 8)?.try_into().ok()?);
        if len < header || len > control.len() {
            return None;
        }
        if level == IPPROTO_IPV6 && kind == IPV6_HOPLIMIT {
            let value = i32::from_ne_bytes(control.get(header..header + 4)?.try_into().ok()?);
            return u8::try_from(value).ok();
        }
        control = control.get((len + WORD - 1) & !(WORD - 1)..).unwrap_or_default();
    }
    None
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hop_limit_control_message() {
        const WORD: usize = std::mem::size_of::<usize>();
        let mut c = Vec::new();
        c.extend_from_slice(&(WORD + 8 + 4).to_ne_bytes());
        c.extend_from_slice(&IPPROTO_IPV6.to_ne_bytes());
        c.extend_from_slice(&IPV6_HOPLIMIT.to_ne_bytes());
        c.resize((WORD + 8 + WORD - 1) & !(WORD - 1), 0);
        c.extend_from_slice(&255i32.to_ne_bytes());
        assert_eq!(hop_limit(&c), Some(255));
        assert_eq!(hop_limit(&c[..5]), None);
        assert_eq!(hop_limit(&[]), None);
    }
}
