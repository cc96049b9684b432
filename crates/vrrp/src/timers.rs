//! Skew_Time and Master_Down_Interval, with keepalived 2.2.7's integer arithmetic (microseconds,
//! truncated), so that a fulcrum backup takes over at the same instant a keepalived one would.

use std::time::Duration;

use crate::codec::Version;

/// Skew_Time for a router of `priority` whose current Master_Adver_Interval is
/// `master_adver_interval`.
///
/// - VRRPv2 (RFC 3768 §6.1): `(256 - priority) / 256` seconds, whatever the interval.
/// - VRRPv3 (RFC 5798 §6.1): `((256 - priority) * Master_Adver_Interval) / 256`, the interval
///   taken in whole centiseconds.
///
/// Both are computed in microseconds and truncated, as keepalived does (the RFC's v3 formula in
/// integer centiseconds would round 609.375 ms down to 600 ms; keepalived keeps 609.375 ms).
pub fn skew_time(version: Version, priority: u8, master_adver_interval: Duration) -> Duration {
    let weight = 256 - u64::from(priority);
    let micros = match version {
        Version::V2 => weight * 1_000_000 / 256,
        Version::V3 => {
            let centis = u64::try_from(master_adver_interval.as_millis() / 10).unwrap_or(u64::MAX);
            // centis * 10_000 µs / 256 = centis * 625 / 16 µs
            weight.saturating_mul(centis).saturating_mul(625) / 16
        }
    };
    Duration::from_micros(micros)
}

/// Master_Down_Interval: `down_timer_adverts * Master_Adver_Interval + Skew_Time` (RFC: 3 adverts).
pub fn master_down_interval(
    version: Version,
    priority: u8,
    master_adver_interval: Duration,
    down_timer_adverts: u8,
) -> Duration {
    master_adver_interval.saturating_mul(u32::from(down_timer_adverts)).saturating_add(skew_time(
        version,
        priority,
        master_adver_interval,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn v2_skew_ignores_interval() {
        assert_eq!(skew_time(Version::V2, 100, ms(1000)), Duration::from_micros(609_375));
        assert_eq!(skew_time(Version::V2, 100, ms(5000)), Duration::from_micros(609_375));
    }

    #[test]
    fn v3_skew_scales_with_interval() {
        assert_eq!(skew_time(Version::V3, 100, ms(1000)), Duration::from_micros(609_375));
        // 156 * 10 cs / 256 = 6.09375 cs = 60.9375 ms, truncated to µs.
        assert_eq!(skew_time(Version::V3, 100, ms(100)), Duration::from_micros(60_937));
    }
}
