//! The haproxy.cfg front-end: reads HAProxy's configuration language with HAProxy's semantics
//! (sections, `defaults` inheritance, keywords, units) into a [`Partial`] Model, and says with
//! file:line what fulcrum does not support.
use std::path::{Path, PathBuf};

use crate::diag::{Problem, Sink};
use crate::partial::Partial;
use crate::values::{parse_duration, parse_number};

pub(crate) mod backend;
pub mod cond;
mod http_rules;
pub(crate) mod keywords;
mod peers;
mod proxy;
pub(crate) mod section;
mod tls;
pub(crate) mod tokenize;
mod userlist;

use keywords::{known, lookup, supported, Context, Support};
pub(crate) use proxy::parse_forwardfor;
use section::{Kind, ProxyState};

/// How relative file names (errorfiles) are resolved: HAProxy's `default-path`. fulcrum's
/// default is `config` (next to the configuration file), since a service's working directory
/// is usually `/`.
#[derive(Debug, Clone)]
enum DefaultPath {
    Current,
    Config,
    Parent,
    Origin(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    /// Before the first section.
    None,
    Global,
    /// `defaults`, `frontend`, `backend` or `listen`: the state is in `Parser::current`.
    Proxy,
    /// `peers NAME`: the state is in `Parser::peers`.
    Peers,
    /// `userlist NAME`: the state is in `Parser::userlist`.
    Userlist,
    /// A section fulcrum does not read (`peers`, `userlist`, ...): its lines are skipped.
    Skipped,
}

/// What one haproxy.cfg leaves to the next one read after it: as with `haproxy -f a -f b`,
/// the defaults in effect at the end of a file apply to the proxies of the next.
#[derive(Debug, Clone)]
pub(crate) struct Carry {
    default_path: DefaultPath,
    /// The defaults that apply to the proxies that follow (the last `defaults` section read).
    defaults: ProxyState,
    named_defaults: Vec<(String, ProxyState)>,
    mode_lines: Vec<fulcrum_model::Origin>,
}

impl Default for Carry {
    fn default() -> Self {
        Carry {
            default_path: DefaultPath::Config,
            defaults: ProxyState::defaults(String::new(), 0),
            named_defaults: Vec::new(),
            mode_lines: Vec::new(),
        }
    }
}

struct Parser {
    sink: Sink,
    config_dir: PathBuf,
    default_path: DefaultPath,
    section: Section,
    /// The defaults that apply to the proxies that follow (the last `defaults` section read).
    defaults: ProxyState,
    named_defaults: Vec<(String, ProxyState)>,
    current: Option<ProxyState>,
    out: Partial,
    /// `mode` lines already reported, so a `mode tcp` in defaults is reported once.
    mode_lines: Vec<fulcrum_model::Origin>,
    errorfiles: Vec<(PathBuf, Result<Vec<u8>, Problem>)>,
    /// Where the parser stands in `.if` blocks.
    blocks: cond::Blocks,
    /// What `fd@N` stands for.
    inherited: std::collections::BTreeMap<i32, std::net::SocketAddr>,
    /// `global`'s TLS settings, defaults of the `ssl` bind lines.
    tls: tls::TlsDefaults,
    /// The `peers` section being read.
    peers: Option<peers::PeersState>,
    /// The `userlist` section being read.
    userlist: Option<userlist::UserlistState>,
}

/// Parse one haproxy.cfg, starting from what earlier files left. The Sink holds every error
/// and warning, in line order.
pub(crate) fn parse(text: &str, file: &Path, opts: &crate::LoadOptions, carry: Carry) -> (Partial, Sink, Carry) {
    let mut parser = Parser {
        sink: Sink::new(file, opts.lenient),
        inherited: opts.inherited.clone(),
        config_dir: file.parent().map(Path::to_path_buf).unwrap_or_default(),
        default_path: carry.default_path,
        section: Section::None,
        defaults: carry.defaults,
        named_defaults: carry.named_defaults,
        current: None,
        out: Partial::default(),
        mode_lines: carry.mode_lines,
        errorfiles: Vec::new(),
        blocks: cond::Blocks::default(),
        tls: tls::TlsDefaults::default(),
        peers: None,
        userlist: None,
    };
    for (index, raw) in text.lines().enumerate() {
        parser.line(index + 1, raw);
    }
    if let Err(e) = parser.blocks.finish() {
        parser.sink.error(text.lines().count(), e.to_string(), Some("add the missing '.endif'".into()));
    }
    parser.finish_section();
    let Parser { mut sink, out, default_path, defaults, named_defaults, mode_lines, .. } = parser;
    sink.diags.sort_by_key(|d| d.line);
    (out, sink, Carry { default_path, defaults, named_defaults, mode_lines })
}

impl Parser {
    fn line(&mut self, line: usize, raw: &str) {
        let directive = raw.trim_start().starts_with('.');
        if !directive && !self.blocks.active() {
            return;
        }
        let tokens = match tokenize::tokenize(raw) {
            Ok(t) => t,
            Err(e) => return self.sink.error(line, e.to_string(), None),
        };
        if directive {
            return self.directive(line, tokens);
        }
        for note in tokens.notes {
            self.sink.warn(line, note, None);
        }
        let words = tokens.words;
        let Some(keyword) = words.first().map(String::as_str) else { return };
        if lookup(Context::Section, keyword).is_some() {
            return self.start_section(line, &words);
        }
        if !raw.starts_with(char::is_whitespace) && self.misspelt_section(line, keyword) {
            return;
        }
        match self.section {
            Section::None => {
                let problem = Problem::invalid(format!("'{keyword}' appears before any section"));
                let problem = match crate::did_you_mean(keyword, supported(Context::Section)) {
                    Some(best) => problem.hint(format!("did you mean {best}?")),
                    None => problem.hint("start with 'global', 'defaults', 'frontend', 'backend' or 'listen'"),
                };
                self.sink.report(line, problem);
            }
            Section::Global => self.global_line(line, &words),
            Section::Proxy => {
                if let Some(mut state) = self.current.take() {
                    self.proxy_line(&mut state, line, &words);
                    self.current = Some(state);
                }
            }
            Section::Peers => {
                if let Some(mut state) = self.peers.take() {
                    self.peers_line(&mut state, line, &words);
                    self.peers = Some(state);
                }
            }
            Section::Userlist => {
                if let Some(mut state) = self.userlist.take() {
                    self.userlist_line(&mut state, line, &words);
                    self.userlist = Some(state);
                }
            }
            Section::Skipped => {}
        }
    }

    /// A line starting with a dot: a conditional block (`.if` ...) or a message (`.diag`,
    /// `.notice`, `.warning`, `.alert`), as HAProxy 2.6 reads them.
    fn directive(&mut self, line: usize, tokens: tokenize::Line) {
        let words = tokens.words;
        let keyword = words.first().map(String::as_str).unwrap_or_default();
        let args = words.get(1..).unwrap_or_default();
        let condition = |sink: &mut Sink| -> Option<bool> {
            for note in &tokens.notes {
                sink.warn(line, note.clone(), None);
            }
            match cond::eval(args, &|name| std::env::var_os(name).is_some()) {
                Ok(value) => Some(value),
                Err(e) => {
                    let hint = "predicates: defined(), feature(), streq(), strneq(), version_atleast(), \
                                version_before(); operators: !, &&, ||, ( )";
                    sink.error(line, format!("{keyword}: {e}"), Some(hint.into()));
                    Some(false)
                }
            }
        };
        let placed = match keyword {
            ".if" => {
                let value = if self.blocks.active() { condition(&mut self.sink) } else { None };
                self.blocks.open(line, value)
            }
            ".elif" => {
                let value = if self.blocks.elif_pending() { condition(&mut self.sink) } else { None };
                self.blocks.elif(value)
            }
            ".else" => self.blocks.otherwise(),
            ".endif" => self.blocks.close(),
            ".diag" | ".notice" | ".warning" | ".alert" => {
                if self.blocks.active() {
                    let text = args.join(" ");
                    match keyword {
                        ".alert" => self.sink.error(line, text, None),
                        ".warning" => self.sink.warn(line, text, None),
                        ".notice" => self.sink.notice(line, text),
                        // Shown only by `haproxy -dD`; fulcrum keeps none.
                        _ => {}
                    }
                }
                Ok(())
            }
            _ if !self.blocks.active() => Ok(()),
            _ => {
                let known = [".if", ".elif", ".else", ".endif", ".diag", ".notice", ".warning", ".alert"];
                let problem = Problem::unknown("directive", keyword, known);
                self.sink.report(line, problem);
                Ok(())
            }
        };
        if let Err(e) = placed {
            self.sink.error(line, e.to_string(), None);
        }
    }

    /// An unindented word that is no keyword but looks like a section name (`fronted web`):
    /// report it and skip the section, rather than read its lines into the previous one.
    fn misspelt_section(&mut self, line: usize, keyword: &str) -> bool {
        if lookup(Context::Global, keyword).is_some() || lookup(Context::Proxy, keyword).is_some() {
            return false;
        }
        let Some(best) = crate::did_you_mean(keyword, supported(Context::Section)) else { return false };
        self.finish_section();
        let hint = Some(format!("did you mean {best}? the lines up to the next section are skipped"));
        self.sink.error(line, format!("unknown section '{keyword}'"), hint);
        self.section = Section::Skipped;
        true
    }

    fn start_section(&mut self, line: usize, words: &[String]) {
        self.finish_section();
        let keyword = words.first().map(String::as_str).unwrap_or_default();
        let args = words.get(1..).unwrap_or_default();
        self.section = match keyword {
            "global" => {
                if !args.is_empty() {
                    self.sink.warn(line, "'global' takes no argument; the rest of the line is ignored", None);
                }
                Section::Global
            }
            "peers" => match self.section_name(line, keyword, args) {
                Some(name) => {
                    let origin = fulcrum_model::Origin { file: self.sink.file.clone(), line };
                    self.peers = Some(peers::PeersState::new(name, origin));
                    Section::Peers
                }
                None => Section::Skipped,
            },
            "userlist" => match self.section_name(line, keyword, args) {
                Some(name) => {
                    self.userlist = Some(userlist::UserlistState::new(name, line));
                    Section::Userlist
                }
                None => Section::Skipped,
            },
            "defaults" | "frontend" | "backend" | "listen" => match self.proxy_header(line, keyword, args) {
                Some(state) => {
                    self.current = Some(state);
                    Section::Proxy
                }
                None => Section::Skipped,
            },
            _ => {
                let problem = Problem::unsupported(format!("'{keyword}' sections are not supported yet"));
                self.sink.report(line, problem.hint("its lines are skipped"));
                Section::Skipped
            }
        };
    }

    /// The one name a `peers` or `userlist` section takes (None, reported, when it has not).
    fn section_name(&mut self, line: usize, keyword: &str, args: &[String]) -> Option<String> {
        match args {
            [name] if crate::acl::valid_acl_name(name) => Some(name.clone()),
            _ => {
                let hint = Some(format!("e.g. {keyword} lbpair"));
                self.sink.error(
                    line,
                    format!("'{keyword}' needs one name (letters, digits, '-', '_', '.', ':')"),
                    hint,
                );
                None
            }
        }
    }

    /// `defaults [NAME] [from DEFAULTS]`, `frontend|backend|listen NAME [ADDR] [from DEFAULTS]`.
    fn proxy_header(&mut self, line: usize, keyword: &str, args: &[String]) -> Option<ProxyState> {
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        let from = match args.iter().position(|a| *a == "from") {
            Some(at) => {
                let name = args.get(at + 1).map(|s| s.to_string());
                args.truncate(at);
                match name {
                    Some(name) => Some(name),
                    None => {
                        self.sink.error(line, "'from' needs the name of a defaults section", None);
                        return None;
                    }
                }
            }
            None => None,
        };
        let base = match &from {
            Some(name) => match self.named_defaults.iter().rev().find(|(n, _)| n == name) {
                Some((_, state)) => state.clone(),
                None => {
                    let known = self.named_defaults.iter().map(|(n, _)| n.as_str());
                    let problem = Problem::unknown("defaults section", name, known);
                    self.sink.report(line, problem);
                    return None;
                }
            },
            None if keyword == "defaults" => ProxyState::defaults(String::new(), line),
            None => self.defaults.clone(),
        };
        let mut args = args.into_iter();
        let name = args.next().unwrap_or_default();
        if keyword != "defaults" && name.is_empty() {
            self.sink.error(line, format!("'{keyword}' needs a name"), Some(format!("e.g. {keyword} web")));
            return None;
        }
        if !name.is_empty() && !crate::acl::valid_acl_name(name) {
            let hint = "names use letters, digits, '-', '_', '.' and ':'".to_string();
            self.sink.error(line, format!("invalid {keyword} name '{name}'"), Some(hint));
            return None;
        }
        let kind = match keyword {
            "defaults" => Kind::Defaults,
            "frontend" => Kind::Frontend,
            "backend" => Kind::Backend,
            _ => Kind::Listen,
        };
        let mut state = base.inherit(kind, name.to_string(), line);
        if let Some(addr) = args.next() {
            if matches!(kind, Kind::Listen | Kind::Frontend) {
                self.sink.warn(
                    line,
                    format!("an address on the '{keyword}' line is the old syntax"),
                    Some(format!("write it as '{keyword} {name}' followed by 'bind {addr}'")),
                );
                self.bind_addresses(&mut state, line, addr);
            } else {
                self.sink.error(line, format!("unexpected '{addr}' after the {keyword} name"), None);
            }
        }
        if let Some(extra) = args.next() {
            self.sink.error(line, format!("unexpected '{extra}' on the {keyword} line"), None);
        }
        Some(state)
    }

    fn finish_section(&mut self) {
        if let Some(state) = self.current.take() {
            self.finish_proxy(state);
        }
        if let Some(state) = self.peers.take() {
            self.finish_peers(state);
        }
        if let Some(state) = self.userlist.take() {
            self.finish_userlist(state);
        }
        self.section = Section::None;
    }

    fn global_line(&mut self, line: usize, words: &[String]) {
        let keyword = words.first().map(String::as_str).unwrap_or_default();
        let args = words.get(1..).unwrap_or_default();
        let value = args.first().map(String::as_str);
        if let Some(result) = self.global_tls(line, keyword, args) {
            if let Err(problem) = result {
                self.sink.report(line, problem);
            }
            return;
        }
        let result: Result<(), Problem> = match (keyword, value) {
            ("maxconn", Some(v)) => {
                parse_number(v, "maxconn").map(|n| self.out.global.maxconn = Some(n)).map_err(Problem::from)
            }
            ("nbthread", Some(v)) => match parse_number::<usize>(v, "nbthread") {
                Ok(0) => Err(Problem::invalid("nbthread must be at least 1")),
                Ok(n) => {
                    self.out.global.nbthread = Some(n);
                    Ok(())
                }
                Err(e) => Err(e.into()),
            },
            ("hard-stop-after", Some(v)) => {
                parse_duration(v).map(|d| self.out.global.hard_stop_after = Some(d)).map_err(Problem::from)
            }
            ("log", Some(_)) => {
                self.log_target(line, args);
                Ok(())
            }
            ("tune.bufsize", Some(v)) => match parse_number::<usize>(v, "tune.bufsize") {
                Ok(n) if n < 1024 => Err(Problem::invalid(format!("tune.bufsize {n} is too small"))
                    .hint("use at least 1024 (HAProxy's default is 16384)")),
                Ok(n) => {
                    self.out.global.bufsize = Some(n);
                    Ok(())
                }
                Err(e) => Err(e.into()),
            },
            ("tune.maxrewrite", Some(v)) => {
                parse_number(v, "tune.maxrewrite").map(|n| self.out.global.maxrewrite = Some(n)).map_err(Problem::from)
            }
            ("tune.http.maxhdr", Some(v)) => match parse_number::<usize>(v, "tune.http.maxhdr") {
                Ok(n @ 1..=32767) => {
                    self.out.global.max_headers = Some(n);
                    Ok(())
                }
                Ok(_) => Err(Problem::invalid("tune.http.maxhdr must be from 1 to 32767")),
                Err(e) => Err(e.into()),
            },
            ("default-path", Some(v)) => self.default_path(v, args.get(1)),
            ("localpeer", Some(v)) => {
                self.out.global.local_peer = Some(v.to_string());
                Ok(())
            }
            ("stats", Some(sub)) => match sub {
                // A path (not an inherited fd@N): fulcrum's control socket (`fulcrum ctl`).
                "socket" if args.get(1).is_some_and(|p| !p.starts_with("fd@") && !p.contains(':')) => {
                    self.out.global.control_socket = args.get(1).map(std::path::PathBuf::from);
                    Ok(())
                }
                "socket" | "timeout" | "maxconn" | "bind-process" => {
                    let why = "fulcrum does not serve HAProxy's runtime socket (its admin API is separate)";
                    self.sink.warn(line, format!("'stats {sub}' is ignored: {why}"), None);
                    Ok(())
                }
                _ => Err(Problem::unknown("global stats keyword", sub, ["socket", "timeout", "maxconn"])),
            },
            (k, value) => match lookup(Context::Global, k).map(|kw| kw.support) {
                Some(Support::Ignored(why)) => {
                    self.sink.warn(line, format!("'{k}' is ignored: {why}"), None);
                    Ok(())
                }
                Some(Support::NotYet) => Err(Problem::unsupported(format!("global '{k}' is not supported yet"))),
                Some(Support::Supported) if value.is_none() => Err(Problem::invalid(format!("'{k}' needs a value"))),
                _ => {
                    let candidates = known(Context::Global).chain(supported(Context::Section));
                    Err(Problem::unknown("global keyword", k, candidates))
                }
            },
        };
        if let Err(problem) = result {
            self.sink.report(line, problem);
        }
    }

    /// `log TARGET ...` in global or a proxy: fulcrum writes access logs itself.
    fn log_target(&mut self, line: usize, args: &[String]) {
        match args.first().map(String::as_str) {
            Some("stdout") => self.out.global.access_log = Some(PathBuf::from("/dev/stdout")),
            Some("stderr") | Some("global") => {}
            _ => self.sink.warn_once(
                "syslog",
                line,
                "syslog targets are not used: fulcrum writes access logs to standard error",
                Some("or to the file given by --access-log / global.access_log in TOML".to_string()),
            ),
        }
    }

    fn default_path(&mut self, kind: &str, path: Option<&String>) -> Result<(), Problem> {
        self.default_path = match (kind, path) {
            ("current", None) => DefaultPath::Current,
            ("config", None) => DefaultPath::Config,
            ("parent", None) => DefaultPath::Parent,
            ("origin", Some(p)) => DefaultPath::Origin(PathBuf::from(p)),
            ("origin", None) => return Err(Problem::invalid("'default-path origin' needs a directory")),
            (_, Some(extra)) if kind != "origin" => {
                return Err(Problem::invalid(format!("unexpected '{extra}' after 'default-path {kind}'")))
            }
            _ => return Err(Problem::unknown("default-path", kind, ["current", "config", "parent", "origin"])),
        };
        Ok(())
    }

    /// A file name from the configuration, resolved as `default-path` says.
    fn resolve_path(&self, name: &str) -> PathBuf {
        let path = Path::new(name);
        if path.is_absolute() {
            return path.to_path_buf();
        }
        match &self.default_path {
            DefaultPath::Current => path.to_path_buf(),
            DefaultPath::Config => self.config_dir.join(path),
            DefaultPath::Parent => self.config_dir.parent().unwrap_or(Path::new("")).join(path),
            DefaultPath::Origin(dir) => dir.join(path),
        }
    }

    /// Read a file once per parse, however many proxies inherit it.
    fn read_file(&mut self, path: &Path) -> Result<Vec<u8>, Problem> {
        if let Some((_, cached)) = self.errorfiles.iter().find(|(p, _)| p == path) {
            return cached.clone();
        }
        let read = std::fs::read(path).map_err(|e| Problem::invalid(format!("cannot read '{}': {e}", path.display())));
        self.errorfiles.push((path.to_path_buf(), read.clone()));
        read
    }
}
