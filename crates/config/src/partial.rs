//! What one configuration file contributes before files are combined and validated: its
//! frontends and backends, the global settings it states explicitly, and the places where it
//! names backends and binds addresses (so messages can point at those lines).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use fulcrum_model::{Backend, Frontend, Global, Origin};

#[derive(Debug, Clone, Default)]
pub(crate) struct Partial {
    pub frontends: Vec<Frontend>,
    pub backends: Vec<Backend>,
    pub global: GlobalPatch,
    pub backend_refs: Vec<BackendRef>,
    pub binds: Vec<BindRef>,
    /// Frontends with a `bind`, `default_backend` or `use_backend` line in error: checks of the
    /// whole configuration skip them rather than repeat the problem.
    pub incomplete: Vec<String>,
    /// VRRP instances, scripts and sync groups (keepalived.conf or `[vrrp]` in TOML).
    pub vrrp: fulcrum_model::vrrp::Vrrp,
    /// Where the keywords of each VRRP object were written.
    pub vrrp_spots: Vec<Spots>,
    /// `peers` sections.
    pub peers: Vec<fulcrum_model::Peers>,
    /// `userlist` sections.
    pub userlists: Vec<fulcrum_model::Userlist>,
}

/// Global settings a file states explicitly; a later file's settings override earlier ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct GlobalPatch {
    pub maxconn: Option<u32>,
    pub nbthread: Option<usize>,
    pub access_log: Option<PathBuf>,
    pub hard_stop_after: Option<Duration>,
    pub bufsize: Option<usize>,
    pub maxrewrite: Option<usize>,
    pub max_headers: Option<usize>,
    pub ipvs_timeouts: Option<fulcrum_model::IpvsTimeouts>,
    pub control_socket: Option<PathBuf>,
    pub tls_cache_size: Option<usize>,
    pub h2: Option<fulcrum_model::H2Settings>,
    pub local_peer: Option<String>,
}

impl GlobalPatch {
    pub(crate) fn apply(&self, global: &mut Global) {
        if let Some(v) = self.maxconn {
            global.maxconn = v;
        }
        if let Some(v) = self.nbthread {
            global.nbthread = Some(v);
        }
        if let Some(v) = &self.access_log {
            global.access_log = Some(v.clone());
        }
        if let Some(v) = self.hard_stop_after {
            global.hard_stop_after = v;
        }
        if let Some(v) = self.bufsize {
            global.bufsize = v;
        }
        if let Some(v) = self.maxrewrite {
            global.maxrewrite = v;
        }
        if let Some(v) = self.max_headers {
            global.max_headers = v;
        }
        if let Some(v) = self.ipvs_timeouts {
            global.ipvs_timeouts = v;
        }
        if let Some(v) = &self.control_socket {
            global.control_socket = Some(v.clone());
        }
        if let Some(v) = self.tls_cache_size {
            global.tls_cache_size = v;
        }
        if let Some(v) = self.h2 {
            global.h2 = v;
        }
        if let Some(v) = &self.local_peer {
            global.local_peer = Some(v.clone());
        }
    }
}

/// A `default_backend` or `use_backend` line, checked once every file is read.
#[derive(Debug, Clone)]
pub(crate) struct BackendRef {
    pub frontend: String,
    pub backend: String,
    pub origin: Origin,
}

/// A listening address and the line that asked for it.
#[derive(Debug, Clone)]
pub(crate) struct BindRef {
    pub frontend: String,
    pub addr: SocketAddr,
    /// A UDP address: it may share its number with a TCP one.
    pub udp: bool,
    pub origin: Origin,
}

/// Where the keywords of one VRRP object (instance, sync group) were written, so the
/// checks of the whole configuration point at the line that needs the fix. Objects are told
/// apart by their kind and origin.
#[derive(Debug, Clone, Default)]
pub(crate) struct Spots {
    /// "vrrp_instance" or "vrrp_sync_group": a one-line file may start both on one line.
    pub kind: &'static str,
    pub origin: Origin,
    /// Keyword and line; list keywords (`vip`, `track_script`, ...) once per item, in order.
    pub keys: Vec<(&'static str, usize)>,
    /// Keywords whose value was already reported as wrong: the checks of the whole
    /// configuration do not report them again (e.g. as missing).
    pub reported: Vec<&'static str>,
}

impl Spots {
    pub(crate) fn new(kind: &'static str, origin: Origin) -> Self {
        Spots { kind, origin, keys: Vec::new(), reported: Vec::new() }
    }

    pub(crate) fn add(&mut self, key: &'static str, line: usize) {
        self.keys.push((key, line));
    }

    /// Where the `nth` `key` was written, else the object's own line.
    /// Whether the file set `key` for this object.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.keys.iter().any(|(k, _)| *k == key)
    }

    pub(crate) fn at(&self, key: &str, nth: usize) -> Origin {
        let line = self.keys.iter().filter(|(k, _)| *k == key).nth(nth).map(|(_, l)| *l);
        Origin { file: self.origin.file.clone(), line: line.unwrap_or(self.origin.line) }
    }

    pub(crate) fn was_reported(&self, key: &str) -> bool {
        self.reported.contains(&key)
    }
}
