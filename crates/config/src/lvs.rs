//! An LVS virtual service as fulcrum runs it: a frontend on the virtual address and a backend
//! of the same name, in `mode tcp` or `mode udp`, with the IPVS timeouts. keepalived's
//! `virtual_server` and ipvsadm's `-A` both make them here.
use std::net::SocketAddr;

use fulcrum_model::{
    Algorithm, Backend, Frontend, IpvsTimeouts, Lvs, LvsMethod, LvsService, Mode, Origin, Persistence, Quorum, Server,
};

/// What a virtual service is made of.
pub(crate) struct ServiceParts {
    pub name: String,
    pub origin: Origin,
    pub binds: Vec<SocketAddr>,
    pub udp: bool,
    pub lvs: Lvs,
    pub method: LvsMethod,
    pub one_packet: bool,
    pub persistence: Option<Persistence>,
    pub quorum: Option<Quorum>,
    pub servers: Vec<Server>,
}

/// The frontend and backend of a virtual service. A refused connection to a real server is
/// retried and sent to another (the proxy can, the kernel cannot); idle connections and flows
/// live as long as IPVS lets them (`timeouts`).
pub(crate) fn virtual_service(parts: ServiceParts, timeouts: &IpvsTimeouts) -> (Frontend, Backend) {
    let mode = if parts.udp { Mode::Udp } else { Mode::Tcp };
    let idle = if parts.udp { timeouts.udp } else { timeouts.tcp };
    let mut backend = Backend::new(parts.name.clone());
    backend.origin = parts.origin.clone();
    backend.mode = mode;
    backend.algorithm = Algorithm::Lvs(parts.lvs);
    backend.servers = parts.servers;
    backend.persistence = parts.persistence;
    backend.quorum = parts.quorum;
    backend.lvs = Some(LvsService { udp: parts.udp, method: parts.method, one_packet: parts.one_packet });
    backend.redispatch = true;
    backend.timeout_server = idle;
    backend.timeout_tunnel = Some(idle);
    backend.timeout_server_fin = (!parts.udp).then_some(timeouts.tcpfin);
    let mut frontend = Frontend::new(parts.name.clone());
    frontend.origin = parts.origin;
    frontend.mode = mode;
    frontend.binds = parts.binds;
    frontend.default_backend = Some(parts.name);
    frontend.timeout_client = idle;
    frontend.timeout_client_fin = (!parts.udp).then_some(timeouts.tcpfin);
    (frontend, backend)
}

/// Applies new IPVS timeouts to the virtual services of a model.
pub(crate) fn retime(frontends: &mut [Frontend], backends: &mut [Backend], timeouts: &IpvsTimeouts) {
    for be in backends.iter_mut() {
        let Some(lvs) = &be.lvs else { continue };
        let idle = if lvs.udp { timeouts.udp } else { timeouts.tcp };
        be.timeout_server = idle;
        be.timeout_tunnel = Some(idle);
        be.timeout_server_fin = (!lvs.udp).then_some(timeouts.tcpfin);
        if let Some(fe) = frontends.iter_mut().find(|f| f.default_backend.as_deref() == Some(be.name.as_str())) {
            fe.timeout_client = idle;
            fe.timeout_client_fin = (!lvs.udp).then_some(timeouts.tcpfin);
        }
    }
}
