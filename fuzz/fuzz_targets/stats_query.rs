//! The stats page's request: any target, query and Authorization header gives a page or a 401,
//! never a panic.
#![no_main]
use std::path::Path;
use std::sync::OnceLock;

use bytes::BytesMut;
use fulcrum_admin::Admin;
use fulcrum_config::{load_str, LoadOptions};
use fulcrum_proxy::h1::{parse_request, Limits};
use fulcrum_proxy::{LiveRegistry, LocalPages, Snapshot};
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = "defaults\n    mode http\nfrontend fe\n    bind 127.0.0.1:1\n    default_backend be\n    \
    stats enable\n    stats uri /stats\n    stats auth admin:secret\n    stats refresh 5s\n\
    backend be\n    server a 127.0.0.1:2\n    server b 127.0.0.1:3 backup\n";

fn page() -> &'static (Admin, Snapshot, fulcrum_model::Stats) {
    static PAGE: OnceLock<(Admin, Snapshot, fulcrum_model::Stats)> = OnceLock::new();
    PAGE.get_or_init(|| {
        let loaded = load_str(CONFIG, Path::new("fuzz.cfg"), &LoadOptions::default()).expect("config");
        let stats = loaded.model.frontends[0].stats.clone().expect("stats");
        let snap = Snapshot::build(loaded.model, &LiveRegistry::default()).expect("snapshot");
        (Admin::default(), snap, stats)
    })
}

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    if let Ok(Some(req)) = parse_request(&mut buf, &Limits::HAPROXY) {
        let (admin, snap, stats) = page();
        let _ = admin.stats(&req.head, stats, snap);
    }
});
