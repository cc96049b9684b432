//! One task per VRRP instance: it feeds received adverts and timer expiries to the sans-IO
//! [`fulcrum_vrrp::Instance`] and carries out its actions (send, add/remove addresses and the
//! `no_accept` rules, gratuitous ARP, notify scripts), applies tracking (interfaces, scripts,
//! backends, sync group), and deletes the instance's VMAC when it stops.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fulcrum_model::{VrrpInstance, VrrpSyncGroup};

use crate::error::{Failed, InstanceError};
use fulcrum_vrrp::{decode, encode, Action, AdvertOutcome, Config, Instance, State, PRIORITY_OWNER, PRIORITY_STOP};
use tokio::sync::{mpsc, oneshot};

use crate::announce::Announcer;
use crate::socket::AsyncVrrpSocket;
use crate::{sync_group, GuardLink, InstanceStatus, Shared};

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
    /// The sync group the instance is in, if any.
    pub group: Option<VrrpSyncGroup>,
}

/// A prepared instance with its sockets open: starting it cannot fail on the interface any
/// more.
#[derive(Debug)]
pub struct Ready {
    pub prepared: Prepared,
    socket: AsyncVrrpSocket,
    announcer: Announcer,
}

impl Ready {
    /// Opens the instance's VRRP socket and its gratuitous ARP/NA sockets (needs a Tokio
    /// runtime).
    /// On failure, a VMAC created for the instance is removed again.
    pub fn open(prepared: Prepared) -> Result<Ready, Failed> {
        let opened = Ready::open_sockets(&prepared);
        match opened {
            Ok((socket, announcer)) => Ok(Ready { prepared, socket, announcer }),
            Err(e) => {
                if let Some(vmac) = &prepared.vmac {
                    crate::vmac::teardown(vmac);
                }
                Err(e)
            }
        }
    }

    fn open_sockets(prepared: &Prepared) -> Result<(AsyncVrrpSocket, Announcer), Failed> {
        let name = &prepared.model.name;
        let spec = &prepared.guard.spec;
        let socket = AsyncVrrpSocket::open(spec)
            .map_err(|source| Failed::new(name, InstanceError::Socket { interface: spec.interface.clone(), source }))?;
        let vips: Vec<IpAddr> = prepared.model.vips.iter().map(|v| v.addr).collect();
        let interface = &prepared.vip_interface;
        let announcer = Announcer::open(interface, prepared.guard.vip_ifindex, prepared.mac, &vips)
            .map_err(|source| Failed::new(name, InstanceError::Announce { interface: interface.clone(), source }))?;
        Ok((socket, announcer))
    }
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
    announcer: Announcer,
    shared: Arc<Shared>,
    guard: GuardLink,
    /// The second gratuitous ARP round (`garp_master_delay` after becoming master).
    garp_due: Option<Instant>,
    garp_refresh_due: Option<Instant>,
    own_fault: bool,
    /// BACKUP although its Master_Down timer expired, because the sync group could not go
    /// MASTER yet (keepalived's `wantstate` MASTER). Cleared by accepting a master's advert and
    /// by any state change.
    held_back: bool,
}

/// Runs one instance until told to shut down.
pub async fn run(
    ready: Ready,
    shared: Arc<Shared>,
    guard: GuardLink,
    mut commands: mpsc::Receiver<DriverCommand>,
) -> Result<(), Failed> {
    let Ready { prepared: p, socket, announcer } = ready;
    let vr = match Instance::new(p.config.clone(), Instant::now()) {
        Ok(vr) => vr,
        Err(e) => {
            if let Some(vmac) = &p.vmac {
                crate::vmac::teardown(vmac);
            }
            return Err(Failed::new(&p.model.name, e));
        }
    };
    let mut d = Driver {
        p,
        vr,
        socket,
        announcer,
        shared,
        guard,
        garp_due: None,
        garp_refresh_due: None,
        own_fault: false,
        held_back: false,
    };
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
            changed = states.changed() => if changed.is_ok() { d.apply_group_rules() },
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
                let was_backup = self.vr.state() == State::Backup;
                let outcome = self.vr.handle_advert(&advert, r.ctx.src, Instant::now());
                if was_backup && outcome == AdvertOutcome::Processed && advert.priority != PRIORITY_STOP {
                    // Following a master again: no longer wants MASTER (keepalived sets
                    // wantstate BACKUP when a backup accepts an advert).
                    self.held_back = false;
                }
                tracing::trace!(name = %self.p.model.name, ?outcome, "advert from {}", r.ctx.src);
            }
            Err(e) => tracing::debug!("VRRP_Instance({}): bad advert from {}: {e}", self.p.model.name, r.ctx.src),
        }
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        if self.vr.poll_timeout().is_some_and(|t| t <= now) {
            if self.vr.state() == State::Backup && !self.group_lets_me_master() {
                // The Master_Down timer expired but the group cannot go MASTER yet: stay BACKUP
                // with a fresh timer and want MASTER, so that the group goes MASTER as soon as
                // every member wants it (then the others pull this one along at once).
                if !self.held_back {
                    tracing::debug!("VRRP_Instance({}): waiting for its sync group to go MASTER", self.p.model.name);
                }
                self.vr.force_backup(now);
                self.held_back = true;
                self.publish();
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
        let rounds = self.p.model.garp_master_repeat.max(1);
        for _ in 0..rounds {
            if let Err(e) = self.announcer.announce() {
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
                Action::StateChanged { from, to } => {
                    self.held_back = false;
                    self.state_changed(from, to);
                }
            }
        }
        self.publish();
    }

    fn state_changed(&self, from: State, to: State) {
        let name = &self.p.model.name;
        tracing::info!("VRRP_Instance({name}) Entering {} STATE (was {})", state_name(to), state_name(from));
        self.group_moved(from, to);
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
    }

    /// The group's own transition, once per group as keepalived's `send_group_notifies` (see
    /// [`sync_group::moves_group`] for which member moves the group). It logs
    /// "VRRP_Group(G) Syncing instances to ... state" (keepalived logs it for MASTER, FAULT, and
    /// BACKUP from MASTER) and runs the group's notify scripts (`notify` gets
    /// `GROUP NAME STATE 0`).
    fn group_moved(&self, from: State, to: State) {
        let Some(g) = &self.p.group else { return };
        if !self.with_others(|others| sync_group::moves_group(others, from, to)) {
            return;
        }
        if matches!(to, State::Master | State::Fault) || (to == State::Backup && from == State::Master) {
            tracing::info!("VRRP_Group({}) Syncing instances to {} state", g.name, state_name(to));
        }
        let (script, state) = match to {
            State::Master => (g.notify_master.as_deref(), "MASTER"),
            State::Backup => (g.notify_backup.as_deref(), "BACKUP"),
            State::Fault => (g.notify_fault.as_deref(), "FAULT"),
            State::Initialize => (g.notify_stop.as_deref(), "STOP"),
        };
        if let Some(script) = script {
            crate::scripts::notify(script, &[]);
        }
        if let Some(script) = g.notify.as_deref() {
            crate::scripts::notify(script, &["GROUP", &g.name, state, "0"]);
        }
    }

    /// Runs `f` on the published status of the other members of the group (empty: no group).
    fn with_others<T>(&self, f: impl FnOnce(&sync_group::Others<'_>) -> T) -> T {
        let all = self.shared.status.borrow();
        let others: Vec<Option<&InstanceStatus>> = match &self.p.group {
            Some(g) => g.instances.iter().filter(|m| **m != self.p.model.name).map(|m| all.get(m)).collect(),
            None => Vec::new(),
        };
        f(&others)
    }

    fn publish(&self) {
        let status = InstanceStatus {
            state: self.vr.state(),
            priority: self.vr.effective_priority(),
            own_fault: self.own_fault,
            master: self.vr.current_master().map(|m| m.address),
            outranked: self.vr.state() == State::Backup
                && !self.held_back
                && self.vr.current_master().is_some_and(|m| m.priority >= self.vr.effective_priority()),
            wants_master: match self.vr.state() {
                State::Master => true,
                State::Backup => self.held_back,
                State::Fault | State::Initialize => false,
            },
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
        let backends = self.shared.backends.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(backends) = &backends {
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
            self.apply_group_rules();
        }
    }

    /// Applies the sync-group rules (see [`crate::sync_group`]) after this member's tracking or
    /// another member's status changed.
    fn apply_group_rules(&mut self) {
        let group_fault = self.with_others(sync_group::fault);
        let fault = self.own_fault || group_fault;
        let now = Instant::now();
        if fault != (self.vr.state() == State::Fault) {
            self.vr.set_fault(fault, now);
        }
        if !fault && !self.is_owner() {
            match self.vr.state() {
                // Another member follows a better master: the group goes BACKUP.
                State::Master if self.with_others(sync_group::outranked) => self.vr.force_backup(now),
                // Held back until the group could go MASTER: it can now (another member went
                // MASTER, or the last one that did not want MASTER does now).
                State::Backup if self.held_back && self.with_others(sync_group::can_goto_master) => {
                    self.vr.force_master(now)
                }
                _ => {}
            }
        }
        self.publish();
    }

    fn is_owner(&self) -> bool {
        self.p.config.priority == PRIORITY_OWNER
    }

    /// Whether this member may take over now that its Master_Down timer expired.
    fn group_lets_me_master(&self) -> bool {
        self.is_owner() || self.with_others(sync_group::can_goto_master)
    }
}
