//! The stats page (`stats uri`): an HTML table per backend and HAProxy-style CSV (`;csv`),
//! behind `stats auth` when set.
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use fulcrum_model::Stats;
use http::request::Parts;
use http::{header, HeaderValue, Response, StatusCode};

use fulcrum_proxy::{BackendRt, Snapshot};

use crate::VrrpRow;

pub(crate) fn serve(req: &Parts, stats: &Stats, snap: &Snapshot, vrrp: &[VrrpRow]) -> Response<Bytes> {
    if !stats.auth.is_empty() && !authorized(req, stats) {
        let realm = stats.realm.as_deref().unwrap_or("HAProxy Statistics");
        let mut resp = Response::new(Bytes::from_static(b"401 Unauthorized\n"));
        *resp.status_mut() = StatusCode::UNAUTHORIZED;
        if let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        return resp;
    }
    let csv = req.uri.path().ends_with(";csv") || req.uri.query().is_some_and(|q| q.contains("csv"));
    let (body, ctype) =
        if csv { (render_csv(snap), "text/plain") } else { (render_html(stats, snap, vrrp), "text/html") };
    let mut resp = Response::new(Bytes::from(body));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Some(refresh) = stats.refresh {
        if let Ok(v) = HeaderValue::from_str(&refresh.as_secs().max(1).to_string()) {
            resp.headers_mut().insert("refresh", v);
        }
    }
    resp
}

fn authorized(req: &Parts, stats: &Stats) -> bool {
    let Some(given) = req.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(token) = given.strip_prefix("Basic ") else { return false };
    stats.auth.iter().any(|(user, pass)| base64(format!("{user}:{pass}").as_bytes()) == token.trim())
}

/// Standard base64 (RFC 4648) with padding; only used to compare Basic credentials.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn render_html(stats: &Stats, snap: &Snapshot, vrrp: &[VrrpRow]) -> String {
    let mut h = String::from("<!DOCTYPE html><html><head><title>Statistics Report</title>");
    h.push_str("<style>body{font-family:sans-serif}table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #999;padding:2px 6px}.UP{background:#c0ffc0}.DOWN{background:#ffc0c0}.MAINT{background:#c0c0ff}</style></head><body>");
    h.push_str("<h1>fulcrum statistics report</h1>");
    if !stats.hide_version {
        let _ = write!(h, "<p>fulcrum version {}</p>", env!("CARGO_PKG_VERSION"));
    }
    if let Some(node) = &stats.show_node {
        let _ = write!(h, "<p>node: {}</p>", escape(node));
    }
    for b in &snap.backends {
        let _ = write!(
            h,
            "<table><tr><th colspan=8>{}</th></tr><tr><th>server</th><th>status</th><th>weight</th><th>act/bck</th><th>current</th><th>total</th><th>errors</th><th>last check</th></tr>",
            escape(&b.cfg.name)
        );
        for s in &b.servers {
            let status = status_of(s.cfg.disabled, s.live.is_up());
            let _ = write!(
                h,
                "<tr class={status}><td>{}</td><td>{status}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&s.cfg.name),
                s.cfg.weight,
                if s.cfg.backup { "backup" } else { "active" },
                s.live.active.load(Ordering::Relaxed),
                s.live.total.load(Ordering::Relaxed),
                s.live.connect_errors.load(Ordering::Relaxed) + s.live.response_errors.load(Ordering::Relaxed),
                escape(&fulcrum_proxy::lock(&s.live.last_check))
            );
        }
        let _ = write!(
            h,
            "<tr><td><b>BACKEND</b></td><td>{}</td><td colspan=6>{} servers up, {} queued</td></tr></table>",
            backend_status(b),
            b.live_servers(),
            b.queued()
        );
    }
    if !vrrp.is_empty() {
        h.push_str("<table><tr><th colspan=4>VRRP</th></tr><tr><th>instance</th><th>state</th><th>priority</th><th>master</th></tr>");
        for row in vrrp {
            let _ = write!(
                h,
                "<tr class={}><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                if row.state == "MASTER" { "UP" } else { "MAINT" },
                escape(&row.instance),
                escape(&row.state),
                row.priority,
                escape(row.master.as_deref().unwrap_or("-"))
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    h
}

/// A backend is UP with a usable server, DOWN without; one with no servers at all (the backend
/// of a `listen stats` section) is UP, as HAProxy shows it.
fn backend_status(b: &BackendRt) -> &'static str {
    if b.servers.is_empty() || b.live_servers() > 0 {
        "UP"
    } else {
        "DOWN"
    }
}

fn status_of(disabled: bool, up: bool) -> &'static str {
    match (disabled, up) {
        (true, _) => "MAINT",
        (false, true) => "UP",
        (false, false) => "DOWN",
    }
}

/// The leading columns of HAProxy's stats CSV, in HAProxy's order.
fn render_csv(snap: &Snapshot) -> String {
    let mut c = String::from("# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck\n");
    for b in &snap.backends {
        for s in &b.servers {
            let l = &s.live;
            let _ = writeln!(
                c,
                "{},{},0,,{},,{},{},,,,,,{},{},{},{},{},{},{},{}",
                b.cfg.name,
                s.cfg.name,
                l.active.load(Ordering::Relaxed),
                if s.cfg.maxconn > 0 { s.cfg.maxconn.to_string() } else { String::new() },
                l.total.load(Ordering::Relaxed),
                l.connect_errors.load(Ordering::Relaxed),
                l.response_errors.load(Ordering::Relaxed),
                l.retries.load(Ordering::Relaxed),
                l.redispatches.load(Ordering::Relaxed),
                status_of(s.cfg.disabled, l.is_up()),
                s.cfg.weight,
                u8::from(!s.cfg.backup),
                u8::from(s.cfg.backup)
            );
        }
        let _ = writeln!(c, "{},BACKEND,{},,,,,,,,,,,,,,,{},,,", b.cfg.name, b.queued(), backend_status(b));
    }
    c
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::{base64, render_html};
    use crate::VrrpRow;
    use fulcrum_proxy::{LiveRegistry, Snapshot};

    #[test]
    fn vrrp_instances_show_on_the_html_page() {
        let snap = Snapshot::build(fulcrum_model::Model::default(), &LiveRegistry::default()).expect("empty model");
        let stats = fulcrum_model::Stats::default();
        assert!(!render_html(&stats, &snap, &[]).contains("VRRP"));
        let row =
            VrrpRow { instance: "VI_1".into(), state: "BACKUP".into(), priority: 100, master: Some("10.0.0.1".into()) };
        let html = render_html(&stats, &snap, &[row]);
        assert!(html.contains("<td>VI_1</td><td>BACKUP</td><td>100</td><td>10.0.0.1</td>"), "{html}");
    }

    #[test]
    fn a_backend_without_servers_is_up_one_with_only_dead_servers_is_down() {
        let text = "defaults\n    mode http\nfrontend fe\n    bind 127.0.0.1:1\n    default_backend be\n\
                    backend be\n    server a 127.0.0.1:9 disabled\n\
                    listen stats\n    bind 127.0.0.1:2\n    stats enable\n    stats uri /stats\n";
        let loaded =
            fulcrum_config::load_str(text, std::path::Path::new("t.cfg"), &fulcrum_config::LoadOptions::default())
                .expect("config");
        let snap = Snapshot::build(loaded.model, &LiveRegistry::default()).expect("snapshot");
        let csv = super::render_csv(&snap);
        assert!(csv.contains("be,BACKEND,0,,,,,,,,,,,,,,,DOWN"), "{csv}");
        assert!(csv.contains("stats,BACKEND,0,,,,,,,,,,,,,,,UP"), "{csv}");
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"ikoula:ikoula"), "aWtvdWxhOmlrb3VsYQ==");
    }
}
