//! `lblc` and `lblcr`: a memory per destination address of the server(s) that served it.
//!
//! Entries not used for [`EXPIRE`] (the kernel's `lblc_expiration`/`lblcr_expiration`, one day)
//! are forgotten. The table is bounded: beyond [`MAX_ENTRIES`], entries unused for
//! [`FULL_EXPIRE`] go first (the kernel's six minutes when its table is full), then the oldest.
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::View;
use crate::{ServerId, Slot};

pub(crate) const EXPIRE: Duration = Duration::from_secs(24 * 60 * 60);
const FULL_EXPIRE: Duration = Duration::from_secs(6 * 60);
/// 16 entries per bucket of the kernel's 1024-bucket table.
pub(crate) const MAX_ENTRIES: usize = 16 * 1024;

fn expired(last: Instant, now: Instant, after: Duration) -> bool {
    now.saturating_duration_since(last) >= after
}

/// Keeps a map under [`MAX_ENTRIES`] before an insertion.
fn make_room<V>(map: &mut HashMap<IpAddr, V>, now: Instant, last_use: impl Fn(&V) -> Instant) {
    if map.len() < MAX_ENTRIES {
        return;
    }
    map.retain(|_, v| !expired(last_use(v), now, FULL_EXPIRE));
    while map.len() >= MAX_ENTRIES {
        let Some(oldest) = map.iter().min_by_key(|(_, v)| last_use(v)).map(|(k, _)| *k) else { break };
        map.remove(&oldest);
    }
}

#[derive(Debug, Default)]
pub(crate) struct Lblc {
    table: HashMap<IpAddr, (ServerId, Instant)>,
}

impl Lblc {
    /// Forgets servers that left the list.
    pub(crate) fn retain(&mut self, slots: &[Slot]) {
        self.table.retain(|_, (id, _)| slots.iter().any(|s| s.id == *id));
    }

    pub(crate) fn pick(&mut self, view: &View<'_>, destination: IpAddr, now: Instant) -> Option<usize> {
        if let Some((id, last)) = self.table.get_mut(&destination) {
            if !expired(*last, now, EXPIRE) {
                *last = now;
                let known = view.position_of(*id).filter(|&i| view.usable(i) && !view.locality_overloaded(i));
                if known.is_some() {
                    return known;
                }
            }
        }
        let chosen = view.weighted_least_overhead()?;
        let id = view.id(chosen)?;
        if !self.table.contains_key(&destination) {
            make_room(&mut self.table, now, |(_, last)| *last);
        }
        self.table.insert(destination, (id, now));
        Some(chosen)
    }
}

/// A destination's server set: members newest first, when it last changed, when last used.
#[derive(Debug)]
struct Set {
    members: Vec<ServerId>,
    changed: Instant,
    used: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct Lblcr {
    table: HashMap<IpAddr, Set>,
}

impl Lblcr {
    pub(crate) fn retain(&mut self, slots: &[Slot]) {
        for set in self.table.values_mut() {
            set.members.retain(|id| slots.iter().any(|s| s.id == *id));
        }
    }

    pub(crate) fn pick(&mut self, view: &View<'_>, destination: IpAddr, now: Instant) -> Option<usize> {
        if let Some(set) = self.table.get_mut(&destination).filter(|s| !expired(s.used, now, EXPIRE)) {
            set.used = now;
            let least = least_member(view, &set.members);
            // A set that has not changed for a while gives up its most loaded member.
            if set.members.len() > 1 && expired(set.changed, now, EXPIRE) {
                if let Some(most) = most_member(view, &set.members) {
                    set.members.retain(|id| *id != most);
                }
            }
            if let Some(index) = least.filter(|&i| !view.locality_overloaded(i)) {
                return Some(index);
            }
            let chosen = view.weighted_least_overhead()?;
            let id = view.id(chosen)?;
            if !set.members.contains(&id) {
                set.members.insert(0, id);
                set.changed = now;
            }
            return Some(chosen);
        }
        let chosen = view.weighted_least_overhead()?;
        let id = view.id(chosen)?;
        if !self.table.contains_key(&destination) {
            make_room(&mut self.table, now, |set| set.used);
        }
        self.table.insert(destination, Set { members: vec![id], changed: now, used: now });
        Some(chosen)
    }
}

/// The member with the smallest overhead ÷ weight among those usable (the first such starts,
/// a strictly lighter one replaces it).
fn least_member(view: &View<'_>, members: &[ServerId]) -> Option<usize> {
    let mut best: Option<(usize, i64)> = None;
    for index in members.iter().filter_map(|id| view.position_of(*id)) {
        if !view.usable(index) {
            continue;
        }
        let Some(load) = view.load(index) else { continue };
        let cost = load.overhead();
        if best.is_none_or(|(b, bc)| {
            i128::from(bc) * i128::from(view.weight(index)) > i128::from(cost) * i128::from(view.weight(b))
        }) {
            best = Some((index, cost));
        }
    }
    best.map(|(index, _)| index)
}

/// The member of non-zero weight with the largest overhead ÷ weight.
fn most_member(view: &View<'_>, members: &[ServerId]) -> Option<ServerId> {
    let mut best: Option<(usize, i64)> = None;
    for index in members.iter().filter_map(|id| view.position_of(*id)) {
        if view.weight(index) <= 0 {
            continue;
        }
        let cost = view.load(index).unwrap_or_default().overhead();
        if best.is_none_or(|(b, bc)| {
            i128::from(bc) * i128::from(view.weight(index)) < i128::from(cost) * i128::from(view.weight(b))
        }) {
            best = Some((index, cost));
        }
    }
    best.and_then(|(index, _)| view.id(index))
}
