//! Session resumption state that outlives a configuration: each bind keeps its session cache
//! and its ticket keys (rotated by rustls every six hours) across reloads, so that clients
//! resume after a SIGHUP as before it. Keyed by the bind's addresses and what a resumed
//! session skips (the client-certificate requirement), so that a session made where no
//! certificate was asked for never resumes where one is required.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use fulcrum_model::TlsBind;
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};

#[derive(Clone)]
pub(crate) struct Kept {
    pub cache: Arc<dyn StoresServerSessions>,
    pub ticketer: Arc<dyn ProducesTickets>,
}

fn registry() -> &'static Mutex<HashMap<String, (usize, Kept)>> {
    static KEPT: OnceLock<Mutex<HashMap<String, (usize, Kept)>>> = OnceLock::new();
    KEPT.get_or_init(Default::default)
}

/// The session state of a bind: kept from an earlier configuration when there is one (a new
/// cache when `tune.ssl.cachesize` changed; the ticket keys stay). `keep`: false for a
/// configuration only checked, never served (`fulcrum check`), which must not disturb the
/// running one's state.
pub(crate) fn for_bind(bind: &TlsBind, cache_size: usize, keep: bool) -> Kept {
    // What a resumed session skips is the client certificate's check: a session made under
    // other CAs or another revocation list (changed files included) must not resume.
    let contents = |path: &Option<std::path::PathBuf>| {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        path.as_ref().and_then(|p| std::fs::read(p).ok()).hash(&mut h);
        h.finish()
    };
    let key = format!(
        "{:?} {:?} {:?} {:x} {:?} {:x}",
        bind.addrs,
        bind.verify,
        bind.ca_file,
        contents(&bind.ca_file),
        bind.crl_file,
        contents(&bind.crl_file)
    );
    let cache = || -> Arc<dyn StoresServerSessions> {
        match cache_size {
            // `tune.ssl.cachesize 0`: no resumption by session ID.
            0 => Arc::new(rustls::server::NoServerSessionStorage {}),
            n => ServerSessionMemoryCache::new(n),
        }
    };
    let ticketer = || rustls::crypto::ring::Ticketer::new().unwrap_or_else(|_| Arc::new(NoTickets));
    if !keep {
        return Kept { cache: cache(), ticketer: ticketer() };
    }
    let Ok(mut map) = registry().lock() else { return Kept { cache: cache(), ticketer: ticketer() } };
    let kept = match map.get(&key) {
        Some((size, kept)) if *size == cache_size => kept.clone(),
        Some((_, kept)) => Kept { cache: cache(), ticketer: Arc::clone(&kept.ticketer) },
        None => Kept { cache: cache(), ticketer: ticketer() },
    };
    map.insert(key, (cache_size, kept.clone()));
    kept
}

/// Tickets off (the system's random source failed when the keys were made).
#[derive(Debug)]
struct NoTickets;

impl ProducesTickets for NoTickets {
    fn enabled(&self) -> bool {
        false
    }
    fn lifetime(&self) -> u32 {
        0
    }
    fn encrypt(&self, _plain: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn decrypt(&self, _cipher: &[u8]) -> Option<Vec<u8>> {
        None
    }
}
