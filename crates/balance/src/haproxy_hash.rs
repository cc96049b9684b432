//! HAProxy's key hashes, so that a map-based hash backend sends each key to the server HAProxy
//! would have chosen (with equal weights; see docs/haproxy-compat.md): `sdbm` (the default),
//! `djb2`, `wt6` and `crc32` over the key's bytes, `avalanche` mixing the result again, and
//! `balance source`'s own fold of the address.
use fulcrum_model::{HashFunction, KeyHash};

/// The number HAProxy derives from `key` for `hash-type ... FUNCTION [avalanche]`.
pub fn key_number(spec: KeyHash, key: &[u8]) -> u32 {
    let n = match spec.function {
        HashFunction::Sdbm | HashFunction::None => sdbm(key),
        HashFunction::Djb2 => djb2(key),
        HashFunction::Wt6 => wt6(key),
        HashFunction::Crc32 => crc32(key),
    };
    if spec.avalanche {
        avalanche(n)
    } else {
        n
    }
}

/// `balance source`: the address's 32-bit big-endian words XORed together (one word for
/// IPv4), then `avalanche` if asked; the hash function is not used.
pub fn source_number(spec: KeyHash, address: &[u8]) -> u32 {
    let n = address.chunks_exact(4).fold(0u32, |acc, w| acc ^ u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    if spec.avalanche {
        avalanche(n)
    } else {
        n
    }
}

/// sdbm: each byte added to the running value times 65599.
pub fn sdbm(key: &[u8]) -> u32 {
    key.iter().fold(0u32, |h, &c| u32::from(c).wrapping_add(h.wrapping_mul(65599)))
}

/// djb2: from 5381, each byte added to the running value times 33.
pub fn djb2(key: &[u8]) -> u32 {
    key.iter().fold(5381u32, |h, &c| h.wrapping_mul(33).wrapping_add(u32::from(c)))
}

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it).
pub fn crc32(key: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in key {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// wt6: two 32-bit halves, each byte folded into both, which are then rotated by amounts the
/// state itself picks.
pub fn wt6(key: &[u8]) -> u32 {
    let (mut h0, mut h1) = (0xa53c_965a_u32, 0x5ca6_953a_u32);
    let (mut step0, mut step1) = (6u32, 18u32);
    for &byte in key {
        let t = u32::from(byte);
        let a = !(h0 ^ t);
        let b = !(h1.wrapping_add(t));
        h0 = b.rotate_left(step0);
        h1 = a.rotate_left(step1);
        let mix = ((h0 >> 16) ^ h1) & 0xffff;
        step0 = mix & 0x1f;
        step1 = mix >> 11;
    }
    h0 ^ h1
}

/// Bob Jenkins' 32-bit integer hash (the "full avalanche" one HAProxy applies).
pub fn avalanche(mut a: u32) -> u32 {
    a = a.wrapping_add(0x7ed5_5d16).wrapping_add(a << 12);
    a = (a ^ 0xc761_c23c) ^ (a >> 19);
    a = a.wrapping_add(0x1656_67b1).wrapping_add(a << 5);
    a = a.wrapping_add(0xd3a2_646c) ^ (a << 9);
    a = a.wrapping_add(0xfd70_46c5).wrapping_add(a << 3);
    (a ^ 0xb55a_4f09) ^ (a >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Values HAProxy's own test (reg-tests/balance/balance-uri.vtc) relies on: with four
        // equal servers, /url1 → the second, /url2 → the third, /url3 → the fourth, /url4 → the first.
        let index = |uri: &str| sdbm(uri.as_bytes()) % 4;
        assert_eq!([index("/url1"), index("/url2"), index("/url3"), index("/url4")], [1, 2, 3, 0]);
        assert_eq!(sdbm(b"/url1"), 4_103_199_409);
        assert_eq!(sdbm(b""), 0);
        assert_eq!(djb2(b""), 5381);
        assert_eq!(djb2(b"a"), 5381 * 33 + 97);
        // The CRC-32 check value.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(source_number(KeyHash::default(), &[10, 0, 0, 1]), 0x0a00_0001);
        assert_eq!(source_number(KeyHash::default(), &[0, 0, 0, 1, 0, 0, 0, 3]), 2);
    }

    #[test]
    fn functions_differ_and_avalanche_spreads() {
        let key = b"/some/path";
        let all = [sdbm(key), djb2(key), wt6(key), crc32(key)];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // Consecutive inputs land far apart after avalanche.
        let (a, b) = (avalanche(1), avalanche(2));
        assert!((a ^ b).count_ones() >= 8, "{a:#x} {b:#x}");
        assert_eq!(key_number(KeyHash { avalanche: true, ..KeyHash::default() }, key), avalanche(sdbm(key)));
    }
}
