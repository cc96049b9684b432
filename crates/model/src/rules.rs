//! Sample expressions (a fetch, then converters: `req.hdr(host),lower`), log-format strings
//! (`%[src]` inside text) and the `http-request` / `http-response` rules that use them.
use crate::{Condition, Redirect};

/// Where a value comes from (HAProxy's sample fetches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SampleFetch {
    /// `src`, `src_port`, `dst`, `dst_port`: the client's and the bind's address and port.
    Src,
    SrcPort,
    Dst,
    DstPort,
    /// `method`, `path`, `query` (after `?`, empty when none), `url` (as received), `base`
    /// (Host and path), `req.ver` (`1.1`, `2.0`).
    Method,
    Path,
    Query,
    Url,
    Base,
    ReqVer,
    /// `req.hdr(NAME[,OCC])` / `hdr(...)`: a header's value, the fields of comma lists split;
    /// OCC: the position (1 first, -1 last, the default). `req.fhdr` does not split.
    ReqHdr {
        name: String,
        occ: i64,
        full: bool,
    },
    /// `req.hdr_cnt(NAME)`: how many values.
    ReqHdrCnt(String),
    /// `req.cook(NAME)` / `cook(NAME)`: a request cookie's value.
    ReqCook(String),
    /// `res.cook(NAME)` / `scook(NAME)`: a cookie the response sets (`Set-Cookie`).
    ResCook(String),
    /// `http_auth(USERLIST)`: whether the request's Basic credentials are a user's of the list.
    HttpAuth(String),
    /// `http_auth_group(USERLIST)`: the authenticated user (an ACL matches its groups).
    HttpAuthGroup(String),
    /// `http_auth_user`, `http_auth_pass`, `http_auth_type`: what the Authorization header
    /// says (not checked).
    HttpAuthUser,
    HttpAuthPass,
    HttpAuthType,
    /// `res.hdr(NAME[,OCC])` / `shdr`: a response header (in `http-response` rules).
    ResHdr {
        name: String,
        occ: i64,
    },
    /// `status`: the response's status code.
    Status,
    /// `ssl_fc` (a boolean), `ssl_fc_sni`, `ssl_fc_protocol`, `ssl_fc_alpn`, `ssl_fc_cipher`,
    /// `ssl_c_used` (a boolean), `ssl_c_s_dn`.
    SslFc,
    SslFcSni,
    SslFcProtocol,
    SslFcAlpn,
    SslFcCipher,
    SslCUsed,
    SslCSDn,
    /// `fe_name`, `be_name`.
    FeName,
    BeName,
    /// `env(NAME)`: an environment variable of the process.
    Env(String),
    /// `str(TEXT)`, `int(N)`, `bool(0|1)`: a constant.
    Str(String),
    Int(i64),
    /// `var(txn.NAME)` (also `req.`, `sess.`): a variable set by `set-var`.
    Var(String),
    /// `url_param(NAME[,DELIM])` / `urlp`: a parameter's value (the first), the parameters
    /// starting after DELIM ('?' by default).
    UrlParam {
        name: String,
        delim: char,
    },
    /// `rand([RANGE])`: a random integer below RANGE (2^32 by default).
    Rand(u64),
    /// `uuid([4])`: a random UUID (version 4).
    Uuid,
    /// `date([OFFSET])`: the time, seconds since the epoch, plus OFFSET.
    Date(i64),
    /// `nbsrv([BACKEND])`: the usable servers of a backend (the request's by default).
    NbSrv(Option<String>),
    /// `srv_is_up(BACKEND/SERVER)`: whether the server is up (a boolean).
    SrvIsUp {
        backend: String,
        server: String,
    },
    /// A stick-table counter: of what a `track-sc*` rule tracks in a slot
    /// (`sc_http_req_rate(0)`, `sc0_http_req_rate`), or of the client's address looked up
    /// (`src_http_req_rate`); `table`: another table than the tracked one (or the proxy's own).
    Counter {
        of: CounterOf,
        counter: Counter,
        table: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterOf {
    Slot(u8),
    Src,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// A stored value (`sc0_conn_cur`, `src_http_req_rate`, `sc0_get_gpc0`...).
    Read(crate::TableData),
    /// `sc*_inc_gpc0`/`gpc1` as a fetch: increments, then gives the new value.
    Inc(crate::TableData),
    /// `sc*_clr_gpc0`/`gpc1`: clears, and gives the value it had.
    Clear(crate::TableData),
    /// `sc*_tracked`: whether the slot tracks an entry (a boolean).
    Tracked,
}

impl SampleFetch {
    /// Reads the request's head (not there in response rules).
    pub fn needs_request(&self) -> bool {
        matches!(
            self,
            SampleFetch::Method
                | SampleFetch::Path
                | SampleFetch::Query
                | SampleFetch::Url
                | SampleFetch::Base
                | SampleFetch::ReqVer
                | SampleFetch::ReqHdr { .. }
                | SampleFetch::ReqHdrCnt(_)
                | SampleFetch::ReqCook(_)
                | SampleFetch::HttpAuth(_)
                | SampleFetch::HttpAuthGroup(_)
                | SampleFetch::HttpAuthUser
                | SampleFetch::HttpAuthPass
                | SampleFetch::HttpAuthType
                | SampleFetch::UrlParam { .. }
        )
    }

    /// The userlist the fetch checks credentials against.
    pub fn userlist(&self) -> Option<&str> {
        match self {
            SampleFetch::HttpAuth(l) | SampleFetch::HttpAuthGroup(l) => Some(l),
            _ => None,
        }
    }

    /// Reads the response (only there in response rules).
    pub fn needs_response(&self) -> bool {
        matches!(self, SampleFetch::Status | SampleFetch::ResHdr { .. } | SampleFetch::ResCook(_))
    }

    /// The stick table the fetch reads: `Some(Some(name))`, `Some(None)` for its proxy's own
    /// (`src_*` without a table), None when it reads no table (`sc_*` read what is tracked).
    pub fn table_used(&self) -> Option<Option<&str>> {
        match self {
            SampleFetch::Counter { table: Some(t), .. } => Some(Some(t)),
            SampleFetch::Counter { of: CounterOf::Src, table: None, .. } => Some(None),
            _ => None,
        }
    }
}

impl HttpRule {
    /// The stick tables the rule uses (None: its proxy's own), by `track-sc*` or a fetch.
    pub fn tables_used(&self) -> Vec<Option<&str>> {
        fn format(f: &LogFormat) -> impl Iterator<Item = Option<&str>> {
            f.parts.iter().flat_map(|p| match p {
                FormatPart::Sample(s) => s.tables_used().collect::<Vec<_>>(),
                FormatPart::Text(_) => Vec::new(),
            })
        }
        match &self.action {
            HttpAction::TrackSc { table, .. } => vec![table.as_deref()],
            HttpAction::SetHeader { value, .. } | HttpAction::AddHeader { value, .. } => format(value).collect(),
            HttpAction::Return { body: Some(body), .. } => format(body).collect(),
            HttpAction::SetVar { value, .. } | HttpAction::SetSrc(value) => value.tables_used().collect(),
            _ => Vec::new(),
        }
    }
}

/// What a converter does to the value before it (HAProxy's converters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Converter {
    Lower,
    Upper,
    Base64,
    B64Dec,
    Hex,
    /// `length`: the length of the string.
    Length,
    /// `field(N,DELIMS[,COUNT])`: the Nth field (1-based; negative from the end).
    Field {
        index: i64,
        delims: String,
        count: i64,
    },
    /// `word(N,DELIMS[,COUNT])`: as `field`, empty words skipped.
    Word {
        index: i64,
        delims: String,
        count: i64,
    },
    /// `bytes(OFFSET[,LENGTH])`.
    Bytes {
        offset: i64,
        length: Option<i64>,
    },
    /// `ipmask(V4[,V6])`: the address's network part (lengths).
    IpMask {
        v4: u8,
        v6: u8,
    },
    /// `regsub(REGEX,SUBST[,FLAGS])`: `g` replaces every match, `i` ignores case.
    Regsub {
        regex: String,
        subst: String,
        global: bool,
        ignore_case: bool,
    },
    /// `add(N)`, `sub(N)`, `mul(N)`, `div(N)`, `mod(N)` on an integer value.
    Add(i64),
    Sub(i64),
    Mul(i64),
    Div(i64),
    Mod(i64),
    /// `json([ascii|utf8])`: escaped for a JSON string.
    Json,
    /// `sdbm`, `crc32`, `djb2` hashes (an integer); `[AVALANCHE]` not applied.
    Sdbm,
    Djb2,
    Crc32,
    /// `map(FILE[,DEFAULT])` and its match variants: the value looked up in a map file (read
    /// with the configuration; a reload reads it again), DEFAULT (or nothing) when absent.
    Map {
        kind: MapMatch,
        file: String,
        entries: Vec<(String, String)>,
        default: Option<String>,
    },
    /// `concat([START],[VAR],[END])`: the value, then START, the variable's value and END.
    Concat {
        before: String,
        var: Option<String>,
        after: String,
    },
    /// `in_table(T)`, `table_server_id(T)`, `table_X(T)` (`X` a stored type): the entry of
    /// stick table T whose key is the value.
    Table {
        table: String,
        what: TableLookup,
    },
}

/// What a `table_*` converter reads of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableLookup {
    /// `in_table`: whether the key is there (a boolean).
    Present,
    /// `table_server_id`.
    ServerId,
    /// A stored type (0 when the key is not there).
    Data(crate::TableData),
}

/// How a map's keys match the value (`map_str` is `map`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapMatch {
    Str,
    Beg,
    End,
    Sub,
    Dir,
    Dom,
    Reg,
    Ip,
    Int,
}

/// A fetch and its converters: `req.hdr(host),lower,field(1,:)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub fetch: SampleFetch,
    pub converters: Vec<Converter>,
}

impl Sample {
    /// The stick tables the sample reads (None: its proxy's own): its fetch's, its converters'.
    pub fn tables_used(&self) -> impl Iterator<Item = Option<&str>> {
        let converters = self.converters.iter().filter_map(|c| match c {
            Converter::Table { table, .. } => Some(Some(table.as_str())),
            _ => None,
        });
        self.fetch.table_used().into_iter().chain(converters)
    }
}

/// Text with samples in it (`X-%[src]`), as in `http-request set-header NAME FMT`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogFormat {
    pub parts: Vec<FormatPart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatPart {
    Text(String),
    Sample(Sample),
}

/// What an `http-request` or `http-response` rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpAction {
    /// Stops the evaluation of this section's rules: the message goes on.
    Allow,
    /// Answers with an error page (403 by default; 502 in `http-response`).
    Deny {
        status: u16,
    },
    /// `return [status N] [content-type T] [string S | lf-string FMT]`: a local answer.
    Return {
        status: u16,
        content_type: Option<String>,
        body: Option<LogFormat>,
    },
    /// `redirect ...`, as the `redirect` keyword.
    Redirect(Redirect),
    /// `set-header NAME FMT` (replaces), `add-header NAME FMT` (appends), `del-header NAME`.
    SetHeader {
        name: String,
        value: LogFormat,
    },
    AddHeader {
        name: String,
        value: LogFormat,
    },
    DelHeader {
        name: String,
    },
    /// `replace-header NAME REGEX FMT` (the whole value) and `replace-value` (each
    /// comma-separated value).
    ReplaceHeader {
        name: String,
        regex: String,
        replacement: LogFormat,
        each_value: bool,
    },
    /// `set-path FMT`, `set-query FMT`, `set-uri FMT`, `set-method FMT`.
    SetPath(LogFormat),
    SetQuery(LogFormat),
    SetUri(LogFormat),
    SetMethod(LogFormat),
    /// `replace-path REGEX FMT`.
    ReplacePath {
        regex: String,
        replacement: LogFormat,
    },
    /// `set-var(SCOPE.NAME) SAMPLE` / `unset-var(SCOPE.NAME)`.
    SetVar {
        name: String,
        value: Sample,
    },
    UnsetVar {
        name: String,
    },
    /// `set-status N [reason R]` (`http-response`).
    SetStatus {
        status: u16,
        reason: Option<String>,
    },
    /// `track-sc0|1|2 KEY [table T]`: the transaction counts in the table's entry for KEY.
    TrackSc {
        slot: u8,
        key: Sample,
        table: Option<String>,
    },
    /// `sc-inc-gpc0(N)`, `sc-inc-gpc1(N)` (`gpc`: 0 or 1).
    ScIncGpc {
        slot: u8,
        gpc: u8,
    },
    /// `sc-set-gpt0(N) VALUE`.
    ScSetGpt0 {
        slot: u8,
        value: i64,
    },
    /// `tarpit [deny_status N]`: the request is held (`timeout tarpit`), then answered N (500).
    Tarpit {
        status: u16,
    },
    /// `set-src EXPR`: the client's address from now on (a trusted proxy's header).
    SetSrc(Sample),
    /// `auth [realm R]`: a 401 asking for Basic credentials (the realm: R, else the
    /// section's name).
    Auth {
        realm: Option<String>,
    },
}

/// `http-request ACTION ... [if|unless COND]` or `http-response ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRule {
    pub action: HttpAction,
    pub condition: Option<Condition>,
}
