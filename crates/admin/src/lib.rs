//! What operators look at and drive, beside the data plane: the stats page (HAProxy's HTML
//! table and CSV) today; the runtime API, `/metrics` and the Octavia LBaaS API belong here as
//! they come. The proxy calls in through [`fulcrum_proxy::LocalPages`] for the pages a frontend
//! serves itself; this crate reads the proxy's snapshot and live counters, never the reverse.
#![forbid(unsafe_code)]

pub mod runtime;
mod stats;

use std::sync::Mutex;

use bytes::Bytes;
use fulcrum_model::Stats;
use fulcrum_proxy::{lock, LocalPages, Snapshot};

/// One VRRP instance as the stats page shows it (filled in by the binary from the VRRP runtime).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpRow {
    pub instance: String,
    pub state: String,
    pub priority: u8,
    pub master: Option<String>,
}

/// The pages a frontend serves itself, and what they show beside the proxy's own state.
#[derive(Debug, Default)]
pub struct Admin {
    vrrp_rows: Mutex<Vec<VrrpRow>>,
}

impl Admin {
    pub fn set_vrrp_rows(&self, rows: Vec<VrrpRow>) {
        *lock(&self.vrrp_rows) = rows;
    }

    pub fn vrrp_rows(&self) -> Vec<VrrpRow> {
        lock(&self.vrrp_rows).clone()
    }
}

impl LocalPages for Admin {
    fn stats(&self, req: &http::request::Parts, stats: &Stats, snap: &Snapshot) -> http::Response<Bytes> {
        stats::serve(req, stats, snap, &self.vrrp_rows())
    }
}
