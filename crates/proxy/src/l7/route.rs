//! Which server a request should go to before the scheduler is asked: the key a hash
//! algorithm hashes, and the server persistence (a cookie, a stick table) points at; and the
//! persistence cookie a response sets.
use std::net::IpAddr;

use fulcrum_balance::ServerId;
use fulcrum_model::{Algorithm, CookieMode};
use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;

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

/// The server persistence points at (cookie or stick table), whether the client already
/// holds a valid persistence cookie, and the keys the `stick` rules store once a server
/// serves. Strips what the server must not see (`indirect`, prefix).
pub(crate) fn persistence(
    backend: &BackendRt,
    parts: &mut http::request::Parts,
    who: &Who<'_>,
) -> (Option<ServerId>, bool, Pending) {
    if let Some(cookie) = &backend.cfg.cookie {
        if let Some((id, rewritten)) = super::cookie::find_server(backend, cookie, &parts.headers) {
            let valid = id.filter(|id| backend.usable(*id));
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
            if valid.is_some() {
                let (_, pending) =
                    crate::stick::on_request(backend, &Facts { req: Some(parts), ..Facts::of(who) }, true);
                return (valid, true, pending);
            }
        }
    }
    let (found, pending) = crate::stick::on_request(backend, &Facts { req: Some(parts), ..Facts::of(who) }, false);
    (found, false, pending)
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

/// The persistence cookie of a response: `Set-Cookie` for insert mode (unless the client
/// already holds a valid one, or the server set it itself under `preserve`); in prefix and
/// rewrite modes the server's own cookie is edited in place.
pub(crate) fn set_cookie(backend: &BackendRt, id: ServerId, client_had_it: bool, headers: &mut HeaderMap) {
    let Some(cookie) = backend.cfg.cookie.as_ref() else { return };
    let Some(server) = backend.servers.get(id) else { return };
    let value: Option<HeaderValue> = match cookie.mode {
        CookieMode::Insert => {
            if cookie.preserve && super::cookie::sets_cookie(headers, &cookie.name) {
                None
            } else {
                (!client_had_it).then(|| server.set_cookie.clone()).flatten()
            }
        }
        CookieMode::Prefix => {
            if let Some(v) = server.cfg.cookie.as_deref() {
                super::cookie::prefix_set_cookie(headers, &cookie.name, v);
            }
            None
        }
        CookieMode::Rewrite => {
            if let Some(v) = server.cfg.cookie.as_deref() {
                super::cookie::rewrite_set_cookie(headers, &cookie.name, v);
            }
            None
        }
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
