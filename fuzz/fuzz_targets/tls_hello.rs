//! The first bytes of a `mode tcp` connection, read for a TLS ClientHello's server name
//! (`req.ssl_sni`): an answer, never a panic.
#![no_main]
use fulcrum_proxy::l4::hello::{parse, Hello};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Hello::Handshake { sni: Some(name), .. } = parse(data) {
        assert!(!name.is_empty() || data.len() > 5);
        assert!(name.bytes().all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase()));
    }
});
