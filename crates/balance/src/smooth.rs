//! Smooth weighted round robin: the rule behind `roundrobin`, the `static-rr` and map-based
//! tables, least-connection tie-breaking and the hash algorithms' fallback when a key is absent.
//!
//! Each server holds a credit. Every pick, each participating server earns its weight; the
//! server with the most credit wins (first in slot order on ties) and pays back the total weight
//! of the participants. Over any window every server is picked within one pick of its exact
//! share, and a heavy server's turns are spread out: weights 5,1,1 give `a a b a c a a`.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use crate::{ServerId, Slot};

/// Per-slot credits of the online smooth round robin (parallel to the scheduler's slots).
#[derive(Debug, Default)]
pub(crate) struct SmoothRr {
    credits: Vec<i64>,
}

impl SmoothRr {
    /// Carries credits over to a new slot list, keyed by server id, so a rebuild with the same
    /// servers continues the sequence where it was. A server that was not in `old` starts at 0,
    /// the average credit, so it joins the rotation without a burst of catch-up picks. Carried
    /// credits are clamped to the new total weight to keep them bounded across many changes.
    pub(crate) fn rebuild(&mut self, old: &[Slot], new: &[Slot]) {
        let total = total_weight(new);
        let same_ids = old.len() == new.len() && old.iter().zip(new).all(|(a, b)| a.id == b.id);
        let credits = if same_ids && self.credits.len() == new.len() {
            std::mem::take(&mut self.credits)
        } else {
            let previous: HashMap<ServerId, i64> =
                old.iter().map(|slot| slot.id).zip(self.credits.iter().copied()).collect();
            new.iter().map(|slot| previous.get(&slot.id).copied().unwrap_or(0)).collect()
        };
        self.credits = credits.into_iter().map(|credit| credit.clamp(-total, total)).collect();
    }

    /// One smooth round-robin step among the weighted slots for which `eligible` holds.
    /// Ineligible slots neither earn nor pay, so the others keep their exact proportions and a
    /// skipped server does not bank credit for a burst when it comes back.
    pub(crate) fn pick(&mut self, slots: &[Slot], mut eligible: impl FnMut(usize, &Slot) -> bool) -> Option<usize> {
        let mut total: i64 = 0;
        let mut best: Option<(usize, i64)> = None;
        for (index, (slot, credit)) in slots.iter().zip(self.credits.iter_mut()).enumerate() {
            if slot.weight == 0 || !eligible(index, slot) {
                continue;
            }
            let weight = i64::from(slot.weight);
            *credit = credit.saturating_add(weight);
            total = total.saturating_add(weight);
            if best.is_none_or(|(_, best_credit)| *credit > best_credit) {
                best = Some((index, *credit));
            }
        }
        let (winner, _) = best?;
        if let Some(credit) = self.credits.get_mut(winner) {
            *credit = credit.saturating_sub(total);
        }
        Some(winner)
    }
}

fn total_weight(slots: &[Slot]) -> i64 {
    slots.iter().fold(0i64, |sum, slot| sum.saturating_add(i64::from(slot.weight)))
}

/// Above this `servers × table length`, tables are built in due order instead of with credits.
const TABLE_WORK_LIMIT: u64 = 1 << 22;
/// Upper bound on a table's length (or 4 entries per server, if more), whatever the weights.
const TABLE_MAX_LEN: u64 = 1 << 16;

/// The fixed sequence for `static-rr` and map-based hashing: slot indices in smooth round-robin
/// order, each weighted slot appearing (weight / gcd) times.
///
/// Weights are divided by their greatest common divisor first. If the table would still be
/// longer than 2^16 entries (huge weights), weights are scaled down proportionally, every
/// weighted slot keeping at least one entry. Built with the credit rule in O(servers × length)
/// — exactly the `roundrobin` sequence — or, past a work limit (thousands of servers), in due
/// order in O(length × log servers), which is just as evenly spaced.
pub(crate) fn smooth_sequence(slots: &[Slot]) -> Vec<usize> {
    let weighted: Vec<(usize, u64)> = slots
        .iter()
        .enumerate()
        .filter(|(_, slot)| slot.weight > 0)
        .map(|(index, slot)| (index, u64::from(slot.weight)))
        .collect();
    let servers = weighted.len() as u64;
    if servers == 0 {
        return Vec::new();
    }
    let divisor = weighted.iter().fold(0, |g, &(_, w)| gcd(g, w)).max(1);
    let mut weights: Vec<u64> = weighted.iter().map(|&(_, w)| w / divisor).collect();
    let mut length: u64 = weights.iter().sum();
    let max_length = TABLE_MAX_LEN.max(servers.saturating_mul(4));
    if length > max_length {
        for weight in &mut weights {
            let scaled = u128::from(*weight) * u128::from(max_length) / u128::from(length);
            *weight = u64::try_from(scaled).unwrap_or(u64::MAX).max(1);
        }
        length = weights.iter().sum();
    }
    if length == servers {
        // All weights equal: smooth round robin degenerates to slot order.
        return weighted.iter().map(|&(index, _)| index).collect();
    }
    if servers.saturating_mul(length) > TABLE_WORK_LIMIT {
        // Thousands of servers: the O(servers × length) credit loop would take too long.
        return due_order_sequence(&weighted, &weights);
    }
    // Bounded by max_length (≤ 2^16) plus one per server, so i64 arithmetic cannot overflow.
    let total = i64::try_from(length).unwrap_or(i64::MAX);
    let weights: Vec<i64> = weights.iter().map(|&w| i64::try_from(w).unwrap_or(i64::MAX)).collect();
    let mut credits = vec![0i64; weights.len()];
    let mut sequence = Vec::with_capacity(usize::try_from(length).unwrap_or(0));
    for _ in 0..length {
        let mut best: Option<(usize, i64)> = None;
        for (position, (credit, &weight)) in credits.iter_mut().zip(&weights).enumerate() {
            *credit += weight;
            if best.is_none_or(|(_, best_credit)| *credit > best_credit) {
                best = Some((position, *credit));
            }
        }
        let Some((winner, _)) = best else { break };
        if let (Some(credit), Some(&(index, _))) = (credits.get_mut(winner), weighted.get(winner)) {
            *credit -= total;
            sequence.push(index);
        }
    }
    sequence
}

/// A server's next turn in [`due_order_sequence`]. Server `p` of `n`, weight `w`, takes turn
/// `k` at `(k + (p + ½)/n) / w` of the cycle: its turns are exactly `1/w` apart, and the phase
/// `(p + ½)/n` staggers servers of equal weight instead of bunching them. Ordered so that
/// `BinaryHeap` pops the earliest turn (ties: lower position).
#[derive(Debug, PartialEq, Eq)]
struct Turn {
    turn: u64,
    weight: u64,
    position: u64,
    servers: u64,
}

impl Turn {
    /// The due time as a fraction `numerator / (2·n·weight)`; the denominator's `2·n` is common.
    fn numerator(&self) -> u128 {
        2 * u128::from(self.turn) * u128::from(self.servers) + 2 * u128::from(self.position) + 1
    }
}

impl Ord for Turn {
    fn cmp(&self, other: &Self) -> Ordering {
        let due = self.numerator() * u128::from(other.weight);
        let other_due = other.numerator() * u128::from(self.weight);
        other_due.cmp(&due).then_with(|| other.position.cmp(&self.position))
    }
}

impl PartialOrd for Turn {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Smooth order for very large tables in O(length × log servers): each server's turns are
/// evenly spaced over the cycle, at staggered phases.
fn due_order_sequence(weighted: &[(usize, u64)], weights: &[u64]) -> Vec<usize> {
    let servers = weights.len() as u64;
    let mut due: BinaryHeap<Turn> = (0u64..)
        .zip(weights)
        .filter(|&(_, &weight)| weight > 0)
        .map(|(position, &weight)| Turn { turn: 0, weight, position, servers })
        .collect();
    let mut sequence = Vec::new();
    while let Some(turn) = due.pop() {
        let index = usize::try_from(turn.position).ok().and_then(|p| weighted.get(p));
        if let Some(&(index, _)) = index {
            sequence.push(index);
        }
        if turn.turn + 1 < turn.weight {
            due.push(Turn { turn: turn.turn + 1, ..turn });
        }
    }
    sequence
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(weights: &[u32]) -> Vec<Slot> {
        weights.iter().enumerate().map(|(id, &weight)| Slot { id, weight }).collect()
    }

    #[test]
    fn sequence_interleaves_by_weight() {
        assert_eq!(smooth_sequence(&slots(&[5, 1, 1])), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_sequence(&slots(&[3, 2])), vec![0, 1, 0, 1, 0]);
        assert_eq!(smooth_sequence(&slots(&[2, 0, 1])), vec![0, 2, 0]);
    }

    #[test]
    fn sequence_reduces_by_gcd() {
        assert_eq!(smooth_sequence(&slots(&[50, 10, 10])), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_sequence(&slots(&[7, 7, 7])), vec![0, 1, 2]);
    }

    #[test]
    fn thousands_of_servers_get_an_evenly_spaced_table_quickly() {
        // 5000 servers, weights 1..=3: too big for the credit loop, built by due order.
        let weights: Vec<u32> = (0..5000).map(|i| 1 + i % 3).collect();
        let sequence = smooth_sequence(&slots(&weights));
        let total: u32 = weights.iter().sum();
        assert_eq!(sequence.len(), total as usize);
        let mut turns = vec![Vec::new(); weights.len()];
        for (position, &index) in sequence.iter().enumerate() {
            turns[index].push(position);
        }
        for (index, positions) in turns.iter().enumerate() {
            assert_eq!(positions.len(), weights[index] as usize);
            // Turns of a weight-w server are about total/w apart.
            let spacing = total as usize / positions.len();
            for gap in positions.windows(2).map(|w| w[1] - w[0]) {
                assert!(gap.abs_diff(spacing) <= spacing / 10 + 2, "server {index}: {positions:?}");
            }
        }
    }

    #[test]
    fn due_order_is_smooth_for_small_weights_too() {
        let weighted = [(0, 5), (1, 1), (2, 1)];
        let sequence = due_order_sequence(&weighted, &[5, 1, 1]);
        assert_eq!(sequence, vec![0, 0, 0, 1, 0, 0, 2]);
        let sequence = due_order_sequence(&[(0, 3), (1, 2)], &[3, 2]);
        assert_eq!(sequence, vec![0, 1, 0, 0, 1]);
        let sequence = due_order_sequence(&[(0, 1), (1, 1), (2, 1)], &[1, 1, 1]);
        assert_eq!(sequence, vec![0, 1, 2]);
    }

    #[test]
    fn sequence_of_nothing_is_empty() {
        assert!(smooth_sequence(&[]).is_empty());
        assert!(smooth_sequence(&slots(&[0, 0])).is_empty());
    }

    #[test]
    fn huge_weights_are_scaled_and_every_server_stays() {
        let sequence = smooth_sequence(&slots(&[u32::MAX, u32::MAX / 2, 1]));
        assert!(sequence.len() as u64 <= TABLE_MAX_LEN + 3);
        let count = |index| sequence.iter().filter(|&&i| i == index).count() as f64;
        assert!(count(2) >= 1.0);
        let ratio = count(0) / count(1);
        assert!((1.99..2.01).contains(&ratio), "ratio {ratio}");
    }

    #[test]
    fn credits_follow_server_ids_across_rebuilds() {
        let before = slots(&[1, 1, 1]);
        let mut rr = SmoothRr::default();
        rr.rebuild(&[], &before);
        assert_eq!(rr.credits, vec![0, 0, 0]);
        rr.credits = vec![2, -1, -1];
        // Server 1 leaves: 0 and 2 keep their credit.
        let after = vec![Slot { id: 0, weight: 1 }, Slot { id: 2, weight: 1 }];
        rr.rebuild(&before, &after);
        assert_eq!(rr.credits, vec![2, -1]);
        // Server 1 returns, at the average credit; server 0 is clamped to the total weight.
        let shrunk = vec![Slot { id: 1, weight: 1 }, Slot { id: 0, weight: 1 }];
        rr.rebuild(&after, &shrunk);
        assert_eq!(rr.credits, vec![0, 2]);
        rr.rebuild(&shrunk, &[Slot { id: 0, weight: 1 }]);
        assert_eq!(rr.credits, vec![1]);
    }
}
