//! Session persistence: which server a client (or any key) was sent to, for how long.
//!
//! One table type serves HAProxy stick tables (`stick-table type ip size 1m expire 1h` with
//! `stick on src`: key = address, capacity = size, expire = expire) and IPVS persistence
//! templates (key = client address masked by the persistence netmask, see [`mask_ip`]; expire =
//! `persistence_timeout`). Pure: time is an explicit `now`, nothing runs in the background.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::ServerId;

/// "No entry" in the recency list.
const NIL: usize = usize::MAX;

#[derive(Debug, Clone)]
struct Entry<K, V> {
    /// `None` while the entry sits on the free list.
    key: Option<K>,
    /// The server (persistence), or the counters (stick tables that store data).
    value: V,
    /// `None`: never expires (`now + expire` is beyond what `Instant` can represent).
    expires_at: Option<Instant>,
    /// Neighbours in recency order: toward the most recently used, and toward the least.
    newer: usize,
    older: usize,
    /// Connections the entry placed that are still open ([`PersistTable::hold`]): while any is,
    /// the entry does not expire (an IPVS template lives until its last connection ends, then
    /// for `expire`).
    users: u32,
}

/// A bounded key → server map whose entries expire `expire` after their last use.
///
/// Every use ([`PersistTable::get`] hit or [`PersistTable::insert`]) moves an entry to the front
/// of a recency list and pushes its expiry to `now + expire`. Since all entries share one
/// `expire`, least recently used is also soonest to expire: a full table evicts the entry at the
/// back, and [`PersistTable::purge_expired`] pops expired entries from the back. Every operation
/// is O(1) amortised except [`PersistTable::remove_server`] (O(entries), an admin-time event).
///
/// `now` is expected not to go backwards between calls; if it does, lookups stay correct but
/// `purge_expired` may leave some expired entries for a later call.
#[derive(Debug, Clone)]
pub struct Table<K: Eq + Hash + Clone, V> {
    capacity: usize,
    expire: Duration,
    index: HashMap<K, usize>,
    entries: Vec<Entry<K, V>>,
    free: Vec<usize>,
    newest: usize,
    oldest: usize,
}

/// An entry as [`Table::walk`] gives it: key, value, expiry (None: never).
pub type Walked<K, V> = (K, V, Option<Instant>);

/// A key → server table: persistence (stick on, IPVS templates).
pub type PersistTable<K> = Table<K, ServerId>;

impl<K: Eq + Hash + Clone, V: Clone> Table<K, V> {
    /// A table holding at most `capacity` entries (0: remembers nothing), each living `expire`
    /// after its last use. Memory grows with use, not with `capacity`.
    pub fn new(capacity: usize, expire: Duration) -> Self {
        Table {
            capacity,
            expire,
            index: HashMap::new(),
            entries: Vec::new(),
            free: Vec::new(),
            newest: NIL,
            oldest: NIL,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn expire(&self) -> Duration {
        self.expire
    }

    /// A new `expire` (a reload changed the timeout): entries keep theirs until next used.
    pub fn set_expire(&mut self, expire: Duration) {
        self.expire = expire;
    }

    /// Entries currently stored, including expired ones not yet purged.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The server remembered for `key`, refreshing its expiry. An expired entry is removed and
    /// reported as a miss.
    pub fn get(&mut self, key: &K, now: Instant) -> Option<V> {
        let slot = *self.index.get(key)?;
        if self.is_expired(slot, now) {
            self.release(slot);
            return None;
        }
        let expires_at = now.checked_add(self.expire);
        let entry = self.entries.get_mut(slot)?;
        entry.expires_at = expires_at;
        let value = entry.value.clone();
        self.touch(slot);
        Some(value)
    }

    /// The server remembered for `key` if not expired, without refreshing it (for display).
    pub fn peek(&self, key: &K, now: Instant) -> Option<V> {
        self.peek_ref(key, now).cloned()
    }

    /// [`Table::peek`] by reference.
    pub fn peek_ref(&self, key: &K, now: Instant) -> Option<&V> {
        let slot = *self.index.get(key)?;
        let entry = self.entries.get(slot)?;
        (entry.users > 0 || !expired(entry, now)).then_some(&entry.value)
    }

    /// The value of `key`, refreshed (its expiry pushed to `now + expire`, moved to the front),
    /// made by `make` when absent or expired (evicting the least recently used entry of a full
    /// table). None when nothing can be stored (capacity 0, or every entry in use).
    pub fn entry(&mut self, key: K, now: Instant, make: impl FnOnce() -> V) -> Option<&mut V> {
        let live = self.index.get(&key).copied().filter(|&slot| !self.is_expired(slot, now));
        let slot = match live {
            Some(slot) => {
                let expires_at = now.checked_add(self.expire);
                if let Some(entry) = self.entries.get_mut(slot) {
                    entry.expires_at = expires_at;
                }
                self.touch(slot);
                slot
            }
            None => {
                if let Some(&stale) = self.index.get(&key) {
                    self.release(stale);
                }
                self.insert(key.clone(), make(), now);
                *self.index.get(&key)?
            }
        };
        self.entries.get_mut(slot).map(|e| &mut e.value)
    }

    /// Remembers `key → server` until `now + expire`, replacing any previous server for `key`.
    /// When the table is full, the least recently used entry is evicted first.
    pub fn insert(&mut self, key: K, value: V, now: Instant) {
        if self.capacity == 0 {
            return;
        }
        let expires_at = now.checked_add(self.expire);
        if let Some(&slot) = self.index.get(&key) {
            if let Some(entry) = self.entries.get_mut(slot) {
                entry.value = value;
                entry.expires_at = expires_at;
            }
            self.touch(slot);
            return;
        }
        if self.index.len() >= self.capacity && !self.evict_one(now) {
            return;
        }
        let entry = Entry { key: Some(key.clone()), value, expires_at, newer: NIL, older: NIL, users: 0 };
        let slot = match self.free.pop() {
            Some(slot) if slot < self.entries.len() => {
                self.entries[slot] = entry;
                slot
            }
            _ => {
                self.entries.push(entry);
                self.entries.len() - 1
            }
        };
        self.index.insert(key, slot);
        self.link_newest(slot);
    }

    /// Remembers `key → server` (as [`PersistTable::insert`]) for a connection that is now
    /// open: the entry cannot expire until [`PersistTable::unhold`] says it ended. False when
    /// the table is full of entries in use.
    pub fn hold(&mut self, key: K, value: V, now: Instant) -> bool {
        self.insert(key.clone(), value, now);
        match self.index.get(&key).and_then(|&slot| self.entries.get_mut(slot)) {
            Some(entry) => {
                entry.users = entry.users.saturating_add(1);
                true
            }
            None => false,
        }
    }

    /// Holds `key`'s entry (if it is there) for a user that keeps it: it neither expires nor
    /// is evicted until [`Table::unhold`]. Whether it was held.
    pub fn hold_existing(&mut self, key: &K) -> bool {
        match self.index.get(key).and_then(|&slot| self.entries.get_mut(slot)) {
            Some(entry) => {
                entry.users = entry.users.saturating_add(1);
                true
            }
            None => false,
        }
    }

    /// A connection placed by `key`'s entry ended: the entry expires `expire` after the last.
    pub fn unhold(&mut self, key: &K, now: Instant) {
        let Some(&slot) = self.index.get(key) else { return };
        let expires_at = now.checked_add(self.expire);
        if let Some(entry) = self.entries.get_mut(slot) {
            entry.users = entry.users.saturating_sub(1);
            entry.expires_at = expires_at;
        }
        self.touch(slot);
    }

    /// Makes room for one entry: the least recently used entry goes, but one still in use is
    /// renewed and moved to the front instead (as IPVS re-arms a template with connections).
    /// False when every entry is in use.
    fn evict_one(&mut self, now: Instant) -> bool {
        for _ in 0..self.index.len() {
            let oldest = self.oldest;
            match self.entries.get(oldest).map(|e| e.users) {
                None => return false,
                Some(0) => return self.release(oldest).is_some(),
                Some(_) => self.rearm(oldest, now),
            }
        }
        false
    }

    fn rearm(&mut self, slot: usize, now: Instant) {
        let expires_at = now.checked_add(self.expire);
        if let Some(entry) = self.entries.get_mut(slot) {
            entry.expires_at = expires_at;
        }
        self.touch(slot);
    }

    /// Forgets `key`; returns its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let slot = *self.index.get(key)?;
        self.release(slot)
    }

    /// Removes entries expired at `now`; returns how many.
    pub fn purge_expired(&mut self, now: Instant) -> usize {
        let mut purged = 0;
        for _ in 0..self.index.len() {
            let oldest = self.oldest;
            if oldest == NIL || !self.entries.get(oldest).is_some_and(|e| expired(e, now)) {
                break;
            }
            if self.entries.get(oldest).is_some_and(|e| e.users > 0) {
                self.rearm(oldest, now);
                continue;
            }
            if self.release(oldest).is_none() {
                break;
            }
            purged += 1;
        }
        purged
    }

    /// The value of `key` to change in place, neither refreshed nor moved (None: absent or
    /// expired).
    pub fn peek_mut(&mut self, key: &K, now: Instant) -> Option<&mut V> {
        let slot = *self.index.get(key)?;
        let entry = self.entries.get_mut(slot)?;
        (entry.users > 0 || !expired(entry, now)).then_some(&mut entry.value)
    }

    /// Sets when `key`'s entry expires (an entry learned from elsewhere brings its own
    /// remaining time). Its place in the recency list is kept.
    pub fn set_expiry(&mut self, key: &K, at: Option<Instant>) {
        if let Some(entry) = self.index.get(key).and_then(|&slot| self.entries.get_mut(slot)) {
            entry.expires_at = at;
        }
    }

    /// Up to `n` live entries from storage place `from` on (key, value, expiry), and the place
    /// to go on from (None: the end). Places are stable while entries live: a walk in steps
    /// sees every entry that stays, whatever else comes and goes.
    pub fn walk(&self, from: usize, n: usize, now: Instant) -> (Vec<Walked<K, V>>, Option<usize>) {
        let mut out = Vec::new();
        let mut at = from;
        while at < self.entries.len() {
            if out.len() >= n {
                return (out, Some(at));
            }
            let e = &self.entries[at];
            if let Some(key) = &e.key {
                if e.users > 0 || !expired(e, now) {
                    out.push((key.clone(), e.value.clone(), e.expires_at));
                }
            }
            at += 1;
        }
        (out, None)
    }

    /// Entries from most to least recently used: key, server, expiry (`None`: never).
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V, Option<Instant>)> + '_ {
        let mut slot = self.newest;
        std::iter::from_fn(move || {
            let entry = self.entries.get(slot)?;
            slot = entry.older;
            Some((entry.key.as_ref()?, &entry.value, entry.expires_at))
        })
    }

    fn is_expired(&self, slot: usize, now: Instant) -> bool {
        self.entries.get(slot).is_none_or(|entry| entry.users == 0 && expired(entry, now))
    }

    /// Unlinks and frees `slot`, removing its key from the index.
    fn release(&mut self, slot: usize) -> Option<V> {
        let key = self.entries.get_mut(slot)?.key.take()?;
        self.index.remove(&key);
        self.unlink(slot);
        self.free.push(slot);
        self.entries.get(slot).map(|entry| entry.value.clone())
    }

    /// Moves a linked entry to the front.
    fn touch(&mut self, slot: usize) {
        if self.newest != slot {
            self.unlink(slot);
            self.link_newest(slot);
        }
    }

    fn link_newest(&mut self, slot: usize) {
        let old_newest = self.newest;
        if let Some(entry) = self.entries.get_mut(slot) {
            entry.newer = NIL;
            entry.older = old_newest;
        }
        match self.entries.get_mut(old_newest) {
            Some(previous) => previous.newer = slot,
            None => self.oldest = slot,
        }
        self.newest = slot;
    }

    fn unlink(&mut self, slot: usize) {
        let Some(entry) = self.entries.get_mut(slot) else {
            return;
        };
        let (newer, older) = (entry.newer, entry.older);
        entry.newer = NIL;
        entry.older = NIL;
        match self.entries.get_mut(newer) {
            Some(entry) => entry.older = older,
            None => self.newest = older,
        }
        match self.entries.get_mut(older) {
            Some(entry) => entry.newer = newer,
            None => self.oldest = newer,
        }
    }
}

impl<K: Eq + Hash + Clone> Table<K, ServerId> {
    /// Forgets every entry pointing to `server` (server deleted, or IPVS quiescent template
    /// expiry); returns how many were removed.
    pub fn remove_server(&mut self, server: ServerId) -> usize {
        let mut removed = 0;
        let mut slot = self.oldest;
        while let Some(entry) = self.entries.get(slot) {
            let (newer, matches) = (entry.newer, entry.value == server);
            if matches && self.release(slot).is_some() {
                removed += 1;
            }
            slot = newer;
        }
        removed
    }
}

fn expired<K, V>(entry: &Entry<K, V>, now: Instant) -> bool {
    entry.expires_at.is_some_and(|expires_at| now >= expires_at)
}

/// Keeps the first `prefix_v4` (IPv4) or `prefix_v6` (IPv6) bits of `addr` and zeroes the rest,
/// as IPVS does with a persistence netmask (`-M 255.255.255.0` is prefix 24) so that clients of
/// one subnet share a template. Prefixes beyond the address length keep the whole address.
pub fn mask_ip(addr: IpAddr, prefix_v4: u8, prefix_v6: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let keep = u32::from(prefix_v4.min(32));
            let mask = u32::MAX.checked_shl(32 - keep).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let keep = u32::from(prefix_v6.min(128));
            let mask = u128::MAX.checked_shl(128 - keep).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn secs(start: Instant, seconds: u64) -> Instant {
        start + Duration::from_secs(seconds)
    }

    /// The list, walked both ways, agrees with the index.
    fn assert_consistent<K: Eq + Hash + Clone>(table: &PersistTable<K>) {
        let forward: Vec<usize> = {
            let mut out = Vec::new();
            let mut slot = table.newest;
            while let Some(entry) = table.entries.get(slot) {
                out.push(slot);
                slot = entry.older;
            }
            out
        };
        let mut backward: Vec<usize> = Vec::new();
        let mut slot = table.oldest;
        while let Some(entry) = table.entries.get(slot) {
            backward.push(slot);
            slot = entry.newer;
        }
        backward.reverse();
        assert_eq!(forward, backward);
        assert_eq!(forward.len(), table.len());
        assert!(table.len() <= table.capacity);
    }

    #[test]
    fn entry_expires_after_expire() {
        let t0 = Instant::now();
        let mut table = PersistTable::new(10, HOUR);
        table.insert("10.0.0.1", 2, t0);
        assert_eq!(table.get(&"10.0.0.1", secs(t0, 3599)), Some(2));
        assert_eq!(table.peek(&"10.0.0.1", secs(t0, 3599 + 3599)), Some(2));
        assert_eq!(table.get(&"10.0.0.1", secs(t0, 3599 + 3600)), None);
        assert_eq!(table.len(), 0, "an expired hit removes the entry");
        assert_eq!(table.get(&"never", t0), None);
        assert_consistent(&table);
    }

    #[test]
    fn a_held_entry_outlives_its_expiry() {
        let t0 = Instant::now();
        let mut table = PersistTable::new(1, Duration::from_secs(10));
        table.insert(1u32, 7, t0);
        assert!(table.hold_existing(&1));
        assert!(!table.hold_existing(&2));
        assert_eq!(table.peek(&1, secs(t0, 100)), Some(7), "held: not expired");
        table.insert(2u32, 8, secs(t0, 100));
        assert_eq!(table.peek(&1, secs(t0, 100)), Some(7), "held: not evicted by a newcomer");
        table.unhold(&1, secs(t0, 100));
        assert_eq!(table.peek(&1, secs(t0, 109)), Some(7));
        assert_eq!(table.peek(&1, secs(t0, 111)), None, "expires after its release");
        assert_consistent(&table);
    }

    #[test]
    fn use_refreshes_expiry() {
        let t0 = Instant::now();
        let mut table = PersistTable::new(10, Duration::from_secs(100));
        table.insert(1u32, 7, t0);
        table.insert(2u32, 8, t0);
        // Key 1 is used at 90 s; key 2 is not.
        assert_eq!(table.get(&1, secs(t0, 90)), Some(7));
        assert_eq!(table.get(&2, secs(t0, 150)), None);
        assert_eq!(table.get(&1, secs(t0, 150)), Some(7));
        assert_eq!(table.peek(&1, secs(t0, 249)), Some(7));
        assert_eq!(table.peek(&1, secs(t0, 250)), None);
        // Re-inserting moves an existing key to a new server and refreshes it.
        table.insert(1, 9, secs(t0, 240));
        assert_eq!(table.get(&1, secs(t0, 330)), Some(9));
        assert_eq!(table.len(), 1);
        assert_consistent(&table);
    }

    #[test]
    fn full_table_evicts_least_recently_used() {
        let t0 = Instant::now();
        let mut table = PersistTable::new(2, HOUR);
        table.insert('a', 0, t0);
        table.insert('b', 1, secs(t0, 1));
        table.insert('c', 2, secs(t0, 2));
        assert_eq!(table.len(), 2);
        assert_eq!(table.get(&'a', secs(t0, 3)), None);
        // Using b makes c the least recently used.
        assert_eq!(table.get(&'b', secs(t0, 4)), Some(1));
        table.insert('d', 3, secs(t0, 5));
        assert_eq!(table.get(&'c', secs(t0, 6)), None);
        assert_eq!(table.get(&'b', secs(t0, 6)), Some(1));
        assert_eq!(table.get(&'d', secs(t0, 6)), Some(3));
        // Freed slots are reused: no growth past capacity.
        assert_eq!(table.entries.len(), 2);
        assert_consistent(&table);
    }

    #[test]
    fn many_inserts_stay_bounded_and_consistent() {
        let t0 = Instant::now();
        let mut table = PersistTable::new(100, Duration::from_secs(50));
        for i in 0..10_000u64 {
            let now = secs(t0, i / 10);
            table.insert(i % 257, (i % 5) as usize, now);
            if i % 3 == 0 {
                table.get(&(i % 101), now);
            }
            if i % 1000 == 0 {
                table.purge_expired(now);
                assert_consistent(&table);
            }
        }
        assert!(table.len() <= 100);
        assert!(table.entries.len() <= 100);
        assert_consistent(&table);
    }

    #[test]
    fn remove_server_forgets_only_its_entries() {
        let t0 = Instant::now();
        let mut table = PersistTable::new(10, HOUR);
        for key in 0..6u8 {
            table.insert(key, usize::from(key % 3), t0);
        }
        assert_eq!(table.remove_server(1), 2);
        assert_eq!(table.len(), 4);
        assert_eq!(table.get(&1, t0), None);
        assert_eq!(table.get(&4, t0), None);
        assert_eq!(table.get(&3, t0), Some(0));
        assert_eq!(table.get(&5, t0), Some(2));
        assert_eq!(table.remove_server(1), 0);
        assert_eq!(table.remove(&3), Some(0));
        assert_eq!(table.remove(&3), None);
        assert_consistent(&table);
        let order: Vec<u8> = table.iter().map(|(key, _, _)| *key).collect();
        assert_eq!(order, vec![5, 2, 0]);
    }

    #[test]
    fn purge_removes_only_expired_entries() {
        let t0 = Instant::now();
        let mut table = PersistTable::new(10, Duration::from_secs(10));
        table.insert("old", 0, t0);
        table.insert("mid", 1, secs(t0, 5));
        table.insert("new", 2, secs(t0, 9));
        assert_eq!(table.purge_expired(secs(t0, 9)), 0);
        assert_eq!(table.purge_expired(secs(t0, 15)), 2);
        assert_eq!(table.len(), 1);
        assert_eq!(table.get(&"new", secs(t0, 15)), Some(2));
        assert_eq!(table.purge_expired(secs(t0, 100)), 1);
        assert!(table.is_empty());
        assert_consistent(&table);
    }

    #[test]
    fn degenerate_settings_do_not_panic() {
        let t0 = Instant::now();
        let mut nothing = PersistTable::new(0, HOUR);
        nothing.insert(1, 1, t0);
        assert_eq!(nothing.get(&1, t0), None);
        assert!(nothing.is_empty());

        let mut forever = PersistTable::new(usize::MAX, Duration::MAX);
        forever.insert(1, 1, t0);
        assert_eq!(forever.get(&1, secs(t0, 1 << 40)), Some(1));
        assert_eq!(forever.purge_expired(secs(t0, 1 << 40)), 0);
        assert_eq!(forever.iter().next(), Some((&1, &1, None)));

        let mut instant = PersistTable::new(4, Duration::ZERO);
        instant.insert(1, 1, t0);
        assert_eq!(instant.get(&1, t0), None);
    }

    #[test]
    fn held_entries_live_until_their_last_connection_ends_then_expire() {
        let t0 = Instant::now();
        let mut table = PersistTable::new(10, Duration::from_secs(10));
        assert!(table.hold("client", 1, t0));
        assert!(table.hold("client", 1, t0));
        // Long past `expire`: still held by two connections.
        assert_eq!(table.get(&"client", secs(t0, 100)), Some(1));
        assert_eq!(table.purge_expired(secs(t0, 200)), 0);
        table.unhold(&"client", secs(t0, 300));
        assert_eq!(table.get(&"client", secs(t0, 400)), Some(1), "one connection still open");
        table.unhold(&"client", secs(t0, 500));
        assert_eq!(table.get(&"client", secs(t0, 509)), Some(1));
        assert_eq!(table.peek(&"client", secs(t0, 519)), None, "expires 10 s after the last use");
        assert_eq!(table.purge_expired(secs(t0, 520)), 1);
        assert_consistent(&table);
    }

    #[test]
    fn a_full_table_keeps_entries_in_use() {
        let t0 = Instant::now();
        let mut table = PersistTable::new(2, Duration::from_secs(10));
        assert!(table.hold('a', 0, t0));
        table.insert('b', 1, secs(t0, 1));
        // c evicts b (not in use), although a is older.
        table.insert('c', 2, secs(t0, 2));
        assert_eq!(table.peek(&'a', secs(t0, 3)), Some(0));
        assert_eq!(table.peek(&'b', secs(t0, 3)), None);
        assert!(table.hold('c', 2, secs(t0, 3)));
        // Everything in use: a new key is not remembered, nothing is lost.
        assert!(!table.hold('d', 3, secs(t0, 4)));
        assert_eq!(table.len(), 2);
        assert_consistent(&table);
    }

    #[test]
    fn mask_ip_applies_prefixes() {
        let v4: IpAddr = "192.168.17.201".parse().expect("valid literal");
        assert_eq!(mask_ip(v4, 24, 64), "192.168.17.0".parse::<IpAddr>().expect("valid"));
        assert_eq!(mask_ip(v4, 20, 64), "192.168.16.0".parse::<IpAddr>().expect("valid"));
        assert_eq!(mask_ip(v4, 32, 64), v4);
        assert_eq!(mask_ip(v4, 200, 0), v4);
        assert_eq!(mask_ip(v4, 0, 128), "0.0.0.0".parse::<IpAddr>().expect("valid"));

        let v6: IpAddr = "2001:db8:aa:bb:1:2:3:4".parse().expect("valid literal");
        assert_eq!(mask_ip(v6, 24, 64), "2001:db8:aa:bb::".parse::<IpAddr>().expect("valid"));
        assert_eq!(mask_ip(v6, 24, 36), "2001:db8::".parse::<IpAddr>().expect("valid"));
        assert_eq!(mask_ip(v6, 0, 128), v6);
        assert_eq!(mask_ip(v6, 0, 255), v6);
        assert_eq!(mask_ip(v6, 32, 0), "::".parse::<IpAddr>().expect("valid"));
    }
}
