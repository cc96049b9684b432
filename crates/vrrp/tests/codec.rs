//! Codec round trips, checksum vectors, every decode/encode error, and robustness against
//! arbitrary bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use fulcrum_vrrp::{
    check_ttl, decode, encode, parse_ipv4_packet, AddrContext, Advert, Auth, DecodeError, DecodeExpect, EncodeError,
    Version, VersionFields, IPPROTO_AH, MULTICAST_V4, MULTICAST_V6,
};

fn ip4(d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, d))
}

fn ll(n: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, n))
}

fn ctx4() -> AddrContext {
    AddrContext::multicast(ip4(1))
}

fn ctx6() -> AddrContext {
    AddrContext::multicast(ll(1))
}

fn v2_advert(auth: Auth) -> Advert {
    Advert {
        vrid: 7,
        priority: 100,
        fields: VersionFields::V2 { advert_int_secs: 1, auth },
        addresses: vec![ip4(10), ip4(11)],
    }
}

fn v3_advert(addresses: Vec<IpAddr>) -> Advert {
    Advert { vrid: 9, priority: 200, fields: VersionFields::V3 { max_advert_int_cs: 100 }, addresses }
}

fn expect_v2(auth: Auth) -> DecodeExpect {
    DecodeExpect { auth, v2_advert_int_secs: Some(1), ..DecodeExpect::new(Version::V2) }
}

/// Independent checksum, to patch fields of crafted packets.
fn internet_checksum(chunks: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = chunks.concat();
    let mut sum: u32 = 0;
    for pair in bytes.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Recomputes the checksum of a crafted packet as a correct sender would.
fn fix_checksum(bytes: &mut [u8], version: Version, ctx: &AddrContext) {
    bytes[6] = 0;
    bytes[7] = 0;
    let len = bytes.len() as u16;
    let sum = match (version, ctx.src, ctx.dst) {
        (Version::V2, _, _) => internet_checksum(&[bytes]),
        (Version::V3, IpAddr::V4(s), IpAddr::V4(d)) => {
            internet_checksum(&[&s.octets(), &d.octets(), &[0, 112], &len.to_be_bytes(), bytes])
        }
        (Version::V3, IpAddr::V6(s), IpAddr::V6(d)) => {
            internet_checksum(&[&s.octets(), &d.octets(), &u32::from(len).to_be_bytes(), &[0, 0, 0, 112], bytes])
        }
        _ => panic!("mixed families"),
    };
    bytes[6..8].copy_from_slice(&sum.to_be_bytes());
}

/// Encodes a valid advert, lets `patch` alter it, and fixes the checksum.
fn crafted(advert: &Advert, ctx: &AddrContext, patch: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = encode(advert, ctx).expect("encodable");
    patch(&mut bytes);
    fix_checksum(&mut bytes, advert.version(), ctx);
    bytes
}

#[test]
fn round_trips() {
    let cases = [
        (v2_advert(Auth::None), ctx4(), expect_v2(Auth::None)),
        (v2_advert(Auth::pass(b"s3cret")), ctx4(), expect_v2(Auth::pass(b"s3cret"))),
        (v3_advert(vec![ip4(10)]), ctx4(), DecodeExpect::new(Version::V3)),
        (v3_advert(vec![ll(0x99), "2001:db8::99".parse().expect("addr")]), ctx6(), DecodeExpect::new(Version::V3)),
        (v3_advert(vec![]), ctx4(), DecodeExpect::new(Version::V3)),
        (
            v3_advert((0..=254).map(ip4).collect()),
            AddrContext { src: ip4(1), dst: ip4(2) },
            DecodeExpect::new(Version::V3),
        ),
    ];
    for (advert, ctx, expect) in cases {
        let bytes = encode(&advert, &ctx).expect("encodable");
        assert_eq!(decode(&bytes, &ctx, &expect).as_ref(), Ok(&advert), "{advert:?}");
        // The checksum we send is the one an independent implementation computes.
        let mut again = bytes.clone();
        fix_checksum(&mut again, advert.version(), &ctx);
        assert_eq!(again, bytes);
    }
}

#[test]
fn known_vectors() {
    // VRRPv2, VRID 1, priority 100, 1 address 192.168.1.1, no auth, 1 s: the checksum of
    // 2101 6401 0001 [sum] c0a8 0101 + 8 zero bytes is !(0x2101+0x6401+0x0001+0xc0a8+0x0101).
    let advert = Advert {
        vrid: 1,
        priority: 100,
        fields: VersionFields::V2 { advert_int_secs: 1, auth: Auth::None },
        addresses: vec![IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1))],
    };
    let bytes = encode(&advert, &AddrContext::multicast(ip4(1))).expect("encodable");
    let sum: u32 = 0x2101 + 0x6401 + 0x0001 + 0xc0a8 + 0x0101;
    let folded = (sum & 0xffff) + (sum >> 16);
    let checksum = !(folded as u16);
    let mut expected = vec![0x21, 0x01, 0x64, 0x01, 0x00, 0x01];
    expected.extend_from_slice(&checksum.to_be_bytes());
    expected.extend_from_slice(&[192, 168, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(bytes, expected);
    assert_eq!(checksum, 0xb952);

    // The v3 IPv4 checksum depends on the pseudo-header: a message-only sum (what a v2-style
    // implementation would send) is rejected, as keepalived rejects it.
    let v3 = v3_advert(vec![ip4(10)]);
    let mut message_only = encode(&v3, &ctx4()).expect("encodable");
    fix_checksum(&mut message_only, Version::V2, &ctx4());
    assert!(matches!(
        decode(&message_only, &ctx4(), &DecodeExpect::new(Version::V3)),
        Err(DecodeError::BadChecksum { .. })
    ));
}

#[test]
fn every_decode_error() {
    let v2 = v2_advert(Auth::None);
    let v3 = v3_advert(vec![ip4(10)]);
    let e2 = expect_v2(Auth::None);
    let e3 = DecodeExpect::new(Version::V3);
    let good2 = encode(&v2, &ctx4()).expect("encodable");
    let good3 = encode(&v3, &ctx4()).expect("encodable");

    let cases: Vec<(&str, Result<Advert, DecodeError>, DecodeError)> = vec![
        ("too short", decode(&good2[..7], &ctx4(), &e2), DecodeError::TooShort { len: 7 }),
        (
            "v3 packet to a v2 instance",
            decode(&good3, &ctx4(), &e2),
            DecodeError::BadVersion { expected: Version::V2, got: 3 },
        ),
        ("bad type", decode(&crafted(&v2, &ctx4(), |b| b[0] = 0x22), &ctx4(), &e2), DecodeError::BadType { got: 2 }),
        (
            "count larger than the packet",
            decode(&crafted(&v2, &ctx4(), |b| b[3] = 3), &ctx4(), &e2),
            DecodeError::LengthMismatch { count: 3, expected: 28, got: 24 },
        ),
        (
            "trailing bytes",
            decode(&[&good3[..], &[0]].concat(), &ctx4(), &e3),
            DecodeError::LengthMismatch { count: 1, expected: 12, got: 13 },
        ),
        (
            "bad checksum",
            decode(
                &{
                    let mut b = good2.clone();
                    b[6] ^= 0x40;
                    b
                },
                &ctx4(),
                &e2,
            ),
            DecodeError::BadChecksum {
                got: u16::from_be_bytes([good2[6] ^ 0x40, good2[7]]),
                expected: u16::from_be_bytes([good2[6], good2[7]]),
            },
        ),
        ("vrid 0", decode(&crafted(&v2, &ctx4(), |b| b[1] = 0), &ctx4(), &e2), DecodeError::InvalidVrid),
        (
            "other vrid",
            decode(&good2, &ctx4(), &DecodeExpect { vrid: Some(8), ..e2.clone() }),
            DecodeError::VridMismatch { expected: 8, got: 7 },
        ),
        ("AH", decode(&crafted(&v2, &ctx4(), |b| b[4] = 2), &ctx4(), &e2), DecodeError::AuthTypeAh),
        (
            "unknown auth type",
            decode(&crafted(&v2, &ctx4(), |b| b[4] = 9), &ctx4(), &e2),
            DecodeError::AuthTypeUnknown { got: 9 },
        ),
        (
            "PASS packet, no auth configured",
            decode(&encode(&v2_advert(Auth::pass(b"x")), &ctx4()).expect("encodable"), &ctx4(), &e2),
            DecodeError::AuthTypeMismatch { expected: 0, got: 1 },
        ),
        (
            "no-auth packet, PASS configured",
            decode(&good2, &ctx4(), &expect_v2(Auth::pass(b"x"))),
            DecodeError::AuthTypeMismatch { expected: 1, got: 0 },
        ),
        (
            "wrong password",
            decode(
                &encode(&v2_advert(Auth::pass(b"x")), &ctx4()).expect("encodable"),
                &ctx4(),
                &expect_v2(Auth::pass(b"y")),
            ),
            DecodeError::AuthFailure,
        ),
        (
            "v2 interval mismatch",
            decode(&crafted(&v2, &ctx4(), |b| b[5] = 3), &ctx4(), &e2),
            DecodeError::IntervalMismatch { expected_secs: 1, got_secs: 3 },
        ),
        (
            "v3 zero interval",
            decode(
                &crafted(&v3, &ctx4(), |b| {
                    b[4] = 0xf0; // reserved bits are ignored: still zero
                    b[5] = 0;
                }),
                &ctx4(),
                &e3,
            ),
            DecodeError::ZeroInterval,
        ),
        (
            "v2 zero interval, no interval check",
            decode(
                &crafted(&v2, &ctx4(), |b| b[5] = 0),
                &ctx4(),
                &DecodeExpect { v2_advert_int_secs: None, ..e2.clone() },
            ),
            DecodeError::ZeroInterval,
        ),
        (
            "mixed families",
            decode(&good3, &AddrContext { src: ip4(1), dst: IpAddr::V6(MULTICAST_V6) }, &e3),
            DecodeError::AddressFamilyMismatch,
        ),
        ("v2 over IPv6", decode(&[0x21, 1, 100, 0, 0, 1, 0, 0], &ctx6(), &e2), DecodeError::V2OverIpv6),
        (
            "global IPv6 source",
            decode(&good3, &AddrContext::multicast("2001:db8::1".parse().expect("addr")), &e3),
            DecodeError::SourceNotLinkLocal { src: "2001:db8::1".parse().expect("addr") },
        ),
    ];
    for (what, got, want) in cases {
        assert_eq!(got, Err(want.clone()), "{what}");
        assert!(!want.to_string().is_empty());
    }
    assert_eq!(check_ttl(254), Err(DecodeError::BadTtl { got: 254 }));
    assert_eq!(check_ttl(255), Ok(()));
    // A global IPv6 source passes when the check is turned off (unicast peers).
    let global = AddrContext { src: "2001:db8::1".parse().expect("addr"), dst: "2001:db8::2".parse().expect("addr") };
    let bytes = encode(&v3_advert(vec![ll(5)]), &global).expect("encodable");
    let lenient = DecodeExpect { require_link_local_source: false, ..e3 };
    assert!(decode(&bytes, &global, &lenient).is_ok());
}

fn ipv4_packet(payload: &[u8], protocol: u8) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut p = vec![0x45, 0xc0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 1, 0, 0, 255, protocol, 0, 0]);
    p.extend_from_slice(&[192, 0, 2, 1]);
    p.extend_from_slice(&MULTICAST_V4.octets());
    p.extend_from_slice(payload);
    p
}

#[test]
fn ipv4_header_parsing() {
    let payload = encode(&v2_advert(Auth::None), &ctx4()).expect("encodable");
    let good = ipv4_packet(&payload, 112);
    let parsed = parse_ipv4_packet(&good).expect("valid");
    assert_eq!(parsed.addr_context(), ctx4());
    assert_eq!(parsed.ttl, 255);
    assert_eq!(parsed.payload, &payload[..]);

    // Options: IHL 6 (24-byte header), payload after the options.
    let mut with_options = good.clone();
    with_options[0] = 0x46;
    with_options.splice(20..20, [1, 1, 1, 0]);
    let total = with_options.len() as u16;
    with_options[2..4].copy_from_slice(&total.to_be_bytes());
    assert_eq!(parse_ipv4_packet(&with_options).expect("valid").payload, &payload[..]);

    let mut v6 = good.clone();
    v6[0] = 0x65;
    let mut short_ihl = good.clone();
    short_ihl[0] = 0x44;
    let mut long_ihl = good.clone();
    long_ihl[0] = 0x4f;
    long_ihl.truncate(40);
    long_ihl[2..4].copy_from_slice(&40u16.to_be_bytes());
    let mut fragment = good.clone();
    fragment[6] = 0x20; // more fragments
    let mut offset = good.clone();
    offset[7] = 0x01;
    let mut dont_fragment = good.clone();
    dont_fragment[6] = 0x40;
    assert!(parse_ipv4_packet(&dont_fragment).is_ok());
    let ah = ipv4_packet(&payload, IPPROTO_AH);
    let udp = ipv4_packet(&payload, 17);
    let cases = [
        (parse_ipv4_packet(&good[..19]), DecodeError::Ipv4TooShort { len: 19 }),
        (parse_ipv4_packet(&v6), DecodeError::NotIpv4 { got: 6 }),
        (parse_ipv4_packet(&short_ihl), DecodeError::BadIhl { header_len: 16 }),
        (parse_ipv4_packet(&long_ihl), DecodeError::BadIhl { header_len: 60 }),
        (
            parse_ipv4_packet(&good[..good.len() - 1]),
            DecodeError::Ipv4LengthMismatch { total_len: good.len(), received: good.len() - 1 },
        ),
        (parse_ipv4_packet(&fragment), DecodeError::Fragmented),
        (parse_ipv4_packet(&offset), DecodeError::Fragmented),
        (parse_ipv4_packet(&ah), DecodeError::NotVrrp { protocol: 51 }),
        (parse_ipv4_packet(&udp), DecodeError::NotVrrp { protocol: 17 }),
    ];
    for (got, want) in cases {
        assert_eq!(got.map(|p| p.payload.to_vec()), Err(want));
    }
    assert!(DecodeError::NotVrrp { protocol: 51 }.to_string().contains("AH"));
}

#[test]
fn every_encode_error() {
    let too_many: Vec<IpAddr> = (0..256u16).map(|i| ip4((i % 250) as u8)).collect();
    let cases = [
        (encode(&Advert { vrid: 0, ..v3_advert(vec![]) }, &ctx4()), EncodeError::InvalidVrid),
        (encode(&v3_advert(vec![]), &AddrContext { src: ip4(1), dst: ll(1) }), EncodeError::ContextFamilyMismatch),
        (encode(&v3_advert(vec![ll(9)]), &ctx4()), EncodeError::AddressFamilyMismatch { addr: ll(9) }),
        (encode(&v3_advert(too_many), &ctx4()), EncodeError::TooManyAddresses { count: 256 }),
        (encode(&Advert { addresses: vec![], ..v2_advert(Auth::None) }, &ctx6()), EncodeError::V2OverIpv6),
        (
            encode(&Advert { fields: VersionFields::V3 { max_advert_int_cs: 4096 }, ..v3_advert(vec![]) }, &ctx4()),
            EncodeError::IntervalTooLarge { cs: 4096 },
        ),
    ];
    for (got, want) in cases {
        assert!(!want.to_string().is_empty());
        assert_eq!(got, Err(want));
    }
}

/// xorshift64*: deterministic pseudo-random bytes without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = (self.next() as usize) % (max_len + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let contexts = [ctx4(), ctx6()];
    let expects = [expect_v2(Auth::None), expect_v2(Auth::pass(b"secret12")), DecodeExpect::new(Version::V3)];
    let mut accepted = 0;
    for round in 0..50_000 {
        let mut bytes = rng.bytes(80);
        // Half the time, make the header plausible so deeper checks run.
        if round % 2 == 0 && bytes.len() >= 8 {
            bytes[0] = if round % 4 == 0 { 0x21 } else { 0x31 };
        }
        for ctx in &contexts {
            for expect in &expects {
                if decode(&bytes, ctx, expect).is_ok() {
                    accepted += 1;
                }
            }
        }
        let _ = parse_ipv4_packet(&bytes);
        let mut ip = bytes.clone();
        if ip.len() >= 20 {
            ip[0] = 0x40 | (ip[0] & 0x0f);
            let len = ip.len() as u16;
            ip[2..4].copy_from_slice(&len.to_be_bytes());
            if let Ok(packet) = parse_ipv4_packet(&ip) {
                let _ = decode(packet.payload, &packet.addr_context(), &expects[0]);
            }
        }
    }
    // Random bytes essentially never carry a valid checksum and length together.
    assert!(accepted < 10, "{accepted} random packets accepted");
}

#[test]
fn random_corruption_of_valid_packets_never_panics() {
    let mut rng = Rng(42);
    let packets = [
        (encode(&v2_advert(Auth::pass(b"pw")), &ctx4()).expect("encodable"), ctx4(), expect_v2(Auth::pass(b"pw"))),
        (encode(&v3_advert(vec![ll(3), ll(4)]), &ctx6()).expect("encodable"), ctx6(), DecodeExpect::new(Version::V3)),
    ];
    for (good, ctx, expect) in &packets {
        for _ in 0..20_000 {
            let mut bytes = good.clone();
            let flips = 1 + rng.next() % 4;
            for _ in 0..flips {
                let i = (rng.next() as usize) % bytes.len();
                bytes[i] = rng.next() as u8;
            }
            if rng.next() % 3 == 0 {
                bytes.truncate((rng.next() as usize) % (bytes.len() + 1));
            }
            if let Ok(advert) = decode(&bytes, ctx, expect) {
                // Whatever got through is self-consistent: it encodes back to the same bytes,
                // except for v3 reserved bits, which are ignored.
                let again = encode(&advert, ctx).expect("decoded adverts are encodable");
                assert_eq!(again.len(), bytes.len());
            }
        }
    }
}
