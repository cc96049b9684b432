//! Which server a request should go to before the scheduler is asked: the key a hash
//! algorithm hashes, and the server persistence (a cookie, a stick table) points at; and the
//! persistence cookie a response sets.
use std::net::IpAddr;

use fulcrum_balance::ServerId;
use fulcrum_model::{Algorithm, CookieMode};
use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;

use crate::pick::Persist;
use crate::snapshot::rules::Resp;
use crate::snapshot::{BackendRt, Facts, Who};
use crate::stick::Pending;

/// The bytes `balance source` hashes: the client's IPv4 address (an IPv4-mapped IPv6 one as
/// IPv4), else its IPv6 address. `mode tcp` uses it too.
pub(crate) fn source_key(client: IpAddr) -> Vec<u8> {
    match client {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or_else(|| v6.octets().to_vec(), |v4| v4.octets().to_vec()),
    }
}

/// The bytes the balance algorithm hashes, if it is a hash algorithm and the key is present.
pub(crate) fn hash_key(algo: &Algorithm, parts: &http::request::Parts, client: IpAddr) -> Option<Vec<u8>> {
    match algo {
        Algorithm::Source => Some(source_key(client)),
        Algorithm::Uri { whole, len, depth, path_only } => {
            // The target as the request line gave it: an absolute one keeps its scheme and
            // authority unless `path-only`, as HAProxy hashes it.
            let absolute = (!*path_only && parts.uri.scheme().is_some()).then(|| parts.uri.to_string());
            let mut s = match &absolute {
                Some(full) if *whole => full.as_str(),
                Some(full) => full.split('?').next().unwrap_or(full),
                None if *whole => parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
                None => parts.uri.path(),
            };
            if let Some(depth) = depth {
                if let Some((i, _)) = s.match_indices('/').nth(*depth) {
                    s = &s[..i];
                }
            }
            let mut bytes = s.as_bytes();
            if let Some(len) = len {
                bytes = &bytes[..bytes.len().min(*len)];
            }
            Some(bytes.to_vec())
        }
        Algorithm::UrlParam { name } => parts.uri.query().and_then(|q| {
            q.split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k == name).then(|| v.as_bytes().to_vec())
            })
        }),
        Algorithm::Hdr { name, use_domain_only } => {
            let v = parts.headers.get(name.as_str())?.to_str().ok()?;
            if *use_domain_only {
                let host = v.split(':').next().unwrap_or(v);
                let labels: Vec<&str> = host.split('.').collect();
                let n = labels.len();
                let domain = if n >= 2 { labels[n - 2] } else { host };
                Some(domain.as_bytes().to_vec())
            } else {
                Some(v.as_bytes().to_vec())
            }
        }
        _ => None,
    }
}

/// What the request's persistence cookie said, for the answer's `Set-Cookie`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CookieSeen {
    /// The request is meant for the server its cookie names (this one).
    pub direct: bool,
    pub server: Option<ServerId>,
    /// The cookie's dates (seconds; 0: none or not valid).
    pub last: u32,
    pub first: u32,
    /// `ignore-persist` held: no cookie is set either.
    pub ignore: bool,
    /// A POST (`postonly`).
    pub post: bool,
}

fn unix_now() -> u32 {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    u32::try_from(secs).unwrap_or(u32::MAX)
}

fn secs(d: Option<std::time::Duration>) -> i64 {
    d.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The server persistence points at (cookie or stick table), what the request's cookie said,
/// and the keys the `stick` rules store once a server serves. Strips what the server must not
/// see (`indirect`, prefix). HAProxy's order: `force-persist`/`ignore-persist`, the cookie,
/// then the `stick` rules.
pub(crate) fn persistence(
    backend: &BackendRt,
    parts: &mut http::request::Parts,
    who: &Who<'_>,
) -> (Option<Persist>, CookieSeen, Pending) {
    let mut seen = CookieSeen { post: parts.method == http::Method::POST, ..CookieSeen::default() };
    let mut forced = backend.cfg.persist;
    if !backend.persist_rules.is_empty() {
        let facts = Facts { req: Some(parts), ..Facts::of(who) };
        if let Some((force, _)) = backend.persist_rules.iter().find(|(_, c)| c.eval_facts(&backend.acls, &facts)) {
            forced |= *force;
            seen.ignore = !*force;
        }
    }
    let mut chosen = None;
    if let Some(cookie) = &backend.cfg.cookie {
        if let Some((found, rewritten)) = super::cookie::find(cookie, &parts.headers) {
            // Only the line that held the persistence cookie changes; the others stay.
            if let Some((line, value)) = rewritten {
                let mut lines: Vec<HeaderValue> = parts.headers.get_all(header::COOKIE).iter().cloned().collect();
                if line < lines.len() {
                    // A line that held only ours goes entirely.
                    if value.is_empty() {
                        lines.remove(line);
                    } else {
                        lines[line] = value;
                    }
                }
                parts.headers.remove(header::COOKIE);
                for v in lines {
                    parts.headers.append(header::COOKIE, v);
                }
            }
            // Too old (`maxlife`) or idle too long (`maxidle`): as if there were none; dates
            // more than a day ahead are not trusted either.
            let now = i64::from(unix_now());
            let stale = |date: u32, limit: i64| {
                date != 0 && limit > 0 && (now - i64::from(date) > limit || i64::from(date) - now > 86_400)
            };
            let valid = !stale(found.first, secs(cookie.maxlife)) && !stale(found.last, secs(cookie.maxidle));
            if valid {
                seen.last = found.last;
                seen.first = found.first;
            }
            if valid && !seen.ignore && !found.server.is_empty() {
                // The first server with this cookie that is up; else, forced, the first one.
                let named = || {
                    backend
                        .servers
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| s.cookie.as_deref() == Some(found.server.as_str()))
                };
                chosen = named()
                    .find(|(i, _)| backend.usable(*i))
                    .map(|(id, _)| Persist { id, forced: false })
                    .or_else(|| forced.then(|| named().next().map(|(id, _)| Persist { id, forced: true })).flatten());
                seen.direct = chosen.is_some();
                seen.server = chosen.map(|p| p.id);
            }
        }
    }
    let facts = Facts { req: Some(parts), ..Facts::of(who) };
    let (found, pending) = crate::stick::on_request(backend, &facts, chosen.is_some() || seen.ignore, forced);
    (chosen.or(found), seen, pending)
}

/// Stores the transaction's `stick` keys, and those its response gives, with server `id`.
pub(crate) fn stick_store(
    backend: &BackendRt,
    id: ServerId,
    pending: &mut Pending,
    who: &Who<'_>,
    (status, headers): (StatusCode, &HeaderMap),
) {
    if backend.sticking.is_empty() {
        return;
    }
    let facts = Facts { resp: Some(Resp { status, headers }), ..Facts::of(who) };
    crate::stick::on_response(backend, id, std::mem::take(pending), &facts);
}

/// The persistence cookie of a response, as HAProxy decides it: in insert mode a `Set-Cookie`
/// when the client did not come by a valid cookie, or its dates need refreshing (`maxidle`,
/// `maxlife`), unless the server set it itself under `preserve`, or `postonly` and not a POST,
/// or `ignore-persist`; in prefix and rewrite modes the server's own cookie is edited in
/// place; in passive mode nothing.
pub(crate) fn set_cookie(backend: &BackendRt, id: ServerId, seen: CookieSeen, headers: &mut HeaderMap) {
    let Some(cookie) = backend.cfg.cookie.as_ref() else { return };
    let Some(server) = backend.servers.get(id) else { return };
    let value: Option<HeaderValue> = match cookie.mode {
        CookieMode::Insert => {
            let now = unix_now();
            let dated = cookie.maxidle.is_some() || cookie.maxlife.is_some();
            let refresh = (dated || seen.last != 0) && (seen.last == 0 || seen.last < now)
                || cookie.maxlife.is_some() && seen.first == 0
                || cookie.maxlife.is_none() && seen.first != 0;
            // Served by another server than the cookie's (it was full, or a retry moved the
            // request): the client learns the new one.
            let direct = seen.direct && seen.server == Some(id);
            let wanted = (!direct || refresh) && (!cookie.postonly || seen.post) && !seen.ignore;
            if !wanted || cookie.preserve && super::cookie::sets_cookie(headers, &cookie.name) {
                None
            } else if dated && server.cookie.is_some() {
                let last = (now + 3) >> 2;
                let first = cookie.maxlife.map(|_| if seen.first != 0 { seen.first >> 2 } else { last });
                let text =
                    crate::snapshot::cookie::set_cookie_text(cookie, server.cookie.as_deref(), Some((last, first)));
                HeaderValue::from_str(&text).ok()
            } else {
                server.set_cookie.clone()
            }
        }
        CookieMode::Prefix => {
            if let Some(v) = server.cookie.as_deref() {
                super::cookie::prefix_set_cookie(headers, &cookie.name, v);
            }
            None
        }
        CookieMode::Rewrite => {
            if let Some(v) = server.cookie.as_deref() {
                super::cookie::rewrite_set_cookie(headers, &cookie.name, v);
            }
            None
        }
        CookieMode::Passive => None,
    };
    if let Some(value) = value {
        headers.append(header::SET_COOKIE, value);
        if cookie.nocache {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(algo: &Algorithm, target: &str) -> Option<Vec<u8>> {
        let (parts, ()) = http::Request::get(target).body(()).expect("request").into_parts();
        hash_key(algo, &parts, IpAddr::from([192, 0, 2, 1]))
    }

    #[test]
    fn uri_keys_as_haproxy_hashes_them() {
        let uri = |whole, path_only| Algorithm::Uri { whole, len: None, depth: None, path_only };
        assert_eq!(key(&uri(false, false), "/a/b?x=1").as_deref(), Some(&b"/a/b"[..]));
        assert_eq!(key(&uri(true, false), "/a/b?x=1").as_deref(), Some(&b"/a/b?x=1"[..]));
        assert_eq!(key(&uri(false, false), "http://h:8/a?x").as_deref(), Some(&b"http://h:8/a"[..]));
        assert_eq!(key(&uri(false, true), "http://h:8/a?x").as_deref(), Some(&b"/a"[..]));
        assert_eq!(key(&uri(true, true), "http://h:8/a?x").as_deref(), Some(&b"/a?x"[..]));
        let depth = Algorithm::Uri { whole: false, len: Some(4), depth: Some(2), path_only: false };
        assert_eq!(key(&depth, "/abcdef/gh/ij").as_deref(), Some(&b"/abc"[..]));
        assert_eq!(key(&Algorithm::Source, "/").as_deref(), Some(&[192, 0, 2, 1][..]));
    }
}
