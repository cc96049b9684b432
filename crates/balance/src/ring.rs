//! The consistent-hash ring (`hash-type consistent`).
//!
//! Each server owns points on a 32-bit circle, as many as its weight times
//! [`POINTS_PER_WEIGHT`]; a key belongs to the first point at or after the high 32 bits of its
//! hash. A server's points depend only on its id and its own weight, never on the other servers,
//! so adding a server only takes keys for itself and removing one only hands its own keys to the
//! others.

use crate::hash::mix64;
use crate::walk::cycle_from;
use crate::{ServerId, Slot};

/// Ring points per unit of weight, as nginx's `hash … consistent` (HAProxy uses 16). The relative
/// deviation of a server's share from its weight is about 1/sqrt(points): ~8% at weight 1.
pub(crate) const POINTS_PER_WEIGHT: u64 = 160;
/// Cap on the ring's size (8 bytes per point, so 8 MiB). Beyond it every server's point count is
/// scaled down proportionally, which makes a membership change move somewhat more than 1/N of the
/// keys: with weights up to 256 this starts at about 25 servers of weight 256.
const MAX_POINTS: u64 = 1 << 20;
/// Spreads consecutive point numbers of one server over the circle.
const POINT_STEP: u64 = 0x9e37_79b9_7f4a_7c15;

/// Points are packed into one `u64`: position on the circle in the high half, the owner's rank
/// (index into `Ring::by_rank`) in the low half. Sorting the integers orders points by position,
/// then by owner rank — and ranks follow server ids, so ties do not depend on slot order.
#[derive(Debug, Default)]
pub(crate) struct Ring {
    points: Vec<u64>,
    /// Slot indices of the weighted slots, by ascending server id.
    by_rank: Vec<usize>,
}

impl Ring {
    pub(crate) fn build(slots: &[Slot]) -> Ring {
        let mut by_rank: Vec<usize> = (0..slots.len()).collect();
        by_rank.retain(|&index| slots.get(index).is_some_and(|slot| slot.weight > 0));
        by_rank.sort_by_key(|&index| slots.get(index).map(|slot| slot.id));
        by_rank.truncate(u32::MAX as usize);

        let wanted: u128 = slots.iter().map(|slot| u128::from(slot.weight) * u128::from(POINTS_PER_WEIGHT)).sum();
        let points_of = |weight: u32| -> u64 {
            let natural = u128::from(weight) * u128::from(POINTS_PER_WEIGHT);
            let scaled =
                if wanted > u128::from(MAX_POINTS) { natural * u128::from(MAX_POINTS) / wanted } else { natural };
            u64::try_from(scaled).unwrap_or(MAX_POINTS).max(1)
        };
        let mut points = Vec::new();
        for (rank, &index) in (0u64..).zip(&by_rank) {
            let Some(server) = slots.get(index) else {
                continue;
            };
            let base = point_base(server.id);
            for number in 0..points_of(server.weight) {
                let hash = mix64(base.wrapping_add(number.wrapping_mul(POINT_STEP)));
                points.push((hash & 0xffff_ffff_0000_0000) | rank);
            }
        }
        // Generated in rank order, so a stable sort on positions alone orders ties by rank.
        sort_by_position(&mut points);
        Ring { points, by_rank }
    }

    /// `(position, slot)` pairs clockwise from the first point at or after `hash`, once around.
    pub(crate) fn clockwise(&self, hash: u64) -> impl Iterator<Item = (usize, usize)> + '_ {
        let position = hash >> 32;
        let start = self.points.partition_point(|&point| point >> 32 < position);
        cycle_from(start, self.points.len()).filter_map(|index| {
            let point = self.points.get(index)?;
            let rank = usize::try_from(point & 0xffff_ffff).ok()?;
            Some((index, *self.by_rank.get(rank)?))
        })
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.points.len()
    }

    #[cfg(test)]
    fn slot_of(&self, point: u64) -> usize {
        self.by_rank[(point & 0xffff_ffff) as usize]
    }
}

/// Stable LSD radix sort on the high 32 bits (three 11-bit digits): O(points), several times
/// faster than a comparison sort at ring sizes, which keeps slowstart ramps cheap.
fn sort_by_position(points: &mut Vec<u64>) {
    const DIGIT_BITS: u32 = 11;
    const BUCKETS: usize = 1 << DIGIT_BITS;
    let mut buffer = vec![0u64; points.len()];
    for shift in [32, 32 + DIGIT_BITS, 32 + 2 * DIGIT_BITS] {
        let digit = |point: u64| ((point >> shift) as usize) & (BUCKETS - 1);
        let mut offsets = [0usize; BUCKETS];
        for &point in points.iter() {
            offsets[digit(point)] += 1;
        }
        let mut start = 0;
        for offset in offsets.iter_mut() {
            let count = *offset;
            *offset = start;
            start += count;
        }
        for &point in points.iter() {
            let offset = &mut offsets[digit(point)];
            if let Some(slot) = buffer.get_mut(*offset) {
                *slot = point;
            }
            *offset += 1;
        }
        std::mem::swap(points, &mut buffer);
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
    fn points_are_proportional_to_weight_and_sorted() {
        let slots = [Slot { id: 5, weight: 1 }, Slot { id: 1, weight: 3 }, Slot { id: 2, weight: 0 }];
        let ring = Ring::build(&slots);
        assert_eq!(ring.len() as u64, 4 * POINTS_PER_WEIGHT);
        let of = |slot| ring.points.iter().filter(|&&p| ring.slot_of(p) == slot).count() as u64;
        assert_eq!((of(0), of(1), of(2)), (POINTS_PER_WEIGHT, 3 * POINTS_PER_WEIGHT, 0));
        assert!(ring.points.windows(2).all(|w| w[0] <= w[1]));
        // Ranks follow ids: id 1 (slot 1) ranks before id 5 (slot 0).
        assert_eq!(ring.by_rank, vec![1, 0]);
    }

    #[test]
    fn points_do_not_depend_on_other_servers() {
        let alone = Ring::build(&[Slot { id: 3, weight: 2 }]);
        let together = Ring::build(&[Slot { id: 0, weight: 7 }, Slot { id: 3, weight: 2 }]);
        let positions = |ring: &Ring, slot: usize| -> Vec<u64> {
            ring.points.iter().filter(|&&p| ring.slot_of(p) == slot).map(|p| p >> 32).collect()
        };
        assert_eq!(positions(&alone, 0), positions(&together, 1));
    }

    #[test]
    fn radix_sort_matches_a_comparison_sort() {
        let mut state = 1u64;
        let mut points: Vec<u64> = (0..5000u64)
            .map(|rank| {
                state = mix64(state.wrapping_add(rank));
                // Few distinct positions, so ties are common and must keep rank order.
                (state & 0x0000_07ff_0000_0000) | (state & 0xff00_0000_0000_0000) | rank
            })
            .collect();
        let mut expected = points.clone();
        expected.sort_unstable();
        sort_by_position(&mut points);
        assert_eq!(points, expected);
    }

    #[test]
    fn huge_weights_are_capped_but_every_server_keeps_a_point() {
        let slots = [Slot { id: 0, weight: u32::MAX }, Slot { id: 1, weight: 1 }];
        let ring = Ring::build(&slots);
        assert!(ring.len() as u64 <= MAX_POINTS + 1);
        assert!(ring.points.iter().any(|&p| ring.slot_of(p) == 1));
    }

    #[test]
    fn clockwise_starts_at_the_next_point_and_wraps() {
        let ring = Ring::build(&[Slot { id: 0, weight: 1 }, Slot { id: 1, weight: 1 }]);
        let first = ring.points[0];
        let positions: Vec<usize> = ring.clockwise(first).map(|(p, _)| p).collect();
        assert_eq!(positions.len(), ring.len());
        assert_eq!(positions[0], 0);
        // Just past the first point: the next point with a greater position.
        let past_first = ((first >> 32) + 1) << 32;
        let expected = ring.points.iter().position(|&p| p >> 32 > first >> 32);
        assert_eq!(ring.clockwise(past_first).next().map(|(p, _)| p), expected);
        let after_last: Vec<usize> = ring.clockwise(u64::MAX).map(|(p, _)| p).collect();
        let last = ring.points[ring.len() - 1];
        let expected_start = if last >> 32 == u64::from(u32::MAX) { ring.len() - 1 } else { 0 };
        assert_eq!(after_last[0], expected_start);
        assert_eq!(Ring::default().clockwise(5).count(), 0);
    }
}
