//! VRRP in the Model: what keepalived.conf's `vrrp_instance`, `vrrp_script` and
//! `vrrp_sync_group` (and the same in TOML) describe. `fulcrum-vrrp-io` runs it on the
//! `fulcrum-vrrp` protocol core.
use std::net::IpAddr;
use std::time::Duration;

use crate::Origin;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Vrrp {
    pub instances: Vec<VrrpInstance>,
    pub scripts: Vec<VrrpScript>,
    pub sync_groups: Vec<VrrpSyncGroup>,
    /// `global_defs { router_id }`.
    pub router_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VrrpState {
    #[default]
    Backup,
    Master,
}

/// An address of `virtual_ipaddress`: `ADDR[/PREFIX] [dev IF] [label L]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vip {
    pub addr: IpAddr,
    /// 32 / 128 when not given, as keepalived.
    pub prefix: u8,
    pub dev: Option<String>,
    pub label: Option<String>,
}

/// What a tracked object weighs: `weight N` (added to the priority while the object is up, or
/// subtracted when negative and the object is down), or None: the instance goes FAULT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    pub name: String,
    pub weight: Option<i32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VrrpInstance {
    pub name: String,
    pub origin: Origin,
    pub state: VrrpState,
    pub interface: String,
    pub vrid: u8,
    pub priority: u8,
    pub advert_int: Duration,
    /// 2 or 3 (`version`, else `global_defs { vrrp_version }`, else 2 as keepalived).
    pub version: u8,
    /// `authentication { auth_type PASS; auth_pass X }` (VRRPv2 only).
    pub auth_pass: Option<String>,
    pub vips: Vec<Vip>,
    pub vips_excluded: Vec<Vip>,
    pub nopreempt: bool,
    pub preempt_delay: Duration,
    pub unicast_src_ip: Option<IpAddr>,
    pub unicast_peers: Vec<IpAddr>,
    pub garp_master_delay: Duration,
    pub garp_master_repeat: u32,
    pub garp_master_refresh: Option<Duration>,
    pub track_interfaces: Vec<Tracked>,
    pub track_scripts: Vec<Tracked>,
    /// fulcrum's own: track a backend by name; it counts as down when no server is usable.
    pub track_backends: Vec<Tracked>,
    pub notify_master: Option<String>,
    pub notify_backup: Option<String>,
    pub notify_fault: Option<String>,
    pub notify_stop: Option<String>,
    /// `notify SCRIPT`: called with `INSTANCE NAME STATE PRIORITY` appended.
    pub notify: Option<String>,
    /// `use_vmac [NAME]`: Some(name) (default `vrrp.VRID`).
    pub use_vmac: Option<String>,
    /// `vrrp_strict` (global) or per instance.
    pub strict: bool,
    /// `accept` / `no_accept`: None leaves keepalived's default (accept unless strict).
    pub accept: Option<bool>,
}

impl VrrpInstance {
    pub fn new(name: impl Into<String>) -> Self {
        VrrpInstance {
            name: name.into(),
            origin: Origin::default(),
            state: VrrpState::Backup,
            interface: String::new(),
            vrid: 0,
            priority: 100,
            advert_int: Duration::from_secs(1),
            version: 2,
            auth_pass: None,
            vips: Vec::new(),
            vips_excluded: Vec::new(),
            nopreempt: false,
            preempt_delay: Duration::ZERO,
            unicast_src_ip: None,
            unicast_peers: Vec::new(),
            garp_master_delay: Duration::from_secs(5),
            garp_master_repeat: 5,
            garp_master_refresh: None,
            track_interfaces: Vec::new(),
            track_scripts: Vec::new(),
            track_backends: Vec::new(),
            notify_master: None,
            notify_backup: None,
            notify_fault: None,
            notify_stop: None,
            notify: None,
            use_vmac: None,
            strict: false,
            accept: None,
        }
    }
}

/// `vrrp_script NAME { script; interval; timeout; weight; rise; fall }`.
#[derive(Debug, Clone, PartialEq)]
pub struct VrrpScript {
    pub name: String,
    pub origin: Origin,
    pub script: String,
    pub interval: Duration,
    pub timeout: Option<Duration>,
    pub weight: i32,
    pub rise: u32,
    pub fall: u32,
}

impl VrrpScript {
    /// A script with keepalived's defaults: every second, no timeout, weight 0, rise and fall 1.
    pub fn new(name: impl Into<String>, origin: Origin) -> Self {
        VrrpScript {
            name: name.into(),
            origin,
            script: String::new(),
            interval: Duration::from_secs(1),
            timeout: None,
            weight: 0,
            rise: 1,
            fall: 1,
        }
    }
}

/// `vrrp_sync_group NAME { group { INSTANCE... } notify_* }`: the instances change state together.
#[derive(Debug, Clone, PartialEq)]
pub struct VrrpSyncGroup {
    pub name: String,
    pub origin: Origin,
    pub instances: Vec<String>,
    pub notify_master: Option<String>,
    pub notify_backup: Option<String>,
    pub notify_fault: Option<String>,
    pub notify_stop: Option<String>,
    pub notify: Option<String>,
}
