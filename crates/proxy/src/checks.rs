//! Active health-check tasks: one per checked server, driving the pure [`HealthMachine`].
use std::sync::Arc;
use std::time::{Duration, Instant};

use fulcrum_balance::ServerId;
use fulcrum_health::{
    check_loop, CheckOutcome, CheckPlan, CheckSink, CheckSpec, CompiledHttpCheck, Intervals, Transition,
};
use tokio::task::JoinHandle;

use crate::live::lock;
use crate::snapshot::{BackendRt, Snapshot};

/// Start the checks of a snapshot. The caller aborts them when the snapshot is replaced; the
/// health state itself lives on in the live registry.
pub fn spawn_checks(snap: &Snapshot) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for backend in &snap.backends {
        let checked: Vec<ServerId> = (0..backend.servers.len())
            .filter(|i| backend.servers[*i].cfg.check && !backend.servers[*i].cfg.disabled)
            .collect();
        let count = checked.len().max(1) as u32;
        for (n, id) in checked.into_iter().enumerate() {
            let server = &backend.servers[id].cfg;
            let spec = match &backend.cfg.http_check {
                None => CheckSpec::Tcp,
                Some(hc) => match CompiledHttpCheck::new(hc, &server.addr.ip().to_string()) {
                    // As HAProxy: checks to a send-proxy server speak the PROXY protocol too,
                    // unless they go to another address or port.
                    Ok(c) => match server.send_proxy.filter(|_| server.check_addr.is_none()) {
                        Some(version) => {
                            CheckSpec::Http(c.with_preamble(&crate::proxy_protocol::local_header(version)))
                        }
                        None => CheckSpec::Http(c),
                    },
                    Err(e) => {
                        tracing::error!(backend = %backend.cfg.name, "http-check: {e}");
                        continue;
                    }
                },
            };
            let plan = CheckPlan {
                target: server.check_addr.unwrap_or(server.addr),
                spec,
                timeout: backend.cfg.timeout_check.unwrap_or(server.inter).max(Duration::from_millis(1)),
                intervals: Intervals {
                    inter: server.inter,
                    fastinter: server.fastinter.unwrap_or(server.inter),
                    downinter: server.downinter.unwrap_or(server.inter),
                },
                // Spread first checks over one interval, as HAProxy does.
                first: server.inter / count * n as u32,
            };
            tasks.push(tokio::spawn(check_loop(plan, ServerCheck { backend: backend.clone(), id })));
        }
        if backend.servers.iter().any(|s| s.cfg.slowstart.is_some()) {
            tasks.push(tokio::spawn(slowstart_ticker(backend.clone())));
        }
    }
    tasks
}

/// A server's checks report into its live state and its backend's scheduler.
struct ServerCheck {
    backend: Arc<BackendRt>,
    id: ServerId,
}

impl CheckSink for ServerCheck {
    fn machine(&self) -> &std::sync::Mutex<fulcrum_health::HealthMachine> {
        &self.backend.servers[self.id].live.machine
    }

    fn checked(&self, outcome: &CheckOutcome) {
        self.backend.servers[self.id].live.last_check_reason(&outcome.reason);
    }

    fn transition(&self, transition: Transition, reason: &str) {
        apply_transition(&self.backend, self.id, transition, reason);
    }
}

/// Act on a health change: flip the server, rebuild the scheduler, log it as HAProxy would.
pub fn apply_transition(backend: &Arc<BackendRt>, id: ServerId, t: Transition, reason: &str) {
    let Some(server) = backend.servers.get(id) else { return };
    server.live.set_up(t == Transition::WentUp);
    backend.rebuild(Instant::now());
    let active = backend.servers.iter().filter(|s| !s.cfg.backup && !s.cfg.disabled && s.live.is_up()).count();
    let backups = backend.servers.iter().filter(|s| s.cfg.backup && !s.cfg.disabled && s.live.is_up()).count();
    let kind = if server.cfg.backup { "Backup server" } else { "Server" };
    let state = if t == Transition::WentUp { "UP" } else { "DOWN" };
    tracing::warn!(
        "{kind} {}/{} is {state}, reason: {reason}. {active} active and {backups} backup servers left. {} sessions active, {} remaining in queue.",
        backend.cfg.name,
        server.cfg.name,
        server.live.active.load(std::sync::atomic::Ordering::Relaxed),
        backend.queued()
    );
    if active + backups == 0 {
        tracing::error!("backend {} has no server available!", backend.cfg.name);
    }
}

/// While a server ramps up under `slowstart`, refresh its weight in the scheduler.
async fn slowstart_ticker(backend: Arc<BackendRt>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut was_ramping = false;
    loop {
        tick.tick().await;
        let ramping = backend
            .servers
            .iter()
            .any(|s| s.cfg.slowstart.is_some_and(|d| lock(&s.live.up_since).is_some_and(|t| t.elapsed() < d)));
        // One more rebuild after the ramp ends sets the full weight.
        if ramping || was_ramping {
            backend.rebuild(Instant::now());
        }
        was_ramping = ramping;
    }
}
