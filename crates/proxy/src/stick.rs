//! `stick` rules: a request whose key (`src`, `req.cook(JSESSIONID)`, ...) is in a stick table
//! goes to the server stored with it; keys of requests and responses are stored with the
//! server that served them. HAProxy's order: the rules in turn, the first match that finds a
//! usable server wins (unless a cookie already chose one); at most one key per table is
//! stored, the request's once a server is chosen and the response's when it comes.
use std::sync::Arc;
use std::time::Instant;

use fulcrum_balance::ServerId;
use fulcrum_model::StickKind;

use crate::live::{LiveTable, TableKey};
use crate::pick::Persist;
use crate::snapshot::{BackendRt, Facts};

/// HAProxy stores at most this many keys per transaction.
const MAX_STORES: usize = 8;

/// The keys a transaction stores with its server once it has one.
#[derive(Debug, Default)]
pub(crate) struct Pending(Vec<(Arc<LiveTable>, TableKey)>);

impl Pending {
    fn add(&mut self, table: &Arc<LiveTable>, key: TableKey) {
        if self.0.len() < MAX_STORES && !self.0.iter().any(|(t, _)| Arc::ptr_eq(t, table)) {
            self.0.push((Arc::clone(table), key));
        }
    }
}

/// The request side: the server a `stick match`/`stick on` rule finds (None when none does,
/// or `assigned`: a cookie already chose), and the keys to store once a server serves.
/// `forced` (`option persist`, `force-persist`): a server that is down is still the one.
pub(crate) fn on_request(
    backend: &BackendRt,
    facts: &Facts<'_>,
    assigned: bool,
    forced: bool,
) -> (Option<Persist>, Pending) {
    let mut found = None;
    let mut pending = Pending::default();
    if backend.sticking.is_empty() {
        return (found, pending);
    }
    let now = Instant::now();
    for rule in &backend.sticking {
        if rule.kind == StickKind::StoreResponse || !rule.applies(&backend.acls, facts) {
            continue;
        }
        let key = if rule.kind.matches() && !assigned && found.is_none() {
            let Some(key) = rule.key(facts) else { continue };
            let stored = rule.table.lookup(&key, now).map(|c| c.server_id);
            // A server that is down does not take the request: the scheduler picks another.
            found = stored
                .and_then(|id| backend.server_by_id(id))
                .filter(|id| forced || backend.usable(*id))
                .map(|id| Persist { id, forced: forced && !backend.usable(id) });
            key
        } else if rule.kind.stores_request() {
            let Some(key) = rule.key(facts) else { continue };
            key
        } else {
            continue;
        };
        if rule.kind.stores_request() {
            pending.add(&rule.table, key);
        }
    }
    (found, pending)
}

/// The response side: `stick store-response` keys read from the response (`facts.resp`), then
/// every pending key stored with server `id`.
pub(crate) fn on_response(backend: &BackendRt, id: ServerId, mut pending: Pending, facts: &Facts<'_>) {
    if backend.sticking.is_empty() {
        return;
    }
    let mut from_response = Pending::default();
    for rule in backend.sticking.iter().filter(|r| r.kind == StickKind::StoreResponse) {
        if rule.applies(&backend.acls, facts) {
            if let Some(key) = rule.key(facts) {
                from_response.add(&rule.table, key);
            }
        }
    }
    pending.0.append(&mut from_response.0);
    let Some(server_id) = backend.server_ids.get(id).copied() else { return };
    let now = Instant::now();
    for (table, key) in pending.0 {
        table.change(key, now, |entry| entry.server_id = server_id);
    }
}
