//! A VRRP packet as a raw socket hands it over (IPv4 header and payload), and a bare payload
//! decoded for v2 and v3 with and without authentication: an error or an advert, never a
//! panic; what decodes must encode back to the same bytes.
#![no_main]
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use fulcrum_vrrp::{check_ttl, decode, encode, parse_ipv4_packet, AddrContext, Auth, Config, Version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = parse_ipv4_packet(data) {
        let _ = check_ttl(packet.ttl);
        decode_all(packet.payload, &packet.addr_context());
    }
    let v4 = AddrContext::multicast(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    decode_all(data, &v4);
    let v6 = AddrContext::multicast("fe80::1".parse().expect("link-local"));
    decode_all(data, &v6);
});

fn decode_all(payload: &[u8], ctx: &AddrContext) {
    let me = ctx.src;
    for version in [Version::V2, Version::V3] {
        for auth in [Auth::None, Auth::pass(b"secret12")] {
            let mut config = Config::new(version, 51, 100, me, vec![me]);
            config.auth = auth;
            if version == Version::V3 {
                config.advert_interval = Duration::from_millis(100);
            }
            let mut expect = config.decode_expect();
            expect.vrid = None;
            expect.v2_advert_int_secs = None;
            if let Ok(advert) = decode(payload, ctx, &expect) {
                if let Ok(bytes) = encode(&advert, ctx) {
                    let again = decode(&bytes, ctx, &expect).expect("an encoded advert decodes");
                    assert_eq!(again, advert);
                }
            }
        }
    }
}
