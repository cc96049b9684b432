//! Schedulers for fulcrum: every HAProxy `balance` algorithm and every Linux IPVS scheduler,
//! pure and deterministic.
//!
//! No I/O, no clock, no threads. The data plane keeps one [`Scheduler`] per backend behind a
//! lock, calls [`Scheduler::rebuild`] whenever the set of eligible servers or their effective
//! weights change (health, slowstart, admin), and [`Scheduler::pick`] per request.
//!
//! [`PersistTable`] keeps sessions sticky: HAProxy stick tables and IPVS persistence templates
//! (with [`mask_ip`] for the persistence netmask), with time passed in explicitly.
#![forbid(unsafe_code)]

pub mod counters;
pub mod haproxy_hash;
mod hash;
pub mod lvs;
mod persist;
mod ring;
mod scheduler;
mod smooth;
mod walk;

#[cfg(test)]
mod tests;

pub use hash::{hash_key, hash_key32, mix64};
pub use lvs::{Flow, Load, Thresholds};
pub use persist::{mask_ip, PersistTable, Table};
pub use scheduler::*;

pub use fulcrum_model::{Algorithm, HashFunction, HashType, KeyHash, Lvs, LvsScheduler};
