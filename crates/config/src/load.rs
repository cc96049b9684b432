//! Reading configuration files: format detection and combining several files into one Model.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::diag::{at, place, Severity};
use crate::partial::{BindRef, Partial};
use crate::{did_you_mean, Diagnostic};
use fulcrum_model::{Model, Origin};

/// A configuration file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// fulcrum's own TOML.
    Toml,
    /// haproxy.cfg.
    Haproxy,
    /// keepalived.conf.
    Keepalived,
    /// ipvsadm rules (what `ipvsadm-save -n` prints).
    Ipvsadm,
}

#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Force a format instead of detecting it by extension or content (`--format`).
    pub format: Option<Format>,
    /// Unsupported directives become warnings instead of errors (`--lenient`).
    pub lenient: bool,
    /// Listening sockets passed to this process, by descriptor: what `bind fd@N` stands for.
    pub inherited: std::collections::BTreeMap<i32, std::net::SocketAddr>,
    /// This process's name among its peers from the command line (HAProxy's `-L`): it wins
    /// over `localpeer`.
    pub local_peer: Option<String>,
}

/// A loaded Model and the warnings met on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub model: Model,
    pub warnings: Vec<Diagnostic>,
}

/// Load and combine several files. On failure every error found is returned (not just the first),
/// with the warnings, in file and line order.
pub fn load_files(paths: &[PathBuf], opts: &LoadOptions) -> Result<Loaded, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut partials = Vec::new();
    let mut carry = crate::haproxy::Carry::default();
    let paths = expand_dirs(paths, &mut diags);
    for path in &paths {
        match std::fs::read(path) {
            Ok(bytes) => {
                let text = decode(&bytes, path, &mut diags);
                let (partial, found) = parse_one(&text, path, opts, &mut carry);
                diags.extend(found);
                partials.extend(partial);
            }
            Err(e) => diags.push(file_error(path, format!("cannot read configuration file: {e}"), None)),
        }
    }
    let fallback = paths.first().cloned().unwrap_or_else(|| PathBuf::from("(no configuration file)"));
    finish(partials, diags, &fallback, opts)
}

/// A directory stands for its `*.cfg` files, in lexical order (as `haproxy -f DIR` reads it).
fn expand_dirs(paths: &[PathBuf], diags: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for path in paths {
        if !path.is_dir() {
            out.push(path.clone());
            continue;
        }
        match std::fs::read_dir(path) {
            Ok(entries) => {
                let mut files: Vec<PathBuf> = entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "cfg") && p.is_file())
                    .collect();
                files.sort();
                out.extend(files);
            }
            Err(e) => diags.push(file_error(path, format!("cannot read configuration directory: {e}"), None)),
        }
    }
    out
}

/// Load one configuration text; `path` is used for messages and for detection by extension.
pub fn load_str(text: &str, path: &Path, opts: &LoadOptions) -> Result<Loaded, Vec<Diagnostic>> {
    let (partial, diags) = parse_one(text, path, opts, &mut crate::haproxy::Carry::default());
    finish(partial.into_iter().collect(), diags, path, opts)
}

fn decode(bytes: &[u8], path: &Path, diags: &mut Vec<Diagnostic>) -> String {
    match String::from_utf8(bytes.to_vec()) {
        Ok(text) => text,
        Err(_) => {
            let message = "file is not valid UTF-8; invalid bytes are read as U+FFFD";
            diags.push(Diagnostic {
                severity: Severity::Warning,
                file: path.to_path_buf(),
                line: 0,
                message: message.into(),
                hint: None,
            });
            String::from_utf8_lossy(bytes).into_owned()
        }
    }
}

/// Parse one file; `carry` passes haproxy.cfg defaults from one file to the next.
fn parse_one(
    text: &str,
    path: &Path,
    opts: &LoadOptions,
    carry: &mut crate::haproxy::Carry,
) -> (Option<Partial>, Vec<Diagnostic>) {
    let format = match detect(text, path, opts.format) {
        Ok(format) => format,
        Err(diag) => return (None, vec![diag]),
    };
    let (partial, sink) = match format {
        Format::Haproxy => {
            let (partial, sink, next) = crate::haproxy::parse(text, path, opts, std::mem::take(carry));
            *carry = next;
            (partial, sink)
        }
        Format::Toml => crate::toml::parse(text, path, &opts.inherited),
        Format::Keepalived => crate::keepalived::parse(text, path, opts.lenient),
        Format::Ipvsadm => crate::ipvsadm::rules::parse_file(text, path),
    };
    (Some(partial), sink.diags)
}

fn file_error(path: &Path, message: impl Into<String>, hint: Option<String>) -> Diagnostic {
    Diagnostic { severity: Severity::Error, file: path.to_path_buf(), line: 0, message: message.into(), hint }
}

/// The format of a file: `--format`, else keepalived.conf content (whatever the file's name),
/// else ipvsadm rules, else the extension, else the content.
fn detect(text: &str, path: &Path, forced: Option<Format>) -> Result<Format, Diagnostic> {
    if let Some(format) = forced {
        return Ok(format);
    }
    let lines = || text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'));
    let first_word = |l: &str| l.split(|c: char| c.is_whitespace() || c == '{').next().unwrap_or_default().to_string();
    const KEEPALIVED: [&str; 6] =
        ["vrrp_instance", "global_defs", "vrrp_script", "vrrp_sync_group", "static_ipaddress", "static_routes"];
    let keepalived = lines().any(|l| {
        let word = first_word(l);
        // `vrrp_script = ...` is a (misspelt) TOML key, not a keepalived block.
        let assignment = l.get(word.len()..).unwrap_or_default().trim_start().starts_with('=');
        !assignment && KEEPALIVED.contains(&word.as_str())
            || (matches!(word.as_str(), "virtual_server" | "virtual_server_group") && l.contains('{'))
    });
    if keepalived {
        return Ok(Format::Keepalived);
    }
    if crate::ipvsadm::rules::looks_like(text) {
        return Ok(Format::Ipvsadm);
    }
    let sniffed = sniff(lines().map(|l| (first_word(l), l)));
    match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => Ok(Format::Toml),
        Some("cfg") if sniffed != Some(Format::Toml) => Ok(Format::Haproxy),
        _ => sniffed.ok_or_else(|| {
            let hint = "name it *.toml or *.cfg, or pass --format toml|haproxy|keepalived";
            file_error(path, "cannot tell whether this is a TOML file or a haproxy.cfg", Some(hint.into()))
        }),
    }
}

/// Look at the first meaningful line: a haproxy.cfg starts with a section keyword, TOML with a
/// `[table]` or a `key = value`.
fn sniff<'a>(mut lines: impl Iterator<Item = (String, &'a str)>) -> Option<Format> {
    const SECTIONS: [&str; 5] = ["global", "defaults", "frontend", "backend", "listen"];
    let (word, line) = lines.next()?;
    if line.starts_with('[') {
        return Some(Format::Toml);
    }
    let rest = line.get(word.len()..).unwrap_or_default().trim_start();
    if rest.starts_with('=') || word.ends_with('=') {
        return Some(Format::Toml);
    }
    SECTIONS.contains(&word.as_str()).then_some(Format::Haproxy)
}

/// Combine the files' parts, check what only the whole configuration can tell, and decide.
fn finish(
    partials: Vec<Partial>,
    mut diags: Vec<Diagnostic>,
    fallback: &Path,
    opts: &LoadOptions,
) -> Result<Loaded, Vec<Diagnostic>> {
    let incomplete: Vec<String> = partials.iter().flat_map(|p| p.incomplete.iter().cloned()).collect();
    let spots: Vec<crate::partial::Spots> = partials.iter().flat_map(|p| p.vrrp_spots.iter().cloned()).collect();
    let mut model = combine(partials, &mut diags);
    if let Some(name) = &opts.local_peer {
        model.global.local_peer = Some(name.clone());
    }
    // "Nothing listens" is only worth saying when no other error explains it.
    let summary = !diags.iter().any(|d| d.severity == Severity::Error);
    crate::validate::validate(&model, fallback, &incomplete, summary, &mut diags);
    crate::vrrp_checks::check(&model, &spots, &mut diags);
    diags.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    if diags.iter().any(|d| d.severity == Severity::Error) {
        Err(diags)
    } else {
        Ok(Loaded { model, warnings: diags })
    }
}

fn combine(partials: Vec<Partial>, diags: &mut Vec<Diagnostic>) -> Model {
    let mut model = Model::default();
    let mut refs = Vec::new();
    let mut binds: Vec<BindRef> = Vec::new();
    // By name, for duplicates and references in linear time (10k backends are a real size).
    let mut frontend_at: HashMap<String, usize> = HashMap::new();
    let mut backend_at: HashMap<String, usize> = HashMap::new();
    for partial in partials {
        partial.global.apply(&mut model.global);
        for fe in partial.frontends {
            match frontend_at.get(&fe.name).and_then(|i| model.frontends.get(*i)) {
                Some(first) => diags.push(duplicate("frontend", &fe.name, &fe.origin, &first.origin)),
                None => {
                    frontend_at.insert(fe.name.clone(), model.frontends.len());
                    model.frontends.push(fe);
                }
            }
        }
        for be in partial.backends {
            match backend_at.get(&be.name).and_then(|i| model.backends.get(*i)) {
                Some(first) => diags.push(duplicate("backend", &be.name, &be.origin, &first.origin)),
                None => {
                    backend_at.insert(be.name.clone(), model.backends.len());
                    model.backends.push(be);
                }
            }
        }
        for list in partial.userlists {
            if !model.userlists.iter().any(|l| l.name == list.name) {
                model.userlists.push(list);
            }
        }
        for section in partial.peers {
            match model.peers.iter().find(|p| p.name == section.name) {
                Some(first) => diags.push(duplicate("peers section", &section.name, &section.origin, &first.origin)),
                None => model.peers.push(section),
            }
        }
        refs.extend(partial.backend_refs);
        binds.extend(partial.binds);
        combine_vrrp(&mut model.vrrp, partial.vrrp, diags);
    }
    for r in refs {
        if !backend_at.contains_key(&r.backend) {
            let message = format!("frontend '{}' uses backend '{}', which is not defined", r.frontend, r.backend);
            let hint = did_you_mean(&r.backend, model.backends.iter().map(|b| b.name.as_str()))
                .map(|best| format!("did you mean {best}?"));
            diags.push(at(&r.origin, Severity::Error, message, hint));
        }
    }
    check_binds(&binds, diags);
    model
}

/// VRRP objects of all files; names are unique across files, a later router_id wins.
fn combine_vrrp(vrrp: &mut fulcrum_model::vrrp::Vrrp, part: fulcrum_model::vrrp::Vrrp, diags: &mut Vec<Diagnostic>) {
    if part.router_id.is_some() {
        vrrp.router_id = part.router_id;
    }
    for inst in part.instances {
        match vrrp.instances.iter().find(|i| i.name == inst.name) {
            Some(first) => diags.push(duplicate("vrrp_instance", &inst.name, &inst.origin, &first.origin)),
            None => vrrp.instances.push(inst),
        }
    }
    for script in part.scripts {
        match vrrp.scripts.iter().find(|s| s.name == script.name) {
            Some(first) => diags.push(duplicate("vrrp_script", &script.name, &script.origin, &first.origin)),
            None => vrrp.scripts.push(script),
        }
    }
    for group in part.sync_groups {
        match vrrp.sync_groups.iter().find(|g| g.name == group.name) {
            Some(first) => diags.push(duplicate("vrrp_sync_group", &group.name, &group.origin, &first.origin)),
            None => vrrp.sync_groups.push(group),
        }
    }
}

fn duplicate(what: &str, name: &str, second: &Origin, first: &Origin) -> Diagnostic {
    let message = format!("{what} '{name}' is defined twice");
    at(second, Severity::Error, message, Some(format!("first defined at {}", place(first))))
}

/// Two frontends cannot listen on the same address; a wildcard and a specific address on one
/// port overlap, which is allowed but rarely meant.
fn check_binds(binds: &[BindRef], diags: &mut Vec<Diagnostic>) {
    for (i, bind) in binds.iter().enumerate() {
        let earlier = binds.get(..i).unwrap_or_default();
        if let Some(first) = earlier.iter().find(|b| b.addr == bind.addr && b.udp == bind.udp) {
            let message = format!(
                "address {} is bound twice (frontend '{}' and frontend '{}')",
                bind.addr, first.frontend, bind.frontend
            );
            diags.push(at(
                &bind.origin,
                Severity::Error,
                message,
                Some(format!("first bound at {}", place(&first.origin))),
            ));
            continue;
        }
        let overlap = earlier.iter().find(|b| {
            b.addr.port() == bind.addr.port()
                && b.udp == bind.udp
                && b.frontend != bind.frontend
                && b.addr.is_ipv4() == bind.addr.is_ipv4()
                && (b.addr.ip().is_unspecified() != bind.addr.ip().is_unspecified())
        });
        if let Some(other) = overlap {
            let message = format!(
                "address {} overlaps {} of frontend '{}' (a wildcard and a specific address on one port)",
                bind.addr, other.addr, other.frontend
            );
            diags.push(at(&bind.origin, Severity::Warning, message, Some(format!("see {}", place(&other.origin)))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats() {
        let p = |name: &str| PathBuf::from(name);
        assert_eq!(detect("global\n  maxconn 10\n", &p("x.cfg"), None), Ok(Format::Haproxy));
        assert_eq!(detect("", &p("x.cfg"), None), Ok(Format::Haproxy));
        assert_eq!(detect("[global]\nmaxconn = 1\n", &p("x.cfg"), None), Ok(Format::Toml));
        assert_eq!(detect("# c\n\nfrontend web\n", &p("haproxy.conf"), None), Ok(Format::Haproxy));
        assert_eq!(detect("maxconn = 1\n", &p("fulcrum.conf"), None), Ok(Format::Toml));
        assert_eq!(detect("[[backend]]\n", &p("whatever"), None), Ok(Format::Toml));
        assert_eq!(detect("global\n", &p("x.toml"), None), Ok(Format::Toml));
        assert_eq!(detect("zzz\n", &p("x"), Some(Format::Haproxy)), Ok(Format::Haproxy));
        assert!(detect("zzz\n", &p("x"), None).is_err());
        let keepalived = "global_defs {\n  router_id LB1\n}\nvrrp_instance VI_1 {\n}\n";
        assert_eq!(detect(keepalived, &p("keepalived.conf"), None), Ok(Format::Keepalived));
        assert_eq!(detect(keepalived, &p("lb.cfg"), None), Ok(Format::Keepalived));
        assert_eq!(detect(keepalived, &p("lb.toml"), None), Ok(Format::Keepalived));
        assert_eq!(detect("virtual_server 10.0.0.1 80 {\n}\n", &p("x.cfg"), None), Ok(Format::Keepalived));
        assert_eq!(detect("vrrp_script chk {\n}\n", &p("x"), None), Ok(Format::Keepalived));
        assert_eq!(detect("vrrp_sync_group G {\n}\n", &p("x"), None), Ok(Format::Keepalived));
        assert_eq!(detect("! c\nvrrp_instance VI_1 {\n}\n", &p("x"), None), Ok(Format::Keepalived));
        assert_eq!(detect("vrrp_script = 1\n", &p("x.toml"), None), Ok(Format::Toml));
    }
}
