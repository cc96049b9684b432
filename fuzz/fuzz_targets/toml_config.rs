//! The toml configuration front-end: any text gives a Model or diagnostics, never a panic, in
//! strict and lenient mode alike.
#![no_main]
use std::path::Path;

use fulcrum_config::{load_str, Format, LoadOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for lenient in [false, true] {
        let opts = LoadOptions {
            format: Some(Format::Toml),
            lenient,
            inherited: [(3, std::net::SocketAddr::from(([127, 0, 0, 1], 8080)))].into(),
            local_peer: None,
        };
        let _ = load_str(&text, Path::new("fuzz.toml"), &opts);
    }
});
