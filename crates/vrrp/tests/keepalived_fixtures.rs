//! Adverts captured from keepalived 2.2.7 (see tests/fixtures/README.md): we decode them, encode
//! them back to the identical bytes, and send the same bytes when configured the same way.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fulcrum_vrrp::{
    check_ttl, decode, encode, parse_ipv4_packet, AddrContext, Advert, Auth, Config, DecodeError, DecodeExpect,
    InitialState, Instance, Version, VersionFields,
};

struct Fixture {
    name: &'static str,
    ctx: AddrContext,
    ttl: u8,
    ip: Option<Vec<u8>>,
    payload: Vec<u8>,
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit")).collect()
}

fn load(name: &'static str) -> Fixture {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", name].iter().collect();
    let text = std::fs::read_to_string(&path).expect("fixture file");
    let field = |key: &str| {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(' ')))
            .map(str::trim)
    };
    let addr = |key: &str| -> IpAddr { field(key).expect("address field").parse().expect("address") };
    Fixture {
        name,
        ctx: AddrContext { src: addr("src"), dst: addr("dst") },
        ttl: field("ttl").expect("ttl").parse().expect("ttl number"),
        ip: field("ip").map(hex),
        payload: hex(field("payload").expect("payload")),
    }
}

fn v4(d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 99, 0, d))
}

const ALL: [&str; 10] = [
    "v2_pass_master.txt",
    "v2_pass_prio0.txt",
    "v3_ipv4_master.txt",
    "v3_ipv4_prio0.txt",
    "v3_ipv6_master.txt",
    "v3_ipv6_prio0.txt",
    "v2_owner_noauth.txt",
    "v2_owner_prio0.txt",
    "v2_pass_short.txt",
    "v2_pass_truncated.txt",
];

/// The keepalived instance each fixture came from, as a fulcrum `Config`.
fn keepalived_config(name: &str) -> Config {
    let me = v4(1);
    let ll: IpAddr = "fe80::99:1".parse().expect("addr");
    let with = |mut c: Config, interval_ms: u64, auth: Auth| {
        c.advert_interval = Duration::from_millis(interval_ms);
        c.auth = auth;
        c
    };
    match name.split('.').next().unwrap_or_default() {
        "v2_pass_master" | "v2_pass_prio0" => {
            let mut c =
                with(Config::new(Version::V2, 51, 150, me, vec![v4(51), v4(52)]), 1000, Auth::pass(b"secret12"));
            c.initial_state = InitialState::Master;
            c
        }
        "v3_ipv4_master" | "v3_ipv4_prio0" => {
            with(Config::new(Version::V3, 52, 120, me, vec![v4(53)]), 100, Auth::None)
        }
        "v3_ipv6_master" | "v3_ipv6_prio0" => {
            let vips = vec!["fe80::53:1".parse().expect("addr"), "2001:db8:99::53".parse().expect("addr")];
            with(Config::new(Version::V3, 53, 200, ll, vips), 1000, Auth::None)
        }
        "v2_owner_noauth" | "v2_owner_prio0" => {
            with(Config::new(Version::V2, 54, 255, me, vec![v4(54)]), 2000, Auth::None)
        }
        "v2_pass_short" => with(Config::new(Version::V2, 61, 100, me, vec![v4(61)]), 1000, Auth::pass(b"abc")),
        "v2_pass_truncated" => with(
            Config::new(Version::V2, 62, 1, me, vec![v4(62), v4(63), v4(64)]),
            3000,
            Auth::pass(b"averylongpassword"),
        ),
        other => panic!("no config for fixture {other}"),
    }
}

/// Advert fields read off keepalived's configuration, written out independently of the codec.
fn expected_advert(name: &str) -> Advert {
    let v2 = |vrid, priority, secs, auth, addresses| Advert {
        vrid,
        priority,
        fields: VersionFields::V2 { advert_int_secs: secs, auth },
        addresses,
    };
    let v3 = |vrid, priority, cs, addresses| Advert {
        vrid,
        priority,
        fields: VersionFields::V3 { max_advert_int_cs: cs },
        addresses,
    };
    let six = vec![
        IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0x53, 1)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 0x53)),
    ];
    let secret = Auth::Pass(*b"secret12");
    match name.split('.').next().unwrap_or_default() {
        "v2_pass_master" => v2(51, 150, 1, secret, vec![v4(51), v4(52)]),
        "v2_pass_prio0" => v2(51, 0, 1, secret, vec![v4(51), v4(52)]),
        "v3_ipv4_master" => v3(52, 120, 10, vec![v4(53)]),
        "v3_ipv4_prio0" => v3(52, 0, 10, vec![v4(53)]),
        "v3_ipv6_master" => v3(53, 200, 100, six),
        "v3_ipv6_prio0" => v3(53, 0, 100, six),
        "v2_owner_noauth" => v2(54, 255, 2, Auth::None, vec![v4(54)]),
        "v2_owner_prio0" => v2(54, 0, 2, Auth::None, vec![v4(54)]),
        "v2_pass_short" => v2(61, 100, 1, Auth::Pass(*b"abc\0\0\0\0\0"), vec![v4(61)]),
        "v2_pass_truncated" => v2(62, 1, 3, Auth::Pass(*b"averylon"), vec![v4(62), v4(63), v4(64)]),
        other => panic!("no expectation for fixture {other}"),
    }
}

#[test]
fn keepalived_adverts_decode_with_the_expected_fields() {
    for name in ALL {
        let fx = load(name);
        let config = keepalived_config(name);
        let advert = decode(&fx.payload, &fx.ctx, &config.decode_expect()).expect("keepalived advert");
        assert_eq!(advert, expected_advert(name), "{}", fx.name);
        assert_eq!(check_ttl(fx.ttl), Ok(()), "{}", fx.name);
        // The multicast groups are the standard ones.
        assert_eq!(fx.ctx, AddrContext::multicast(fx.ctx.src), "{}", fx.name);
    }
}

#[test]
fn encoding_the_decoded_advert_reproduces_keepalived_bytes() {
    for name in ALL {
        let fx = load(name);
        let advert = decode(
            &fx.payload,
            &fx.ctx,
            &DecodeExpect { auth: keepalived_config(name).auth, ..DecodeExpect::new(keepalived_config(name).version) },
        )
        .expect("keepalived advert");
        let bytes = encode(&advert, &fx.ctx).expect("encodable");
        assert_eq!(bytes, fx.payload, "{}", fx.name);
    }
}

#[test]
fn an_instance_configured_like_keepalived_sends_the_same_bytes() {
    let now = Instant::now();
    for name in ALL {
        let fx = load(name);
        let instance = Instance::new(keepalived_config(name), now).expect("valid config");
        let priority = expected_advert(name).priority;
        let bytes = encode(&instance.advert(priority), &fx.ctx).expect("encodable");
        assert_eq!(bytes, fx.payload, "{}", fx.name);
    }
}

#[test]
fn ipv4_headers_as_received_on_a_raw_socket_parse() {
    for name in ALL {
        let fx = load(name);
        let Some(ip) = &fx.ip else { continue };
        let packet = parse_ipv4_packet(ip).expect("keepalived IPv4 packet");
        assert_eq!(packet.addr_context(), fx.ctx, "{}", fx.name);
        assert_eq!(packet.ttl, 255, "{}", fx.name);
        assert_eq!(packet.payload, &fx.payload[..], "{}", fx.name);
    }
}

#[test]
fn priority_zero_adverts_are_stop_adverts() {
    for name in ALL {
        let advert = expected_advert(name);
        assert_eq!(advert.is_stop(), name.contains("prio0"), "{name}");
    }
}

#[test]
fn keepalived_adverts_fail_with_the_wrong_expectations() {
    let fx = load("v2_pass_master.txt");
    let mut expect = keepalived_config("v2_pass_master").decode_expect();
    expect.auth = Auth::pass(b"secret13");
    assert_eq!(decode(&fx.payload, &fx.ctx, &expect), Err(DecodeError::AuthFailure));
    expect.auth = Auth::None;
    assert_eq!(decode(&fx.payload, &fx.ctx, &expect), Err(DecodeError::AuthTypeMismatch { expected: 0, got: 1 }));
    expect.auth = Auth::pass(b"secret12");
    expect.v2_advert_int_secs = Some(2);
    assert_eq!(
        decode(&fx.payload, &fx.ctx, &expect),
        Err(DecodeError::IntervalMismatch { expected_secs: 2, got_secs: 1 })
    );
    expect.v2_advert_int_secs = Some(1);
    expect.vrid = Some(52);
    assert_eq!(decode(&fx.payload, &fx.ctx, &expect), Err(DecodeError::VridMismatch { expected: 52, got: 51 }));
}

#[test]
fn v3_checksum_covers_the_pseudo_header() {
    // The same keepalived bytes are wrong if they claim another source or destination.
    let fx = load("v3_ipv4_master.txt");
    let expect = keepalived_config("v3_ipv4_master").decode_expect();
    let forged = AddrContext { src: v4(2), ..fx.ctx };
    assert!(matches!(decode(&fx.payload, &forged, &expect), Err(DecodeError::BadChecksum { .. })));
    let unicast = AddrContext { dst: v4(2), ..fx.ctx };
    assert!(matches!(decode(&fx.payload, &unicast, &expect), Err(DecodeError::BadChecksum { .. })));
    let fx6 = load("v3_ipv6_master.txt");
    let forged6 = AddrContext { src: "fe80::99:2".parse().expect("addr"), ..fx6.ctx };
    let expect6 = keepalived_config("v3_ipv6_master").decode_expect();
    assert!(matches!(decode(&fx6.payload, &forged6, &expect6), Err(DecodeError::BadChecksum { .. })));
}

#[test]
fn every_truncation_and_extension_of_keepalived_adverts_is_rejected() {
    for name in ALL {
        let fx = load(name);
        let expect = keepalived_config(name).decode_expect();
        for len in 0..fx.payload.len() {
            assert!(decode(&fx.payload[..len], &fx.ctx, &expect).is_err(), "{name} {len}");
        }
        let mut longer = fx.payload.clone();
        longer.push(0);
        assert!(decode(&longer, &fx.ctx, &expect).is_err(), "{name} +1");
        if let Some(ip) = &fx.ip {
            for len in 0..ip.len() {
                assert!(parse_ipv4_packet(&ip[..len]).is_err(), "{name} ip {len}");
            }
        }
    }
}

#[test]
fn every_single_bit_flip_of_keepalived_adverts_is_rejected() {
    for name in ALL {
        let fx = load(name);
        let expect = keepalived_config(name).decode_expect();
        let original = decode(&fx.payload, &fx.ctx, &expect).expect("valid");
        for bit in 0..fx.payload.len() * 8 {
            let mut bytes = fx.payload.clone();
            bytes[bit / 8] ^= 1 << (bit % 8);
            // A single-bit error always changes the ones'-complement sum: the checksum (v2: the
            // whole message, auth data included; v3: message and pseudo-header) catches it, if a
            // header check does not first.
            let result = decode(&bytes, &fx.ctx, &expect);
            assert!(result.is_err(), "{name} bit {bit}: {result:?} vs {original:?}");
        }
    }
}
