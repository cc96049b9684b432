//! The first bytes of an `accept-proxy` connection, read as a PROXY protocol header (v1 or
//! v2): an answer, never a panic, and a header never longer than the bytes given.
#![no_main]
use fulcrum_proxy::proxy_protocol::{parse, Incoming};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Incoming::Header { len, .. } = parse(data) {
        assert!(len <= data.len());
    }
});
