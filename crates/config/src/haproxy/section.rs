//! The state of one proxy section (`defaults`, `frontend`, `backend`, `listen`) while it is
//! read: what the frontend-side and backend-side keywords fill in, and what a `defaults`
//! section hands to the sections after it.
use std::net::SocketAddr;

use crate::acl::AclSet;
use crate::values::Host;
use fulcrum_model::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Defaults,
    Frontend,
    Backend,
    Listen,
}

impl Kind {
    pub(super) fn word(self) -> &'static str {
        match self {
            Kind::Defaults => "defaults",
            Kind::Frontend => "frontend",
            Kind::Backend => "backend",
            Kind::Listen => "listen",
        }
    }

    pub(super) fn has_frontend(self) -> bool {
        matches!(self, Kind::Defaults | Kind::Frontend | Kind::Listen)
    }

    pub(super) fn has_backend(self) -> bool {
        matches!(self, Kind::Defaults | Kind::Backend | Kind::Listen)
    }
}

/// One proxy section while it is read. A `defaults` section is the same state, used as the
/// starting point of the proxies that follow it; each side (`fe`, `be`) is kept even where the
/// section lacks it, and only the sides the section has become Model objects.
#[derive(Debug, Clone)]
pub(super) struct ProxyState {
    pub kind: Kind,
    pub name: String,
    pub line: usize,
    pub fe: Frontend,
    pub be: Backend,
    pub server_defaults: ServerDefaults,
    pub acls: AclSet,
    /// The mode and where it was set (maybe in a defaults section of an earlier file).
    pub mode: Option<(String, Origin)>,
    /// `log ...` (true) or `no log` (false) in effect.
    pub log: Option<bool>,
    pub option_httplog: bool,
    pub default_backend: Option<(String, Origin)>,
    /// Whether `default_backend` was set in this section (a listen otherwise uses itself).
    pub default_backend_here: bool,
    pub use_backends: Vec<(UseBackend, usize)>,
    pub stats_admin: Option<(Condition, usize)>,
    pub binds: Vec<(SocketAddr, usize)>,
    /// With the line when set in this section, None when inherited from defaults.
    pub expect: Option<(Expect, Option<usize>)>,
    pub check_send: Option<(CheckSend, Option<usize>)>,
    /// `tcp-check` rules; `tcp_rules_here`: written in this section (the first one replaces
    /// what defaults gave).
    pub tcp_rules: Vec<TcpCheckRule>,
    pub tcp_rules_here: bool,
    pub stick_table: Option<(StickTable, usize)>,
    /// `stick` rules with their lines (checked once the section is read).
    pub stick_rules: Vec<(fulcrum_model::StickRule, usize)>,
    /// `http-request` and `http-response` rules, in order.
    pub http_request: Vec<fulcrum_model::rules::HttpRule>,
    pub http_response: Vec<fulcrum_model::rules::HttpRule>,
    pub http_after_response: Vec<fulcrum_model::rules::HttpRule>,
    /// A routing or bind line of this section was in error.
    pub incomplete: bool,
    /// The servers' names so far, with their lines: a backend of 100k servers is checked for
    /// duplicates in linear time.
    pub server_lines: std::collections::HashMap<String, usize>,
}

impl ProxyState {
    pub(super) fn defaults(name: String, line: usize) -> Self {
        ProxyState {
            kind: Kind::Defaults,
            name: name.clone(),
            line,
            fe: Frontend::new(name.clone()),
            be: Backend::new(name),
            server_defaults: ServerDefaults::default(),
            acls: AclSet::default(),
            mode: None,
            log: None,
            option_httplog: false,
            default_backend: None,
            default_backend_here: false,
            use_backends: Vec::new(),
            stats_admin: None,
            binds: Vec::new(),
            expect: None,
            check_send: None,
            tcp_rules: Vec::new(),
            tcp_rules_here: false,
            stick_table: None,
            stick_rules: Vec::new(),
            http_request: Vec::new(),
            http_response: Vec::new(),
            http_after_response: Vec::new(),
            incomplete: false,
            server_lines: std::collections::HashMap::new(),
        }
    }

    /// A new section starting from these defaults.
    pub(super) fn inherit(&self, kind: Kind, name: String, line: usize) -> Self {
        let mut state = self.clone();
        state.kind = kind;
        state.name = name;
        state.line = line;
        state.acls = AclSet::default();
        state.http_request.clear();
        state.http_response.clear();
        state.http_after_response.clear();
        state.default_backend_here = false;
        state.use_backends.clear();
        state.binds.clear();
        state.be.servers.clear();
        state.server_lines.clear();
        state.incomplete = false;
        state.tcp_rules_here = false;
        if let Some((_, line)) = state.expect.as_mut() {
            *line = None;
        }
        if let Some((_, line)) = state.check_send.as_mut() {
            *line = None;
        }
        state
    }

    pub(super) fn title(&self) -> String {
        match (self.kind, self.name.is_empty()) {
            (Kind::Defaults, true) => "the defaults section".to_string(),
            _ => format!("{} '{}'", self.kind.word(), self.name),
        }
    }
}

/// `default-server` settings, applied to the `server` lines that follow.
#[derive(Debug, Clone)]
pub(crate) struct ServerDefaults {
    /// Every field but name, address and origin.
    pub server: Server,
    /// `port N`: health checks go to this port.
    pub check_port: Option<u16>,
    /// `addr HOST`: health checks go to this address.
    pub check_host: Option<Host>,
    /// `verify none|required` as written (None: the global `ssl-server-verify`).
    pub tls_verify: Option<bool>,
    /// `check-ssl` / `no-check-ssl` as written (None: checks speak TLS when the traffic does
    /// and they go to the same address).
    pub check_ssl: Option<bool>,
}

impl Default for ServerDefaults {
    fn default() -> Self {
        ServerDefaults {
            server: Server::new("", SocketAddr::from(([0, 0, 0, 0], 0))),
            check_port: None,
            check_host: None,
            tls_verify: None,
            check_ssl: None,
        }
    }
}

/// `http-check send meth M uri U ver V hdr NAME VALUE`
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CheckSend {
    pub method: Option<String>,
    pub uri: Option<String>,
    pub version: Option<String>,
    pub headers: Vec<(String, String)>,
}
