//! Cookie persistence (`cookie NAME insert|prefix|rewrite`). The `Cookie` header is split on
//! `;` and `=` only: values are passed through untouched.
use fulcrum_model::{Cookie, CookieMode};
use http::header::{self, HeaderMap, HeaderValue};

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

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A 30-bit value as HAProxy's cookie dates write it: five base64 digits, high bits first.
pub fn s30_to_b64(v: u32) -> String {
    (0..5).map(|i| char::from(B64[((v >> (24 - 6 * i)) & 0x3f) as usize])).collect()
}

/// The value of five base64 digits (None when one is not a digit).
pub fn b64_to_s30(text: &str) -> Option<u32> {
    text.bytes().try_fold(0u32, |acc, b| Some((acc << 6) | B64.iter().position(|c| *c == b)? as u32))
}

/// The `Set-Cookie` value of insert mode: `value` (None: the removal of a cookie, for a server
/// without one), the dates `maxidle`/`maxlife` want, then path, domains and attributes.
pub fn set_cookie_text(cookie: &Cookie, value: Option<&str>, dates: Option<(u32, Option<u32>)>) -> String {
    let mut v = match value {
        None => format!("{}=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/", cookie.name),
        Some(value) => {
            let mut v = format!("{}={value}", cookie.name);
            if let Some((last, first)) = dates {
                v.push('|');
                v.push_str(&s30_to_b64(last));
                if let Some(first) = first {
                    v.push('|');
                    v.push_str(&s30_to_b64(first));
                }
            }
            v.push_str("; path=/");
            v
        }
    };
    if !cookie.domains.is_empty() {
        v.push_str("; domain=");
        v.push_str(&cookie.domains.join("; domain="));
    }
    if cookie.httponly {
        v.push_str("; HttpOnly");
    }
    if cookie.secure {
        v.push_str("; Secure");
    }
    for a in &cookie.attrs {
        v.push_str("; ");
        v.push_str(a);
    }
    v
}

/// `cookie ... dynamic`: the value HAProxy gives a server without `cookie`: XXH64 (seed 0) of
/// the key, the server's address (4 or 16 bytes) and its port (4 bytes, big-endian), in hex.
pub fn dynamic_value(key: &str, addr: std::net::SocketAddr) -> String {
    let mut buf = key.as_bytes().to_vec();
    match addr.ip() {
        std::net::IpAddr::V4(v4) => buf.extend_from_slice(&v4.octets()),
        std::net::IpAddr::V6(v6) => buf.extend_from_slice(&v6.octets()),
    }
    buf.extend_from_slice(&u32::from(addr.port()).to_be_bytes());
    format!("{:016x}", xxhash_rust::xxh64::xxh64(&buf, 0))
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
    fn dates_as_haproxy_writes_them() {
        for v in [0u32, 1, 0x3fff_ffff, 441_234_567] {
            assert_eq!(b64_to_s30(&s30_to_b64(v)), Some(v));
        }
        assert_eq!(s30_to_b64(1), "AAAAB");
        assert_eq!(b64_to_s30("AA!AA"), None);
    }

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
