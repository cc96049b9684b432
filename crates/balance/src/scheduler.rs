//! Placeholder bodies: the balance work replaces these with the real algorithms and tests.
use crate::{Algorithm, HashType};

/// Index of a server in its backend's declaration order.
pub type ServerId = usize;

/// An eligible server and its effective weight (slowstart and runtime weight applied; > 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub id: ServerId,
    pub weight: u32,
}

/// One backend's scheduler.
#[derive(Debug)]
pub struct Scheduler {
    algorithm: Algorithm,
    hash_type: HashType,
    slots: Vec<Slot>,
    next: usize,
}

impl Scheduler {
    pub fn new(algorithm: Algorithm, hash_type: HashType) -> Self {
        Scheduler { algorithm, hash_type, slots: Vec::new(), next: 0 }
    }

    pub fn algorithm(&self) -> &Algorithm {
        &self.algorithm
    }

    pub fn hash_type(&self) -> HashType {
        self.hash_type
    }

    /// Replace the eligible set. Called off the hot path when health or weights change.
    pub fn rebuild(&mut self, slots: &[Slot]) {
        self.slots = slots.to_vec();
    }

    /// Choose a server. `key` is the hash key for hash algorithms (None: fall back to round
    /// robin). `load(id)` returns the server's active connections, or None when it cannot take
    /// this request (full, or already tried by this request).
    pub fn pick(&mut self, _key: Option<&[u8]>, load: &dyn Fn(ServerId) -> Option<u32>) -> Option<ServerId> {
        for _ in 0..self.slots.len() {
            let slot = self.slots[self.next % self.slots.len()];
            self.next = self.next.wrapping_add(1);
            if load(slot.id).is_some() {
                return Some(slot.id);
            }
        }
        None
    }
}
