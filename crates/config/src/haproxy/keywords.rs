//! HAProxy's vocabulary: what fulcrum reads, what it knows but does not do yet (reported as
//! unsupported rather than misspelt), and the words used for "did you mean" hints.
use crate::diag::Problem;

/// Sorts a word of a family (`timeout NAME`, `stats KEYWORD`): Ok when fulcrum reads it, "not
/// supported yet" when HAProxy knows it, "unknown WHAT" with the closest word otherwise.
pub(super) fn known_word(
    (family, what): (&str, &str),
    word: &str,
    supported: &[&str],
    unsupported: &[&str],
) -> Result<(), Problem> {
    if supported.contains(&word) {
        Ok(())
    } else if unsupported.contains(&word) {
        Err(Problem::unsupported(format!("'{family} {word}' is not supported yet")))
    } else {
        Err(Problem::unknown(what, word, supported.iter().copied()))
    }
}

pub(super) const SECTIONS: &[&str] = &["global", "defaults", "frontend", "backend", "listen"];

/// Sections HAProxy has and fulcrum does not read yet; their lines are skipped.
pub(super) const UNSUPPORTED_SECTIONS: &[&str] = &[
    "peers",
    "resolvers",
    "userlist",
    "mailers",
    "cache",
    "program",
    "http-errors",
    "ring",
    "log-forward",
    "fcgi-app",
    "crt-store",
    "traces",
    "acme",
    "dynamic-update",
];

pub(super) const GLOBAL_SUPPORTED: &[&str] = &[
    "maxconn",
    "nbthread",
    "hard-stop-after",
    "log",
    "default-path",
    "tune.bufsize",
    "tune.maxrewrite",
    "tune.http.maxhdr",
];

/// Global settings that only matter to how HAProxy runs as a process, or to TLS that the
/// haproxy.cfg front-end does not accept: fulcrum accepts them with a note saying why.
pub(super) fn global_ignored(keyword: &str) -> Option<&'static str> {
    Some(match keyword {
        "daemon" | "master-worker" | "mworker-max-reloads" => {
            "fulcrum runs in the foreground under systemd (or any supervisor); reloads are built in (SIGHUP)"
        }
        "user" | "group" | "uid" | "gid" => "set User= and Group= in the systemd unit instead",
        "chroot" => "use systemd's RootDirectory= or ProtectSystem= instead",
        "pidfile" => "systemd tracks the main process itself",
        "ulimit-n" => "set LimitNOFILE= in the systemd unit instead",
        "nbproc" => "fulcrum is a single process; use nbthread for parallelism",
        "cpu-map" => "fulcrum does not pin threads to CPUs",
        "node" | "description" => "fulcrum does not show it yet",
        "log-send-hostname" | "log-tag" => "fulcrum does not send logs to syslog",
        "quiet" | "debug" | "zero-warning" | "expose-experimental-directives" | "set-dumpable" => {
            "it only changes HAProxy's own start-up behaviour"
        }
        "spread-checks" => "fulcrum spreads health checks on its own",
        "ca-base" | "crt-base" | "maxsslconn" | "maxsslrate" | "ssl-dh-param-file" | "ssl-server-verify"
        | "ssl-engine" | "ssl-mode-async" | "issuers-chain-path" => {
            "it only concerns TLS, which the haproxy.cfg front-end does not accept yet"
        }
        k if k.starts_with("ssl-default-") || k.starts_with("tune.ssl.") => {
            "it only concerns TLS, which the haproxy.cfg front-end does not accept yet"
        }
        _ => return None,
    })
}

pub(super) const GLOBAL_UNSUPPORTED: &[&str] = &[
    "lua-load",
    "lua-load-per-thread",
    "lua-prepend-path",
    "setenv",
    "presetenv",
    "resetenv",
    "unsetenv",
    "maxconnrate",
    "maxsessrate",
    "maxcomprate",
    "maxcompcpuusage",
    "maxpipes",
    "maxzlibmem",
    "noepoll",
    "nokqueue",
    "nopoll",
    "nosplice",
    "nogetaddrinfo",
    "noreuseport",
    "server-state-base",
    "server-state-file",
    "external-check",
    "unix-bind",
    "localpeer",
    "h1-case-adjust",
    "h1-case-adjust-file",
    "busy-polling",
    "max-spread-checks",
    "strict-limits",
    "thread-groups",
    "numa-cpu-mapping",
    "pp2-never-send-local",
    "profiling.tasks",
    "insecure-fork-wanted",
    "insecure-setuid-wanted",
    "hard-stop-after-grace",
    "grace",
    "cluster-secret",
    "h2-workaround-bogus-websocket-clients",
    "limited-quic",
    "httpclient.resolvers.id",
    "httpclient.ssl.verify",
    "51degrees-data-file",
    "wurfl-data-file",
    "deviceatlas-json-file",
    "stats-file",
    "shm-stats-file",
];

pub(super) const PROXY_SUPPORTED: &[&str] = &[
    "mode",
    "bind",
    "default_backend",
    "use_backend",
    "acl",
    "balance",
    "hash-type",
    "server",
    "default-server",
    "option",
    "no",
    "http-check",
    "http-reuse",
    "retries",
    "redispatch",
    "timeout",
    "contimeout",
    "clitimeout",
    "srvtimeout",
    "errorfile",
    "maxconn",
    "stats",
    "cookie",
    "stick-table",
    "stick",
    "log",
    "description",
    "id",
];

pub(super) const PROXY_UNSUPPORTED: &[&str] = &[
    "backlog",
    "bind-process",
    "capture",
    "compression",
    "declare",
    "disabled",
    "enabled",
    "dispatch",
    "email-alert",
    "errorfiles",
    "errorloc",
    "errorloc302",
    "errorloc303",
    "error-log-format",
    "force-persist",
    "filter",
    "fullconn",
    "grace",
    "hash-balance-factor",
    "hash-key",
    "http-after-response",
    "http-error",
    "http-request",
    "http-response",
    "http-send-name-header",
    "ignore-persist",
    "load-server-state-from-file",
    "log-format",
    "log-format-sd",
    "log-tag",
    "max-keep-alive-queue",
    "max-session-srv-conns",
    "monitor",
    "monitor-net",
    "monitor-uri",
    "persist",
    "rate-limit",
    "redirect",
    "reqadd",
    "reqallow",
    "reqdel",
    "reqdeny",
    "reqiallow",
    "reqidel",
    "reqideny",
    "reqipass",
    "reqirep",
    "reqisetbe",
    "reqitarpit",
    "reqpass",
    "reqrep",
    "reqsetbe",
    "reqtarpit",
    "rspadd",
    "rspdel",
    "rspdeny",
    "rspidel",
    "rspideny",
    "rspirep",
    "rsprep",
    "retry-on",
    "server-state-file-name",
    "server-template",
    "source",
    "srvtcpka-cnt",
    "srvtcpka-idle",
    "srvtcpka-intvl",
    "clitcpka-cnt",
    "clitcpka-idle",
    "clitcpka-intvl",
    "tcp-check",
    "tcp-request",
    "tcp-response",
    "transparent",
    "unique-id-format",
    "unique-id-header",
    "use-fcgi-app",
    "use-server",
    "block",
    "appsession",
    "external-check",
    "guid",
    "log-steps",
    "http-restrict-req-hdr-names",
];

pub(super) const OPTIONS_SUPPORTED: &[&str] = &[
    "httpchk",
    "forwardfor",
    "http-server-close",
    "httpclose",
    "http-keep-alive",
    "forceclose",
    "redispatch",
    "allbackups",
    "httplog",
    "dontlognull",
];

/// Options that change nothing fulcrum does, accepted with a note saying why.
pub(super) fn option_ignored(name: &str) -> Option<&'static str> {
    Some(match name {
        "http-pretend-keepalive"
        | "http-no-delay"
        | "http-buffer-request"
        | "contstats"
        | "socket-stats"
        | "tcp-smart-accept"
        | "tcp-smart-connect"
        | "splice-auto"
        | "splice-request"
        | "splice-response"
        | "nolinger"
        | "independent-streams"
        | "log-separate-errors"
        | "log-health-checks"
        | "http-ignore-probes"
        | "idle-close-on-response"
        | "http-tunnel"
        | "http-use-htx" => "fulcrum's behaviour does not depend on it",
        _ => return None,
    })
}

pub(super) const OPTIONS_UNSUPPORTED: &[&str] = &[
    "abortonclose",
    "accept-invalid-http-request",
    "accept-invalid-http-response",
    "accept-unsafe-violations-in-http-request",
    "accept-unsafe-violations-in-http-response",
    "checkcache",
    "clitcpka",
    "disable-h2-upgrade",
    "dontlog-normal",
    "forwarded",
    "h1-case-adjust-bogus-client",
    "h1-case-adjust-bogus-server",
    "http-drop-request-trailers",
    "http-drop-response-trailers",
    "http-restrict-req-hdr-names",
    "http-use-proxy-header",
    "http_proxy",
    "httpslog",
    "ldap-check",
    "external-check",
    "logasap",
    "mysql-check",
    "originalto",
    "persist",
    "pgsql-check",
    "prefer-last-server",
    "redis-check",
    "smtpchk",
    "spop-check",
    "srvtcpka",
    "ssl-hello-chk",
    "tcp-check",
    "tcpka",
    "tcplog",
    "transparent",
    "httpclose-compat",
];

pub(super) const TIMEOUTS_SUPPORTED: &[&str] =
    &["connect", "client", "server", "http-request", "http-keep-alive", "queue", "check", "tunnel"];

pub(super) const TIMEOUTS_UNSUPPORTED: &[&str] = &["client-fin", "server-fin", "tarpit", "client-hs"];

pub(super) const STATS_SUPPORTED: &[&str] =
    &["enable", "uri", "auth", "realm", "refresh", "hide-version", "show-node", "admin", "show-legends"];

pub(super) const STATS_UNSUPPORTED: &[&str] =
    &["show-desc", "scope", "http-request", "bind-process", "show-modules", "disable", "socket", "timeout", "maxconn"];

/// The status codes HAProxy accepts in `errorfile`.
pub(super) const ERRORFILE_CODES: &[u16] =
    &[200, 400, 401, 403, 404, 405, 407, 408, 410, 413, 425, 429, 500, 501, 502, 503, 504];
