//! What VRRP allows of one instance, in one place: the configuration front-ends check a
//! keepalived.conf or TOML instance with these rules (and point at the keyword's line), and
//! [`crate::Config::validate`] checks them again before an instance runs. What only the running
//! host can tell (the advert source address, read from the interface) is checked there alone.
use std::net::IpAddr;
use std::time::Duration;

use crate::codec::Version;
use std::fmt;

/// The parts of an instance the rules look at.
#[derive(Debug, Clone, Copy)]
pub struct InstanceShape<'a> {
    pub version: Version,
    pub vrid: u8,
    pub priority: u8,
    pub advert_interval: Duration,
    /// Whether `authentication` is set.
    pub authenticated: bool,
    /// The addresses carried in adverts (`virtual_ipaddress`, not the excluded ones).
    pub vips: &'a [IpAddr],
}

/// Every rule the instance breaks, in a fixed order (the first is the one to fix first).
pub fn check_instance(shape: &InstanceShape<'_>) -> Vec<ConfigError> {
    let mut broken = Vec::new();
    if shape.vrid == 0 {
        broken.push(ConfigError::Vrid);
    }
    if shape.priority == 0 {
        broken.push(ConfigError::Priority);
    }
    if let Err(e) = interval_units(shape.version, shape.advert_interval) {
        broken.push(e);
    }
    // The instance's family is its first address's; an address of the other family is
    // VipFamily below.
    if shape.version == Version::V2 && shape.vips.first().is_some_and(IpAddr::is_ipv6) {
        broken.push(ConfigError::V2Ipv6);
    }
    if shape.version == Version::V3 && shape.authenticated {
        broken.push(ConfigError::V3Auth);
    }
    if shape.version == Version::V3 && shape.vips.is_empty() {
        broken.push(ConfigError::NoVips);
    }
    if shape.vips.len() > 255 {
        broken.push(ConfigError::TooManyVips(shape.vips.len()));
    }
    if let Some(first) = shape.vips.first() {
        if let Some(other) = shape.vips.iter().find(|a| a.is_ipv4() != first.is_ipv4()) {
            broken.push(ConfigError::VipFamily(*other));
        }
    }
    broken
}

/// The advert interval in wire units: whole seconds 1..=255 (v2) or centiseconds 1..=4095 (v3).
pub fn interval_units(version: Version, interval: Duration) -> Result<u16, ConfigError> {
    let micros = interval.as_micros();
    let bad = ConfigError::AdvertInterval { version, interval };
    let (unit, max) = match version {
        Version::V2 => (1_000_000, 255),
        Version::V3 => (10_000, 4095),
    };
    if micros == 0 || micros % unit != 0 || micros / unit > max {
        return Err(bad);
    }
    u16::try_from(micros / unit).map_err(|_| bad)
}

/// An invalid instance configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// VRID outside 1..=255.
    Vrid,
    /// Priority 0 (reserved for "master stopping").
    Priority,
    /// Interval not representable by the version.
    AdvertInterval {
        /// Configured version.
        version: Version,
        /// Configured interval.
        interval: Duration,
    },
    /// down_timer_adverts outside 1..=100.
    DownTimerAdverts(u8),
    /// VRRPv2 with an IPv6 address.
    V2Ipv6,
    /// IPv6 adverts must come from a link-local address.
    Ipv6PrimaryNotLinkLocal(IpAddr),
    /// VRRPv3 has no authentication.
    V3Auth,
    /// VRRPv3 requires at least one virtual address.
    NoVips,
    /// More than 255 virtual addresses.
    TooManyVips(usize),
    /// A virtual address of the other family than the primary address.
    VipFamily(IpAddr),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Vrid => f.write_str("virtual_router_id must be 1..=255"),
            ConfigError::Priority => f.write_str("priority must be 1..=255 (0 is reserved for a stopping master)"),
            ConfigError::AdvertInterval { version: Version::V2, interval } => write!(f, "advert_int {interval:?} is invalid for VRRPv2: use whole seconds 1..=255"),
            ConfigError::AdvertInterval { version: Version::V3, interval } => write!(f, "advert_int {interval:?} is invalid for VRRPv3: use a multiple of 0.01 s up to 40.95 s"),
            ConfigError::DownTimerAdverts(n) => write!(f, "down_timer_adverts {n} must be 1..=100"),
            ConfigError::V2Ipv6 => f.write_str("VRRPv2 is IPv4 only: set version 3 for IPv6 virtual addresses"),
            ConfigError::Ipv6PrimaryNotLinkLocal(a) => write!(f, "IPv6 adverts must be sent from a link-local address, not {a}"),
            ConfigError::V3Auth => f.write_str("VRRPv3 has no authentication: remove the authentication block or use version 2"),
            ConfigError::NoVips => f.write_str("VRRPv3 needs at least one virtual_ipaddress"),
            ConfigError::TooManyVips(n) => write!(f, "{n} virtual addresses, at most 255 fit in an advert"),
            ConfigError::VipFamily(a) => write!(f, "virtual address {a} is not of the family of the instance's source address: use one instance per address family"),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(version: Version, interval: Duration, vips: &[IpAddr]) -> InstanceShape<'_> {
        InstanceShape { version, vrid: 51, priority: 100, advert_interval: interval, authenticated: false, vips }
    }

    #[test]
    fn every_broken_rule_is_listed_in_order() {
        let v4: IpAddr = "192.0.2.1".parse().expect("addr");
        let v6: IpAddr = "2001:db8::1".parse().expect("addr");
        assert!(check_instance(&shape(Version::V2, Duration::from_secs(1), &[v4])).is_empty());
        assert!(check_instance(&shape(Version::V3, Duration::from_millis(10), &[v6])).is_empty());
        let mixed = [v4, v6];
        let bad = InstanceShape {
            vrid: 0,
            priority: 0,
            authenticated: true,
            ..shape(Version::V3, Duration::from_millis(15), &mixed)
        };
        assert_eq!(
            check_instance(&bad),
            [
                ConfigError::Vrid,
                ConfigError::Priority,
                ConfigError::AdvertInterval { version: Version::V3, interval: Duration::from_millis(15) },
                ConfigError::V3Auth,
                ConfigError::VipFamily(v6),
            ]
        );
        assert_eq!(check_instance(&shape(Version::V2, Duration::from_secs(1), &[v6])), [ConfigError::V2Ipv6]);
        assert_eq!(check_instance(&shape(Version::V3, Duration::from_secs(1), &[])), [ConfigError::NoVips]);
    }

    #[test]
    fn interval_bounds() {
        assert_eq!(interval_units(Version::V2, Duration::from_secs(255)), Ok(255));
        assert!(interval_units(Version::V2, Duration::from_secs(256)).is_err());
        assert!(interval_units(Version::V2, Duration::from_millis(1500)).is_err());
        assert_eq!(interval_units(Version::V3, Duration::from_millis(40_950)), Ok(4095));
        assert!(interval_units(Version::V3, Duration::from_millis(40_960)).is_err());
        assert!(interval_units(Version::V3, Duration::ZERO).is_err());
    }
}
