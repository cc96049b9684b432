//! `use_vmac`: the instance's virtual addresses live on a macvlan interface (default name
//! `vrrp.VRID`) whose MAC address is the VRRP virtual router MAC of RFC 5798 (00:00:5e:00:01:VRID,
//! IPv6 00:00:5e:00:02:VRID), so that a failover does not change the MAC address clients have
//! cached: only the switch learns a new port, from the new master's adverts and gratuitous ARPs.
//!
//! As keepalived 2.2.7 does: the macvlan is in private mode, created at start (a leftover of the
//! same name, parent and MAC is reused; another macvlan of that name is recreated; any other kind
//! of interface is an error, never deleted), up in every state, deleted at stop. For IPv4, the
//! VMAC gets `arp_ignore=1 accept_local=1 rp_filter=0 promote_secondaries=1` and IPv6 disabled;
//! the base interface gets `arp_ignore=1 arp_filter=1` (so that only the VMAC answers ARP for
//! the virtual addresses, with the virtual MAC) plus `arp_announce=2`, which keepalived does not
//! set: without it the base interface may ask for a client's MAC with a virtual address as
//! sender, and the client would then cache the base interface's own MAC for that address. The
//! base settings are restored when the last VMAC on that interface goes.

use std::collections::BTreeMap;
use std::io;
use std::net::Ipv6Addr;
use std::sync::Mutex;

use crate::netlink::{self, Ipv4Conf, Link, MACVLAN_MODE_PRIVATE};

/// A VMAC interface set up for an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vmac {
    /// Interface name (`vrrp.VRID` unless configured).
    pub name: String,
    /// Its index.
    pub index: u32,
    /// The virtual router MAC address.
    pub mac: [u8; 6],
    /// Index of the base interface.
    pub base: u32,
    /// IPv4 instance: the base interface's ARP settings were changed (and are restored).
    v4: bool,
}

/// The virtual router MAC address of RFC 5798 section 7.3.
pub fn virtual_mac(vrid: u8, v6: bool) -> [u8; 6] {
    [0x00, 0x00, 0x5e, 0x00, if v6 { 0x02 } else { 0x01 }, vrid]
}

/// A base interface's ARP settings before the first VMAC on it changed them, and how many VMACs
/// use it.
struct HeldBase {
    before: Vec<(Ipv4Conf, u32)>,
    users: usize,
}

/// Base interfaces whose ARP settings VMACs changed, by index.
static BASE_ARP: Mutex<BTreeMap<u32, HeldBase>> = Mutex::new(BTreeMap::new());

const BASE_SETTINGS: [(Ipv4Conf, u32); 3] =
    [(Ipv4Conf::ArpIgnore, 1), (Ipv4Conf::ArpFilter, 1), (Ipv4Conf::ArpAnnounce, 2)];
const VMAC_SETTINGS: [(Ipv4Conf, u32); 4] =
    [(Ipv4Conf::ArpIgnore, 1), (Ipv4Conf::AcceptLocal, 1), (Ipv4Conf::RpFilter, 0), (Ipv4Conf::PromoteSecondaries, 1)];

/// Creates (or reuses) the VMAC `name` on `base` for VRID `vrid` and brings it up. For an IPv6
/// instance, `link_local` (the base interface's link-local address, the adverts' source) is put
/// on it.
pub fn setup(name: &str, base: &Link, vrid: u8, link_local: Option<Ipv6Addr>) -> io::Result<Vmac> {
    let v6 = link_local.is_some();
    let mac = virtual_mac(vrid, v6);
    match netlink::link(name) {
        Ok(old) if old.kind.as_deref() != Some("macvlan") => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("interface {name} exists and is not a macvlan: choose another name with use_vmac NAME"),
            ));
        }
        Ok(old) if old.parent == Some(base.index) => {
            if old.mac != mac || old.macvlan_mode != Some(MACVLAN_MODE_PRIVATE) {
                netlink::update_macvlan(old.index, mac, MACVLAN_MODE_PRIVATE)?;
            }
            tracing::info!("reusing VMAC interface {name} left by an earlier run");
        }
        Ok(old) => {
            tracing::info!("VMAC interface {name} exists on another interface: recreating it");
            netlink::delete_link(old.index)?;
            netlink::create_macvlan(name, base.index, mac, MACVLAN_MODE_PRIVATE)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            netlink::create_macvlan(name, base.index, mac, MACVLAN_MODE_PRIVATE)?
        }
        Err(e) => return Err(e),
    }
    let link = netlink::link(name)?;
    let vmac = Vmac { name: name.to_string(), index: link.index, mac, base: base.index, v4: !v6 };
    if let Err(e) = configure(&vmac, base, link_local) {
        // Nothing holds the base interface's settings yet (that is the last step).
        if let Err(e) = netlink::delete_link(vmac.index) {
            tracing::warn!("cannot delete VMAC interface {name}: {e}");
        }
        return Err(e);
    }
    Ok(vmac)
}

fn configure(vmac: &Vmac, base: &Link, link_local: Option<Ipv6Addr>) -> io::Result<()> {
    match link_local {
        None => {
            netlink::set_ipv4_conf(vmac.index, &VMAC_SETTINGS)?;
            // An IPv4 instance's VMAC speaks no IPv6: no router solicitation, DAD or MLD report
            // from the backup's VMAC would teach the switch that the virtual MAC is there.
            let path = format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", vmac.name);
            if let Err(e) = std::fs::write(&path, "1") {
                tracing::debug!("{path}: {e}");
            }
        }
        Some(_) => netlink::set_ipv6_addr_gen_none(vmac.index)?,
    }
    netlink::set_up(vmac.index)?;
    match link_local {
        Some(ll) => netlink::add_link_local_nodad(vmac.index, ll),
        None => hold_base_arp(base),
    }
}

/// Sets the base interface's ARP settings (first VMAC on it: remembering the values before).
fn hold_base_arp(base: &Link) -> io::Result<()> {
    let mut held = BASE_ARP.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(h) = held.get_mut(&base.index) {
        h.users += 1;
        return Ok(());
    }
    let before: Vec<(Ipv4Conf, u32)> =
        BASE_SETTINGS.iter().filter_map(|(setting, _)| Some((*setting, base.ipv4(*setting)?))).collect();
    netlink::set_ipv4_conf(base.index, &BASE_SETTINGS)?;
    held.insert(base.index, HeldBase { before, users: 1 });
    Ok(())
}

/// The last VMAC on a base interface restores its ARP settings.
fn release_base_arp(base: u32) {
    let mut held = BASE_ARP.lock().unwrap_or_else(|e| e.into_inner());
    let Some(h) = held.get_mut(&base) else { return };
    h.users -= 1;
    if h.users == 0 {
        if let Err(e) = netlink::set_ipv4_conf(base, &h.before) {
            tracing::warn!("cannot restore the ARP settings of interface {base}: {e}");
        }
        held.remove(&base);
    }
}

/// Deletes the VMAC (its addresses go with it) and releases the base interface's settings.
pub fn teardown(vmac: &Vmac) {
    match netlink::delete_link(vmac.index) {
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot delete VMAC interface {}: {e}", vmac.name),
    }
    if vmac.v4 {
        release_base_arp(vmac.base);
    }
}

/// The crash guard's clean-up: deletes interface `name` if it is a macvlan.
pub fn remove_by_name(name: &str) -> io::Result<bool> {
    match netlink::link(name) {
        Ok(link) if link.kind.as_deref() == Some("macvlan") => netlink::delete_link(link.index),
        Ok(_) => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_router_mac() {
        assert_eq!(virtual_mac(51, false), [0, 0, 0x5e, 0, 1, 51]);
        assert_eq!(virtual_mac(255, true), [0, 0, 0x5e, 0, 2, 255]);
    }
}
