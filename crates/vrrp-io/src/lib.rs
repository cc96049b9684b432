//! The VRRP runtime of fulcrum: real sockets, netlink and processes around the sans-IO core of
//! [`fulcrum_vrrp`].
//!
//! - [`socket`]: raw `IPPROTO_VRRP` sockets bound to the interface (multicast or unicast peers),
//!   TTL/hop limit 255, received packets checked (IPv4 header and TTL 255, IPv6 hop limit 255
//!   via `IPV6_RECVHOPLIMIT`, peers, own packets).
//! - [`netlink`]: a small hand-written rtnetlink client (link, addresses, add/remove one address).
//! - [`announce`]: gratuitous ARP (AF_PACKET) and unsolicited neighbour advertisements.
//! - [`vmac`]: `use_vmac`, the macvlan interface with the virtual router MAC that holds the
//!   virtual addresses.
//! - [`firewall`]: `no_accept`, nftables rules dropping traffic to the virtual addresses of a
//!   master.
//! - a driver task per instance (tracking, notify scripts, sync groups), and
//! - [`guard`]: a helper process that releases the addresses if the main process dies without a
//!   clean shutdown.
//!
//! The crate denies unsafe code except in one private module (`packet_addr`): a `sockaddr_ll`
//! for AF_PACKET and `recvmsg` into initialised buffers, which socket2 offers no safe API for.
//!
//! [`Runtime::start`] clears the configured VIPs left on the interfaces by an earlier run that
//! crashed (keepalived leaves them: a split-brain cause), only those exact addresses, and the
//! instance's `no_accept` table if one was left.
#![deny(unsafe_code)]

pub mod announce;
mod driver;
mod error;
pub mod firewall;
pub mod guard;
pub mod netlink;
mod packet_addr;
mod scripts;
pub mod socket;
mod sync_group;
pub mod vmac;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};

use fulcrum_model::{Vrrp, VrrpInstance, VrrpState, VrrpSyncGroup};
use fulcrum_vrrp::{Auth, Config, InitialState, State, Version};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use driver::state_name;
pub use error::{Error, Failed, InstanceError};
pub use fulcrum_vrrp::State as VrrpRunState;

/// What the binary tells the runtime about backends (`track_backend`): polled once per advert
/// interval.
pub trait BackendStatus: Send + Sync {
    /// Whether backend `name` has at least one usable server.
    fn backend_usable(&self, name: &str) -> bool;
}

/// One instance as the stats page and metrics see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStatus {
    /// Current state.
    pub state: State,
    /// Effective priority (base plus tracking weights).
    pub priority: u8,
    /// A tracked object of this instance itself is down.
    pub own_fault: bool,
    /// The master it follows (backup), if known.
    pub master: Option<IpAddr>,
    /// BACKUP because it follows a master of higher or equal priority: the other members of
    /// its sync group follow it to BACKUP (keepalived's `vrrp_sync_backup`).
    pub outranked: bool,
    /// MASTER, or BACKUP whose Master_Down timer expired while its sync group held it back
    /// (keepalived's `wantstate` MASTER): a sync group goes MASTER when every member wants it.
    pub wants_master: bool,
}

/// Options of [`Runtime::start`].
#[derive(Clone, Default)]
pub struct RuntimeOptions {
    /// The program to run as `PROGRAM vrrp-guard` (normally the fulcrum binary itself); None:
    /// no crash guard.
    pub guard_program: Option<PathBuf>,
    /// `track_backend` answers.
    pub backends: Option<Arc<dyn BackendStatus>>,
}

/// State the instance tasks share.
pub(crate) struct Shared {
    pub status: watch::Sender<BTreeMap<String, InstanceStatus>>,
    pub scripts: scripts::ScriptChecks,
    /// Set at start, or later when a reload adds the proxy to a node that ran VRRP alone.
    pub backends: Mutex<Option<Arc<dyn BackendStatus>>>,
}

/// The write end of the guard's pipe (shared by the instance tasks).
#[derive(Clone, Default)]
pub(crate) struct GuardLink(Arc<Mutex<Option<ChildStdin>>>);

impl GuardLink {
    pub fn send(&self, line: &str) {
        let mut pipe = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = pipe.as_mut() {
            if let Err(e) = p.write_all(line.as_bytes()).and_then(|()| p.flush()) {
                tracing::error!("VRRP crash guard is gone ({e}): addresses will not be released on a crash");
                *pipe = None;
            }
        }
    }
}

/// The model instance plus the definitions of the scripts it tracks and of its sync group: an
/// instance restarts on reload when this changes.
type Fingerprint = (VrrpInstance, Vec<fulcrum_model::VrrpScript>, Option<VrrpSyncGroup>);

struct Running {
    fingerprint: Fingerprint,
    commands: mpsc::Sender<driver::DriverCommand>,
    task: JoinHandle<()>,
}

/// A configuration checked against the running instances, with everything that can fail done:
/// the new and changed instances are prepared (interface and source address resolved, socket
/// open) but not started, and nothing running was touched. [`Runtime::commit`] then stops the
/// changed and removed instances and starts the prepared ones, which cannot fail any more; a
/// configuration that cannot be staged leaves every running instance as it is. Dropping a
/// `Staged` closes its sockets.
pub struct Staged {
    vrrp: Vrrp,
    /// Running instances to stop: changed or removed.
    stop: Vec<String>,
    start: Vec<(Fingerprint, Launch)>,
}

/// A staged instance: ready to run, or (with `use_vmac`) checked and to be prepared at launch,
/// because preparing creates its VMAC, which the instance it replaces still holds.
enum Launch {
    Ready(Box<driver::Ready>),
    Vmac(Box<VrrpInstance>),
}

impl Staged {
    /// Prepares the instances of `vrrp` that do not run as configured in `running`; every error,
    /// one per line.
    fn new(vrrp: &Vrrp, running: &HashMap<String, Running>) -> Result<Staged, Error> {
        let wanted: HashMap<&str, Fingerprint> =
            vrrp.instances.iter().map(|i| (i.name.as_str(), fingerprint(vrrp, i))).collect();
        let mut stop: Vec<String> = running
            .iter()
            .filter(|(name, r)| wanted.get(name.as_str()) != Some(&r.fingerprint))
            .map(|(name, _)| name.clone())
            .collect();
        stop.sort();
        let mut start = Vec::new();
        let mut errors = Vec::new();
        for i in &vrrp.instances {
            let Some(wanted) = wanted.get(i.name.as_str()) else { continue };
            if running.get(&i.name).is_some_and(|r| r.fingerprint == *wanted) {
                continue;
            }
            if i.use_vmac.is_some() {
                match netlink::link(&i.interface) {
                    Ok(_) => start.push((wanted.clone(), Launch::Vmac(Box::new(i.clone())))),
                    Err(source) => errors.push(Failed::new(
                        &i.name,
                        InstanceError::Interface { interface: i.interface.clone(), source },
                    )),
                }
                continue;
            }
            match prepare(vrrp, i).and_then(driver::Ready::open) {
                Ok(ready) => start.push((wanted.clone(), Launch::Ready(Box::new(ready)))),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(Staged { vrrp: vrrp.clone(), stop, start })
        } else {
            Err(Error::Instances(errors))
        }
    }
}

/// The running VRRP instances.
pub struct Runtime {
    shared: Arc<Shared>,
    guard: GuardLink,
    guard_child: Option<Child>,
    running: HashMap<String, Running>,
}

fn fingerprint(vrrp: &Vrrp, i: &VrrpInstance) -> Fingerprint {
    let scripts = vrrp.scripts.iter().filter(|s| i.track_scripts.iter().any(|t| t.name == s.name)).cloned().collect();
    let group = vrrp.sync_groups.iter().find(|g| g.instances.contains(&i.name)).cloned();
    (i.clone(), scripts, group)
}

/// Builds the core configuration and I/O parameters of one instance (reads the interface).
fn prepare(vrrp: &Vrrp, i: &VrrpInstance) -> Result<driver::Prepared, Failed> {
    let name = &i.name;
    let link = netlink::link(&i.interface)
        .map_err(|source| Failed::new(name, InstanceError::Interface { interface: i.interface.clone(), source }))?;
    let v6 = i.vips.first().is_some_and(|v| v.addr.is_ipv6());
    let version = if i.version == 3 { Version::V3 } else { Version::V2 };
    let src = match i.unicast_src_ip {
        Some(src) => src,
        None => {
            socket::primary_address(link.index, v6).map_err(|e| Failed::new(name, InstanceError::SourceAddress(e)))?
        }
    };
    let vips: Vec<IpAddr> = i.vips.iter().map(|v| v.addr).collect();
    let mut config = Config::new(version, i.vrid, i.priority, src, vips.clone());
    config.advert_interval = i.advert_int;
    config.auth = i.auth_pass.as_deref().map(|p| Auth::pass(p.as_bytes())).unwrap_or(Auth::None);
    config.initial_state = if i.state == VrrpState::Master { InitialState::Master } else { InitialState::Backup };
    config.nopreempt = i.nopreempt;
    config.preempt_delay = i.preempt_delay;
    config.validate().map_err(|e| Failed::new(name, e))?;
    let destinations = if i.unicast_peers.is_empty() {
        socket::Destinations::Multicast
    } else {
        socket::Destinations::Unicast(i.unicast_peers.clone())
    };
    let firewall = no_accept_rules(i, &vips);
    let group = vrrp.sync_groups.iter().find(|g| g.instances.contains(name)).cloned();
    // Last, as it changes the system: the VMAC (adverts go out of it with multicast; unicast
    // adverts stay on the base interface, whose address the peers send to).
    let multicast = destinations == socket::Destinations::Multicast;
    let vmac = match &i.use_vmac {
        Some(vmac_name) => {
            let link_local = match src {
                IpAddr::V6(ll) if multicast => Some(ll),
                _ => None,
            };
            Some(
                vmac::setup(vmac_name, &link, i.vrid, link_local)
                    .map_err(|source| Failed::new(name, InstanceError::Vmac { name: vmac_name.clone(), source }))?,
            )
        }
        None => None,
    };
    let (socket_if, socket_index) = match &vmac {
        Some(v) if multicast => (v.name.clone(), v.index),
        _ => (i.interface.clone(), link.index),
    };
    let guard = guard::GuardInstance {
        name: name.clone(),
        spec: socket::SocketSpec { interface: socket_if, ifindex: socket_index, src, destinations },
        version,
        vrid: i.vrid,
        interval: i.advert_int,
        auth: config.auth.clone(),
        vips: i.vips.iter().map(|v| (v.addr, v.prefix)).collect(),
        vip_ifindex: vmac.as_ref().map_or(link.index, |v| v.index),
        vmac: vmac.as_ref().map(|v| v.name.clone()),
        firewall: firewall.as_ref().map(|(_, rules)| rules.table.clone()),
    };
    let (vip_interface, mac) = match &vmac {
        Some(v) => (v.name.clone(), v.mac),
        None => (i.interface.clone(), link.mac),
    };
    Ok(driver::Prepared {
        model: i.clone(),
        config,
        guard,
        base_ifindex: link.index,
        vip_interface,
        mac,
        vmac,
        firewall,
        group,
    })
}

/// `no_accept` (or `vrrp_strict` without `accept`), unless the instance is the address owner
/// (priority 255), which always accepts: the rules and the `nft` program to apply them.
fn no_accept_rules(i: &VrrpInstance, vips: &[IpAddr]) -> Option<(PathBuf, firewall::NoAccept)> {
    let no_accept = i.accept == Some(false) || (i.strict && i.accept.is_none());
    if !no_accept || i.priority == fulcrum_vrrp::PRIORITY_OWNER {
        return None;
    }
    let Some(nft) = firewall::nft_program() else {
        tracing::error!(
            "VRRP_Instance({}): no_accept needs nftables: {}; until then, as MASTER it accepts traffic to its virtual addresses",
            i.name,
            firewall::NFT_MISSING
        );
        return None;
    };
    Some((nft, firewall::NoAccept { table: firewall::table_name(&i.name, i.vrid), vips: vips.to_vec() }))
}

impl Runtime {
    /// Starts every instance of `vrrp` (and the crash guard): all of them, or none when one
    /// cannot be prepared. Must run inside a Tokio runtime.
    pub fn start(vrrp: &Vrrp, options: RuntimeOptions) -> Result<Runtime, Error> {
        Runtime::start_staged(Runtime::stage_new(vrrp)?, options)
    }

    /// Prepares every instance of `vrrp` for [`Runtime::start_staged`] (sockets open, nothing
    /// started). Must run inside a Tokio runtime.
    pub fn stage_new(vrrp: &Vrrp) -> Result<Staged, Error> {
        Staged::new(vrrp, &HashMap::new())
    }

    /// Starts the crash guard and the instances staged by [`Runtime::stage_new`]; fails only
    /// when the guard cannot be started.
    pub fn start_staged(staged: Staged, options: RuntimeOptions) -> Result<Runtime, Error> {
        let (guard, guard_child) = match &options.guard_program {
            Some(program) => {
                let mut child = Command::new(program)
                    .arg("vrrp-guard")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .process_group(0)
                    .spawn()
                    .map_err(|source| Error::Guard { program: program.clone(), source })?;
                (GuardLink(Arc::new(Mutex::new(child.stdin.take()))), Some(child))
            }
            None => (GuardLink::default(), None),
        };
        let shared = Arc::new(Shared {
            status: watch::channel(BTreeMap::new()).0,
            scripts: scripts::ScriptChecks::default(),
            backends: Mutex::new(options.backends),
        });
        let mut runtime = Runtime { shared, guard, guard_child, running: HashMap::new() };
        runtime.launch(staged);
        Ok(runtime)
    }

    /// Gives the instances their `track_backend` answers (a reload started the proxy).
    pub fn set_backends(&self, backends: Arc<dyn BackendStatus>) {
        *self.shared.backends.lock().unwrap_or_else(|e| e.into_inner()) = Some(backends);
    }

    /// Per-instance state and priority, for the stats page and metrics.
    pub fn status(&self) -> watch::Receiver<BTreeMap<String, InstanceStatus>> {
        self.shared.status.subscribe()
    }

    /// Applies a new configuration, all or nothing: unchanged instances keep running, changed
    /// ones restart, removed ones stop (releasing their addresses), new ones start. When an
    /// instance cannot be prepared (missing interface, no address, socket), nothing changes.
    pub async fn reload(&mut self, vrrp: &Vrrp) -> Result<(), Error> {
        let staged = self.stage(vrrp)?;
        self.commit(staged).await;
        Ok(())
    }

    /// First half of [`Runtime::reload`]: prepares the new and changed instances of `vrrp`
    /// without touching the running ones.
    pub fn stage(&self, vrrp: &Vrrp) -> Result<Staged, Error> {
        Staged::new(vrrp, &self.running)
    }

    /// Second half of [`Runtime::reload`]: stops the changed and removed instances, then starts
    /// the staged ones. `staged` must come from [`Runtime::stage`] on this runtime, with no
    /// other reload in between.
    pub async fn commit(&mut self, staged: Staged) {
        for name in &staged.stop {
            if let Some(r) = self.running.remove(name) {
                stop(r).await;
                if !staged.vrrp.instances.iter().any(|i| i.name == *name) {
                    self.guard.send(&format!("forget\t{name}\n"));
                }
                self.shared.status.send_modify(|all| {
                    all.remove(name);
                });
            }
        }
        self.launch(staged);
    }

    /// Starts the staged instances (the ones they replace are stopped already). An instance
    /// with `use_vmac` is prepared only now, once the instance it replaces has deleted its
    /// VMAC (of the same name); if that fails, it is reported and the others start.
    fn launch(&mut self, staged: Staged) {
        self.shared.scripts.sync(&staged.vrrp.scripts);
        for (fingerprint, launch) in staged.start {
            let ready = match launch {
                Launch::Ready(ready) => *ready,
                Launch::Vmac(i) => match prepare(&staged.vrrp, &i).and_then(driver::Ready::open) {
                    Ok(ready) => ready,
                    Err(e) => {
                        tracing::error!("{e}");
                        continue;
                    }
                },
            };
            clear_leftovers(&ready.prepared.model, &ready.prepared);
            let g = &ready.prepared.guard;
            self.guard.send(&g.to_line());
            let name = g.name.clone();
            let (tx, rx) = mpsc::channel(1);
            let (shared, guard) = (self.shared.clone(), self.guard.clone());
            let task = tokio::spawn(async move {
                if let Err(e) = driver::run(ready, shared, guard, rx).await {
                    tracing::error!("{e}");
                }
            });
            tracing::info!("VRRP_Instance({name}) started");
            self.running.insert(name, Running { fingerprint, commands: tx, task });
        }
    }

    /// Clean shutdown: every master sends a priority-0 advert and releases its addresses; then
    /// the guard is told to exit quietly.
    pub async fn shutdown(mut self) {
        for (_, r) in self.running.drain() {
            stop(r).await;
        }
        self.shared.scripts.stop();
        self.guard.send("clean\n");
        *self.guard.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if let Some(mut child) = self.guard_child.take() {
            let _ = tokio::task::spawn_blocking(move || child.wait()).await;
        }
    }

    /// For tests: stop every task and close the guard pipe without a clean shutdown and without
    /// releasing anything, exactly as a SIGKILL of the process would look to the guard. Returns
    /// the guard process so the caller can wait for it.
    pub fn abandon(mut self) -> Option<Child> {
        for (_, r) in self.running.drain() {
            r.task.abort();
        }
        self.shared.scripts.stop();
        *self.guard.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.guard_child.take()
    }
}

/// What an earlier run that died may have left: the instance's addresses (a backup must not
/// hold them: split brain; only the exact configured VIPs are touched, on the base interface
/// and the VMAC) and its `no_accept` table.
fn clear_leftovers(i: &VrrpInstance, prepared: &driver::Prepared) {
    let mut indexes = vec![prepared.base_ifindex, prepared.guard.vip_ifindex];
    indexes.dedup();
    for index in indexes {
        for (addr, prefix) in &prepared.guard.vips {
            if let Ok(true) = netlink::remove_address(index, *addr, *prefix) {
                tracing::warn!("VRRP_Instance({}): removed {addr}/{prefix} left by an earlier run", i.name);
            }
        }
    }
    if let Some(nft) = firewall::nft_program() {
        let table = firewall::table_name(&i.name, i.vrid);
        if let Err(e) = firewall::unblock(&nft, &table) {
            tracing::warn!("VRRP_Instance({}): cannot delete nftables table {table}: {e}", i.name);
        }
    }
}

async fn stop(r: Running) {
    let (done, wait) = oneshot::channel();
    if r.commands.send(driver::DriverCommand::Shutdown(done)).await.is_ok() {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), wait).await;
    }
    r.task.abort();
}

/// `fulcrum vrrp-guard`: reads standard input until a clean shutdown or end of file.
pub fn guard_main() -> std::process::ExitCode {
    let stdin = std::io::stdin().lock();
    match guard::run_guard(stdin) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fulcrum vrrp-guard: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
