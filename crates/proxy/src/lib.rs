//! fulcrum's data plane: SO_REUSEPORT listeners on worker threads, the L7 HTTP proxy, upstream
//! pools, health-check tasks, and live reload.
#![forbid(unsafe_code)]

mod accesslog;
mod acl;
mod checks;
mod clientio;
mod cookie;
mod errors;
mod fasthash;
mod http;
mod limit;
mod live;
mod observe;
mod snapshot;
mod stats;
mod upstream;
mod worker;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use fulcrum_model::Model;
use tokio::task::JoinHandle;

pub use accesslog::AccessLog;
pub use live::LiveRegistry;
pub use snapshot::Snapshot;

/// One VRRP instance as the stats page shows it (filled by the binary from the VRRP runtime).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpRow {
    pub instance: String,
    pub state: String,
    pub priority: u8,
    pub master: Option<String>,
}

/// State every worker reads.
#[derive(Debug)]
pub struct Shared {
    pub snapshot: ArcSwap<Snapshot>,
    pub live: LiveRegistry,
    pub access_log: AccessLog,
    /// `global maxconn`.
    conn_limit: limit::ConnLimit,
    /// Frontend `maxconn`, by frontend name, shared by all workers; resized on reload.
    frontend_limits: std::sync::Mutex<HashMap<String, Arc<limit::ConnLimit>>>,
    /// VRRP instances, for the stats page.
    vrrp_rows: std::sync::Mutex<Vec<VrrpRow>>,
}

impl Shared {
    pub fn set_vrrp_rows(&self, rows: Vec<VrrpRow>) {
        *live::lock(&self.vrrp_rows) = rows;
    }

    pub fn vrrp_rows(&self) -> Vec<VrrpRow> {
        live::lock(&self.vrrp_rows).clone()
    }

    /// The connection limit of a frontend, if it has one.
    fn frontend_limit(&self, fe: &snapshot::FrontendRt) -> Option<Arc<limit::ConnLimit>> {
        let max = fe.cfg.maxconn? as usize;
        let mut limits = live::lock(&self.frontend_limits);
        if let Some(l) = limits.get(&fe.cfg.name).filter(|l| l.max() == max.max(1)) {
            return Some(l.clone());
        }
        let l = Arc::new(limit::ConnLimit::new(max));
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

/// A running proxy: workers, listeners and checks.
pub struct Proxy {
    shared: Arc<Shared>,
    workers: Vec<worker::Worker>,
    listening: std::collections::HashSet<SocketAddr>,
    checks: Vec<JoinHandle<()>>,
}

impl Proxy {
    /// Compile `model`, bind every address on `threads` workers and start the checks. Must run
    /// inside a Tokio runtime (the control runtime, which also runs the checks).
    pub fn start(model: Model, threads: usize) -> Result<Proxy, String> {
        let live = LiveRegistry::default();
        let snapshot = Snapshot::build(model, &live)?;
        let access_log =
            AccessLog::open(snapshot.model.global.access_log.as_deref()).map_err(|e| format!("access log: {e}"))?;
        let shared = Arc::new(Shared {
            conn_limit: limit::ConnLimit::new(snapshot.model.global.maxconn.max(1) as usize),
            frontend_limits: std::sync::Mutex::new(HashMap::new()),
            vrrp_rows: std::sync::Mutex::new(Vec::new()),
            snapshot: ArcSwap::from_pointee(snapshot),
            live,
            access_log,
        });
        let workers =
            (0..threads.max(1)).map(|i| worker::Worker::spawn(i, shared.clone())).collect::<Result<_, _>>()?;
        let mut proxy = Proxy { shared, workers, listening: Default::default(), checks: Vec::new() };
        let binds: Vec<SocketAddr> = proxy.shared.snapshot.load().binds().collect();
        proxy.listen_on(&binds)?;
        proxy.checks = checks::spawn_checks(&proxy.shared.snapshot.load());
        Ok(proxy)
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Apply a new Model live: established connections stay, server health and counters carry
    /// over, new addresses are bound and removed ones closed. On error nothing changes.
    pub fn reload(&mut self, model: Model) -> Result<(), String> {
        let snapshot = Snapshot::build(model, &self.shared.live)?;
        let new_binds: Vec<SocketAddr> = snapshot.binds().filter(|a| !self.listening.contains(a)).collect();
        // Bind before swapping: a port that cannot be bound fails the reload and changes nothing.
        let sockets = bind_all(&new_binds, self.workers.len())?;
        self.shared.snapshot.store(Arc::new(snapshot));
        self.hand_out(sockets);
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
        Ok(())
    }

    fn listen_on(&mut self, addrs: &[SocketAddr]) -> Result<(), String> {
        let sockets = bind_all(addrs, self.workers.len())?;
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
        let workers = std::mem::take(&mut self.workers);
        let _ = tokio::task::spawn_blocking(move || {
            for w in workers {
                w.stop(grace);
            }
        })
        .await;
    }
}

/// Bind each address once per worker with SO_REUSEPORT, so the kernel spreads connections.
fn bind_all(addrs: &[SocketAddr], workers: usize) -> Result<Vec<(SocketAddr, Vec<std::net::TcpListener>)>, String> {
    addrs
        .iter()
        .map(|addr| {
            let socks = (0..workers).map(|_| bind_one(*addr)).collect::<Result<Vec<_>, _>>()?;
            Ok((*addr, socks))
        })
        .collect()
}

fn bind_one(addr: SocketAddr) -> Result<std::net::TcpListener, String> {
    use socket2::{Domain, Socket, Type};
    let err = |e: std::io::Error| format!("cannot bind {addr}: {e}");
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    socket.set_reuse_port(true).map_err(err)?;
    if addr.is_ipv6() {
        let _ = socket.set_only_v6(true);
    }
    socket.set_nodelay(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    socket.listen(4096).map_err(err)?;
    // Delayed ACKs from the first byte, as HAProxy does on its HTTP listeners: a new
    // connection otherwise starts in quick-ACK mode and answers the request's segment with an
    // ACK of its own, although the response (which carries the ACK) follows within
    // microseconds. Set after listen(): each accepted socket inherits it. One packet less
    // per connection, a fifth of what the proxy sends in a `Connection: close` exchange.
    let _ = socket.set_quickack(false);
    socket.set_nonblocking(true).map_err(err)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn listeners_delay_acks_from_the_first_byte() {
        let listener = super::bind_one("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = listener.local_addr().expect("local addr");
        assert!(!socket2::SockRef::from(&listener).quickack().expect("getsockopt"), "the listener itself");
        // What matters is what each accepted connection inherits.
        let _client = std::net::TcpStream::connect(addr).expect("connect");
        listener.set_nonblocking(false).expect("blocking");
        let (accepted, _) = listener.accept().expect("accept");
        assert!(!socket2::SockRef::from(&accepted).quickack().expect("getsockopt"), "an accepted connection");
    }
}
