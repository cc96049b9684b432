//! A server's answer to an HTTP health check, judged by each kind of `http-check expect`: a
//! verdict, never a panic.
#![no_main]
use std::sync::OnceLock;

use fulcrum_health::CompiledHttpCheck;
use fulcrum_model::{Expect, ExpectRule, HttpCheck};
use libfuzzer_sys::fuzz_target;

fn checks() -> &'static [CompiledHttpCheck] {
    static CHECKS: OnceLock<Vec<CompiledHttpCheck>> = OnceLock::new();
    CHECKS.get_or_init(|| {
        let rules = [
            None,
            Some(ExpectRule::Status(vec![(200, 299), (302, 302)])),
            Some(ExpectRule::StatusRegex("^2".into())),
            Some(ExpectRule::String("healthy".into())),
            Some(ExpectRule::BodyRegex("^ok|up$".into())),
        ];
        rules
            .into_iter()
            .flat_map(|rule| [false, true].map(|negate| rule.clone().map(|rule| Expect { negate, rule })))
            .map(|expect| {
                CompiledHttpCheck::new(&HttpCheck { expect, ..HttpCheck::default() }, "192.0.2.1").expect("valid")
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    for check in checks() {
        let _ = check.judge(data);
    }
});
