//! Choosing a server for a request (or, later, a TCP connection): the backend's scheduler
//! under `maxconn`, persistence's preferred server, the queue when every eligible server is
//! full, and the slot that is held while the server works.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use fulcrum_balance::{Flow, Load, ServerId};

use crate::error::{Failure, ProxyError, Stage};
use crate::live::{lock, Templates};
use crate::snapshot::{BackendRt, ServerRt};

pub(crate) enum Pick {
    Server(ServerId),
    /// Eligible servers exist but all are at `maxconn`: queue.
    Full,
    NoServer,
}

/// The server persistence points at; `forced`: even when it is down (`option persist`,
/// `force-persist`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Persist {
    pub id: ServerId,
    pub forced: bool,
}

impl From<ServerId> for Persist {
    fn from(id: ServerId) -> Persist {
        Persist { id, forced: false }
    }
}

/// Chooses a server and reserves a connection slot on it. `tried`: servers not to pick again;
/// `preferred`: the server persistence points at.
pub(crate) fn pick_server(
    backend: &BackendRt,
    key: Option<&[u8]>,
    flow: &Flow,
    tried: &[ServerId],
    preferred: Option<Persist>,
) -> Pick {
    // Persistence's server, if it may serve now (with keepalived's quorum lost, only the
    // sorry server serves).
    let serving = |id: ServerId| backend.cfg.quorum.is_none() || backend.serving().contains(&id);
    let may = |p: &Persist| !tried.contains(&p.id) && (p.forced || backend.usable(p.id) && serving(p.id));
    if let Some(id) = preferred.filter(may).map(|p| p.id).filter(|id| *id < backend.servers.len()) {
        if backend.servers[id].try_reserve() {
            return Pick::Server(id);
        }
    }
    let full = std::cell::Cell::new(false);
    for _ in 0..4 {
        let load = |id: ServerId| -> Option<Load> {
            let s = backend.servers.get(id)?;
            if tried.contains(&id) {
                return None;
            }
            let load = s.live.load();
            if s.cfg.maxconn > 0 && load.active + load.inactive >= s.cfg.maxconn {
                full.set(true);
                return None;
            }
            Some(load)
        };
        let picked = lock(&backend.scheduler).pick_flow(key, flow, &load);
        match picked {
            Some(id) => {
                if backend.servers[id].try_reserve() {
                    return Pick::Server(id);
                }
                full.set(true);
            }
            None => break,
        }
    }
    if full.get() {
        Pick::Full
    } else {
        Pick::NoServer
    }
}

/// The server of the next attempt, with a slot reserved: `again` (a retry goes back to it)
/// when it has a free slot, else the scheduler's pick (`preferred`, persistence's server,
/// first); waiting in the backend's queue until `deadline` (`timeout queue`) when every
/// eligible server is full. Requests and `mode tcp` connections both come here.
pub(crate) async fn choose(
    backend: &BackendRt,
    again: Option<ServerId>,
    key: Option<&[u8]>,
    flow: &Flow,
    tried: &[ServerId],
    mut preferred: Option<Persist>,
    deadline: Instant,
) -> Result<ServerId, ProxyError> {
    if let Some(id) = again.filter(|id| reserve(backend, *id)) {
        return Ok(id);
    }
    loop {
        match pick_server(backend, key, flow, tried, preferred.take()) {
            Pick::Server(id) => return Ok(id),
            Pick::NoServer => return Err(ProxyError::new(Failure::NoServer, Stage::Connect)),
            Pick::Full => {
                if !wait_in_queue(backend, deadline).await {
                    return Err(ProxyError::new(Failure::QueueTimeout, Stage::Queue));
                }
            }
        }
    }
}

/// Reserves a slot on one given server (a retry going back to it), if it has one free.
pub(crate) fn reserve(backend: &BackendRt, id: ServerId) -> bool {
    backend.servers.get(id).is_some_and(ServerRt::try_reserve)
}

/// Waits for a slot until the `timeout queue` deadline. False when the queue is full or time is up.
pub(crate) async fn wait_in_queue(backend: &BackendRt, deadline: Instant) -> bool {
    if backend.max_queue > 0 && backend.queued() >= backend.max_queue {
        return false;
    }
    backend.queued.fetch_add(1, Ordering::Relaxed);
    let woke = tokio::time::timeout_at(deadline.into(), backend.slot_freed.notified()).await.is_ok();
    backend.queued.fetch_sub(1, Ordering::Relaxed);
    woke
}

/// Gives a server's connection slot back and wakes a queued request. The wake-up is left even
/// when nobody waits yet (a lock-free store): a request between seeing every server full and
/// starting to wait would otherwise sleep through this free slot until `timeout queue`.
pub(crate) fn release(backend: &BackendRt, id: ServerId) {
    if let Some(s) = backend.servers.get(id) {
        s.live.release(s.thresholds);
        backend.slot_freed.notify_one();
    }
}

/// A reserved slot, given back when dropped (however the request ends).
pub(crate) struct Slot {
    backend: Arc<BackendRt>,
    pub id: ServerId,
}

impl Slot {
    pub(crate) fn new(backend: &Arc<BackendRt>, id: ServerId) -> Slot {
        Slot { backend: backend.clone(), id }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        release(&self.backend, self.id);
    }
}

/// IPVS persistence for one client: its backend's template table and the client's address
/// masked as the backend says. `mode tcp` connections and UDP flows both use it.
#[derive(Clone)]
pub(crate) struct Template {
    table: Arc<Templates>,
    key: std::net::IpAddr,
}

impl Template {
    /// The client's template, when the backend is persistent.
    pub(crate) fn of(backend: &BackendRt, client: std::net::IpAddr) -> Option<Template> {
        let (p, table) = backend.cfg.persistence.zip(backend.persist.as_ref())?;
        Some(Template { table: table.clone(), key: fulcrum_balance::mask_ip(client, p.prefix_v4, p.prefix_v6) })
    }

    /// The server the template points at (its use refreshes it).
    pub(crate) fn server(&self, now: Instant) -> Option<ServerId> {
        lock(&self.table).get(&self.key, now)
    }

    /// Points the template at a chosen server at once, as IPVS creates it when it schedules:
    /// the client's parallel connections follow it.
    pub(crate) fn point(&self, id: ServerId) {
        lock(&self.table).insert(self.key, id, Instant::now());
    }

    /// Holds the template for a connection (or flow) on `id` until the guard is dropped.
    pub(crate) fn hold(self, id: ServerId) -> Held {
        let held = lock(&self.table).hold(self.key, id, Instant::now());
        Held { template: self, held }
    }
}

/// A template held by a connection: released when it drops (however the connection ends), if
/// it was taken.
pub(crate) struct Held {
    template: Template,
    held: bool,
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.held {
            lock(&self.template.table).unhold(&self.template.key, Instant::now());
        }
    }
}
