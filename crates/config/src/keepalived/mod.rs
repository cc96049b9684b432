//! The keepalived.conf front-end (VRRP part): `global_defs`, `vrrp_script`, `vrrp_instance`
//! and `vrrp_sync_group` with keepalived's semantics, into the Model's [`fulcrum_model::vrrp::Vrrp`].
//! The LVS side (`virtual_server`, `virtual_server_group`, `real_server` and the checkers) is
//! in `virtual_server`. Everything unknown is an error with the closest keyword.
use std::path::Path;
use std::time::Duration;

use crate::diag::{Problem, Severity, Sink};
use crate::partial::{Partial, Spots};
use crate::values::{parse_number, parse_seconds, parse_weight};
use fulcrum_model::vrrp::{VrrpScript, VrrpSyncGroup};
use fulcrum_model::Origin;

mod instance;
mod keywords;
pub(crate) mod tokenize;
mod virtual_server;

use keywords::*;
use tokenize::Stmt;

/// `global_defs` settings that are defaults for the file's instances.
#[derive(Debug, Clone, Default)]
struct Defaults {
    version: Option<u8>,
    strict: bool,
    garp_master_delay: Option<Duration>,
    garp_master_repeat: Option<u32>,
    garp_master_refresh: Option<Option<Duration>>,
}

struct Parser {
    sink: Sink,
    out: Partial,
    defaults: Defaults,
    /// `virtual_server_group`s read so far.
    groups: Vec<(Origin, virtual_server::Group)>,
}

/// Parse one keepalived.conf (and the files it includes).
pub(crate) fn parse(text: &str, file: &Path, lenient: bool) -> (Partial, Sink) {
    let mut sink = Sink::new(file, lenient);
    let stmts = tokenize::read(text, file, &mut sink);
    let mut parser = Parser { sink, out: Partial::default(), defaults: Defaults::default(), groups: Vec::new() };
    // keepalived applies global_defs wherever it is written; groups may follow their users.
    for stmt in stmts.iter().filter(|s| keyword(s) == "global_defs") {
        parser.global_defs(stmt);
    }
    for stmt in stmts.iter().filter(|s| keyword(s) == "virtual_server_group") {
        parser.top(stmt);
    }
    for stmt in stmts.iter().filter(|s| !matches!(keyword(s), "global_defs" | "virtual_server_group")) {
        parser.top(stmt);
    }
    let Parser { mut sink, out, .. } = parser;
    sink.diags.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    (out, sink)
}

fn keyword(stmt: &Stmt) -> &str {
    stmt.words.first().map(String::as_str).unwrap_or_default()
}

fn hint_for(word: &str, candidates: &[&[&str]]) -> Option<String> {
    crate::did_you_mean(word, candidates.iter().flat_map(|c| c.iter().copied())).map(|b| format!("did you mean {b}?"))
}

/// The statements of a line: keywords of `known` inside a line start a new statement
/// (`auth_type PASS auth_pass 1111`); `arity` says how many words a keyword takes for sure.
fn segments<'s>(words: &'s [String], known: &[&str], arity: fn(&str) -> Option<usize>) -> Vec<&'s [String]> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < words.len() {
        let kw = words.get(start).map(String::as_str).unwrap_or_default();
        let mut end = start + 1 + if known.contains(&kw) { arity(kw).unwrap_or(0) } else { 0 };
        end = end.min(words.len());
        while words.get(end).is_some_and(|w| !known.contains(&w.as_str())) {
            end += 1;
        }
        out.extend(words.get(start..end));
        start = end;
    }
    out
}

impl Parser {
    fn report(&mut self, at: &Origin, problem: Problem) {
        self.sink.report_in(&at.file, at.line, problem);
    }

    fn error(&mut self, at: &Origin, message: impl Into<String>, hint: Option<String>) {
        self.sink.push_in(&at.file, Severity::Error, at.line, message.into(), hint);
    }

    fn warn(&mut self, at: &Origin, message: impl Into<String>, hint: Option<String>) {
        self.sink.push_in(&at.file, Severity::Warning, at.line, message.into(), hint);
    }

    /// Words after what a keyword takes.
    fn extra(&mut self, at: &Origin, kw: &str, args: &[String], takes: usize) {
        if let Some(extra) = args.get(takes) {
            self.error(at, format!("unexpected '{extra}' after '{kw}'"), None);
        }
    }

    fn one<'a>(&mut self, at: &Origin, kw: &str, args: &'a [String]) -> Option<&'a str> {
        self.extra(at, kw, args, 1);
        match args.first() {
            Some(v) => Some(v.as_str()),
            None => {
                self.error(at, format!("'{kw}' needs a value"), None);
                None
            }
        }
    }

    fn no_block(&mut self, stmt_at: &Origin, kw: &str, block: Option<&[Stmt]>) {
        if block.is_some() {
            self.error(stmt_at, format!("'{kw}' takes no block"), None);
        }
    }

    fn top(&mut self, stmt: &Stmt) {
        let kw = keyword(stmt);
        let args = stmt.words.get(1..).unwrap_or_default();
        let block = stmt.block.as_deref();
        match kw {
            "vrrp_script" | "vrrp_instance" | "vrrp_sync_group" => {
                let Some(name) = args.first() else {
                    let hint = Some(format!("e.g. {kw} {}", if kw == "vrrp_script" { "chk_haproxy" } else { "VI_1" }));
                    return self.error(&stmt.at, format!("'{kw}' needs a name"), hint);
                };
                self.extra(&stmt.at, kw, args, 1);
                let Some(body) = block else {
                    return self.error(
                        &stmt.at,
                        format!("{kw} '{name}' has no block"),
                        Some(format!("write {kw} {name} {{ ... }}")),
                    );
                };
                match kw {
                    "vrrp_script" => self.script(&stmt.at, name, body),
                    "vrrp_instance" => self.instance(&stmt.at, name, body),
                    _ => self.sync_group(&stmt.at, name, body),
                }
            }
            "virtual_server" | "virtual_server_group" => {
                let Some(body) = block else {
                    let hint = Some(format!("write {kw} {} {{ ... }}", args.join(" ")));
                    return self.error(&stmt.at, format!("{kw} has no block"), hint);
                };
                if kw == "virtual_server" {
                    self.virtual_server(&stmt.at, args, body);
                } else {
                    match args {
                        [name] => self.vs_group(&stmt.at, name, body),
                        _ => self.error(
                            &stmt.at,
                            "virtual_server_group needs one name",
                            Some("e.g. virtual_server_group WEB { 10.0.0.1 80 }".into()),
                        ),
                    }
                }
            }
            "real_server" => {
                let hint = Some("is a '}' misplaced above it?".to_string());
                self.error(&stmt.at, "'real_server' is outside any virtual_server block", hint);
            }
            k if TOP_UNSUPPORTED.contains(&k) => {
                self.report(
                    &stmt.at,
                    Problem::unsupported(format!("'{k}' is not supported yet")).hint("its block is skipped"),
                );
            }
            k if k.starts_with('$') || k.starts_with('@') => {
                let problem = Problem::unsupported(
                    "keepalived configuration variables and conditional lines ($NAME, @host) are not supported yet",
                );
                self.report(&stmt.at, problem.hint("write the values out"));
            }
            k if INSTANCE.contains(&k) || GLOBAL.contains(&k) || SCRIPT.contains(&k) => {
                let block = if GLOBAL.contains(&k) {
                    "global_defs"
                } else if INSTANCE.contains(&k) {
                    "vrrp_instance"
                } else {
                    "vrrp_script"
                };
                let hint = Some("is a '}' misplaced above it?".to_string());
                self.error(&stmt.at, format!("'{k}' is outside any {block} block"), hint);
            }
            k => {
                let problem = Problem::invalid(format!("unknown keyword '{k}'"));
                let hint = hint_for(k, &[TOP, GLOBAL, INSTANCE, SCRIPT]);
                let problem = match hint {
                    Some(h) => problem.hint(h),
                    None => problem.hint(
                        "a keepalived.conf holds global_defs, vrrp_script, vrrp_instance and vrrp_sync_group blocks",
                    ),
                };
                self.report(&stmt.at, problem);
            }
        }
    }

    fn global_defs(&mut self, stmt: &Stmt) {
        if let Some(extra) = stmt.words.get(1) {
            self.error(&stmt.at, format!("unexpected '{extra}' after 'global_defs'"), None);
        }
        let Some(body) = stmt.block.as_deref() else {
            return self.error(&stmt.at, "'global_defs' has no block", Some("write global_defs { ... }".into()));
        };
        let known: Vec<&str> = GLOBAL.iter().chain(GLOBAL_UNSUPPORTED).chain(IGNORED_GLOBAL_WORDS).copied().collect();
        for item in body {
            let arity = |kw: &str| if kw == "vrrp_strict" || global_ignored(kw).is_some() { Some(0) } else { Some(1) };
            let segments = segments(&item.words, &known, arity);
            let count = segments.len();
            for (i, words) in segments.into_iter().enumerate() {
                let block = if i + 1 == count { item.block.as_deref() } else { None };
                self.global_line(&item.at, words, block);
            }
        }
    }

    fn global_line(&mut self, at: &Origin, words: &[String], block: Option<&[Stmt]>) {
        let kw = words.first().map(String::as_str).unwrap_or_default();
        let args = words.get(1..).unwrap_or_default();
        if let Some(why) = global_ignored(kw) {
            return self.warn(at, format!("'{kw}' is ignored: {why}"), None);
        }
        if GLOBAL_UNSUPPORTED.contains(&kw) {
            return self.report(at, Problem::unsupported(format!("global_defs '{kw}' is not supported yet")));
        }
        if !GLOBAL.contains(&kw) {
            let problem = Problem::invalid(format!("unknown global_defs keyword '{kw}'"));
            let all: Vec<&str> =
                GLOBAL.iter().chain(GLOBAL_UNSUPPORTED).copied().chain(IGNORED_GLOBAL_WORDS.iter().copied()).collect();
            let problem = match hint_for(kw, &[&all]) {
                Some(h) => problem.hint(h),
                None => problem,
            };
            return self.report(at, problem);
        }
        self.no_block(at, kw, block);
        if kw == "vrrp_strict" {
            self.extra(at, kw, args, 0);
            self.defaults.strict = true;
            return;
        }
        let Some(value) = self.one(at, kw, args) else { return };
        let result: Result<(), Problem> = match kw {
            "router_id" => {
                self.out.vrrp.router_id = Some(value.to_string());
                Ok(())
            }
            "vrrp_version" => match value {
                "2" | "3" => {
                    self.defaults.version = Some(if value == "2" { 2 } else { 3 });
                    Ok(())
                }
                _ => Err(Problem::invalid(format!("vrrp_version must be 2 or 3, not '{value}'"))),
            },
            "vrrp_garp_master_delay" => parse_seconds(value, "vrrp_garp_master_delay")
                .map(|d| self.defaults.garp_master_delay = Some(d))
                .map_err(Problem::from),
            "vrrp_garp_master_repeat" => parse_number(value, "vrrp_garp_master_repeat")
                .map(|n| self.defaults.garp_master_repeat = Some(n))
                .map_err(Problem::from),
            _ => parse_seconds(value, "vrrp_garp_master_refresh")
                .map(|d| self.defaults.garp_master_refresh = Some((!d.is_zero()).then_some(d)))
                .map_err(Problem::from),
        };
        if let Err(problem) = result {
            self.report(at, problem);
        }
    }

    fn script(&mut self, at: &Origin, name: &str, body: &[Stmt]) {
        let mut script = VrrpScript::new(name, at.clone());
        for item in body {
            let arity = |kw: &str| match kw {
                "script" | "weight" | "user" => None,
                "init_fail" => Some(0),
                _ => Some(1),
            };
            for words in segments(&item.words, SCRIPT, arity) {
                self.no_block(&item.at, words.first().map(String::as_str).unwrap_or_default(), item.block.as_deref());
                self.script_line(&item.at, &mut script, words);
            }
        }
        if script.script.is_empty() {
            let hint = Some("add e.g. script \"/usr/bin/killall -0 haproxy\"".to_string());
            self.error(at, format!("vrrp_script '{name}' has no 'script'"), hint);
        }
        if let Some(first) = self.out.vrrp.scripts.iter().find(|s| s.name == name) {
            let hint = Some(format!("first defined at {}", crate::diag::place(&first.origin)));
            return self.error(at, format!("vrrp_script '{name}' is defined twice"), hint);
        }
        self.out.vrrp.scripts.push(script);
    }

    fn script_line(&mut self, at: &Origin, script: &mut VrrpScript, words: &[String]) {
        let kw = words.first().map(String::as_str).unwrap_or_default();
        let args = words.get(1..).unwrap_or_default();
        let result: Result<(), Problem> = match kw {
            "script" if args.is_empty() => Err(Problem::invalid("'script' needs a command")),
            "script" => {
                script.script = args.join(" ");
                Ok(())
            }
            "weight" => {
                if let Some(flag) = args.get(1) {
                    if flag == "reverse" {
                        self.report(at, Problem::unsupported("'weight ... reverse' is not supported yet"));
                    } else {
                        self.extra(at, kw, args, 1);
                    }
                }
                match args.first() {
                    Some(w) => parse_weight(w).map(|w| script.weight = w).map_err(Problem::from),
                    None => Err(Problem::invalid("'weight' needs a value")),
                }
            }
            "user" => {
                let why = "fulcrum runs scripts as its own user; choose it with User= in the systemd unit";
                self.warn(at, format!("'user' is ignored: {why}"), None);
                Ok(())
            }
            "init_fail" => {
                let problem = Problem::unsupported("'init_fail' is not supported yet");
                Err(problem.hint("scripts start as failed until they succeed 'rise' times"))
            }
            "interval" | "timeout" => match self.one(at, kw, args) {
                Some(v) => match parse_seconds(v, kw) {
                    Ok(d) if d.is_zero() => Err(Problem::invalid(format!("{kw} must be greater than 0"))),
                    Ok(d) => {
                        if kw == "interval" {
                            script.interval = d;
                        } else {
                            script.timeout = Some(d);
                        }
                        Ok(())
                    }
                    Err(e) => Err(e.into()),
                },
                None => Ok(()),
            },
            "rise" | "fall" => match self.one(at, kw, args) {
                Some(v) => match parse_number::<u32>(v, kw) {
                    Ok(0) => Err(Problem::invalid(format!("{kw} must be at least 1"))),
                    Ok(n) => {
                        *(if kw == "rise" { &mut script.rise } else { &mut script.fall }) = n;
                        Ok(())
                    }
                    Err(e) => Err(e.into()),
                },
                None => Ok(()),
            },
            k => Err(Problem::unknown("vrrp_script keyword", k, SCRIPT.iter().copied())),
        };
        if let Err(problem) = result {
            self.report(at, problem);
        }
    }

    fn sync_group(&mut self, at: &Origin, name: &str, body: &[Stmt]) {
        let mut group = VrrpSyncGroup {
            name: name.to_string(),
            origin: at.clone(),
            instances: Vec::new(),
            notify_master: None,
            notify_backup: None,
            notify_fault: None,
            notify_stop: None,
            notify: None,
        };
        let mut spots = Spots::new("vrrp_sync_group", at.clone());
        for item in body {
            let arity = |kw: &str| if kw == "group" || kw == "smtp_alert" { Some(0) } else { None };
            for words in segments(&item.words, SYNC_GROUP, arity) {
                let kw = words.first().map(String::as_str).unwrap_or_default();
                let args = words.get(1..).unwrap_or_default();
                match kw {
                    "group" => {
                        self.extra(&item.at, kw, args, 0);
                        for member in item.block.as_deref().unwrap_or_default() {
                            for word in &member.words {
                                spots.add("group", member.at.line);
                                group.instances.push(word.clone());
                            }
                        }
                        if item.block.is_none() {
                            self.error(
                                &item.at,
                                "'group' needs a block of instance names",
                                Some("e.g. group { VI_1 VI_2 }".into()),
                            );
                        }
                    }
                    "smtp_alert" => self.warn(
                        &item.at,
                        "'smtp_alert' is ignored: fulcrum does not send mail; run a notify script to alert",
                        None,
                    ),
                    k if k.starts_with("notify") && SYNC_GROUP.contains(&k) => {
                        let Some(command) = self.command(&item.at, k, args) else { continue };
                        let slot = match k {
                            "notify_master" => &mut group.notify_master,
                            "notify_backup" => &mut group.notify_backup,
                            "notify_fault" => &mut group.notify_fault,
                            "notify_stop" => &mut group.notify_stop,
                            _ => &mut group.notify,
                        };
                        *slot = Some(command);
                    }
                    k if SYNC_GROUP_UNSUPPORTED.contains(&k) => {
                        self.report(
                            &item.at,
                            Problem::unsupported(format!("'{k}' in a vrrp_sync_group is not supported yet"))
                                .hint("track in each vrrp_instance instead"),
                        );
                    }
                    k => self
                        .report(&item.at, Problem::unknown("vrrp_sync_group keyword", k, SYNC_GROUP.iter().copied())),
                }
            }
        }
        if let Some(first) = self.out.vrrp.sync_groups.iter().find(|g| g.name == name) {
            let hint = Some(format!("first defined at {}", crate::diag::place(&first.origin)));
            return self.error(at, format!("vrrp_sync_group '{name}' is defined twice"), hint);
        }
        self.out.vrrp_spots.push(spots);
        self.out.vrrp.sync_groups.push(group);
    }

    /// A notify command: one quoted word, or the rest of the line as keepalived reads it.
    fn command(&mut self, at: &Origin, kw: &str, args: &[String]) -> Option<String> {
        if args.is_empty() {
            let hint = Some(format!("e.g. {kw} \"/etc/keepalived/notify.sh\""));
            self.error(at, format!("'{kw}' needs a script"), hint);
            return None;
        }
        Some(args.join(" "))
    }
}

/// Words keepalived users write that fulcrum ignores, for hints.
const IGNORED_GLOBAL_WORDS: &[&str] = &[
    "notification_email",
    "notification_email_from",
    "smtp_server",
    "smtp_connect_timeout",
    "vrrp_skip_check_adv_addr",
    "vrrp_garp_interval",
    "vrrp_gna_interval",
    "enable_script_security",
    "script_user",
    "max_auto_priority",
    "lvs_id",
];
