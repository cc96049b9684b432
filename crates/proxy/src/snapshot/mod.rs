//! The runtime snapshot: the Model compiled into what the data plane reads per request. It is
//! immutable once built and swapped whole on reload; live state is referenced, not owned.
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use fulcrum_balance::{Scheduler, ServerId, Slot, Thresholds};
use fulcrum_model::{Backend, Frontend, Model, Server};
use tokio::sync::Notify;

use crate::CompileError;

mod acl;
pub(crate) mod auth;
pub(crate) mod cookie;
mod pages;
pub(crate) mod rules;

pub(crate) use acl::Who;
pub(crate) use acl::{in_net, parse_net, CompiledAcl, CompiledCondition, Facts};
pub(crate) use pages::{error_page, ErrorPages};

use crate::live::{lock, LiveRegistry, ServerLive};

#[derive(Debug)]
pub struct Snapshot {
    pub model: Model,
    /// Head limits (`tune.bufsize` less `tune.maxrewrite`, `tune.http.maxhdr`).
    pub limits: crate::h1::Limits,
    pub frontends: Vec<FrontendRt>,
    pub backends: Vec<Arc<BackendRt>>,
    /// TCP addresses (`mode http`, `mode tcp`) to their frontend.
    by_bind: HashMap<SocketAddr, usize, crate::fasthash::FastBuild>,
    /// UDP addresses to their frontend: an address may carry a TCP and a UDP service.
    by_udp: HashMap<SocketAddr, usize, crate::fasthash::FastBuild>,
    /// The stick tables by proxy name, when there are any.
    pub(crate) tables: Option<Arc<rules::Tables>>,
    /// The userlists, when there are any.
    pub(crate) userlists: Option<Arc<auth::Userlists>>,
}

impl Snapshot {
    /// Compile a Model; live state comes from (and is registered in) `live`.
    pub fn build(model: Model, live: &LiveRegistry) -> Result<Snapshot, CompileError> {
        // Stick tables by proxy name (a listen section's is its backend's); kept by `live`.
        let mut tables = rules::Tables::new();
        let declared = model.backends.iter().filter_map(|b| b.table.as_ref().map(|t| (&b.name, t)));
        let declared = declared.chain(model.frontends.iter().filter_map(|f| f.table.as_ref().map(|t| (&f.name, t))));
        for (name, cfg) in declared {
            tables.entry(name.clone()).or_insert_with(|| live.stick_table(name, cfg));
        }
        // The tables a peers section declares itself, `SECTION/NAME`.
        for section in &model.peers {
            for (table, cfg) in &section.tables {
                let name = format!("{}/{table}", section.name);
                let t = live.stick_table(&name, cfg);
                tables.insert(name, t);
            }
        }
        check_table_names(&model, &tables)?;
        let tables = Arc::new(tables);
        let backends: Vec<Arc<BackendRt>> = model
            .backends
            .iter()
            .map(|b| BackendRt::build(b, live, &tables).map(Arc::new))
            .collect::<Result<_, _>>()?;
        let by_name: HashMap<&str, &Arc<BackendRt>> = backends.iter().map(|b| (b.cfg.name.as_str(), b)).collect();
        // The server names of the numbers a table stores: the first backend sticking to it
        // says (peers send names along with numbers).
        let mut named = std::collections::HashSet::new();
        for b in &backends {
            for rule in &b.sticking {
                if named.insert(Arc::as_ptr(&rule.table)) {
                    let names =
                        b.server_ids.iter().zip(&b.servers).map(|(id, s)| (*id, Arc::from(s.cfg.name.as_str())));
                    *lock(&rule.table.names) = names.collect();
                }
            }
        }
        let mut frontends = Vec::new();
        let mut by_bind: HashMap<SocketAddr, usize, crate::fasthash::FastBuild> = HashMap::default();
        let mut by_udp: HashMap<SocketAddr, usize, crate::fasthash::FastBuild> = HashMap::default();
        for (index, fe) in model.frontends.iter().enumerate() {
            let mut built = FrontendRt::build(fe, &by_name, model.global.tls_cache_size, &tables)?;
            built.table = tables.get(&fe.name).cloned();
            frontends.push(built);
            let map = if fe.mode == fulcrum_model::Mode::Udp { &mut by_udp } else { &mut by_bind };
            for bind in &fe.binds {
                map.insert(*bind, index);
            }
        }
        // Linear: a backend may hold 100k servers.
        let current: std::collections::HashSet<(&str, &str)> = model
            .backends
            .iter()
            .flat_map(|b| b.servers.iter().map(move |s| (b.name.as_str(), s.name.as_str())))
            .collect();
        live.retain(&|b, s| current.contains(&(b, s)));
        let persistent: std::collections::HashSet<&str> =
            model.backends.iter().filter(|b| b.persistence.is_some()).map(|b| b.name.as_str()).collect();
        live.retain_templates(&|b| persistent.contains(b));
        live.retain_tables(&|name| tables.contains_key(name));
        let limits = crate::h1::Limits { max_head: model.global.max_head(), max_headers: model.global.max_headers };
        let tables = (!tables.is_empty()).then_some(tables);
        let userlists = (!model.userlists.is_empty()).then(|| Arc::new(auth::Userlists::new(&model.userlists)));
        Ok(Snapshot { model, limits, frontends, backends, by_bind, by_udp, tables, userlists })
    }

    /// The stick tables by name, in the order the configuration declares them (a peers
    /// section's as `SECTION/NAME`).
    pub fn stick_tables(&self) -> Vec<(String, Arc<crate::live::LiveTable>)> {
        let Some(tables) = &self.tables else { return Vec::new() };
        let m = &self.model;
        let names = m.frontends.iter().filter(|f| f.table.is_some()).map(|f| f.name.clone());
        let names = names.chain(m.backends.iter().filter(|b| b.table.is_some()).map(|b| b.name.clone()));
        let names =
            names.chain(m.peers.iter().flat_map(|p| p.tables.iter().map(move |(t, _)| format!("{}/{t}", p.name))));
        let mut out: Vec<(String, Arc<crate::live::LiveTable>)> = Vec::new();
        for name in names {
            if let Some(t) = tables.get(&name).filter(|_| !out.iter().any(|(n, _)| *n == name)) {
                out.push((name, Arc::clone(t)));
            }
        }
        out
    }

    pub fn frontend_index(&self, bind: &SocketAddr) -> Option<usize> {
        self.by_bind.get(bind).copied().filter(|i| *i < self.frontends.len())
    }

    pub fn frontend_for(&self, bind: &SocketAddr) -> Option<&FrontendRt> {
        self.by_bind.get(bind).and_then(|i| self.frontends.get(*i))
    }

    /// Every TCP address to listen on, and whether it serves HTTP (`mode http`) rather than TCP.
    pub fn binds_with_mode(&self) -> Vec<(SocketAddr, bool)> {
        self.binds()
            .map(|a| (a, self.frontend_for(&a).is_none_or(|f| f.cfg.mode == fulcrum_model::Mode::Http)))
            .collect()
    }

    /// The addresses of UDP frontends.
    pub fn udp_binds(&self) -> Vec<SocketAddr> {
        self.by_udp.keys().copied().collect()
    }

    /// The UDP frontend of an address.
    pub fn udp_frontend_for(&self, bind: &SocketAddr) -> Option<&FrontendRt> {
        self.by_udp.get(bind).and_then(|i| self.frontends.get(*i))
    }

    /// The TCP addresses.
    pub fn binds(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.by_bind.keys().copied()
    }
}

/// Where a `use_backend` rule sends a request.
#[derive(Debug)]
pub(crate) enum Target {
    Static(Arc<BackendRt>),
    /// `use_backend %[...]`: the backend named by the format, per request.
    Dynamic(rules::Format),
}

/// Every table a rule or fetch uses must exist: a `table NAME` names a proxy with a
/// stick-table, and `track-sc*` or `src_*` without one need their own proxy's table.
fn check_table_names(model: &Model, tables: &rules::Tables) -> Result<(), CompileError> {
    let sections = model
        .frontends
        .iter()
        .map(|f| (&f.name, &f.http_request, &f.http_response, &f.acls))
        .chain(model.backends.iter().map(|b| (&b.name, &b.http_request, &b.http_response, &b.acls)));
    for (proxy, request, response, acls) in sections {
        let from_rules = request.iter().chain(response).flat_map(|r| r.tables_used());
        let from_acls = acls.iter().flat_map(|a| match &a.fetch {
            fulcrum_model::Fetch::Sample(s) => s.tables_used().collect::<Vec<_>>(),
            _ => Vec::new(),
        });
        for table in from_rules.chain(from_acls) {
            let name = table.unwrap_or(proxy);
            if !tables.contains_key(name) {
                return Err(CompileError::UnknownTable { proxy: proxy.clone(), table: name.to_string() });
            }
        }
    }
    Ok(())
}

/// A compiled `tcp-request` action.
#[derive(Debug)]
pub(crate) enum TcpRt {
    Accept,
    Reject,
    Track { slot: u8, key: rules::CompiledSample, table: Arc<crate::live::LiveTable> },
    IncGpc(u8, u8),
    SetGpt0(u8, i64),
}

#[derive(Debug)]
pub struct FrontendRt {
    pub cfg: Frontend,
    pub(crate) acls: Vec<CompiledAcl>,
    pub(crate) rules: Vec<(CompiledCondition, Target)>,
    /// Every backend by name, for dynamic `use_backend` (empty when there is none).
    by_name: HashMap<String, Arc<BackendRt>>,
    pub default_backend: Option<Arc<BackendRt>>,
    pub(crate) errors: ErrorPages,
    /// `option forwardfor`, prepared once.
    pub(crate) forwardfor: Option<ForwardForRule>,
    /// `tcp-request connection` and `content` rules, and when they apply.
    pub(crate) tcp_connection: Vec<(TcpRt, Option<CompiledCondition>)>,
    pub(crate) tcp_content: Vec<(TcpRt, Option<CompiledCondition>)>,
    /// Some ACL reads the TLS ClientHello (`req.ssl_sni`): the first bytes are awaited.
    pub(crate) reads_hello: bool,
    /// `redirect` rules with their compiled conditions.
    pub(crate) redirects: Vec<(fulcrum_model::Redirect, Option<CompiledCondition>)>,
    /// The TLS configuration of each `ssl` bind address (certificates read at compile time,
    /// so a reload picks up renewed ones).
    pub(crate) tls: Vec<(SocketAddr, Arc<rustls::ServerConfig>)>,
    /// `http-request`, `http-response` and `http-after-response` rules.
    pub(crate) http_request: rules::Rules,
    pub(crate) http_response: rules::Rules,
    pub(crate) http_after_response: rules::Rules,
    /// The frontend's own stick table (a listen's is its backend's).
    pub(crate) table: Option<Arc<crate::live::LiveTable>>,
    /// `monitor fail` conditions.
    monitor_fail: Vec<CompiledCondition>,
}

impl FrontendRt {
    fn build(
        fe: &Frontend,
        backends: &HashMap<&str, &Arc<BackendRt>>,
        tls_cache: usize,
        tables: &rules::Tables,
    ) -> Result<Self, CompileError> {
        let find = |name: &str| {
            backends
                .get(name)
                .map(|b| Arc::clone(b))
                .ok_or_else(|| CompileError::UnknownBackend { frontend: fe.name.clone(), backend: name.to_string() })
        };
        let acls = fe.acls.iter().map(CompiledAcl::compile).collect::<Result<Vec<_>, _>>()?;
        let rules = fe
            .use_backends
            .iter()
            .map(|u| {
                let target = match &u.dynamic {
                    Some(f) => Target::Dynamic(rules::Format::compile(f)?),
                    None => Target::Static(find(&u.backend)?),
                };
                Ok((CompiledCondition::compile(&u.condition, &acls)?, target))
            })
            .collect::<Result<Vec<_>, CompileError>>()?;
        let by_name = if fe.use_backends.iter().any(|u| u.dynamic.is_some()) {
            backends.iter().map(|(n, b)| (n.to_string(), Arc::clone(b))).collect()
        } else {
            HashMap::new()
        };
        let default_backend = fe.default_backend.as_deref().map(find).transpose()?;
        let tcp_rules = |rules: &[fulcrum_model::TcpRule]| {
            use fulcrum_model::TcpAction as A;
            rules
                .iter()
                .map(|r| {
                    let action = match &r.action {
                        A::Accept => TcpRt::Accept,
                        A::Reject => TcpRt::Reject,
                        A::TrackSc { slot, key, table } => {
                            let name = table.as_deref().unwrap_or(&fe.name);
                            let t = tables.get(name).cloned().ok_or_else(|| CompileError::UnknownTable {
                                proxy: fe.name.clone(),
                                table: name.to_string(),
                            })?;
                            TcpRt::Track { slot: *slot, key: rules::sample(key)?, table: t }
                        }
                        A::ScIncGpc { slot, gpc } => TcpRt::IncGpc(*slot, *gpc),
                        A::ScSetGpt0 { slot, value } => TcpRt::SetGpt0(*slot, *value),
                    };
                    Ok((action, r.condition.as_ref().map(|c| CompiledCondition::compile(c, &acls)).transpose()?))
                })
                .collect::<Result<Vec<_>, CompileError>>()
        };
        let tcp_connection = tcp_rules(&fe.tcp_request.connection)?;
        let tcp_content = tcp_rules(&fe.tcp_request.content)?;
        let reads_hello = fe.acls.iter().any(|a| a.fetch.needs_payload());
        let mut tls = Vec::new();
        for bind in &fe.tls {
            let built = fulcrum_tls::server_config(bind, tls_cache)
                .map_err(|error| CompileError::Tls { frontend: format!("frontend {}", fe.name), error })?;
            tls.extend(bind.addrs.iter().map(|a| (*a, Arc::clone(&built.config))));
        }
        let redirects = fe
            .redirects
            .iter()
            .map(|r| Ok((r.clone(), r.condition.as_ref().map(|c| CompiledCondition::compile(c, &acls)).transpose()?)))
            .collect::<Result<Vec<_>, CompileError>>()?;
        let monitor_fail =
            fe.monitor_fail.iter().map(|c| CompiledCondition::compile(c, &acls)).collect::<Result<Vec<_>, _>>()?;
        Ok(FrontendRt {
            monitor_fail,
            by_name,
            table: None,
            http_request: rules::Rules::compile(&fe.http_request, &acls)?,
            http_response: rules::Rules::compile(&fe.http_response, &acls)?,
            http_after_response: rules::Rules::compile(&fe.http_after_response, &acls)?,
            redirects,
            tls,
            cfg: fe.clone(),
            tcp_connection,
            tcp_content,
            reads_hello,
            acls,
            rules,
            default_backend,
            errors: ErrorPages::new(&fe.errorfiles)?,
            forwardfor: forwardfor(fe.forwardfor.as_ref())?,
        })
    }

    /// `monitor-uri`: None when the request is not for it; else whether the service is up
    /// (no `monitor fail` condition holds).
    pub(crate) fn monitor(&self, req: &http::request::Parts, who: &Who<'_>) -> Option<bool> {
        let uri = self.cfg.monitor_uri.as_deref()?;
        let asked = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
        if asked != uri && req.uri != uri {
            return None;
        }
        Some(!self.monitor_fail.iter().any(|c| c.eval(&self.acls, req, who)))
    }

    /// The TLS configuration of a bind address, if it is an `ssl` bind.
    pub(crate) fn tls_for(&self, bind: &SocketAddr) -> Option<&Arc<rustls::ServerConfig>> {
        self.tls.iter().find(|(a, _)| a == bind).map(|(_, c)| c)
    }

    /// Runs the `tcp-request connection` (or `content`) rules on a connection's facts, in
    /// order: whether they let it in (the first `accept` or `reject` decides; none: in).
    /// `track-sc*` rules track in `vars` (`http`: the current HTTP request counts there too).
    pub(crate) fn tcp_rules(&self, content: bool, facts: &Facts<'_>, vars: &mut rules::Vars, http: bool) -> bool {
        let rules = if content { &self.tcp_content } else { &self.tcp_connection };
        if rules.is_empty() {
            return true;
        }
        vars.own.clone_from(&self.table);
        for (action, cond) in rules {
            let holds = cond.as_ref().is_none_or(|c| c.eval_facts(&self.acls, &Facts { vars: Some(&*vars), ..*facts }));
            if !holds {
                continue;
            }
            match action {
                TcpRt::Accept => return true,
                TcpRt::Reject => return false,
                TcpRt::Track { slot, key, table } => {
                    let key = {
                        let f = Facts { vars: Some(&*vars), ..*facts };
                        let empty = rules::Vars::default();
                        rules::eval(key, f.req, None, &f.scope(&empty)).and_then(|v| rules::table_key(table, v))
                    };
                    if let Some(key) = key {
                        vars.track(*slot, table.clone(), key, http);
                    }
                }
                TcpRt::IncGpc(slot, gpc) => {
                    vars.inc_gpc(*slot, *gpc);
                }
                TcpRt::SetGpt0(slot, value) => vars.set_gpt0(*slot, *value),
            }
        }
        true
    }

    /// `mode tcp`: the first `use_backend` whose condition holds on these facts, else the default.
    pub(crate) fn route_tcp(&self, facts: &acl::Facts<'_>) -> Option<&Arc<BackendRt>> {
        let Some((_, target)) = self.rules.iter().find(|(cond, _)| cond.eval_facts(&self.acls, facts)) else {
            return self.default_backend.as_ref();
        };
        self.target(target, None, facts).or(self.default_backend.as_ref())
    }

    /// A rule's backend: its own, or the one its dynamic name names (None: no such backend,
    /// the default applies, as in HAProxy).
    fn target<'a>(
        &'a self,
        target: &'a Target,
        req: Option<&http::request::Parts>,
        facts: &acl::Facts<'_>,
    ) -> Option<&'a Arc<BackendRt>> {
        match target {
            Target::Static(b) => Some(b),
            Target::Dynamic(f) => self.by_name.get(&rules::render_name(f, req, facts, &self.cfg.name)),
        }
    }

    /// The first `redirect` rule whose condition holds for a request, and the Location it makes.
    pub(crate) fn redirect(
        &self,
        req: &http::request::Parts,
        who: &Who<'_>,
    ) -> Option<(&fulcrum_model::Redirect, String)> {
        let (rule, _) =
            self.redirects.iter().find(|(_, cond)| cond.as_ref().is_none_or(|c| c.eval(&self.acls, req, who)))?;
        Some((rule, redirect_location(rule, req)))
    }

    /// The backend for a request: the first `use_backend` whose condition holds, else the default.
    pub(crate) fn route(&self, req: &http::request::Parts, who: &Who<'_>) -> Option<&Arc<BackendRt>> {
        let Some((_, target)) = self.rules.iter().find(|(cond, _)| cond.eval(&self.acls, req, who)) else {
            return self.default_backend.as_ref();
        };
        let facts = Facts { req: Some(req), ..Facts::of(who) };
        self.target(target, Some(req), &facts).or(self.default_backend.as_ref())
    }
}

#[derive(Debug)]
pub struct ServerRt {
    pub cfg: Server,
    pub live: Arc<ServerLive>,
    /// `Set-Cookie` value for cookie insert mode, built once (for a server without a cookie:
    /// the cookie's removal).
    pub set_cookie: Option<http::HeaderValue>,
    /// Its persistence cookie's value: `cookie V`, or a dynamic one.
    pub cookie: Option<String>,
    /// IPVS upper/lower connection thresholds.
    pub thresholds: Thresholds,
    /// TLS to the server (`ssl`): its rustls client configuration.
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
}

impl ServerRt {
    /// Reserves a connection slot under `maxconn`, counting it for the thresholds.
    pub fn try_reserve(&self) -> bool {
        self.live.try_reserve(self.cfg.maxconn, self.thresholds)
    }
}

/// The rise/fall of a server's health machine. keepalived's checkers: one success brings a
/// server up, `retry` + 1 failures in a row take it down (the server's machine is their AND).
fn server_rise_fall(s: &Server) -> (u32, u32) {
    if s.checkers.is_empty() {
        (s.rise, s.fall)
    } else {
        (1, 1)
    }
}

/// One compiled `stick` rule.
#[derive(Debug)]
pub(crate) struct StickRt {
    pub kind: fulcrum_model::StickKind,
    sample: rules::CompiledSample,
    pub table: Arc<crate::live::LiveTable>,
    condition: Option<CompiledCondition>,
}

impl StickRt {
    /// Whether the rule's condition holds.
    pub(crate) fn applies(&self, acls: &[CompiledAcl], facts: &Facts<'_>) -> bool {
        self.condition.as_ref().is_none_or(|c| c.eval_facts(acls, facts))
    }

    /// The rule's key for these facts, as its table keys it.
    pub(crate) fn key(&self, facts: &Facts<'_>) -> Option<crate::live::TableKey> {
        let empty = rules::Vars::default();
        let value = rules::eval(&self.sample, facts.req, facts.resp, &facts.scope(&empty))?;
        rules::table_key(&self.table, value)
    }
}

#[derive(Debug)]
pub struct BackendRt {
    pub cfg: Backend,
    pub servers: Vec<ServerRt>,
    pub(crate) scheduler: Mutex<Scheduler>,
    /// Woken when a connection slot frees up, for requests waiting in the queue.
    pub(crate) slot_freed: Notify,
    pub(crate) queued: AtomicUsize,
    pub(crate) errors: ErrorPages,
    /// `stick` rules, with their tables.
    pub(crate) sticking: Vec<StickRt>,
    /// `force-persist` (true) and `ignore-persist` rules.
    pub(crate) persist_rules: Vec<(bool, CompiledCondition)>,
    /// Each server's number (`id`, as stick tables store it), and the server of each number.
    pub(crate) server_ids: Vec<u32>,
    by_id: HashMap<u32, ServerId>,
    /// IPVS persistence templates: masked client address → server (kept across reloads).
    pub(crate) persist: Option<Arc<crate::live::Templates>>,
    /// keepalived quorum state: whether the primaries serve (else the sorry server).
    quorum_up: AtomicBool,
    /// Upper bound of the queue (sum of `maxqueue`; 0: unbounded).
    pub(crate) max_queue: usize,
    pub(crate) forwardfor: Option<ForwardForRule>,
    /// A backend section's ACLs and its `http-request` / `http-response` rules.
    pub(crate) acls: Vec<CompiledAcl>,
    pub(crate) http_request: rules::Rules,
    pub(crate) http_response: rules::Rules,
    pub(crate) http_after_response: rules::Rules,
    /// The backend's stick table.
    pub(crate) table: Option<Arc<crate::live::LiveTable>>,
}

impl BackendRt {
    fn build(b: &Backend, live: &LiveRegistry, tables: &rules::Tables) -> Result<Self, CompileError> {
        let table = tables.get(&b.name).cloned();
        // Servers with the same TLS settings share one client configuration (and its CA file
        // is read once): a backend may hold thousands of servers.
        let mut tls_configs: HashMap<&fulcrum_model::ServerTls, Arc<rustls::ClientConfig>> = HashMap::new();
        let servers = b
            .servers
            .iter()
            .map(|s| {
                let tls = match s.tls.enabled || s.tls.check {
                    false => None,
                    true => Some(match tls_configs.get(&s.tls) {
                        Some(config) => Arc::clone(config),
                        None => {
                            let config = fulcrum_tls::client_config(&s.tls).map_err(|error| CompileError::Tls {
                                frontend: format!("backend {} server {}", b.name, s.name),
                                error,
                            })?;
                            tls_configs.insert(&s.tls, Arc::clone(&config));
                            config
                        }
                    }),
                };
                // The server's cookie: its own, else a dynamic one (`cookie ... dynamic`).
                let cookie = match (&b.cookie, &s.cookie, &b.dynamic_cookie_key) {
                    (_, Some(v), _) => Some(v.clone()),
                    (Some(c), None, Some(key)) if c.dynamic => Some(cookie::dynamic_value(key, s.addr)),
                    _ => None,
                };
                let set_cookie = match &b.cookie {
                    Some(c) if c.mode == fulcrum_model::CookieMode::Insert => {
                        Some(cookie_header(c, cookie.as_deref())?)
                    }
                    _ => None,
                };
                let (rise, fall) = server_rise_fall(s);
                Ok(ServerRt {
                    cookie,
                    cfg: s.clone(),
                    live: live.server(&b.name, &s.name, s.addr, (rise, fall), s.start_down),
                    set_cookie,
                    thresholds: Thresholds { upper: s.upper_threshold, lower: s.lower_threshold },
                    tls,
                })
            })
            .collect::<Result<Vec<_>, CompileError>>()?;
        let max_queue = if b.servers.iter().any(|s| s.maxqueue == 0) {
            0
        } else {
            b.servers.iter().map(|s| s.maxqueue as usize).sum()
        };
        let acls = b.acls.iter().map(CompiledAcl::compile).collect::<Result<Vec<_>, _>>()?;
        let sticking = b
            .stick
            .iter()
            .map(|r| {
                let name = r.table.as_deref().unwrap_or(&b.name);
                let t = tables
                    .get(name)
                    .cloned()
                    .ok_or_else(|| CompileError::UnknownTable { proxy: b.name.clone(), table: name.to_string() })?;
                let condition = r.condition.as_ref().map(|c| CompiledCondition::compile(c, &acls)).transpose()?;
                Ok(StickRt { kind: r.kind, sample: rules::sample(&r.sample)?, table: t, condition })
            })
            .collect::<Result<Vec<_>, CompileError>>()?;
        let persist_rules = b
            .persist_rules
            .iter()
            .map(|r| Ok((r.force, CompiledCondition::compile(&r.condition, &acls)?)))
            .collect::<Result<Vec<_>, CompileError>>()?;
        let server_ids = b.server_ids();
        let by_id = server_ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let rt = BackendRt {
            persist_rules,
            sticking,
            server_ids,
            by_id,
            scheduler: Mutex::new(
                Scheduler::new(b.algorithm.clone(), b.hash_type)
                    .with_key_hash(b.key_hash)
                    .with_identities(b.servers.iter().map(|s| identity(s.addr)).collect()),
            ),
            servers,
            slot_freed: Notify::new(),
            queued: AtomicUsize::new(0),
            errors: ErrorPages::new(&b.errorfiles)?,
            persist: b.persistence.map(|p| live.templates(&b.name, PERSIST_CAPACITY, p.timeout)),
            quorum_up: AtomicBool::new(true),
            max_queue,
            forwardfor: forwardfor(b.forwardfor.as_ref())?,
            http_request: rules::Rules::compile(&b.http_request, &acls)?,
            http_response: rules::Rules::compile(&b.http_response, &acls)?,
            http_after_response: rules::Rules::compile(&b.http_after_response, &acls)?,
            acls,
            table,
            cfg: b.clone(),
        };
        if let Some(q) = &b.quorum {
            let weight = rt.up_primary_weight(Instant::now());
            rt.quorum_up.store(weight >= u64::from(q.quorum) + u64::from(q.hysteresis), Ordering::Relaxed);
        }
        rt.rebuild(Instant::now());
        Ok(rt)
    }

    /// The sum of the effective weights of the primaries that are up (keepalived's quorum sum).
    fn up_primary_weight(&self, now: Instant) -> u64 {
        self.servers
            .iter()
            .filter(|s| !s.cfg.backup && !s.cfg.disabled && s.live.is_up())
            .map(|s| u64::from(effective_weight(s, now).0))
            .sum()
    }

    /// Re-evaluates keepalived's quorum: while up, lost when the up primaries' weight is 0 or
    /// below quorum − hysteresis; while down, gained at quorum + hysteresis. Returns the new
    /// state when it changed.
    pub fn update_quorum(&self, now: Instant) -> Option<bool> {
        let q = self.cfg.quorum.as_ref()?;
        let weight = self.up_primary_weight(now);
        let up = self.quorum_up.load(Ordering::Relaxed);
        let (quorum, hysteresis) = (u64::from(q.quorum), u64::from(q.hysteresis));
        let next = if up {
            !(weight == 0 || weight < quorum.saturating_sub(hysteresis))
        } else {
            weight >= quorum + hysteresis
        };
        (next != up).then(|| {
            self.quorum_up.store(next, Ordering::Relaxed);
            next
        })
    }

    pub fn quorum_up(&self) -> bool {
        self.quorum_up.load(Ordering::Relaxed)
    }

    /// A server's weight now (the configured one, or what `misc_dynamic` set).
    pub fn weight_of(&self, id: ServerId) -> u32 {
        self.servers.get(id).map_or(0, |s| s.live.dynamic_weight().unwrap_or(s.cfg.weight))
    }

    /// How many persistence templates point at each server (`ipvsadm --persistent-conn`).
    pub fn templates(&self) -> Vec<usize> {
        let mut counts = vec![0; self.servers.len()];
        if let Some(table) = &self.persist {
            let now = Instant::now();
            let table = lock(table);
            for (key, server, _) in table.iter() {
                if table.peek(key, now).is_some() {
                    if let Some(c) = counts.get_mut(*server) {
                        *c += 1;
                    }
                }
            }
        }
        counts
    }

    /// Whether a server may take traffic now (health and admin state).
    /// The server numbered `id` (its `id`, as stick tables store it).
    pub(crate) fn server_by_id(&self, id: u32) -> Option<ServerId> {
        self.by_id.get(&id).copied()
    }

    pub fn usable(&self, id: ServerId) -> bool {
        self.servers.get(id).is_some_and(|s| !s.cfg.disabled && s.live.is_up())
    }

    /// The servers that take traffic now: the primaries that are up; when none is, the first
    /// backup that is up (all of them with `option allbackups`); with keepalived's quorum lost,
    /// the backups (the sorry server) instead of the primaries.
    pub fn serving(&self) -> Vec<ServerId> {
        let up = |s: &&(usize, &ServerRt)| !s.1.cfg.disabled && s.1.live.is_up();
        let all: Vec<(usize, &ServerRt)> = self.servers.iter().enumerate().collect();
        let mut ids: Vec<ServerId> = all.iter().filter(|s| !s.1.cfg.backup).filter(up).map(|s| s.0).collect();
        let has_backups = all.iter().any(|s| s.1.cfg.backup);
        if self.cfg.quorum.is_some() && !self.quorum_up() && has_backups {
            ids.clear();
        }
        if ids.is_empty() {
            let mut backups = all.iter().filter(|s| s.1.cfg.backup).filter(up);
            ids = if self.cfg.allbackups {
                backups.map(|s| s.0).collect()
            } else {
                backups.next().map(|s| s.0).into_iter().collect()
            };
        }
        ids
    }

    /// Recompute the eligible set ([`BackendRt::serving`]) with the effective weights. Returns
    /// whether a server is ramping up under `slowstart`, so the caller knows to call again soon.
    pub fn rebuild(&self, now: Instant) -> bool {
        let mut ramping = false;
        let slots: Vec<Slot> = self
            .serving()
            .into_iter()
            .filter_map(|id| {
                let s = self.servers.get(id)?;
                let (weight, ramp) = effective_weight(s, now);
                ramping |= ramp;
                Some(Slot { id, weight })
            })
            .collect();
        lock(&self.scheduler).rebuild(&slots);
        self.slot_freed.notify_waiters();
        ramping
    }

    pub fn live_servers(&self) -> usize {
        self.servers.iter().filter(|s| !s.cfg.disabled && s.live.is_up()).count()
    }

    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

/// Persistence templates kept per service at most (the kernel bounds them by its connection
/// table; the oldest unused go first).
const PERSIST_CAPACITY: usize = 1 << 20;

/// A stable number for a server, from its address (Maglev's permutations).
fn identity(addr: SocketAddr) -> u64 {
    fulcrum_balance::hash_key(addr.to_string().as_bytes())
}

/// Weight under `slowstart`: it grows linearly from 1 to the configured weight. A weight set
/// at run time (`misc_dynamic`) replaces the configured one.
fn effective_weight(s: &ServerRt, now: Instant) -> (u32, bool) {
    let weight = s.live.dynamic_weight().unwrap_or(s.cfg.weight);
    let Some(ramp) = s.cfg.slowstart.filter(|d| !d.is_zero()) else {
        return (weight, false);
    };
    let Some(since) = *lock(&s.live.up_since) else {
        return (weight, false);
    };
    let elapsed = now.saturating_duration_since(since);
    if elapsed >= ramp || weight == 0 {
        return (weight, false);
    }
    let scaled = (u128::from(weight) * elapsed.as_millis()) / ramp.as_millis().max(1);
    (u32::try_from(scaled).unwrap_or(weight).max(1), true)
}

/// `option forwardfor [header NAME] [if-none] [except NET]`, prepared once.
#[derive(Debug)]
pub struct ForwardForRule {
    pub name: http::HeaderName,
    pub if_none: bool,
    except: Option<(IpAddr, u8)>,
}

impl ForwardForRule {
    /// Whether the header is added for this client (`except` exempts a network).
    pub fn applies_to(&self, client: IpAddr) -> bool {
        self.except.is_none_or(|(net, len)| !in_net(client, net, len))
    }
}

fn forwardfor(ff: Option<&fulcrum_model::ForwardFor>) -> Result<Option<ForwardForRule>, CompileError> {
    let Some(ff) = ff else { return Ok(None) };
    let name = http::HeaderName::from_bytes(ff.header.as_bytes())
        .map_err(|_| CompileError::ForwardForHeader(ff.header.clone()))?;
    let except = match &ff.except {
        Some(net) => Some(parse_net(net).ok_or_else(|| CompileError::ForwardForNetwork(net.clone()))?),
        None => None,
    };
    Ok(Some(ForwardForRule { name, if_none: ff.if_none, except }))
}

fn cookie_header(c: &fulcrum_model::Cookie, value: Option<&str>) -> Result<http::HeaderValue, CompileError> {
    let text = cookie::set_cookie_text(c, value, None);
    http::HeaderValue::from_str(&text)
        .map_err(|_| CompileError::Cookie { name: c.name.clone(), value: value.unwrap_or_default().to_string() })
}

/// Where a `redirect` rule sends a request, as HAProxy builds it.
fn redirect_location(rule: &fulcrum_model::Redirect, req: &http::request::Parts) -> String {
    use fulcrum_model::RedirectKind;
    let path = req.uri.path();
    let query = req.uri.query().filter(|_| !rule.drop_query);
    let mut tail = String::from(if path.is_empty() { "/" } else { path });
    if rule.append_slash && query.is_none() && !tail.ends_with('/') {
        tail.push('/');
    }
    if let Some(q) = query {
        tail.push('?');
        tail.push_str(q);
    }
    match rule.kind {
        RedirectKind::Location => rule.value.clone(),
        // `prefix /`: the request's own path (for a redirect that only sets a cookie).
        RedirectKind::Prefix if rule.value == "/" => tail,
        RedirectKind::Prefix => format!("{}{tail}", rule.value.trim_end_matches('/')),
        RedirectKind::Scheme => {
            let host = req
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .or_else(|| req.uri.authority().map(|a| a.as_str()))
                .unwrap_or("");
            // The default port of the scheme left behind does not follow the request.
            let host = match rule.value.as_str() {
                "https" => host.strip_suffix(":80").unwrap_or(host),
                "http" => host.strip_suffix(":443").unwrap_or(host),
                _ => host,
            };
            format!("{}://{host}{tail}", rule.value)
        }
    }
}

#[cfg(test)]
mod redirect_tests {
    use super::redirect_location;
    use fulcrum_model::{Redirect, RedirectKind};

    fn rule(kind: RedirectKind, value: &str) -> Redirect {
        Redirect {
            kind,
            value: value.into(),
            code: 302,
            drop_query: false,
            append_slash: false,
            cookie: None,
            condition: None,
        }
    }

    fn parts(uri: &str, host: &str) -> http::request::Parts {
        http::Request::get(uri).header("host", host).body(()).expect("request").into_parts().0
    }

    #[test]
    fn locations_as_haproxy_builds_them() {
        let req = parts("/a/b?x=1", "www.example.com:80");
        assert_eq!(redirect_location(&rule(RedirectKind::Scheme, "https"), &req), "https://www.example.com/a/b?x=1");
        assert_eq!(
            redirect_location(&rule(RedirectKind::Prefix, "https://new.example.com/"), &req),
            "https://new.example.com/a/b?x=1"
        );
        assert_eq!(redirect_location(&rule(RedirectKind::Location, "/maintenance"), &req), "/maintenance");
        let mut drop = rule(RedirectKind::Prefix, "http://x");
        drop.drop_query = true;
        drop.append_slash = true;
        assert_eq!(redirect_location(&drop, &req), "http://x/a/b/");
        assert_eq!(redirect_location(&rule(RedirectKind::Scheme, "https"), &parts("/", "h:8080")), "https://h:8080/");
    }
}
