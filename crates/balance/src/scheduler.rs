//! One backend's scheduler: picks a server per request among the eligible ones.
//!
//! The data plane calls [`Scheduler::rebuild`] with the eligible servers and their effective
//! weights whenever health, slowstart or an admin command changes them, and
//! [`Scheduler::pick`] per request. `pick` asks `load(id)` about candidates: `Some(active
//! connections)` if the server can take this request, `None` if it must be skipped (full at
//! `maxconn`, or already tried by this request). A skipped server is never returned; `None` comes
//! back only when no weighted server accepts. Weight 0 means "never picked".
//!
//! How each `balance` algorithm chooses:
//!
//! - **`roundrobin`** — smooth weighted round robin. Every server holds a credit; each pick,
//!   every accepting server earns its weight, the richest wins (first in slot order on ties) and
//!   pays back the total. Weights 5,1,1 give `a a b a c a a`, exactly and repeatedly: turns are
//!   spread out, never bursts. Skipped servers neither earn nor pay, so the others keep their
//!   exact proportions and a server coming back does not cash in a backlog. Credits follow server
//!   ids across rebuilds: an unchanged set continues its sequence, a returning server starts at
//!   the average. Rebuild O(n), pick O(n).
//! - **`static-rr`** — the same smooth sequence, computed once per rebuild into a table (weights
//!   divided by their gcd) and walked with a cursor. A skipped server's turns are simply passed
//!   over, which leaves the others in their exact proportions. Pick O(1) when nothing is skipped.
//! - **`leastconn`** — the server with the fewest active connections relative to its weight
//!   (`a₁·w₂ < a₂·w₁`, in 64 bits). Among equally loaded servers, smooth weighted round robin
//!   decides, so equal servers take turns and idle servers share requests by weight.
//! - **`first`** — the accepting server with the lowest id (declaration order). With `load`
//!   refusing full servers, this fills servers one after another up to their `maxconn`.
//! - **`source`, `uri`, `url_param`, `hdr`** — a number from the key bytes (the caller extracts
//!   the address, path, parameter or header). With [`HashType::MapBased`] it is HAProxy's own
//!   (`sdbm` by default, see [`crate::haproxy_hash`]) and indexes the smooth table modulo its
//!   length (a server appears weight/gcd times), so with equal weights a key goes where HAProxy
//!   sends it; most keys move when the set changes. With [`HashType::Consistent`] fulcrum's
//!   64-bit [`hash_key`] lands on a
//!   ring where each server owns `weight × 160` points: adding or removing a server moves only
//!   ~1/N of the keys. If the hashed server is skipped, the next candidates in table or ring order
//!   are tried, deterministically. Without a key (absent parameter or header) the pick falls back
//!   to `roundrobin`, as HAProxy does.
//! - **`random(N)`** — power of N choices: N weighted-random draws, keep the server with the
//!   lowest load/weight. N = 1 is plain weighted random; HAProxy's default is 2 (0 counts as 1,
//!   more than 64 as 64). Draws that hit a skipped server are redrawn a few times, then every
//!   server is scanned, so a free server is always found. The PRNG is
//!   internal (SplitMix64) and seeded: [`Scheduler::new`] uses a fixed seed,
//!   [`Scheduler::with_seed`] another, so runs are reproducible.
//! - **LVS schedulers** (`rr`, `wrr`, `lc`, `wlc`, `sed`, `nq`, `dh`, `sh`, `lblc`, `lblcr`,
//!   `fo`, `ovf`, `mh`) — the kernel's rules, see [`crate::lvs`]. They read more than the active
//!   count ([`Load`]: inactive connections, the overload flag) and the [`Flow`] (client,
//!   destination, time): use [`Scheduler::pick_flow`].
use crate::hash::{hash_key, mix64, SplitMix64};
use crate::lvs::{Flow, Load, LvsState};
use crate::ring::Ring;
use crate::smooth::{smooth_sequence, SmoothRr};
use crate::walk::{cycle_from, first_accepted, Rejected};
use crate::{Algorithm, HashType, KeyHash};

/// Index of a server in its backend's declaration order.
pub type ServerId = usize;

/// An eligible server and its effective weight (slowstart and runtime weight applied), on
/// HAProxy's scale (1–256 typical; 0 = never picked). Larger weights are accepted: tables and
/// rings are then scaled down to bounded sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub id: ServerId,
    pub weight: u32,
}

/// Seed of [`Scheduler::new`]'s PRNG ("fulcrum" in ASCII).
const DEFAULT_SEED: u64 = 0x0066_756c_6372_756d;
/// Upper bound on `random(N)` draws per pick; more would only approximate `leastconn`.
const MAX_DRAWS: u32 = 64;
/// Random draws per pick that may land on skipped servers before scanning all servers.
const DRAW_ATTEMPTS_PER_DRAW: u32 = 4;

/// What a pick does, derived once from the [`Algorithm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    SmoothRoundRobin,
    StaticSequence,
    LeastConn,
    First,
    Hash,
    Random { draws: u32 },
    Lvs,
}

impl Policy {
    fn of(algorithm: &Algorithm) -> Policy {
        match algorithm {
            Algorithm::RoundRobin => Policy::SmoothRoundRobin,
            Algorithm::StaticRr => Policy::StaticSequence,
            Algorithm::LeastConn => Policy::LeastConn,
            Algorithm::First => Policy::First,
            Algorithm::Source | Algorithm::Uri { .. } | Algorithm::UrlParam { .. } | Algorithm::Hdr { .. } => {
                Policy::Hash
            }
            Algorithm::Random { draws } => Policy::Random { draws: *draws },
            Algorithm::Lvs(_) => Policy::Lvs,
        }
    }

    /// Whether the online smooth round robin is used (directly, for ties, or as a fallback).
    fn uses_smooth(self) -> bool {
        matches!(self, Policy::SmoothRoundRobin | Policy::LeastConn | Policy::Hash)
    }
}

/// The structure a policy precomputes at rebuild. Entries are indices into the slot list.
#[derive(Debug)]
enum Index {
    /// Round robin and leastconn work from the slots and credits alone.
    Slots,
    /// `static-rr`: the smooth sequence and the cursor into it.
    Sequence { table: Vec<usize>, next: usize },
    /// `first`: weighted slots by ascending server id.
    Order(Vec<usize>),
    /// Map-based hashing: the smooth sequence, indexed by hash modulo its length.
    Map(Vec<usize>),
    /// Consistent hashing.
    Ring(Ring),
    /// `random`: running weight sums of the weighted slots, for weighted draws.
    Draw { cumulative: Vec<(u64, usize)>, total: u64 },
    /// An LVS scheduler keeps its own state.
    Lvs(Box<LvsState>),
}

impl Index {
    fn build(policy: Policy, hash_type: HashType, slots: &[Slot], previous: Index) -> Index {
        match (policy, hash_type) {
            (Policy::Lvs, _) => previous,
            (Policy::SmoothRoundRobin | Policy::LeastConn, _) => Index::Slots,
            (Policy::StaticSequence, _) => {
                let table = smooth_sequence(slots);
                // Keep the cursor at the same phase of the cycle rather than restarting it.
                let next = match previous {
                    Index::Sequence { table: old, next } if !old.is_empty() => {
                        let scaled = next as u128 * table.len() as u128 / old.len() as u128;
                        usize::try_from(scaled).unwrap_or(0)
                    }
                    _ => 0,
                };
                Index::Sequence { table, next }
            }
            (Policy::First, _) => {
                let mut order: Vec<usize> = weighted_indices(slots).collect();
                order.sort_by_key(|&index| slots.get(index).map(|slot| slot.id));
                Index::Order(order)
            }
            (Policy::Hash, HashType::MapBased) => Index::Map(smooth_sequence(slots)),
            (Policy::Hash, HashType::Consistent) => Index::Ring(Ring::build(slots)),
            (Policy::Random { .. }, _) => {
                let mut total = 0u64;
                let mut cumulative = Vec::new();
                for index in weighted_indices(slots) {
                    let weight = slots.get(index).map_or(0, |slot| u64::from(slot.weight));
                    total = total.saturating_add(weight);
                    cumulative.push((total, index));
                }
                Index::Draw { cumulative, total }
            }
        }
    }
}

fn weighted_indices(slots: &[Slot]) -> impl Iterator<Item = usize> + '_ {
    slots.iter().enumerate().filter(|(_, slot)| slot.weight > 0).map(|(index, _)| index)
}

/// Whether `active/weight` is strictly below `than_active/than_weight` (weights non-zero).
fn lighter(active: u32, weight: u32, than_active: u32, than_weight: u32) -> bool {
    u64::from(active) * u64::from(than_weight) < u64::from(than_active) * u64::from(weight)
}

/// One backend's scheduler.
#[derive(Debug)]
pub struct Scheduler {
    algorithm: Algorithm,
    hash_type: HashType,
    policy: Policy,
    /// The eligible servers as last given to [`Scheduler::rebuild`].
    slots: Vec<Slot>,
    /// How many slots have a non-zero weight.
    weighted: usize,
    smooth: SmoothRr,
    index: Index,
    rejected: Rejected,
    /// Scratch for leastconn: each slot's answer from `load` during the current pick.
    loads: Vec<Option<u32>>,
    rng: SplitMix64,
    key_hash: KeyHash,
    /// A stable number per server (by id), for Maglev's permutations: its address, so that the
    /// table does not depend on declaration order.
    identities: Vec<u64>,
    /// When the scheduler was made: the time [`Scheduler::pick`] gives an LVS scheduler.
    epoch: std::time::Instant,
}

impl Scheduler {
    /// A scheduler with no servers (every pick is `None` until [`Scheduler::rebuild`]).
    pub fn new(algorithm: Algorithm, hash_type: HashType) -> Self {
        Self::with_seed(algorithm, hash_type, DEFAULT_SEED)
    }

    /// Like [`Scheduler::new`] with an explicit seed for `random`'s PRNG (tests, benchmarks, or
    /// different sequences on different nodes).
    pub fn with_seed(algorithm: Algorithm, hash_type: HashType, seed: u64) -> Self {
        let policy = Policy::of(&algorithm);
        let index = match &algorithm {
            Algorithm::Lvs(lvs) => Index::Lvs(Box::new(LvsState::new(*lvs))),
            _ => Index::build(policy, hash_type, &[], Index::Slots),
        };
        Scheduler {
            index,
            algorithm,
            hash_type,
            policy,
            slots: Vec::new(),
            weighted: 0,
            smooth: SmoothRr::default(),
            rejected: Rejected::default(),
            loads: Vec::new(),
            rng: SplitMix64::new(seed),
            key_hash: KeyHash::default(),
            identities: Vec::new(),
            epoch: std::time::Instant::now(),
        }
    }

    /// Stable numbers for the servers, by id (e.g. a hash of each address); without them a
    /// server's id stands for itself.
    pub fn with_identities(mut self, identities: Vec<u64>) -> Self {
        self.identities = identities;
        self
    }

    pub fn algorithm(&self) -> &Algorithm {
        &self.algorithm
    }

    pub fn hash_type(&self) -> HashType {
        self.hash_type
    }

    /// The key hash of `hash-type ... FUNCTION [avalanche]` (default: sdbm).
    pub fn with_key_hash(mut self, key_hash: KeyHash) -> Self {
        self.key_hash = key_hash;
        self
    }

    /// Replace the eligible set. Called off the hot path when health or weights change.
    ///
    /// An identical set is a no-op, so sequences continue undisturbed. Round robin and leastconn
    /// rebuild in O(n); `static-rr` and map-based hashing rebuild their table (O(n × table
    /// length), bounded), consistent hashing its ring (O(points), up to 2^20 points: a few ms).
    pub fn rebuild(&mut self, slots: &[Slot]) {
        if slots == self.slots.as_slice() {
            return;
        }
        if self.policy.uses_smooth() {
            self.smooth.rebuild(&self.slots, slots);
        }
        let previous = std::mem::replace(&mut self.index, Index::Slots);
        self.index = Index::build(self.policy, self.hash_type, slots, previous);
        if let Index::Lvs(lvs) = &mut self.index {
            let identities = &self.identities;
            lvs.rebuild(slots, &|id| identities.get(id).copied().unwrap_or_else(|| mix64(id as u64)));
        }
        self.slots = slots.to_vec();
        self.weighted = weighted_indices(slots).count();
        self.rejected.resize(slots.len());
    }

    /// Choose a server. `key` is the hash key for hash algorithms (None: fall back to round
    /// robin). `load(id)` returns the server's active connections, or None when it cannot take
    /// this request (full, or already tried by this request).
    pub fn pick(&mut self, key: Option<&[u8]>, load: &dyn Fn(ServerId) -> Option<u32>) -> Option<ServerId> {
        if let Index::Lvs(lvs) = &mut self.index {
            let nowhere = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
            let flow = Flow { client: nowhere, destination: nowhere, now: self.epoch };
            return lvs.pick(&flow, &|id| load(id).map(|active| Load { active, ..Load::default() }));
        }
        self.pick_slot(key, load)
    }

    /// Choose a server for a connection or request: `flow` says who, to where and when (the
    /// LVS schedulers read it; `source` and the other HAProxy algorithms use `key`), `load(id)`
    /// the server's counters, or None when it cannot take this one.
    pub fn pick_flow(
        &mut self,
        key: Option<&[u8]>,
        flow: &Flow,
        load: &dyn Fn(ServerId) -> Option<Load>,
    ) -> Option<ServerId> {
        if let Index::Lvs(lvs) = &mut self.index {
            return lvs.pick(flow, load);
        }
        self.pick_slot(key, &|id| load(id).map(|l| l.active))
    }

    fn pick_slot(&mut self, key: Option<&[u8]>, load: &dyn Fn(ServerId) -> Option<u32>) -> Option<ServerId> {
        let slot = match self.policy {
            Policy::SmoothRoundRobin => self.pick_smooth(load),
            Policy::StaticSequence => self.pick_sequence(load),
            Policy::LeastConn => self.pick_least_conn(load),
            Policy::First => self.pick_first(load),
            Policy::Hash => match key {
                Some(key) => {
                    let number = self.key_number(key);
                    self.pick_hashed(number, load)
                }
                None => self.pick_smooth(load),
            },
            Policy::Random { draws } => self.pick_random(draws, load),
            Policy::Lvs => None,
        }?;
        self.slots.get(slot).map(|slot| slot.id)
    }

    /// Where a key falls: on a map-based table, HAProxy's own number for it (so keys go where
    /// HAProxy sends them); on the consistent ring, fulcrum's 64-bit hash, which spreads over
    /// the whole ring.
    fn key_number(&self, key: &[u8]) -> u64 {
        match (&self.index, &self.algorithm) {
            (Index::Map(_), Algorithm::Source) => u64::from(crate::haproxy_hash::source_number(self.key_hash, key)),
            (Index::Map(_), _) => u64::from(crate::haproxy_hash::key_number(self.key_hash, key)),
            _ => hash_key(key),
        }
    }

    fn pick_smooth(&mut self, load: &dyn Fn(ServerId) -> Option<u32>) -> Option<usize> {
        self.smooth.pick(&self.slots, |_, slot| load(slot.id).is_some())
    }

    fn pick_sequence(&mut self, load: &dyn Fn(ServerId) -> Option<u32>) -> Option<usize> {
        let Index::Sequence { table, next } = &mut self.index else {
            return None;
        };
        let candidates =
            cycle_from(*next, table.len()).filter_map(|position| table.get(position).map(|&slot| (position, slot)));
        let (position, slot) = first_accepted(&self.slots, self.weighted, &mut self.rejected, candidates, load)?;
        *next = (position + 1) % table.len().max(1);
        Some(slot)
    }

    fn pick_first(&mut self, load: &dyn Fn(ServerId) -> Option<u32>) -> Option<usize> {
        let Index::Order(order) = &self.index else {
            return None;
        };
        let candidates = order.iter().copied().enumerate();
        first_accepted(&self.slots, self.weighted, &mut self.rejected, candidates, load).map(|(_, slot)| slot)
    }

    fn pick_hashed(&mut self, hash: u64, load: &dyn Fn(ServerId) -> Option<u32>) -> Option<usize> {
        let (slots, weighted, rejected) = (&self.slots, self.weighted, &mut self.rejected);
        let accepted = match &self.index {
            Index::Map(table) => {
                let len = u64::try_from(table.len()).unwrap_or(u64::MAX).max(1);
                let start = usize::try_from(hash % len).unwrap_or(0);
                let candidates = cycle_from(start, table.len())
                    .filter_map(|position| table.get(position).map(|&slot| (position, slot)));
                first_accepted(slots, weighted, rejected, candidates, load)
            }
            Index::Ring(ring) => first_accepted(slots, weighted, rejected, ring.clockwise(hash), load),
            _ => None,
        };
        accepted.map(|(_, slot)| slot)
    }

    fn pick_least_conn(&mut self, load: &dyn Fn(ServerId) -> Option<u32>) -> Option<usize> {
        self.loads.clear();
        let mut lightest: Option<(u32, u32)> = None;
        for slot in &self.slots {
            let active = if slot.weight == 0 { None } else { load(slot.id) };
            self.loads.push(active);
            if let Some(active) = active {
                if lightest.is_none_or(|(a, w)| lighter(active, slot.weight, a, w)) {
                    lightest = Some((active, slot.weight));
                }
            }
        }
        let (best_active, best_weight) = lightest?;
        let loads = &self.loads;
        self.smooth.pick(&self.slots, |index, slot| match loads.get(index) {
            Some(Some(active)) => {
                u64::from(*active) * u64::from(best_weight) == u64::from(best_active) * u64::from(slot.weight)
            }
            _ => false,
        })
    }

    fn pick_random(&mut self, draws: u32, load: &dyn Fn(ServerId) -> Option<u32>) -> Option<usize> {
        let Index::Draw { cumulative, total } = &self.index else {
            return None;
        };
        if *total == 0 {
            return None;
        }
        let wanted = draws.clamp(1, MAX_DRAWS);
        self.rejected.begin();
        let mut best: Option<(usize, u32, u32)> = None;
        let mut drawn = 0;
        for _ in 0..wanted * DRAW_ATTEMPTS_PER_DRAW {
            if drawn == wanted {
                break;
            }
            let point = self.rng.below(*total);
            let position = cumulative.partition_point(|&(sum, _)| sum <= point);
            let Some(&(_, index)) = cumulative.get(position) else {
                continue;
            };
            let Some(slot) = self.slots.get(index) else {
                continue;
            };
            if self.rejected.contains(index) {
                continue;
            }
            match load(slot.id) {
                Some(active) => {
                    drawn += 1;
                    if best.is_none_or(|(_, a, w)| lighter(active, slot.weight, a, w)) {
                        best = Some((index, active, slot.weight));
                    }
                }
                None => {
                    self.rejected.insert(index);
                    if self.rejected.count() >= self.weighted {
                        return None;
                    }
                }
            }
        }
        if let Some((index, _, _)) = best {
            return Some(index);
        }
        // Every draw hit a skipped server: take the lightest of the rest, scanning from a random
        // place so that ties do not always favour the same server.
        let start = usize::try_from(self.rng.below(self.slots.len() as u64)).unwrap_or(0);
        let mut lightest: Option<(usize, u32, u32)> = None;
        for index in cycle_from(start, self.slots.len()) {
            let Some(slot) = self.slots.get(index) else {
                continue;
            };
            if slot.weight == 0 || self.rejected.contains(index) {
                continue;
            }
            if let Some(active) = load(slot.id) {
                if lightest.is_none_or(|(_, a, w)| lighter(active, slot.weight, a, w)) {
                    lightest = Some((index, active, slot.weight));
                }
            }
        }
        lightest.map(|(index, _, _)| index)
    }
}
