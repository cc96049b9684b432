//! `http-request` / `http-response` rules compiled for the request path (regexes built once),
//! the sample expressions they compute values with, and the rules' evaluation: each rule in
//! order, its condition first; `allow` ends the section's rules, `deny`, `return` and
//! `redirect` answer in the proxy's place.
use std::net::{IpAddr, SocketAddr};

use std::sync::Arc;

use fulcrum_model::rules::{
    Converter, Counter, CounterOf, FormatPart, HttpAction, HttpRule, LogFormat, Sample, SampleFetch,
};
use http::header::{HeaderName, HeaderValue};
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode, Uri};

use super::acl::{CompiledAcl, CompiledCondition, Facts};
use crate::live::{clock_ms, LiveTable, TableKey, Tracking};
use crate::CompileError;
use fulcrum_model::TableData;

/// A sample's value, typed as HAProxy types them where it matters (integers add, addresses
/// mask).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Str(String),
    Bin(Vec<u8>),
    Int(i64),
    Ip(IpAddr),
    Bool(bool),
}

impl Value {
    fn into_bytes(self) -> Vec<u8> {
        match self {
            Value::Str(s) => s.into_bytes(),
            Value::Bin(b) => b,
            Value::Int(i) => i.to_string().into_bytes(),
            Value::Ip(ip) => ip.to_string().into_bytes(),
            Value::Bool(b) => {
                if b {
                    b"1".to_vec()
                } else {
                    b"0".to_vec()
                }
            }
        }
    }

    pub(crate) fn into_string(self) -> String {
        match self {
            Value::Str(s) => s,
            other => String::from_utf8_lossy(&other.into_bytes()).into_owned(),
        }
    }

    /// Appends the value's text to `out` (without a string of its own for numbers and
    /// addresses).
    fn write_to(self, out: &mut String) {
        use std::fmt::Write as _;
        match self {
            Value::Str(s) => out.push_str(&s),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Ip(ip) => {
                let _ = write!(out, "{ip}");
            }
            Value::Bool(b) => out.push(if b { '1' } else { '0' }),
            Value::Bin(b) => out.push_str(&String::from_utf8_lossy(&b)),
        }
    }

    pub(crate) fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            Value::Str(s) => s.trim().parse().ok(),
            Value::Bin(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
            Value::Ip(_) => None,
        }
    }
}

/// What one transaction carries from rule to rule: its variables (`set-var(txn.x)`, read by
/// `var(txn.x)`), the entries its `track-sc*` rules track (and those its connection tracks),
/// and the stick tables it may name.
#[derive(Debug, Default)]
pub(crate) struct Vars {
    vars: Vec<(String, String)>,
    /// What this request (or, in `mode tcp`, this connection) tracks.
    pub tracked: Tracking,
    /// What the connection tracks (`tcp-request connection track-sc*`): read where the
    /// request's own slot is empty, as in HAProxy.
    session: Option<Arc<Tracking>>,
    /// The configuration the transaction runs in: its stick tables (`table NAME`), userlists
    /// (`http_auth(L)`), backends (`nbsrv`, `srv_is_up`).
    snap: Option<Arc<super::Snapshot>>,
    /// The client's address as `set-src` made it.
    pub src: Option<SocketAddr>,
    /// The reason phrase `set-status N reason R` gave the response (HTTP/1).
    pub reason: Option<String>,
    /// The table of the proxy whose rules run (`track-sc0 src` without `table`).
    pub own: Option<Arc<LiveTable>>,
    /// The transaction's time for its tables, read once (expiry, and the rates' clock).
    now: std::sync::OnceLock<(std::time::Instant, u64)>,
}

/// Stick tables by proxy name.
pub(crate) type Tables = std::collections::HashMap<String, Arc<LiveTable>>;

impl Vars {
    /// A connection's (`mode tcp`, `tcp-request connection` rules), in snapshot `snap`.
    pub(crate) fn in_snapshot(snap: &Arc<super::Snapshot>) -> Vars {
        Vars { snap: Some(Arc::clone(snap)), ..Vars::default() }
    }

    /// An HTTP request's, in snapshot `snap`, on a connection that tracks `session`: the
    /// request counts in each entry the connection tracks.
    pub(crate) fn for_request(snap: &Arc<super::Snapshot>, session: Option<&Arc<Tracking>>) -> Vars {
        let vars = Vars { snap: Some(Arc::clone(snap)), session: session.cloned(), ..Vars::default() };
        if let Some(session) = &vars.session {
            let (now, ms) = vars.now();
            for (table, key) in session.0.iter().flatten() {
                table.change(key.clone(), now, |c| c.count_request(&table.layout, ms));
            }
        }
        vars
    }

    /// The configuration's userlists.
    pub(crate) fn users(&self) -> Option<&super::auth::Userlists> {
        self.snap.as_ref()?.userlists.as_deref()
    }

    fn now(&self) -> (std::time::Instant, u64) {
        *self.now.get_or_init(|| (std::time::Instant::now(), clock_ms()))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub(crate) fn set(&mut self, name: &str, value: String) {
        match self.vars.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((name.to_string(), value)),
        }
    }

    fn unset(&mut self, name: &str) {
        self.vars.retain(|(n, _)| n != name);
    }

    /// The table a rule or fetch names, else the proxy's own.
    pub(crate) fn table(&self, name: Option<&str>) -> Option<Arc<LiveTable>> {
        match name {
            Some(n) => self.snap.as_ref()?.tables.as_ref()?.get(n).cloned(),
            None => self.own.clone(),
        }
    }

    /// The entry counter slot `slot` tracks: the request's, else its connection's.
    fn slot(&self, slot: u8) -> Option<&(Arc<LiveTable>, TableKey)> {
        self.tracked.get(slot).or_else(|| self.session.as_ref()?.get(slot))
    }

    /// `track-sc<slot>`: the entry for `key` counts a connection more and, in HTTP, this
    /// request (a slot already tracking keeps what it tracks, as in HAProxy).
    pub(crate) fn track(&mut self, slot: u8, table: Arc<LiveTable>, key: TableKey, http: bool) {
        let (now, ms) = self.now();
        if self.tracked.track(slot, table.clone(), key.clone(), now, ms) && http {
            table.change(key, now, |c| c.count_request(&table.layout, ms));
        }
    }

    /// `sc-inc-gpc0`/`gpc1` (`gpc`: 0 or 1): the new value.
    pub(crate) fn inc_gpc(&self, slot: u8, gpc: u8) -> Option<u64> {
        let (table, key) = self.slot(slot)?;
        let d = if gpc == 1 { TableData::Gpc1 } else { TableData::Gpc0 };
        let (now, ms) = self.now();
        table.change(key.clone(), now, |c| c.inc_gpc(&table.layout, d, ms))
    }

    /// `sc-set-gpt0`.
    pub(crate) fn set_gpt0(&self, slot: u8, value: i64) {
        if let Some((table, key)) = self.slot(slot) {
            let now = self.now().0;
            let value = u64::try_from(value).unwrap_or(0);
            table.change(key.clone(), now, |c| c.set(&table.layout, TableData::Gpt0, value));
        }
    }

    /// An HTTP error by the client (a 4xx, a denied request): counted in every tracked entry.
    pub(crate) fn count_error(&self) {
        let (now, ms) = self.now();
        for slot in 0..3 {
            if let Some((table, key)) = self.slot(slot) {
                table.change(key.clone(), now, |c| c.count_error(&table.layout, ms));
            }
        }
    }

    /// A connection's tracking becomes its session's (its requests read it after).
    pub(crate) fn into_session(self) -> Option<Arc<Tracking>> {
        let Vars { tracked, .. } = self;
        (!tracked.is_empty()).then(|| Arc::new(tracked))
    }

    /// The connection got past its `tcp-request connection` rules: a session in each entry it
    /// tracks.
    pub(crate) fn count_session(&self) {
        let (now, ms) = self.now();
        for (table, key) in self.tracked.0.iter().flatten() {
            table.change(key.clone(), now, |c| c.session(&table.layout, ms));
        }
    }
}

/// A sample's value as a key of `table`'s type (strings cut at the table's length).
pub(crate) fn table_key(table: &LiveTable, v: Value) -> Option<TableKey> {
    use fulcrum_model::TableKey as K;
    Some(match table.cfg.key {
        K::Ip | K::Ipv6 => {
            let ip: IpAddr = match v {
                Value::Ip(ip) => ip,
                other => other.into_string().trim().parse().ok()?,
            };
            // As HAProxy casts: an `ip` table holds IPv4 keys (an IPv6 address that is not a
            // mapped IPv4 one has none), an `ipv6` table IPv6 keys.
            TableKey::Ip(match (table.cfg.key, ip) {
                (K::Ip, IpAddr::V6(v6)) => IpAddr::V4(v6.to_ipv4_mapped()?),
                (K::Ipv6, IpAddr::V4(v4)) => IpAddr::V6(v4.to_ipv6_mapped()),
                (_, ip) => ip,
            })
        }
        // HAProxy's integer keys are 32 bits (as peers send them).
        K::Integer => TableKey::Int(i64::from(v.as_int()? as u32)),
        K::String { len } => {
            let mut b = v.into_bytes();
            b.truncate(len);
            TableKey::Str(b.into_boxed_slice())
        }
    })
}

/// What rules and samples read besides the message.
pub(crate) struct Ctx<'a> {
    pub client: SocketAddr,
    pub bind: SocketAddr,
    pub tls: Option<&'a fulcrum_tls::Negotiated>,
    pub frontend: &'a str,
    pub backend: Option<&'a str>,
    pub vars: &'a mut Vars,
}

impl Ctx<'_> {
    /// What samples read (the variables without the right to set them).
    fn scope(&self) -> Scope<'_> {
        Scope {
            client: self.client,
            bind: self.bind,
            tls: self.tls,
            frontend: self.frontend,
            backend: self.backend,
            vars: &*self.vars,
        }
    }

    /// The condition's view of the transaction.
    fn who(&self) -> super::acl::Who<'_> {
        super::acl::Who { peer: self.client, bind: self.bind, tls: self.tls, vars: &*self.vars }
    }
}

/// What a sample reads besides the message: [`Ctx`] without the right to set variables.
pub(crate) struct Scope<'a> {
    pub client: SocketAddr,
    pub bind: SocketAddr,
    pub tls: Option<&'a fulcrum_tls::Negotiated>,
    pub frontend: &'a str,
    pub backend: Option<&'a str>,
    pub vars: &'a Vars,
}

/// The response a sample may read (`status`, `res.hdr`).
#[derive(Clone, Copy)]
pub(crate) struct Resp<'a> {
    pub status: StatusCode,
    pub headers: &'a HeaderMap,
}

#[derive(Debug)]
enum CompiledConv {
    Plain(Converter),
    Regsub { regex: regex::Regex, subst: String, global: bool },
    Map(Box<CompiledMap>),
}

/// A map file ready for look-ups: by hash for exact strings and integers, longest network
/// first for addresses, in file order for the others (the first match wins, as in HAProxy).
#[derive(Debug)]
struct CompiledMap {
    kind: fulcrum_model::rules::MapMatch,
    exact: std::collections::HashMap<String, String>,
    list: Vec<(String, String)>,
    regexes: Vec<(regex::Regex, String)>,
    nets: Vec<((IpAddr, u8), String)>,
    default: Option<String>,
}

impl CompiledMap {
    fn build(
        kind: fulcrum_model::rules::MapMatch,
        entries: &[(String, String)],
        default: Option<&String>,
    ) -> Result<CompiledMap, CompileError> {
        use fulcrum_model::rules::MapMatch as M;
        let mut map = CompiledMap {
            kind,
            exact: std::collections::HashMap::new(),
            list: Vec::new(),
            regexes: Vec::new(),
            nets: Vec::new(),
            default: default.cloned(),
        };
        for (k, v) in entries {
            match kind {
                // The first of duplicate keys wins, as in a file read top to bottom.
                M::Str | M::Int => {
                    map.exact.entry(k.clone()).or_insert_with(|| v.clone());
                }
                M::Reg => map.regexes.push((regex(k, false, "map_reg")?, v.clone())),
                M::Ip => {
                    if let Some(net) = super::acl::parse_net(k) {
                        map.nets.push((net, v.clone()));
                    }
                }
                _ => map.list.push((k.clone(), v.clone())),
            }
        }
        // Longest prefix first; equal lengths keep file order.
        map.nets.sort_by_key(|((_, len), _)| std::cmp::Reverse(*len));
        Ok(map)
    }

    fn lookup(&self, v: Value) -> Option<Value> {
        use fulcrum_model::rules::MapMatch as M;
        let found = match self.kind {
            M::Str => self.exact.get(&v.into_string()).cloned(),
            M::Int => v.as_int().and_then(|n| self.exact.get(&n.to_string()).cloned()),
            M::Ip => {
                let ip = match v {
                    Value::Ip(ip) => Some(ip),
                    other => other.into_string().trim().parse().ok(),
                };
                ip.and_then(|ip| {
                    self.nets.iter().find(|((net, len), _)| super::acl::in_net(ip, *net, *len)).map(|(_, v)| v.clone())
                })
            }
            M::Reg => {
                let text = v.into_string();
                self.regexes.iter().find(|(r, _)| r.is_match(&text)).map(|(_, v)| v.clone())
            }
            M::Beg | M::End | M::Sub | M::Dir | M::Dom => {
                let text = v.into_string();
                self.list
                    .iter()
                    .find(|(k, _)| match self.kind {
                        M::Beg => text.starts_with(k.as_str()),
                        M::End => text.ends_with(k.as_str()),
                        M::Sub => text.contains(k.as_str()),
                        M::Dir => super::acl::words_in(&text, k, &['/', '?', '#']),
                        _ => super::acl::words_in(&text, k, &['.', '/', '?', ':', '#']),
                    })
                    .map(|(_, v)| v.clone())
            }
        };
        found.or_else(|| self.default.clone()).map(Value::Str)
    }
}

#[derive(Debug)]
pub(crate) struct CompiledSample {
    pub(crate) fetch: SampleFetch,
    converters: Vec<CompiledConv>,
}

#[derive(Debug)]
enum Part {
    Text(String),
    Sample(CompiledSample),
}

/// A log-format string compiled; one without samples is its header value already.
#[derive(Debug)]
pub(crate) struct Format {
    parts: Vec<Part>,
    constant: Option<HeaderValue>,
}

#[derive(Debug)]
enum Action {
    Allow,
    Deny(u16),
    Return { status: u16, content_type: Option<String>, body: Option<Format> },
    Redirect(fulcrum_model::Redirect),
    SetHeader(HeaderName, Format),
    AddHeader(HeaderName, Format),
    DelHeader(HeaderName),
    ReplaceHeader { name: HeaderName, regex: regex::Regex, replacement: Format, each_value: bool },
    SetPath(Format),
    SetQuery(Format),
    SetUri(Format),
    SetMethod(Format),
    ReplacePath { regex: regex::Regex, replacement: Format },
    SetVar(String, CompiledSample),
    UnsetVar(String),
    SetStatus(u16, Option<String>),
    TrackSc { slot: u8, key: CompiledSample, table: Option<String> },
    ScIncGpc(u8, u8),
    ScSetGpt0(u8, i64),
    Auth(Option<String>),
    SetSrc(CompiledSample),
    Tarpit(u16),
}

/// One section's rules.
#[derive(Debug, Default)]
pub(crate) struct Rules(Vec<(Action, Option<CompiledCondition>)>);

/// How a section's rules end.
#[derive(Debug)]
pub(crate) enum Verdict {
    Continue,
    /// `deny`: the status of the error page.
    Deny(u16),
    /// `return`: an answer made here.
    Return {
        status: u16,
        content_type: Option<String>,
        body: String,
    },
    /// `redirect`: the code, the Location, the cookie to set.
    Redirect {
        code: u16,
        location: String,
        cookie: Option<String>,
    },
    /// `auth`: a 401 with this realm (None: the section's name).
    Auth(Option<String>),
    /// `tarpit`: the status to answer after holding the request.
    Tarpit(u16),
}

fn regex(pattern: &str, ignore_case: bool, what: &str) -> Result<regex::Regex, CompileError> {
    regex::RegexBuilder::new(pattern).case_insensitive(ignore_case).build().map_err(|source| CompileError::Regex {
        acl: what.to_string(),
        pattern: pattern.to_string(),
        source,
    })
}

pub(crate) fn sample(s: &Sample) -> Result<CompiledSample, CompileError> {
    let converters = s
        .converters
        .iter()
        .map(|c| match c {
            Converter::Regsub { regex: r, subst, global, ignore_case } => Ok(CompiledConv::Regsub {
                regex: regex(r, *ignore_case, "regsub")?,
                subst: haproxy_subst(subst),
                global: *global,
            }),
            Converter::Map { kind, entries, default, .. } => {
                Ok(CompiledConv::Map(Box::new(CompiledMap::build(*kind, entries, default.as_ref())?)))
            }
            other => Ok(CompiledConv::Plain(other.clone())),
        })
        .collect::<Result<_, CompileError>>()?;
    Ok(CompiledSample { fetch: s.fetch.clone(), converters })
}

/// HAProxy's back-references (`\1`) in the regex crate's spelling (`${1}`).
fn haproxy_subst(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(char::is_ascii_digit) => {
                let d = chars.next().unwrap_or('0');
                out.push_str(&format!("${{{d}}}"));
            }
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out
}

impl Format {
    pub(crate) fn compile(f: &LogFormat) -> Result<Format, CompileError> {
        format(f)
    }
}

/// A format rendered with what a condition sees (a dynamic `use_backend` name).
pub(crate) fn render_name(f: &Format, req: Option<&Parts>, facts: &super::acl::Facts<'_>, frontend: &str) -> String {
    let empty = Vars::default();
    let scope = Scope {
        client: facts.peer.unwrap_or(SocketAddr::new(facts.client, 0)),
        bind: facts.bind.unwrap_or(SocketAddr::new(IpAddr::from([0, 0, 0, 0]), 0)),
        tls: facts.tls,
        frontend,
        backend: None,
        vars: facts.vars.unwrap_or(&empty),
    };
    render(f, req, None, &scope)
}

fn format(f: &LogFormat) -> Result<Format, CompileError> {
    let parts: Vec<Part> = f
        .parts
        .iter()
        .map(|p| match p {
            FormatPart::Text(t) => Ok(Part::Text(t.clone())),
            FormatPart::Sample(s) => Ok(Part::Sample(sample(s)?)),
        })
        .collect::<Result<_, CompileError>>()?;
    let constant = match parts.as_slice() {
        [] => Some(HeaderValue::from_static("")),
        [Part::Text(t)] => HeaderValue::from_str(t).ok(),
        _ => None,
    };
    Ok(Format { parts, constant })
}

/// A format rendered as a header value (its own buffer becomes the value: no copy); None
/// when the text cannot be a header value (a control character).
fn format_value(f: &Format, req: Option<&Parts>, resp: Option<Resp<'_>>, ctx: &Scope<'_>) -> Option<HeaderValue> {
    if let Some(v) = &f.constant {
        return Some(v.clone());
    }
    HeaderValue::from_maybe_shared(bytes::Bytes::from(render(f, req, resp, ctx))).ok()
}

fn header_name(name: &str) -> Result<HeaderName, CompileError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| CompileError::UnknownAcl(format!("header name {name:?}")))
}

impl Rules {
    pub(crate) fn compile(rules: &[HttpRule], acls: &[CompiledAcl]) -> Result<Rules, CompileError> {
        let mut out = Vec::with_capacity(rules.len());
        for rule in rules {
            let action = match &rule.action {
                HttpAction::Allow => Action::Allow,
                HttpAction::Deny { status } => Action::Deny(*status),
                HttpAction::Return { status, content_type, body } => Action::Return {
                    status: *status,
                    content_type: content_type.clone(),
                    body: body.as_ref().map(format).transpose()?,
                },
                HttpAction::Redirect(r) => Action::Redirect(r.clone()),
                HttpAction::SetHeader { name, value } => Action::SetHeader(header_name(name)?, format(value)?),
                HttpAction::AddHeader { name, value } => Action::AddHeader(header_name(name)?, format(value)?),
                HttpAction::DelHeader { name } => Action::DelHeader(header_name(name)?),
                HttpAction::ReplaceHeader { name, regex: r, replacement, each_value } => Action::ReplaceHeader {
                    name: header_name(name)?,
                    regex: regex(r, false, "replace-header")?,
                    replacement: format(replacement)?,
                    each_value: *each_value,
                },
                HttpAction::SetPath(f) => Action::SetPath(format(f)?),
                HttpAction::SetQuery(f) => Action::SetQuery(format(f)?),
                HttpAction::SetUri(f) => Action::SetUri(format(f)?),
                HttpAction::SetMethod(f) => Action::SetMethod(format(f)?),
                HttpAction::ReplacePath { regex: r, replacement } => {
                    Action::ReplacePath { regex: regex(r, false, "replace-path")?, replacement: format(replacement)? }
                }
                HttpAction::SetVar { name, value } => Action::SetVar(name.clone(), sample(value)?),
                HttpAction::UnsetVar { name } => Action::UnsetVar(name.clone()),
                HttpAction::SetStatus { status, reason } => Action::SetStatus(*status, reason.clone()),
                HttpAction::TrackSc { slot, key, table } => {
                    Action::TrackSc { slot: *slot, key: sample(key)?, table: table.clone() }
                }
                HttpAction::ScIncGpc { slot, gpc } => Action::ScIncGpc(*slot, *gpc),
                HttpAction::ScSetGpt0 { slot, value } => Action::ScSetGpt0(*slot, *value),
                HttpAction::Auth { realm } => Action::Auth(realm.clone()),
                HttpAction::SetSrc(s) => Action::SetSrc(sample(s)?),
                HttpAction::Tarpit { status } => Action::Tarpit(*status),
            };
            // A redirect carries its own condition.
            let cond = match &rule.action {
                HttpAction::Redirect(r) => r.condition.as_ref(),
                _ => rule.condition.as_ref(),
            };
            out.push((action, cond.map(|c| CompiledCondition::compile(c, acls)).transpose()?));
        }
        Ok(Rules(out))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Runs request rules on `req`.
    pub(crate) fn run_request(&self, acls: &[CompiledAcl], req: &mut Parts, ctx: &mut Ctx<'_>) -> Verdict {
        self.run(acls, Msg::Request(req), ctx)
    }

    /// Runs response rules on a response's status and headers (`req`: the request it answers).
    pub(crate) fn run_response(
        &self,
        acls: &[CompiledAcl],
        req: &Parts,
        status: &mut StatusCode,
        headers: &mut HeaderMap,
        ctx: &mut Ctx<'_>,
    ) -> Verdict {
        self.run(acls, Msg::Response { req, status, headers }, ctx)
    }

    /// Each rule in order, its condition first: the actions both directions have act on the
    /// message's headers and read what its direction lets samples read; the others act only in
    /// theirs (the configuration refuses them elsewhere).
    fn run(&self, acls: &[CompiledAcl], mut msg: Msg<'_>, ctx: &mut Ctx<'_>) -> Verdict {
        for (action, cond) in &self.0 {
            if cond.as_ref().is_some_and(|c| !msg.holds(c, acls, &ctx.who())) {
                continue;
            }
            match action {
                Action::Allow => return Verdict::Continue,
                Action::Deny(status) => return Verdict::Deny(*status),
                Action::Return { status, content_type, body } => {
                    let body = body.as_ref().map(|f| msg.render(f, ctx)).unwrap_or_default();
                    return Verdict::Return { status: *status, content_type: content_type.clone(), body };
                }
                Action::Redirect(r) => {
                    return Verdict::Redirect {
                        code: r.code,
                        location: super::redirect_location(r, msg.request()),
                        cookie: r.cookie.clone(),
                    }
                }
                Action::SetHeader(name, f) | Action::AddHeader(name, f) => {
                    let (req, resp) = msg.seen();
                    if let Some(v) = format_value(f, req, resp, &ctx.scope()) {
                        set_header(msg.headers(), name, v, matches!(action, Action::SetHeader(..)));
                    }
                }
                Action::DelHeader(name) => {
                    msg.headers().remove(name);
                }
                Action::ReplaceHeader { name, regex, replacement, each_value } => {
                    let with = msg.render(replacement, ctx);
                    replace_header(msg.headers(), name, regex, &with, *each_value);
                }
                Action::SetVar(name, s) => {
                    let (req, resp) = msg.seen();
                    if let Some(v) = eval(s, req, resp, &ctx.scope()) {
                        ctx.vars.set(name, v.into_string());
                    }
                }
                Action::UnsetVar(name) => ctx.vars.unset(name),
                Action::ScIncGpc(slot, gpc) => {
                    ctx.vars.inc_gpc(*slot, *gpc);
                }
                Action::ScSetGpt0(slot, value) => ctx.vars.set_gpt0(*slot, *value),
                Action::Auth(realm) => return Verdict::Auth(realm.clone()),
                Action::Tarpit(status) => return Verdict::Tarpit(*status),
                Action::SetSrc(s) => {
                    let Msg::Request(req) = &msg else { continue };
                    let ip = match eval(s, Some(req), None, &ctx.scope()) {
                        Some(Value::Ip(ip)) => Some(ip),
                        Some(other) => other.into_string().trim().parse().ok(),
                        None => None,
                    };
                    // An expression that gives no address leaves the source as it was.
                    if let Some(ip) = ip {
                        ctx.client = SocketAddr::new(ip, ctx.client.port());
                        ctx.vars.src = Some(ctx.client);
                    }
                }
                Action::TrackSc { slot, key, table } => {
                    let Msg::Request(req) = &msg else { continue };
                    let value = eval(key, Some(req), None, &ctx.scope());
                    if let (Some(t), Some(v)) = (ctx.vars.table(table.as_deref()), value) {
                        if let Some(k) = table_key(&t, v) {
                            ctx.vars.track(*slot, t, k, true);
                        }
                    }
                }
                Action::SetStatus(code, reason) => {
                    if let (Msg::Response { status, .. }, Ok(s)) = (&mut msg, StatusCode::from_u16(*code)) {
                        **status = s;
                        ctx.vars.reason.clone_from(reason);
                    }
                }
                Action::SetPath(_)
                | Action::SetQuery(_)
                | Action::SetUri(_)
                | Action::SetMethod(_)
                | Action::ReplacePath { .. } => {
                    if let Msg::Request(req) = &mut msg {
                        rewrite(action, req, ctx);
                    }
                }
            }
        }
        Verdict::Continue
    }
}

/// The message a section's rules work on.
enum Msg<'a> {
    Request(&'a mut Parts),
    /// A response's status and headers; `req`, the request it answers, only makes a
    /// redirect's Location: the request's content is gone by the time the response comes
    /// (HAProxy forwards it), so request fetches find nothing in response rules.
    Response {
        req: &'a Parts,
        status: &'a mut StatusCode,
        headers: &'a mut HeaderMap,
    },
}

impl Msg<'_> {
    /// What samples read: the request, or the response.
    fn seen(&self) -> (Option<&Parts>, Option<Resp<'_>>) {
        match self {
            Msg::Request(req) => (Some(&**req), None),
            Msg::Response { status, headers, .. } => (None, Some(Resp { status: **status, headers })),
        }
    }

    fn request(&self) -> &Parts {
        match self {
            Msg::Request(req) => req,
            Msg::Response { req, .. } => req,
        }
    }

    fn headers(&mut self) -> &mut HeaderMap {
        match self {
            Msg::Request(req) => &mut req.headers,
            Msg::Response { headers, .. } => headers,
        }
    }

    /// Whether a rule's condition holds (in a response, on the response and what else a
    /// condition can still see).
    fn holds(&self, c: &CompiledCondition, acls: &[CompiledAcl], who: &super::acl::Who<'_>) -> bool {
        match self {
            Msg::Request(req) => c.eval(acls, req, who),
            Msg::Response { status, headers, .. } => {
                let resp = Some(Resp { status: **status, headers });
                c.eval_facts(acls, &Facts { req: None, resp, ..Facts::of(who) })
            }
        }
    }

    fn render(&self, f: &Format, ctx: &Ctx<'_>) -> String {
        let (req, resp) = self.seen();
        render(f, req, resp, &ctx.scope())
    }
}

/// The request-line rewrites: `set-path`, `set-query`, `set-uri`, `set-method`, `replace-path`.
fn rewrite(action: &Action, req: &mut Parts, ctx: &Ctx<'_>) {
    let text = |f: &Format, req: &Parts| render(f, Some(req), None, &ctx.scope());
    match action {
        Action::SetPath(f) => {
            let path = text(f, req);
            let pq = match req.uri.query() {
                Some(q) => format!("{path}?{q}"),
                None => path,
            };
            set_path_and_query(req, &pq);
        }
        Action::SetQuery(f) => {
            let q = text(f, req);
            let path = req.uri.path().to_string();
            let pq = if q.is_empty() { path } else { format!("{path}?{}", q.trim_start_matches('?')) };
            set_path_and_query(req, &pq);
        }
        Action::SetUri(f) => {
            if let Ok(uri) = Uri::try_from(text(f, req).as_str()) {
                req.uri = uri;
            }
        }
        Action::SetMethod(f) => {
            if let Ok(m) = Method::from_bytes(text(f, req).as_bytes()) {
                req.method = m;
            }
        }
        Action::ReplacePath { regex, replacement } => {
            let with = text(replacement, req);
            let path = req.uri.path().to_string();
            let new = regex.replace(&path, haproxy_subst(&with).as_str()).into_owned();
            if new != path {
                let pq = match req.uri.query() {
                    Some(q) => format!("{new}?{q}"),
                    None => new,
                };
                set_path_and_query(req, &pq);
            }
        }
        _ => {}
    }
}

/// A log-format string rendered for a request from `client` to `bind` (no TLS, no response),
/// with its regexes compiled: what the fuzz target drives, and a way to see what a value
/// becomes.
pub fn render_request(
    format_: &LogFormat,
    req: &Parts,
    client: SocketAddr,
    bind: SocketAddr,
) -> Result<String, CompileError> {
    let f = format(format_)?;
    let mut vars = Vars::default();
    vars.set("txn.x", "value".to_string());
    let ctx = Ctx { client, bind, tls: None, frontend: "fe", backend: Some("be"), vars: &mut vars };
    Ok(render(&f, Some(req), None, &ctx.scope()))
}

/// `set-header` (replace: every field of that name goes first) or `add-header`.
fn set_header(headers: &mut HeaderMap, name: &HeaderName, v: HeaderValue, replace: bool) {
    if replace {
        headers.insert(name.clone(), v);
    } else {
        headers.append(name.clone(), v);
    }
}

/// `replace-header` (each field's whole value) or `replace-value` (each comma-separated value).
fn replace_header(headers: &mut HeaderMap, name: &HeaderName, regex: &regex::Regex, with: &str, each_value: bool) {
    if !headers.contains_key(name) {
        return;
    }
    let with = haproxy_subst(with);
    let old: Vec<String> =
        headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect();
    if old.is_empty() {
        return;
    }
    headers.remove(name);
    for value in old {
        let new = if each_value {
            value
                .split(',')
                .map(|part| {
                    let t = part.trim();
                    regex.replace(t, with.as_str()).into_owned()
                })
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            regex.replace(&value, with.as_str()).into_owned()
        };
        if let Ok(v) = HeaderValue::from_str(&new) {
            headers.append(name.clone(), v);
        }
    }
}

fn set_path_and_query(req: &mut Parts, pq: &str) {
    let mut parts = std::mem::take(&mut req.uri).into_parts();
    match http::uri::PathAndQuery::try_from(pq) {
        Ok(p) if pq.starts_with('/') || pq == "*" => parts.path_and_query = Some(p),
        _ => {}
    }
    req.uri = Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("/"));
}

/// A log-format string's text, its samples rendered (a sample that finds nothing is empty).
fn render(f: &Format, req: Option<&Parts>, resp: Option<Resp<'_>>, ctx: &Scope<'_>) -> String {
    let mut out = String::with_capacity(32);
    for part in &f.parts {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Sample(s) => {
                if let Some(v) = eval(s, req, resp, ctx) {
                    v.write_to(&mut out);
                }
            }
        }
    }
    out
}

/// The `occ`th value of a header (1 first, negative from the end, 0 the last), comma lists
/// split unless `full`.
fn header_value(headers: &HeaderMap, name: &str, occ: i64, full: bool) -> Option<String> {
    let values = headers.get_all(name);
    if occ <= 0 {
        // From the end: the last value first (the usual `req.hdr(host)`).
        let skip = usize::try_from(occ.unsigned_abs().max(1) - 1).ok()?;
        nth_piece(values.iter().rev(), skip, full, true)
    } else {
        nth_piece(values.iter(), usize::try_from(occ - 1).ok()?, full, false)
    }
}

/// The piece `skip` pieces away, walking `values` in their order (each value's comma-separated
/// pieces from its end when `from_end`), without collecting them.
fn nth_piece<'a>(
    values: impl Iterator<Item = &'a HeaderValue>,
    mut skip: usize,
    full: bool,
    from_end: bool,
) -> Option<String> {
    for v in values {
        let text = String::from_utf8_lossy(v.as_bytes());
        let count = if full { 1 } else { text.split(',').count() };
        if skip >= count {
            skip -= count;
            continue;
        }
        if full {
            return Some(text.into_owned());
        }
        let piece = if from_end { text.rsplit(',').nth(skip) } else { text.split(',').nth(skip) };
        return piece.map(|p| p.trim().to_string());
    }
    None
}

/// The value of the last `Set-Cookie` that sets cookie `name` (HAProxy's `res.cook`).
fn set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    let values = headers.get_all(http::header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok());
    values.rev().find_map(|v| {
        let (k, rest) = v.split_once('=')?;
        (k.trim() == name).then(|| rest.split(';').next().unwrap_or_default().trim().to_string())
    })
}

/// The value of the last occurrence of cookie `name` in the request (HAProxy's `req.cook`).
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .rev()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn fetch(f: &SampleFetch, req: Option<&Parts>, resp: Option<Resp<'_>>, ctx: &Scope<'_>) -> Option<Value> {
    let tls = ctx.tls;
    Some(match f {
        SampleFetch::Src => Value::Ip(ctx.client.ip()),
        SampleFetch::SrcPort => Value::Int(i64::from(ctx.client.port())),
        SampleFetch::Dst => Value::Ip(ctx.bind.ip()),
        SampleFetch::DstPort => Value::Int(i64::from(ctx.bind.port())),
        SampleFetch::Method => Value::Str(req?.method.as_str().to_string()),
        SampleFetch::Path => Value::Str(req?.uri.path().to_string()),
        SampleFetch::Query => Value::Str(req?.uri.query()?.to_string()),
        SampleFetch::Url => Value::Str(req?.uri.to_string()),
        SampleFetch::Base => {
            let r = req?;
            let host = r.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
            Value::Str(format!("{host}{}", r.uri.path()))
        }
        SampleFetch::ReqVer => Value::Str(
            match req?.version {
                http::Version::HTTP_10 => "1.0",
                http::Version::HTTP_2 => "2.0",
                _ => "1.1",
            }
            .to_string(),
        ),
        SampleFetch::ReqHdr { name, occ, full } => Value::Str(header_value(&req?.headers, name, *occ, *full)?),
        SampleFetch::ReqHdrCnt(name) => Value::Int(
            req?.headers.get_all(name.as_str()).iter().map(|v| v.as_bytes().split(|b| *b == b',').count() as i64).sum(),
        ),
        SampleFetch::ReqCook(name) => Value::Str(cookie(&req?.headers, name)?),
        SampleFetch::ResCook(name) => Value::Str(set_cookie(resp?.headers, name)?),
        SampleFetch::HttpAuth(list) => {
            let headers = &req?.headers;
            Value::Bool(ctx.vars.users().is_some_and(|u| u.user(list, headers).is_some()))
        }
        SampleFetch::HttpAuthGroup(list) => Value::Str(ctx.vars.users()?.user(list, &req?.headers)?.name.clone()),
        SampleFetch::HttpAuthUser => Value::Str(super::auth::basic(&req?.headers)?.0),
        SampleFetch::UrlParam { name, delim } => {
            // As HAProxy: the parameters start after the first DELIM ('?') of the target and
            // end at '&', ';' or DELIM; one without '=' has no value.
            let target = req?.uri.path_and_query().map_or("", |pq| pq.as_str());
            let (_, params) = target.split_once(*delim)?;
            let value = params.split(['&', ';', *delim]).find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k == name).then_some(v)
            })?;
            Value::Str(value.to_string())
        }
        SampleFetch::Rand(range) => Value::Int(i64::try_from(rand::random::<u64>() % range).unwrap_or(0)),
        SampleFetch::Uuid => {
            let mut b: [u8; 16] = rand::random();
            b[6] = (b[6] & 0x0f) | 0x40;
            b[8] = (b[8] & 0x3f) | 0x80;
            let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
            Value::Str(format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]))
        }
        SampleFetch::Date(offset) => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
            Value::Int(i64::try_from(now).ok()?.saturating_add(*offset))
        }
        SampleFetch::NbSrv(backend) => {
            let snap = ctx.vars.snap.as_ref()?;
            let name = backend.as_deref().or(ctx.backend)?;
            let b = snap.backends.iter().find(|b| b.cfg.name == name)?;
            Value::Int((0..b.servers.len()).filter(|i| b.usable(*i)).count() as i64)
        }
        SampleFetch::SrvIsUp { backend, server } => {
            let snap = ctx.vars.snap.as_ref()?;
            let b = snap.backends.iter().find(|b| b.cfg.name == *backend)?;
            let i = b.servers.iter().position(|s| s.cfg.name == *server)?;
            Value::Bool(b.usable(i))
        }
        SampleFetch::HttpAuthPass => Value::Str(super::auth::basic(&req?.headers)?.1),
        SampleFetch::HttpAuthType => {
            let value = req?.headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
            Value::Str(value.split_whitespace().next()?.to_ascii_lowercase())
        }
        SampleFetch::ResHdr { name, occ } => Value::Str(header_value(resp?.headers, name, *occ, false)?),
        SampleFetch::Status => Value::Int(i64::from(resp?.status.as_u16())),
        SampleFetch::SslFc => Value::Bool(tls.is_some()),
        SampleFetch::SslFcSni => Value::Str(tls?.sni.clone()?),
        SampleFetch::SslFcProtocol => Value::Str(tls?.protocol.to_string()),
        SampleFetch::SslFcAlpn => Value::Str(tls?.alpn.clone()?),
        SampleFetch::SslFcCipher => Value::Str(tls?.cipher.to_string()),
        SampleFetch::SslCUsed => Value::Bool(tls.is_some_and(|t| t.client_cert)),
        SampleFetch::SslCSDn => Value::Str(tls?.client_subject.clone()?),
        SampleFetch::FeName => Value::Str(ctx.frontend.to_string()),
        SampleFetch::BeName => Value::Str(ctx.backend?.to_string()),
        SampleFetch::Env(name) => Value::Str(std::env::var(name).ok()?),
        SampleFetch::Str(s) => Value::Str(s.clone()),
        SampleFetch::Int(i) => Value::Int(*i),
        SampleFetch::Var(name) => Value::Str(ctx.vars.get(name)?.to_string()),
        SampleFetch::Counter { of, counter, table } => Value::Int(counter_fetch(*of, *counter, table.as_deref(), ctx)?),
    })
}

/// `sc_*`, `scN_*`, `src_*`: a counter of the tracked entry (or of the client's address).
fn counter_fetch(of: CounterOf, which: Counter, table: Option<&str>, ctx: &Scope<'_>) -> Option<i64> {
    let vars = ctx.vars;
    let (table, key) = match of {
        CounterOf::Slot(n) => {
            let tracked = vars.slot(n);
            if which == Counter::Tracked {
                return Some(i64::from(tracked.is_some()));
            }
            let (tracked, key) = tracked?;
            let t = match table {
                Some(name) => vars.table(Some(name))?,
                None => Arc::clone(tracked),
            };
            (t, key.clone())
        }
        CounterOf::Src => {
            let t = vars.table(table)?;
            let key = table_key(&t, Value::Ip(ctx.client.ip()))?;
            (t, key)
        }
    };
    let (now, ms) = vars.now();
    let layout = &table.layout;
    let value = match which {
        Counter::Inc(d) => table.change(key, now, |c| c.inc_gpc(layout, d, ms))?,
        Counter::Clear(d) => table.change(key, now, |c| c.set(layout, d, 0))?,
        // An entry that is not there counts 0 (HAProxy's `src_*`); one there whose table does
        // not store the value gives nothing.
        Counter::Read(d) => match table.peek(&key, now) {
            None => 0,
            Some(_) if !layout.stores(d) => return None,
            Some(c) => c.get(layout, d, ms),
        },
        Counter::Tracked => return None,
    };
    Some(i64::try_from(value).unwrap_or(i64::MAX))
}

pub(crate) fn eval(s: &CompiledSample, req: Option<&Parts>, resp: Option<Resp<'_>>, ctx: &Scope<'_>) -> Option<Value> {
    let mut v = fetch(&s.fetch, req, resp, ctx)?;
    for c in &s.converters {
        v = convert(c, v, ctx)?;
    }
    Some(v)
}

/// The base64 alphabet (also HAProxy's cookie dates').
pub(crate) const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub(crate) fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub(crate) fn b64dec(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in text.iter().filter(|c| **c != b'=') {
        let v = B64.iter().position(|b| *b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// `field` and `word`: the `index`th piece (negative from the end), `count` pieces joined.
fn pieces(text: &str, delims: &str, index: i64, count: i64, skip_empty: bool) -> String {
    let all: Vec<&str> = text.split(|c| delims.contains(c)).filter(|p| !(skip_empty && p.is_empty())).collect();
    let n = all.len() as i64;
    let start = if index > 0 { index - 1 } else { n + index };
    if start < 0 || start >= n {
        return String::new();
    }
    let end = if count <= 0 { n } else { (start + count).min(n) };
    let sep = delims.chars().next().map(String::from).unwrap_or_default();
    all[start as usize..end as usize].join(&sep)
}

fn json_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn convert(c: &CompiledConv, v: Value, ctx: &Scope<'_>) -> Option<Value> {
    let conv = match c {
        CompiledConv::Regsub { regex, subst, global } => {
            let text = v.into_string();
            let out =
                if *global { regex.replace_all(&text, subst.as_str()) } else { regex.replace(&text, subst.as_str()) };
            return Some(Value::Str(out.into_owned()));
        }
        CompiledConv::Map(map) => return map.lookup(v),
        CompiledConv::Plain(c) => c,
    };
    Some(match conv {
        Converter::Lower => Value::Str(v.into_string().to_lowercase()),
        Converter::Upper => Value::Str(v.into_string().to_uppercase()),
        Converter::Base64 => Value::Str(base64(&v.into_bytes())),
        Converter::B64Dec => Value::Bin(b64dec(&v.into_bytes())?),
        Converter::Hex => Value::Str(v.into_bytes().iter().map(|b| format!("{b:02X}")).collect()),
        Converter::Length => Value::Int(v.into_bytes().len() as i64),
        Converter::Field { index, delims, count } => {
            Value::Str(pieces(&v.into_string(), delims, *index, *count, false))
        }
        Converter::Word { index, delims, count } => Value::Str(pieces(&v.into_string(), delims, *index, *count, true)),
        Converter::Bytes { offset, length } => {
            let b = v.into_bytes();
            let start = usize::try_from(*offset).ok()?.min(b.len());
            let end = match length {
                Some(l) => start.saturating_add(usize::try_from(*l).ok()?).min(b.len()),
                None => b.len(),
            };
            Value::Bin(b[start..end].to_vec())
        }
        Converter::IpMask { v4, v6 } => {
            let ip = match v {
                Value::Ip(ip) => ip,
                other => other.into_string().parse().ok()?,
            };
            Value::Ip(fulcrum_balance::mask_ip(ip, *v4, *v6))
        }
        Converter::Add(n) => Value::Int(v.as_int()?.wrapping_add(*n)),
        Converter::Sub(n) => Value::Int(v.as_int()?.wrapping_sub(*n)),
        Converter::Mul(n) => Value::Int(v.as_int()?.wrapping_mul(*n)),
        // HAProxy: a division by zero gives the largest value.
        Converter::Div(n) => Value::Int(if *n == 0 { i64::MAX } else { v.as_int()?.wrapping_div(*n) }),
        Converter::Mod(n) => Value::Int(if *n == 0 { 0 } else { v.as_int()?.wrapping_rem(*n) }),
        Converter::Json => Value::Str(json_escape(&v.into_string())),
        Converter::Sdbm => Value::Int(i64::from(fulcrum_balance::haproxy_hash::sdbm(&v.into_bytes()))),
        Converter::Djb2 => Value::Int(i64::from(fulcrum_balance::haproxy_hash::djb2(&v.into_bytes()))),
        Converter::Crc32 => Value::Int(i64::from(fulcrum_balance::haproxy_hash::crc32(&v.into_bytes()))),
        // Compiled into `CompiledConv::Regsub` and `CompiledConv::Map`.
        Converter::Regsub { .. } | Converter::Map { .. } => v,
        Converter::Concat { before, var, after } => {
            let middle = var.as_deref().and_then(|n| ctx.vars.get(n)).unwrap_or_default();
            Value::Str(format!("{}{before}{middle}{after}", v.into_string()))
        }
        Converter::Table { table, what } => {
            use fulcrum_model::rules::TableLookup;
            let t = ctx.vars.table(Some(table))?;
            let key = table_key(&t, v)?;
            let (now, ms) = ctx.vars.now();
            let entry = t.peek(&key, now);
            match what {
                TableLookup::Present => Value::Bool(entry.is_some()),
                // (An entry no `stick` rule gave a server has none, as a table without
                // `server_id`.)
                TableLookup::ServerId => match entry {
                    None => Value::Int(0),
                    Some(c) if c.server_id == 0 => return None,
                    Some(c) => Value::Int(i64::from(c.server_id)),
                },
                // As the counter fetches: 0 without an entry, nothing when not stored.
                TableLookup::Data(d) => match entry {
                    None => Value::Int(0),
                    Some(_) if !t.layout.stores(*d) => return None,
                    Some(c) => Value::Int(i64::try_from(c.get(&t.layout, *d, ms)).unwrap_or(i64::MAX)),
                },
            }
        }
    })
}
