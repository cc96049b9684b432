//! Test origins (used by the tests, the benchmark and `fulcrum demo`) and helpers to launch
//! the fulcrum binary.
#![forbid(unsafe_code)]

pub mod netns;
mod origin;

pub use origin::{pattern_byte, Origin};

use std::net::{SocketAddr, TcpListener};

/// Set (to `1`) where the tests must not skip for want of root, network namespaces or a peer
/// program: CI sets it, so that a machine without them fails instead of passing untested.
pub const REQUIRE_ENV: &str = "FULCRUM_REQUIRE_NETNS";

/// A test cannot run here because it lacks `what`. Prints a loud SKIPPED line naming the test
/// and returns false (for `if !available { return }`); under `FULCRUM_REQUIRE_NETNS=1` it
/// panics instead, failing the test.
pub fn skip(test: &str, what: &str) -> bool {
    if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
        panic!("{test} needs {what}, and {REQUIRE_ENV}=1 forbids skipping it");
    }
    eprintln!("SKIPPED: {test} needs {what}");
    false
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// `127.0.0.1:<free port>`.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}
