//! ipvsadm's command line and rules files: any words give a command or ipvsadm's error, any
//! file a Model or diagnostics, and applying a parsed command to a Model never panics.
#![no_main]
use std::path::Path;

use fulcrum_config::ipvsadm::{apply, parse, words};
use fulcrum_config::{load_str, Format, LoadOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let opts = LoadOptions { format: Some(Format::Ipvsadm), ..LoadOptions::default() };
    let _ = load_str(&text, Path::new("fuzz.rules"), &opts);
    let mut model = fulcrum_model::Model::default();
    for line in text.lines() {
        if let Ok(command) = parse("ipvsadm", &words(line)) {
            let _ = apply(&mut model, &command);
        }
    }
});
