//! Why a configuration cannot be started or applied by the proxy. The config crate checks a
//! Model before it gets here; these are what only compiling it, or the system, can still find.
use std::net::SocketAddr;
use std::path::PathBuf;

/// A Model that does not compile into a runtime snapshot.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("acl {acl}: bad regex {pattern:?}: {source}")]
    Regex { acl: String, pattern: String, source: regex::Error },
    #[error("acl {acl}: bad address {pattern:?}")]
    AclAddress { acl: String, pattern: String },
    #[error("unknown acl {0:?}")]
    UnknownAcl(String),
    #[error("{proxy}: no stick-table named {table:?} (a table is declared by 'stick-table' in the frontend, backend or listen section it is named after)")]
    UnknownTable { proxy: String, table: String },
    #[error("frontend {frontend}: no backend named {backend:?}")]
    UnknownBackend { frontend: String, backend: String },
    #[error("errorfile {code} {path}: {reason}")]
    ErrorFile { code: u16, path: PathBuf, reason: ErrorFileError },
    #[error("option forwardfor: invalid header name {0:?}")]
    ForwardForHeader(String),
    #[error("option forwardfor except: bad network {0:?}")]
    ForwardForNetwork(String),
    #[error("cookie {name}: invalid value {value:?}")]
    Cookie { name: String, value: String },
    /// `frontend`: the frontend, or `backend B server S`.
    #[error("{frontend}: TLS: {error}")]
    Tls { frontend: String, error: fulcrum_tls::TlsError },
}

/// An errorfile that is not an HTTP response.
#[derive(Debug, thiserror::Error)]
pub enum ErrorFileError {
    #[error("incomplete HTTP response (it must end its headers with an empty line)")]
    Incomplete,
    #[error("not an HTTP response: {0}")]
    NotHttp(httparse::Error),
    #[error("missing status code")]
    NoStatus,
    #[error("header {0}: invalid name or value")]
    Header(String),
}

/// Why the proxy did not start, or a reload was refused (and nothing changed).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error("cannot bind {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("access log {path}: {source}")]
    AccessLog { path: PathBuf, source: std::io::Error },
    #[error("worker {what}: {source}")]
    Worker { what: &'static str, source: std::io::Error },
}
