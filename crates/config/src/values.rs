//! Value syntaxes shared by the front-ends: HAProxy durations and sizes, addresses, networks.
//! Every parser's error names what was wrong and what is expected.
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// A value that does not parse. The text is as written; `what` names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ValueError {
    #[error("invalid duration '{0}' (expected a number with an optional unit: 500ms, 5s, 2m, 1h, 1d; a bare number is milliseconds)")]
    Duration(String),
    #[error("duration '{0}' is too large")]
    DurationTooLarge(String),
    #[error("invalid size '{0}' (expected a number with an optional k, m or g suffix)")]
    Size(String),
    #[error("size '{0}' is too large")]
    SizeTooLarge(String),
    #[error("invalid {what} '{text}' (expected a whole number)")]
    Number { what: String, text: String },
    #[error("{what} '{text}' is out of range")]
    OutOfRange { what: String, text: String },
    #[error("address family '{prefix}@' in '{text}' is not supported yet (only IPv4 and IPv6 addresses)")]
    AddressFamily { prefix: String, text: String },
    #[error("UNIX socket address '{0}' is not supported yet (only IPv4 and IPv6 addresses)")]
    UnixSocket(String),
    #[error("port ranges and offsets ('{port}' in '{text}') are not supported yet")]
    PortRange { port: String, text: String },
    #[error("invalid address '{0}' (expected IP:PORT, [IPv6]:PORT or NAME:PORT)")]
    Address(String),
    #[error("address '{0}' does not match its family prefix")]
    FamilyPrefix(String),
    #[error("{what} '{host}' needs a port (HOST:PORT)")]
    NoPort { what: String, host: String },
    #[error("cannot resolve '{name}': {reason}")]
    Resolve { name: String, reason: String },
    #[error("invalid address or network '{0}' (expected 10.0.0.1, 10.0.0.0/8 or 2001:db8::/32)")]
    Network(String),
    #[error("invalid {what} '{text}' (expected seconds, e.g. 1 or 0.5)")]
    Seconds { what: String, text: String },
    #[error("invalid weight '{0}' (expected a number from -254 to 254)")]
    Weight(String),
    #[error("weight {0} is out of range (-254 to 254)")]
    WeightRange(i32),
    #[error("invalid virtual address '{0}' (expected e.g. 192.168.200.16 or 192.168.200.16/24)")]
    VipAddr(String),
    #[error("'{0}': no listening TCP socket was passed to this process on that file descriptor")]
    NotInherited(String),
    #[error("'{0}': socket pairs are not supported yet (a listener passed as fd@N is)")]
    SocketPair(String),
}

/// A bind address: `HOST:PORT` as [`parse_host_port`] reads it, or `fd@N`, a listening socket
/// the parent process passed on descriptor N (`inherited` says where each one listens).
pub(crate) fn bind_address(
    text: &str,
    inherited: &std::collections::BTreeMap<i32, SocketAddr>,
) -> Result<SocketAddr, ValueError> {
    if let Some(fd) = text.strip_prefix("fd@") {
        let fd: i32 = parse_number(fd, "file descriptor")?;
        return inherited.get(&fd).copied().ok_or_else(|| ValueError::NotInherited(text.to_string()));
    }
    if text.starts_with("sockpair@") {
        return Err(ValueError::SocketPair(text.to_string()));
    }
    parse_host_port(text).and_then(|hp| resolve(&hp, "bind address"))
}

/// A duration in HAProxy's syntax: a number with an optional unit (`us`, `ms`, `s`, `m`, `h`,
/// `d`); a bare number is in milliseconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, ValueError> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let bad = || ValueError::Duration(text.to_string());
    if number.is_empty() {
        return Err(bad());
    }
    let n: u64 = number.parse().map_err(|_| bad())?;
    let micros_per_unit: u64 = match unit {
        "us" => 1,
        "" | "ms" => 1_000,
        "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        _ => return Err(bad()),
    };
    let micros = n.checked_mul(micros_per_unit).ok_or_else(|| ValueError::DurationTooLarge(text.to_string()))?;
    Ok(Duration::from_micros(micros))
}

/// A size in HAProxy's syntax: a number with an optional `k`, `m` or `g` (powers of 1024).
pub(crate) fn parse_size(text: &str) -> Result<u64, ValueError> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let bad = || ValueError::Size(text.to_string());
    if number.is_empty() {
        return Err(bad());
    }
    let n: u64 = number.parse().map_err(|_| bad())?;
    let factor: u64 = match unit {
        "" => 1,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(factor).ok_or_else(|| ValueError::SizeTooLarge(text.to_string()))
}

/// A non-negative integer that fits `T`, for messages "invalid WHAT 'x'".
pub(crate) fn parse_number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, ValueError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValueError::Number { what: what.to_string(), text: text.to_string() });
    }
    text.parse::<T>().map_err(|_| ValueError::OutOfRange { what: what.to_string(), text: text.to_string() })
}

/// The host part of an address as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    /// `*`, an empty host, or no host at all: every address.
    Any,
    Ip(IpAddr),
    Name(String),
}

/// `HOST:PORT` as HAProxy writes it: `*:80`, `:80`, `1.2.3.4:80`, `[::1]:80`, `::1:80` (the
/// last colon separates the port), `name:80`, optionally prefixed by `ipv4@`/`ipv6@`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPort {
    pub host: Host,
    pub port: Option<u16>,
}

pub(crate) fn parse_host_port(text: &str) -> Result<HostPort, ValueError> {
    let (family, rest) = match text.split_once('@') {
        Some(("ipv4", rest)) => (Some(4), rest),
        Some(("ipv6", rest)) => (Some(6), rest),
        Some((prefix, _)) => {
            return Err(ValueError::AddressFamily { prefix: prefix.to_string(), text: text.to_string() })
        }
        None if text.starts_with('/') => return Err(ValueError::UnixSocket(text.to_string())),
        None => (None, text),
    };
    let (host, port) = split_host_port(rest);
    let port = match port {
        None => None,
        Some(p) if p.contains('-') || p.contains('+') => {
            return Err(ValueError::PortRange { port: p.to_string(), text: text.to_string() })
        }
        Some(p) => Some(parse_number::<u16>(p, "port")?),
    };
    let host = match host {
        "" | "*" => Host::Any,
        h => match h.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) if is_host_name(h) => Host::Name(h.to_string()),
            Err(_) => return Err(ValueError::Address(text.to_string())),
        },
    };
    match (family, &host) {
        (Some(4), Host::Ip(IpAddr::V6(_))) | (Some(6), Host::Ip(IpAddr::V4(_))) => {
            Err(ValueError::FamilyPrefix(text.to_string()))
        }
        (Some(6), Host::Any) => Ok(HostPort { host: Host::Ip(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)), port }),
        _ => Ok(HostPort { host, port }),
    }
}

fn split_host_port(text: &str) -> (&str, Option<&str>) {
    if let Some(rest) = text.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':')),
            None => (text, None),
        };
    }
    match text.rsplit_once(':') {
        // `::1:80`: HAProxy takes the last colon as the port separator.
        Some((host, port))
            if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit() || b == b'-' || b == b'+') =>
        {
            (host, Some(port))
        }
        Some((host, "")) => (host, Some("")),
        _ => (text, None),
    }
}

fn is_host_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Turn a parsed address into a socket address, resolving a host name now (as HAProxy does at
/// start-up). IPv4 results are preferred, as most back ends listen on IPv4.
pub(crate) fn resolve(hp: &HostPort, what: &str) -> Result<SocketAddr, ValueError> {
    let Some(port) = hp.port else {
        let host = match &hp.host {
            Host::Any => "*".to_string(),
            Host::Ip(ip) => ip.to_string(),
            Host::Name(name) => name.clone(),
        };
        return Err(ValueError::NoPort { what: what.to_string(), host });
    };
    match &hp.host {
        Host::Any => Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)),
        Host::Ip(ip) => Ok(SocketAddr::new(*ip, port)),
        Host::Name(name) => {
            let failed = |reason: String| ValueError::Resolve { name: name.clone(), reason };
            let found: Vec<SocketAddr> =
                (name.as_str(), port).to_socket_addrs().map_err(|e| failed(e.to_string()))?.collect();
            found
                .iter()
                .find(|a| a.is_ipv4())
                .or_else(|| found.first())
                .copied()
                .ok_or_else(|| failed("no address".into()))
        }
    }
}

/// `ADDR`, `ADDR/LEN` or `ADDR/NETMASK` (IPv4 dotted mask) into a network with a prefix length.
pub(crate) fn parse_net(text: &str) -> Result<(IpAddr, u8), ValueError> {
    let bad = || ValueError::Network(text.to_string());
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) if l.contains('.') => {
            let mask: Ipv4Addr = l.parse().map_err(|_| bad())?;
            let bits = u32::from(mask);
            if !addr.is_ipv4() || bits.leading_ones() + bits.trailing_zeros() != 32 {
                return Err(bad());
            }
            // At most 32, so it fits.
            u8::try_from(bits.leading_ones()).map_err(|_| bad())?
        }
        Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max).ok_or_else(bad)?,
    };
    Ok((addr, len))
}

/// A network in canonical text form (`10.0.0.0/8`), as stored in the Model.
pub(crate) fn net_text((addr, len): (IpAddr, u8)) -> String {
    format!("{addr}/{len}")
}

/// Whole seconds or a decimal fraction (`1`, `0.5`, `0.01`), as keepalived writes times.
pub(crate) fn parse_seconds(text: &str, what: &str) -> Result<Duration, ValueError> {
    let bad = || ValueError::Seconds { what: what.to_string(), text: text.to_string() };
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) || frac.len() > 6 {
        return Err(bad());
    }
    let secs: u64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| bad())? };
    let micros: u64 = if frac.is_empty() { 0 } else { format!("{frac:0<6}").parse().map_err(|_| bad())? };
    if secs > 86_400 * 365 {
        return Err(ValueError::OutOfRange { what: what.to_string(), text: text.to_string() });
    }
    Ok(Duration::from_secs(secs) + Duration::from_micros(micros))
}

/// A tracking weight: `-254..=254`.
pub(crate) fn parse_weight(text: &str) -> Result<i32, ValueError> {
    let n: i32 = text.parse().map_err(|_| ValueError::Weight(text.to_string()))?;
    if !(-254..=254).contains(&n) {
        return Err(ValueError::WeightRange(n));
    }
    Ok(n)
}

/// `ADDR[/PREFIX]` of a virtual address.
pub(crate) fn parse_vip_addr(text: &str) -> Result<(IpAddr, u8), ValueError> {
    let bad = || ValueError::VipAddr(text.to_string());
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
    };
    Ok((addr, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_haproxy() {
        assert_eq!(parse_duration("5000"), Ok(Duration::from_millis(5000)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
        assert!(parse_duration("5 s").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-5").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("200k"), Ok(200 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("1t").is_err());
    }

    #[test]
    fn addresses() {
        let any = parse_host_port("*:8080").expect("valid");
        assert_eq!((any.host, any.port), (Host::Any, Some(8080)));
        assert_eq!(parse_host_port(":80").expect("valid").host, Host::Any);
        let v6 = parse_host_port("[::]:80").expect("valid");
        assert_eq!(resolve(&v6, "bind"), Ok("[::]:80".parse().expect("addr")));
        let v6 = parse_host_port("::1:80").expect("valid");
        assert_eq!(resolve(&v6, "bind"), Ok("[::1]:80".parse().expect("addr")));
        assert_eq!(parse_host_port("ipv6@:80").expect("valid").host, Host::Ip("::".parse().expect("ip")));
        assert!(parse_host_port("unix@/tmp/x").is_err());
        assert!(parse_host_port("/tmp/sock").is_err());
        assert!(parse_host_port("1.2.3.4:80-90").is_err());
        assert!(parse_host_port("1.2.3.4:99999").is_err());
        assert_eq!(parse_host_port("web.example.com:80").expect("valid").host, Host::Name("web.example.com".into()));
        assert!(resolve(&parse_host_port("10.0.0.1").expect("valid"), "server").is_err());
    }

    #[test]
    fn networks() {
        assert_eq!(parse_net("10.0.0.0/8"), Ok(("10.0.0.0".parse().expect("ip"), 8)));
        assert_eq!(parse_net("10.0.0.0/255.255.0.0"), Ok(("10.0.0.0".parse().expect("ip"), 16)));
        assert_eq!(parse_net("::1"), Ok(("::1".parse().expect("ip"), 128)));
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("10.0.0.0/255.0.255.0").is_err());
        assert!(parse_net("example.com").is_err());
    }
}
