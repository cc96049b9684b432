//! Schedulers for fulcrum: every HAProxy `balance` algorithm, pure and deterministic.
//!
//! No I/O, no clock, no threads. The data plane keeps one [`Scheduler`] per backend behind a
//! lock, calls [`Scheduler::rebuild`] whenever the set of eligible servers or their effective
//! weights change (health, slowstart, admin), and [`Scheduler::pick`] per request.
//!
//! [`PersistTable`] keeps sessions sticky: HAProxy stick tables and IPVS persistence templates
//! (with [`mask_ip`] for the persistence netmask), with time passed in explicitly.
#![forbid(unsafe_code)]

mod hash;
mod persist;
mod ring;
mod scheduler;
mod smooth;
mod walk;

#[cfg(test)]
mod tests;

pub use hash::{hash_key, hash_key32, mix64};
pub use persist::{mask_ip, PersistTable};
pub use scheduler::*;

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
    /// Hash of the path (`whole`: path and query). `len`/`depth` limit the hashed part.
    Uri { whole: bool, len: Option<usize>, depth: Option<usize> },
    /// Hash of a query-string parameter's value; round robin when absent.
    UrlParam { name: String },
    /// Hash of a request header's value; round robin when absent.
    Hdr { name: String, use_domain_only: bool },
    /// Power of N random choices: draw N servers, keep the least loaded.
    Random { draws: u32 },
}

impl Algorithm {
    /// Whether the algorithm picks from a hash of a request key.
    pub fn is_hash(&self) -> bool {
        matches!(self, Algorithm::Source | Algorithm::Uri { .. } | Algorithm::UrlParam { .. } | Algorithm::Hdr { .. })
    }
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
