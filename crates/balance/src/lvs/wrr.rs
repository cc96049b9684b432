//! `wrr`: the kernel's weighted round robin by stepping a current weight.
//!
//! State: a position in the list (`None`: before the first server, the list head), the
//! current weight `cw`, the largest weight less the gcd's excess `mw = max − (gcd − 1)`, and the
//! step `di = gcd`. A pick walks on from the position and takes the first usable server whose
//! weight is at least `cw`; passing the end of the list lowers `cw` by `di`, back to `mw` when
//! it reaches 0. With 4,3,2: `a a b a b c a b c`, then again.
//!
//! Passes in which no usable server is heavy enough choose nothing in the kernel either, so
//! they are skipped arithmetically: a pick costs at most about two walks of the list whatever
//! the weights.
use super::View;
use crate::Slot;

#[derive(Debug, Default)]
pub(crate) struct Wrr {
    position: Option<usize>,
    cw: i64,
    mw: i64,
    di: i64,
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Wrr {
    /// After a change to the list, as the kernel's `dest_changed`: back to the head, gcd and
    /// max recomputed, and `cw` kept in range (rounded to the new step).
    pub(crate) fn rebuild(&mut self, slots: &[Slot]) {
        let weights = slots.iter().map(|s| i64::from(s.weight));
        let di = weights.clone().filter(|&w| w > 0).fold(0, gcd).max(1);
        let max = weights.max().unwrap_or(0);
        self.position = None;
        self.di = di;
        self.mw = max - (di - 1);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if di > 1 {
            self.cw = (self.cw / di) * di + 1;
        }
    }

    pub(crate) fn pick(&mut self, view: &View<'_>) -> Option<usize> {
        let n = view.len();
        if self.mw <= 0 || n == 0 {
            return None;
        }
        let heaviest = (0..n).filter(|&i| view.usable(i)).map(|i| view.weight(i)).max()?;
        // Each round visits every position once and the head once; two rounds always suffice
        // once `cw` has been brought within reach of `heaviest`.
        for _ in 0..2 * (n + 1) + 2 {
            let next = self.position.map_or(0, |p| p + 1);
            if next >= n {
                self.position = None;
                self.lower(heaviest);
                continue;
            }
            self.position = Some(next);
            if view.usable(next) && view.weight(next) >= self.cw {
                return Some(next);
            }
        }
        None
    }

    /// The end of the list: `cw` drops by `di` (back to `mw` at 0), and further while no
    /// usable server could match it (those passes would choose nothing).
    fn lower(&mut self, heaviest: i64) {
        self.cw -= self.di;
        if self.cw <= 0 {
            self.cw = self.mw;
        }
        if heaviest < self.cw {
            let steps = (self.cw - heaviest + self.di - 1) / self.di;
            self.cw -= steps * self.di;
            if self.cw <= 0 {
                // Wrapped: from `mw`, the same jump (`heaviest` ≥ 1, so it lands above 0).
                self.cw = self.mw;
                let steps = (self.cw - heaviest).max(0).div_euclid(self.di)
                    + i64::from((self.cw - heaviest).max(0) % self.di != 0);
                self.cw -= steps * self.di;
            }
        }
    }
}
