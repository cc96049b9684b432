//! A server's answer to a health check, judged by each kind of `http-check expect`, by
//! keepalived's HTTP_GET (status and digest) and DNS_CHECK, and by the MySQL and LDAP checks:
//! a verdict, never a panic.
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
    let url = fulcrum_model::UrlCheck {
        path: "/".into(),
        digest: Some("d41d8cd98f00b204e9800998ecf8427e".into()),
        status: vec![(200, 299)],
        virtualhost: None,
    };
    let _ = fulcrum_health::keepalived::judge_url(&url, data);
    let _ = fulcrum_health::keepalived::dns_reply_ok(0x1234, data);
    let _ = fulcrum_health::mysql_reply(data, false);
    let _ = fulcrum_health::mysql_reply(data, true);
    let _ = fulcrum_health::ldap_reply(data);
});
