//! The crash guard: a helper process that releases the virtual addresses when the main process
//! dies without a clean shutdown (SIGKILL, panic=abort, OOM kill), which keepalived does not do.
//!
//! The main process starts `fulcrum vrrp-guard` with a pipe on its standard input; only the main
//! process holds the write end (Rust opens pipes close-on-exec, so notify scripts do not inherit
//! it). Over it the main process sends, one line each, tab-separated:
//!
//! ```text
//! instance NAME IFACE IFINDEX VERSION VRID SRC INTERVAL_CS AUTH_HEX|- PEER,...|- VIP/PREFIX,...
//!          VIP_IFINDEX VMAC|- NFT_TABLE|-
//! state NAME MASTER|OTHER        (sent before VIPs are added, after they are removed)
//! forget NAME                    (instance removed by a reload)
//! clean                          (clean shutdown: exit quietly)
//! ```
//!
//! On end of file without `clean`, the guard sends a priority-0 advert for every instance it
//! last knew as MASTER (backups take over after Skew_Time instead of Master_Down_Interval) and
//! removes its virtual addresses and its `no_accept` table, then deletes the VMAC interface of
//! every instance (`use_vmac`), and exits. It runs in its own process group, so a terminal's
//! Ctrl-C does not kill it before the main process.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};
use std::net::IpAddr;
use std::time::Duration;

use fulcrum_vrrp::{Advert, Auth, Version, VersionFields};

use crate::socket::{Destinations, SocketSpec, VrrpSocket};

/// What the guard must know to release one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardInstance {
    /// Instance name.
    pub name: String,
    /// Socket parameters (interface, index, source, destinations).
    pub spec: SocketSpec,
    /// Protocol version.
    pub version: Version,
    /// VRID.
    pub vrid: u8,
    /// Advertisement interval (carried in the advert).
    pub interval: Duration,
    /// VRRPv2 authentication.
    pub auth: Auth,
    /// Virtual addresses with their prefix.
    pub vips: Vec<(IpAddr, u8)>,
    /// The interface holding the virtual addresses (the VMAC's with `use_vmac`).
    pub vip_ifindex: u32,
    /// `use_vmac`: the VMAC interface's name.
    pub vmac: Option<String>,
    /// `no_accept`: the nftables table (family inet) of the drop rules.
    pub firewall: Option<String>,
}

fn list<T: ToString>(items: &[T]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.iter().map(T::to_string).collect::<Vec<_>>().join(",")
    }
}

impl GuardInstance {
    /// The `instance` line.
    pub fn to_line(&self) -> String {
        let auth = match &self.auth {
            Auth::None => "-".to_string(),
            Auth::Pass(data) => data.iter().map(|b| format!("{b:02x}")).collect(),
        };
        let peers = match &self.spec.destinations {
            Destinations::Multicast => "-".to_string(),
            Destinations::Unicast(p) => list(p),
        };
        let vips: Vec<String> = self.vips.iter().map(|(a, p)| format!("{a}/{p}")).collect();
        let cs = self.interval.as_millis() / 10;
        format!(
            "instance\t{}\t{}\t{}\t{}\t{}\t{}\t{cs}\t{auth}\t{peers}\t{}\t{}\t{}\t{}\n",
            self.name,
            self.spec.interface,
            self.spec.ifindex,
            self.version.number(),
            self.vrid,
            self.spec.src,
            list(&vips),
            self.vip_ifindex,
            self.vmac.as_deref().unwrap_or("-"),
            self.firewall.as_deref().unwrap_or("-"),
        )
    }

    /// Parses the fields after `instance`.
    pub fn from_fields(f: &[&str]) -> Option<GuardInstance> {
        let [name, interface, ifindex, version, vrid, src, cs, auth, peers, vips, vip_ifindex, vmac, firewall] = f
        else {
            return None;
        };
        let optional = |s: &str| (s != "-").then(|| s.to_string());
        let parse_list = |s: &str| -> Vec<String> {
            if s == "-" {
                Vec::new()
            } else {
                s.split(',').map(str::to_string).collect()
            }
        };
        let auth = if *auth == "-" {
            Auth::None
        } else {
            let bytes: Option<Vec<u8>> =
                (0..auth.len() / 2).map(|i| u8::from_str_radix(auth.get(2 * i..2 * i + 2)?, 16).ok()).collect();
            Auth::pass(&bytes?)
        };
        let peers: Option<Vec<IpAddr>> = parse_list(peers).iter().map(|p| p.parse().ok()).collect();
        let peers = peers?;
        let vips: Option<Vec<(IpAddr, u8)>> = parse_list(vips)
            .iter()
            .map(|v| {
                let (a, p) = v.split_once('/')?;
                Some((a.parse().ok()?, p.parse().ok()?))
            })
            .collect();
        Some(GuardInstance {
            name: name.to_string(),
            spec: SocketSpec {
                interface: interface.to_string(),
                ifindex: ifindex.parse().ok()?,
                src: src.parse().ok()?,
                destinations: if peers.is_empty() { Destinations::Multicast } else { Destinations::Unicast(peers) },
            },
            version: if *version == "3" { Version::V3 } else { Version::V2 },
            vrid: vrid.parse().ok()?,
            interval: Duration::from_millis(cs.parse::<u64>().ok()? * 10),
            auth,
            vips: vips?,
            vip_ifindex: vip_ifindex.parse().ok()?,
            vmac: optional(vmac),
            firewall: optional(firewall),
        })
    }

    /// The priority-0 advert this instance sends when giving up.
    pub fn stop_advert(&self) -> Advert {
        let fields = match self.version {
            Version::V2 => VersionFields::V2 {
                advert_int_secs: u8::try_from(self.interval.as_secs()).unwrap_or(1),
                auth: self.auth.clone(),
            },
            Version::V3 => {
                VersionFields::V3 { max_advert_int_cs: u16::try_from(self.interval.as_millis() / 10).unwrap_or(100) }
            }
        };
        Advert { vrid: self.vrid, priority: 0, fields, addresses: self.vips.iter().map(|v| v.0).collect() }
    }
}

/// Sends the priority-0 advert and removes the addresses of one instance (best effort: every
/// step is tried even when one fails). Used by the guard and by nothing else.
pub fn release(instance: &GuardInstance) {
    match VrrpSocket::open(&instance.spec) {
        Ok(socket) => {
            for ctx in socket.send_contexts() {
                match fulcrum_vrrp::encode(&instance.stop_advert(), &ctx) {
                    Ok(bytes) => {
                        if let Err(e) = socket.send_to(&bytes, &ctx) {
                            eprintln!("fulcrum vrrp-guard: {}: priority-0 advert to {}: {e}", instance.name, ctx.dst);
                        }
                    }
                    Err(e) => eprintln!("fulcrum vrrp-guard: {}: cannot encode advert: {e:?}", instance.name),
                }
            }
        }
        Err(e) => eprintln!("fulcrum vrrp-guard: {}: cannot open the VRRP socket: {e}", instance.name),
    }
    for (addr, prefix) in &instance.vips {
        if let Err(e) = crate::netlink::remove_address(instance.vip_ifindex, *addr, *prefix) {
            eprintln!("fulcrum vrrp-guard: {}: cannot remove {addr}/{prefix}: {e}", instance.name);
        }
    }
    if let Some(table) = &instance.firewall {
        match crate::firewall::nft_program() {
            Some(nft) => {
                if let Err(e) = crate::firewall::unblock(&nft, table) {
                    eprintln!("fulcrum vrrp-guard: {}: cannot delete nftables table {table}: {e}", instance.name);
                }
            }
            None => eprintln!("fulcrum vrrp-guard: {}: {}", instance.name, crate::firewall::NFT_MISSING),
        }
    }
}

/// Deletes the VMAC interface of an instance (whatever its state: it exists in BACKUP too).
fn remove_vmac(instance: &GuardInstance) {
    if let Some(name) = &instance.vmac {
        if let Err(e) = crate::vmac::remove_by_name(name) {
            eprintln!("fulcrum vrrp-guard: {}: cannot delete VMAC interface {name}: {e}", instance.name);
        }
    }
}

/// The guard's main loop over `input`. Returns when the main process said `clean` (Ok(false))
/// or vanished (Ok(true), after releasing).
pub fn run_guard(input: impl BufRead) -> io::Result<bool> {
    let mut instances: BTreeMap<String, GuardInstance> = BTreeMap::new();
    let mut masters: BTreeMap<String, bool> = BTreeMap::new();
    for line in input.lines() {
        let Ok(line) = line else { break };
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["clean"] => return Ok(false),
            ["instance", rest @ ..] => match GuardInstance::from_fields(rest) {
                Some(i) => {
                    instances.insert(i.name.clone(), i);
                }
                None => eprintln!("fulcrum vrrp-guard: ignoring malformed line {line:?}"),
            },
            ["state", name, state] => {
                masters.insert(name.to_string(), *state == "MASTER");
            }
            ["forget", name] => {
                instances.remove(*name);
                masters.remove(*name);
            }
            _ => eprintln!("fulcrum vrrp-guard: ignoring malformed line {line:?}"),
        }
    }
    let released: Vec<&GuardInstance> =
        instances.values().filter(|i| masters.get(&i.name).copied().unwrap_or(false)).collect();
    for instance in &released {
        release(instance);
    }
    instances.values().for_each(remove_vmac);
    let names: Vec<&str> = released.iter().map(|i| i.name.as_str()).collect();
    let mut err = io::stderr().lock();
    let _ = writeln!(
        err,
        "fulcrum vrrp-guard: the main process exited without a clean shutdown; released {}",
        if names.is_empty() { "nothing (no instance was MASTER)".to_string() } else { names.join(", ") }
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> GuardInstance {
        GuardInstance {
            name: "VI_1".into(),
            spec: SocketSpec {
                interface: "vr0".into(),
                ifindex: 7,
                src: "10.0.0.1".parse().expect("ip"),
                destinations: Destinations::Unicast(vec!["10.0.0.2".parse().expect("ip")]),
            },
            version: Version::V2,
            vrid: 51,
            interval: Duration::from_secs(1),
            auth: Auth::pass(b"secret"),
            vips: vec![("10.0.0.100".parse().expect("ip"), 24)],
            vip_ifindex: 9,
            vmac: Some("vrrp.51".into()),
            firewall: Some("fulcrum_VI_1_51".into()),
        }
    }

    #[test]
    fn line_round_trip() {
        let line = sample().to_line();
        let fields: Vec<&str> = line.trim_end().split('\t').collect();
        assert_eq!(fields[0], "instance");
        assert_eq!(GuardInstance::from_fields(&fields[1..]), Some(sample()));
        let plain = GuardInstance { vmac: None, firewall: None, ..sample() };
        let line = plain.to_line();
        let fields: Vec<&str> = line.trim_end().split('\t').collect();
        assert_eq!(GuardInstance::from_fields(&fields[1..]), Some(plain));
    }

    #[test]
    fn clean_exit_releases_nothing() {
        let input = format!("{}state\tVI_1\tMASTER\nclean\n", sample().to_line());
        assert!(!run_guard(input.as_bytes()).expect("ok"));
    }

    #[test]
    fn stop_advert_has_priority_zero() {
        let a = sample().stop_advert();
        assert_eq!(a.priority, 0);
        assert_eq!(a.addresses.len(), 1);
    }
}
