//! Test origins (used by the tests, the benchmark and `fulcrum demo`) and helpers to launch
//! the fulcrum binary.
#![forbid(unsafe_code)]

pub mod netns;
mod origin;

pub use origin::{pattern_byte, Origin};

use std::net::{SocketAddr, TcpListener};

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// `127.0.0.1:<free port>`.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}
