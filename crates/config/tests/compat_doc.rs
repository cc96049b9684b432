//! docs/haproxy-compat.md and the parser's vocabulary (one table, `haproxy_vocabulary`) say the
//! same thing: every keyword the page lists has the status the parser gives it, and every
//! keyword the parser reads or ignores is on the page.
use std::collections::BTreeSet;

use fulcrum_config::haproxy_vocabulary::{lookup, Context, Support, VOCABULARY};

const DOC: &str = include_str!("../../../docs/haproxy-compat.md");

/// A status as the page writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Supported,
    Ignored,
    NotYet,
}

fn status_of(support: Support) -> Status {
    match support {
        Support::Supported => Status::Supported,
        Support::Ignored(_) => Status::Ignored,
        Support::NotYet => Status::NotYet,
    }
}

/// A keyword as a table row of the page names it.
#[derive(Debug)]
struct Mention {
    context: Context,
    word: String,
    status: Status,
    /// Written with values or a sub-keyword after it (`http-check connect`): about a form of
    /// the keyword, not the keyword itself.
    form: bool,
    line: usize,
}

fn is_value(word: &str) -> bool {
    word == "..." || word.chars().any(|c| c.is_ascii_uppercase() || "[]|!:%$".contains(c))
}

/// The backquoted spans of a cell.
fn spans(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

fn mentions() -> Vec<Mention> {
    let mut out = Vec::new();
    let mut section: Option<Context> = None;
    for (i, line) in DOC.lines().enumerate() {
        if let Some(heading) = line.strip_prefix("## ") {
            section = match heading {
                "global" => Some(Context::Global),
                h if h.starts_with("Proxies") => Some(Context::Proxy),
                "Servers" => Some(Context::Server),
                _ => None,
            };
            continue;
        }
        let Some(context) = section else { continue };
        let cells: Vec<&str> =
            line.split(" | ").map(|c| c.trim_matches(|c: char| c == '|' || c.is_whitespace())).collect();
        let status = match cells.get(1).copied() {
            Some("supported" | "partly") => Status::Supported,
            Some("ignored") => Status::Ignored,
            Some("not yet") => Status::NotYet,
            _ => continue,
        };
        // In a proxy row, `option a`, `b` means `option b`: the family carries on.
        let mut family: Option<Context> = None;
        for span in spans(cells[0]) {
            let words: Vec<&str> = span.split_whitespace().collect();
            let Some(&first) = words.first() else { continue };
            let (ctx, word, rest) = match (context, first, words.get(1)) {
                (Context::Proxy, "option" | "timeout" | "stats", Some(name)) => {
                    let ctx = match first {
                        "option" => Context::Option,
                        "timeout" => Context::Timeout,
                        _ => Context::Stats,
                    };
                    family = Some(ctx);
                    (ctx, *name, &words[2..])
                }
                (Context::Proxy, "no", Some(&"option")) => match words.get(2) {
                    Some(name) => (Context::Option, *name, &words[3..]),
                    None => continue,
                },
                (Context::Proxy, _, None) if family.is_some() => (family.unwrap_or(Context::Proxy), first, &words[1..]),
                _ => {
                    family = None;
                    (context, first, &words[1..])
                }
            };
            if is_value(word) && !word.ends_with('*') {
                continue;
            }
            // `listen NAME ADDR:PORT` in the proxy table is a section's header.
            if ctx == Context::Proxy
                && lookup(Context::Proxy, word).is_none()
                && lookup(Context::Section, word).is_some()
            {
                continue;
            }
            let form = rest.iter().any(|w| !is_value(w) && *w != "...");
            out.push(Mention { context: ctx, word: word.to_string(), status, form, line: i + 1 });
        }
    }
    out
}

/// The vocabulary's entries a mention stands for: the keyword itself; for `tune.*`, the
/// parser's own `tune.*` entry when it has one (the words it reads apart are "other"); else
/// for `splice-*` every keyword of the context it begins.
fn entries(m: &Mention) -> Vec<(&'static str, Status)> {
    let exact = VOCABULARY.iter().find(|k| k.context == m.context && k.word == m.word);
    match m.word.strip_suffix('*') {
        Some(_) if exact.is_some() => exact.map(|k| (k.word, status_of(k.support))).into_iter().collect(),
        Some(prefix) => {
            let mut found: Vec<(&'static str, Status)> = VOCABULARY
                .iter()
                .filter(|k| k.context == m.context && k.word.starts_with(prefix) && !k.word.ends_with('*'))
                .map(|k| (k.word, status_of(k.support)))
                .collect();
            if found.is_empty() {
                found.extend(lookup(m.context, &m.word).map(|k| (k.word, status_of(k.support))));
            }
            found
        }
        None => lookup(m.context, &m.word).map(|k| (k.word, status_of(k.support))).into_iter().collect(),
    }
}

#[test]
fn the_page_gives_every_keyword_the_status_the_parser_gives_it() {
    let mut wrong = Vec::new();
    for m in mentions() {
        let found = entries(&m);
        if found.is_empty() {
            // A not-yet row may name options of a keyword (`nopurge` of stick-table).
            if m.status != Status::NotYet {
                wrong.push(format!(
                    "line {}: {:?} '{}' is on the page as {:?}, unknown to the parser",
                    m.line, m.context, m.word, m.status
                ));
            }
            continue;
        }
        for (word, status) in found {
            // `http-check connect` not yet says nothing against `http-check` being read.
            if m.form && status != m.status {
                continue;
            }
            if status != m.status {
                wrong.push(format!(
                    "line {}: {:?} '{word}' is {:?} on the page, {status:?} in the parser",
                    m.line, m.context, m.status
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "docs/haproxy-compat.md disagrees with the parser:\n{}", wrong.join("\n"));
}

#[test]
fn every_keyword_read_or_ignored_is_on_the_page() {
    let mut on_page: BTreeSet<(String, String)> = BTreeSet::new();
    for m in mentions() {
        for (word, _) in entries(&m) {
            on_page.insert((format!("{:?}", m.context), word.to_string()));
        }
        // `option httplog` mentions the `option` keyword of proxies too.
        let family = match m.context {
            Context::Option => Some("option"),
            Context::Timeout => Some("timeout"),
            Context::Stats => Some("stats"),
            _ => None,
        };
        if let Some(f) = family {
            on_page.insert(("Proxy".into(), f.into()));
        }
    }
    let missing: Vec<String> = VOCABULARY
        .iter()
        .filter(|k| !matches!(k.context, Context::Section) && k.support != Support::NotYet)
        .filter(|k| !on_page.contains(&(format!("{:?}", k.context), k.word.to_string())))
        .map(|k| format!("{:?} '{}' ({:?})", k.context, k.word, k.support))
        .collect();
    assert!(
        missing.is_empty(),
        "read or ignored by the parser, missing from docs/haproxy-compat.md:\n{}",
        missing.join("\n")
    );
}

/// What the parser says about one more line in a frontend/backend pair.
fn messages(extra: &str) -> Vec<String> {
    let text = format!(
        "defaults\n    mode http\nfrontend fe\n    bind 127.0.0.1:1\n    default_backend be\nbackend be\n    server a 127.0.0.1:2\nlisten both\n    bind 127.0.0.1:3\n{extra}\n"
    );
    let opts = fulcrum_config::LoadOptions::default();
    let diags = match fulcrum_config::load_str(&text, std::path::Path::new("t.cfg"), &opts) {
        Ok(loaded) => loaded.warnings,
        Err(diags) => diags,
    };
    diags.iter().map(ToString::to_string).collect()
}

#[test]
fn the_parser_reads_every_keyword_the_table_says_it_reads() {
    // A value each family's keywords accept, where they take one.
    let sample = |context: Context, word: &str| -> Option<String> {
        Some(match context {
            Context::Option => format!("    option {word}"),
            Context::Timeout => format!("    timeout {word} 5s"),
            Context::Stats => {
                let value = match word {
                    "uri" => " /s",
                    "auth" => " a:b",
                    "realm" => " R",
                    "refresh" => " 5s",
                    "admin" => " if TRUE",
                    _ => "",
                };
                format!("    stats {word}{value}")
            }
            Context::Server => {
                let value = match word {
                    "observe" => " layer7",
                    "on-error" => " mark-down",
                    "addr" => " 127.0.0.1",
                    "check" | "no-check" | "backup" | "no-backup" | "disabled" | "enabled" => "",
                    "send-proxy" | "send-proxy-v2" | "no-send-proxy" | "no-send-proxy-v2" => "",
                    "inter" | "fastinter" | "downinter" | "slowstart" => " 1s",
                    "cookie" | "id" => " c1",
                    // TLS: verification needs a CA file, so these samples turn it off.
                    "ssl" | "check-ssl" => " verify none",
                    "no-ssl" | "no-check-ssl" | "no-tls-tickets" | "tls-tickets" | "ssl-reuse" | "no-ssl-reuse" => "",
                    "no-verifyhost" | "allow-0rtt" | "force-tlsv12" | "force-tlsv13" | "no-sslv3" => "",
                    "no-tlsv10" | "no-tlsv11" | "no-tlsv12" | "no-tlsv13" => "",
                    "verify" => " none",
                    "proto" => " h2",
                    "sni" => " str(example.com)",
                    "ssl-min-ver" | "ssl-max-ver" => " TLSv1.2",
                    _ => " 2",
                };
                format!("    server s 127.0.0.1:4 {word}{value}")
            }
            _ => return None,
        })
    };
    let mut wrong = Vec::new();
    for k in VOCABULARY.iter().filter(|k| k.support != Support::NotYet) {
        let Some(line) = sample(k.context, k.word) else { continue };
        let said = messages(&line);
        let refused = said.iter().find(|m| {
            m.contains("not supported yet")
                || m.contains("unknown")
                || (matches!(k.support, Support::Ignored(_)) != m.contains("ignored") && m.contains(":10:"))
        });
        if let Some(message) = refused {
            wrong.push(format!("{:?} '{}' ({:?}): `{}` -> {message}", k.context, k.word, k.support, line.trim()));
        }
    }
    assert!(wrong.is_empty(), "the table and the parser disagree:\n{}", wrong.join("\n"));
}
