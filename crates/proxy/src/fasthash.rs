//! A multiply-rotate hasher for the few small keys looked up on every request (server and
//! bind addresses, connection ids): they need no protection against crafted collisions, and
//! SipHash costs more than the rest of the look-up.
use std::hash::{BuildHasherDefault, Hasher};

pub type FastBuild = BuildHasherDefault<FastHasher>;

#[derive(Default)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }

    fn write_u16(&mut self, n: u16) {
        self.mix(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.mix(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl FastHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::SocketAddr;

    use super::FastBuild;

    #[test]
    fn addresses_that_differ_only_in_port_or_family_are_kept_apart() {
        let mut m: HashMap<SocketAddr, usize, FastBuild> = HashMap::default();
        let keys: Vec<SocketAddr> = ["127.0.0.1:80", "127.0.0.1:81", "[::1]:80", "10.0.0.1:80", "0.0.0.0:0"]
            .iter()
            .map(|s| s.parse().expect("addr"))
            .collect();
        for (i, k) in keys.iter().enumerate() {
            m.insert(*k, i);
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(m.get(k), Some(&i));
        }
    }
}
