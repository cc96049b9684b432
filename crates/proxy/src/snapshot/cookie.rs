//! Persistence cookies as compiled and written: the `Set-Cookie` text of insert mode, the
//! dates `maxidle`/`maxlife` put in it (HAProxy's five base64 digits), and the values of
//! `cookie ... dynamic`.
use fulcrum_model::Cookie;

use super::rules::B64;

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
}
