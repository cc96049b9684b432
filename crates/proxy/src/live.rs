//! Live per-server state: health, connection counts, counters. Kept outside the snapshot and
//! keyed by identity (backend name, server name), so a reload keeps it.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use fulcrum_balance::{Load, Thresholds};
use fulcrum_health::HealthMachine;

/// "No run-time weight" in [`ServerLive::dynamic_weight`].
const NO_WEIGHT: u32 = u32::MAX;

#[derive(Debug)]
pub struct ServerLive {
    pub backend: String,
    pub name: String,
    pub addr: Mutex<SocketAddr>,
    up: AtomicBool,
    /// Connections or requests holding a slot on the server (HAProxy's current sessions).
    pub active: AtomicU32,
    /// Of those, TCP connections one side of which has closed (IPVS's "inactive" ones).
    pub inactive: AtomicU32,
    /// At the IPVS upper threshold: no new connections until below the lower one.
    overloaded: AtomicBool,
    /// A weight set at run time (keepalived `misc_dynamic`); `NO_WEIGHT`: the configured one.
    dynamic_weight: AtomicU32,
    pub total: AtomicU64,
    /// Traffic relayed to and from the server (`mode tcp` and UDP): bytes, and packets as
    /// the proxy sees them (reads from the client, reads from the server; datagrams for UDP).
    pub traffic: Traffic,
    /// Rate estimates of `total` and `traffic` (see [`Rates`]).
    pub rates: Mutex<Rates>,
    pub connect_errors: AtomicU64,
    pub response_errors: AtomicU64,
    pub retries: AtomicU64,
    pub redispatches: AtomicU64,
    /// Consecutive errors seen by passive observation (`observe`).
    pub consecutive_errors: AtomicU32,
    pub machine: Mutex<HealthMachine>,
    /// When the server last came up, for `slowstart`.
    pub up_since: Mutex<Option<Instant>>,
    pub last_check: Mutex<String>,
}

impl ServerLive {
    fn new(backend: &str, name: &str, addr: SocketAddr, rise: u32, fall: u32) -> Self {
        ServerLive {
            backend: backend.to_string(),
            name: name.to_string(),
            addr: Mutex::new(addr),
            up: AtomicBool::new(true),
            active: AtomicU32::new(0),
            inactive: AtomicU32::new(0),
            overloaded: AtomicBool::new(false),
            dynamic_weight: AtomicU32::new(NO_WEIGHT),
            total: AtomicU64::new(0),
            traffic: Traffic::default(),
            rates: Mutex::new(Rates::default()),
            connect_errors: AtomicU64::new(0),
            response_errors: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            redispatches: AtomicU64::new(0),
            consecutive_errors: AtomicU32::new(0),
            machine: Mutex::new(HealthMachine::new(rise, fall)),
            up_since: Mutex::new(None),
            last_check: Mutex::new(String::new()),
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
        *lock(&self.up_since) = if up { Some(Instant::now()) } else { None };
    }

    /// Reserve a connection slot under `maxconn` (0 = unlimited); the IPVS thresholds see the
    /// new connection.
    pub fn try_reserve(&self, maxconn: u32, thresholds: Thresholds) -> bool {
        let reserved = self
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |a| (maxconn == 0 || a < maxconn).then_some(a + 1));
        match reserved {
            Ok(before) if thresholds.upper != 0 => {
                let was = self.overloaded.load(Ordering::Relaxed);
                self.overloaded.store(thresholds.after_add(was, before + 1), Ordering::Relaxed);
                true
            }
            Ok(_) => true,
            Err(_) => false,
        }
    }

    /// The counters a scheduler reads: connections open both ways, half-closed ones, overload.
    pub fn load(&self) -> Load {
        let active = self.active.load(Ordering::Relaxed);
        let inactive = self.inactive.load(Ordering::Relaxed).min(active);
        Load { active: active - inactive, inactive, overloaded: self.overloaded.load(Ordering::Relaxed) }
    }

    /// The weight `misc_dynamic` set, if any.
    pub fn dynamic_weight(&self) -> Option<u32> {
        Some(self.dynamic_weight.load(Ordering::Relaxed)).filter(|w| *w != NO_WEIGHT)
    }

    /// Sets (or, with None, clears) the run-time weight; true when it changed.
    pub fn set_dynamic_weight(&self, weight: Option<u32>) -> bool {
        let new = weight.map_or(NO_WEIGHT, |w| w.min(NO_WEIGHT - 1));
        self.dynamic_weight.swap(new, Ordering::Relaxed) != new
    }

    /// The outcome of the last check, as the stats page shows it.
    pub fn last_check_reason(&self, reason: &str) {
        let mut last = lock(&self.last_check);
        last.clear();
        last.push_str(reason);
    }

    pub fn release(&self, thresholds: Thresholds) {
        let before = self.active.fetch_sub(1, Ordering::AcqRel);
        if self.overloaded.load(Ordering::Relaxed) {
            let total = before.saturating_sub(1);
            self.overloaded.store(thresholds.after_remove(true, total), Ordering::Relaxed);
        }
    }
}

/// Bytes and packets through a server, both ways ("in": from clients, "out": to them, as
/// ipvsadm counts).
#[derive(Debug, Default)]
pub struct Traffic {
    pub in_packets: AtomicU64,
    pub out_packets: AtomicU64,
    pub in_bytes: AtomicU64,
    pub out_bytes: AtomicU64,
}

impl Traffic {
    /// One read of `bytes` from the client (`inbound`) or from the server.
    pub fn add(&self, inbound: bool, bytes: usize) {
        let (packets, total) =
            if inbound { (&self.in_packets, &self.in_bytes) } else { (&self.out_packets, &self.out_bytes) };
        packets.fetch_add(1, Ordering::Relaxed);
        total.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// Rate estimates as IPVS keeps them: every 2 s, the increase of each counter is folded into
/// an average that moves a quarter of the way toward it (values kept scaled: connections and
/// packets per second × 2^10, bytes × 2^5). `ipvsadm --rate` shows them.
#[derive(Debug, Default, Clone, Copy)]
pub struct Rates {
    last: [u64; 5],
    scaled: [i64; 5],
}

impl Rates {
    /// One 2-second sample: connections, in packets, out packets, in bytes, out bytes.
    pub fn sample(&mut self, now: [u64; 5]) {
        for (i, (&n, last)) in now.iter().zip(self.last.iter_mut()).enumerate() {
            let shift = if i < 3 { 9 } else { 4 };
            let rate = i64::try_from(n.saturating_sub(*last)).unwrap_or(i64::MAX >> 10) << shift;
            if let Some(avg) = self.scaled.get_mut(i) {
                *avg += (rate - *avg) >> 2;
            }
            *last = n;
        }
    }

    /// Per second: connections, in packets, out packets, in bytes, out bytes.
    pub fn per_second(&self) -> [u64; 5] {
        let mut out = [0u64; 5];
        for (i, (o, avg)) in out.iter_mut().zip(self.scaled).enumerate() {
            let (round, shift) = if i < 3 { (0x1ff, 10) } else { (0xf, 5) };
            *o = u64::try_from((avg + round) >> shift).unwrap_or(0);
        }
        out
    }
}

impl ServerLive {
    /// The counters as `ipvsadm --stats` reads them: connections, in/out packets, in/out bytes.
    pub fn counters(&self) -> [u64; 5] {
        let t = &self.traffic;
        [
            self.total.load(Ordering::Relaxed),
            t.in_packets.load(Ordering::Relaxed),
            t.out_packets.load(Ordering::Relaxed),
            t.in_bytes.load(Ordering::Relaxed),
            t.out_bytes.load(Ordering::Relaxed),
        ]
    }

    /// `ipvsadm -Z`: counters and rates back to zero.
    pub fn zero(&self) {
        self.total.store(0, Ordering::Relaxed);
        let t = &self.traffic;
        for c in [&t.in_packets, &t.out_packets, &t.in_bytes, &t.out_bytes] {
            c.store(0, Ordering::Relaxed);
        }
        *lock(&self.rates) = Rates::default();
    }
}

/// Lock a mutex, recovering the data if a panicking thread poisoned it: the state kept here
/// (counters, health) stays meaningful after a panic elsewhere.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// IPVS persistence templates of one backend.
pub type Templates = Mutex<fulcrum_balance::PersistTable<std::net::IpAddr>>;

/// A stick table's key, as its type makes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TableKey {
    Ip(std::net::IpAddr),
    Int(i64),
    Str(Box<[u8]>),
}

/// A stick table: keys stuck to servers (`stick` rules) and counters (`store ...`, fed by
/// `track-sc*` rules); kept across reloads while its proxy keeps the same table. A table
/// shared with a peers section logs its local changes for the peers to push.
#[derive(Debug)]
pub struct LiveTable {
    pub cfg: fulcrum_model::StickTable,
    /// Where each stored value sits in an entry.
    pub layout: fulcrum_balance::counters::Layout,
    pub(crate) entries: Mutex<Entries>,
    /// The table's name among peers: its proxy's, or `/NAME` for a peers section's own.
    pub(crate) wire_name: String,
    /// Woken on each local change of a shared table (its peers section's, shared by its
    /// tables).
    pub(crate) changed: Arc<tokio::sync::Notify>,
    /// The servers its entries name, by number (for peers, which also send names).
    pub(crate) names: Mutex<Vec<(u32, Arc<str>)>>,
}

/// A table's entries, and (when shared with peers) its local changes by number.
#[derive(Debug)]
pub(crate) struct Entries {
    pub map: fulcrum_balance::Table<TableKey, Counters>,
    pub log: std::collections::BTreeMap<u64, TableKey>,
    pub last: u64,
}

use fulcrum_balance::counters::Counters;

impl Entries {
    /// Notes a local change of `key` (already in the map): it gets the next number.
    fn logged(&mut self, key: &TableKey, now: std::time::Instant) {
        let Some(entry) = self.map.peek_mut(key, now) else { return };
        self.last += 1;
        let previous = std::mem::replace(&mut entry.update, self.last);
        self.log.remove(&previous);
        self.log.insert(self.last, key.clone());
        // Keys evicted or expired since they changed: forgotten now and then.
        if self.log.len() > 2 * self.map.len() + 1024 {
            let map = &self.map;
            self.log.retain(|id, k| map.peek_ref(k, now).is_some_and(|c| c.update == *id));
        }
    }
}

impl LiveTable {
    fn new(name: &str, cfg: &fulcrum_model::StickTable, changed: Arc<tokio::sync::Notify>) -> LiveTable {
        let entries =
            Entries { map: fulcrum_balance::Table::new(cfg.size, cfg.expire), log: Default::default(), last: 0 };
        LiveTable {
            cfg: cfg.clone(),
            layout: fulcrum_balance::counters::Layout::new(&cfg.store),
            entries: Mutex::new(entries),
            wire_name: match name.split_once('/') {
                Some((_, table)) => format!("/{table}"),
                None => name.to_string(),
            },
            changed,
            names: Mutex::new(Vec::new()),
        }
    }

    /// Whether the table keeps this kind of data.
    pub fn stores(&self, what: fulcrum_model::TableData) -> bool {
        self.layout.stores(what)
    }

    fn shared(&self) -> bool {
        self.cfg.peers.is_some()
    }

    /// Changes `key`'s entry (made when absent, refreshed), a local change its peers hear of.
    /// None when nothing can be stored.
    pub(crate) fn change<R>(
        &self,
        key: TableKey,
        now: std::time::Instant,
        f: impl FnOnce(&mut Counters) -> R,
    ) -> Option<R> {
        let mut entries = lock(&self.entries);
        let out = f(entries.map.entry(key.clone(), now, || self.layout.blank())?);
        if self.shared() {
            entries.logged(&key, now);
            drop(entries);
            self.changed.notify_waiters();
        }
        Some(out)
    }

    /// `key`'s entry, refreshed (a use its peers hear of, as HAProxy pushes a matched entry).
    pub(crate) fn lookup(&self, key: &TableKey, now: std::time::Instant) -> Option<Counters> {
        let mut entries = lock(&self.entries);
        let found = entries.map.get(key, now)?;
        if self.shared() {
            entries.logged(key, now);
            drop(entries);
            self.changed.notify_waiters();
        }
        Some(found)
    }

    /// `key`'s entry as it is (not refreshed).
    pub(crate) fn peek(&self, key: &TableKey, now: std::time::Instant) -> Option<Counters> {
        lock(&self.entries).map.peek(key, now)
    }

    /// Changes `key`'s entry if it is there, without refreshing it (a tracked connection
    /// that ends).
    pub(crate) fn change_existing(&self, key: &TableKey, f: impl FnOnce(&mut Counters)) {
        let now = std::time::Instant::now();
        let mut entries = lock(&self.entries);
        let Some(entry) = entries.map.peek_mut(key, now) else { return };
        f(entry);
        if self.shared() {
            entries.logged(key, now);
            drop(entries);
            self.changed.notify_waiters();
        }
    }
}

/// The entries a connection or a request tracks (`track-sc0|1|2`), one per counter slot. Each
/// counts one current connection (`conn_cur`) while it is tracked: one less when this ends.
#[derive(Debug, Default)]
pub(crate) struct Tracking(pub [Option<(Arc<LiveTable>, TableKey)>; 3]);

impl Tracking {
    pub(crate) fn get(&self, slot: u8) -> Option<&(Arc<LiveTable>, TableKey)> {
        self.0.get(usize::from(slot))?.as_ref()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }

    /// Starts tracking `key` of `table` in `slot` (unless the slot tracks already, as in
    /// HAProxy): a connection more in its counters. Whether it did.
    pub(crate) fn track(
        &mut self,
        slot: u8,
        table: Arc<LiveTable>,
        key: TableKey,
        now: std::time::Instant,
        ms: u64,
    ) -> bool {
        let Some(place) = self.0.get_mut(usize::from(slot)) else { return false };
        if place.is_some() {
            return false;
        }
        let layout = &table.layout;
        if table.change(key.clone(), now, |c| c.track(layout, ms)).is_none() {
            return false;
        }
        // Held while tracked (as HAProxy counts references): the entry cannot expire or be
        // evicted under a connection that counts in it.
        if !lock(&table.entries).map.hold_existing(&key) {
            return false;
        }
        *place = Some((table, key));
        true
    }
}

impl Drop for Tracking {
    fn drop(&mut self) {
        for (table, key) in self.0.iter().flatten() {
            table.change_existing(key, |c| c.sub(&table.layout, fulcrum_model::TableData::ConnCur));
            lock(&table.entries).map.unhold(key, std::time::Instant::now());
        }
    }
}

/// A duration in milliseconds (saturating).
pub(crate) fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds of the process's clock (the rates' time base).
pub fn clock_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    ms(EPOCH.get_or_init(std::time::Instant::now).elapsed())
}

/// All live server states, across reloads.
#[derive(Debug, Default)]
pub struct LiveRegistry {
    servers: Mutex<HashMap<(String, String), Arc<ServerLive>>>,
    /// Stick tables by proxy name.
    tables: Mutex<HashMap<String, Arc<LiveTable>>>,
    /// Per peers section, what its tables wake on a local change.
    notifies: Mutex<HashMap<String, Arc<tokio::sync::Notify>>>,
    /// Persistence templates by backend: a reload (or a `fulcrum ctl` change) keeps clients
    /// where they were, as the kernel's table does.
    templates: Mutex<HashMap<String, Arc<Templates>>>,
}

impl LiveRegistry {
    /// The live state for a server, created on first sight. A server whose address changed
    /// keeps its counters but starts its health over.
    /// `start_down`: a new server starts down until its checks pass (keepalived `alpha`).
    pub fn server(
        &self,
        backend: &str,
        name: &str,
        addr: SocketAddr,
        (rise, fall): (u32, u32),
        start_down: bool,
    ) -> Arc<ServerLive> {
        let mut map = lock(&self.servers);
        let key = (backend.to_string(), name.to_string());
        let live = map
            .entry(key)
            .or_insert_with(|| {
                let live = ServerLive::new(backend, name, addr, rise, fall);
                if start_down {
                    live.up.store(false, Ordering::Relaxed);
                    *lock(&live.machine) = HealthMachine::new_down(rise, fall);
                }
                Arc::new(live)
            })
            .clone();
        let mut current = lock(&live.addr);
        if *current != addr {
            *current = addr;
            *lock(&live.machine) =
                if start_down { HealthMachine::new_down(rise, fall) } else { HealthMachine::new(rise, fall) };
            live.set_up(!start_down);
        }
        drop(current);
        live
    }

    /// Takes a rate sample of every server (every 2 s, as IPVS's estimator).
    pub fn sample_rates(&self) {
        let servers: Vec<Arc<ServerLive>> = lock(&self.servers).values().cloned().collect();
        for s in servers {
            let now = s.counters();
            lock(&s.rates).sample(now);
        }
    }

    /// The persistence templates of `backend`, kept from the last configuration.
    pub fn templates(&self, backend: &str, capacity: usize, expire: std::time::Duration) -> Arc<Templates> {
        let mut map = lock(&self.templates);
        let table = map
            .entry(backend.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(fulcrum_balance::PersistTable::new(capacity, expire))))
            .clone();
        lock(&table).set_expire(expire);
        table
    }

    /// The stick table of proxy `name`: the one kept from the last configuration when it
    /// is declared the same, a new one otherwise.
    pub fn stick_table(&self, name: &str, cfg: &fulcrum_model::StickTable) -> Arc<LiveTable> {
        let mut map = lock(&self.tables);
        match map.get(name) {
            Some(t) if t.cfg == *cfg => Arc::clone(t),
            _ => {
                let changed = match &cfg.peers {
                    Some(section) => self.peers_notify(section),
                    None => Arc::new(tokio::sync::Notify::new()),
                };
                let t = Arc::new(LiveTable::new(name, cfg, changed));
                map.insert(name.to_string(), Arc::clone(&t));
                t
            }
        }
    }

    /// What wakes the peers of section `name` when one of its tables changes here.
    pub(crate) fn peers_notify(&self, name: &str) -> Arc<tokio::sync::Notify> {
        lock(&self.notifies).entry(name.to_string()).or_default().clone()
    }

    /// Forget the stick tables of proxies that no longer declare one.
    pub fn retain_tables(&self, keep: &dyn Fn(&str) -> bool) {
        lock(&self.tables).retain(|name, _| keep(name));
    }

    /// Forget the templates of backends the new configuration no longer has (or no longer
    /// persists).
    pub fn retain_templates(&self, keep: &dyn Fn(&str) -> bool) {
        lock(&self.templates).retain(|b, _| keep(b));
    }

    /// Forget servers that the new configuration no longer has.
    pub fn retain(&self, keep: &dyn Fn(&str, &str) -> bool) {
        lock(&self.servers).retain(|(b, s), _| keep(b, s));
    }
}

/// One entry of a stick table as operators see it (`show table`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryView {
    /// The key as text: an address, a number, a string.
    pub key: String,
    /// Milliseconds before it expires (None: never).
    pub expire_ms: Option<u64>,
    pub server_id: u32,
    /// Each stored type's value now (a rate as read now), in the table's order.
    pub data: Vec<(fulcrum_model::TableData, u64)>,
}

impl TableKey {
    /// The key as `show table` prints it.
    pub fn text(&self) -> String {
        match self {
            TableKey::Ip(ip) => ip.to_string(),
            TableKey::Int(n) => n.to_string(),
            TableKey::Str(s) => String::from_utf8_lossy(s).into_owned(),
        }
    }
}

impl LiveTable {
    /// The key of this table's type that `text` is (an operator's `key K`).
    pub fn key_of(&self, text: &str) -> Option<TableKey> {
        use fulcrum_model::TableKey as K;
        Some(match self.cfg.key {
            K::Ip | K::Ipv6 => TableKey::Ip(text.parse().ok()?),
            K::Integer => TableKey::Int(text.parse().ok()?),
            K::String { len } => TableKey::Str(text.as_bytes()[..text.len().min(len)].to_vec().into_boxed_slice()),
        })
    }

    /// Entries held now (expired ones aside), most recently used first.
    pub fn len(&self) -> usize {
        lock(&self.entries).map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The servers its entries name, by number (known when `stick` rules use the table).
    pub fn server_names(&self) -> Vec<(u32, Arc<str>)> {
        lock(&self.names).clone()
    }

    /// Every live entry, most recently used first.
    pub fn entries(&self) -> Vec<EntryView> {
        self.views().into_iter().map(|(_, v)| v).collect()
    }

    /// Every live entry's key and view.
    fn views(&self) -> Vec<(TableKey, EntryView)> {
        let now = std::time::Instant::now();
        let ms = clock_ms();
        let entries = lock(&self.entries);
        entries
            .map
            .iter()
            .filter(|(_, _, at)| at.is_none_or(|at| at > now))
            .map(|(key, c, at)| {
                let view = EntryView {
                    key: key.text(),
                    expire_ms: at.map(|at| self::ms(at.saturating_duration_since(now))),
                    server_id: c.server_id,
                    data: self.cfg.store.iter().map(|s| (s.data, c.get(&self.layout, s.data, ms))).collect(),
                };
                (key.clone(), view)
            })
            .collect()
    }

    /// A rate's period (ms), for a stored rate.
    pub fn period(&self, d: fulcrum_model::TableData) -> Option<u64> {
        (d.is_rate() && self.stores(d)).then(|| self.layout.period(d))
    }

    /// Forgets one entry (`clear table T key K`); whether it was there.
    pub fn remove(&self, key: &TableKey) -> bool {
        lock(&self.entries).map.remove(key).is_some()
    }

    /// Forgets the entries `remove` picks; how many went.
    pub fn clear_where(&self, remove: &dyn Fn(&EntryView) -> bool) -> usize {
        let doomed: Vec<TableKey> = self.views().into_iter().filter(|(_, v)| remove(v)).map(|(k, _)| k).collect();
        let mut entries = lock(&self.entries);
        doomed.iter().filter(|k| entries.map.remove(k).is_some()).count()
    }

    /// Sets values of an entry, made when absent (`set table T key K data.X V`): a local
    /// change its peers hear of. `server_id` sets the server.
    pub fn set_values(&self, key: TableKey, server_id: Option<u32>, values: &[(fulcrum_model::TableData, u64)]) {
        let layout = &self.layout;
        self.change(key, std::time::Instant::now(), |c| {
            if let Some(id) = server_id {
                c.server_id = id;
            }
            for (d, v) in values {
                c.set(layout, *d, *v);
            }
        });
    }
}
