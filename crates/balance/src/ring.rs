//! The consistent-hash ring (`hash-type consistent`).
//!
//! Each server owns points on a 64-bit circle, as many as its weight times
//! [`POINTS_PER_WEIGHT`]; a key belongs to the first point at or after its hash. A server's
//! points depend only on its id and its own weight, never on the other servers, so adding a server
//! only takes keys for itself and removing one only hands its own keys to the others.

use crate::hash::mix64;
use crate::walk::cycle_from;
use crate::{ServerId, Slot};

/// Ring points per unit of weight. HAProxy uses 16; more points spread keys more evenly at low
/// weights (the relative deviation of a server's share is about 1/sqrt(points)).
pub(crate) const POINTS_PER_WEIGHT: u64 = 64;
/// Cap on the ring's size (16 bytes per point). Beyond it every server's point count is scaled
/// down proportionally, which makes a membership change move slightly more than 1/N of the keys.
const MAX_POINTS: u64 = 1 << 20;
/// Spreads consecutive point numbers of one server over the circle.
const POINT_STEP: u64 = 0x9e37_79b9_7f4a_7c15;

#[derive(Debug, Clone, Copy)]
struct Point {
    hash: u64,
    slot: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Ring {
    points: Vec<Point>,
}

impl Ring {
    pub(crate) fn build(slots: &[Slot]) -> Ring {
        let wanted: u128 = slots
            .iter()
            .map(|slot| u128::from(slot.weight) * u128::from(POINTS_PER_WEIGHT))
            .sum();
        let points_of = |weight: u32| -> u64 {
            if weight == 0 {
                return 0;
            }
            let natural = u128::from(weight) * u128::from(POINTS_PER_WEIGHT);
            let scaled = if wanted > u128::from(MAX_POINTS) {
                natural * u128::from(MAX_POINTS) / wanted
            } else {
                natural
            };
            u64::try_from(scaled).unwrap_or(MAX_POINTS).max(1)
        };
        let mut points = Vec::new();
        for (slot, server) in slots.iter().enumerate() {
            let base = point_base(server.id);
            for number in 0..points_of(server.weight) {
                let hash = mix64(base.wrapping_add(number.wrapping_mul(POINT_STEP)));
                points.push(Point { hash, slot });
            }
        }
        // Equal hashes (rare) are ordered by server id, which does not depend on slot order.
        let id_of = |slot: usize| slots.get(slot).map_or(ServerId::MAX, |s| s.id);
        points.sort_unstable_by_key(|point| (point.hash, id_of(point.slot)));
        Ring { points }
    }

    /// `(position, slot)` pairs clockwise from the first point at or after `hash`, once around.
    pub(crate) fn clockwise(&self, hash: u64) -> impl Iterator<Item = (usize, usize)> + '_ {
        let start = self.points.partition_point(|point| point.hash < hash);
        cycle_from(start, self.points.len())
            .filter_map(|position| self.points.get(position).map(|point| (position, point.slot)))
    }

    pub(crate) fn len(&self) -> usize {
        self.points.len()
    }
}

fn point_base(id: ServerId) -> u64 {
    // ServerId is usize: at most 64 bits on every supported target.
    mix64(u64::try_from(id).unwrap_or(u64::MAX) ^ 0x5bd1_e995_c0ff_ee00)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_proportional_to_weight() {
        let slots = [Slot { id: 0, weight: 1 }, Slot { id: 1, weight: 3 }, Slot { id: 2, weight: 0 }];
        let ring = Ring::build(&slots);
        assert_eq!(ring.len() as u64, 4 * POINTS_PER_WEIGHT);
        let of = |slot| ring.points.iter().filter(|p| p.slot == slot).count() as u64;
        assert_eq!((of(0), of(1), of(2)), (POINTS_PER_WEIGHT, 3 * POINTS_PER_WEIGHT, 0));
        assert!(ring.points.windows(2).all(|w| w[0].hash <= w[1].hash));
    }

    #[test]
    fn huge_weights_are_capped_but_every_server_keeps_a_point() {
        let slots = [Slot { id: 0, weight: u32::MAX }, Slot { id: 1, weight: 1 }];
        let ring = Ring::build(&slots);
        assert!(ring.len() as u64 <= MAX_POINTS + 1);
        assert!(ring.points.iter().any(|p| p.slot == 1));
    }

    #[test]
    fn clockwise_starts_at_the_next_point_and_wraps() {
        let ring = Ring::build(&[Slot { id: 0, weight: 1 }, Slot { id: 1, weight: 1 }]);
        let first = ring.points[0];
        let positions: Vec<usize> = ring.clockwise(first.hash).map(|(p, _)| p).collect();
        assert_eq!(positions.len(), ring.len());
        assert_eq!(positions[0], 0);
        let after_last: Vec<usize> = ring.clockwise(u64::MAX).map(|(p, _)| p).collect();
        let last = ring.points[ring.len() - 1];
        let expected_start = if last.hash == u64::MAX { ring.len() - 1 } else { 0 };
        assert_eq!(after_last[0], expected_start);
        assert_eq!(Ring::default().clockwise(5).count(), 0);
    }
}
