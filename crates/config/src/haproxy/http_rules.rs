//! `http-request` and `http-response` rules (and `redirect`, which `http-request redirect`
//! shares): the action, its arguments, then an optional `if|unless` condition.
use crate::acl::AclSet;
use crate::diag::Problem;
use crate::sample::{parse_log_format_in, parse_sample_in, var_name, Dir};
use fulcrum_model::rules::{HttpAction, HttpRule};
use fulcrum_model::{Redirect, RedirectKind};

/// `redirect location|prefix|scheme VALUE [code N] [options] [if|unless COND]`.
pub(super) fn parse_redirect(args: &[String], acls: &mut AclSet) -> Result<Redirect, Problem> {
    let (kind, value) = match args {
        [kind, value, ..] => match kind.as_str() {
            "location" => (RedirectKind::Location, value),
            "prefix" => (RedirectKind::Prefix, value),
            "scheme" => (RedirectKind::Scheme, value),
            other => return Err(Problem::unknown("redirect type", other, ["location", "prefix", "scheme"])),
        },
        _ => {
            return Err(Problem::invalid("'redirect' needs a type and a value")
                .hint("e.g. redirect scheme https code 301 if !{ ssl_fc }"))
        }
    };
    if value.contains("%[") {
        return Err(Problem::unsupported("log-format values (%[...]) in redirect are not supported yet"));
    }
    let mut rule = Redirect {
        kind,
        value: value.clone(),
        code: 302,
        drop_query: false,
        append_slash: false,
        cookie: None,
        condition: None,
    };
    let mut words = args[2..].iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "code" => {
                let code = words.next().ok_or_else(|| Problem::invalid("'code' needs a status code"))?;
                rule.code = match code.parse::<u16>() {
                    Ok(c @ (301 | 302 | 303 | 307 | 308)) => c,
                    _ => {
                        return Err(Problem::invalid(format!(
                            "redirect code '{code}' is not one of 301, 302, 303, 307, 308"
                        )))
                    }
                };
            }
            "drop-query" => rule.drop_query = true,
            "append-slash" => rule.append_slash = true,
            "set-cookie" => {
                let c = words.next().ok_or_else(|| Problem::invalid("'set-cookie' needs NAME[=VALUE]"))?;
                rule.cookie = Some(if c.contains('=') { c.clone() } else { format!("{c}=") });
            }
            "clear-cookie" => {
                let c = words.next().ok_or_else(|| Problem::invalid("'clear-cookie' needs NAME"))?;
                let name = c.trim_end_matches('=');
                rule.cookie = Some(format!("{name}=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; Max-Age=0"));
            }
            "if" | "unless" => {
                let rest: Vec<String> = std::iter::once(word.clone()).chain(words.by_ref().cloned()).collect();
                rule.condition = Some(acls.parse_condition(&rest)?);
            }
            other => {
                let known = ["code", "drop-query", "append-slash", "set-cookie", "clear-cookie", "if", "unless"];
                return Err(Problem::unknown("redirect option", other, known));
            }
        }
    }
    Ok(rule)
}

/// Actions fulcrum does: the name, in request rules, in response rules.
const ACTIONS: &[(&str, bool, bool)] = &[
    ("allow", true, true),
    ("deny", true, true),
    ("return", true, true),
    ("redirect", true, true),
    ("set-header", true, true),
    ("add-header", true, true),
    ("del-header", true, true),
    ("replace-header", true, true),
    ("replace-value", true, true),
    ("set-var", true, true),
    ("unset-var", true, true),
    ("set-path", true, false),
    ("set-query", true, false),
    ("set-uri", true, false),
    ("set-method", true, false),
    ("replace-path", true, false),
    ("set-status", false, true),
    ("track-sc0", true, false),
    ("track-sc1", true, false),
    ("track-sc2", true, false),
    ("sc-inc-gpc0", true, true),
    ("sc-inc-gpc1", true, true),
    ("sc-set-gpt0", true, true),
    ("auth", true, false),
    ("set-src", true, false),
    ("tarpit", true, false),
];

/// HAProxy's actions fulcrum knows and does not do yet: an error that says so (a rule is
/// never skipped silently).
const NOT_YET_ACTIONS: &[&str] = &[
    "reject",
    "capture",
    "set-src-port",
    "set-dst",
    "set-dst-port",
    "set-timeout",
    "set-log-level",
    "set-nice",
    "set-tos",
    "set-mark",
    "normalize-uri",
    "cache-use",
    "cache-store",
    "wait-for-body",
    "wait-for-handshake",
    "do-resolve",
    "set-map",
    "del-map",
    "add-acl",
    "del-acl",
    "silent-drop",
    "early-hint",
    "disable-l7-retry",
    "use-service",
    "send-spoe-group",
    "set-bandwidth-limit",
    "strict-mode",
    "set-pathq",
    "set-priority-class",
    "set-priority-offset",
];

/// One `http-request` (or, with `response`, `http-response`) line after the keyword.
pub(super) fn parse_http_rule(args: &[String], response: bool, acls: &mut AclSet) -> Result<HttpRule, Problem> {
    let keyword = if response { "http-response" } else { "http-request" };
    let dir = if response { Dir::Response } else { Dir::Request };
    let parse_log_format = |text: &str| parse_log_format_in(text, dir);
    let parse_sample = |text: &str| parse_sample_in(text, dir);
    let Some((action, rest)) = args.split_first() else {
        return Err(Problem::invalid(format!("'{keyword}' needs an action"))
            .hint("e.g. http-request set-header X-Forwarded-Proto https if { ssl_fc }"));
    };
    // The condition starts at the first `if` or `unless` (not inside a redirect, which reads
    // its own).
    let split = rest.iter().position(|w| w == "if" || w == "unless");
    let (words, cond) = match split {
        Some(i) if action != "redirect" => (&rest[..i], &rest[i..]),
        _ => (rest, &rest[rest.len()..]),
    };
    let expect = |n: usize, usage: &str| -> Result<(), Problem> {
        if words.len() == n {
            Ok(())
        } else {
            Err(Problem::invalid(format!("'{keyword} {action}' takes: {usage}")))
        }
    };
    let header_name = |w: &str| -> Result<String, Problem> {
        if w.is_empty() || !w.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)) {
            return Err(Problem::invalid(format!("invalid header name '{w}'")));
        }
        Ok(w.to_ascii_lowercase())
    };
    let regex = |w: &str| -> Result<String, Problem> {
        regex::Regex::new(w).map_err(|e| Problem::invalid(format!("invalid regular expression '{w}': {e}")))?;
        Ok(w.to_string())
    };
    let known = ACTIONS.iter().filter(|(_, req, resp)| if response { *resp } else { *req }).map(|(n, _, _)| *n);
    let name = action.split('(').next().unwrap_or(action);
    if !known.clone().any(|n| n == name) {
        if NOT_YET_ACTIONS.contains(&name) || ACTIONS.iter().any(|(n, _, _)| *n == name) {
            return Err(Problem::unsupported(format!("'{keyword} {name}' is not supported yet")));
        }
        return Err(Problem::unknown(&format!("{keyword} action"), action, known));
    }
    let action = match name {
        "allow" => {
            expect(0, "no argument")?;
            HttpAction::Allow
        }
        "deny" => {
            let default = if response { 502 } else { 403 };
            let status = match words {
                [] => default,
                [kw, code] if kw == "deny_status" => {
                    let code = status_code(code)?;
                    // The statuses HAProxy has an error page for (those `errorfile` takes).
                    if !super::keywords::ERRORFILE_CODES.contains(&code) {
                        return Err(Problem::invalid(format!("deny_status {code} has no error page"))
                            .hint("HAProxy's error pages: 200 400 401 403 404 405 407 408 410 413 425 429 500 501 502 503 504; or use 'return status N'"));
                    }
                    code
                }
                _ => return Err(Problem::invalid(format!("'{keyword} deny' takes: [deny_status CODE]"))),
            };
            HttpAction::Deny { status }
        }
        "return" => parse_return(words, keyword, dir)?,
        "redirect" => {
            let redirect = parse_redirect(rest, acls)?;
            return Ok(HttpRule { action: HttpAction::Redirect(redirect), condition: None });
        }
        "set-header" | "add-header" => {
            if words.len() < 2 {
                return Err(Problem::invalid(format!("'{keyword} {name}' takes: NAME FORMAT")));
            }
            let header = header_name(&words[0])?;
            // HAProxy joins the words of an unquoted value with spaces.
            let value = parse_log_format(&words[1..].join(" "))?;
            if name == "set-header" {
                HttpAction::SetHeader { name: header, value }
            } else {
                HttpAction::AddHeader { name: header, value }
            }
        }
        "del-header" => {
            if words.len() != 1 {
                return Err(Problem::unsupported(format!(
                    "'{keyword} del-header' takes one header name (-m matching is not supported yet)"
                )));
            }
            HttpAction::DelHeader { name: header_name(&words[0])? }
        }
        "replace-header" | "replace-value" => {
            expect(3, "NAME REGEX FORMAT")?;
            HttpAction::ReplaceHeader {
                name: header_name(&words[0])?,
                regex: regex(&words[1])?,
                replacement: parse_log_format(&words[2])?,
                each_value: name == "replace-value",
            }
        }
        "set-path" | "set-query" | "set-uri" | "set-method" => {
            expect(1, "FORMAT")?;
            let f = parse_log_format(&words[0])?;
            match name {
                "set-path" => HttpAction::SetPath(f),
                "set-query" => HttpAction::SetQuery(f),
                "set-uri" => HttpAction::SetUri(f),
                _ => HttpAction::SetMethod(f),
            }
        }
        "replace-path" => {
            expect(2, "REGEX FORMAT")?;
            HttpAction::ReplacePath { regex: regex(&words[0])?, replacement: parse_log_format(&words[1])? }
        }
        "set-var" | "unset-var" => {
            let var = action
                .strip_prefix(name)
                .and_then(|v| v.strip_prefix('('))
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(|| Problem::invalid(format!("'{name}' is written {name}(SCOPE.NAME)")))?;
            let var = var_name(var)?;
            if name == "unset-var" {
                expect(0, "no argument")?;
                HttpAction::UnsetVar { name: var }
            } else {
                expect(1, "SAMPLE")?;
                HttpAction::SetVar { name: var, value: parse_sample(&words[0])? }
            }
        }
        "set-status" => {
            let (status, reason) = match words {
                [code] => (status_code(code)?, None),
                [code, kw, reason] if kw == "reason" => (status_code(code)?, Some(reason.clone())),
                _ => return Err(Problem::invalid("'http-response set-status' takes: CODE [reason TEXT]")),
            };
            HttpAction::SetStatus { status, reason }
        }
        "tarpit" => {
            let status = match words {
                [] => 500,
                [kw, code] if kw == "deny_status" => {
                    let code = status_code(code)?;
                    if !super::keywords::ERRORFILE_CODES.contains(&code) {
                        return Err(Problem::invalid(format!("deny_status {code} has no error page")));
                    }
                    code
                }
                _ => return Err(Problem::invalid("'http-request tarpit' takes: [deny_status CODE]")),
            };
            HttpAction::Tarpit { status }
        }
        "set-src" => {
            expect(1, "EXPR")?;
            HttpAction::SetSrc(parse_sample(&words[0])?)
        }
        "auth" => match words {
            [] => HttpAction::Auth { realm: None },
            [kw, realm] if kw == "realm" => HttpAction::Auth { realm: Some(realm.clone()) },
            _ => return Err(Problem::invalid("'http-request auth' takes: [realm REALM]")),
        },
        "track-sc0" | "track-sc1" | "track-sc2" | "sc-inc-gpc0" | "sc-inc-gpc1" | "sc-set-gpt0" => {
            match sc_action(keyword, action, words, dir)? {
                ScAction::Track { slot, key, table } => HttpAction::TrackSc { slot, key, table },
                ScAction::IncGpc { slot, gpc } => HttpAction::ScIncGpc { slot, gpc },
                ScAction::SetGpt0 { slot, value } => HttpAction::ScSetGpt0 { slot, value },
            }
        }
        other => return Err(Problem::unsupported(format!("'{keyword} {other}' is not supported yet"))),
    };
    let condition = if cond.is_empty() { None } else { Some(acls.parse_condition(cond)?) };
    Ok(HttpRule { action, condition })
}

/// A stick-counter action, as `http-request` and `tcp-request` rules write it.
pub(super) enum ScAction {
    Track { slot: u8, key: fulcrum_model::rules::Sample, table: Option<String> },
    IncGpc { slot: u8, gpc: u8 },
    SetGpt0 { slot: u8, value: i64 },
}

/// `track-scN KEY [table T]`, `sc-inc-gpc0(N)`, `sc-inc-gpc1(N)`, `sc-set-gpt0(N) VALUE`.
pub(super) fn sc_action(keyword: &str, action: &str, words: &[String], dir: Dir) -> Result<ScAction, Problem> {
    if let Some(n) = action.strip_prefix("track-sc") {
        let slot = n.parse::<u8>().ok().filter(|n| *n <= 2).ok_or_else(|| Problem::invalid("track-sc0, 1 or 2"))?;
        let (key, table) = match words {
            [key] => (key, None),
            [key, kw, table] if kw == "table" => (key, Some(table.clone())),
            _ => return Err(Problem::invalid(format!("'{keyword} {action}' takes: KEY [table TABLE]"))),
        };
        return Ok(ScAction::Track { slot, key: parse_sample_in(key, dir)?, table });
    }
    let (name, arg) = action.split_once('(').unwrap_or((action, ""));
    let slot = arg
        .strip_suffix(')')
        .and_then(|v| v.parse::<u8>().ok())
        .filter(|n| *n <= 2)
        .ok_or_else(|| Problem::invalid(format!("'{name}' is written {name}(0|1|2)")))?;
    match (name, words) {
        ("sc-inc-gpc0", []) => Ok(ScAction::IncGpc { slot, gpc: 0 }),
        ("sc-inc-gpc1", []) => Ok(ScAction::IncGpc { slot, gpc: 1 }),
        ("sc-set-gpt0", [value]) => {
            let value = value.parse::<i64>().map_err(|_| {
                Problem::unsupported(format!("'sc-set-gpt0' with '{value}': only an integer is supported yet"))
            })?;
            Ok(ScAction::SetGpt0 { slot, value })
        }
        ("sc-set-gpt0", _) => Err(Problem::invalid(format!("'{keyword} sc-set-gpt0({slot})' takes a value"))),
        _ => Err(Problem::invalid(format!("'{keyword} {name}({slot})' takes no argument"))),
    }
}

fn status_code(text: &str) -> Result<u16, Problem> {
    text.parse::<u16>()
        .ok()
        .filter(|c| (100..=599).contains(c))
        .ok_or_else(|| Problem::invalid(format!("'{text}' is not an HTTP status code")))
}

/// `return [status CODE] [content-type TYPE] [string TEXT | lf-string FORMAT] [hdr NAME FMT]`.
fn parse_return(words: &[String], keyword: &str, dir: Dir) -> Result<HttpAction, Problem> {
    let (mut status, mut content_type, mut body) = (200, None, None);
    let mut it = words.iter();
    while let Some(w) = it.next() {
        let mut value =
            || it.next().cloned().ok_or_else(|| Problem::invalid(format!("'{keyword} return': '{w}' needs a value")));
        match w.as_str() {
            "status" => status = status_code(&value()?)?,
            "content-type" => content_type = Some(value()?),
            "string" => {
                body = Some(fulcrum_model::rules::LogFormat {
                    parts: vec![fulcrum_model::rules::FormatPart::Text(value()?)],
                })
            }
            "lf-string" => body = Some(parse_log_format_in(&value()?, dir)?),
            "file" | "lf-file" | "errorfile" | "errorfiles" | "hdr" | "default-errorfiles" => {
                return Err(Problem::unsupported(format!("'{keyword} return ... {w}' is not supported yet")))
            }
            other => {
                return Err(Problem::unknown("return option", other, ["status", "content-type", "string", "lf-string"]))
            }
        }
    }
    if body.is_some() && content_type.is_none() {
        return Err(Problem::invalid(format!("'{keyword} return': a body needs a content-type")));
    }
    Ok(HttpAction::Return { status, content_type, body })
}
