//! The Linux IPVS schedulers, with the kernel's semantics (`net/netfilter/ipvs/ip_vs_*.c`, read
//! for their rules; nothing is copied).
//!
//! A virtual service keeps its real servers in a list (declaration order, the order ipvsadm
//! added them). Each scheduler is a rule over that list and each server's counters:
//!
//! - **active** connections: for fulcrum's proxy, connections that are open both ways (the
//!   kernel's ESTABLISHED); **inactive**: connections where one side has closed and the other is
//!   finishing (the kernel's FIN_WAIT/TIME_WAIT), and UDP flows, which the kernel also counts as
//!   inactive. The **overhead** of the `lc` family is `(active << 8) + inactive`.
//! - **weight 0** is quiescent: the server keeps its connections but gets no new one.
//! - **overloaded** (the upper threshold reached, see [`Thresholds`]): skipped like weight 0.
//!
//! | name | rule |
//! |---|---|
//! | `rr` | the next server after the last one chosen, skipping weight 0 and overloaded ones |
//! | `wrr` | the kernel's stepping: a current weight starts at the largest weight, each turn through the list takes the servers whose weight is at least it, and it drops by the weights' gcd at the end of the list (4,3,2 gives `a a b a b c a b c`) |
//! | `lc` | the smallest overhead; the first in the list on ties |
//! | `wlc` | the smallest overhead ÷ weight (compared as `o₁·w₂ > o₂·w₁`) |
//! | `sed` | the smallest (active + 1) ÷ weight |
//! | `nq` | a server with no active connection at once, else as `sed` |
//! | `dh` | a 256-bucket table over the servers in turn, indexed by the destination (the address the client connected to) |
//! | `sh` | a 256-bucket table where each server holds `weight` consecutive buckets, indexed by the client's address (and port with `sh-port`); `sh-fallback` walks on to the next usable bucket |
//! | `lblc` | the server last used for this destination while it is not overloaded (more active connections than its weight while another server is below half of its weight), else `wlc` |
//! | `lblcr` | a set of servers per destination: the least loaded member, a new member from `wlc` when that one is overloaded, and the most loaded member dropped when the set has not changed for a while |
//! | `fo` | the usable server with the highest weight; the first in the list on ties |
//! | `ovf` | the highest weight among servers whose active connections do not exceed their weight |
//! | `mh` | Maglev hashing over a prime table (4093 by default): each server fills its preferred buckets in turn, as many per turn as its weight, so a server joining or leaving moves about 1/N of the clients; `mh-fallback`, `mh-port` as for `sh` |
//!
//! The kernel's `dh`, `sh` and `mh` hash with its own functions (Maglev with random keys chosen
//! at boot), so which bucket a given client lands in differs from a kernel's; the tables, their
//! filling and every rule above are the kernel's.
mod locality;
mod tables;
#[cfg(test)]
mod tests;
mod wrr;

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use fulcrum_model::{Lvs, LvsScheduler};

use crate::{ServerId, Slot};
use locality::{Lblc, Lblcr};
use tables::{HashTable, Maglev};
use wrr::Wrr;

/// What a scheduler may look at besides the servers: who connects, to where, and when.
#[derive(Debug, Clone, Copy)]
pub struct Flow {
    pub client: SocketAddr,
    /// The address the client connected to (the virtual address), for `dh`, `lblc`, `lblcr`.
    pub destination: SocketAddr,
    pub now: Instant,
}

/// A server's counters at the time of a pick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    pub active: u32,
    pub inactive: u32,
    /// At its upper threshold (see [`Thresholds`]).
    pub overloaded: bool,
}

impl Load {
    /// The kernel's connection overhead: `(active << 8) + inactive`.
    pub fn overhead(&self) -> i64 {
        (i64::from(self.active) << 8) + i64::from(self.inactive)
    }
}

/// A server's upper and lower connection thresholds (ipvsadm `-x`/`-y`, keepalived
/// `uthreshold`/`lthreshold`; 0 = none) and the kernel's OVERLOAD rules: a server becomes
/// overloaded when its connections (active + inactive) reach the upper threshold, and stops
/// being so when they fall below the lower one — or, without a lower one, below ¾ of the upper.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Thresholds {
    pub upper: u32,
    pub lower: u32,
}

impl Thresholds {
    /// The flag after a connection was added (`total` counts it).
    pub fn after_add(&self, overloaded: bool, total: u32) -> bool {
        overloaded || (self.upper != 0 && total >= self.upper)
    }

    /// The flag after a connection ended (`total` no longer counts it).
    pub fn after_remove(&self, overloaded: bool, total: u32) -> bool {
        if self.lower != 0 {
            overloaded && total >= self.lower
        } else if self.upper != 0 {
            overloaded && u64::from(total) * 4 >= u64::from(self.upper) * 3
        } else {
            false
        }
    }
}

/// One virtual service's LVS scheduler and whatever state it keeps between picks.
#[derive(Debug)]
pub(crate) struct LvsState {
    lvs: Lvs,
    slots: Vec<Slot>,
    /// `rr`: the list position of the last server chosen, and its id.
    rr_last: Option<(usize, ServerId)>,
    wrr: Wrr,
    hashed: HashTable,
    maglev: Maglev,
    lblc: Lblc,
    lblcr: Lblcr,
    /// Scratch: each slot's load during the current pick (`None`: may not take this one).
    loads: Vec<Option<Load>>,
}

impl LvsState {
    pub(crate) fn new(lvs: Lvs) -> Self {
        LvsState {
            lvs,
            slots: Vec::new(),
            rr_last: None,
            wrr: Wrr::default(),
            hashed: HashTable::default(),
            maglev: Maglev::new(lvs.mh_table),
            lblc: Lblc::default(),
            lblcr: Lblcr::default(),
            loads: Vec::new(),
        }
    }

    /// The server list changed (added, removed, weights). `identity(id)` is a stable number
    /// per server (its address), for Maglev's permutations.
    pub(crate) fn rebuild(&mut self, slots: &[Slot], identity: &dyn Fn(ServerId) -> u64) {
        match self.lvs.scheduler {
            LvsScheduler::Rr => {
                // The cursor follows its server; if that one left, the one before it takes its
                // place, as the kernel moves the cursor back when a server is deleted.
                self.rr_last = self.rr_last.map(|(position, id)| match slots.iter().position(|s| s.id == id) {
                    Some(found) => (found, id),
                    None => {
                        let back = position.saturating_sub(1).min(slots.len().saturating_sub(1));
                        (back, slots.get(back).map_or(id, |s| s.id))
                    }
                });
                if slots.is_empty() {
                    self.rr_last = None;
                }
            }
            LvsScheduler::Wrr => self.wrr.rebuild(slots),
            LvsScheduler::Dh => self.hashed = HashTable::round_robin(slots),
            LvsScheduler::Sh => self.hashed = HashTable::weighted(slots),
            LvsScheduler::Mh => self.maglev.rebuild(slots, identity),
            LvsScheduler::Lblc => self.lblc.retain(slots),
            LvsScheduler::Lblcr => self.lblcr.retain(slots),
            _ => {}
        }
        self.slots = slots.to_vec();
    }

    /// Chooses a server for `flow`. `load(id)`: the server's counters, or `None` when it may not
    /// take this connection (already tried, or at `maxconn`).
    pub(crate) fn pick(&mut self, flow: &Flow, load: &dyn Fn(ServerId) -> Option<Load>) -> Option<ServerId> {
        self.loads.clear();
        self.loads.extend(self.slots.iter().map(|s| load(s.id)));
        let view = View { slots: &self.slots, loads: &self.loads };
        let index = match self.lvs.scheduler {
            LvsScheduler::Rr => {
                let start = self.rr_last.map_or(0, |(position, _)| position + 1);
                let found = (0..view.slots.len())
                    .map(|step| (start + step) % view.slots.len().max(1))
                    .find(|&i| view.usable(i));
                if let Some(i) = found {
                    self.rr_last = view.slots.get(i).map(|s| (i, s.id));
                }
                found
            }
            LvsScheduler::Wrr => self.wrr.pick(&view),
            LvsScheduler::Lc => view.least(|l| l.overhead(), false),
            LvsScheduler::Wlc => view.least(|l| l.overhead(), true),
            LvsScheduler::Sed => view.least(|l| i64::from(l.active) + 1, true),
            LvsScheduler::Nq => view.never_queue(),
            LvsScheduler::Dh => {
                let bucket = tables::dh_bucket(flow.destination.ip());
                self.hashed.get(bucket).filter(|&i| view.usable(i))
            }
            LvsScheduler::Sh => {
                let port = if self.lvs.port { flow.client.port() } else { 0 };
                self.hashed.source(&view, flow.client.ip(), port, self.lvs.fallback)
            }
            LvsScheduler::Mh => {
                let port = if self.lvs.port { flow.client.port() } else { 0 };
                self.maglev.pick(&view, flow.client.ip(), port, self.lvs.fallback)
            }
            LvsScheduler::Lblc => self.lblc.pick(&view, flow.destination.ip(), flow.now),
            LvsScheduler::Lblcr => self.lblcr.pick(&view, flow.destination.ip(), flow.now),
            LvsScheduler::Fo => view.highest_weight(|_, _| true),
            LvsScheduler::Ovf => view.highest_weight(|slot, load| i64::from(load.active) <= i64::from(slot.weight)),
        }?;
        self.slots.get(index).map(|s| s.id)
    }
}

/// The servers and their loads during one pick.
pub(crate) struct View<'a> {
    slots: &'a [Slot],
    loads: &'a [Option<Load>],
}

impl View<'_> {
    fn len(&self) -> usize {
        self.slots.len()
    }

    fn weight(&self, index: usize) -> i64 {
        self.slots.get(index).map_or(0, |s| i64::from(s.weight))
    }

    fn load(&self, index: usize) -> Option<Load> {
        self.loads.get(index).copied().flatten()
    }

    fn id(&self, index: usize) -> Option<ServerId> {
        self.slots.get(index).map(|s| s.id)
    }

    /// May take a new connection: weight above 0, not overloaded, and `load` allowed it.
    fn usable(&self, index: usize) -> bool {
        self.weight(index) > 0 && self.load(index).is_some_and(|l| !l.overloaded)
    }

    /// The usable server with the smallest `cost` (÷ weight when `weighted`): the first such
    /// in the list, replaced only by a strictly lighter one, as the kernel compares.
    fn least(&self, cost: impl Fn(&Load) -> i64, weighted: bool) -> Option<usize> {
        let mut best: Option<(usize, i64)> = None;
        for index in 0..self.len() {
            if !self.usable(index) {
                continue;
            }
            let Some(load) = self.load(index) else { continue };
            let c = cost(&load);
            let lighter = match best {
                None => true,
                Some((b, bc)) if weighted => {
                    i128::from(bc) * i128::from(self.weight(index)) > i128::from(c) * i128::from(self.weight(b))
                }
                Some((_, bc)) => c < bc,
            };
            if lighter {
                best = Some((index, c));
            }
        }
        best.map(|(index, _)| index)
    }

    /// `nq`: an idle usable server at once, else the smallest (active + 1) ÷ weight.
    fn never_queue(&self) -> Option<usize> {
        let mut best: Option<(usize, i64)> = None;
        for index in 0..self.len() {
            if !self.usable(index) {
                continue;
            }
            let Some(load) = self.load(index) else { continue };
            if load.active == 0 {
                return Some(index);
            }
            let c = i64::from(load.active) + 1;
            if best.is_none_or(|(b, bc)| {
                i128::from(bc) * i128::from(self.weight(index)) > i128::from(c) * i128::from(self.weight(b))
            }) {
                best = Some((index, c));
            }
        }
        best.map(|(index, _)| index)
    }

    /// `fo`/`ovf`: the usable server of highest weight that `also` accepts; the first on ties.
    fn highest_weight(&self, also: impl Fn(&Slot, &Load) -> bool) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (index, slot) in self.slots.iter().enumerate() {
            let accepted = self.usable(index) && self.load(index).is_some_and(|l| also(slot, &l));
            if accepted && best.is_none_or(|b| self.weight(index) > self.weight(b)) {
                best = Some(index);
            }
        }
        best
    }

    /// The `wlc` choice the locality schedulers fall back on: overloaded servers are skipped,
    /// the first server of non-zero weight starts, a strictly lighter one replaces it.
    fn weighted_least_overhead(&self) -> Option<usize> {
        self.least(|l| l.overhead(), true)
    }

    /// `lblc`/`lblcr`'s "overloaded": more active connections than its weight, while some
    /// server of the service is below half of its own.
    fn locality_overloaded(&self, index: usize) -> bool {
        let Some(load) = self.load(index) else { return true };
        if i64::from(load.active) <= self.weight(index) {
            return false;
        }
        (0..self.len()).any(|other| {
            let active = self.load(other).map_or(0, |l| i64::from(l.active));
            active * 2 < self.weight(other)
        })
    }

    fn position_of(&self, id: ServerId) -> Option<usize> {
        self.slots.iter().position(|s| s.id == id)
    }
}

/// Folds an address to 32 bits as the kernel's hashing schedulers do: an IPv4 address as its
/// number, an IPv6 address as the XOR of its four 32-bit words.
pub(crate) fn fold(addr: IpAddr) -> u32 {
    match addr {
        IpAddr::V4(v4) => u32::from(v4),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            o.chunks_exact(4).fold(0u32, |acc, w| acc ^ u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
        }
    }
}
