//! fulcrum's data plane: SO_REUSEPORT listeners on worker threads (`listen`), the L7 HTTP
//! request path (`l7`) on an HTTP/1 codec of its own (`h1`), server connections and their
//! pool (`upstream`), the choice of a server (`pick`) and of retries (`retry`), health-check
//! tasks, and live reload. See docs/architecture.md.
#![forbid(unsafe_code)]

mod checks;
mod drain;
pub mod error;
mod fasthash;
pub mod h1;
pub mod h2;
mod io;
pub mod l4;
mod l7;
mod listen;
mod live;
mod observe;
mod peers;
mod pick;
pub mod proxy_protocol;
pub mod retry;
mod setup_error;
mod side_io;
mod snapshot;
mod stick;
mod tunnel;
mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use fulcrum_model::Model;
use tokio::task::JoinHandle;

pub use error::ProxyError;
pub use l7::AccessLog;
pub use listen::offer_listener;
pub use live::{lock, EntryView, LiveRegistry, LiveTable, ServerLive, TableKey};
pub use setup_error::{CompileError, ErrorFileError, StartError};
pub use snapshot::rules::render_request;
pub use snapshot::{BackendRt, FrontendRt, ServerRt, Snapshot};

/// The pages a frontend serves itself (`stats uri`). The admin crate supplies them, so that the
/// data plane does not carry them (and depends on nothing of the admin side).
pub trait LocalPages: std::fmt::Debug + Send + Sync + 'static {
    /// The stats page for a request under `stats uri`.
    fn stats(
        &self,
        req: &http::request::Parts,
        stats: &fulcrum_model::Stats,
        snap: &Snapshot,
    ) -> http::Response<bytes::Bytes>;
}

/// State every worker reads.
#[derive(Debug)]
pub struct Shared {
    pub snapshot: ArcSwap<Snapshot>,
    pub live: LiveRegistry,
    pub access_log: AccessLog,
    /// `global maxconn`.
    conn_limit: listen::ConnLimit,
    /// Connections accepted and waiting for their slots under `maxconn` (all workers).
    parked: std::sync::atomic::AtomicUsize,
    /// Frontend `maxconn`, by frontend name, shared by all workers; resized on reload.
    frontend_limits: std::sync::Mutex<HashMap<String, Arc<listen::ConnLimit>>>,
    /// The stats page, when the binary supplies one.
    pages: Option<Arc<dyn LocalPages>>,
}

impl Shared {
    /// The connection limit of a frontend, if it has one.
    fn frontend_limit(&self, fe: &snapshot::FrontendRt) -> Option<Arc<listen::ConnLimit>> {
        let max = fe.cfg.maxconn? as usize;
        let mut limits = live::lock(&self.frontend_limits);
        if let Some(l) = limits.get(&fe.cfg.name).filter(|l| l.max() == max.max(1)) {
            return Some(l.clone());
        }
        let l = Arc::new(listen::ConnLimit::new(max));
        limits.insert(fe.cfg.name.clone(), l.clone());
        Some(l)
    }

    /// Whether backend `name` has a server that may take traffic now (health and admin state):
    /// what `track_backend` of a VRRP instance watches. An unknown backend is not usable.
    pub fn backend_usable(&self, name: &str) -> bool {
        let snap = self.snapshot.load();
        snap.backends.iter().find(|b| b.cfg.name == name).is_some_and(|b| (0..b.servers.len()).any(|id| b.usable(id)))
    }

    pub(crate) fn log_enabled(&self, fe: &snapshot::FrontendRt) -> bool {
        fe.cfg.httplog
    }
}

/// Bind UDP addresses; the first that fails fails them all.
fn bind_udp(addrs: &[SocketAddr]) -> Result<Vec<(SocketAddr, std::net::UdpSocket)>, StartError> {
    addrs
        .iter()
        .map(|&addr| l4::udp::bind(addr).map(|s| (addr, s)).map_err(|source| StartError::Bind { addr, source }))
        .collect()
}

/// A running proxy: workers, listeners and checks.
pub struct Proxy {
    shared: Arc<Shared>,
    workers: Vec<listen::Worker>,
    listening: std::collections::HashSet<SocketAddr>,
    /// UDP listeners: the task serving each address, and its counters.
    udp: HashMap<SocketAddr, (JoinHandle<()>, Arc<l4::udp::UdpCounters>)>,
    checks: Vec<JoinHandle<()>>,
    /// The rate estimator (`ipvsadm --rate`).
    rates: Option<JoinHandle<()>>,
    /// The `peers` sections sharing stick tables.
    peers: peers::PeersRt,
}

impl Proxy {
    /// Compile `model`, bind every address on `threads` workers and start the checks. Must run
    /// inside a Tokio runtime (the control runtime, which also runs the checks).
    pub fn start(model: Model, threads: usize, pages: Option<Arc<dyn LocalPages>>) -> Result<Proxy, StartError> {
        let live = LiveRegistry::default();
        let snapshot = Snapshot::build(model, &live)?;
        let log_path = snapshot.model.global.access_log.as_deref();
        let access_log = AccessLog::open(log_path)
            .map_err(|source| StartError::AccessLog { path: log_path.map(Into::into).unwrap_or_default(), source })?;
        let shared = Arc::new(Shared {
            conn_limit: listen::ConnLimit::new(snapshot.model.global.maxconn.max(1) as usize),
            parked: std::sync::atomic::AtomicUsize::new(0),
            frontend_limits: std::sync::Mutex::new(HashMap::new()),
            pages,
            snapshot: ArcSwap::from_pointee(snapshot),
            live,
            access_log,
        });
        let workers =
            (0..threads.max(1)).map(|i| listen::Worker::spawn(i, shared.clone())).collect::<Result<_, _>>()?;
        let mut proxy = Proxy {
            shared,
            workers,
            listening: Default::default(),
            udp: HashMap::new(),
            checks: Vec::new(),
            rates: None,
            peers: peers::PeersRt::default(),
        };
        let binds = proxy.shared.snapshot.load().binds_with_mode();
        proxy.listen_on(&binds)?;
        let udp = proxy.shared.snapshot.load().udp_binds();
        let sockets = bind_udp(&udp)?;
        proxy.serve_udp(sockets);
        proxy.checks = checks::spawn_checks(&proxy.shared.snapshot.load());
        proxy.peers.apply(&proxy.shared.snapshot.load(), &proxy.shared.live)?;
        let shared = proxy.shared.clone();
        proxy.rates = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tick.tick().await;
                shared.live.sample_rates();
            }
        }));
        Ok(proxy)
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Apply a new Model live: established connections stay, server health and counters carry
    /// over, new addresses are bound and removed ones closed. On error nothing changes.
    pub fn reload(&mut self, model: Model) -> Result<(), StartError> {
        let snapshot = Snapshot::build(model, &self.shared.live)?;
        let new_binds: Vec<(SocketAddr, bool)> =
            snapshot.binds_with_mode().into_iter().filter(|(a, _)| !self.listening.contains(a)).collect();
        let new_udp: Vec<SocketAddr> = snapshot.udp_binds().into_iter().filter(|a| !self.udp.contains_key(a)).collect();
        // Bind before swapping: a port that cannot be bound fails the reload and changes nothing.
        let sockets = listen::bind_all(&new_binds, self.workers.len())?;
        let udp_sockets = bind_udp(&new_udp)?;
        self.shared.snapshot.store(Arc::new(snapshot));
        self.hand_out(sockets);
        self.serve_udp(udp_sockets);
        let udp_now = self.shared.snapshot.load().udp_binds();
        self.udp.retain(|addr, (task, _)| {
            let keep = udp_now.contains(addr);
            if !keep {
                task.abort();
            }
            keep
        });
        let current: Vec<SocketAddr> = self.shared.snapshot.load().binds().collect();
        let gone: Vec<SocketAddr> = self.listening.iter().filter(|a| !current.contains(a)).copied().collect();
        for addr in gone {
            for w in &self.workers {
                w.close(addr);
            }
            self.listening.remove(&addr);
        }
        for task in self.checks.drain(..) {
            task.abort();
        }
        self.checks = checks::spawn_checks(&self.shared.snapshot.load());
        // A peers address that cannot be bound leaves that section unshared; the rest stands.
        if let Err(e) = self.peers.apply(&self.shared.snapshot.load(), &self.shared.live) {
            tracing::error!("peers: {e}");
        }
        Ok(())
    }

    /// Serve each bound UDP socket on a task of the control runtime.
    fn serve_udp(&mut self, sockets: Vec<(SocketAddr, std::net::UdpSocket)>) {
        for (addr, socket) in sockets {
            let counters = Arc::new(l4::udp::UdpCounters::default());
            let task = tokio::spawn(l4::udp::serve(socket, addr, self.shared.clone(), counters.clone()));
            self.udp.insert(addr, (task, counters));
        }
    }

    /// The counters of the UDP listener on `addr`.
    pub fn udp_counters(&self, addr: &SocketAddr) -> Option<Arc<l4::udp::UdpCounters>> {
        self.udp.get(addr).map(|(_, c)| c.clone())
    }

    fn listen_on(&mut self, addrs: &[(SocketAddr, bool)]) -> Result<(), StartError> {
        let sockets = listen::bind_all(addrs, self.workers.len())?;
        self.hand_out(sockets);
        Ok(())
    }

    /// Give each worker its own socket of every address.
    fn hand_out(&mut self, sockets: Vec<(SocketAddr, Vec<std::net::TcpListener>)>) {
        for (addr, per_worker) in sockets {
            for (w, sock) in self.workers.iter().zip(per_worker) {
                w.listen(addr, sock);
            }
            self.listening.insert(addr);
        }
    }

    /// Stop accepting, let in-flight requests finish (up to `grace`), then stop.
    pub async fn shutdown(mut self, grace: Duration) {
        for task in self.checks.drain(..) {
            task.abort();
        }
        for (_, (task, _)) in self.udp.drain() {
            task.abort();
        }
        if let Some(task) = self.rates.take() {
            task.abort();
        }
        let workers = std::mem::take(&mut self.workers);
        let _ = tokio::task::spawn_blocking(move || {
            for w in workers {
                w.stop(grace);
            }
        })
        .await;
    }
}
