//! What a stick table stores per key besides a server: HAProxy's counters (`store
//! conn_cur,http_req_rate(10s),gpc0,...`) and its sliding-window rates.
//!
//! A rate over a period is HAProxy's `freq_ctr`: the events of the current period plus those
//! of the previous one weighted by how much of it is still inside the window
//! (`curr + prev × (period − elapsed) / period`); periods are aligned on multiples of their
//! length. Pure: time is an explicit millisecond clock.

use fulcrum_model::{TableData, TableStore};

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
        let weighted = u128::from(prev) * u128::from(period - elapsed) / u128::from(period);
        curr.saturating_add(u32::try_from(weighted).unwrap_or(u32::MAX))
    }
}

/// Where each stored data type sits in an entry's values, and each rate's period: one
/// layout per table, made from its `store` list. An entry holds only what its table stores.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// Per data type (in [`TableData::ALL`] order): its place, or `NONE`.
    places: [u8; TableData::ALL.len()],
    /// Per data type: a rate's period in ms (0 for counts).
    periods: [u64; TableData::ALL.len()],
    len: usize,
}

const NONE: u8 = u8::MAX;

fn index(d: TableData) -> usize {
    TableData::ALL.iter().position(|x| *x == d).unwrap_or(0)
}

impl Layout {
    /// The layout of a table storing `store` (a rate without a period counts over 1 s).
    pub fn new(store: &[TableStore]) -> Layout {
        let mut layout = Layout { places: [NONE; TableData::ALL.len()], periods: [0; TableData::ALL.len()], len: 0 };
        for s in store {
            let i = index(s.data);
            if layout.places[i] != NONE {
                continue;
            }
            layout.places[i] = layout.len as u8;
            // A rate takes two values: its period's start, and its two periods' counts.
            layout.len += if s.data.is_rate() { 2 } else { 1 };
            layout.periods[i] = s.period.map_or(1000, |p| u64::try_from(p.as_millis()).unwrap_or(u64::MAX).max(1));
        }
        layout
    }

    pub fn stores(&self, d: TableData) -> bool {
        self.places[index(d)] != NONE
    }

    /// A rate's period (ms); 0 when not stored or not a rate.
    pub fn period(&self, d: TableData) -> u64 {
        if d.is_rate() && self.stores(d) {
            self.periods[index(d)]
        } else {
            0
        }
    }

    /// A new entry's values: all zero.
    pub fn blank(&self) -> Counters {
        Counters { server_id: 0, update: 0, values: vec![0; self.len].into_boxed_slice() }
    }

    fn place(&self, d: TableData) -> Option<usize> {
        let p = self.places[index(d)];
        (p != NONE).then_some(usize::from(p))
    }
}

/// What one stick-table entry stores: the server a key sticks to, and the values its table's
/// [`Layout`] places (counts, and rates as their period's start and two periods' counts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// The number (`id`) of the server the key sticks to; 0: none.
    pub server_id: u32,
    /// The entry's last local change, for peers (0: none since it came).
    pub update: u64,
    values: Box<[u64]>,
}

impl Counters {
    /// A stored value at `now` (a rate as HAProxy reads it); 0 when not stored.
    pub fn get(&self, layout: &Layout, d: TableData, now: u64) -> u64 {
        match (layout.place(d), d.is_rate()) {
            (Some(p), false) => self.values.get(p).copied().unwrap_or(0),
            (Some(_), true) => u64::from(self.freq(layout, d).map_or(0, |f| f.read(now, layout.period(d)))),
            (None, _) => 0,
        }
    }

    /// Adds `n` events (a count, or a rate at `now`).
    pub fn add(&mut self, layout: &Layout, d: TableData, now: u64, n: u64) {
        let Some(p) = layout.place(d) else { return };
        if d.is_rate() {
            if let Some(mut f) = self.freq(layout, d) {
                f.add(now, layout.period(d), u32::try_from(n).unwrap_or(u32::MAX));
                self.set_freq(layout, d, f);
            }
        } else if let Some(v) = self.values.get_mut(p) {
            *v = v.saturating_add(n);
        }
    }

    /// Sets a count (or a tag such as `gpt0`); the value it had.
    pub fn set(&mut self, layout: &Layout, d: TableData, value: u64) -> u64 {
        match (layout.place(d), d.is_rate()) {
            (Some(p), false) => self.values.get_mut(p).map_or(0, |v| std::mem::replace(v, value)),
            _ => 0,
        }
    }

    /// One less of a count (`conn_cur` when a tracked connection ends).
    pub fn sub(&mut self, layout: &Layout, d: TableData) {
        if let (Some(p), false) = (layout.place(d), d.is_rate()) {
            if let Some(v) = self.values.get_mut(p) {
                *v = v.saturating_sub(1);
            }
        }
    }

    /// A stored rate.
    pub fn freq(&self, layout: &Layout, d: TableData) -> Option<FreqCtr> {
        let p = layout.place(d).filter(|_| d.is_rate())?;
        let (tick, counts) = (*self.values.get(p)?, *self.values.get(p + 1)?);
        Some(FreqCtr { tick, curr: (counts >> 32) as u32, prev: counts as u32 })
    }

    /// Replaces a stored rate (one learned from a peer).
    pub fn set_freq(&mut self, layout: &Layout, d: TableData, f: FreqCtr) {
        let Some(p) = layout.place(d).filter(|_| d.is_rate()) else { return };
        if p + 1 < self.values.len() {
            self.values[p] = f.tick;
            self.values[p + 1] = (u64::from(f.curr) << 32) | u64::from(f.prev);
        }
    }

    /// An entry starts being tracked (`track-sc*`): one more connection, current and counted.
    pub fn track(&mut self, layout: &Layout, now: u64) {
        self.add(layout, TableData::ConnCur, now, 1);
        self.add(layout, TableData::ConnCnt, now, 1);
        self.add(layout, TableData::ConnRate, now, 1);
    }

    /// A connection tracked from its start was accepted (`tcp-request connection` passed).
    pub fn session(&mut self, layout: &Layout, now: u64) {
        self.add(layout, TableData::SessCnt, now, 1);
        self.add(layout, TableData::SessRate, now, 1);
    }

    /// One HTTP request.
    pub fn count_request(&mut self, layout: &Layout, now: u64) {
        self.add(layout, TableData::HttpReqCnt, now, 1);
        self.add(layout, TableData::HttpReqRate, now, 1);
    }

    /// One HTTP request error (a 4xx, a denied request).
    pub fn count_error(&mut self, layout: &Layout, now: u64) {
        self.add(layout, TableData::HttpErrCnt, now, 1);
        self.add(layout, TableData::HttpErrRate, now, 1);
    }

    /// `sc-inc-gpc0`/`gpc1` (`gpc`: `Gpc0` or `Gpc1`): the new value.
    pub fn inc_gpc(&mut self, layout: &Layout, gpc: TableData, now: u64) -> u64 {
        self.add(layout, gpc, now, 1);
        let rate = if gpc == TableData::Gpc1 { TableData::Gpc1Rate } else { TableData::Gpc0Rate };
        self.add(layout, rate, now, 1);
        self.get(layout, gpc, now)
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
        use std::time::Duration;
        let store = |data, period: Option<u64>| TableStore { data, period: period.map(Duration::from_millis) };
        let layout = Layout::new(&[
            store(TableData::HttpReqCnt, None),
            store(TableData::HttpReqRate, Some(1_000)),
            store(TableData::Gpc0, None),
            store(TableData::ConnCur, None),
        ]);
        let mut c = layout.blank();
        c.count_request(&layout, 5_000);
        c.count_request(&layout, 5_001);
        assert_eq!(c.get(&layout, TableData::HttpReqCnt, 5_002), 2);
        assert_eq!(c.get(&layout, TableData::HttpReqRate, 5_002), 2);
        assert_eq!(c.inc_gpc(&layout, TableData::Gpc0, 5_002), 1);
        assert_eq!(c.get(&layout, TableData::Gpc0Rate, 5_002), 0, "not stored: not counted");
        c.track(&layout, 5_003);
        c.track(&layout, 5_003);
        c.sub(&layout, TableData::ConnCur);
        assert_eq!(c.get(&layout, TableData::ConnCur, 5_004), 1);
        assert_eq!(c.get(&layout, TableData::ConnCnt, 5_004), 0, "not stored");
        assert_eq!(c.set(&layout, TableData::Gpc0, 7), 1);
        assert_eq!(c.get(&layout, TableData::Gpc0, 5_004), 7);
        let f = c.freq(&layout, TableData::HttpReqRate).expect("stored");
        let mut d = layout.blank();
        d.set_freq(&layout, TableData::HttpReqRate, f);
        assert_eq!(d.get(&layout, TableData::HttpReqRate, 5_500), 2);
    }
}
