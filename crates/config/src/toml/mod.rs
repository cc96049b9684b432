//! fulcrum's native TOML format (documented in docs/configuration.md), with `[vrrp]` in
//! `toml/vrrp.rs`. Values use HAProxy's
//! words where HAProxy has them (`balance = "roundrobin"`, `expect = "status 200"`, ACLs and
//! conditions), and the same parsers, so both front-ends accept and reject the same things.
//!
//! The document is first read into a tree that keeps every key's position, then walked by the
//! schema below; every problem is reported with its line, and reading goes on.
use std::ops::Range;
use std::path::Path;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::acl::AclSet;
use crate::diag::{did_you_mean, Problem, Sink};
use crate::haproxy::backend::{self as hb, apply_server_param};
use crate::haproxy::section::{CheckSend, ServerDefaults};
use crate::haproxy::tokenize::tokenize;
use crate::partial::{BackendRef, BindRef, Partial};
use crate::values::{parse_duration, parse_host_port, parse_size, resolve};
use fulcrum_model::*;

mod tls;
mod vrrp;

/// A value and where it is in the text, when the TOML parser knows (implicit tables, such as
/// `defaults` in `[defaults.backend]`, have no position).
#[derive(Debug, Clone)]
struct At<T> {
    value: T,
    span: Option<Range<usize>>,
}

impl<T> At<T> {
    fn get_ref(&self) -> &T {
        &self.value
    }
}

/// A TOML value with the position of every key and value.
#[derive(Debug, Clone)]
enum Node {
    Str(String),
    Int(i64),
    Float,
    Bool(bool),
    Date,
    Array(Vec<At<Node>>),
    Table(Vec<(At<String>, At<Node>)>),
}

impl Node {
    fn kind(&self) -> &'static str {
        match self {
            Node::Str(_) => "a string",
            Node::Int(_) => "an integer",
            Node::Float => "a float",
            Node::Bool(_) => "a boolean",
            Node::Date => "a date",
            Node::Array(_) => "an array",
            Node::Table(_) => "a table",
        }
    }
}

// The toml crate hands out positions through `toml::Spanned`'s protocol: a struct with these
// names, visited as a map of start, end and value. Asking for it and accepting plain values as
// well means a value without a position (or a future toml that changes the names) still reads,
// only without a line number.
const SPANNED: &str = "$__serde_spanned_private_Spanned";
const START: &str = "$__serde_spanned_private_start";
const END: &str = "$__serde_spanned_private_end";
const VALUE: &str = "$__serde_spanned_private_value";
const SPANNED_FIELDS: &[&str] = &[START, END, VALUE];
const DATETIME: &str = "$__toml_private_datetime";

impl<'de> Deserialize<'de> for At<Node> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct(SPANNED, SPANNED_FIELDS, NodeVisitor)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor).map(|at| at.value)
    }
}

impl<'de> Deserialize<'de> for At<String> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct(SPANNED, SPANNED_FIELDS, KeyVisitor)
    }
}

/// Reads the rest of `toml::Spanned`'s protocol once its first key (START) was read.
fn spanned_rest<'de, A: MapAccess<'de>, T: Deserialize<'de>>(map: &mut A) -> Result<At<T>, A::Error> {
    let start: usize = map.next_value()?;
    let (mut end, mut value) = (start, None);
    while let Some(key) = map.next_key::<String>()? {
        match key.as_str() {
            END => end = map.next_value()?,
            VALUE => value = Some(map.next_value::<T>()?),
            _ => map.next_value::<serde::de::IgnoredAny>().map(|_| ())?,
        }
    }
    let value = value.ok_or_else(|| serde::de::Error::custom("missing value"))?;
    Ok(At { value, span: Some(start..end) })
}

struct NodeVisitor;

impl NodeVisitor {
    fn plain<E>(node: Node) -> Result<At<Node>, E> {
        Ok(At { value: node, span: None })
    }
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = At<Node>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a TOML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<At<Node>, E> {
        Self::plain(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<At<Node>, E> {
        Self::plain(Node::Int(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<At<Node>, E> {
        i64::try_from(v).map_err(|_| E::custom("integer is too large")).and_then(|v| Self::plain(Node::Int(v)))
    }

    fn visit_f64<E>(self, _: f64) -> Result<At<Node>, E> {
        Self::plain(Node::Float)
    }

    fn visit_str<E>(self, v: &str) -> Result<At<Node>, E> {
        Self::plain(Node::Str(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<At<Node>, E> {
        Self::plain(Node::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<At<Node>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<At<Node>>()? {
            items.push(item);
        }
        Self::plain(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<At<Node>, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<At<String>>()? {
            match key.value.as_str() {
                START if entries.is_empty() => return spanned_rest::<A, Node>(&mut map),
                DATETIME if entries.is_empty() => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    return Self::plain(Node::Date);
                }
                _ => {
                    let value = map.next_value::<At<Node>>()?;
                    entries.push((key, value));
                }
            }
        }
        Self::plain(Node::Table(entries))
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = At<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E>(self, v: &str) -> Result<At<String>, E> {
        Ok(At { value: v.to_string(), span: None })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<At<String>, A::Error> {
        match map.next_key::<String>()? {
            Some(key) if key == START => spanned_rest::<A, String>(&mut map),
            _ => Err(serde::de::Error::custom("expected a key")),
        }
    }
}

/// Parse a TOML configuration.
pub(crate) fn parse(
    text: &str,
    file: &Path,
    inherited: &std::collections::BTreeMap<i32, std::net::SocketAddr>,
) -> (Partial, Sink) {
    let mut doc = Doc {
        text,
        sink: Sink::new(file, false),
        out: Partial::default(),
        pending_admin: None,
        inherited: inherited.clone(),
    };
    match ::toml::from_str::<Node>(text) {
        Ok(Node::Table(entries)) => doc.root(&entries),
        Ok(other) => doc.sink.error(1, format!("expected a TOML document, found {}", other.kind()), None),
        Err(e) => {
            let line = e.span().map(|s| doc.line(&s)).unwrap_or(0);
            let message = e.message().trim().to_string();
            let message = format!("invalid TOML: {}", message.replace('\n', "; "));
            doc.sink.error(line, message, None);
        }
    }
    let Doc { mut sink, out, .. } = doc;
    sink.diags.sort_by_key(|d| d.line);
    (out, sink)
}

type Entries = [(At<String>, At<Node>)];

/// The keys of one table, as they are taken by the schema; what is left is unknown.
struct Table<'n> {
    entries: &'n Entries,
    used: Vec<bool>,
    /// For messages: "frontend 'web'".
    context: String,
    line: usize,
}

impl<'n> Table<'n> {
    fn get(&mut self, key: &str) -> Option<&'n At<Node>> {
        let index = self.entries.iter().position(|(k, _)| k.value == key)?;
        if let Some(used) = self.used.get_mut(index) {
            *used = true;
        }
        self.entries.get(index).map(|(_, v)| v)
    }
}

struct Doc<'t> {
    text: &'t str,
    sink: Sink,
    out: Partial,
    /// `stats.admin_if` of the frontend being read, parsed once its ACLs are known.
    pending_admin: Option<(String, usize)>,
    /// What `fd@N` stands for.
    inherited: std::collections::BTreeMap<i32, std::net::SocketAddr>,
}

/// Defaults for the frontends and backends that follow (`[defaults.frontend]`,
/// `[defaults.backend]`).
#[derive(Clone)]
struct BackendBase {
    backend: Backend,
    servers: ServerDefaults,
    /// Whether servers are checked unless they say `check = false` (a `health` table is set).
    check: bool,
}

impl Default for BackendBase {
    fn default() -> Self {
        BackendBase { backend: Backend::new(""), servers: ServerDefaults::default(), check: false }
    }
}

const ROOT_KEYS: &[&str] = &["global", "defaults", "frontend", "backend", "vrrp"];
const GLOBAL_KEYS: &[&str] =
    &["maxconn", "threads", "access_log", "hard_stop_after", "bufsize", "maxrewrite", "max_headers", "control_socket"];
const FRONTEND_KEYS: &[&str] = &[
    "name",
    "mode",
    "bind",
    "maxconn",
    "default_backend",
    "acl",
    "use_backend",
    "timeouts",
    "forwardfor",
    "connection",
    "log",
    "dontlognull",
    "errorfiles",
    "stats",
    "max_request_body",
    "tls",
];
const FRONTEND_TIMEOUTS: &[&str] = &["client", "http_request", "http_keep_alive"];
const BACKEND_KEYS: &[&str] = &[
    "name",
    "mode",
    "persistence",
    "mh_table_size",
    "balance",
    "hash_type",
    "retries",
    "redispatch",
    "allbackups",
    "forwardfor",
    "connection",
    "http_reuse",
    "timeouts",
    "health",
    "default_server",
    "cookie",
    "stick_src",
    "errorfiles",
    "server",
];
const BACKEND_TIMEOUTS: &[&str] = &["connect", "server", "queue", "check", "tunnel"];
const HEALTH_KEYS: &[&str] =
    &["http", "check", "inter", "fastinter", "downinter", "rise", "fall", "check_port", "check_address"];
const HTTP_CHECK_KEYS: &[&str] = &["method", "uri", "version", "headers", "expect"];
const SERVER_KEYS: &[&str] = &[
    "name",
    "address",
    "check",
    "weight",
    "backup",
    "disabled",
    "maxconn",
    "maxqueue",
    "inter",
    "fastinter",
    "downinter",
    "rise",
    "fall",
    "slowstart",
    "observe",
    "on_error",
    "error_limit",
    "cookie",
    "check_port",
    "check_address",
    "tls",
    "proto",
];
const STATS_KEYS: &[&str] = &["uri", "auth", "realm", "refresh", "hide_version", "show_node", "admin", "admin_if"];
const COOKIE_KEYS: &[&str] = &["name", "mode", "indirect", "nocache", "httponly", "secure", "domain", "preserve"];
const FORWARDFOR_KEYS: &[&str] = &["header", "if_none", "except"];

/// HAProxy words people will type out of habit, and the TOML key that means the same.
const ALIASES: &[(&str, &str)] = &[
    ("nbthread", "threads"),
    ("timeout", "timeouts"),
    ("servers", "server"),
    ("frontends", "frontend"),
    ("backends", "backend"),
    ("listen", "frontend"),
    ("httplog", "log"),
    ("address", "bind"),
    ("addr", "address"),
    ("httpchk", "health"),
    ("stick_table", "stick_src"),
    ("default-server", "default_server"),
];

impl<'t> Doc<'t> {
    fn line(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.get(..end).map(|t| t.matches('\n').count() + 1).unwrap_or(1)
    }

    /// The line of a key or value; 0 (no line) when the parser gave no position.
    fn line_of<T>(&self, node: &At<T>) -> usize {
        node.span.as_ref().map(|s| self.line(s)).unwrap_or(0)
    }

    fn report(&mut self, line: usize, problem: Problem) {
        self.sink.report(line, problem);
    }

    fn table<'n>(&mut self, node: &'n At<Node>, context: String) -> Option<Table<'n>> {
        match node.get_ref() {
            Node::Table(entries) => {
                Some(Table { entries, used: vec![false; entries.len()], context, line: self.line_of(node) })
            }
            other => {
                let line = self.line_of(node);
                self.sink.error(line, format!("{context} must be a table, not {}", other.kind()), None);
                None
            }
        }
    }

    /// Report the keys nobody took, with the closest known key as a hint.
    fn finish(&mut self, table: Table<'_>, known: &[&str]) {
        for ((key, _), used) in table.entries.iter().zip(&table.used) {
            if *used {
                continue;
            }
            let word = key.get_ref();
            let alias = ALIASES
                .iter()
                .chain(vrrp::VRRP_ALIASES)
                .find(|(a, _)| a == word)
                .map(|(_, k)| *k)
                .filter(|k| known.contains(k));
            let hint =
                alias.or_else(|| did_you_mean(word, known.iter().copied())).map(|k| format!("did you mean {k}?"));
            let hint = hint.or_else(|| Some(format!("known keys: {}", known.join(", "))));
            let line = self.line_of(key);
            self.sink.error(line, format!("unknown key '{word}' in {}", table.context), hint);
        }
    }

    fn wrong_type(&mut self, node: &At<Node>, key: &str, expected: &str) {
        let line = self.line_of(node);
        let found = node.get_ref().kind();
        self.sink.error(line, format!("'{key}' must be {expected}, not {found}"), None);
    }

    fn string(&mut self, t: &mut Table<'_>, key: &str) -> Option<(String, usize)> {
        let node = t.get(key)?;
        match node.get_ref() {
            Node::Str(s) => Some((s.clone(), self.line_of(node))),
            _ => {
                self.wrong_type(node, key, "a string");
                None
            }
        }
    }

    fn boolean(&mut self, t: &mut Table<'_>, key: &str) -> Option<bool> {
        let node = t.get(key)?;
        match node.get_ref() {
            Node::Bool(b) => Some(*b),
            _ => {
                self.wrong_type(node, key, "true or false");
                None
            }
        }
    }

    fn integer<T: TryFrom<i64>>(&mut self, t: &mut Table<'_>, key: &str) -> Option<T> {
        let node = t.get(key)?;
        match node.get_ref() {
            Node::Int(n) => match T::try_from(*n) {
                Ok(v) => Some(v),
                Err(_) => {
                    let line = self.line_of(node);
                    self.sink.error(line, format!("'{key}' = {n} is out of range"), None);
                    None
                }
            },
            _ => {
                self.wrong_type(node, key, "an integer");
                None
            }
        }
    }

    /// A duration: "5s", "500ms", "1m" (HAProxy's units), or an integer number of milliseconds.
    fn duration(&mut self, t: &mut Table<'_>, key: &str) -> Option<std::time::Duration> {
        let node = t.get(key)?;
        let line = self.line_of(node);
        let text = match node.get_ref() {
            Node::Str(s) => s.clone(),
            Node::Int(n) if *n >= 0 => n.to_string(),
            _ => {
                self.wrong_type(node, key, "a duration like \"5s\" or a number of milliseconds");
                return None;
            }
        };
        match parse_duration(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.sink.error(line, format!("'{key}': {e}"), None);
                None
            }
        }
    }

    /// A string or an array of strings, with the line of each.
    fn strings(&mut self, t: &mut Table<'_>, key: &str) -> Vec<(String, usize)> {
        match t.get(key) {
            Some(node) => self.strings_of(node, key),
            None => Vec::new(),
        }
    }

    fn strings_of(&mut self, node: &At<Node>, key: &str) -> Vec<(String, usize)> {
        match node.get_ref() {
            Node::Str(s) => vec![(s.clone(), self.line_of(node))],
            Node::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    match item.get_ref() {
                        Node::Str(s) => out.push((s.clone(), self.line_of(item))),
                        _ => self.wrong_type(item, key, "an array of strings"),
                    }
                }
                out
            }
            _ => {
                self.wrong_type(node, key, "a string or an array of strings");
                Vec::new()
            }
        }
    }

    /// The elements of an array of tables (`[[frontend]]`); a single table is accepted too.
    fn tables<'n>(&mut self, node: &'n At<Node>, key: &str) -> Vec<&'n At<Node>> {
        match node.get_ref() {
            Node::Array(items) => items.iter().collect(),
            Node::Table(_) => vec![node],
            _ => {
                self.wrong_type(node, key, &format!("an array of tables ([[{key}]])"));
                Vec::new()
            }
        }
    }

    /// Words in HAProxy's syntax inside a string, split by HAProxy's tokenizer.
    fn words(&mut self, text: &str, line: usize) -> Option<Vec<String>> {
        match tokenize(text) {
            Ok(t) => Some(t.words),
            Err(e) => {
                self.sink.error(line, e.to_string(), None);
                None
            }
        }
    }

    fn root(&mut self, entries: &Entries) {
        let mut root = Table { entries, used: vec![false; entries.len()], context: "the document".into(), line: 1 };
        if let Some(node) = root.get("global") {
            if let Some(mut t) = self.table(node, "[global]".into()) {
                self.global(&mut t);
                self.finish(t, GLOBAL_KEYS);
            }
        }
        let (fe_base, be_base) = match root.get("defaults") {
            Some(node) => self.defaults(node),
            None => (Frontend::new(""), BackendBase::default()),
        };
        if let Some(node) = root.get("backend") {
            for item in self.tables(node, "backend") {
                self.backend(item, &be_base);
            }
        }
        if let Some(node) = root.get("frontend") {
            for item in self.tables(node, "frontend") {
                self.frontend(item, &fe_base);
            }
        }
        if let Some(node) = root.get("vrrp") {
            self.vrrp(node);
        }
        self.finish(root, ROOT_KEYS);
    }

    fn global(&mut self, t: &mut Table<'_>) {
        self.out.global.maxconn = self.integer(t, "maxconn");
        if let Some(n) = self.integer::<usize>(t, "threads") {
            if n == 0 {
                self.sink.error(t.line, "threads must be at least 1", None);
            } else {
                self.out.global.nbthread = Some(n);
            }
        }
        self.out.global.access_log = self.string(t, "access_log").map(|(p, _)| p.into());
        self.out.global.control_socket = self.string(t, "control_socket").map(|(p, _)| p.into());
        self.out.global.hard_stop_after = self.duration(t, "hard_stop_after");
        self.out.global.bufsize = self.integer(t, "bufsize");
        self.out.global.maxrewrite = self.integer(t, "maxrewrite");
        self.out.global.max_headers = self.integer(t, "max_headers");
    }

    fn defaults(&mut self, node: &At<Node>) -> (Frontend, BackendBase) {
        let mut fe = Frontend::new("");
        let mut be = BackendBase::default();
        let Some(mut t) = self.table(node, "[defaults]".into()) else { return (fe, be) };
        if let Some(node) = t.get("frontend") {
            if let Some(mut ft) = self.table(node, "[defaults.frontend]".into()) {
                self.frontend_settings(&mut ft, &mut fe, true);
                let per_frontend = ["name", "bind", "acl", "use_backend", "default_backend", "stats"];
                let known: Vec<&str> = FRONTEND_KEYS.iter().copied().filter(|k| !per_frontend.contains(k)).collect();
                self.finish(ft, &known);
            }
        }
        if let Some(node) = t.get("backend") {
            if let Some(mut bt) = self.table(node, "[defaults.backend]".into()) {
                self.backend_settings(&mut bt, &mut be);
                let known: Vec<&str> =
                    BACKEND_KEYS.iter().copied().filter(|k| !["name", "server"].contains(k)).collect();
                self.finish(bt, &known);
            }
        }
        self.finish(t, &["frontend", "backend"]);
        (fe, be)
    }

    fn name(&mut self, t: &mut Table<'_>, what: &str) -> Option<(String, usize)> {
        match self.string(t, "name") {
            Some((name, line)) if crate::acl::valid_acl_name(&name) => Some((name, line)),
            Some((name, line)) => {
                let hint = Some("names use letters, digits, '-', '_', '.' and ':'".to_string());
                self.sink.error(line, format!("invalid {what} name '{name}'"), hint);
                None
            }
            None => {
                self.sink.error(
                    t.line,
                    format!("{what} without a name"),
                    Some(format!("add name = \"...\" to this [[{what}]]")),
                );
                None
            }
        }
    }

    fn origin(&self, line: usize) -> Origin {
        Origin { file: self.sink.file.clone(), line }
    }

    fn frontend(&mut self, node: &At<Node>, base: &Frontend) {
        let Some(mut t) = self.table(node, "[[frontend]]".into()) else { return };
        let Some((name, line)) = self.name(&mut t, "frontend") else {
            // Keys are still checked, so every mistake shows at once.
            t.used.iter_mut().for_each(|u| *u = true);
            return;
        };
        t.context = format!("frontend '{name}'");
        let mut fe = base.clone();
        fe.name = name.clone();
        fe.origin = self.origin(line);
        let mut incomplete = false;
        if let Some(mode) = self.mode(&mut t) {
            if mode == Mode::Udp && fe.mode != Mode::Udp {
                fe.timeout_client = UDP_IDLE;
            }
            fe.mode = mode;
        }
        let udp = fe.mode == Mode::Udp;
        for (text, line) in self.strings(&mut t, "bind") {
            for part in text.split(',') {
                match crate::values::bind_address(part.trim(), &self.inherited) {
                    Ok(addr) => {
                        fe.binds.push(addr);
                        let origin = self.origin(line);
                        self.out.binds.push(BindRef { frontend: name.clone(), addr, udp, origin });
                    }
                    Err(e) => {
                        incomplete = true;
                        self.sink.error(line, e.to_string(), Some("e.g. bind = [\"0.0.0.0:80\", \"[::]:80\"]".into()));
                    }
                }
            }
        }
        self.frontend_tls(&mut t, &mut fe, udp);
        if let Some((backend, line)) = self.string(&mut t, "default_backend") {
            self.backend_ref(&name, &backend, line);
            fe.default_backend = Some(backend);
        }
        let mut acls = self.acls(&mut t);
        let mut rules = self.use_backends(&mut t, &name, &mut acls, &mut incomplete);
        self.frontend_settings(&mut t, &mut fe, false);
        let mut admin = self.admin_condition(&mut acls);
        let mut conditions: Vec<&mut Condition> = rules.iter_mut().map(|r| &mut r.condition).collect();
        conditions.extend(admin.as_mut().map(|(c, _)| c));
        match acls.finish(&mut conditions) {
            Ok(list) => fe.acls = list,
            Err(problem) => self.report(line, problem),
        }
        fe.use_backends = rules;
        if let (Some(stats), Some((cond, _))) = (fe.stats.as_mut(), admin) {
            stats.admin_if = Some(cond);
        }
        self.finish(t, FRONTEND_KEYS);
        if incomplete {
            self.out.incomplete.push(name);
        }
        self.out.frontends.push(fe);
    }

    fn backend_ref(&mut self, frontend: &str, backend: &str, line: usize) {
        let origin = self.origin(line);
        self.out.backend_refs.push(BackendRef { frontend: frontend.to_string(), backend: backend.to_string(), origin });
    }

    /// `acl = { is_api = "path_beg /api", static = ["path_beg /static", "path_end .css"] }`
    fn acls(&mut self, t: &mut Table<'_>) -> AclSet {
        let mut acls = AclSet::default();
        let Some(node) = t.get("acl") else { return acls };
        let Some(table) = self.table(node, "acl".into()) else { return acls };
        for (name, value) in table.entries {
            for (text, line) in self.strings_of(value, name.get_ref()) {
                let Some(words) = self.words(&text, line) else { continue };
                if let Err(problem) = acls.define(name.get_ref(), &words) {
                    self.report(line, problem);
                }
            }
        }
        acls
    }

    /// `[[frontend.use_backend]] backend = "api"; if = "is_api"` (or `unless`; neither: always).
    fn use_backends(
        &mut self,
        t: &mut Table<'_>,
        frontend: &str,
        acls: &mut AclSet,
        incomplete: &mut bool,
    ) -> Vec<UseBackend> {
        let mut rules = Vec::new();
        let Some(node) = t.get("use_backend") else { return rules };
        for item in self.tables(node, "frontend.use_backend") {
            let Some(mut rt) = self.table(item, format!("a use_backend of frontend '{frontend}'")) else { continue };
            let backend = self.string(&mut rt, "backend");
            let when = self.string(&mut rt, "if");
            let unless = self.string(&mut rt, "unless");
            self.finish(rt, &["backend", "if", "unless"]);
            let Some((backend, line)) = backend else {
                self.sink.error(
                    self.line_of(item),
                    "use_backend without 'backend'",
                    Some("add backend = \"NAME\"".into()),
                );
                *incomplete = true;
                continue;
            };
            let condition = match (when, unless) {
                (Some(_), Some((_, l))) => {
                    self.sink.error(l, "a use_backend takes 'if' or 'unless', not both", None);
                    None
                }
                (Some((text, l)), None) => self.condition(acls, false, &text, l),
                (None, Some((text, l))) => self.condition(acls, true, &text, l),
                (None, None) => Some(Condition { unless: false, alternatives: vec![Vec::new()] }),
            };
            match condition {
                Some(condition) => {
                    self.backend_ref(frontend, &backend, line);
                    rules.push(UseBackend { backend, condition, dynamic: None });
                }
                None => *incomplete = true,
            }
        }
        rules
    }

    fn condition(&mut self, acls: &mut AclSet, unless: bool, text: &str, line: usize) -> Option<Condition> {
        let words = self.words(text, line)?;
        match acls.parse_terms(unless, &words) {
            Ok(c) => Some(c),
            Err(problem) => {
                self.report(line, problem);
                None
            }
        }
    }

    /// Settings a frontend may also take from `[defaults.frontend]`.
    fn frontend_settings(&mut self, t: &mut Table<'_>, fe: &mut Frontend, in_defaults: bool) {
        if let Some(n) = self.integer(t, "maxconn") {
            fe.maxconn = Some(n);
        }
        if let Some(n) = self.integer::<u64>(t, "max_request_body") {
            fe.max_request_body = Some(n);
        }
        if let Some(node) = t.get("timeouts") {
            if let Some(mut tt) = self.table(node, format!("timeouts of {}", t.context)) {
                if let Some(d) = self.duration(&mut tt, "client") {
                    fe.timeout_client = d;
                }
                if let Some(d) = self.duration(&mut tt, "http_request") {
                    fe.timeout_http_request = d;
                }
                if let Some(d) = self.duration(&mut tt, "http_keep_alive") {
                    fe.timeout_http_keep_alive = d;
                }
                self.finish(tt, FRONTEND_TIMEOUTS);
            }
        }
        if let Some(ff) = self.forwardfor(t) {
            fe.forwardfor = ff;
        }
        if let Some(mode) = self.connection(t) {
            fe.conn_mode = mode;
        }
        if let Some(b) = self.boolean(t, "log") {
            fe.httplog = b;
        }
        if let Some(b) = self.boolean(t, "dontlognull") {
            fe.dontlognull = b;
        }
        self.errorfiles(t, &mut fe.errorfiles);
        if !in_defaults {
            self.stats(t, fe);
        }
    }

    fn forwardfor(&mut self, t: &mut Table<'_>) -> Option<Option<ForwardFor>> {
        let node = t.get("forwardfor")?;
        match node.get_ref() {
            Node::Bool(b) => Some(b.then(ForwardFor::default)),
            Node::Table(_) => {
                let mut ft = self.table(node, "forwardfor".into())?;
                let mut words = Vec::new();
                if let Some((header, _)) = self.string(&mut ft, "header") {
                    words.extend(["header".to_string(), header]);
                }
                if self.boolean(&mut ft, "if_none") == Some(true) {
                    words.push("if-none".into());
                }
                if let Some((net, _)) = self.string(&mut ft, "except") {
                    words.extend(["except".to_string(), net]);
                }
                let line = ft.line;
                self.finish(ft, FORWARDFOR_KEYS);
                match crate::haproxy::parse_forwardfor(&words) {
                    Ok(ff) => Some(Some(ff)),
                    Err(problem) => {
                        self.report(line, problem);
                        None
                    }
                }
            }
            _ => {
                self.wrong_type(node, "forwardfor", "true, false or a table");
                None
            }
        }
    }

    fn connection(&mut self, t: &mut Table<'_>) -> Option<ConnMode> {
        let (mode, line) = self.string(t, "connection")?;
        match mode.as_str() {
            "keep-alive" => Some(ConnMode::KeepAlive),
            "server-close" => Some(ConnMode::ServerClose),
            "close" => Some(ConnMode::Close),
            other => {
                self.report(line, Problem::unknown("connection mode", other, ["keep-alive", "server-close", "close"]));
                None
            }
        }
    }

    /// `errorfiles = { 503 = "errors/503.http" }`: read now, relative to the configuration file.
    fn errorfiles(&mut self, t: &mut Table<'_>, files: &mut std::collections::BTreeMap<u16, ErrorFile>) {
        let Some(node) = t.get("errorfiles") else { return };
        let Some(et) = self.table(node, "errorfiles".into()) else { return };
        let dir = self.sink.file.parent().map(Path::to_path_buf).unwrap_or_default();
        for (key, value) in et.entries {
            let line = self.line_of(key);
            let code = match key.get_ref().parse::<u16>() {
                Ok(code) if (200..=599).contains(&code) => code,
                _ => {
                    self.sink.error(
                        line,
                        format!("errorfiles key '{}' is not an HTTP status code", key.get_ref()),
                        None,
                    );
                    continue;
                }
            };
            let Node::Str(name) = value.get_ref() else {
                self.wrong_type(value, key.get_ref(), "a file name");
                continue;
            };
            let path = dir.join(name);
            match std::fs::read(&path) {
                Ok(content) if content.starts_with(b"HTTP/1.") => {
                    files.insert(code, ErrorFile { path, content });
                }
                Ok(_) => self.sink.error(
                    line,
                    format!("'{}' is not an HTTP response (it must start with a status line)", path.display()),
                    None,
                ),
                Err(e) => self.sink.error(line, format!("cannot read '{}': {e}", path.display()), None),
            }
        }
    }

    fn stats(&mut self, t: &mut Table<'_>, fe: &mut Frontend) {
        let Some(node) = t.get("stats") else { return };
        let Some(mut st) = self.table(node, "stats".into()) else { return };
        let mut stats = fe.stats.clone().unwrap_or_else(|| Stats { uri: "/haproxy?stats".into(), ..Stats::default() });
        if let Some((uri, _)) = self.string(&mut st, "uri") {
            stats.uri = uri;
        }
        for (pair, line) in self.strings(&mut st, "auth") {
            match pair.split_once(':') {
                Some((user, pass)) => stats.auth.push((user.to_string(), pass.to_string())),
                None => self.sink.error(line, "stats auth entries are \"USER:PASSWORD\"", None),
            }
        }
        if let Some((realm, _)) = self.string(&mut st, "realm") {
            stats.realm = Some(realm);
        }
        if let Some(d) = self.duration(&mut st, "refresh") {
            stats.refresh = Some(d);
        }
        if let Some(b) = self.boolean(&mut st, "hide_version") {
            stats.hide_version = b;
        }
        if let Some(node) = st.get("show_node") {
            match node.get_ref() {
                Node::Bool(b) => stats.show_node = b.then(String::new),
                Node::Str(s) => stats.show_node = Some(s.clone()),
                _ => self.wrong_type(node, "show_node", "true, false or a node name"),
            }
        }
        if let Some(b) = self.boolean(&mut st, "admin") {
            stats.admin = b;
        }
        fe.stats = Some(stats);
        // Kept aside until the frontend's ACLs are known.
        self.pending_admin = self.string(&mut st, "admin_if");
        self.finish(st, STATS_KEYS);
    }

    fn admin_condition(&mut self, acls: &mut AclSet) -> Option<(Condition, usize)> {
        let (text, line) = self.pending_admin.take()?;
        self.condition(acls, false, &text, line).map(|c| (c, line))
    }

    fn backend(&mut self, node: &At<Node>, base: &BackendBase) {
        let Some(mut t) = self.table(node, "[[backend]]".into()) else { return };
        let Some((name, line)) = self.name(&mut t, "backend") else {
            t.used.iter_mut().for_each(|u| *u = true);
            return;
        };
        t.context = format!("backend '{name}'");
        let mut base = base.clone();
        base.backend.name = name.clone();
        base.backend.origin = self.origin(line);
        self.backend_settings(&mut t, &mut base);
        if let Some(node) = t.get("server") {
            for item in self.tables(node, "backend.server") {
                if let Some(server) = self.server(item, &base, &name) {
                    if let Some(first) = base.backend.servers.iter().find(|s| s.name == server.name) {
                        let hint = Some(format!("first defined on line {}", first.origin.line));
                        let message = format!("server '{}' is defined twice in backend '{name}'", server.name);
                        self.sink.error(server.origin.line, message, hint);
                    } else {
                        base.backend.servers.push(server);
                    }
                }
            }
        }
        if base.backend.servers.is_empty() {
            self.sink.warn(line, format!("backend '{name}' has no server: its requests get 503"), None);
        }
        self.finish(t, BACKEND_KEYS);
        self.out.backends.push(base.backend);
    }

    /// `mode = "http" | "tcp" | "udp"`.
    fn mode(&mut self, t: &mut Table<'_>) -> Option<Mode> {
        let (text, line) = self.string(t, "mode")?;
        match text.as_str() {
            "http" => Some(Mode::Http),
            "tcp" => Some(Mode::Tcp),
            "udp" => Some(Mode::Udp),
            other => {
                self.report(line, Problem::unknown("mode", other, ["http", "tcp", "udp"]));
                None
            }
        }
    }

    /// Settings a backend may also take from `[defaults.backend]`.
    fn backend_settings(&mut self, t: &mut Table<'_>, base: &mut BackendBase) {
        let be = &mut base.backend;
        if let Some(mode) = self.mode(t) {
            be.mode = mode;
        }
        if let Some((text, line)) = self.string(t, "balance") {
            if let Some(words) = self.words(&text, line) {
                // HAProxy's algorithms, and the IPVS schedulers by their ipvsadm names
                // (`balance = "wrr"`, `balance = "sh sh-port sh-fallback"`).
                match (hb::parse_balance(&words), lvs_balance(&words)) {
                    (_, Some(Ok(lvs))) => be.algorithm = Algorithm::Lvs(lvs),
                    (_, Some(Err(problem))) => self.report(line, problem),
                    (Ok(algorithm), None) => be.algorithm = algorithm,
                    (Err(problem), None) => self.report(line, problem),
                }
            }
        }
        if let Some(n) = self.integer::<u32>(t, "mh_table_size") {
            // The kernel's choices (CONFIG_IP_VS_MH_TAB_INDEX): primes, 4093 by default.
            const PRIMES: [u32; 10] = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071];
            match &mut be.algorithm {
                Algorithm::Lvs(l) if l.scheduler == LvsScheduler::Mh && PRIMES.contains(&n) => l.mh_table = n,
                Algorithm::Lvs(l) if l.scheduler == LvsScheduler::Mh => {
                    let hint = Some(
                        "one of the kernel's sizes: 251 509 1021 2039 4093 8191 16381 32749 65521 131071".to_string(),
                    );
                    self.sink.error(t.line, format!("mh_table_size {n} is not one of the Maglev table sizes"), hint);
                }
                _ => self.sink.error(t.line, "mh_table_size needs balance = \"mh\"", None),
            }
        }
        if let Some(node) = t.get("persistence") {
            if let Some(mut pt) = self.table(node, format!("persistence of {}", t.context)) {
                let timeout = self.duration(&mut pt, "timeout").unwrap_or(std::time::Duration::from_secs(300));
                let mut p = Persistence { timeout, prefix_v4: 32, prefix_v6: 128 };
                if let Some(n) = self.integer::<u8>(&mut pt, "prefix_v4") {
                    p.prefix_v4 = n.min(32);
                }
                if let Some(n) = self.integer::<u8>(&mut pt, "prefix_v6") {
                    p.prefix_v6 = n.min(128);
                }
                be.persistence = Some(p);
                self.finish(pt, &["timeout", "prefix_v4", "prefix_v6"]);
            }
        }
        if let Some((text, line)) = self.string(t, "hash_type") {
            if let Some(words) = self.words(&text, line) {
                match hb::parse_hash_type(&words) {
                    Ok((hash_type, key_hash)) => {
                        be.hash_type = hash_type;
                        be.key_hash = key_hash;
                    }
                    Err(problem) => self.report(line, problem),
                }
            }
        }
        if let Some(n) = self.integer(t, "retries") {
            be.retries = n;
        }
        if let Some(b) = self.boolean(t, "redispatch") {
            be.redispatch = b;
        }
        if let Some(b) = self.boolean(t, "allbackups") {
            be.allbackups = b;
        }
        if let Some(ff) = self.forwardfor(t) {
            be.forwardfor = ff;
        }
        if let Some(mode) = self.connection(t) {
            be.conn_mode = mode;
        }
        if let Some((mode, line)) = self.string(t, "http_reuse") {
            match hb::parse_http_reuse(&mode) {
                Ok(reuse) => be.http_reuse = reuse,
                Err(problem) => self.report(line, problem),
            }
        }
        self.backend_timeouts(t, be);
        self.errorfiles(t, &mut be.errorfiles);
        self.cookie(t, be);
        self.stick_src(t, be);
        self.health(t, base);
        if let Some(node) = t.get("default_server") {
            if let Some(mut dt) = self.table(node, format!("default_server of {}", t.context)) {
                let known: Vec<&str> =
                    SERVER_KEYS.iter().copied().filter(|k| !["name", "address"].contains(k)).collect();
                self.server_params(&mut dt, &mut base.servers, &mut base.check, &known);
                self.finish(dt, &known);
            }
        }
    }

    fn backend_timeouts(&mut self, t: &mut Table<'_>, be: &mut Backend) {
        let Some(node) = t.get("timeouts") else { return };
        let Some(mut tt) = self.table(node, format!("timeouts of {}", t.context)) else { return };
        if let Some(d) = self.duration(&mut tt, "connect") {
            be.timeout_connect = d;
        }
        if let Some(d) = self.duration(&mut tt, "server") {
            be.timeout_server = d;
        }
        if let Some(d) = self.duration(&mut tt, "queue") {
            be.timeout_queue = d;
        }
        if let Some(d) = self.duration(&mut tt, "check") {
            be.timeout_check = Some(d);
        }
        if let Some(d) = self.duration(&mut tt, "tunnel") {
            be.timeout_tunnel = Some(d);
        }
        self.finish(tt, BACKEND_TIMEOUTS);
    }

    /// `cookie = "SRV insert indirect nocache"` (HAProxy's words) or a table.
    fn cookie(&mut self, t: &mut Table<'_>, be: &mut Backend) {
        let Some(node) = t.get("cookie") else { return };
        let line = self.line_of(node);
        let words = match node.get_ref() {
            Node::Str(text) => match self.words(text, line) {
                Some(words) => words,
                None => return,
            },
            Node::Table(_) => {
                let Some(mut ct) = self.table(node, "cookie".into()) else { return };
                let mut words = Vec::new();
                match self.string(&mut ct, "name") {
                    Some((name, _)) => words.push(name),
                    None => self.sink.error(
                        line,
                        "cookie needs a name",
                        Some("e.g. cookie = { name = \"SERVERID\", mode = \"insert\" }".into()),
                    ),
                }
                match self.string(&mut ct, "mode") {
                    Some((mode, _)) => words.push(mode),
                    None => self.sink.error(line, "cookie needs a mode: insert, prefix or rewrite", None),
                }
                for flag in ["indirect", "nocache", "httponly", "secure", "preserve"] {
                    if self.boolean(&mut ct, flag) == Some(true) {
                        words.push(flag.to_string());
                    }
                }
                if let Some((domain, _)) = self.string(&mut ct, "domain") {
                    words.extend(["domain".to_string(), domain]);
                }
                self.finish(ct, COOKIE_KEYS);
                if words.len() < 2 {
                    return;
                }
                words
            }
            _ => return self.wrong_type(node, "cookie", "a string or a table"),
        };
        match hb::parse_cookie(&words) {
            Ok(cookie) => be.cookie = Some(cookie),
            Err(problem) => self.report(line, problem),
        }
    }

    /// `stick_src = { size = "1m", expire = "1h" }`: stick on the client's address.
    fn stick_src(&mut self, t: &mut Table<'_>, be: &mut Backend) {
        let Some(node) = t.get("stick_src") else { return };
        let Some(mut st) = self.table(node, "stick_src".into()) else { return };
        let size = match st.get("size").map(|n| (n.get_ref(), self.line_of(n))) {
            Some((Node::Int(n), line)) => usize::try_from(*n).map_err(|_| (line, "size must be positive".to_string())),
            Some((Node::Str(s), line)) => parse_size(s)
                .map_err(|e| (line, e.to_string()))
                .and_then(|n| usize::try_from(n).map_err(|_| (line, "size is too large".to_string()))),
            Some((_, line)) => Err((line, "size must be an integer or a string like \"1m\"".to_string())),
            None => Err((st.line, "stick_src needs a size (entries; k, m, g suffixes allowed)".to_string())),
        };
        let expire = self.duration(&mut st, "expire").unwrap_or(std::time::Duration::MAX);
        self.finish(st, &["size", "expire"]);
        match size {
            Ok(size) => {
                be.table = Some(StickTable::ip(size, expire));
                be.stick = vec![fulcrum_model::StickRule {
                    kind: fulcrum_model::StickKind::On,
                    sample: fulcrum_model::rules::Sample {
                        fetch: fulcrum_model::rules::SampleFetch::Src,
                        converters: Vec::new(),
                    },
                    table: None,
                    condition: None,
                }];
            }
            Err((line, message)) => self.sink.error(line, message, None),
        }
    }

    /// `health = { http = { ... }, inter = "2s", rise = 2, fall = 3 }`: the check, and check
    /// settings for every server of the backend.
    fn health(&mut self, t: &mut Table<'_>, base: &mut BackendBase) {
        let Some(node) = t.get("health") else { return };
        let Some(mut ht) = self.table(node, format!("health of {}", t.context)) else { return };
        base.check = true;
        if let Some(http) = ht.get("http") {
            match http.get_ref() {
                Node::Bool(true) => base.backend.http_check = Some(HttpCheck::default()),
                Node::Bool(false) => base.backend.http_check = None,
                Node::Table(_) => base.backend.http_check = self.http_check(http),
                _ => self.wrong_type(http, "http", "true, false or a table"),
            }
        }
        self.server_params(&mut ht, &mut base.servers, &mut base.check, HEALTH_KEYS);
        self.finish(ht, HEALTH_KEYS);
    }

    fn http_check(&mut self, node: &At<Node>) -> Option<HttpCheck> {
        let mut ht = self.table(node, "health.http".into())?;
        let mut send = CheckSend::default();
        let mut check = HttpCheck::default();
        let mut words = Vec::new();
        if let Some((m, _)) = self.string(&mut ht, "method") {
            words.extend(["meth".to_string(), m]);
        }
        if let Some((u, _)) = self.string(&mut ht, "uri") {
            words.extend(["uri".to_string(), u]);
        }
        if let Some((v, _)) = self.string(&mut ht, "version") {
            words.extend(["ver".to_string(), v]);
        }
        if let Some(headers) = ht.get("headers") {
            if let Some(hdrs) = self.table(headers, "health.http.headers".into()) {
                for (name, value) in hdrs.entries {
                    match value.get_ref() {
                        Node::Str(v) => words.extend(["hdr".to_string(), name.get_ref().clone(), v.clone()]),
                        _ => self.wrong_type(value, name.get_ref(), "a string"),
                    }
                }
            }
        }
        let line = ht.line;
        match hb::parse_check_send(&words) {
            Ok(parsed) => send = parsed,
            Err(problem) => self.report(line, problem),
        }
        hb::apply_check_send(&mut check, &send);
        if let Some((text, line)) = self.string(&mut ht, "expect") {
            if let Some(words) = self.words(&text, line) {
                match hb::parse_expect(&words) {
                    Ok(expect) => check.expect = Some(expect),
                    Err(problem) => self.report(line, problem),
                }
            }
        }
        self.finish(ht, HTTP_CHECK_KEYS);
        Some(check)
    }

    fn server(&mut self, node: &At<Node>, base: &BackendBase, backend: &str) -> Option<Server> {
        let mut t = self.table(node, format!("a server of backend '{backend}'"))?;
        let name = self.name(&mut t, "backend.server");
        let address = self.string(&mut t, "address");
        let mut defaults = base.servers.clone();
        let mut check = base.check;
        if let Some((name, _)) = &name {
            t.context = format!("server '{name}' of backend '{backend}'");
        }
        self.server_params(&mut t, &mut defaults, &mut check, SERVER_KEYS);
        let line = t.line;
        self.finish(t, SERVER_KEYS);
        let (name, name_line) = name?;
        let Some((address, line)) = address else {
            let hint = Some("e.g. address = \"192.0.2.10:80\"".to_string());
            self.sink.error(name_line.max(line), format!("server '{name}' has no address"), hint);
            return None;
        };
        let addr = match parse_host_port(&address).and_then(|hp| resolve(&hp, "server address")) {
            Ok(addr) => addr,
            Err(e) => {
                self.sink.error(line, e.to_string(), Some("e.g. address = \"192.0.2.10:80\"".into()));
                return None;
            }
        };
        let mut server = defaults.server.clone();
        server.name = name;
        server.origin = self.origin(name_line);
        server.addr = addr;
        server.check = check;
        match hb::check_address(&defaults, addr) {
            Ok(check_addr) => server.check_addr = check_addr,
            Err(problem) => self.report(line, problem),
        }
        if server.h2 && server.tls.enabled && server.tls.alpn.is_empty() {
            server.tls.alpn = vec!["h2".into()];
        }
        if server.tls.enabled {
            server.tls.verify = defaults.tls_verify.unwrap_or(true);
            server.tls.check = defaults.check_ssl.unwrap_or(server.check_addr.is_none());
            if let Err(e) = fulcrum_tls::client_config(&server.tls) {
                self.sink.error(name_line, format!("server '{}': {e}", server.name), None);
            }
        }
        Some(server)
    }

    /// Server settings, by HAProxy's keyword parser: `weight = 10` is `weight 10`.
    fn server_params(&mut self, t: &mut Table<'_>, defaults: &mut ServerDefaults, check: &mut bool, keys: &[&str]) {
        if keys.contains(&"tls") {
            self.server_tls(t, defaults);
        }
        if let Some(b) = keys.contains(&"check").then(|| self.boolean(t, "check")).flatten() {
            *check = b;
        }
        // TOML key, HAProxy keyword when true, when false.
        const FLAGS: [(&str, &str, &str); 2] = [("backup", "backup", "no-backup"), ("disabled", "disabled", "enabled")];
        for (key, on, off) in FLAGS.into_iter().filter(|(k, _, _)| keys.contains(k)) {
            if let Some(b) = self.boolean(t, key) {
                // Flags take no value and cannot fail.
                let _ = apply_server_param(defaults, if b { on } else { off }, "");
            }
        }
        // TOML key and HAProxy keyword, for settings with a value.
        const VALUED: [(&str, &str); 16] = [
            ("proto", "proto"),
            ("weight", "weight"),
            ("maxconn", "maxconn"),
            ("maxqueue", "maxqueue"),
            ("inter", "inter"),
            ("fastinter", "fastinter"),
            ("downinter", "downinter"),
            ("rise", "rise"),
            ("fall", "fall"),
            ("slowstart", "slowstart"),
            ("observe", "observe"),
            ("on_error", "on-error"),
            ("error_limit", "error-limit"),
            ("cookie", "cookie"),
            ("check_port", "port"),
            ("check_address", "addr"),
        ];
        for (key, keyword) in VALUED.into_iter().filter(|(k, _)| keys.contains(k)) {
            let Some(node) = t.get(key) else { continue };
            let line = self.line_of(node);
            let value = match node.get_ref() {
                Node::Str(s) => s.clone(),
                Node::Int(n) => n.to_string(),
                _ => {
                    self.wrong_type(node, key, "a string or an integer");
                    continue;
                }
            };
            if let Err(problem) = apply_server_param(defaults, keyword, &value) {
                self.report(line, problem);
            }
        }
    }
}

/// An IPVS scheduler by its ipvsadm name, with its flags: None when the first word is not one.
fn lvs_balance(words: &[String]) -> Option<Result<Lvs, Problem>> {
    let scheduler = LvsScheduler::from_name(words.first()?)?;
    let mut lvs = Lvs::new(scheduler);
    for flag in words.get(1..).unwrap_or_default() {
        let own = flag.starts_with(&format!("{}-", scheduler.name()));
        match flag.as_str() {
            "sh-port" | "mh-port" | "sh-fallback" | "mh-fallback" if !own => {
                return Some(Err(Problem::invalid(format!("incompatible scheduler flag '{flag}'"))
                    .hint(format!("{flag} goes with balance = \"{}\"", &flag[..2]))));
            }
            "sh-port" | "mh-port" => lvs.port = true,
            "sh-fallback" | "mh-fallback" => lvs.fallback = true,
            other => {
                let flags = ["sh-port", "sh-fallback", "mh-port", "mh-fallback"];
                return Some(Err(Problem::unknown("scheduler flag", other, flags)));
            }
        }
    }
    Some(Ok(lvs))
}
