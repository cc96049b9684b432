//! UDP: datagrams relayed per client flow. A flow is keyed by the client's address and port:
//! its first datagram picks a server (the backend's scheduler, persistence, thresholds, as for
//! a TCP connection) and opens a socket connected to that server; later datagrams of the flow
//! go the same way, and whatever the server sends back goes to that client from the address it
//! wrote to. A flow ends after `timeout client` (IPVS's `--set` udp, 300 s by default) with no
//! datagram either way. The table is bounded by the frontend's `maxconn` (else `global
//! maxconn`); a datagram that would open a flow beyond it is dropped and counted.
//!
//! With `ops` (one-packet scheduling), every datagram is a flow of its own: it is scheduled
//! alone and its replies come back until the flow goes idle.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fulcrum_balance::Flow;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::pick::{pick_server, Pick, Slot, Template};
use crate::Shared;

/// The largest datagram relayed (the most a UDP payload can be).
const MAX_DATAGRAM: usize = 65_535;

/// Counters of one UDP listener.
#[derive(Debug, Default)]
pub struct UdpCounters {
    /// Datagrams dropped because the flow table was full.
    pub refused: AtomicU64,
    /// Flows opened.
    pub flows: AtomicU64,
}

/// One UDP listening socket, as fulcrum binds them: IP_FREEBIND (a VIP not held yet),
/// SO_REUSEADDR.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        let _ = socket.set_only_v6(true);
    }
    let _ = if addr.is_ipv6() { socket.set_freebind_ipv6(true) } else { socket.set_freebind(true) };
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// A flow's sending half, and when it last saw a datagram.
struct FlowEntry {
    upstream: Arc<UdpSocket>,
    last: Arc<AtomicU64>,
    server: Arc<crate::live::ServerLive>,
}

/// Serves one UDP address until the task is aborted.
pub(crate) async fn serve(
    socket: std::net::UdpSocket,
    bind: SocketAddr,
    shared: Arc<Shared>,
    counters: Arc<UdpCounters>,
) {
    let Ok(socket) = UdpSocket::from_std(socket) else { return };
    let socket = Arc::new(socket);
    let start = Instant::now();
    let mut flows: HashMap<SocketAddr, FlowEntry> = HashMap::new();
    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel::<(SocketAddr, Arc<AtomicU64>)>();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut last_refusal_log: Option<Instant> = None;
    // Relay tasks alive (with `ops`, flows that are not in `flows`): what the limit counts.
    let alive = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    loop {
        let (n, client) = tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok(got) => got,
                Err(e) => {
                    tracing::debug!(%bind, "udp receive: {e}");
                    continue;
                }
            },
            Some((client, last)) = ended_rx.recv() => {
                // Only the flow that ended (a newer one for the same client stays).
                if flows.get(&client).is_some_and(|f| Arc::ptr_eq(&f.last, &last)) {
                    flows.remove(&client);
                }
                continue;
            }
        };
        let datagram = buf.get(..n).unwrap_or_default();
        let now = elapsed(start);
        if let Some(flow) = flows.get(&client) {
            flow.last.store(now, Ordering::Relaxed);
            flow.server.traffic.add(true, n);
            if let Err(e) = flow.upstream.send(datagram).await {
                tracing::debug!(%bind, %client, "udp send to server: {e}");
            }
            continue;
        }
        let snap = shared.snapshot.load_full();
        let Some(fe) = snap.udp_frontend_for(&bind) else { continue };
        let facts = crate::snapshot::Facts::connection(client, Some(bind));
        let Some(backend) = fe.route_tcp(&facts).cloned() else { continue };
        let limit = fe.cfg.maxconn.unwrap_or(snap.model.global.maxconn).max(1) as usize;
        if alive.load(Ordering::Relaxed) >= limit {
            let refused = counters.refused.fetch_add(1, Ordering::Relaxed) + 1;
            if last_refusal_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                last_refusal_log = Some(Instant::now());
                tracing::warn!(
                    "frontend {}: UDP flow table full ({limit} flows): datagram from {client} dropped ({refused} refused so far)",
                    fe.cfg.name
                );
            }
            continue;
        }
        let one_packet = backend.cfg.lvs.as_ref().is_some_and(|l| l.one_packet);
        let template = Template::of(&backend, client.ip());
        let preferred = template.as_ref().and_then(|t| t.server(Instant::now()));
        let flow = Flow { client, destination: bind, now: Instant::now() };
        let id = match pick_server(&backend, None, &flow, &[], preferred.map(Into::into)) {
            Pick::Server(id) => id,
            Pick::Full | Pick::NoServer => {
                tracing::debug!(backend = %backend.cfg.name, %client, "udp: no server for a new flow");
                continue;
            }
        };
        let slot = Slot::new(&backend, id);
        let server = &backend.servers[id];
        let target = server.cfg.addr_for(bind);
        let upstream = match connect(target).await {
            Ok(s) => Arc::new(s),
            Err(e) => {
                server.live.connect_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(backend = %backend.cfg.name, server = %server.cfg.name, "udp socket to {target}: {e}");
                continue;
            }
        };
        server.live.total.fetch_add(1, Ordering::Relaxed);
        server.live.traffic.add(true, n);
        counters.flows.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = upstream.send(datagram).await {
            tracing::debug!(%client, "udp send to server: {e}");
        }
        let held = template.map(|t| t.hold(id));
        let last = Arc::new(AtomicU64::new(now));
        if !one_packet {
            let server = server.live.clone();
            flows.insert(client, FlowEntry { upstream: upstream.clone(), last: last.clone(), server });
        }
        let idle = fe.cfg.timeout_client.max(Duration::from_millis(1));
        let reply_to = socket.clone();
        let ended = ended_tx.clone();
        // A UDP flow counts as an inactive connection, as in IPVS.
        server.live.inactive.fetch_add(1, Ordering::Relaxed);
        let alive_for_task = alive.clone();
        alive.fetch_add(1, Ordering::Relaxed);
        let live = server.live.clone();
        tokio::spawn(async move {
            relay_replies(&upstream, &reply_to, client, &last, start, idle, &live.traffic).await;
            let _ = ended.send((client, last));
            live.inactive.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
            drop(held);
            alive_for_task.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Milliseconds since `start`, the clock of a listener's flows.
fn elapsed(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A socket connected to the server, from an address of its family.
async fn connect(target: SocketAddr) -> std::io::Result<UdpSocket> {
    let local: SocketAddr = if target.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(target).await?;
    Ok(socket)
}

/// Sends the server's datagrams to the client until the flow is idle for `idle`.
async fn relay_replies(
    upstream: &UdpSocket,
    reply_to: &UdpSocket,
    client: SocketAddr,
    last: &AtomicU64,
    start: Instant,
    idle: Duration,
    traffic: &crate::live::Traffic,
) {
    let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
    loop {
        let seen = last.load(Ordering::Relaxed);
        let deadline = start + Duration::from_millis(seen.saturating_add(idle_ms));
        tokio::select! {
            // A flow holds no buffer: a datagram is read into the thread's scratch buffer and
            // sent on before the next wait.
            ready = upstream.readable() => {
                if ready.is_err() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                let relayed = crate::io::with_scratch(|buf| match upstream.try_recv(buf) {
                    Ok(n) => {
                        last.store(elapsed(start), Ordering::Relaxed);
                        traffic.add(false, n);
                        reply_to.try_send_to(buf.get(..n).unwrap_or_default(), client).map(|_| ())
                    }
                    Err(e) => Err(e),
                });
                match relayed {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    // An ICMP error from the server (port unreachable): keep the flow until
                    // idle, as IPVS does; the client may send again.
                    Err(e) => {
                        tracing::debug!(%client, "udp relay: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            },
            () = tokio::time::sleep_until(deadline.into()) => {
                if elapsed(start) >= last.load(Ordering::Relaxed).saturating_add(idle_ms) {
                    return;
                }
            }
        }
    }
}
