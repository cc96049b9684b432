//! An ipvsadm command applied to a Model: services are a `mode tcp`/`mode udp` frontend and
//! backend named `IP:PORT` (`IP:PORT/udp`), real servers are servers named `IP:PORT`. Only
//! LVS services (from keepalived.conf, rules files and `ctl`) are ipvsadm's table; a
//! haproxy.cfg proxy is not touched.
use fulcrum_model::{Lvs, LvsMethod, LvsScheduler, Model, Origin, Persistence, Server};

use super::{Command, DestSpec, Forward, IpvsError, Service, ServiceSpec};
use crate::lvs::{retime, virtual_service, ServiceParts};

/// What applying a command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The Model changed: the caller applies it.
    Changed,
    /// A command that changes nothing in the Model (listing, zeroing counters, help).
    Unchanged,
}

/// The frontend and backend name of a service.
pub fn service_name(service: &Service) -> Result<String, IpvsError> {
    match service {
        Service::Tcp(a) => Ok(a.to_string()),
        Service::Udp(a) => Ok(format!("{a}/udp")),
        Service::Sctp(_) => Err(IpvsError::op("SCTP services are not supported by fulcrum")),
        Service::Fwmark(..) => Err(IpvsError::op(
            "fwmark services are not supported: fulcrum does not read packet marks (give the addresses as TCP or UDP services)",
        )),
    }
}

fn forward_method(f: Forward) -> LvsMethod {
    match f {
        Forward::Route => LvsMethod::Dr,
        Forward::Masq => LvsMethod::Nat,
        Forward::Tunnel => LvsMethod::Tun,
    }
}

fn lvs_of(spec: &ServiceSpec) -> Result<Lvs, IpvsError> {
    let scheduler = LvsScheduler::from_name(&spec.scheduler)
        .ok_or_else(|| IpvsError::op("Scheduler or persistence engine not found"))?;
    let mut lvs = Lvs::new(scheduler);
    lvs.port = spec.flags.iter().any(|f| f.ends_with("-port"));
    lvs.fallback = spec.flags.iter().any(|f| f.ends_with("-fallback"));
    Ok(lvs)
}

fn persistence_of(spec: &ServiceSpec) -> Option<Persistence> {
    let timeout = std::time::Duration::from_secs(u64::from(spec.persistent?));
    let v6 = spec.service.addr().is_some_and(|a| a.is_ipv6());
    let (prefix_v4, prefix_v6) = match spec.netmask {
        Some(p) if v6 => (32, p),
        Some(p) => (p, 128),
        None => (32, 128),
    };
    Some(Persistence { timeout, prefix_v4, prefix_v6 })
}

/// Whether `name` is an LVS service of the model.
fn is_service(model: &Model, name: &str) -> bool {
    model.backends.iter().any(|b| b.name == name && b.lvs.is_some())
}

/// Applies `cmd`; errors are ipvsadm's ("Service already exists", "No such service", ...).
pub fn apply(model: &mut Model, cmd: &Command) -> Result<Applied, IpvsError> {
    match cmd {
        Command::AddService(spec) => {
            let name = service_name(&spec.service)?;
            if is_service(model, &name) || model.backends.iter().any(|b| b.name == name) {
                return Err(IpvsError::op("Service already exists"));
            }
            let addr = spec.service.addr().ok_or_else(|| IpvsError::op("Service not defined"))?;
            if addr.port() == 0 {
                return Err(IpvsError::op(
                    "port 0 (every port of the address) is not served by fulcrum: a proxy listens on given ports; add one service per port",
                ));
            }
            if model.frontends.iter().any(|f| {
                f.binds.contains(&addr)
                    && (f.mode == fulcrum_model::Mode::Udp) == matches!(spec.service, Service::Udp(_))
            }) {
                return Err(IpvsError::op(format!("{addr} is already served by another frontend")));
            }
            let parts = ServiceParts {
                name,
                origin: Origin::default(),
                binds: vec![addr],
                udp: matches!(spec.service, Service::Udp(_)),
                lvs: lvs_of(spec)?,
                method: LvsMethod::Dr,
                one_packet: spec.ops,
                persistence: persistence_of(spec),
                quorum: None,
                servers: Vec::new(),
            };
            let (fe, be) = virtual_service(parts, &model.global.ipvs_timeouts);
            model.frontends.push(fe);
            model.backends.push(be);
            Ok(Applied::Changed)
        }
        Command::EditService(spec) => {
            let name = service_name(&spec.service)?;
            let lvs = lvs_of(spec)?;
            let be = model
                .backends
                .iter_mut()
                .find(|b| b.name == name && b.lvs.is_some())
                .ok_or_else(|| IpvsError::op("No such service"))?;
            be.algorithm = fulcrum_model::Algorithm::Lvs(lvs);
            be.persistence = persistence_of(spec);
            if let Some(l) = be.lvs.as_mut() {
                l.one_packet = spec.ops;
            }
            Ok(Applied::Changed)
        }
        Command::DeleteService(service) => {
            let name = service_name(service)?;
            if !is_service(model, &name) {
                return Err(IpvsError::op("No such service"));
            }
            model.backends.retain(|b| b.name != name);
            model.frontends.retain(|f| f.default_backend.as_deref() != Some(name.as_str()) || f.name != name);
            Ok(Applied::Changed)
        }
        Command::Clear => {
            let names: Vec<String> =
                model.backends.iter().filter(|b| b.lvs.is_some()).map(|b| b.name.clone()).collect();
            model.backends.retain(|b| b.lvs.is_none());
            model.frontends.retain(|f| !names.contains(&f.name));
            Ok(Applied::Changed)
        }
        Command::AddServer(dest) => {
            let be = service_backend(model, &dest.service, "Service not defined")?;
            let name = dest.addr.to_string();
            if be.servers.iter().any(|s| s.name == name) {
                return Err(IpvsError::op("Destination already exists"));
            }
            let mut server = Server::new(name, dest.addr);
            set_dest(&mut server, dest);
            // Before the sorry server, if there is one: it stays last.
            let at = be.servers.iter().position(|s| s.backup).unwrap_or(be.servers.len());
            be.servers.insert(at, server);
            Ok(Applied::Changed)
        }
        Command::EditServer(dest) => {
            let be = service_backend(model, &dest.service, "Service not defined")?;
            let name = dest.addr.to_string();
            let server =
                be.servers.iter_mut().find(|s| s.name == name).ok_or_else(|| IpvsError::op("No such destination"))?;
            set_dest(server, dest);
            Ok(Applied::Changed)
        }
        Command::DeleteServer(service, addr) => {
            let be = service_backend(model, service, "Service not defined")?;
            let name = addr.to_string();
            let before = be.servers.len();
            be.servers.retain(|s| s.name != name);
            if be.servers.len() == before {
                return Err(IpvsError::op("No such destination"));
            }
            Ok(Applied::Changed)
        }
        Command::Set(tcp, tcpfin, udp) => {
            let t = &mut model.global.ipvs_timeouts;
            let secs = |n: &u32| std::time::Duration::from_secs(u64::from(*n));
            if *tcp != 0 {
                t.tcp = secs(tcp);
            }
            if *tcpfin != 0 {
                t.tcpfin = secs(tcpfin);
            }
            if *udp != 0 {
                t.udp = secs(udp);
            }
            let timeouts = *t;
            retime(&mut model.frontends, &mut model.backends, &timeouts);
            Ok(Applied::Changed)
        }
        Command::Zero(Some(service)) => {
            service_backend(model, service, "No such service")?;
            Ok(Applied::Unchanged)
        }
        Command::List(_)
        | Command::Zero(None)
        | Command::Save { .. }
        | Command::Restore
        | Command::Help
        | Command::Version => Ok(Applied::Unchanged),
    }
}

fn set_dest(server: &mut Server, dest: &DestSpec) {
    server.weight = dest.weight;
    server.upper_threshold = dest.upper;
    server.lower_threshold = dest.lower;
    server.forward = Some(forward_method(dest.forward));
}

fn service_backend<'m>(
    model: &'m mut Model,
    service: &Service,
    missing: &str,
) -> Result<&'m mut fulcrum_model::Backend, IpvsError> {
    let name = service_name(service)?;
    model.backends.iter_mut().find(|b| b.name == name && b.lvs.is_some()).ok_or_else(|| IpvsError::op(missing))
}
