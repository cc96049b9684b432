//! Live per-server state: health, connection counts, counters. Kept outside the snapshot and
//! keyed by identity (backend name, server name), so a reload keeps it.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use fulcrum_health::HealthMachine;

#[derive(Debug)]
pub struct ServerLive {
    pub backend: String,
    pub name: String,
    pub addr: Mutex<SocketAddr>,
    up: AtomicBool,
    pub active: AtomicU32,
    pub total: AtomicU64,
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
            total: AtomicU64::new(0),
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

    /// Reserve a connection slot under `maxconn` (0 = unlimited).
    pub fn try_reserve(&self, maxconn: u32) -> bool {
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |a| (maxconn == 0 || a < maxconn).then_some(a + 1))
            .is_ok()
    }

    /// The outcome of the last check, as the stats page shows it.
    pub fn last_check_reason(&self, reason: &str) {
        let mut last = lock(&self.last_check);
        last.clear();
        last.push_str(reason);
    }

    pub fn release(&self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Lock a mutex, recovering the data if a panicking thread poisoned it: the state kept here
/// (counters, health) stays meaningful after a panic elsewhere.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// All live server states, across reloads.
#[derive(Debug, Default)]
pub struct LiveRegistry {
    servers: Mutex<HashMap<(String, String), Arc<ServerLive>>>,
}

impl LiveRegistry {
    /// The live state for a server, created on first sight. A server whose address changed
    /// keeps its counters but starts its health over.
    pub fn server(&self, backend: &str, name: &str, addr: SocketAddr, rise: u32, fall: u32) -> Arc<ServerLive> {
        let mut map = lock(&self.servers);
        let key = (backend.to_string(), name.to_string());
        let live = map.entry(key).or_insert_with(|| Arc::new(ServerLive::new(backend, name, addr, rise, fall))).clone();
        let mut current = lock(&live.addr);
        if *current != addr {
            *current = addr;
            *lock(&live.machine) = HealthMachine::new(rise, fall);
            live.set_up(true);
        }
        drop(current);
        live
    }

    /// Forget servers that the new configuration no longer has.
    pub fn retain(&self, keep: &dyn Fn(&str, &str) -> bool) {
        lock(&self.servers).retain(|(b, s), _| keep(b, s));
    }
}
