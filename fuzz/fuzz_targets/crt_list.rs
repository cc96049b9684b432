//! crt-list files (`bind ... ssl crt-list FILE`): any text gives entries or a line number and
//! a reason, never a panic; every entry it gives has a file name and names its line.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match fulcrum_tls::crtlist::parse(&text) {
        Ok(entries) => {
            let lines = text.lines().count();
            for e in entries {
                assert!(!e.file.is_empty());
                assert!(e.line >= 1 && e.line <= lines);
            }
        }
        Err((line, reason)) => {
            assert!(line >= 1 && !reason.is_empty());
        }
    }
});
