//! Sample expressions (`req.hdr(host),lower,field(1,:)`) and log-format strings
//! (`%[src]:%[src_port]`) in HAProxy's syntax, shared by the haproxy.cfg and TOML front-ends.
//!
//! Arguments are split on commas inside the parentheses; a backslash keeps the next character
//! as it is (`regsub(\,,;)`), as HAProxy reads them.
use crate::diag::Problem;
use fulcrum_model::rules::{Converter, Counter, CounterOf, FormatPart, LogFormat, MapMatch, Sample, SampleFetch};

/// Fetches fulcrum evaluates, for "did you mean".
const FETCHES: &[&str] = &[
    "src",
    "src_port",
    "dst",
    "dst_port",
    "method",
    "path",
    "query",
    "url",
    "base",
    "req.ver",
    "req.hdr",
    "hdr",
    "req.fhdr",
    "req.hdr_cnt",
    "hdr_cnt",
    "req.cook",
    "cook",
    "res.hdr",
    "shdr",
    "res.cook",
    "scook",
    "http_auth",
    "http_auth_group",
    "http_auth_user",
    "url_param",
    "rand",
    "uuid",
    "date",
    "nbsrv",
    "srv_is_up",
    "status",
    "ssl_fc",
    "ssl_fc_sni",
    "ssl_fc_protocol",
    "ssl_fc_alpn",
    "ssl_fc_cipher",
    "ssl_c_used",
    "ssl_c_s_dn",
    "fe_name",
    "be_name",
    "env",
    "str",
    "int",
    "bool",
    "var",
    "sc_http_req_rate",
    "sc0_http_req_rate",
    "src_http_req_rate",
    "sc_http_req_cnt",
    "sc_get_gpc0",
    "sc_inc_gpc0",
    "sc_conn_cur",
    "sc0_conn_rate",
    "src_conn_cur",
    "src_conn_rate",
    "sc_http_err_rate",
    "sc0_tracked",
];

/// HAProxy fetches fulcrum knows but does not evaluate yet: reported as such, not misspelt.
const NOT_YET_FETCHES: &[&str] = &[
    "req.body",
    "req.body_param",
    "capture.req.hdr",
    "capture.res.hdr",
    "unique-id",
    "ssl_c_sha1",
    "ssl_c_serial",
    "ssl_c_i_dn",
    "ssl_fc_session_id",
    "be_id",
    "fe_id",
    "srv_id",
    "srv_name",
    "table_http_req_rate",
];

const CONVERTERS: &[&str] = &[
    "lower",
    "upper",
    "base64",
    "b64dec",
    "hex",
    "length",
    "field",
    "word",
    "bytes",
    "ipmask",
    "regsub",
    "add",
    "sub",
    "mul",
    "div",
    "mod",
    "json",
    "sdbm",
    "djb2",
    "crc32",
    "concat",
    "map",
    "map_str",
    "map_beg",
    "map_end",
    "map_sub",
    "map_dir",
    "map_dom",
    "map_reg",
    "map_ip",
    "map_int",
    "in_table",
    "table_server_id",
    "table_conn_cur",
    "table_http_req_rate",
    "table_gpc0",
];

const NOT_YET_CONVERTERS: &[&str] = &[
    "table_bytes_in_rate",
    "table_bytes_out_rate",
    "table_kbytes_in",
    "table_kbytes_out",
    "table_trackers",
    "table_http_fail_cnt",
    "table_http_fail_rate",
    "wt6",
    "xxh3",
    "xxh32",
    "xxh64",
    "sha1",
    "sha2",
    "hmac",
    "aes_gcm_dec",
    "url_dec",
    "url_enc",
    "digest",
    "ltime",
    "utime",
    "http_date",
    "set-var",
    "and",
    "or",
    "xor",
    "neg",
    "not",
    "bool",
    "odd",
    "even",
    "cpl",
    "strcmp",
    "secure_memcmp",
    "debug",
    "protobuf",
    "ungrpc",
    "ltrim",
    "rtrim",
];

/// One `name(args)` word of an expression.
struct Call<'a> {
    name: &'a str,
    args: Vec<String>,
}

/// Splits `text` on commas outside parentheses (a backslash escapes the next character).
fn top_level(text: &str) -> Result<Vec<&str>, Problem> {
    let mut parts = Vec::new();
    let (mut depth, mut start, mut escaped) = (0i32, 0usize, false);
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(Problem::invalid(format!("unbalanced ')' in '{text}'")));
                }
            }
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(Problem::invalid(format!("missing ')' in '{text}'")));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn call(word: &str) -> Result<Call<'_>, Problem> {
    let Some(open) = word.find('(') else {
        if word.is_empty() {
            return Err(Problem::invalid("empty name in a sample expression"));
        }
        return Ok(Call { name: word, args: Vec::new() });
    };
    if !word.ends_with(')') {
        return Err(Problem::invalid(format!("'{word}': text after the closing ')'")));
    }
    let inner = &word[open + 1..word.len() - 1];
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut chars = inner.chars();
    let mut depth = 0i32;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => args.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if !inner.is_empty() {
        args.push(cur);
    }
    Ok(Call { name: &word[..open], args })
}

fn int_arg(call: &Call<'_>, i: usize, default: Option<i64>) -> Result<i64, Problem> {
    match call.args.get(i) {
        Some(a) if !a.is_empty() => a.trim().parse().map_err(|_| {
            Problem::invalid(format!("'{}': argument {} must be an integer, not '{a}'", call.name, i + 1))
        }),
        _ => default.ok_or_else(|| Problem::invalid(format!("'{}' needs an integer argument {}", call.name, i + 1))),
    }
}

fn str_arg(call: &Call<'_>, i: usize) -> Result<String, Problem> {
    call.args
        .get(i)
        .filter(|a| !a.is_empty())
        .cloned()
        .ok_or_else(|| Problem::invalid(format!("'{}' needs an argument {}", call.name, i + 1)))
}

fn arity(call: &Call<'_>, max: usize) -> Result<(), Problem> {
    if call.args.len() > max {
        return Err(Problem::invalid(format!("'{}' takes at most {max} argument(s)", call.name)));
    }
    Ok(())
}

fn fetch(c: &Call<'_>) -> Result<SampleFetch, Problem> {
    let f = match c.name {
        "src" => SampleFetch::Src,
        "src_port" => SampleFetch::SrcPort,
        "dst" => SampleFetch::Dst,
        "dst_port" => SampleFetch::DstPort,
        "method" => SampleFetch::Method,
        "path" => SampleFetch::Path,
        "query" => SampleFetch::Query,
        "url" => SampleFetch::Url,
        "base" => SampleFetch::Base,
        "req.ver" | "req_ver" => SampleFetch::ReqVer,
        "req.hdr" | "hdr" | "req.fhdr" => {
            arity(c, 2)?;
            let name = str_arg(c, 0)?.to_ascii_lowercase();
            SampleFetch::ReqHdr { name, occ: int_arg(c, 1, Some(-1))?, full: c.name == "req.fhdr" }
        }
        "req.hdr_cnt" | "hdr_cnt" => SampleFetch::ReqHdrCnt(str_arg(c, 0)?.to_ascii_lowercase()),
        "req.cook" | "cook" => SampleFetch::ReqCook(str_arg(c, 0)?),
        "res.cook" | "scook" => SampleFetch::ResCook(str_arg(c, 0)?),
        "url_param" | "urlp" => {
            arity(c, 2)?;
            let delim = match c.args.get(1).map(String::as_str) {
                None | Some("") => '?',
                Some(d) if d.chars().count() == 1 => d.chars().next().unwrap_or('&'),
                Some(d) => {
                    return Err(Problem::invalid(format!("'{}': the delimiter is one character, not '{d}'", c.name)))
                }
            };
            SampleFetch::UrlParam { name: str_arg(c, 0)?, delim }
        }
        "rand" => {
            arity(c, 1)?;
            let range = int_arg(c, 0, Some(1 << 32))?;
            SampleFetch::Rand(
                u64::try_from(range)
                    .ok()
                    .filter(|r| *r > 0)
                    .ok_or_else(|| Problem::invalid(format!("'rand': the range is a positive number, not {range}")))?,
            )
        }
        "uuid" => {
            arity(c, 1)?;
            if int_arg(c, 0, Some(4))? != 4 {
                return Err(Problem::unsupported("'uuid': only version 4 is supported"));
            }
            SampleFetch::Uuid
        }
        "date" => {
            arity(c, 1)?;
            SampleFetch::Date(int_arg(c, 0, Some(0))?)
        }
        "nbsrv" => {
            arity(c, 1)?;
            SampleFetch::NbSrv(c.args.first().filter(|b| !b.is_empty()).cloned())
        }
        "srv_is_up" => {
            let arg = str_arg(c, 0)?;
            let (backend, server) = arg
                .split_once('/')
                .ok_or_else(|| Problem::invalid(format!("'srv_is_up({arg})': name the server as BACKEND/SERVER")))?;
            SampleFetch::SrvIsUp { backend: backend.to_string(), server: server.to_string() }
        }
        "http_auth" => SampleFetch::HttpAuth(str_arg(c, 0)?),
        "http_auth_group" => SampleFetch::HttpAuthGroup(str_arg(c, 0)?),
        "http_auth_user" => SampleFetch::HttpAuthUser,
        "http_auth_pass" => SampleFetch::HttpAuthPass,
        "http_auth_type" => SampleFetch::HttpAuthType,
        "res.hdr" | "shdr" => {
            arity(c, 2)?;
            SampleFetch::ResHdr { name: str_arg(c, 0)?.to_ascii_lowercase(), occ: int_arg(c, 1, Some(-1))? }
        }
        "status" => SampleFetch::Status,
        "ssl_fc" => SampleFetch::SslFc,
        "ssl_fc_sni" => SampleFetch::SslFcSni,
        "ssl_fc_protocol" => SampleFetch::SslFcProtocol,
        "ssl_fc_alpn" => SampleFetch::SslFcAlpn,
        "ssl_fc_cipher" => SampleFetch::SslFcCipher,
        "ssl_c_used" => SampleFetch::SslCUsed,
        "ssl_c_s_dn" => SampleFetch::SslCSDn,
        "fe_name" => SampleFetch::FeName,
        "be_name" => SampleFetch::BeName,
        "env" => SampleFetch::Env(str_arg(c, 0)?),
        "str" => SampleFetch::Str(c.args.first().cloned().unwrap_or_default()),
        "int" => SampleFetch::Int(int_arg(c, 0, None)?),
        "bool" => SampleFetch::Int(i64::from(int_arg(c, 0, None)? != 0)),
        "var" => SampleFetch::Var(var_name(&str_arg(c, 0)?)?),
        other if let Some((of, counter, table_arg)) = counter_fetch(other) => {
            let of = match of {
                // `sc_*(N[,TABLE])`: the slot is the first argument.
                CounterOf::Slot(u8::MAX) => {
                    let n = int_arg(c, 0, None)?;
                    CounterOf::Slot(u8::try_from(n).ok().filter(|n| *n <= 2).ok_or_else(|| {
                        Problem::invalid(format!("'{other}': the stick counter is 0, 1 or 2, not {n}"))
                    })?)
                }
                of => of,
            };
            arity(c, table_arg + 1)?;
            let table = c.args.get(table_arg).filter(|t| !t.is_empty()).cloned();
            SampleFetch::Counter { of, counter, table }
        }
        other if NOT_YET_FETCHES.contains(&other) || other.starts_with("sc") || other.starts_with("src_") => {
            return Err(Problem::unsupported(format!("the sample fetch '{other}' is not supported yet")))
        }
        other => return Err(Problem::unknown("sample fetch", other, FETCHES.iter().copied())),
    };
    if !matches!(
        f,
        SampleFetch::Counter { .. }
            | SampleFetch::ReqHdr { .. }
            | SampleFetch::ResHdr { .. }
            | SampleFetch::ReqHdrCnt(_)
            | SampleFetch::ReqCook(_)
            | SampleFetch::ResCook(_)
            | SampleFetch::HttpAuth(_)
            | SampleFetch::HttpAuthGroup(_)
            | SampleFetch::UrlParam { .. }
            | SampleFetch::Rand(_)
            | SampleFetch::Uuid
            | SampleFetch::Date(_)
            | SampleFetch::NbSrv(_)
            | SampleFetch::SrvIsUp { .. }
            | SampleFetch::Env(_)
            | SampleFetch::Str(_)
            | SampleFetch::Int(_)
            | SampleFetch::Var(_)
    ) && !c.args.is_empty()
    {
        return Err(Problem::invalid(format!("'{}' takes no argument", c.name)));
    }
    Ok(f)
}

/// A stick-counter fetch's name: whose counter (a slot, `u8::MAX` when the slot is the first
/// argument; or the client's address), which, and the position of its optional table argument.
fn counter_fetch(name: &str) -> Option<(CounterOf, Counter, usize)> {
    let (of, rest, table_arg) = if let Some(rest) = name.strip_prefix("sc_") {
        (CounterOf::Slot(u8::MAX), rest, 1)
    } else if let Some(rest) = name.strip_prefix("src_") {
        (CounterOf::Src, rest, 0)
    } else {
        let slot = name.strip_prefix("sc")?;
        let (digit, rest) = slot.split_at_checked(1)?;
        let n: u8 = digit.parse().ok().filter(|n| *n <= 2)?;
        (CounterOf::Slot(n), rest.strip_prefix('_')?, 0)
    };
    use fulcrum_model::TableData as D;
    let gpc = |n: &str| match n {
        "gpc0" => Some(D::Gpc0),
        "gpc1" => Some(D::Gpc1),
        _ => None,
    };
    let counter = match rest {
        "get_gpt0" => Counter::Read(D::Gpt0),
        "tracked" if matches!(of, CounterOf::Slot(_)) => Counter::Tracked,
        r if r.starts_with("get_") => Counter::Read(gpc(&r[4..])?),
        r if r.starts_with("inc_") => Counter::Inc(gpc(&r[4..])?),
        r if r.starts_with("clr_") => Counter::Clear(gpc(&r[4..])?),
        r => match D::from_name(r) {
            Some(D::Gpc0 | D::Gpc1 | D::Gpt0) | None => return None,
            Some(d) => Counter::Read(d),
        },
    };
    Some((of, counter, table_arg))
}

/// `txn.NAME`, `req.NAME`, `sess.NAME`, `res.NAME`, `proc.NAME`: the scope is kept in the name.
pub(crate) fn var_name(text: &str) -> Result<String, Problem> {
    let scoped = ["txn.", "req.", "res.", "sess.", "proc."].iter().any(|s| text.starts_with(s));
    let name_ok = text
        .split_once('.')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
    if !scoped || !name_ok {
        return Err(Problem::invalid(format!("invalid variable name '{text}'"))
            .hint("a variable is SCOPE.NAME, the scope one of txn, req, res, sess, proc"));
    }
    Ok(text.to_string())
}

fn converter(c: &Call<'_>) -> Result<Converter, Problem> {
    let no_args = |conv: Converter| -> Result<Converter, Problem> {
        if c.args.is_empty() {
            Ok(conv)
        } else {
            Err(Problem::invalid(format!("the converter '{}' takes no argument", c.name)))
        }
    };
    match c.name {
        "lower" => no_args(Converter::Lower),
        "upper" => no_args(Converter::Upper),
        "base64" => no_args(Converter::Base64),
        "b64dec" => no_args(Converter::B64Dec),
        "hex" => no_args(Converter::Hex),
        "length" => no_args(Converter::Length),
        "sdbm" | "djb2" | "crc32" => {
            if !c.args.is_empty() {
                return Err(Problem::unsupported(format!("'{}(AVALANCHE)' is not supported yet", c.name)));
            }
            Ok(match c.name {
                "sdbm" => Converter::Sdbm,
                "djb2" => Converter::Djb2,
                _ => Converter::Crc32,
            })
        }
        "json" => {
            arity(c, 1)?;
            Ok(Converter::Json)
        }
        "field" | "word" => {
            arity(c, 3)?;
            let index = int_arg(c, 0, None)?;
            if index == 0 {
                return Err(Problem::invalid(format!("'{}': the index counts from 1 (or -1 from the end)", c.name)));
            }
            let delims = str_arg(c, 1)?;
            let count = int_arg(c, 2, Some(1))?;
            Ok(if c.name == "field" {
                Converter::Field { index, delims, count }
            } else {
                Converter::Word { index, delims, count }
            })
        }
        "bytes" => {
            arity(c, 2)?;
            let offset = int_arg(c, 0, None)?;
            let length = if c.args.len() > 1 { Some(int_arg(c, 1, None)?) } else { None };
            if offset < 0 || length.is_some_and(|l| l < 0) {
                return Err(Problem::invalid("'bytes': the offset and length cannot be negative"));
            }
            Ok(Converter::Bytes { offset, length })
        }
        "ipmask" => {
            arity(c, 2)?;
            let mask = |i: usize, max: i64, default: i64| -> Result<u8, Problem> {
                let v = int_arg(c, i, Some(default))?;
                u8::try_from(v)
                    .ok()
                    .filter(|v| i64::from(*v) <= max)
                    .ok_or_else(|| Problem::invalid(format!("'ipmask': {v} is not a mask length up to {max}")))
            };
            Ok(Converter::IpMask { v4: mask(0, 32, 32)?, v6: mask(1, 128, 128)? })
        }
        "regsub" => {
            arity(c, 3)?;
            let regex = str_arg(c, 0)?;
            let subst = c.args.get(1).cloned().unwrap_or_default();
            let flags = c.args.get(2).cloned().unwrap_or_default();
            if let Some(bad) = flags.chars().find(|f| !matches!(f, 'g' | 'i')) {
                return Err(Problem::invalid(format!("'regsub': unknown flag '{bad}' (g and i exist)")));
            }
            regex::RegexBuilder::new(&regex)
                .case_insensitive(flags.contains('i'))
                .build()
                .map_err(|e| Problem::invalid(format!("'regsub': invalid regular expression '{regex}': {e}")))?;
            Ok(Converter::Regsub { regex, subst, global: flags.contains('g'), ignore_case: flags.contains('i') })
        }
        "add" | "sub" | "mul" | "div" | "mod" => {
            arity(c, 1)?;
            let arg = str_arg(c, 0)?;
            let n: i64 = arg.trim().parse().map_err(|_| {
                Problem::unsupported(format!("'{}({arg})': only an integer argument is supported yet", c.name))
            })?;
            Ok(match c.name {
                "add" => Converter::Add(n),
                "sub" => Converter::Sub(n),
                "mul" => Converter::Mul(n),
                "div" => Converter::Div(n),
                _ => Converter::Mod(n),
            })
        }
        "concat" => {
            arity(c, 3)?;
            let var = match c.args.get(1).filter(|v| !v.is_empty()) {
                Some(v) => Some(var_name(v)?),
                None => None,
            };
            Ok(Converter::Concat {
                before: c.args.first().cloned().unwrap_or_default(),
                var,
                after: c.args.get(2).cloned().unwrap_or_default(),
            })
        }
        name if name == "map" || name.starts_with("map_") && map_kind(name).is_some() => {
            arity(c, 2)?;
            let kind = map_kind(name).unwrap_or(MapMatch::Str);
            let file = str_arg(c, 0)?;
            let entries = read_map(&file, kind)?;
            Ok(Converter::Map { kind, file, entries, default: c.args.get(1).cloned() })
        }
        other if NOT_YET_CONVERTERS.contains(&other) => {
            Err(Problem::unsupported(format!("the converter '{other}' is not supported yet")))
        }
        name if name == "in_table" || name.starts_with("table_") => {
            use fulcrum_model::rules::TableLookup;
            let what = match name {
                "in_table" => TableLookup::Present,
                "table_server_id" => TableLookup::ServerId,
                "table_get_gpc0" | "table_gpc0" => TableLookup::Data(fulcrum_model::TableData::Gpc0),
                "table_get_gpc1" | "table_gpc1" => TableLookup::Data(fulcrum_model::TableData::Gpc1),
                "table_get_gpt0" | "table_gpt0" => TableLookup::Data(fulcrum_model::TableData::Gpt0),
                other => match fulcrum_model::TableData::from_name(&other["table_".len()..]) {
                    Some(d) => TableLookup::Data(d),
                    None => return Err(Problem::unknown("converter", other, CONVERTERS.iter().copied())),
                },
            };
            arity(c, 1)?;
            Ok(Converter::Table { table: str_arg(c, 0)?, what })
        }
        other => Err(Problem::unknown("converter", other, CONVERTERS.iter().copied())),
    }
}

/// Where a sample is computed: in a request rule, in a response rule (where the request's
/// headers are gone), or anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Request,
    Response,
    /// An ACL, which request and response rules may both use: what it reads is there or not
    /// when it is evaluated (as in HAProxy; `hdr()` is the request's header).
    Any,
}

fn map_kind(name: &str) -> Option<MapMatch> {
    Some(match name {
        "map" | "map_str" => MapMatch::Str,
        "map_beg" => MapMatch::Beg,
        "map_end" => MapMatch::End,
        "map_sub" => MapMatch::Sub,
        "map_dir" => MapMatch::Dir,
        "map_dom" => MapMatch::Dom,
        "map_reg" => MapMatch::Reg,
        "map_ip" => MapMatch::Ip,
        "map_int" => MapMatch::Int,
        _ => return None,
    })
}

/// Map and pattern files larger than this are refused (HAProxy holds them in memory too).
const MAX_LIST_FILE: u64 = 256 << 20;

/// A map or pattern file's text (`what` names it in errors); only a regular file of at most
/// [`MAX_LIST_FILE`] bytes.
pub(crate) fn read_list_file(path: &str, what: &str) -> Result<String, Problem> {
    let meta = std::fs::metadata(path).map_err(|e| Problem::invalid(format!("{what} '{path}': {e}")))?;
    if !meta.is_file() || meta.len() > MAX_LIST_FILE {
        return Err(Problem::invalid(format!("{what} '{path}' is not a regular file of at most 256 MiB")));
    }
    std::fs::read_to_string(path).map_err(|e| Problem::invalid(format!("{what} '{path}': {e}")))
}

/// A line of a map or pattern file as HAProxy reads it: leading blanks stripped, trailing ones
/// kept (but a CR); None for a blank line or a `#` comment.
pub(crate) fn list_line(line: &str) -> Option<&str> {
    let line = line.trim_start_matches([' ', '\t']).trim_end_matches('\r');
    (!line.is_empty() && !line.starts_with('#')).then_some(line)
}

/// A map file: `KEY VALUE` lines (the value is the rest of the line), `#` comments and blank
/// lines skipped; keys checked as the match kind needs (networks, integers, regexes).
pub(crate) fn read_map(path: &str, kind: MapMatch) -> Result<Vec<(String, String)>, Problem> {
    let text = read_list_file(path, "map file")?;
    let mut entries = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let Some(line) = list_line(line) else { continue };
        let (key, value) = match line.split_once([' ', '\t']) {
            Some((k, v)) => (k, v.trim_start_matches([' ', '\t'])),
            None => (line, ""),
        };
        let bad = |why: &str| Problem::invalid(format!("map file '{path}', line {}: '{key}' {why}", n + 1));
        match kind {
            MapMatch::Ip if crate::values::parse_net(key).is_err() => return Err(bad("is not an address or network")),
            MapMatch::Int if key.parse::<i64>().is_err() => return Err(bad("is not an integer")),
            MapMatch::Reg if regex::Regex::new(key).is_err() => return Err(bad("is not a valid regular expression")),
            _ => {}
        }
        entries.push((key.to_string(), value.to_string()));
    }
    Ok(entries)
}

/// Parses a sample expression (a fetch, then converters, separated by commas) for a rule of
/// one direction: `hdr()` is the request's header in request rules and the response's in
/// response rules, and a fetch the direction does not have is an error, as HAProxy reports it.
pub(crate) fn parse_sample_in(text: &str, dir: Dir) -> Result<Sample, Problem> {
    let text = text.trim();
    let words = top_level(text)?;
    let (first, rest) = words.split_first().ok_or_else(|| Problem::invalid("empty sample expression"))?;
    let first_call = call(first.trim())?;
    let mut fetch = fetch(&first_call)?;
    if dir == Dir::Response && matches!(first_call.name, "hdr") {
        if let SampleFetch::ReqHdr { name, occ, .. } = fetch {
            fetch = SampleFetch::ResHdr { name, occ };
        }
    }
    let request_only = fetch.needs_request();
    let response_only = fetch.needs_response();
    if dir == Dir::Response && request_only {
        return Err(Problem::invalid(format!(
            "the sample fetch '{}' needs the request's headers, which response rules do not have",
            first_call.name
        ))
        .hint("keep the value in a variable: http-request set-var(txn.NAME) ..., then %[var(txn.NAME)]"));
    }
    if dir == Dir::Request && response_only {
        return Err(Problem::invalid(format!(
            "the sample fetch '{}' needs the response, which request rules do not have",
            first_call.name
        )));
    }
    let converters = rest.iter().map(|w| call(w.trim()).and_then(|c| converter(&c))).collect::<Result<_, _>>()?;
    Ok(Sample { fetch, converters })
}

/// HAProxy's log-format aliases that make sense in a rule's value, as the samples they are.
fn alias(name: &str) -> Option<SampleFetch> {
    Some(match name {
        "ci" => SampleFetch::Src,
        "cp" => SampleFetch::SrcPort,
        "fi" => SampleFetch::Dst,
        "fp" => SampleFetch::DstPort,
        "f" => SampleFetch::FeName,
        "b" => SampleFetch::BeName,
        "HM" => SampleFetch::Method,
        "HP" => SampleFetch::Path,
        "HQ" => SampleFetch::Query,
        "HU" => SampleFetch::Url,
        "ST" => SampleFetch::Status,
        _ => return None,
    })
}

/// Parses a log-format string (text, `%[SAMPLE]`, `%%`, and the aliases `%ci %cp %fi %fp %f
/// %b %HM %HP %HQ %HU %ST`) for a rule of one direction (see [`parse_sample_in`]).
pub(crate) fn parse_log_format_in(text: &str, dir: Dir) -> Result<LogFormat, Problem> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = text[i..].chars().next().unwrap_or('\0');
        if c != '%' {
            literal.push(c);
            i += c.len_utf8();
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'%') => {
                literal.push('%');
                i += 2;
            }
            Some(b'[') => {
                // The matching ']' outside parentheses.
                let (mut depth, mut end) = (0i32, None);
                let mut j = i + 2;
                while j < bytes.len() {
                    match bytes[j] {
                        b'\\' => j += 1,
                        b'(' => depth += 1,
                        b')' => depth -= 1,
                        b']' if depth <= 0 => {
                            end = Some(j);
                            break;
                        }
                        _ => {}
                    }
                    j += 1;
                }
                let end = end.ok_or_else(|| Problem::invalid(format!("missing ']' after '%[' in '{text}'")))?;
                if !literal.is_empty() {
                    parts.push(FormatPart::Text(std::mem::take(&mut literal)));
                }
                parts.push(FormatPart::Sample(parse_sample_in(&text[i + 2..end], dir)?));
                i = end + 1;
            }
            Some(b'{') => {
                return Err(Problem::unsupported(format!(
                    "log-format flags ('%{{...}}') are not supported yet in '{text}'"
                )))
            }
            _ => {
                let name: String = text[i + 1..].chars().take_while(|c| c.is_ascii_alphabetic()).collect();
                let longest = (1..=name.len()).rev().find_map(|n| alias(&name[..n]).map(|f| (n, f)));
                match longest {
                    Some((n, fetch)) => {
                        if !literal.is_empty() {
                            parts.push(FormatPart::Text(std::mem::take(&mut literal)));
                        }
                        parts.push(FormatPart::Sample(Sample { fetch, converters: Vec::new() }));
                        i += 1 + n;
                    }
                    None if name.is_empty() => {
                        return Err(
                            Problem::invalid(format!("a lone '%' in '{text}'")).hint("write %% for a percent sign")
                        )
                    }
                    None => {
                        return Err(Problem::unsupported(format!(
                            "the log-format alias '%{name}' is not supported in a rule's value yet"
                        ))
                        .hint("use a sample: %[src], %[req.hdr(host)], ..."))
                    }
                }
            }
        }
    }
    if !literal.is_empty() {
        parts.push(FormatPart::Text(literal));
    }
    Ok(LogFormat { parts })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_sample(text: &str) -> Result<Sample, Problem> {
        parse_sample_in(text, Dir::Request)
    }

    fn parse_log_format(text: &str) -> Result<LogFormat, Problem> {
        parse_log_format_in(text, Dir::Request)
    }

    #[test]
    fn expressions() {
        let s = parse_sample("req.hdr(Host),lower,field(1,:)").expect("valid");
        assert_eq!(s.fetch, SampleFetch::ReqHdr { name: "host".into(), occ: -1, full: false });
        assert_eq!(s.converters, vec![Converter::Lower, Converter::Field { index: 1, delims: ":".into(), count: 1 }]);
        let s = parse_sample("src,ipmask(24)").expect("valid");
        assert_eq!(s.converters, vec![Converter::IpMask { v4: 24, v6: 128 }]);
        let s = parse_sample(r"path,regsub(^/api/,/,g)").expect("valid");
        assert!(
            matches!(&s.converters[0], Converter::Regsub { regex, subst, global: true, .. } if regex == "^/api/" && subst == "/")
        );
        let s = parse_sample(r"str(a\,b)").expect("valid");
        assert_eq!(s.fetch, SampleFetch::Str("a,b".into()));
        assert!(parse_sample("path,lowr").is_err_and(|p| p.text().contains("did you mean lower")));
        assert!(parse_sample("req.body").is_err_and(|p| p.text().contains("not supported yet")));
        assert_eq!(
            parse_sample("urlp(id,;)").expect("valid").fetch,
            SampleFetch::UrlParam { name: "id".into(), delim: ';' }
        );
        assert!(parse_sample("req.hdr(host").is_err());
        assert!(parse_sample("path,field(0,/)").is_err());
        assert!(parse_sample("path,regsub([,x)").is_err());
        assert!(parse_sample("var(nope)").is_err());
        assert!(parse_sample("src(1)").is_err());
    }

    #[test]
    fn log_formats() {
        let f = parse_log_format("%[src]:%cp 100%% %[req.hdr(host),lower]").expect("valid");
        assert_eq!(f.parts.len(), 5);
        assert_eq!(f.parts[1], FormatPart::Text(":".into()));
        assert_eq!(f.parts[3], FormatPart::Text(" 100% ".into()));
        assert_eq!(parse_log_format("plain").expect("valid").parts, vec![FormatPart::Text("plain".into())]);
        assert!(parse_log_format("%[src").is_err());
        assert!(parse_log_format("%Tr").is_err_and(|p| p.text().contains("not supported")));
        assert!(parse_log_format("50%").is_err());
        assert!(parse_log_format("%{+Q}o").is_err());
        // Directions: hdr() follows the rule; status only in responses, path only in requests.
        let f = parse_log_format_in("%[hdr(x-a)]", Dir::Response).expect("valid");
        assert!(matches!(&f.parts[0], FormatPart::Sample(s) if matches!(s.fetch, SampleFetch::ResHdr { .. })));
        assert!(parse_log_format_in("%[path]", Dir::Response).is_err());
        assert!(parse_log_format_in("%[req.hdr(x)]", Dir::Response).is_err());
        assert!(parse_log_format("%[status]").is_err());
        assert!(parse_log_format_in("%[status] %[var(txn.x)]", Dir::Response).is_ok());
    }
}
