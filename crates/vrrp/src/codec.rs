//! VRRP advertisement codec: the VRRP payload (what a raw `IPPROTO_VRRP` socket sends and, for
//! IPv6, receives), plus a bounds-checked IPv4 header parser for what an IPv4 raw socket receives.
//!
//! Wire formats (all fields big-endian):
//!
//! ```text
//! VRRPv2 (RFC 3768), IPv4 only          VRRPv3 (RFC 5798), IPv4 or IPv6
//! 0      ver=2|type=1                   0      ver=3|type=1
//! 1      VRID                           1      VRID
//! 2      priority                       2      priority
//! 3      count of addresses             3      count of addresses
//! 4      auth type (0 none, 1 PASS)     4..6   4 reserved bits | 12-bit max adver int (centiseconds)
//! 5      adver int (seconds)            6..8   checksum (pseudo-header + message)
//! 6..8   checksum (message only)        8..    addresses (4 or 16 bytes each)
//! 8..    IPv4 addresses
//! end-8  auth data (8 bytes)
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// IP protocol number of VRRP (v2 and v3).
pub const IPPROTO_VRRP: u8 = 112;
/// IP protocol number of IPsec AH, which VRRPv2 "auth type 2" used (obsolete, unsupported).
pub const IPPROTO_AH: u8 = 51;
/// TTL / hop limit that must be sent, and must be seen on received multicast adverts.
pub const VRRP_TTL: u8 = 255;
/// IPv4 multicast group of VRRP.
pub const MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IPv6 multicast group of VRRP.
pub const MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// Priority carried by a master that is giving up (shutdown, fault): backups take over fast.
pub const PRIORITY_STOP: u8 = 0;
/// Priority of the address owner: it becomes master at once and its priority never changes.
pub const PRIORITY_OWNER: u8 = 255;
/// VRRP packet type "ADVERTISEMENT", the only one defined.
pub const TYPE_ADVERT: u8 = 1;
/// Length of the fixed VRRP header (v2 and v3).
pub const HEADER_LEN: usize = 8;
/// Length of the VRRPv2 authentication data trailer.
pub const V2_AUTH_DATA_LEN: usize = 8;
/// Largest VRRPv3 advertisement interval, in centiseconds (12 bits: 40.95 s).
pub const V3_MAX_INTERVAL_CS: u16 = 0x0fff;
/// VRRPv2 auth type codes as on the wire.
pub const AUTH_TYPE_NONE: u8 = 0;
/// VRRPv2 simple text password.
pub const AUTH_TYPE_PASS: u8 = 1;
/// VRRPv2 IPsec AH (RFC 2338), removed by RFC 3768.
pub const AUTH_TYPE_AH: u8 = 2;

/// VRRP protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// RFC 3768: IPv4 only, interval in whole seconds, optional simple password.
    V2,
    /// RFC 5798: IPv4 and IPv6, interval in centiseconds, pseudo-header checksum.
    V3,
}

impl Version {
    /// The number in the high nibble of the first byte.
    pub fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VRRPv{}", self.number())
    }
}

/// VRRPv2 authentication. VRRPv3 has none.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// Auth type 0; the 8 auth data bytes are sent as zeros and ignored on receipt.
    None,
    /// Auth type 1 (keepalived `auth_type PASS`): the password, zero-padded to 8 bytes.
    Pass([u8; V2_AUTH_DATA_LEN]),
}

impl Auth {
    /// A PASS password as keepalived stores `auth_pass`: truncated to 8 bytes, zero-padded.
    pub fn pass(password: &[u8]) -> Auth {
        let mut data = [0u8; V2_AUTH_DATA_LEN];
        for (slot, byte) in data.iter_mut().zip(password) {
            *slot = *byte;
        }
        Auth::Pass(data)
    }

    /// The auth type code on the wire.
    pub fn type_code(&self) -> u8 {
        match self {
            Auth::None => AUTH_TYPE_NONE,
            Auth::Pass(_) => AUTH_TYPE_PASS,
        }
    }

    fn data(&self) -> [u8; V2_AUTH_DATA_LEN] {
        match self {
            Auth::None => [0; V2_AUTH_DATA_LEN],
            Auth::Pass(data) => *data,
        }
    }
}

// The password is a secret: never print it in logs or panics.
impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Pass(_) => f.write_str("Pass(<redacted>)"),
        }
    }
}

/// The fields that differ between VRRPv2 and VRRPv3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionFields {
    /// VRRPv2: advertisement interval in whole seconds and authentication.
    V2 {
        /// Advertisement interval, seconds.
        advert_int_secs: u8,
        /// Authentication (type and data).
        auth: Auth,
    },
    /// VRRPv3: maximum advertisement interval in centiseconds (12 bits on the wire).
    V3 {
        /// Maximum advertisement interval, centiseconds (1..=4095).
        max_advert_int_cs: u16,
    },
}

/// One decoded (or to-be-encoded) VRRP advertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    /// Virtual router identifier, 1..=255.
    pub vrid: u8,
    /// Sender's priority: 0 = master giving up, 255 = address owner.
    pub priority: u8,
    /// Version-specific fields (and thereby the version).
    pub fields: VersionFields,
    /// Virtual addresses, all of the family of the packet's IP header.
    pub addresses: Vec<IpAddr>,
}

impl Advert {
    /// Protocol version of this advert.
    pub fn version(&self) -> Version {
        match self.fields {
            VersionFields::V2 { .. } => Version::V2,
            VersionFields::V3 { .. } => Version::V3,
        }
    }

    /// The advertisement interval it carries.
    pub fn interval(&self) -> Duration {
        match self.fields {
            VersionFields::V2 { advert_int_secs, .. } => Duration::from_secs(u64::from(advert_int_secs)),
            VersionFields::V3 { max_advert_int_cs } => Duration::from_millis(u64::from(max_advert_int_cs) * 10),
        }
    }

    /// True when the sender is a master giving up (priority 0).
    pub fn is_stop(&self) -> bool {
        self.priority == PRIORITY_STOP
    }
}

/// The IP source and destination of an advert: the v3 checksum covers them, and the family
/// decides the address size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrContext {
    /// IP source address (IPv6: must be link-local).
    pub src: IpAddr,
    /// IP destination address (the multicast group, or a unicast peer).
    pub dst: IpAddr,
}

impl AddrContext {
    /// Source `src` sending to the VRRP multicast group of its family.
    pub fn multicast(src: IpAddr) -> AddrContext {
        let dst = match src {
            IpAddr::V4(_) => IpAddr::V4(MULTICAST_V4),
            IpAddr::V6(_) => IpAddr::V6(MULTICAST_V6),
        };
        AddrContext { src, dst }
    }
}

/// What a receiver expects; [`decode`] rejects adverts that do not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeExpect {
    /// Configured protocol version: a packet of the other version is rejected.
    pub version: Version,
    /// Accept only this VRID (`None`: any VRID, for a socket shared by several instances).
    pub vrid: Option<u8>,
    /// VRRPv2 authentication the packet must carry (ignored for v3).
    pub auth: Auth,
    /// VRRPv2: the local advertisement interval in seconds; a different received interval is
    /// rejected, as keepalived does (RFC 3768 §7.1). `None` skips the check. Ignored for v3,
    /// where a backup adopts the master's interval instead.
    pub v2_advert_int_secs: Option<u8>,
    /// IPv6: reject a source that is not link-local (RFC 5798 §5.1.2.1). On by default.
    pub require_link_local_source: bool,
}

impl DecodeExpect {
    /// Expect `version` from any VRID, no authentication, no interval check.
    pub fn new(version: Version) -> DecodeExpect {
        DecodeExpect {
            version,
            vrid: None,
            auth: Auth::None,
            v2_advert_int_secs: None,
            require_link_local_source: true,
        }
    }
}

/// Why a received packet was rejected. Every variant is a hostile or misconfigured peer; none
/// is fatal to the receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the fixed 8-byte VRRP header.
    TooShort {
        /// Bytes received.
        len: usize,
    },
    /// Version nibble differs from the configured version.
    BadVersion {
        /// Configured version.
        expected: Version,
        /// Version nibble received.
        got: u8,
    },
    /// Type nibble is not 1 (ADVERTISEMENT).
    BadType {
        /// Type nibble received.
        got: u8,
    },
    /// Length does not match the address count (plus auth data for v2).
    LengthMismatch {
        /// Count of addresses field.
        count: u8,
        /// Length implied by the count.
        expected: usize,
        /// Length received.
        got: usize,
    },
    /// The checksum does not verify.
    BadChecksum {
        /// Checksum field received.
        got: u16,
        /// Checksum the packet should carry.
        expected: u16,
    },
    /// VRID 0 is not a valid virtual router.
    InvalidVrid,
    /// The advert is for another virtual router.
    VridMismatch {
        /// Configured VRID.
        expected: u8,
        /// VRID received.
        got: u8,
    },
    /// VRRPv2 auth type 2 (IPsec AH): obsolete since RFC 3768, not supported.
    AuthTypeAh,
    /// VRRPv2 auth type other than 0, 1, 2.
    AuthTypeUnknown {
        /// Auth type received.
        got: u8,
    },
    /// VRRPv2 auth type differs from the configured one.
    AuthTypeMismatch {
        /// Configured auth type.
        expected: u8,
        /// Auth type received.
        got: u8,
    },
    /// VRRPv2 PASS password differs.
    AuthFailure,
    /// VRRPv2 advertisement interval differs from ours (keepalived drops these to avoid two
    /// masters on one VRID).
    IntervalMismatch {
        /// Our interval, seconds.
        expected_secs: u8,
        /// Received interval, seconds.
        got_secs: u8,
    },
    /// Advertisement interval 0: it would make the master-down timer expire at once.
    ZeroInterval,
    /// Source and destination addresses are of different families.
    AddressFamilyMismatch,
    /// VRRPv2 is IPv4 only.
    V2OverIpv6,
    /// IPv6 source address is not link-local.
    SourceNotLinkLocal {
        /// The source received.
        src: Ipv6Addr,
    },
    /// TTL / hop limit is not 255: the packet crossed a router (or was forged off-link).
    BadTtl {
        /// TTL received.
        got: u8,
    },
    /// IPv4 packet shorter than its header.
    Ipv4TooShort {
        /// Bytes received.
        len: usize,
    },
    /// The IP version nibble is not 4.
    NotIpv4 {
        /// Version nibble received.
        got: u8,
    },
    /// IPv4 header length below 20 bytes or beyond the packet.
    BadIhl {
        /// Header length in bytes.
        header_len: usize,
    },
    /// IPv4 total length differs from the bytes received.
    Ipv4LengthMismatch {
        /// Total length field.
        total_len: usize,
        /// Bytes received.
        received: usize,
    },
    /// IPv4 fragment: VRRP adverts are never fragmented.
    Fragmented,
    /// IPv4 protocol is not 112 (51 means VRRPv2 with IPsec AH, unsupported).
    NotVrrp {
        /// Protocol received.
        protocol: u8,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DecodeError as E;
        match self {
            E::TooShort { len } => write!(f, "VRRP packet too short: {len} bytes, need at least {HEADER_LEN}"),
            E::BadVersion { expected, got } => write!(f, "wrong VRRP version {got}, configured {expected} (set the same `version` on every router of this VRID)"),
            E::BadType { got } => write!(f, "invalid VRRP packet type {got}, expected {TYPE_ADVERT} (advertisement)"),
            E::LengthMismatch { count, expected, got } => write!(f, "VRRP packet length {got} does not match {count} address(es): expected {expected} bytes"),
            E::BadChecksum { got, expected } => write!(f, "invalid VRRP checksum {got:#06x}, expected {expected:#06x}"),
            E::InvalidVrid => f.write_str("invalid VRID 0"),
            E::VridMismatch { expected, got } => write!(f, "advert for VRID {got}, this instance is VRID {expected}"),
            E::AuthTypeAh => f.write_str("VRRPv2 IPsec AH authentication (auth type 2) is obsolete and not supported: use auth_type PASS or none"),
            E::AuthTypeUnknown { got } => write!(f, "invalid VRRPv2 auth type {got}"),
            E::AuthTypeMismatch { expected, got } => write!(f, "received VRRPv2 auth type {got}, configured {expected} (set the same authentication on every router of this VRID)"),
            E::AuthFailure => f.write_str("VRRPv2 password mismatch (check auth_pass on every router of this VRID)"),
            E::IntervalMismatch { expected_secs, got_secs } => write!(f, "VRRPv2 advertisement interval mismatch: ours {expected_secs}s, received {got_secs}s (set the same advert_int on every router of this VRID)"),
            E::ZeroInterval => f.write_str("advertisement interval 0 is invalid"),
            E::AddressFamilyMismatch => f.write_str("source and destination addresses are of different families"),
            E::V2OverIpv6 => f.write_str("VRRPv2 is IPv4 only; use version 3 for IPv6"),
            E::SourceNotLinkLocal { src } => write!(f, "IPv6 VRRP source {src} is not link-local"),
            E::BadTtl { got } => write!(f, "invalid TTL/hop limit {got}, expected {VRRP_TTL} (the advert crossed a router)"),
            E::Ipv4TooShort { len } => write!(f, "IPv4 packet too short: {len} bytes"),
            E::NotIpv4 { got } => write!(f, "IP version {got} in an IPv4 packet"),
            E::BadIhl { header_len } => write!(f, "invalid IPv4 header length {header_len}"),
            E::Ipv4LengthMismatch { total_len, received } => write!(f, "IPv4 total length {total_len} but {received} bytes received"),
            E::Fragmented => f.write_str("fragmented IPv4 VRRP packet"),
            E::NotVrrp { protocol: IPPROTO_AH } => f.write_str("VRRPv2 with IPsec AH (IP protocol 51) is obsolete and not supported"),
            E::NotVrrp { protocol } => write!(f, "IP protocol {protocol} is not VRRP ({IPPROTO_VRRP})"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why an [`Advert`] cannot be put on the wire (a caller bug, never input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// VRID 0.
    InvalidVrid,
    /// Source and destination are of different families.
    ContextFamilyMismatch,
    /// An advertised address is not of the family of the IP header.
    AddressFamilyMismatch {
        /// The offending address.
        addr: IpAddr,
    },
    /// More than 255 addresses.
    TooManyAddresses {
        /// How many were given.
        count: usize,
    },
    /// VRRPv2 over IPv6.
    V2OverIpv6,
    /// VRRPv3 interval above 4095 centiseconds.
    IntervalTooLarge {
        /// Centiseconds given.
        cs: u16,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::InvalidVrid => f.write_str("VRID 0 is invalid"),
            EncodeError::ContextFamilyMismatch => f.write_str("source and destination are of different families"),
            EncodeError::AddressFamilyMismatch { addr } => {
                write!(f, "address {addr} is not of the family of the IP header")
            }
            EncodeError::TooManyAddresses { count } => {
                write!(f, "{count} addresses, at most 255 fit in an advert")
            }
            EncodeError::V2OverIpv6 => f.write_str("VRRPv2 is IPv4 only"),
            EncodeError::IntervalTooLarge { cs } => {
                write!(f, "VRRPv3 interval {cs} cs exceeds {V3_MAX_INTERVAL_CS} cs (40.95 s)")
            }
        }
    }
}

impl std::error::Error for EncodeError {}

/// Address family of a packet, from its IP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    fn addr_len(self) -> usize {
        match self {
            Family::V4 => 4,
            Family::V6 => 16,
        }
    }
}

fn context_family(ctx: &AddrContext) -> Option<Family> {
    let family = Family::of(ctx.src);
    (family == Family::of(ctx.dst)).then_some(family)
}

/// True for `fe80::/10`.
pub fn is_ipv6_link_local(addr: &Ipv6Addr) -> bool {
    addr.segments()[0] & 0xffc0 == 0xfe80
}

/// Checks the TTL (IPv4) or hop limit (IPv6) of a received multicast advert: it must be 255.
pub fn check_ttl(ttl: u8) -> Result<(), DecodeError> {
    if ttl == VRRP_TTL {
        Ok(())
    } else {
        Err(DecodeError::BadTtl { got: ttl })
    }
}

/// Encodes `advert` as the VRRP payload (no IP header: the kernel builds it on a raw socket).
/// `ctx` gives the IP addresses the v3 checksum covers.
pub fn encode(advert: &Advert, ctx: &AddrContext) -> Result<Vec<u8>, EncodeError> {
    let family = context_family(ctx).ok_or(EncodeError::ContextFamilyMismatch)?;
    if advert.vrid == 0 {
        return Err(EncodeError::InvalidVrid);
    }
    let count = u8::try_from(advert.addresses.len())
        .map_err(|_| EncodeError::TooManyAddresses { count: advert.addresses.len() })?;
    if let Some(addr) = advert.addresses.iter().find(|a| Family::of(**a) != family) {
        return Err(EncodeError::AddressFamilyMismatch { addr: *addr });
    }
    let (byte4, byte5) = match &advert.fields {
        VersionFields::V2 { advert_int_secs, auth } => {
            if family == Family::V6 {
                return Err(EncodeError::V2OverIpv6);
            }
            (auth.type_code(), *advert_int_secs)
        }
        VersionFields::V3 { max_advert_int_cs } => {
            if *max_advert_int_cs > V3_MAX_INTERVAL_CS {
                return Err(EncodeError::IntervalTooLarge { cs: *max_advert_int_cs });
            }
            let [hi, lo] = max_advert_int_cs.to_be_bytes();
            (hi, lo)
        }
    };
    let version = advert.version();
    let mut out = Vec::with_capacity(message_len(version, family, count));
    out.extend_from_slice(&[
        version.number() << 4 | TYPE_ADVERT,
        advert.vrid,
        advert.priority,
        count,
        byte4,
        byte5,
        0,
        0,
    ]);
    for addr in &advert.addresses {
        match addr {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
        }
    }
    if let VersionFields::V2 { auth, .. } = &advert.fields {
        out.extend_from_slice(&auth.data());
    }
    let checksum = checksum(version, ctx, &out);
    if let Some(field) = out.get_mut(6..8) {
        field.copy_from_slice(&checksum.to_be_bytes());
    }
    Ok(out)
}

/// Decodes and validates a VRRP payload received from `ctx.src` to `ctx.dst`.
///
/// Checks, in order: address families, IPv6 link-local source, header length, version, type,
/// length against the address count, checksum, VRID, (v2) authentication and interval, and a
/// non-zero interval. The TTL is checked separately with [`check_ttl`] since only the I/O layer
/// sees it.
pub fn decode(bytes: &[u8], ctx: &AddrContext, expect: &DecodeExpect) -> Result<Advert, DecodeError> {
    let family = context_family(ctx).ok_or(DecodeError::AddressFamilyMismatch)?;
    if let IpAddr::V6(src) = ctx.src {
        if expect.require_link_local_source && !is_ipv6_link_local(&src) {
            return Err(DecodeError::SourceNotLinkLocal { src });
        }
    }
    let Some(&[vers_type, vrid, priority, count, byte4, byte5, sum_hi, sum_lo]) = bytes.first_chunk::<HEADER_LEN>()
    else {
        return Err(DecodeError::TooShort { len: bytes.len() });
    };
    let version_nibble = vers_type >> 4;
    if version_nibble != expect.version.number() {
        return Err(DecodeError::BadVersion { expected: expect.version, got: version_nibble });
    }
    if expect.version == Version::V2 && family == Family::V6 {
        return Err(DecodeError::V2OverIpv6);
    }
    if vers_type & 0x0f != TYPE_ADVERT {
        return Err(DecodeError::BadType { got: vers_type & 0x0f });
    }
    let expected_len = message_len(expect.version, family, count);
    if bytes.len() != expected_len {
        return Err(DecodeError::LengthMismatch { count, expected: expected_len, got: bytes.len() });
    }
    verify_checksum(expect.version, ctx, bytes, u16::from_be_bytes([sum_hi, sum_lo]))?;
    if vrid == 0 {
        return Err(DecodeError::InvalidVrid);
    }
    if let Some(expected) = expect.vrid {
        if vrid != expected {
            return Err(DecodeError::VridMismatch { expected, got: vrid });
        }
    }
    let addr_bytes = bytes.get(HEADER_LEN..HEADER_LEN + usize::from(count) * family.addr_len()).unwrap_or_default();
    let addresses = parse_addresses(family, addr_bytes);
    let fields = match expect.version {
        Version::V2 => {
            let auth_data = bytes.last_chunk::<V2_AUTH_DATA_LEN>().copied().unwrap_or_default();
            let auth = check_v2_auth(byte4, auth_data, &expect.auth)?;
            if let Some(expected_secs) = expect.v2_advert_int_secs {
                if byte5 != expected_secs {
                    return Err(DecodeError::IntervalMismatch { expected_secs, got_secs: byte5 });
                }
            }
            VersionFields::V2 { advert_int_secs: byte5, auth }
        }
        // The 4 reserved bits are ignored on receipt (RFC 5798 §5.2.4), as keepalived does.
        Version::V3 => VersionFields::V3 { max_advert_int_cs: u16::from_be_bytes([byte4, byte5]) & V3_MAX_INTERVAL_CS },
    };
    let advert = Advert { vrid, priority, fields, addresses };
    if advert.interval().is_zero() {
        return Err(DecodeError::ZeroInterval);
    }
    Ok(advert)
}

fn message_len(version: Version, family: Family, count: u8) -> usize {
    let auth = if version == Version::V2 { V2_AUTH_DATA_LEN } else { 0 };
    HEADER_LEN + usize::from(count) * family.addr_len() + auth
}

fn parse_addresses(family: Family, bytes: &[u8]) -> Vec<IpAddr> {
    match family {
        Family::V4 => bytes
            .chunks_exact(4)
            .filter_map(|c| <[u8; 4]>::try_from(c).ok())
            .map(|o| IpAddr::V4(Ipv4Addr::from(o)))
            .collect(),
        Family::V6 => bytes
            .chunks_exact(16)
            .filter_map(|c| <[u8; 16]>::try_from(c).ok())
            .map(|o| IpAddr::V6(Ipv6Addr::from(o)))
            .collect(),
    }
}

fn check_v2_auth(auth_type: u8, data: [u8; V2_AUTH_DATA_LEN], expected: &Auth) -> Result<Auth, DecodeError> {
    let received = match auth_type {
        AUTH_TYPE_NONE => Auth::None,
        AUTH_TYPE_PASS => Auth::Pass(data),
        AUTH_TYPE_AH => return Err(DecodeError::AuthTypeAh),
        got => return Err(DecodeError::AuthTypeUnknown { got }),
    };
    match (expected, &received) {
        (Auth::None, Auth::None) => Ok(received),
        (Auth::Pass(want), Auth::Pass(got)) => {
            if constant_time_eq(want, got) {
                Ok(received)
            } else {
                Err(DecodeError::AuthFailure)
            }
        }
        _ => Err(DecodeError::AuthTypeMismatch { expected: expected.type_code(), got: auth_type }),
    }
}

// A password check must not leak, through timing, how many leading bytes were right.
fn constant_time_eq(a: &[u8; V2_AUTH_DATA_LEN], b: &[u8; V2_AUTH_DATA_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The checksum `message` (whose checksum field may hold anything) must carry.
fn checksum(version: Version, ctx: &AddrContext, message: &[u8]) -> u16 {
    let (head, tail) = message.split_at(message.len().min(6));
    let tail = tail.get(2..).unwrap_or_default();
    let mut sum = pseudo_header_sum(version, ctx, message.len());
    sum = add_words(sum, head);
    sum = add_words(sum, tail);
    !fold(sum)
}

fn verify_checksum(version: Version, ctx: &AddrContext, message: &[u8], got: u16) -> Result<(), DecodeError> {
    let expected = checksum(version, ctx, message);
    // 0x0000 and 0xffff are the same number in ones' complement; accept either spelling.
    if got == expected || (got == 0xffff && expected == 0) || (got == 0 && expected == 0xffff) {
        Ok(())
    } else {
        Err(DecodeError::BadChecksum { got, expected })
    }
}

/// VRRPv2: the message alone. VRRPv3: the IPv4 pseudo-header (src, dst, zero, protocol, length)
/// or the IPv6 one (src, dst, 32-bit length, 3 zero bytes, next header), as keepalived and the
/// kernel's IPV6_CHECKSUM compute it.
fn pseudo_header_sum(version: Version, ctx: &AddrContext, len: usize) -> u32 {
    if version == Version::V2 {
        return 0;
    }
    let proto = u32::from(IPPROTO_VRRP);
    match (ctx.src, ctx.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let len = u32::try_from(len).unwrap_or(u32::MAX) & 0xffff;
            add_words(add_words(proto + len, &s.octets()), &d.octets())
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let len = u32::try_from(len).unwrap_or(u32::MAX);
            let sum = add_words(add_words(proto, &s.octets()), &d.octets());
            add_words(sum, &len.to_be_bytes())
        }
        _ => 0,
    }
}

/// Adds `bytes` as big-endian 16-bit words (a trailing odd byte padded with zero) to `sum`,
/// folding carries so the sum never overflows.
fn add_words(sum: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    let mut sum = chunks.by_ref().fold(sum, |acc, w| {
        let word = match w {
            [hi, lo] => u16::from_be_bytes([*hi, *lo]),
            _ => 0,
        };
        fold_once(acc + u32::from(word))
    });
    if let [last] = chunks.remainder() {
        sum = fold_once(sum + (u32::from(*last) << 8));
    }
    sum
}

fn fold_once(sum: u32) -> u32 {
    (sum & 0xffff) + (sum >> 16)
}

fn fold(sum: u32) -> u16 {
    let once = fold_once(sum);
    let twice = fold_once(once);
    u16::try_from(twice).unwrap_or(u16::MAX)
}

/// An IPv4 packet as an `IPPROTO_VRRP` raw socket delivers it (header included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<'a> {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Time to live as received (check it with [`check_ttl`]).
    pub ttl: u8,
    /// The VRRP payload.
    pub payload: &'a [u8],
}

impl Ipv4Packet<'_> {
    /// The addresses [`decode`] needs.
    pub fn addr_context(&self) -> AddrContext {
        AddrContext { src: IpAddr::V4(self.src), dst: IpAddr::V4(self.dst) }
    }
}

/// Parses the IPv4 header of a packet received on an IPv4 `IPPROTO_VRRP` raw socket. The header
/// checksum is not verified: the kernel drops packets whose header checksum is wrong.
pub fn parse_ipv4_packet(bytes: &[u8]) -> Result<Ipv4Packet<'_>, DecodeError> {
    let Some(header) = bytes.first_chunk::<20>() else {
        return Err(DecodeError::Ipv4TooShort { len: bytes.len() });
    };
    let [ver_ihl, _tos, len_hi, len_lo, _id_hi, _id_lo, frag_hi, frag_lo, ttl, protocol, _sum_hi, _sum_lo, s0, s1, s2, s3, d0, d1, d2, d3] =
        *header;
    if ver_ihl >> 4 != 4 {
        return Err(DecodeError::NotIpv4 { got: ver_ihl >> 4 });
    }
    let header_len = usize::from(ver_ihl & 0x0f) * 4;
    if header_len < 20 || header_len > bytes.len() {
        return Err(DecodeError::BadIhl { header_len });
    }
    let total_len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    if total_len != bytes.len() {
        return Err(DecodeError::Ipv4LengthMismatch { total_len, received: bytes.len() });
    }
    // More-fragments flag or a non-zero offset.
    if u16::from_be_bytes([frag_hi, frag_lo]) & 0x3fff != 0 {
        return Err(DecodeError::Fragmented);
    }
    if protocol != IPPROTO_VRRP {
        return Err(DecodeError::NotVrrp { protocol });
    }
    let payload = bytes.get(header_len..).unwrap_or_default();
    Ok(Ipv4Packet { src: Ipv4Addr::new(s0, s1, s2, s3), dst: Ipv4Addr::new(d0, d1, d2, d3), ttl, payload })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example_sum() {
        // RFC 1071 §3 numerical example: words 0001 f203 f4f5 f6f7 sum to ddf2 (folded).
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(add_words(0, &bytes)), 0xddf2);
    }

    #[test]
    fn odd_length_is_padded() {
        assert_eq!(fold(add_words(0, &[0xab])), 0xab00);
    }

    #[test]
    fn link_local_prefix() {
        assert!(is_ipv6_link_local(&"fe80::1".parse().expect("addr")));
        assert!(is_ipv6_link_local(&"febf::1".parse().expect("addr")));
        assert!(!is_ipv6_link_local(&"fec0::1".parse().expect("addr")));
        assert!(!is_ipv6_link_local(&"2001:db8::1".parse().expect("addr")));
    }

    #[test]
    fn password_is_truncated_and_padded() {
        assert_eq!(Auth::pass(b"averylongpassword"), Auth::pass(b"averylon"));
        assert_eq!(Auth::pass(b"abc"), Auth::Pass(*b"abc\0\0\0\0\0"));
        assert_eq!(format!("{:?}", Auth::pass(b"secret12")), "Pass(<redacted>)");
    }
}
