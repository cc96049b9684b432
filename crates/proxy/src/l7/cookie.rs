//! Cookie persistence (`cookie NAME insert|prefix|rewrite`). The `Cookie` header is split on
//! `;` and `=` only: values are passed through untouched.
use fulcrum_model::{Cookie, CookieMode};
use http::header::{self, HeaderMap, HeaderValue};

use crate::snapshot::cookie::b64_to_s30;

/// The Cookie line to replace, and what it becomes (the persistence cookie taken out).
pub type Rewrite = Option<(usize, HeaderValue)>;

/// The persistence cookie a request carries: the server's value in it, and the dates
/// `maxidle`/`maxlife` put in (seconds since the epoch; 0: none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub server: String,
    pub last: u32,
    pub first: u32,
}

/// Whether a request carries the persistence cookie: what it holds, and, when the line
/// holding it must change (insert with `indirect` drops ours; prefix strips `SRV~`), which
/// `Cookie` line it is and what replaces it.
pub fn find(cookie: &Cookie, headers: &HeaderMap) -> Option<(Found, Rewrite)> {
    let strips = cookie.mode == CookieMode::Prefix || (cookie.mode == CookieMode::Insert && cookie.indirect);
    for (line, value) in headers.get_all(header::COOKIE).iter().enumerate() {
        let Ok(text) = value.to_str() else { continue };
        let mut found = None;
        let mut kept: Vec<String> = Vec::new();
        for pair in text.split(';') {
            let pair = pair.trim();
            let (name, val) = pair.split_once('=').unwrap_or((pair, ""));
            if name != cookie.name || found.is_some() {
                kept.push(pair.to_string());
                continue;
            }
            let (server, rest) = match cookie.mode {
                CookieMode::Prefix => match val.split_once('~') {
                    Some((srv, rest)) => (srv, Some(rest)),
                    None => (val, None),
                },
                _ => (val, None),
            };
            let mut dates = [0u32; 2];
            let server = match (cookie.mode, server.split_once('|')) {
                (CookieMode::Prefix, _) | (_, None) => server,
                (_, Some((srv, tail))) => {
                    for (slot, field) in dates.iter_mut().zip(tail.split('|')) {
                        *slot = field.get(..5).and_then(b64_to_s30).filter(|v| *v > 0).map_or(0, |v| v << 2);
                    }
                    srv
                }
            };
            found = Some(Found { server: server.to_string(), last: dates[0], first: dates[1] });
            match (cookie.mode, rest) {
                (CookieMode::Prefix, Some(rest)) => kept.push(format!("{name}={rest}")),
                (CookieMode::Insert, _) if cookie.indirect => {}
                _ => kept.push(pair.to_string()),
            }
        }
        // Ours, even when it names no server (a stale or forged value): with `indirect` the
        // server never sees it, as in HAProxy.
        if let Some(found) = found {
            let rewritten = strips.then(|| HeaderValue::from_str(&kept.join("; ")).ok()).flatten();
            return Some((found, rewritten.map(|v| (line, v))));
        }
    }
    None
}

/// Whether the response already sets the cookie `name`.
pub fn sets_cookie(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| v.to_str().is_ok_and(|t| t.split_once('=').is_some_and(|(n, _)| n.trim() == name)))
}

/// Prefix mode: `Set-Cookie: NAME=v` from the server becomes `NAME=SRV~v`.
pub fn prefix_set_cookie(headers: &mut HeaderMap, name: &str, server: &str) {
    edit_set_cookie(headers, name, |v| format!("{server}~{v}"));
}

/// Rewrite mode: the server's `Set-Cookie: NAME=...` value is replaced by the server's id.
pub fn rewrite_set_cookie(headers: &mut HeaderMap, name: &str, server: &str) {
    edit_set_cookie(headers, name, |_| server.to_string());
}

fn edit_set_cookie(headers: &mut HeaderMap, name: &str, edit: impl Fn(&str) -> String) {
    let values: Vec<HeaderValue> = headers.get_all(header::SET_COOKIE).iter().cloned().collect();
    if values.is_empty() {
        return;
    }
    headers.remove(header::SET_COOKIE);
    for v in values {
        let new = v.to_str().ok().and_then(|text| {
            let (pair, attrs) = text.split_once(';').map(|(p, a)| (p, Some(a))).unwrap_or((text, None));
            let (n, val) = pair.split_once('=')?;
            (n.trim() == name).then(|| {
                let mut out = format!("{}={}", n.trim(), edit(val));
                if let Some(a) = attrs {
                    out.push(';');
                    out.push_str(a);
                }
                out
            })
        });
        let value = new.and_then(|n| HeaderValue::from_str(&n).ok()).unwrap_or(v);
        headers.append(header::SET_COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_rewrites_only_the_named_cookie() {
        let mut h = HeaderMap::new();
        h.append(header::SET_COOKIE, HeaderValue::from_static("PHPSESSID=abc; path=/"));
        h.append(header::SET_COOKIE, HeaderValue::from_static("other=1"));
        prefix_set_cookie(&mut h, "PHPSESSID", "WeB1");
        let all: Vec<_> = h.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap_or("")).collect();
        assert_eq!(all, vec!["PHPSESSID=WeB1~abc; path=/", "other=1"]);
    }
}
