//! Why VRRP instances cannot start.
use std::io;
use std::path::PathBuf;

/// What keeps one instance from running.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("interface {interface:?}: {source}")]
    Interface { interface: String, source: io::Error },
    #[error("{0}")]
    SourceAddress(io::Error),
    #[error("{0}")]
    Config(#[from] fulcrum_vrrp::ConfigError),
    #[error("use_vmac {name}: {source}")]
    Vmac { name: String, source: io::Error },
    #[error("cannot open the VRRP socket on {interface}: {source}")]
    Socket { interface: String, source: io::Error },
    #[error("cannot open the gratuitous ARP/NA sockets on {interface}: {source}")]
    Announce { interface: String, source: io::Error },
}

/// An instance that cannot run, named as keepalived names it in its logs.
#[derive(Debug, thiserror::Error)]
#[error("VRRP_Instance({instance}): {error}")]
pub struct Failed {
    pub instance: String,
    pub error: InstanceError,
}

impl Failed {
    pub(crate) fn new(instance: &str, error: impl Into<InstanceError>) -> Failed {
        Failed { instance: instance.to_string(), error: error.into() }
    }
}

/// Why the VRRP runtime did not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Every instance that cannot run (nothing was changed).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Instances(Vec<Failed>),
    #[error("cannot start the VRRP crash guard {program}: {source}")]
    Guard { program: PathBuf, source: io::Error },
}
