//! Active health-check tasks: one per checked server, driving the pure [`HealthMachine`].
use std::sync::Arc;
use std::time::{Duration, Instant};

use fulcrum_balance::ServerId;
use fulcrum_health::keepalived::{Dns, HttpGet, Misc};
use fulcrum_health::{
    check_loop, CheckOutcome, CheckPlan, CheckSink, CheckSpec, CompiledHttpCheck, HealthMachine, Intervals, Transition,
};
use fulcrum_model::CheckerKind;
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
            if !server.checkers.is_empty() {
                spawn_checkers(backend, id, n as u32, count, &mut tasks);
                continue;
            }
            let spec = match (&backend.cfg.http_check, &backend.cfg.tcp_check) {
                (_, Some(tc)) => match fulcrum_health::CompiledTcpCheck::new(tc) {
                    Ok(c) => match server.send_proxy {
                        Some(version) => CheckSpec::TcpCheck(c.with_proxy_header(
                            crate::proxy_protocol::local_header(version),
                            server.check_addr.is_none(),
                        )),
                        None => CheckSpec::TcpCheck(c),
                    },
                    Err(e) => {
                        tracing::error!(backend = %backend.cfg.name, "tcp-check: {e}");
                        continue;
                    }
                },
                (None, None) => CheckSpec::Tcp,
                (Some(hc), None) => match CompiledHttpCheck::new(hc, &server.addr.ip().to_string()) {
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
            // `check-ssl` (or `ssl` with checks to the same address): the check speaks TLS.
            // `tcp-check connect ssl`: the server's TLS for those connects.
            let spec = match (spec, &backend.servers[id].tls) {
                (CheckSpec::TcpCheck(c), Some(config)) if c.wants_tls() => {
                    let ip = server.check_addr.unwrap_or(server.addr).ip();
                    let name = match &server.tls.check_sni {
                        Some(sni) => rustls::pki_types::ServerName::try_from(sni.clone())
                            .unwrap_or(rustls::pki_types::ServerName::IpAddress(ip.into())),
                        None => fulcrum_tls::server_name(&server.tls, ip, None),
                    };
                    CheckSpec::TcpCheck(c.with_tls(fulcrum_health::CheckTls { config: Arc::clone(config), name }))
                }
                (spec, _) => spec,
            };
            let spec = match (&backend.servers[id].tls, server.tls.check, &spec) {
                (Some(config), true, CheckSpec::Tcp | CheckSpec::Http(_)) => {
                    let ip = server.check_addr.unwrap_or(server.addr).ip();
                    let name = match &server.tls.check_sni {
                        Some(sni) => rustls::pki_types::ServerName::try_from(sni.clone())
                            .unwrap_or(rustls::pki_types::ServerName::IpAddress(ip.into())),
                        None => fulcrum_tls::server_name(&server.tls, ip, None),
                    };
                    CheckSpec::Tls(Box::new(spec), fulcrum_health::CheckTls { config: Arc::clone(config), name })
                }
                _ => spec,
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

/// keepalived's checkers of one server: each its own loop and machine (one success up,
/// `retry` + 1 failures down, retries `delay_before_retry` apart); the server is up while all are.
fn spawn_checkers(backend: &Arc<BackendRt>, id: ServerId, n: u32, count: u32, tasks: &mut Vec<JoinHandle<()>>) {
    let server = &backend.servers[id];
    let up = server.live.is_up();
    let machines: Arc<Vec<std::sync::Mutex<HealthMachine>>> = Arc::new(
        server
            .cfg
            .checkers
            .iter()
            .map(|c| {
                let fall = c.retry.saturating_add(1);
                std::sync::Mutex::new(if up { HealthMachine::new(1, fall) } else { HealthMachine::new_down(1, fall) })
            })
            .collect(),
    );
    for (index, checker) in server.cfg.checkers.iter().enumerate() {
        let spec = match &checker.kind {
            CheckerKind::Tcp => CheckSpec::Tcp,
            CheckerKind::HttpGet { urls, virtualhost, tls, sni } => CheckSpec::HttpGet(HttpGet {
                urls: urls.clone(),
                virtualhost: virtualhost.clone(),
                tls: *tls,
                sni: *sni,
            }),
            CheckerKind::Misc { path, dynamic, user, .. } => {
                CheckSpec::Misc(Misc { command: path.clone(), dynamic: *dynamic, user: user.clone() })
            }
            CheckerKind::Dns { kind, name } => match fulcrum_health::keepalived::dns_type(kind) {
                Some(kind) => CheckSpec::Dns(Dns { kind, name: name.clone() }),
                None => continue,
            },
        };
        let timeout = match &checker.kind {
            CheckerKind::Misc { timeout, .. } => timeout.unwrap_or(checker.interval),
            _ => checker.timeout,
        };
        let warmup = checker.warmup.unwrap_or(checker.interval);
        let plan = CheckPlan {
            target: checker.target,
            spec,
            timeout: timeout.max(Duration::from_millis(1)),
            intervals: Intervals {
                inter: checker.interval,
                fastinter: checker.delay_before_retry,
                downinter: checker.interval,
            },
            // keepalived starts a checker within `warmup`; spread the servers over it.
            first: warmup / count.max(1) * n,
        };
        let sink = CheckerSink { backend: backend.clone(), id, index, machines: machines.clone() };
        tasks.push(tokio::spawn(check_loop(plan, sink)));
    }
}

/// One keepalived checker of a server.
struct CheckerSink {
    backend: Arc<BackendRt>,
    id: ServerId,
    index: usize,
    machines: Arc<Vec<std::sync::Mutex<HealthMachine>>>,
}

impl CheckSink for CheckerSink {
    fn machine(&self) -> &std::sync::Mutex<HealthMachine> {
        &self.machines[self.index]
    }

    fn checked(&self, outcome: &CheckOutcome) {
        let server = &self.backend.servers[self.id];
        server.live.last_check_reason(&outcome.reason);
        // misc_dynamic: a success sets the weight from the exit status.
        if outcome.ok && server.live.set_dynamic_weight(outcome.weight.or(server.live.dynamic_weight())) {
            tracing::info!(
                "Changing weight to {} for service {} of VS {}",
                server.live.dynamic_weight().unwrap_or(server.cfg.weight),
                server.cfg.name,
                self.backend.cfg.name
            );
            self.backend.rebuild(Instant::now());
            quorum_changed(&self.backend);
        }
    }

    fn transition(&self, _: Transition, reason: &str) {
        let all_up = self.machines.iter().all(|m| lock(m).is_up());
        let server = &self.backend.servers[self.id];
        if all_up != server.live.is_up() {
            let t = if all_up { Transition::WentUp } else { Transition::WentDown };
            apply_transition(&self.backend, self.id, t, reason);
        }
    }
}

/// Re-evaluates a backend's keepalived quorum and runs `quorum_up`/`quorum_down` on a change.
fn quorum_changed(backend: &Arc<BackendRt>) {
    let Some(up) = backend.update_quorum(Instant::now()) else { return };
    backend.rebuild(Instant::now());
    let Some(q) = &backend.cfg.quorum else { return };
    if up {
        tracing::warn!("Gained quorum {}+{} for VS {}", q.quorum, q.hysteresis, backend.cfg.name);
    } else {
        tracing::warn!("Lost quorum {}-{} for VS {}", q.quorum, q.hysteresis, backend.cfg.name);
    }
    if let Some(script) = if up { &q.up } else { &q.down } {
        run_script(script);
    }
}

/// Runs a notify script as keepalived does: the command line as written, no arguments added.
fn run_script(script: &str) {
    let spawned = tokio::process::Command::new("/bin/sh").arg("-c").arg(script).kill_on_drop(false).spawn();
    match spawned {
        Ok(mut child) => {
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
        }
        Err(e) => tracing::error!("cannot run '{script}': {e}"),
    }
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
    if backend.cfg.lvs.is_some() {
        let verb = if t == Transition::WentUp { "Adding service" } else { "Removing service" };
        let to = if t == Transition::WentUp { "to" } else { "from" };
        tracing::warn!("{verb} {} {to} VS {} ({reason})", server.cfg.name, backend.cfg.name);
    }
    if let Some(script) = if t == Transition::WentUp { &server.cfg.notify_up } else { &server.cfg.notify_down } {
        run_script(script);
    }
    quorum_changed(backend);
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
