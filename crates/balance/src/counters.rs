//! What a stick table stores per key besides a server: HAProxy's counters (`store
//! http_req_cnt,http_req_rate(10s),gpc0,gpc0_rate(1m)`) and its sliding-window rates.
//!
//! A rate over a period is HAProxy's `freq_ctr`: the events of the current period plus those
//! of the previous one weighted by how much of it is still inside the window
//! (`curr + prev × (period − elapsed) / period`); periods are aligned on multiples of their
//! length. Pure: time is an explicit millisecond clock.

/// Events per period, sliding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FreqCtr {
    /// Start of the current period (ms).
    tick: u64,
    curr: u32,
    prev: u32,
}

impl FreqCtr {
    /// Moves to the period holding `now` (ms).
    fn rotate(&mut self, now: u64, period: u64) {
        let period = period.max(1);
        let elapsed = now.saturating_sub(self.tick);
        if elapsed >= period {
            self.prev = if elapsed >= 2 * period { 0 } else { self.curr };
            self.curr = 0;
            self.tick = now - now % period;
        }
    }

    /// Counts `n` events at `now`.
    pub fn add(&mut self, now: u64, period: u64, n: u32) {
        self.rotate(now, period);
        self.curr = self.curr.saturating_add(n);
    }

    /// The counter as peers exchange it: ms since its current period began, the current
    /// period's events, the previous one's.
    pub fn to_wire(&self, now: u64) -> (u32, u32, u32) {
        (now.wrapping_sub(self.tick) as u32, self.curr, self.prev)
    }

    /// A counter received from a peer (`elapsed`: ms since its current period began).
    pub fn from_wire(now: u64, elapsed: u32, curr: u32, prev: u32) -> FreqCtr {
        FreqCtr { tick: now.saturating_sub(u64::from(elapsed)), curr, prev }
    }

    /// The rate at `now`: events over the last `period`, as HAProxy estimates it.
    pub fn read(&self, now: u64, period: u64) -> u32 {
        let period = period.max(1);
        let elapsed = now.saturating_sub(self.tick);
        let (curr, prev, elapsed) = if elapsed >= 2 * period {
            (0, 0, 0)
        } else if elapsed >= period {
            (0, self.curr, elapsed - period)
        } else {
            (self.curr, self.prev, elapsed)
        };
        let weighted = u64::from(prev) * (period - elapsed) / period;
        curr.saturating_add(u32::try_from(weighted).unwrap_or(u32::MAX))
    }
}

/// What one stick-table entry stores: the server a key sticks to, and the counters (those
/// its table stores; the others stay 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// The number (`id`) of the server the key sticks to; 0: none.
    pub server_id: u32,
    /// The entry's last local change, for peers (0: none since it came).
    pub update: u64,
    pub http_req_cnt: u64,
    pub http_req_rate: FreqCtr,
    pub gpc0: u64,
    pub gpc0_rate: FreqCtr,
}

/// The periods of a table's rates (ms; 0: the table does not store that rate).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Periods {
    pub http_req_rate: u64,
    pub gpc0_rate: u64,
}

impl Counters {
    /// One HTTP request tracked at `now`.
    pub fn count_request(&mut self, now: u64, periods: Periods) {
        self.http_req_cnt = self.http_req_cnt.saturating_add(1);
        if periods.http_req_rate > 0 {
            self.http_req_rate.add(now, periods.http_req_rate, 1);
        }
    }

    /// `sc-inc-gpc0`: the new value.
    pub fn inc_gpc0(&mut self, now: u64, periods: Periods) -> u64 {
        self.gpc0 = self.gpc0.saturating_add(1);
        if periods.gpc0_rate > 0 {
            self.gpc0_rate.add(now, periods.gpc0_rate, 1);
        }
        self.gpc0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_slide_as_haproxy_estimates_them() {
        let mut c = FreqCtr::default();
        let p = 10_000;
        // 10 events early in a period: the rate is 10.
        for _ in 0..10 {
            c.add(100_000, p, 1);
        }
        assert_eq!(c.read(100_000, p), 10);
        assert_eq!(c.read(109_999, p), 10);
        // A quarter into the next period, the previous one still weighs three quarters.
        assert_eq!(c.read(112_500, p), 7);
        c.add(112_500, p, 2);
        assert_eq!(c.read(112_500, p), 2 + 7);
        // Two periods later, nothing is left.
        assert_eq!(c.read(130_000, p), 0);
        c.add(130_000, p, 1);
        assert_eq!(c.read(130_000, p), 1);
    }

    #[test]
    fn counters_count() {
        let periods = Periods { http_req_rate: 1_000, gpc0_rate: 0 };
        let mut c = Counters::default();
        c.count_request(5_000, periods);
        c.count_request(5_001, periods);
        assert_eq!((c.http_req_cnt, c.http_req_rate.read(5_002, 1_000)), (2, 2));
        assert_eq!(c.inc_gpc0(5_002, periods), 1);
        assert_eq!(c.gpc0_rate.read(5_002, 1_000), 0, "not stored: not counted");
    }
}
