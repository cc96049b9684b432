//! ACLs and conditions in HAProxy's syntax (`acl NAME CRITERION [-i] PATTERN...`,
//! `if|unless [!]acl1 acl2 or { path_beg /api }`), shared by the haproxy.cfg and TOML front-ends.
//!
//! HAProxy ORs several `acl` lines of the same name. The Model keeps one fetch per ACL, so lines
//! that differ in criterion become separate ACLs (`name`, `name{2}`, ...) and the conditions
//! that use them are rewritten into the equivalent OR of ANDs.
use crate::diag::Problem;
use crate::values::{net_text, parse_net};
use fulcrum_model::{Acl, AclTerm, Condition, Fetch, MatchKind};

/// Criteria fulcrum evaluates; `hdr` and friends take a header name in parentheses.
const SUPPORTED_CRITERIA: &[&str] = &[
    "path",
    "path_beg",
    "path_end",
    "path_sub",
    "path_reg",
    "hdr",
    "hdr_beg",
    "hdr_end",
    "hdr_sub",
    "hdr_reg",
    "req.hdr",
    "method",
    "src",
    "always_true",
    "always_false",
    "req.ssl_sni",
    "req_ssl_sni",
    "req.ssl_hello_type",
    "req_ssl_hello_type",
    "ssl_fc",
    "ssl_fc_sni",
    "ssl_fc_sni_end",
    "ssl_fc_sni_reg",
    "ssl_fc_protocol",
    "ssl_fc_alpn",
    "ssl_fc_cipher",
    "ssl_c_used",
    "ssl_c_verify",
    "ssl_c_s_dn",
];

/// Common HAProxy fetches fulcrum does not evaluate yet: known, so reported as unsupported
/// rather than misspelt.
const UNSUPPORTED_CRITERIA: &[&str] = &[
    "path_dir",
    "path_dom",
    "path_len",
    "url",
    "url_beg",
    "url_end",
    "url_sub",
    "url_reg",
    "url_dir",
    "url_dom",
    "urlp_val",
    "url_ip",
    "url_port",
    "base",
    "base_beg",
    "base_end",
    "base_sub",
    "base_reg",
    "base_dir",
    "base_dom",
    "query",
    "hdr_dom",
    "hdr_dir",
    "hdr_len",
    "hdr_cnt",
    "hdr_val",
    "hdr_ip",
    "hdr_found",
    "req.fhdr",
    "req.hdr_cnt",
    "req.hdr_ip",
    "req.hdr_val",
    "req.cook",
    "cook",
    "cook_beg",
    "cook_sub",
    "cook_cnt",
    "cook_val",
    "req.cook_cnt",
    "req.ssl_sni",
    "req_ssl_sni",
    "req.ssl_ver",
    "dst",
    "dst_port",
    "src_port",
    "be_id",
    "fe_id",
    "be_name",
    "fe_name",
    "status",
    "res.hdr",
    "req.len",
    "req.payload",
    "req.proto_http",
    "req.body",
    "req.ver",
    "req_ver",
    "env",
    "var",
    "stopping",
    "connslots",
    "queue",
    "avg_queue",
    "be_conn",
    "fe_conn",
    "src_conn_rate",
    "src_conn_cur",
    "src_http_req_rate",
    "src_http_err_rate",
    "sc_http_req_rate",
    "sc0_http_req_rate",
    "sc1_http_req_rate",
    "sc2_http_req_rate",
    "src_get_gpc0",
    "sc0_get_gpc0",
    "capture.req.hdr",
    "http_first_req",
    "wait_end",
    "rdp_cookie",
    "payload",
    "payload_lv",
    "src_is_local",
    "dst_is_local",
];

/// Predefined ACL names fulcrum knows how to evaluate.
fn predefined(name: &str) -> Option<Acl> {
    let acl = |fetch: Fetch, kind: MatchKind, patterns: &[&str]| Acl {
        name: name.to_string(),
        fetch,
        kind,
        patterns: patterns.iter().map(|p| p.to_string()).collect(),
        ignore_case: false,
    };
    let method = |patterns: &[&str]| acl(Fetch::Method, MatchKind::Exact, patterns);
    Some(match name {
        "TRUE" | "HTTP" => acl(Fetch::Src, MatchKind::Ip, &["0.0.0.0/0", "::/0"]),
        "FALSE" => acl(Fetch::Src, MatchKind::Ip, &[]),
        "LOCALHOST" => acl(Fetch::Src, MatchKind::Ip, &["127.0.0.0/8", "::1/128"]),
        "METH_CONNECT" => method(&["CONNECT"]),
        "METH_DELETE" => method(&["DELETE"]),
        "METH_GET" => method(&["GET", "HEAD"]),
        "METH_HEAD" => method(&["HEAD"]),
        "METH_OPTIONS" => method(&["OPTIONS"]),
        "METH_POST" => method(&["POST"]),
        "METH_PUT" => method(&["PUT"]),
        "METH_TRACE" => method(&["TRACE"]),
        _ => return None,
    })
}

const UNSUPPORTED_PREDEFINED: &[&str] = &[
    "HTTP_1.0",
    "HTTP_1.1",
    "HTTP_2.0",
    "HTTP_3.0",
    "HTTP_CONTENT",
    "HTTP_URL_ABS",
    "HTTP_URL_SLASH",
    "HTTP_URL_STAR",
    "REQ_CONTENT",
    "RDP_COOKIE",
    "WAIT_END",
];

/// Parse the part of an `acl` line after its name: `CRITERION [-i] [-m METHOD] [--] PATTERN...`.
pub(crate) fn parse_acl_body(name: &str, words: &[String]) -> Result<Acl, Problem> {
    let Some((criterion, rest)) = words.split_first() else {
        return Err(Problem::invalid(format!("acl '{name}' needs a criterion and patterns"))
            .hint("e.g. acl is_api path_beg /api"));
    };
    let (mut fetch, mut kind) = parse_criterion(criterion)?;
    let mut ignore_case = false;
    // Patterns from `-f FILE`, before those on the line (as HAProxy loads them).
    let mut from_files: Vec<String> = Vec::new();
    let mut had_file = false;
    let mut index = 0;
    while let Some(flag) = rest.get(index) {
        match flag.as_str() {
            "-i" => ignore_case = true,
            "-n" => {}
            "--" => {
                index += 1;
                break;
            }
            "-u" => index += 1,
            "-m" => {
                index += 1;
                let method = rest.get(index).ok_or_else(|| Problem::invalid("'-m' needs a match method"))?;
                // A method the quick criteria do not have: the sample engine computes it.
                kind = match match_method(&fetch, method) {
                    Ok(kind) => kind,
                    Err(problem) => match sample_criterion(criterion) {
                        Ok((sample, _)) => {
                            fetch = sample;
                            match_method(&fetch, method)?
                        }
                        Err(_) => return Err(problem),
                    },
                };
            }
            "-f" => {
                index += 1;
                let path = rest.get(index).ok_or_else(|| Problem::invalid("'-f' needs a pattern file"))?;
                from_files.extend(pattern_file(path)?);
                had_file = true;
            }
            "-M" => {
                return Err(Problem::unsupported("acl flag '-M' (a map file as patterns) is not supported yet")
                    .hint("use -f with a file of patterns"))
            }
            f if f.starts_with('-') && f.len() > 1 => {
                return Err(Problem::unknown("acl flag", f, ["-i", "-m", "-n", "-u", "--"]))
            }
            _ => break,
        }
        index += 1;
    }
    let patterns: Vec<String> =
        from_files.into_iter().chain(rest.get(index..).unwrap_or_default().iter().cloned()).collect();
    let (fetch, kind, patterns) = match criterion.as_str() {
        "always_true" => (Fetch::Src, MatchKind::Ip, vec!["0.0.0.0/0".to_string(), "::/0".to_string()]),
        "always_false" => (Fetch::Src, MatchKind::Ip, Vec::new()),
        _ if matches!(kind, MatchKind::Bool | MatchKind::Found) => match patterns.is_empty() {
            true => (fetch, kind, patterns),
            false => return Err(Problem::invalid(format!("'{criterion}' is a boolean: it takes no pattern"))),
        },
        _ if patterns.is_empty() && !had_file => {
            return Err(Problem::invalid(format!("acl '{name}' has no pattern to match"))
                .hint(format!("e.g. acl {name} {criterion} VALUE")))
        }
        _ => (fetch, kind, patterns),
    };
    let patterns = validate_patterns(kind, patterns, ignore_case)?;
    Ok(Acl { name: name.to_string(), fetch, kind, patterns, ignore_case })
}

/// A pattern file (`acl NAME CRITERION -f FILE`): one pattern per line, read as map files are
/// (blank lines and `#` comments skipped, leading blanks stripped, trailing ones kept).
fn pattern_file(path: &str) -> Result<Vec<String>, Problem> {
    let text = crate::sample::read_list_file(path, "pattern file")?;
    Ok(text.lines().filter_map(crate::sample::list_line).map(str::to_string).collect())
}

fn parse_criterion(word: &str) -> Result<(Fetch, MatchKind), Problem> {
    let converters = match word.find(')') {
        Some(close) => word.get(close + 1..).unwrap_or_default(),
        None => word.find(',').and_then(|c| word.get(c..)).unwrap_or_default(),
    };
    if !converters.is_empty() {
        // A fetch with converters: the rules' sample engine computes it.
        return sample_criterion(word);
    }
    let (base, arg) = match word.split_once('(') {
        Some((base, rest)) => match rest.strip_suffix(')') {
            Some(arg) => (base, Some(arg)),
            None => return Err(Problem::invalid(format!("criterion '{word}' misses its closing parenthesis"))),
        },
        None => (word, None),
    };
    let header = || -> Result<Fetch, Problem> {
        match arg {
            Some(a) if a.contains(',') => Err(Problem::unsupported(format!(
                "header occurrence in '{word}' is not supported yet (fulcrum matches any occurrence)"
            ))),
            Some(a) if !a.is_empty() => Ok(Fetch::Header(a.to_ascii_lowercase())),
            _ => Err(Problem::unsupported(format!("'{base}' without a header name is not supported yet"))
                .hint(format!("name the header: {base}(host)"))),
        }
    };
    let no_arg = |fetch: Fetch| -> Result<Fetch, Problem> {
        match arg {
            None => Ok(fetch),
            Some(_) => Err(Problem::invalid(format!("criterion '{base}' takes no argument"))),
        }
    };
    Ok(match base {
        "path" => (no_arg(Fetch::Path)?, MatchKind::Exact),
        "path_beg" => (no_arg(Fetch::Path)?, MatchKind::Prefix),
        "path_end" => (no_arg(Fetch::Path)?, MatchKind::Suffix),
        "path_sub" => (no_arg(Fetch::Path)?, MatchKind::Substring),
        "path_reg" => (no_arg(Fetch::Path)?, MatchKind::Regex),
        "hdr" | "req.hdr" => (header()?, MatchKind::Exact),
        "hdr_beg" => (header()?, MatchKind::Prefix),
        "hdr_end" => (header()?, MatchKind::Suffix),
        "hdr_sub" => (header()?, MatchKind::Substring),
        "hdr_reg" => (header()?, MatchKind::Regex),
        "method" => (no_arg(Fetch::Method)?, MatchKind::Exact),
        "src" => (no_arg(Fetch::Src)?, MatchKind::Ip),
        "always_true" | "always_false" => (no_arg(Fetch::Src)?, MatchKind::Ip),
        "req.ssl_sni" | "req_ssl_sni" => (no_arg(Fetch::ReqSslSni)?, MatchKind::Exact),
        "req.ssl_hello_type" | "req_ssl_hello_type" => (no_arg(Fetch::ReqSslHelloType)?, MatchKind::Exact),
        "ssl_fc" => (no_arg(Fetch::SslFc)?, MatchKind::Bool),
        "ssl_c_used" => (no_arg(Fetch::SslCUsed)?, MatchKind::Bool),
        "ssl_fc_sni" => (no_arg(Fetch::SslFcSni)?, MatchKind::Exact),
        "ssl_fc_sni_end" => (no_arg(Fetch::SslFcSni)?, MatchKind::Suffix),
        "ssl_fc_sni_reg" => (no_arg(Fetch::SslFcSni)?, MatchKind::Regex),
        "ssl_fc_protocol" => (no_arg(Fetch::SslFcProtocol)?, MatchKind::Exact),
        "ssl_fc_alpn" => (no_arg(Fetch::SslFcAlpn)?, MatchKind::Exact),
        "ssl_fc_cipher" => (no_arg(Fetch::SslFcCipher)?, MatchKind::Exact),
        "ssl_c_verify" => (no_arg(Fetch::SslCVerify)?, MatchKind::Exact),
        "ssl_c_s_dn" => (no_arg(Fetch::SslCSDn)?, MatchKind::Exact),
        "hdr_cnt" | "req.hdr_cnt" => sample_with(&format!("req.hdr_cnt({})", arg.unwrap_or_default()), MatchKind::Int)?,
        "hdr_val" => sample_with(&format!("req.hdr({})", arg.unwrap_or_default()), MatchKind::Int)?,
        "hdr_len" => sample_with(&format!("req.hdr({})", arg.unwrap_or_default()), MatchKind::Len)?,
        "hdr_ip" => sample_with(&format!("req.hdr({})", arg.unwrap_or_default()), MatchKind::Ip)?,
        "hdr_dom" => sample_with(&format!("req.hdr({})", arg.unwrap_or_default()), MatchKind::Dom)?,
        "hdr_dir" => sample_with(&format!("req.hdr({})", arg.unwrap_or_default()), MatchKind::Dir)?,
        "hdr_found" => sample_with(&format!("req.hdr({})", arg.unwrap_or_default()), MatchKind::Found)?,
        _ => match derived(base, arg) {
            Some(found) => found?,
            None => sample_criterion(word).map_err(|e| {
                if UNSUPPORTED_CRITERIA.contains(&base) || base.starts_with("sc") || base.starts_with("ssl_") {
                    Problem::unsupported(format!("acl criterion '{base}' is not supported yet"))
                } else if e.text().starts_with("unknown sample fetch") {
                    Problem::unknown("acl criterion", base, SUPPORTED_CRITERIA.iter().copied())
                } else {
                    e
                }
            })?,
        },
    })
}

/// HAProxy's derived ACL keywords: a fetch and a match method in one word (`url_beg`,
/// `base_sub`, `path_dir`, `cook_len(x)`), for the fetches the sample engine has.
fn derived(base: &str, arg: Option<&str>) -> Option<Result<(Fetch, MatchKind), Problem>> {
    const SUFFIXES: &[(&str, MatchKind)] = &[
        ("_beg", MatchKind::Prefix),
        ("_end", MatchKind::Suffix),
        ("_sub", MatchKind::Substring),
        ("_reg", MatchKind::Regex),
        ("_dir", MatchKind::Dir),
        ("_dom", MatchKind::Dom),
        ("_len", MatchKind::Len),
        ("_found", MatchKind::Found),
    ];
    let (stem, kind) =
        SUFFIXES.iter().find_map(|(suffix, kind)| base.strip_suffix(suffix).map(|stem| (stem, *kind)))?;
    let fetch = match stem {
        "path" | "url" | "base" | "query" | "ssl_fc_sni" | "ssl_c_s_dn" => stem.to_string(),
        "cook" | "req.cook" => format!("req.cook({})", arg.unwrap_or_default()),
        "shdr" | "res.hdr" => format!("res.hdr({})", arg.unwrap_or_default()),
        _ => return None,
    };
    Some(sample_with(&fetch, kind))
}

/// A criterion the rules' sample engine computes: its fetch and converters, matched by the
/// method its type suggests (integers as integers, addresses as networks, booleans as such).
fn sample_criterion(word: &str) -> Result<(Fetch, MatchKind), Problem> {
    use fulcrum_model::rules::{Converter as C, SampleFetch as F};
    let sample = crate::sample::parse_sample_in(word, crate::sample::Dir::Any)?;
    let kind = match sample.converters.last() {
        Some(C::Length | C::Add(_) | C::Sub(_) | C::Mul(_) | C::Div(_) | C::Mod(_) | C::Sdbm | C::Djb2 | C::Crc32) => {
            MatchKind::Int
        }
        Some(C::IpMask { .. }) => MatchKind::Ip,
        Some(_) => MatchKind::Exact,
        None => match sample.fetch {
            F::Src | F::Dst => MatchKind::Ip,
            F::SrcPort
            | F::DstPort
            | F::Status
            | F::ReqHdrCnt(_)
            | F::Int(_)
            | F::Counter { .. }
            | F::Rand(_)
            | F::Date(_)
            | F::NbSrv(_) => MatchKind::Int,
            F::SslFc | F::SslCUsed | F::HttpAuth(_) | F::SrvIsUp { .. } => MatchKind::Bool,
            _ => MatchKind::Exact,
        },
    };
    Ok((Fetch::Sample(sample), kind))
}

fn sample_with(text: &str, kind: MatchKind) -> Result<(Fetch, MatchKind), Problem> {
    let (fetch, _) = sample_criterion(text)?;
    Ok((fetch, kind))
}

fn match_method(fetch: &Fetch, method: &str) -> Result<MatchKind, Problem> {
    let kind = match method {
        "str" => MatchKind::Exact,
        "beg" => MatchKind::Prefix,
        "end" => MatchKind::Suffix,
        "sub" => MatchKind::Substring,
        "reg" => MatchKind::Regex,
        "ip" => MatchKind::Ip,
        "found" => MatchKind::Found,
        "bool" => MatchKind::Bool,
        "int" => MatchKind::Int,
        "len" => MatchKind::Len,
        "dom" => MatchKind::Dom,
        "dir" => MatchKind::Dir,
        "bin" => return Err(Problem::unsupported("match method '-m bin' is not supported yet")),
        _ => {
            return Err(Problem::unknown(
                "match method",
                method,
                ["str", "beg", "end", "sub", "reg", "ip", "found", "bool", "int", "len", "dom", "dir"],
            ))
        }
    };
    match (fetch, kind) {
        (Fetch::Src, MatchKind::Ip) | (Fetch::Sample(_), _) => Ok(kind),
        (Fetch::Src, _) | (_, MatchKind::Ip | MatchKind::Found | MatchKind::Int | MatchKind::Len | MatchKind::Bool) => {
            Err(Problem::unsupported(format!("match method '-m {method}' with this criterion is not supported yet")))
        }
        _ => Ok(kind),
    }
}

/// Integer patterns as ranges `LO:HI` (an open end empty): `10`, `10:20`, `gt 10` (`11:`),
/// `ge 10`, `lt 10`, `le 10`, `eq 10`, as HAProxy reads them.
fn int_patterns(words: Vec<String>) -> Result<Vec<String>, Problem> {
    let number = |w: &str| -> Result<i64, Problem> {
        w.parse::<i64>().map_err(|_| Problem::invalid(format!("'{w}' is not an integer")))
    };
    let mut out = Vec::new();
    let mut it = words.iter();
    while let Some(w) = it.next() {
        let op = w.as_str();
        if matches!(op, "gt" | "ge" | "lt" | "le" | "eq") {
            let v = number(it.next().ok_or_else(|| Problem::invalid(format!("'{op}' needs a number")))?)?;
            out.push(match op {
                "gt" => format!("{}:", v.saturating_add(1)),
                "ge" => format!("{v}:"),
                "lt" => format!(":{}", v.saturating_sub(1)),
                "le" => format!(":{v}"),
                _ => format!("{v}:{v}"),
            });
        } else if let Some((lo, hi)) = op.split_once(':') {
            let lo = if lo.is_empty() { String::new() } else { number(lo)?.to_string() };
            let hi = if hi.is_empty() { String::new() } else { number(hi)?.to_string() };
            out.push(format!("{lo}:{hi}"));
        } else {
            let v = number(op)?;
            out.push(format!("{v}:{v}"));
        }
    }
    Ok(out)
}

fn validate_patterns(kind: MatchKind, patterns: Vec<String>, ignore_case: bool) -> Result<Vec<String>, Problem> {
    match kind {
        MatchKind::Int | MatchKind::Len => int_patterns(patterns),
        MatchKind::Ip => patterns
            .iter()
            .map(|p| {
                parse_net(p).map(net_text).map_err(|e| Problem::from(e).hint("src patterns are addresses or networks"))
            })
            .collect(),
        MatchKind::Regex => {
            for p in &patterns {
                regex::RegexBuilder::new(p)
                    .case_insensitive(ignore_case)
                    .build()
                    .map_err(|e| Problem::invalid(format!("invalid regular expression '{p}': {}", regex_error(&e))))?;
            }
            Ok(patterns)
        }
        _ => Ok(patterns),
    }
}

/// The last line of the regex crate's message ("unclosed group"), without its "error:" label.
pub(crate) fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text.lines().rfind(|l| !l.trim().is_empty()).unwrap_or(&text).trim();
    last.strip_prefix("error:").unwrap_or(last).trim().to_string()
}

/// Whether a word is a valid ACL name (HAProxy: letters, digits, `-`, `_`, `.`, `:`).
pub(crate) fn valid_acl_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// The ACLs of one frontend while it is being read.
#[derive(Debug, Clone, Default)]
pub(crate) struct AclSet {
    defs: Vec<Acl>,
    /// Names whose definition was dropped (unsupported criterion under `--lenient`).
    dropped: Vec<String>,
}

/// At most this many alternatives after rewriting a condition (keeps hostile input bounded).
const MAX_ALTERNATIVES: usize = 256;

impl AclSet {
    /// `acl NAME BODY...`
    pub(crate) fn define(&mut self, name: &str, body: &[String]) -> Result<(), Problem> {
        if !valid_acl_name(name) {
            return Err(Problem::invalid(format!("invalid acl name '{name}'"))
                .hint("acl names use letters, digits, '-', '_', '.' and ':'"));
        }
        match parse_acl_body(name, body) {
            Ok(acl) => {
                self.defs.push(acl);
                Ok(())
            }
            Err(problem) => {
                self.dropped.push(name.to_string());
                Err(problem)
            }
        }
    }

    fn is_defined(&self, name: &str) -> bool {
        self.defs.iter().any(|a| a.name == name)
    }

    /// `if|unless TERMS` (the first word must be `if` or `unless`).
    pub(crate) fn parse_condition(&mut self, words: &[String]) -> Result<Condition, Problem> {
        match words.split_first() {
            Some((kw, terms)) if kw == "if" => self.parse_terms(false, terms),
            Some((kw, terms)) if kw == "unless" => self.parse_terms(true, terms),
            Some((kw, _)) => Err(Problem::unknown("condition keyword", kw, ["if", "unless"])),
            None => Err(Problem::invalid("missing condition").hint("add 'if ACL' or 'unless ACL'")),
        }
    }

    /// Terms of a condition: `[!]NAME`, `{ CRITERION PATTERN... }`, `or`/`||` between
    /// alternatives; terms side by side are ANDed.
    pub(crate) fn parse_terms(&mut self, unless: bool, words: &[String]) -> Result<Condition, Problem> {
        let keyword = if unless { "unless" } else { "if" };
        if words.is_empty() {
            return Err(Problem::invalid(format!("missing condition after '{keyword}'")));
        }
        let mut alternatives: Vec<Vec<AclTerm>> = vec![Vec::new()];
        let mut negate = false;
        let mut index = 0;
        while let Some(word) = words.get(index) {
            index += 1;
            let mut word = word.as_str();
            if word == "or" || word == "||" {
                if negate || alternatives.last().is_some_and(Vec::is_empty) {
                    return Err(Problem::invalid(format!("'{word}' without an acl before it")));
                }
                alternatives.push(Vec::new());
                continue;
            }
            if word == "!" {
                negate = !negate;
                continue;
            }
            if let Some(rest) = word.strip_prefix('!') {
                negate = !negate;
                word = rest;
            }
            let name = if word == "{" {
                let close = words
                    .get(index..)
                    .and_then(|rest| rest.iter().position(|w| w == "}"))
                    .ok_or_else(|| Problem::invalid("anonymous acl '{' is not closed by '}'"))?;
                let body = words.get(index..index + close).unwrap_or_default();
                index += close + 1;
                self.anonymous(body)?
            } else {
                self.reference(word)?
            };
            if let Some(alt) = alternatives.last_mut() {
                alt.push(AclTerm { negate, acl: name });
            }
            negate = false;
        }
        if negate || alternatives.last().is_some_and(Vec::is_empty) {
            return Err(Problem::invalid(format!("condition after '{keyword}' ends without an acl")));
        }
        Ok(Condition { unless, alternatives })
    }

    fn anonymous(&mut self, body: &[String]) -> Result<String, Problem> {
        let name = format!("{{{}}}", body.join(" "));
        if !self.is_defined(&name) {
            let acl = parse_acl_body(&name, body)?;
            self.defs.push(acl);
        }
        Ok(name)
    }

    fn reference(&self, name: &str) -> Result<String, Problem> {
        if self.is_defined(name) || predefined(name).is_some() {
            return Ok(name.to_string());
        }
        if self.dropped.iter().any(|d| d == name) {
            return Err(Problem::unsupported(format!("this rule uses acl '{name}', whose definition was not kept")));
        }
        if UNSUPPORTED_PREDEFINED.contains(&name) {
            return Err(Problem::unsupported(format!("predefined acl '{name}' is not supported yet")));
        }
        let known: Vec<&str> = self.defs.iter().map(|a| a.name.as_str()).filter(|n| !n.starts_with('{')).collect();
        let problem = Problem::invalid(format!("unknown acl '{name}' in condition"));
        Err(match crate::did_you_mean(name, known) {
            Some(best) => problem.hint(format!("did you mean {best}?")),
            None => problem.hint(format!("declare it first: acl {name} CRITERION PATTERN")),
        })
    }

    /// The Model's ACLs, with the conditions that use them rewritten where several `acl` lines
    /// of one name had to become separate ACLs.
    pub(crate) fn finish(self, conditions: &mut [&mut Condition]) -> Result<Vec<Acl>, Problem> {
        let mut names: Vec<&str> = Vec::new();
        for acl in &self.defs {
            if !names.contains(&acl.name.as_str()) {
                names.push(&acl.name);
            }
        }
        let mut out: Vec<Acl> = Vec::new();
        let mut split: Vec<(String, Vec<String>)> = Vec::new();
        for name in names {
            let group: Vec<&Acl> = self.defs.iter().filter(|a| a.name == name).collect();
            let Some(first) = group.first() else { continue };
            let same = group
                .iter()
                .all(|a| a.fetch == first.fetch && a.kind == first.kind && a.ignore_case == first.ignore_case);
            if same {
                let mut merged = (*first).clone();
                merged.patterns = group.iter().flat_map(|a| a.patterns.iter().cloned()).collect();
                out.push(merged);
            } else {
                let mut variants = Vec::new();
                for (i, acl) in group.iter().enumerate() {
                    let mut acl = (*acl).clone();
                    if i > 0 {
                        acl.name = format!("{name}{{{}}}", i + 1);
                    }
                    variants.push(acl.name.clone());
                    out.push(acl);
                }
                split.push((name.to_string(), variants));
            }
        }
        for cond in conditions.iter_mut() {
            if !split.is_empty() {
                **cond = expand(cond, &split)?;
            }
            for term in cond.alternatives.iter().flatten() {
                if !out.iter().any(|a| a.name == term.acl) {
                    if let Some(acl) = predefined(&term.acl) {
                        out.push(acl);
                    }
                }
            }
        }
        Ok(out)
    }
}

fn too_complex() -> Problem {
    Problem::unsupported("condition is too complex once its acls are expanded")
        .hint("give acls with different criteria different names")
}

/// Rewrite a condition whose terms name ACLs that are ORs of several ACLs:
/// `a X` with X = X1|X2 becomes `a X1 or a X2`; `!X` becomes `!X1 !X2`.
fn expand(cond: &Condition, split: &[(String, Vec<String>)]) -> Result<Condition, Problem> {
    let mut alternatives: Vec<Vec<AclTerm>> = Vec::new();
    for alt in &cond.alternatives {
        let mut partial: Vec<Vec<AclTerm>> = vec![Vec::new()];
        for term in alt {
            let variants = split.iter().find(|(n, _)| *n == term.acl).map(|(_, v)| v);
            match variants {
                None => partial.iter_mut().for_each(|p| p.push(term.clone())),
                Some(vs) if term.negate => partial
                    .iter_mut()
                    .for_each(|p| p.extend(vs.iter().map(|v| AclTerm { negate: true, acl: v.clone() }))),
                Some(vs) if partial.len().saturating_mul(vs.len()) + alternatives.len() > MAX_ALTERNATIVES => {
                    return Err(too_complex());
                }
                Some(vs) => {
                    partial = partial
                        .iter()
                        .flat_map(|p| {
                            vs.iter().map(move |v| {
                                let mut next = p.clone();
                                next.push(AclTerm { negate: false, acl: v.clone() });
                                next
                            })
                        })
                        .collect();
                }
            }
            if partial.len() + alternatives.len() > MAX_ALTERNATIVES {
                return Err(too_complex());
            }
        }
        alternatives.extend(partial);
    }
    Ok(Condition { unless: cond.unless, alternatives })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn parses_criteria() {
        let acl = parse_acl_body("api", &w("path_beg -i /api /v1")).expect("valid");
        assert_eq!((acl.fetch, acl.kind, acl.ignore_case), (Fetch::Path, MatchKind::Prefix, true));
        assert_eq!(acl.patterns, ["/api", "/v1"]);
        let acl = parse_acl_body("h", &w("hdr(Host) -m end .example.com")).expect("valid");
        assert_eq!((acl.fetch, acl.kind), (Fetch::Header("host".into()), MatchKind::Suffix));
        let acl = parse_acl_body("net", &w("src 10.0.0.0/255.0.0.0 192.0.2.1")).expect("valid");
        assert_eq!(acl.patterns, ["10.0.0.0/8", "192.0.2.1/32"]);
        assert!(matches!(parse_acl_body("x", &w("src example.com")), Err(Problem::Invalid { .. })));
        assert!(matches!(parse_acl_body("x", &w("path_reg (")), Err(Problem::Invalid { .. })));
        // Derived keywords and any sample expression, with every match method.
        let acl = parse_acl_body("x", &w("url_beg /a")).expect("valid");
        assert_eq!(acl.kind, MatchKind::Prefix);
        assert!(matches!(acl.fetch, Fetch::Sample(_)));
        let acl = parse_acl_body("x", &w("hdr_cnt(host) gt 1")).expect("valid");
        assert_eq!((acl.kind, acl.patterns.clone()), (MatchKind::Int, vec!["2:".to_string()]));
        let acl = parse_acl_body("x", &w("dst_port 80 443:444 le 10")).expect("valid");
        assert_eq!(acl.patterns, ["80:80", "443:444", ":10"]);
        let acl = parse_acl_body("x", &w("req.cook(s) -m found")).expect("valid");
        assert_eq!(acl.kind, MatchKind::Found);
        assert!(parse_acl_body("x", &w("req.cook(s) -m found extra")).is_err());
        let acl = parse_acl_body("x", &w("req.hdr(host),lower,field(1,:) -m end .example.com")).expect("valid");
        assert_eq!(acl.kind, MatchKind::Suffix);
        assert!(parse_acl_body("x", &w("query -m len gt x")).is_err());
        assert!(matches!(parse_acl_body("x", &w("sc0_bytes_in_rate gt 10")), Err(Problem::Unsupported { .. })));
        assert_eq!(parse_acl_body("x", &w("sc0_conn_cur gt 10")).expect("valid").kind, MatchKind::Int);
        let acl = parse_acl_body("x", &w("sc_http_req_rate(0) gt 10")).expect("valid");
        assert_eq!((acl.kind, acl.patterns.clone()), (MatchKind::Int, vec!["11:".to_string()]));
        let Err(Problem::Invalid { hint, .. }) = parse_acl_body("x", &w("path_bgn /a")) else { panic!("invalid") };
        assert_eq!(hint.as_deref(), Some("did you mean path_beg?"));
        assert!(parse_acl_body("x", &w("path")).is_err());
    }

    #[test]
    fn conditions_and_anonymous_acls() {
        let mut set = AclSet::default();
        set.define("is_api", &w("path_beg /api")).expect("valid");
        let cond = set.parse_condition(&w("if is_api !{ src 10.0.0.0/8 } or METH_POST")).expect("valid");
        assert!(!cond.unless);
        assert_eq!(cond.alternatives.len(), 2);
        assert_eq!(cond.alternatives[0][1], AclTerm { negate: true, acl: "{src 10.0.0.0/8}".into() });
        assert!(set.parse_condition(&w("if nope")).is_err());
        assert!(set.parse_condition(&w("if")).is_err());
        assert!(set.parse_condition(&w("if is_api or")).is_err());
        assert!(set.parse_condition(&w("if { path_beg /x")).is_err());
        let mut conds = [cond];
        let acls = set.finish(&mut conds.iter_mut().collect::<Vec<_>>()).expect("finishes");
        let names: Vec<&str> = acls.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["is_api", "{src 10.0.0.0/8}", "METH_POST"]);
    }

    #[test]
    fn same_name_lines_are_ored() {
        let mut set = AclSet::default();
        set.define("static", &w("path_beg /static")).expect("valid");
        set.define("static", &w("path_beg /img")).expect("valid");
        set.define("other", &w("path_end .css")).expect("valid");
        set.define("other", &w("hdr(host) static.example.com")).expect("valid");
        let mut a = set.parse_condition(&w("if static other")).expect("valid");
        let mut b = set.parse_condition(&w("unless !other")).expect("valid");
        let acls = set.finish(&mut [&mut a, &mut b]).expect("finishes");
        assert_eq!(acls[0].patterns, ["/static", "/img"]);
        assert_eq!(acls.len(), 3);
        assert_eq!(a.alternatives.len(), 2);
        assert_eq!(a.alternatives[1][1].acl, "other{2}");
        assert_eq!(
            b.alternatives,
            vec![vec![AclTerm { negate: true, acl: "other".into() }, AclTerm { negate: true, acl: "other{2}".into() }]]
        );
    }
}
