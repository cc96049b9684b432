//! The hashing schedulers' tables: `dh` and `sh` (256 buckets), `mh` (Maglev, a prime size).
use std::net::IpAddr;

use super::{fold, View};
use crate::hash::mix64;
use crate::{ServerId, Slot};

/// Buckets of `dh` and `sh` (the kernel's `IP_VS_DH_TAB_BITS`/`IP_VS_SH_TAB_BITS` of 8).
pub(crate) const BUCKETS: usize = 256;
/// The multiplier of the kernel's `hash_32` (the 32-bit golden ratio).
const GOLDEN_RATIO_32: u32 = 0x61c8_8647;

/// A 256-bucket table of list positions.
#[derive(Debug, Default)]
pub(crate) struct HashTable {
    buckets: Vec<Option<usize>>,
}

impl HashTable {
    /// `dh`: the buckets go to the servers in turn, whatever their weights.
    pub(crate) fn round_robin(slots: &[Slot]) -> Self {
        let buckets = (0..BUCKETS).map(|b| (!slots.is_empty()).then(|| b % slots.len())).collect();
        HashTable { buckets }
    }

    /// `sh`: each server takes as many consecutive buckets as its weight (at least one), in
    /// list order, starting over at the first server until the table is full.
    pub(crate) fn weighted(slots: &[Slot]) -> Self {
        let mut buckets = Vec::with_capacity(BUCKETS);
        let (mut server, mut taken) = (0usize, 0u32);
        for _ in 0..BUCKETS {
            if slots.is_empty() {
                buckets.push(None);
                continue;
            }
            buckets.push(Some(server));
            taken += 1;
            if taken >= slots.get(server).map_or(0, |s| s.weight) {
                server = (server + 1) % slots.len();
                taken = 0;
            }
        }
        HashTable { buckets }
    }

    pub(crate) fn get(&self, bucket: usize) -> Option<usize> {
        self.buckets.get(bucket).copied().flatten()
    }

    /// `sh`: the client's bucket; with `fallback`, the next usable one along the walk the kernel
    /// takes (offsets added to the hash).
    pub(crate) fn source(&self, view: &View<'_>, client: IpAddr, port: u16, fallback: bool) -> Option<usize> {
        let first = sh_bucket(client, port, 0);
        let server = self.get(first)?;
        if view.usable(server) || !fallback {
            return view.usable(server).then_some(server);
        }
        (0..BUCKETS)
            .map(|offset| sh_bucket(client, port, ((offset + first) % BUCKETS) as u32))
            .filter_map(|bucket| self.get(bucket))
            .find(|&server| view.usable(server))
    }
}

/// `dh`'s bucket for a destination address: the folded address times 2654435761, low 8 bits.
pub(crate) fn dh_bucket(destination: IpAddr) -> usize {
    (fold(destination).wrapping_mul(2_654_435_761) as usize) & (BUCKETS - 1)
}

/// `sh`'s bucket: `hash_32(port + address, 8)` plus an offset, modulo 256.
pub(crate) fn sh_bucket(client: IpAddr, port: u16, offset: u32) -> usize {
    let hashed = u32::from(port).wrapping_add(fold(client)).wrapping_mul(GOLDEN_RATIO_32) >> (32 - 8);
    (offset.wrapping_add(hashed) as usize) & (BUCKETS - 1)
}

/// `mh`: Maglev's lookup table.
#[derive(Debug)]
pub(crate) struct Maglev {
    size: usize,
    /// Server id → its last non-zero weight: a server set to weight 0 keeps its buckets (so
    /// its clients do not move elsewhere while it drains), as the kernel's `last_weight`.
    last_weight: std::collections::HashMap<ServerId, u32>,
    lookup: Vec<Option<usize>>,
}

impl Maglev {
    pub(crate) fn new(size: u32) -> Self {
        Maglev { size: size.max(1) as usize, last_weight: Default::default(), lookup: Vec::new() }
    }

    #[cfg(test)]
    pub(crate) fn lookup(&self) -> &[Option<usize>] {
        &self.lookup
    }

    /// Fills the table: every server has a permutation of the buckets (an offset and a skip
    /// from its identity); in turns, each server takes its next free preferred bucket, as many
    /// times per turn as its weight ÷ the weights' gcd (shifted down when that exceeds what the
    /// table size allows), until every bucket is taken.
    pub(crate) fn rebuild(&mut self, slots: &[Slot], identity: &dyn Fn(ServerId) -> u64) {
        let m = self.size;
        for slot in slots.iter().filter(|s| s.weight > 0) {
            self.last_weight.insert(slot.id, slot.weight);
        }
        self.last_weight.retain(|id, _| slots.iter().any(|s| s.id == *id));
        let weights: Vec<u64> =
            slots.iter().map(|s| u64::from(self.last_weight.get(&s.id).copied().unwrap_or(s.weight))).collect();
        let g = weights.iter().copied().filter(|&w| w > 0).fold(0, gcd);
        // The kernel keeps weight ÷ gcd within half the table size's bits (5 bits for 4093).
        let shift = match weights.iter().max().copied().unwrap_or(0).checked_div(g) {
            None => 0,
            Some(top) => {
                let used_bits = 64 - top.leading_zeros();
                let table_bits = (usize::BITS - 1 - m.leading_zeros()) / 2;
                used_bits.saturating_sub(table_bits)
            }
        };
        let turns: Vec<u64> =
            weights.iter().map(|&w| w.checked_div(g).map_or(0, |t| (t >> shift).max(u64::from(w != 0)))).collect();
        self.lookup = vec![None; m];
        if turns.iter().all(|&t| t == 0) || slots.len() > m {
            return;
        }
        let mut perm: Vec<(usize, usize)> = slots
            .iter()
            .map(|s| {
                let id = identity(s.id);
                let offset = (mix64(id) % m as u64) as usize;
                let skip = if m > 1 { (mix64(id ^ 0x5bd1_e995_5bd1_e995) % (m as u64 - 1)) as usize + 1 } else { 1 };
                (offset, skip)
            })
            .collect();
        let mut filled = 0;
        'fill: loop {
            for (index, &t) in turns.iter().enumerate() {
                for _ in 0..t {
                    let Some((at, skip)) = perm.get_mut(index) else { continue };
                    while self.lookup.get(*at).is_some_and(Option::is_some) {
                        *at = (*at + *skip) % m;
                    }
                    if let Some(bucket) = self.lookup.get_mut(*at) {
                        *bucket = Some(index);
                    }
                    filled += 1;
                    if filled == m {
                        break 'fill;
                    }
                }
            }
        }
    }

    fn bucket(&self, client: IpAddr, port: u16, offset: u64) -> usize {
        let key = mix64(fold_wide(client) ^ 0x6d68_5f73_6565_6421).wrapping_add((u64::from(port) << 32) | offset);
        (mix64(key) % self.size as u64) as usize
    }

    pub(crate) fn pick(&self, view: &View<'_>, client: IpAddr, port: u16, fallback: bool) -> Option<usize> {
        let first = self.bucket(client, port, 0);
        let server = self.lookup.get(first).copied().flatten()?;
        if view.usable(server) || !fallback {
            return view.usable(server).then_some(server);
        }
        for offset in 0..self.size as u64 {
            let roffset = (offset + first as u64) % self.size as u64;
            let server = self.lookup.get(self.bucket(client, port, roffset)).copied().flatten()?;
            if view.usable(server) {
                return Some(server);
            }
        }
        None
    }
}

/// A client address as 64 bits for Maglev (IPv6 folded by halves, keeping more entropy than
/// the 32-bit fold of `dh`/`sh`).
fn fold_wide(addr: IpAddr) -> u64 {
    match addr {
        IpAddr::V4(v4) => u64::from(u32::from(v4)),
        IpAddr::V6(v6) => {
            let n = u128::from(v6);
            mix64((n >> 64) as u64) ^ (n as u64)
        }
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}
