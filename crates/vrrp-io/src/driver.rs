//! One task per VRRP instance: it feeds received adverts and timer expiries to the sans-IO
//! [`fulcrum_vrrp::Instance`] and carries out its actions (send, add/remove addresses and the
//! `no_accept` rules, gratuitous ARP, notify scripts), applies tracking (interfaces, scripts,
//! backends, sync group), and deletes the instance's VMAC when it stops.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fulcrum_config::VrrpInstance;
use fulcrum_vrrp::{decode, encode, Action, Config, Instance, State};
use tokio::sync::{mpsc, oneshot};

use crate::socket::AsyncVrrpSocket;
use crate::{GuardLink, InstanceStatus, Shared};

/// What the runtime tells a driver.
#[derive(Debug)]
pub enum DriverCommand {
    /// Give up (priority-0 advert, remove addresses) and stop; answer when done.
    Shutdown(oneshot::Sender<()>),
}

/// A prepared instance: the model, the core's configuration and the I/O parameters.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub model: VrrpInstance,
    pub config: Config,
    pub guard: crate::guard::GuardInstance,
    /// The instance's interface.
    pub base_ifindex: u32,
    /// The interface holding the virtual addresses (the VMAC's with `use_vmac`) and its MAC:
    /// gratuitous ARPs leave from it.
    pub vip_interface: String,
    pub mac: [u8; 6],
    pub vmac: Option<crate::vmac::Vmac>,
    /// `no_accept`: the `nft` program and the rules to install while MASTER.
    pub firewall: Option<(PathBuf, crate::firewall::NoAccept)>,
    /// Sync group name, if the instance is in one, and the other members.
    pub group: Option<(String, Vec<String>)>,
}

pub fn state_name(state: State) -> &'static str {
    match state {
        State::Initialize => "INIT",
        State::Backup => "BACKUP",
        State::Master => "MASTER",
        State::Fault => "FAULT",
    }
}

struct Driver {
    p: Prepared,
    vr: Instance,
    socket: AsyncVrrpSocket,
    shared: Arc<Shared>,
    guard: GuardLink,
    /// The second gratuitous ARP round (`garp_master_delay` after becoming master).
    garp_due: Option<Instant>,
    garp_refresh_due: Option<Instant>,
    own_fault: bool,
}

/// Runs one instance until told to shut down.
pub async fn run(
    p: Prepared,
    shared: Arc<Shared>,
    guard: GuardLink,
    mut commands: mpsc::Receiver<DriverCommand>,
) -> Result<(), String> {
    let now = Instant::now();
    let name = p.model.name.clone();
    let opened =
        Instance::new(p.config.clone(), now).map_err(|e| format!("VRRP_Instance({name}): {e}")).and_then(|vr| {
            let socket = AsyncVrrpSocket::open(&p.guard.spec).map_err(|e| {
                format!("VRRP_Instance({name}): cannot open the VRRP socket on {}: {e}", p.guard.spec.interface)
            })?;
            Ok((vr, socket))
        });
    let (vr, socket) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            if let Some(vmac) = &p.vmac {
                crate::vmac::teardown(vmac);
            }
            return Err(e);
        }
    };
    let mut d = Driver { p, vr, socket, shared, guard, garp_due: None, garp_refresh_due: None, own_fault: false };
    d.publish();
    let mut states = d.shared.status.subscribe();
    let track_every = d.p.config.advert_interval.clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut track = tokio::time::interval(track_every);
    track.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    d.run_actions();
    loop {
        let deadline = [d.vr.poll_timeout(), d.garp_due, d.garp_refresh_due]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            received = d.socket.recv() => match received {
                Ok(r) => d.on_packet(&r),
                Err(e) => {
                    tracing::warn!("VRRP_Instance({}): receive error: {e}", d.p.model.name);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = tokio::time::sleep_until(deadline.into()) => d.on_timer(),
            _ = track.tick() => d.track().await,
            changed = states.changed() => if changed.is_ok() { d.sync_group() },
            command = commands.recv() => {
                d.vr.shutdown(Instant::now());
                d.run_actions();
                if let Some(vmac) = &d.p.vmac {
                    crate::vmac::teardown(vmac);
                }
                if let Some(DriverCommand::Shutdown(done)) = command {
                    let _ = done.send(());
                }
                return Ok(());
            }
        }
        d.run_actions();
    }
}

impl Driver {
    fn on_packet(&mut self, r: &crate::socket::Received) {
        match decode(&r.payload, &r.ctx, &self.p.config.decode_expect()) {
            Ok(advert) => {
                let outcome = self.vr.handle_advert(&advert, r.ctx.src, Instant::now());
                tracing::trace!(name = %self.p.model.name, ?outcome, "advert from {}", r.ctx.src);
            }
            Err(e) => tracing::debug!("VRRP_Instance({}): bad advert from {}: {e}", self.p.model.name, r.ctx.src),
        }
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        if self.vr.poll_timeout().is_some_and(|t| t <= now) {
            if self.vr.state() == State::Backup && self.group_outranked() {
                // A member follows a better master: the group prefers BACKUP (keepalived only
                // lets a sync group go master when every member wants to). Restart the
                // Master_Down timer instead of taking over.
                self.reset_to_backup();
            } else {
                self.vr.handle_timeout(now);
            }
        }
        if self.garp_due.is_some_and(|when| when <= now) {
            self.announce();
            self.garp_due = None;
        }
        if let Some(when) = self.garp_refresh_due {
            if when <= now {
                self.announce();
                self.garp_refresh_due = self.p.model.garp_master_refresh.map(|r| now + r);
            }
        }
    }

    fn announce(&self) {
        let vips: Vec<IpAddr> = self.p.model.vips.iter().map(|v| v.addr).collect();
        let rounds = self.p.model.garp_master_repeat.max(1);
        for _ in 0..rounds {
            if let Err(e) =
                crate::announce::announce(&self.p.vip_interface, self.p.guard.vip_ifindex, self.p.mac, &vips)
            {
                tracing::warn!("VRRP_Instance({}): gratuitous ARP/NA failed: {e}", self.p.model.name);
                return;
            }
        }
    }

    fn send_advert(&self, priority: u8) {
        let advert = self.vr.advert(priority);
        for ctx in self.socket.send_contexts() {
            match encode(&advert, &ctx) {
                Ok(bytes) => {
                    if let Err(e) = self.socket.send_to(&bytes, &ctx) {
                        tracing::warn!(
                            "VRRP_Instance({}): cannot send an advert to {}: {e}",
                            self.p.model.name,
                            ctx.dst
                        );
                    }
                }
                Err(e) => tracing::error!("VRRP_Instance({}): cannot encode an advert: {e:?}", self.p.model.name),
            }
        }
    }

    fn add_vips(&self) {
        // no_accept: the drop rules come first, so the addresses never accept traffic.
        if let Some((nft, rules)) = &self.p.firewall {
            if let Err(e) = rules.block(nft) {
                tracing::error!("VRRP_Instance({}): no_accept: cannot install the drop rules: {e}", self.p.model.name);
            }
        }
        for vip in &self.p.model.vips {
            let index = self.p.guard.vip_ifindex;
            if let Err(e) = crate::netlink::add_address(index, vip.addr, vip.prefix, vip.label.as_deref()) {
                tracing::error!("VRRP_Instance({}): cannot add {}/{}: {e}", self.p.model.name, vip.addr, vip.prefix);
            }
        }
    }

    fn remove_vips(&self) {
        for vip in &self.p.model.vips {
            if let Err(e) = crate::netlink::remove_address(self.p.guard.vip_ifindex, vip.addr, vip.prefix) {
                tracing::error!("VRRP_Instance({}): cannot remove {}/{}: {e}", self.p.model.name, vip.addr, vip.prefix);
            }
        }
        if let Some((nft, rules)) = &self.p.firewall {
            if let Err(e) = crate::firewall::unblock(nft, &rules.table) {
                tracing::error!("VRRP_Instance({}): no_accept: cannot remove the drop rules: {e}", self.p.model.name);
            }
        }
    }

    fn run_actions(&mut self) {
        while let Some(action) = self.vr.poll_action() {
            match action {
                Action::SendAdvert { priority } => self.send_advert(priority),
                Action::BecomeMaster => {
                    // The guard learns first, so a crash right after adding still releases.
                    self.guard.send(&format!("state\t{}\tMASTER\n", self.p.model.name));
                    self.add_vips();
                    self.announce();
                    let now = Instant::now();
                    if !self.p.model.garp_master_delay.is_zero() {
                        self.garp_due = Some(now + self.p.model.garp_master_delay);
                    }
                    self.garp_refresh_due = self.p.model.garp_master_refresh.map(|r| now + r);
                }
                Action::BecomeBackup | Action::BecomeFault | Action::Stopped => {
                    self.remove_vips();
                    self.garp_due = None;
                    self.garp_refresh_due = None;
                    self.guard.send(&format!("state\t{}\tOTHER\n", self.p.model.name));
                }
                Action::StateChanged { from, to } => self.state_changed(from, to),
            }
        }
        self.publish();
    }

    fn state_changed(&self, from: State, to: State) {
        let name = &self.p.model.name;
        tracing::info!("VRRP_Instance({name}) Entering {} STATE (was {})", state_name(to), state_name(from));
        let m = &self.p.model;
        let specific = match to {
            State::Master => m.notify_master.as_deref(),
            State::Backup => m.notify_backup.as_deref(),
            State::Fault => m.notify_fault.as_deref(),
            State::Initialize => m.notify_stop.as_deref(),
        };
        let state = if to == State::Initialize { "STOP" } else { state_name(to) };
        if let Some(script) = specific {
            crate::scripts::notify(script, &[]);
        }
        if let Some(script) = m.notify.as_deref() {
            let prio = self.vr.effective_priority().to_string();
            crate::scripts::notify(script, &["INSTANCE", name, state, &prio]);
        }
        if let Some((group, _)) = &self.p.group {
            let g = self.shared.groups.iter().find(|g| &g.name == group);
            if let Some(g) = g {
                let script = match to {
                    State::Master => g.notify_master.as_deref(),
                    State::Backup => g.notify_backup.as_deref(),
                    State::Fault => g.notify_fault.as_deref(),
                    State::Initialize => None,
                };
                if let Some(script) = script {
                    crate::scripts::notify(script, &[]);
                }
            }
        }
    }

    fn publish(&self) {
        let status = InstanceStatus {
            state: self.vr.state(),
            priority: self.vr.effective_priority(),
            own_fault: self.own_fault,
            master: self.vr.current_master().map(|m| m.address),
            outranked: self.vr.state() == State::Backup
                && self.vr.current_master().is_some_and(|m| m.priority >= self.vr.effective_priority()),
        };
        self.shared.status.send_if_modified(|all| {
            if all.get(&self.p.model.name) == Some(&status) {
                false
            } else {
                all.insert(self.p.model.name.clone(), status);
                true
            }
        });
    }

    /// Tracked interfaces, scripts and backends → fault or priority adjustment.
    async fn track(&mut self) {
        let m = &self.p.model;
        let mut fault = false;
        let mut adjust = 0i32;
        let mut apply = |up: bool, weight: Option<i32>| match weight {
            None | Some(0) => fault |= !up,
            Some(w) if w > 0 => adjust += if up { w } else { 0 },
            Some(w) => adjust += if up { 0 } else { w },
        };
        let own = crate::netlink::link(&m.interface).map(|l| l.up).unwrap_or(false);
        apply(own, None);
        for t in &m.track_interfaces {
            apply(crate::netlink::link(&t.name).map(|l| l.up).unwrap_or(false), t.weight);
        }
        for t in &m.track_scripts {
            let (up, script_weight) = self.shared.scripts.status(&t.name);
            apply(up, t.weight.or(script_weight));
        }
        if let Some(backends) = &self.shared.backends {
            for t in &m.track_backends {
                apply(backends.backend_usable(&t.name), t.weight);
            }
        }
        let now = Instant::now();
        self.vr.set_priority_adjustment(adjust, now);
        if fault != self.own_fault {
            self.own_fault = fault;
            if fault {
                tracing::warn!("VRRP_Instance({}): a tracked object is down: entering FAULT", m.name);
            }
            self.sync_group();
        }
    }

    /// The basic sync-group rule: while any member is at fault itself, every member is FAULT.
    fn sync_group(&mut self) {
        let group_fault = match &self.p.group {
            Some((_, members)) => {
                let all = self.shared.status.borrow();
                members.iter().any(|m| all.get(m).is_some_and(|s| s.own_fault))
            }
            None => false,
        };
        let fault = self.own_fault || group_fault;
        let in_fault = self.vr.state() == State::Fault;
        if fault != in_fault {
            self.vr.set_fault(fault, Instant::now());
        }
        if !fault && self.vr.state() == State::Master && self.group_outranked() {
            if let Some((group, _)) = &self.p.group {
                tracing::info!("VRRP_Group({group}) Syncing instances to BACKUP state");
            }
            self.reset_to_backup();
        }
        self.publish();
    }

    /// Whether another member of the sync group is BACKUP behind a better master.
    fn group_outranked(&self) -> bool {
        let Some((_, members)) = &self.p.group else { return false };
        if self.p.config.priority == fulcrum_vrrp::PRIORITY_OWNER {
            return false;
        }
        let all = self.shared.status.borrow();
        members.iter().any(|m| all.get(m).is_some_and(|s| s.outranked))
    }

    /// Puts the instance in BACKUP with a fresh Master_Down timer (from MASTER: a priority-0
    /// advert first, so the peer takes over after Skew_Time, and the addresses released). The
    /// core has no direct MASTER → BACKUP input, so this passes through FAULT, which is not
    /// shown: no FAULT log line, notify script or guard message.
    fn reset_to_backup(&mut self) {
        let was = self.vr.state();
        let now = Instant::now();
        self.vr.set_fault(true, now);
        self.vr.set_fault(false, now);
        while let Some(action) = self.vr.poll_action() {
            if let Action::SendAdvert { priority } = action {
                self.send_advert(priority);
            }
        }
        if was == State::Master {
            self.remove_vips();
            self.garp_due = None;
            self.garp_refresh_due = None;
            self.guard.send(&format!("state\t{}\tOTHER\n", self.p.model.name));
            self.state_changed(State::Master, State::Backup);
        }
        self.publish();
    }
}
