//! Configuration of one VRRP instance (keepalived's `vrrp_instance`), and its validation.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::codec::{is_ipv6_link_local, Auth, DecodeExpect, Version, PRIORITY_OWNER};
use crate::rules::{check_instance, interval_units, ConfigError, InstanceShape};

/// keepalived's `state` keyword: the state an instance asks for at startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InitialState {
    /// `state BACKUP` (the default for priority < 255).
    #[default]
    Backup,
    /// `state MASTER`. keepalived 2.2.7 (outside a sync group) still starts such an instance in
    /// BACKUP and waits a full Master_Down_Interval, exactly like `state BACKUP`; what changes is
    /// that `nopreempt` and `preempt_delay` are ignored. See the crate documentation.
    Master,
}

/// One VRRP instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Protocol version (keepalived `version` / `vrrp_version`).
    pub version: Version,
    /// `virtual_router_id`, 1..=255.
    pub vrid: u8,
    /// `priority`, 1..=255; 255 is the address owner.
    pub priority: u8,
    /// `advert_int`: v2 whole seconds 1..=255 s, v3 centiseconds 0.01..=40.95 s.
    pub advert_interval: Duration,
    /// `authentication` (v2 only).
    pub auth: Auth,
    /// `state`.
    pub initial_state: InitialState,
    /// `nopreempt`: a higher-priority backup does not take over from a live lower-priority
    /// master.
    pub nopreempt: bool,
    /// `preempt_delay`: see [`crate::Instance`] for the exact semantics.
    pub preempt_delay: Duration,
    /// The address adverts are sent from (interface primary address, or `mcast_src_ip`); it
    /// breaks ties between equal priorities. IPv6: a link-local address.
    pub primary_address: IpAddr,
    /// `virtual_ipaddress`: the addresses carried in adverts, all of the primary address family.
    pub vips: Vec<IpAddr>,
    /// `down_timer_adverts` (keepalived, default 3): Master_Down_Interval is this many
    /// advertisement intervals plus Skew_Time.
    pub down_timer_adverts: u8,
    /// `lower_prio_no_advert`: a master does not answer a lower-priority advert with one of its
    /// own (by default it does, forcing a new election at once, as keepalived does).
    pub lower_prio_no_advert: bool,
    /// `higher_prio_send_advert`: a master sends one advert before yielding to a higher one.
    pub higher_prio_send_advert: bool,
}

impl Config {
    /// A configuration with keepalived's defaults: 1 s interval, no auth, `state BACKUP`,
    /// preemption on, no preempt delay, 3 down-timer adverts.
    pub fn new(version: Version, vrid: u8, priority: u8, primary_address: IpAddr, vips: Vec<IpAddr>) -> Config {
        Config {
            version,
            vrid,
            priority,
            advert_interval: Duration::from_secs(1),
            auth: Auth::None,
            initial_state: InitialState::Backup,
            nopreempt: false,
            preempt_delay: Duration::ZERO,
            primary_address,
            vips,
            down_timer_adverts: 3,
            lower_prio_no_advert: false,
            higher_prio_send_advert: false,
        }
    }

    /// Checks every field; the error says what to change. The protocol's rules are
    /// [`crate::rules::check_instance`], which the configuration front-ends apply too; what is
    /// checked here besides needs the running host (the advert source address).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let shape = InstanceShape {
            version: self.version,
            vrid: self.vrid,
            priority: self.priority,
            advert_interval: self.advert_interval,
            authenticated: self.auth != Auth::None,
            vips: &self.vips,
        };
        if let Some(first) = check_instance(&shape).into_iter().next() {
            return Err(first);
        }
        if self.down_timer_adverts == 0 || self.down_timer_adverts > 100 {
            return Err(ConfigError::DownTimerAdverts(self.down_timer_adverts));
        }
        match (self.version, self.primary_address) {
            (Version::V2, IpAddr::V6(_)) => return Err(ConfigError::V2Ipv6),
            (_, IpAddr::V6(a)) if !is_ipv6_link_local(&a) => {
                return Err(ConfigError::Ipv6PrimaryNotLinkLocal(self.primary_address))
            }
            _ => {}
        }
        let family_matches = |a: &IpAddr| a.is_ipv4() == self.primary_address.is_ipv4();
        if let Some(vip) = self.vips.iter().find(|a| !family_matches(a)) {
            return Err(ConfigError::VipFamily(*vip));
        }
        Ok(())
    }

    /// The interval in wire units: whole seconds (v2) or centiseconds (v3).
    pub(crate) fn interval_units(&self) -> Result<u16, ConfigError> {
        interval_units(self.version, self.advert_interval)
    }

    /// keepalived options that this configuration sets but keepalived 2.2.7 ignores (with a
    /// warning); [`crate::Instance`] ignores them the same way. The config front-end should warn.
    pub fn ignored_options(&self) -> Vec<IgnoredOption> {
        let mut ignored = Vec::new();
        let owner = self.priority == PRIORITY_OWNER;
        let initial_master = self.initial_state == InitialState::Master;
        if self.nopreempt && (owner || initial_master) {
            ignored.push(IgnoredOption::NoPreempt);
        }
        let nopreempt = self.nopreempt && !owner && !initial_master;
        if !self.preempt_delay.is_zero() && (initial_master || nopreempt) {
            ignored.push(IgnoredOption::PreemptDelay);
        }
        ignored
    }

    /// `nopreempt` as it takes effect.
    pub(crate) fn effective_nopreempt(&self) -> bool {
        !self.ignored_options().contains(&IgnoredOption::NoPreempt) && self.nopreempt
    }

    /// `preempt_delay` as it takes effect.
    pub(crate) fn effective_preempt_delay(&self) -> Duration {
        if self.ignored_options().contains(&IgnoredOption::PreemptDelay) {
            Duration::ZERO
        } else {
            self.preempt_delay
        }
    }

    /// What [`crate::decode`] should expect for this instance.
    pub fn decode_expect(&self) -> DecodeExpect {
        let v2_secs = self.advert_interval.as_secs();
        DecodeExpect {
            version: self.version,
            vrid: Some(self.vrid),
            auth: self.auth.clone(),
            v2_advert_int_secs: match self.version {
                Version::V2 => u8::try_from(v2_secs).ok(),
                Version::V3 => None,
            },
            require_link_local_source: true,
        }
    }
}

/// An option keepalived accepts but ignores in this combination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoredOption {
    /// `nopreempt` with priority 255 or `state MASTER`.
    NoPreempt,
    /// `preempt_delay` with `state MASTER` or `nopreempt`.
    PreemptDelay,
}

impl fmt::Display for IgnoredOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IgnoredOption::NoPreempt => f.write_str(
                "nopreempt is ignored with priority 255 or state MASTER: use state BACKUP and a priority below 255",
            ),
            IgnoredOption::PreemptDelay => f.write_str(
                "preempt_delay is ignored with state MASTER or nopreempt: use state BACKUP without nopreempt",
            ),
        }
    }
}
