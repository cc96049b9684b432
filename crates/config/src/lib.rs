//! fulcrum's configuration: the [`Model`] and the front-ends that produce it (haproxy.cfg,
//! keepalived.conf and fulcrum's own TOML), with diagnostics that name the file, the line and the fix.
#![forbid(unsafe_code)]

mod acl;
mod diag;
mod haproxy;
mod keepalived;
mod load;
pub mod model;
mod partial;
mod toml_format;
mod validate;
mod values;
pub mod vrrp;
mod vrrp_checks;

pub use diag::{did_you_mean, Diagnostic, Severity};
pub use load::{load_files, load_str, Format, LoadOptions, Loaded};
pub use model::*;
pub use vrrp::{Tracked, Vip, Vrrp, VrrpInstance, VrrpScript, VrrpState, VrrpSyncGroup};
