//! The Model: one typed, validated description of what fulcrum runs. Every front-end (TOML,
//! haproxy.cfg, keepalived.conf, later the API) produces one of these; every runtime (the
//! proxy, the health checks, VRRP) consumes it and never sees a parser. Plain data: no I/O,
//! no parsing, no dependency.
#![forbid(unsafe_code)]

pub mod rules;
pub mod tls;
pub mod vrrp;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use tls::{CertSource, ClientVerify, ServerTls, SniSource, TlsBind, TlsVersion};
pub use vrrp::{Tracked, Vip, Vrrp, VrrpInstance, VrrpScript, VrrpState, VrrpSyncGroup};

/// Where a Model object came from, for messages at run time ("backend app (haproxy.cfg:12)").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Model {
    pub global: Global,
    pub frontends: Vec<Frontend>,
    pub backends: Vec<Backend>,
    /// VRRP instances, scripts and sync groups (keepalived.conf, or `[vrrp]` in TOML).
    pub vrrp: vrrp::Vrrp,
    /// `peers` sections: the nodes that share stick tables.
    pub peers: Vec<Peers>,
    /// `userlist` sections: users and groups for `http-request auth` and `http_auth*`.
    pub userlists: Vec<Userlist>,
}

/// A `userlist` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Userlist {
    pub name: String,
    pub users: Vec<User>,
}

/// A `user` line (its groups gathered from its own `groups` and the `group ... users` lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub password: Password,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Password {
    /// `password HASH`: a crypt(3) hash (`$6$...`, `$5$...`, `$1$...`, `$2b$...`, DES).
    Hashed(String),
    /// `insecure-password TEXT`.
    Plain(String),
}

impl Userlist {
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }
}

/// A `peers` section: the processes (this one among them) that keep the stick tables naming
/// it in step, over HAProxy's peers protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct Peers {
    pub name: String,
    pub origin: Origin,
    /// Every peer, this process's own included (the one named like the local peer: `-L`,
    /// `localpeer`, else the host name). A peer without an address is the local one of a
    /// section that listens on `bind`.
    pub peers: Vec<Peer>,
    /// `bind ADDR:PORT`: where the local peer listens, when its `server` line has no address.
    pub bind: Option<SocketAddr>,
    /// `table NAME type ...` lines: tables the section declares itself (called `SECTION/NAME`
    /// in rules, `/NAME` on the wire).
    pub tables: Vec<(String, StickTable)>,
    /// `disabled`: the section does not sync.
    pub disabled: bool,
}

/// One `peer NAME ADDR:PORT` (or `server NAME [ADDR:PORT]`) line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub addr: Option<SocketAddr>,
    pub line: usize,
}

impl Peers {
    /// The address the peer named `local` listens on, if it is one of the section's.
    pub fn listen_addr(&self, local: &str) -> Option<SocketAddr> {
        let me = self.peers.iter().find(|p| p.name == local)?;
        me.addr.or(self.bind)
    }
}

impl Model {
    pub fn backend(&self, name: &str) -> Option<&Backend> {
        self.backends.iter().find(|b| b.name == name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Global {
    /// Process-wide connection limit (`global maxconn`).
    pub maxconn: u32,
    /// Worker threads (`nbthread`); None: one per CPU.
    pub nbthread: Option<usize>,
    /// Access log destination; None: standard error.
    pub access_log: Option<PathBuf>,
    /// How long a graceful stop waits for in-flight requests (`hard-stop-after`).
    pub hard_stop_after: Duration,
    /// `tune.bufsize`: a message head must fit in it, less `maxrewrite` (16384).
    pub bufsize: usize,
    /// `tune.maxrewrite`: the part of the buffer kept for rewriting a head (1024).
    pub maxrewrite: usize,
    /// `tune.http.maxhdr`: the most header fields a message may have (101).
    pub max_headers: usize,
    /// IPVS's connection timeouts (`ipvsadm --set tcp tcpfin udp`), for LVS virtual services.
    pub ipvs_timeouts: IpvsTimeouts,
    /// The control socket (`fulcrum ctl`): haproxy.cfg `stats socket PATH`, TOML
    /// `control_socket`; None: the default, /run/fulcrum/fulcrum.sock.
    pub control_socket: Option<PathBuf>,
    /// `tune.ssl.cachesize`: TLS sessions kept for resumption by session ID, per bind (20000).
    pub tls_cache_size: usize,
    /// HTTP/2 settings offered to clients (`tune.h2.*`).
    pub h2: H2Settings,
    /// The name of this process among its peers (`localpeer`, or HAProxy's `-L`); None: the
    /// host name.
    pub local_peer: Option<String>,
}

/// `tune.h2.*`: what fulcrum announces to HTTP/2 clients, HAProxy's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H2Settings {
    /// `tune.h2.max-concurrent-streams` (100).
    pub max_concurrent_streams: u32,
    /// `tune.h2.header-table-size` (4096).
    pub header_table_size: u32,
    /// `tune.h2.initial-window-size` (65535).
    pub initial_window_size: u32,
    /// `tune.h2.max-frame-size` (16384).
    pub max_frame_size: u32,
}

impl Default for H2Settings {
    fn default() -> Self {
        H2Settings {
            max_concurrent_streams: 100,
            header_table_size: 4096,
            initial_window_size: 65_535,
            max_frame_size: 16_384,
        }
    }
}

/// `ipvsadm --set tcp tcpfin udp`: how long an idle established TCP connection, a half-closed
/// one, and a UDP flow live (the kernel's defaults: 900, 120, 300 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpvsTimeouts {
    pub tcp: Duration,
    pub tcpfin: Duration,
    pub udp: Duration,
}

impl Default for IpvsTimeouts {
    fn default() -> Self {
        IpvsTimeouts { tcp: Duration::from_secs(900), tcpfin: Duration::from_secs(120), udp: UDP_IDLE }
    }
}

impl Global {
    /// The largest request or response head accepted: `bufsize - maxrewrite`, as in HAProxy.
    pub fn max_head(&self) -> usize {
        self.bufsize.saturating_sub(self.maxrewrite)
    }
}

impl Default for Global {
    fn default() -> Self {
        Global {
            maxconn: 4096,
            nbthread: None,
            access_log: None,
            hard_stop_after: Duration::from_secs(30),
            bufsize: 16384,
            maxrewrite: 1024,
            max_headers: 101,
            ipvs_timeouts: IpvsTimeouts::default(),
            control_socket: None,
            tls_cache_size: 20_000,
            h2: H2Settings::default(),
            local_peer: None,
        }
    }
}

/// What a proxy carries: HTTP (requests are read, routed and rewritten), TCP (connections
/// are relayed as byte streams) or UDP (datagrams relayed per client flow). haproxy.cfg's
/// default is tcp, as in HAProxy; TOML's http; keepalived.conf's what `protocol` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Http,
    Tcp,
    Udp,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Http => "http",
            Mode::Tcp => "tcp",
            Mode::Udp => "udp",
        }
    }
}

/// IPVS's idle timeout of a UDP flow (`ipvsadm --set` udp 300), fulcrum's default for a UDP
/// frontend.
pub const UDP_IDLE: Duration = Duration::from_secs(300);

/// How connections are handled around a transaction (`option http-keep-alive`,
/// `option http-server-close`, `option httpclose`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnMode {
    #[default]
    KeepAlive,
    /// Client side kept alive, server side closed after each response.
    ServerClose,
    /// Both sides closed after each response.
    Close,
}

/// `http-reuse never|safe|aggressive|always`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpReuse {
    Never,
    #[default]
    Safe,
    Aggressive,
    Always,
}

/// `option forwardfor [header NAME] [if-none] [except NETWORK]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardFor {
    pub header: String,
    pub if_none: bool,
    /// `except NETWORK`: no header for clients in this network, as `ADDR/LEN` (validated at
    /// load time; e.g. `127.0.0.0/8`).
    pub except: Option<String>,
}

impl Default for ForwardFor {
    fn default() -> Self {
        ForwardFor { header: "X-Forwarded-For".into(), if_none: false, except: None }
    }
}

/// An `errorfile CODE FILE`: the raw HTTP response HAProxy would send, read at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFile {
    pub path: PathBuf,
    pub content: Vec<u8>,
}

/// `stats ...` settings of a frontend/listen.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stats {
    pub uri: String,
    /// `stats auth USER:PASS` (several allowed).
    pub auth: Vec<(String, String)>,
    pub realm: Option<String>,
    pub refresh: Option<Duration>,
    pub hide_version: bool,
    /// `stats show-node [NAME]`: Some("") means the host name.
    pub show_node: Option<String>,
    /// `stats admin if TRUE` (or a condition that always holds): admin for everyone allowed in.
    pub admin: bool,
    /// `stats admin if|unless COND` with a real condition (on the frontend's ACLs): admin only
    /// when it holds. `admin` stays false then, so ignoring this field fails closed.
    pub admin_if: Option<Condition>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Frontend {
    pub name: String,
    pub origin: Origin,
    pub mode: Mode,
    pub binds: Vec<SocketAddr>,
    pub maxconn: Option<u32>,
    pub default_backend: Option<String>,
    pub acls: Vec<Acl>,
    pub use_backends: Vec<UseBackend>,
    pub timeout_client: Duration,
    pub timeout_http_request: Duration,
    pub timeout_http_keep_alive: Duration,
    /// `timeout tarpit` (else `timeout connect`): how long `http-request tarpit` holds a request.
    pub timeout_tarpit: Option<Duration>,
    /// Largest request body accepted, in bytes (TOML `max_request_body`); larger → 413.
    /// haproxy.cfg has no such limit, as in HAProxy.
    pub max_request_body: Option<u64>,
    pub forwardfor: Option<ForwardFor>,
    pub conn_mode: ConnMode,
    /// Log one line per request (`option httplog` or a `log` line in effect).
    pub httplog: bool,
    pub dontlognull: bool,
    pub errorfiles: BTreeMap<u16, ErrorFile>,
    pub stats: Option<Stats>,
    /// `tcp-request` rules (`mode tcp`).
    pub tcp_request: TcpRequest,
    /// Bind addresses with `accept-proxy`: each connection starts with a PROXY protocol
    /// header (v1 or v2), whose source address stands for the client's.
    pub accept_proxy: Vec<SocketAddr>,
    /// `timeout client-fin`: once the server has closed its side, how long the client may stay
    /// silent (None: the tunnel's timeout).
    pub timeout_client_fin: Option<Duration>,
    /// Bind lines with TLS (`bind ... ssl crt ...`); the other binds are plain.
    pub tls: Vec<TlsBind>,
    /// `redirect` rules, in order: the first whose condition holds answers the request.
    /// `http-request` rules, in order (after the head is read, before `redirect` and
    /// `use_backend`).
    pub http_request: Vec<rules::HttpRule>,
    /// A `stick-table` declared in a frontend section (tracking, rate limiting).
    pub table: Option<StickTable>,
    /// `monitor-uri URI`: answered 200 here (503 when a `monitor fail` condition holds).
    pub monitor_uri: Option<String>,
    /// `monitor fail if|unless COND`.
    pub monitor_fail: Vec<Condition>,
    /// `http-response` rules, in order (after the backend's).
    pub http_response: Vec<rules::HttpRule>,
    /// `http-after-response` rules: on every answer, the proxy's own too (after the
    /// `http-response` rules).
    pub http_after_response: Vec<rules::HttpRule>,
    pub redirects: Vec<Redirect>,
    /// Bind addresses with `proto h2`: clients speak HTTP/2 from the first byte (cleartext
    /// prior knowledge; on a TLS bind, whatever ALPN says).
    pub h2_binds: Vec<SocketAddr>,
}

/// `redirect location|prefix|scheme VALUE [code N] [drop-query] [append-slash]
/// [set-cookie NAME[=VALUE]] [clear-cookie NAME[=]] [if|unless COND]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub kind: RedirectKind,
    pub value: String,
    /// 301, 302 (the default), 303, 307 or 308.
    pub code: u16,
    pub drop_query: bool,
    pub append_slash: bool,
    /// `Set-Cookie` sent with the redirect (`set-cookie NAME=VALUE`, or a `clear-cookie`
    /// turned into an expired one).
    pub cookie: Option<String>,
    pub condition: Option<Condition>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectKind {
    /// The Location is the value as written.
    Location,
    /// The value, then the request's path (and query unless `drop-query`).
    Prefix,
    /// `VALUE://` + the request's Host + its path (and query).
    Scheme,
}

impl Frontend {
    pub fn new(name: impl Into<String>) -> Self {
        Frontend {
            name: name.into(),
            origin: Origin::default(),
            mode: Mode::Http,
            binds: Vec::new(),
            maxconn: None,
            default_backend: None,
            acls: Vec::new(),
            use_backends: Vec::new(),
            timeout_client: Duration::from_secs(50),
            timeout_http_request: Duration::from_secs(10),
            timeout_http_keep_alive: Duration::from_secs(10),
            timeout_tarpit: None,
            max_request_body: None,
            forwardfor: None,
            conn_mode: ConnMode::KeepAlive,
            httplog: false,
            dontlognull: false,
            errorfiles: BTreeMap::new(),
            stats: None,
            tcp_request: TcpRequest::default(),
            accept_proxy: Vec::new(),
            timeout_client_fin: None,
            tls: Vec::new(),
            redirects: Vec::new(),
            http_request: Vec::new(),
            http_response: Vec::new(),
            http_after_response: Vec::new(),
            table: None,
            monitor_uri: None,
            monitor_fail: Vec::new(),
            h2_binds: Vec::new(),
        }
    }
}

/// What an ACL fetches from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetch {
    Path,
    /// A request header by name (lower-case), e.g. `hdr(host)`.
    Header(String),
    Method,
    /// The client's address.
    Src,
    /// `req.ssl_sni`: the server name of a TLS ClientHello at the start of a `mode tcp`
    /// connection (read, not terminated).
    ReqSslSni,
    /// `req.ssl_hello_type`: the handshake type of the first TLS record (1: ClientHello).
    ReqSslHelloType,
    /// `ssl_fc`: the connection came over TLS fulcrum terminated (a boolean).
    SslFc,
    /// `ssl_fc_sni`: the server name the client asked for in its TLS handshake.
    SslFcSni,
    /// `ssl_fc_protocol`: `TLSv1.2`, `TLSv1.3`.
    SslFcProtocol,
    /// `ssl_fc_alpn`: the protocol agreed by ALPN.
    SslFcAlpn,
    /// `ssl_fc_cipher`: the cipher suite, OpenSSL's name.
    SslFcCipher,
    /// `ssl_c_used`: the client presented a certificate (a boolean).
    SslCUsed,
    /// `ssl_c_verify`: the client certificate's verification result: 0 when it passed (a
    /// failed one ends the handshake, so 0 is the only value a request sees).
    SslCVerify,
    /// `ssl_c_s_dn`: the client certificate's subject (`/C=FR/O=Example/CN=client`).
    SslCSDn,
    /// Any other sample expression (a fetch and converters: `url_beg`, `hdr_cnt(host)`,
    /// `req.hdr(host),lower`, `dst_port`, `var(txn.x)`, ...), computed by the rules' engine.
    Sample(rules::Sample),
}

impl Fetch {
    /// Whether the fetch needs an HTTP request (`mode http`).
    pub fn needs_http(&self) -> bool {
        match self {
            Fetch::Path | Fetch::Header(_) | Fetch::Method => true,
            Fetch::Sample(s) => s.fetch.needs_request() || s.fetch.needs_response(),
            _ => false,
        }
    }

    /// Whether the fetch reads what a terminated TLS connection negotiated.
    pub fn needs_tls(&self) -> bool {
        matches!(
            self,
            Fetch::SslFc
                | Fetch::SslFcSni
                | Fetch::SslFcProtocol
                | Fetch::SslFcAlpn
                | Fetch::SslFcCipher
                | Fetch::SslCUsed
                | Fetch::SslCVerify
                | Fetch::SslCSDn
        )
    }

    /// Whether the fetch reads the first bytes of a `mode tcp` connection.
    pub fn needs_payload(&self) -> bool {
        matches!(self, Fetch::ReqSslSni | Fetch::ReqSslHelloType)
    }
}

/// How the fetched value is compared with the patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    Exact,
    Prefix,
    Suffix,
    Substring,
    /// Patterns are regular expressions (validated at load time).
    Regex,
    /// Patterns are addresses or CIDR networks (validated at load time).
    Ip,
    /// A boolean fetch (`ssl_fc`): true matches; no patterns.
    Bool,
    /// `-m found`: the fetch finds a value; no patterns.
    Found,
    /// `-m int`: the value as an integer within one of the patterns, each `LO:HI` (either end
    /// open; `gt 10` is `11:`).
    Int,
    /// `-m len`: the value's length within one of the patterns (as `Int`).
    Len,
    /// `-m dom` / `-m dir`: the pattern found as whole dot- or slash-delimited words.
    Dom,
    Dir,
}

/// `acl NAME CRITERION [-i] PATTERN...`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    pub name: String,
    pub fetch: Fetch,
    pub kind: MatchKind,
    pub patterns: Vec<String>,
    pub ignore_case: bool,
}

/// One ACL reference in a condition, possibly negated (`!is_api`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclTerm {
    pub negate: bool,
    /// Name of an ACL of the frontend (anonymous `{ ... }` ACLs get a generated name).
    pub acl: String,
}

/// `if|unless` followed by terms; `or`/`||` separates alternatives, terms in one alternative
/// are ANDed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub unless: bool,
    pub alternatives: Vec<Vec<AclTerm>>,
}

/// The PROXY protocol's version: v1 (text) or v2 (binary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyVersion {
    V1,
    V2,
}

/// `tcp-request connection|content ACTION [if|unless COND]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpRule {
    pub action: TcpAction,
    /// None: always.
    pub condition: Option<Condition>,
}

/// What a `tcp-request` rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpAction {
    /// `accept`: the rules stop, the connection goes on.
    Accept,
    /// `reject`: the connection is closed.
    Reject,
    /// `track-sc0|1|2 KEY [table T]`: the connection (or, in `content` rules, the request)
    /// counts in the table's entry for KEY.
    TrackSc { slot: u8, key: rules::Sample, table: Option<String> },
    /// `sc-inc-gpc0(N)`, `sc-inc-gpc1(N)`.
    ScIncGpc { slot: u8, gpc: u8 },
    /// `sc-set-gpt0(N) VALUE`.
    ScSetGpt0 { slot: u8, value: i64 },
}

/// A `mode tcp` frontend's `tcp-request` rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TcpRequest {
    /// `tcp-request inspect-delay`: how long content rules and payload fetches
    /// (`req.ssl_sni`) may wait for the client's first bytes. None: they do not wait.
    pub inspect_delay: Option<Duration>,
    /// `tcp-request connection ...`: at accept, on the client's address only.
    pub connection: Vec<TcpRule>,
    /// `tcp-request content ...`: once the first bytes are in (or the delay is over).
    pub content: Vec<TcpRule>,
}

/// `use_backend NAME if|unless COND`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseBackend {
    /// The backend's name (as written, for a dynamic one).
    pub backend: String,
    pub condition: Condition,
    /// `use_backend %[...]`: the name computed per request (a name no backend has sends the
    /// request to the default backend, as in HAProxy).
    pub dynamic: Option<rules::LogFormat>,
}

/// `http-check expect [!] status|rstatus|string|rstring PATTERN`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub negate: bool,
    pub rule: ExpectRule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectRule {
    /// Status codes; HAProxy allows a single code or a list/ranges like `200-399`.
    Status(Vec<(u16, u16)>),
    StatusRegex(String),
    String(String),
    BodyRegex(String),
}

/// `option httpchk [METHOD URI [VERSION]]` and `http-check expect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    pub method: String,
    pub uri: String,
    pub version: String,
    /// Extra header lines HAProxy users smuggle in the version (`HTTP/1.1\r\nHost:\ x`).
    pub headers: Vec<(String, String)>,
    /// None: 2xx and 3xx pass, as in HAProxy.
    pub expect: Option<Expect>,
}

impl Default for HttpCheck {
    fn default() -> Self {
        HttpCheck {
            method: "OPTIONS".into(),
            uri: "/".into(),
            version: "HTTP/1.0".into(),
            headers: Vec::new(),
            expect: None,
        }
    }
}

/// `option tcp-check` and its `tcp-check` rules, or one of HAProxy's protocol checks
/// (`option mysql-check`, `pgsql-check`, `redis-check`, `smtpchk`, `ldap-check`,
/// `ssl-hello-chk`), each speaking its protocol as HAProxy 2.6 does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpCheck {
    /// `option tcp-check`: the rules in order (none: a connection, as a plain `check`).
    Rules(Vec<TcpCheckRule>),
    /// `option mysql-check [user U [post-41|pre-41]]`.
    Mysql {
        user: Option<String>,
        post41: bool,
    },
    /// `option pgsql-check user U`.
    Pgsql {
        user: String,
    },
    Redis,
    /// `option smtpchk [EHLO|HELO DOMAIN]`: the command sent after the banner.
    Smtp {
        command: String,
    },
    Ldap,
    SslHello,
}

/// One `tcp-check` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpCheckRule {
    /// `tcp-check connect [port N] [addr A] [send-proxy] [linger]`.
    Connect {
        port: Option<u16>,
        addr: Option<std::net::IpAddr>,
        send_proxy: bool,
        /// `ssl`: the connection speaks TLS (with the server's TLS settings).
        ssl: bool,
        /// `sni NAME`: the server name the TLS connection presents.
        sni: Option<String>,
        comment: Option<String>,
    },
    /// `tcp-check send STRING` / `send-binary HEX`.
    Send { data: Vec<u8>, comment: Option<String> },
    /// `tcp-check expect [min-recv N] [!] string|binary|rstring|rbinary PATTERN`.
    Expect { negate: bool, pattern: TcpExpect, min_recv: Option<usize>, comment: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpExpect {
    String(Vec<u8>),
    Binary(Vec<u8>),
    /// A regular expression over the bytes received (validated at load time).
    Rstring(String),
    /// A regular expression over the upper-case hex of the bytes received.
    Rbinary(String),
}

/// `observe layer4|layer7`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observe {
    Layer4,
    Layer7,
}

/// `on-error fastinter|fail-check|sudden-death|mark-down`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    FastInter,
    #[default]
    FailCheck,
    SuddenDeath,
    MarkDown,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub name: String,
    /// `id N`: the server's number (stick tables store it; peers exchange it). None: the
    /// lowest number no other server of the backend has, in declaration order
    /// ([`Backend::server_ids`]).
    pub id: Option<u32>,
    pub origin: Origin,
    pub addr: SocketAddr,
    pub check: bool,
    /// `port`/`addr` for checks when they differ from the traffic address.
    pub check_addr: Option<SocketAddr>,
    pub inter: Duration,
    pub fastinter: Option<Duration>,
    pub downinter: Option<Duration>,
    pub rise: u32,
    pub fall: u32,
    /// 0..=256, HAProxy's range; 0 means "never picked by the scheduler".
    pub weight: u32,
    pub backup: bool,
    /// 0: unlimited.
    pub maxconn: u32,
    /// 0: unlimited.
    pub maxqueue: u32,
    pub disabled: bool,
    pub slowstart: Option<Duration>,
    pub observe: Option<Observe>,
    pub error_limit: u32,
    pub on_error: OnError,
    /// `cookie VALUE` for cookie persistence.
    pub cookie: Option<String>,
    /// `send-proxy` / `send-proxy-v2`: a PROXY protocol header opens each new connection.
    pub send_proxy: Option<ProxyVersion>,
    /// The forwarding method an LVS service gave this server (ipvsadm `-g/-m/-i`, keepalived
    /// `lvs_method`); None: the service's. Listed, not acted on: a proxy forwards alike.
    pub forward: Option<LvsMethod>,
    /// IPVS connection thresholds (ipvsadm `-x`/`-y`, keepalived `uthreshold`/`lthreshold`;
    /// 0: none): at `upper` connections the server takes no new ones until it falls below
    /// `lower` (without one, below ¾ of `upper`).
    pub upper_threshold: u32,
    pub lower_threshold: u32,
    /// keepalived's checkers for this server (`real_server { TCP_CHECK {...} ... }`): when
    /// present they replace the backend's check; the server is up while every one passes.
    pub checkers: Vec<Checker>,
    /// Starts down until its checks pass (keepalived `alpha`).
    pub start_down: bool,
    /// Scripts run when the server goes up / down (keepalived `notify_up`/`notify_down`).
    pub notify_up: Option<String>,
    pub notify_down: Option<String>,
    /// TLS to the server (`ssl`, `verify`, `ca-file`, `sni`...).
    pub tls: ServerTls,
    /// `proto h2`: the server speaks HTTP/2 (gRPC); HTTP/2 clients' streams are multiplexed
    /// over one connection per server and worker.
    pub h2: bool,
}

impl Server {
    pub fn new(name: impl Into<String>, addr: SocketAddr) -> Self {
        Server {
            name: name.into(),
            id: None,
            origin: Origin::default(),
            addr,
            check: false,
            check_addr: None,
            inter: Duration::from_secs(2),
            fastinter: None,
            downinter: None,
            rise: 2,
            fall: 3,
            weight: 1,
            backup: false,
            maxconn: 0,
            maxqueue: 0,
            disabled: false,
            slowstart: None,
            observe: None,
            error_limit: 10,
            on_error: OnError::FailCheck,
            cookie: None,
            send_proxy: None,
            forward: None,
            upper_threshold: 0,
            lower_threshold: 0,
            checkers: Vec::new(),
            start_down: false,
            notify_up: None,
            notify_down: None,
            tls: ServerTls::default(),
            h2: false,
        }
    }

    /// The server's address for a connection that came to `destination`: a server without a
    /// port (port 0) gets the port the client connected to, as HAProxy and LVS fwmark services do.
    pub fn addr_for(&self, destination: SocketAddr) -> SocketAddr {
        if self.addr.port() == 0 {
            SocketAddr::new(self.addr.ip(), destination.port())
        } else {
            self.addr
        }
    }
}

/// One keepalived checker of a real server, with its own timing.
#[derive(Debug, Clone, PartialEq)]
pub struct Checker {
    pub kind: CheckerKind,
    /// `connect_ip`/`connect_port`: where the check goes (default: the server's address; a
    /// server without a port needs `connect_port`).
    pub target: SocketAddr,
    /// `bindto`/`bind_port`: the local address checks come from.
    pub bind: Option<SocketAddr>,
    /// `connect_timeout` (keepalived's default: 5 s).
    pub timeout: Duration,
    /// `delay_loop` of the checker or its virtual_server (default 60 s).
    pub interval: Duration,
    /// `retry` (`nb_get_retry`): failures after the first before the server goes down.
    pub retry: u32,
    /// `delay_before_retry`: the pause before a retry (default 1 s).
    pub delay_before_retry: Duration,
    /// `warmup`: the first check comes at a random time within it (default: `delay_loop`).
    pub warmup: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckerKind {
    /// `TCP_CHECK`: the connection is accepted.
    Tcp,
    /// `HTTP_GET` / `SSL_GET` (`tls`): every url answers as it says.
    HttpGet { tls: bool, urls: Vec<UrlCheck>, virtualhost: Option<String>, sni: bool },
    /// `MISC_CHECK`: a program's exit status (0 up; with `dynamic`, 2–255 also set the
    /// weight to status − 2).
    Misc { path: String, timeout: Option<Duration>, dynamic: bool, user: Option<String> },
    /// `DNS_CHECK`: a query for `name` of `kind` (A, AAAA, ...) gets an answer.
    Dns { kind: String, name: String },
}

/// One `url { path ... digest ... status_code ... }` of an HTTP_GET/SSL_GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlCheck {
    pub path: String,
    /// keepalived's genhash: the MD5 of the body, lower-case hex.
    pub digest: Option<String>,
    /// Accepted statuses (ranges); empty with no digest: 2xx, keepalived's default.
    pub status: Vec<(u16, u16)>,
    pub virtualhost: Option<String>,
}

/// `cookie NAME insert|prefix|rewrite [indirect] [nocache] [httponly] [secure] ...`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    pub name: String,
    pub mode: CookieMode,
    pub indirect: bool,
    pub nocache: bool,
    pub httponly: bool,
    pub secure: bool,
    /// `domain D` (several: all of them on the one cookie, as HAProxy writes them).
    pub domains: Vec<String>,
    /// `preserve`: keep a cookie the server set itself instead of overwriting it.
    pub preserve: bool,
    /// `postonly`: the cookie is set only in answers to POST requests.
    pub postonly: bool,
    /// `maxidle T`, `maxlife T`: the cookie carries its last-seen (and first) date; one idle
    /// or old beyond these is ignored.
    pub maxidle: Option<Duration>,
    pub maxlife: Option<Duration>,
    /// `dynamic`: servers without `cookie` get one made from `dynamic-cookie-key`, their
    /// address and port (HAProxy's XXH64 value, the same on every node).
    pub dynamic: bool,
    /// `attr A`: more attributes for the Set-Cookie (`SameSite=Lax`).
    pub attrs: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieMode {
    Insert,
    Prefix,
    Rewrite,
    /// No mode: the cookie (set by the application to a server's value) is only read.
    Passive,
}

/// `force-persist` (true) or `ignore-persist` (false) `if|unless COND`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistRule {
    pub force: bool,
    pub condition: Condition,
}

/// `stick-table type ip|ipv6|integer|string [len N] size N [expire T] [store ...]`: with
/// `stick on src` it keeps clients on their server; with `store` it keeps counters that
/// `track-sc*` rules feed and `sc_*`/`src_*` fetches read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickTable {
    pub size: usize,
    pub expire: Duration,
    pub key: TableKey,
    /// What each entry stores besides a server.
    pub store: Vec<TableStore>,
    /// `peers NAME`: the section whose peers share the table.
    pub peers: Option<String>,
}

impl StickTable {
    /// A table keyed by the client address, storing nothing else (`stick on src`).
    pub fn ip(size: usize, expire: Duration) -> StickTable {
        StickTable { size, expire, key: TableKey::Ip, store: Vec::new(), peers: None }
    }
}

/// A stick table's key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKey {
    Ip,
    Ipv6,
    Integer,
    /// Strings cut at `len` bytes (HAProxy's default: 32).
    String {
        len: usize,
    },
}

/// A `stick` rule: where a key comes from, which table holds it, and when it applies.
#[derive(Debug, Clone, PartialEq)]
pub struct StickRule {
    pub kind: StickKind,
    pub sample: rules::Sample,
    /// Another proxy's table (`table NAME`); None: the backend's own.
    pub table: Option<String>,
    pub condition: Option<Condition>,
}

/// What a `stick` rule does with its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StickKind {
    /// `stick on`: `match`, then `store-request`.
    On,
    /// `stick match`: a request whose key is in the table goes to the server stored there.
    Match,
    /// `stick store-request`: the request's key is stored with the server that serves it.
    StoreRequest,
    /// `stick store-response`: the key is read from the response (`res.cook(...)`).
    StoreResponse,
}

impl StickKind {
    pub fn matches(self) -> bool {
        matches!(self, StickKind::On | StickKind::Match)
    }

    pub fn stores_request(self) -> bool {
        matches!(self, StickKind::On | StickKind::StoreRequest)
    }
}

/// One `store` item of a stick table: a data type, and a rate's period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableStore {
    pub data: TableData,
    /// The period of a rate (`http_req_rate(10s)`); None for the others.
    pub period: Option<Duration>,
}

/// The data types a stick table stores besides a server, as HAProxy names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableData {
    ConnCnt,
    ConnCur,
    ConnRate,
    SessCnt,
    SessRate,
    HttpReqCnt,
    HttpReqRate,
    HttpErrCnt,
    HttpErrRate,
    Gpc0,
    Gpc0Rate,
    Gpc1,
    Gpc1Rate,
    Gpt0,
}

impl TableData {
    pub const ALL: [TableData; 14] = [
        TableData::ConnCnt,
        TableData::ConnCur,
        TableData::ConnRate,
        TableData::SessCnt,
        TableData::SessRate,
        TableData::HttpReqCnt,
        TableData::HttpReqRate,
        TableData::HttpErrCnt,
        TableData::HttpErrRate,
        TableData::Gpc0,
        TableData::Gpc0Rate,
        TableData::Gpc1,
        TableData::Gpc1Rate,
        TableData::Gpt0,
    ];

    /// HAProxy's name (`store` items, `show table` columns).
    pub fn name(self) -> &'static str {
        match self {
            TableData::ConnCnt => "conn_cnt",
            TableData::ConnCur => "conn_cur",
            TableData::ConnRate => "conn_rate",
            TableData::SessCnt => "sess_cnt",
            TableData::SessRate => "sess_rate",
            TableData::HttpReqCnt => "http_req_cnt",
            TableData::HttpReqRate => "http_req_rate",
            TableData::HttpErrCnt => "http_err_cnt",
            TableData::HttpErrRate => "http_err_rate",
            TableData::Gpc0 => "gpc0",
            TableData::Gpc0Rate => "gpc0_rate",
            TableData::Gpc1 => "gpc1",
            TableData::Gpc1Rate => "gpc1_rate",
            TableData::Gpt0 => "gpt0",
        }
    }

    pub fn from_name(name: &str) -> Option<TableData> {
        TableData::ALL.into_iter().find(|d| d.name() == name)
    }

    /// A rate over a period (the others are counts, or a tag).
    pub fn is_rate(self) -> bool {
        self.name().ends_with("_rate")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    pub name: String,
    pub origin: Origin,
    pub mode: Mode,
    pub algorithm: Algorithm,
    pub hash_type: HashType,
    pub key_hash: KeyHash,
    pub servers: Vec<Server>,
    pub http_check: Option<HttpCheck>,
    /// `option tcp-check` or a protocol check (only one of this and `http_check` is set).
    pub tcp_check: Option<TcpCheck>,
    pub retries: u32,
    pub redispatch: bool,
    pub allbackups: bool,
    pub forwardfor: Option<ForwardFor>,
    pub conn_mode: ConnMode,
    pub http_reuse: HttpReuse,
    pub timeout_connect: Duration,
    pub timeout_server: Duration,
    pub timeout_queue: Duration,
    /// `timeout check`: None means HAProxy's rule (the check's `inter`).
    pub timeout_check: Option<Duration>,
    /// `timeout tunnel`: how long a tunnel (an upgraded HTTP connection, a TCP connection)
    /// may see nothing either way. None: the client and server timeouts, the shorter one.
    pub timeout_tunnel: Option<Duration>,
    /// `timeout server-fin`: once the client has closed its side, how long the server may stay
    /// silent (None: the tunnel's timeout).
    pub timeout_server_fin: Option<Duration>,
    /// `timeout tarpit` (None: `timeout connect`).
    pub timeout_tarpit: Option<Duration>,
    pub errorfiles: BTreeMap<u16, ErrorFile>,
    pub cookie: Option<Cookie>,
    /// `dynamic-cookie-key`: the secret of `cookie ... dynamic`.
    pub dynamic_cookie_key: Option<String>,
    /// `option persist`: a client goes to its persistence server even when it is down.
    pub persist: bool,
    /// `force-persist` and `ignore-persist` rules, in order (the first that holds decides).
    pub persist_rules: Vec<PersistRule>,
    /// `stick on|match|store-request|store-response` rules, in order.
    pub stick: Vec<StickRule>,
    /// IPVS persistence (`-p`/`-M`, keepalived `persistence_timeout`/`_granularity`).
    pub persistence: Option<Persistence>,
    /// keepalived's quorum: the backups (the `sorry_server`) serve instead of the primaries
    /// while the up primaries' weights sum below it.
    pub quorum: Option<Quorum>,
    /// Where the backend came from and how its listing prints (ipvsadm `-L`): an LVS virtual
    /// service's forwarding method, protocol, etc.
    pub lvs: Option<LvsService>,
    /// The ACLs a backend section declares (for its rules' conditions).
    pub acls: Vec<Acl>,
    /// The section's `stick-table` (for `stick` rules, `track-sc*` and the counter fetches).
    pub table: Option<StickTable>,
    /// `http-request` rules of a backend section (after the frontend's, once the backend is
    /// chosen) and its `http-response` rules (before the frontend's).
    pub http_request: Vec<rules::HttpRule>,
    pub http_response: Vec<rules::HttpRule>,
    /// `http-after-response` rules of a backend section.
    pub http_after_response: Vec<rules::HttpRule>,
}

/// Templates that keep a client (or its network) on one server: created at a client's first
/// connection, they expire `timeout` after the last connection they placed has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persistence {
    pub timeout: Duration,
    /// The client address is masked to this prefix (`-M 255.255.255.0` is 24).
    pub prefix_v4: u8,
    pub prefix_v6: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quorum {
    pub quorum: u32,
    pub hysteresis: u32,
    pub up: Option<String>,
    pub down: Option<String>,
}

/// What an LVS virtual service said beyond what the proxy runs on, kept for listing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LvsService {
    pub udp: bool,
    /// NAT (Masq), DR (Route) or TUN (Tunnel): the proxy serves all alike, full-proxy.
    pub method: LvsMethod,
    /// The ops flag (`-o`, one-packet scheduling).
    pub one_packet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LvsMethod {
    #[default]
    Nat,
    Dr,
    Tun,
}

impl Backend {
    /// Each server's number, as HAProxy numbers them: its `id`, else the lowest number from 1
    /// up that no other server of the backend has, taken in declaration order.
    pub fn server_ids(&self) -> Vec<u32> {
        let taken: std::collections::HashSet<u32> = self.servers.iter().filter_map(|s| s.id).collect();
        let mut next = 1u32;
        self.servers
            .iter()
            .map(|s| {
                s.id.unwrap_or_else(|| {
                    while taken.contains(&next) {
                        next += 1;
                    }
                    next += 1;
                    next - 1
                })
            })
            .collect()
    }

    pub fn new(name: impl Into<String>) -> Self {
        Backend {
            name: name.into(),
            origin: Origin::default(),
            mode: Mode::Http,
            algorithm: Algorithm::RoundRobin,
            hash_type: HashType::MapBased,
            key_hash: KeyHash::default(),
            servers: Vec::new(),
            http_check: None,
            tcp_check: None,
            retries: 3,
            redispatch: false,
            allbackups: false,
            forwardfor: None,
            conn_mode: ConnMode::KeepAlive,
            http_reuse: HttpReuse::Safe,
            timeout_connect: Duration::from_secs(5),
            timeout_server: Duration::from_secs(50),
            timeout_queue: Duration::from_secs(5),
            timeout_check: None,
            timeout_tunnel: None,
            timeout_server_fin: None,
            timeout_tarpit: None,
            errorfiles: BTreeMap::new(),
            cookie: None,
            dynamic_cookie_key: None,
            persist: false,
            persist_rules: Vec::new(),
            stick: Vec::new(),
            persistence: None,
            quorum: None,
            lvs: None,
            acls: Vec::new(),
            table: None,
            http_request: Vec::new(),
            http_response: Vec::new(),
            http_after_response: Vec::new(),
        }
    }
}

/// A `balance` algorithm as HAProxy names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Algorithm {
    /// Smooth weighted round robin; weights may change at run time.
    RoundRobin,
    /// Static weighted round robin (weights fixed at build time).
    StaticRr,
    /// Fewest active connections relative to weight; round robin among equals.
    LeastConn,
    /// First server (in declaration order) with a free connection slot.
    First,
    /// Hash of the client address.
    Source,
    /// Hash of the request target up to `?` (`whole`: with the query). `len`/`depth` limit the
    /// hashed part. `path_only`: an absolute target's scheme and authority are left out (an
    /// origin-form target has none).
    Uri { whole: bool, len: Option<usize>, depth: Option<usize>, path_only: bool },
    /// Hash of a query-string parameter's value; round robin when absent.
    UrlParam { name: String },
    /// Hash of a request header's value; round robin when absent.
    Hdr { name: String, use_domain_only: bool },
    /// Power of N random choices: draw N servers, keep the least loaded.
    Random { draws: u32 },
    /// An LVS (IPVS) scheduler, with the kernel's semantics (ipvsadm `-s`, keepalived
    /// `lb_algo`/`lvs_sched`).
    Lvs(Lvs),
}

/// An LVS scheduler and its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lvs {
    pub scheduler: LvsScheduler,
    /// `sh-fallback` / `mh-fallback`: when the hashed server is unavailable, the next one
    /// along the table is taken instead of refusing the connection.
    pub fallback: bool,
    /// `sh-port` / `mh-port`: the client's port is part of the hashed key.
    pub port: bool,
    /// Maglev's lookup table size (a prime; the kernel's default is 4093).
    pub mh_table: u32,
}

impl Lvs {
    /// The kernel's default Maglev table size (`CONFIG_IP_VS_MH_TAB_INDEX` 12).
    pub const MH_TABLE: u32 = 4093;

    pub fn new(scheduler: LvsScheduler) -> Self {
        Lvs { scheduler, fallback: false, port: false, mh_table: Self::MH_TABLE }
    }
}

/// The schedulers of Linux IPVS, by their ipvsadm names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LvsScheduler {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Sed,
    Nq,
    Dh,
    Sh,
    Lblc,
    Lblcr,
    Fo,
    Ovf,
    Mh,
}

impl LvsScheduler {
    pub const ALL: [LvsScheduler; 13] = [
        LvsScheduler::Rr,
        LvsScheduler::Wrr,
        LvsScheduler::Lc,
        LvsScheduler::Wlc,
        LvsScheduler::Sed,
        LvsScheduler::Nq,
        LvsScheduler::Dh,
        LvsScheduler::Sh,
        LvsScheduler::Lblc,
        LvsScheduler::Lblcr,
        LvsScheduler::Fo,
        LvsScheduler::Ovf,
        LvsScheduler::Mh,
    ];

    /// The name ipvsadm uses (`-s NAME`, and in `-L` output).
    pub fn name(self) -> &'static str {
        match self {
            LvsScheduler::Rr => "rr",
            LvsScheduler::Wrr => "wrr",
            LvsScheduler::Lc => "lc",
            LvsScheduler::Wlc => "wlc",
            LvsScheduler::Sed => "sed",
            LvsScheduler::Nq => "nq",
            LvsScheduler::Dh => "dh",
            LvsScheduler::Sh => "sh",
            LvsScheduler::Lblc => "lblc",
            LvsScheduler::Lblcr => "lblcr",
            LvsScheduler::Fo => "fo",
            LvsScheduler::Ovf => "ovf",
            LvsScheduler::Mh => "mh",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl Algorithm {
    /// Whether the algorithm picks from a hash of a request key.
    pub fn is_hash(&self) -> bool {
        matches!(self, Algorithm::Source | Algorithm::Uri { .. } | Algorithm::UrlParam { .. } | Algorithm::Hdr { .. })
    }
}

/// `hash-type`'s function and modifier: how a key becomes a number. HAProxy's defaults:
/// sdbm, without avalanche.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyHash {
    pub function: HashFunction,
    /// `avalanche`: the number is mixed again (Bob Jenkins' integer hash), for an even spread
    /// of keys that differ in few bits.
    pub avalanche: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashFunction {
    #[default]
    Sdbm,
    Djb2,
    Wt6,
    Crc32,
    /// `none`: the key is a number already (a sample's integer); other keys hash with sdbm.
    None,
}

/// `hash-type`: how a hash maps to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashType {
    /// Modulo over a weighted table: best spread, but most keys move when a server changes.
    #[default]
    MapBased,
    /// A hash ring: only ~1/N of keys move when a server is added or removed.
    Consistent,
}
