//! Walking a candidate order (a table, a ring, declaration order) until `load` accepts a server.

use crate::{ServerId, Slot};

/// The slots `load` refused during the current pick, so each server is asked at most once per
/// pick and a walk stops as soon as every weighted server has refused.
///
/// Epoch stamps instead of a cleared bitmap: starting a pick is O(1), not O(servers).
#[derive(Debug, Default)]
pub(crate) struct Rejected {
    stamps: Vec<u32>,
    epoch: u32,
    count: usize,
}

impl Rejected {
    /// Sizes the set for a new slot list (after a rebuild).
    pub(crate) fn resize(&mut self, slots: usize) {
        self.stamps.clear();
        self.stamps.resize(slots, 0);
        self.count = 0;
    }

    /// Forgets the previous pick's refusals.
    pub(crate) fn begin(&mut self) {
        self.count = 0;
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // Wrapped: stale stamps could equal the new epoch, so clear them once.
            self.stamps.fill(0);
            self.epoch = 1;
        }
    }

    pub(crate) fn contains(&self, slot: usize) -> bool {
        self.stamps.get(slot) == Some(&self.epoch)
    }

    pub(crate) fn insert(&mut self, slot: usize) {
        if let Some(stamp) = self.stamps.get_mut(slot) {
            if *stamp != self.epoch {
                *stamp = self.epoch;
                self.count += 1;
            }
        }
    }

    /// How many distinct slots refused since [`Rejected::begin`].
    pub(crate) fn count(&self) -> usize {
        self.count
    }
}

/// Walks `candidates` — `(position, slot index)` pairs in preference order — and returns the
/// first pair whose server `load` accepts. Each slot is asked at most once; the walk ends early
/// once `weighted` distinct slots have refused, since then nobody is left to ask.
pub(crate) fn first_accepted(
    slots: &[Slot],
    weighted: usize,
    rejected: &mut Rejected,
    candidates: impl Iterator<Item = (usize, usize)>,
    load: &dyn Fn(ServerId) -> Option<u32>,
) -> Option<(usize, usize)> {
    rejected.begin();
    for (position, slot) in candidates {
        if rejected.contains(slot) {
            continue;
        }
        let Some(server) = slots.get(slot) else {
            continue;
        };
        if server.weight == 0 {
            continue;
        }
        if load(server.id).is_some() {
            return Some((position, slot));
        }
        rejected.insert(slot);
        if rejected.count() >= weighted {
            return None;
        }
    }
    None
}

/// Positions `start, start+1, …` wrapping around a sequence of `len` entries, each once.
pub(crate) fn cycle_from(start: usize, len: usize) -> impl Iterator<Item = usize> {
    let start = if len == 0 { 0 } else { start % len };
    (start..len).chain(0..start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycle_wraps_once() {
        assert_eq!(cycle_from(2, 5).collect::<Vec<_>>(), vec![2, 3, 4, 0, 1]);
        assert_eq!(cycle_from(7, 5).collect::<Vec<_>>(), vec![2, 3, 4, 0, 1]);
        assert_eq!(cycle_from(3, 0).count(), 0);
    }

    #[test]
    fn rejected_resets_per_pick_and_survives_epoch_wrap() {
        let mut rejected = Rejected::default();
        rejected.resize(3);
        rejected.begin();
        rejected.insert(1);
        rejected.insert(1);
        rejected.insert(9); // out of range: ignored
        assert!(rejected.contains(1));
        assert_eq!(rejected.count(), 1);
        rejected.begin();
        assert!(!rejected.contains(1));
        assert_eq!(rejected.count(), 0);
        rejected.epoch = u32::MAX;
        rejected.insert(2);
        rejected.begin();
        assert_eq!(rejected.epoch, 1);
        assert!(!rejected.contains(2));
    }

    #[test]
    fn walk_asks_each_server_once_and_stops_when_all_refused() {
        let slots = [Slot { id: 10, weight: 1 }, Slot { id: 11, weight: 1 }];
        let mut rejected = Rejected::default();
        rejected.resize(slots.len());
        let asked = std::cell::Cell::new(0);
        let refuse_all = |_id: ServerId| {
            asked.set(asked.get() + 1);
            None
        };
        // A long candidate list with repeats: still only two questions.
        let candidates = (0..1000).map(|p| (p, p % 2));
        assert_eq!(first_accepted(&slots, 2, &mut rejected, candidates, &refuse_all), None);
        assert_eq!(asked.get(), 2);
        let only_11 = |id: ServerId| (id == 11).then_some(0);
        let candidates = (0..1000).map(|p| (p, p % 2));
        assert_eq!(first_accepted(&slots, 2, &mut rejected, candidates, &only_11), Some((1, 1)));
    }
}
