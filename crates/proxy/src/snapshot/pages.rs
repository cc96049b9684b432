//! Error responses: HAProxy-style default pages, or the operator's `errorfile`s.
use std::collections::BTreeMap;

use bytes::Bytes;
use fulcrum_model::ErrorFile;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::{CompileError, ErrorFileError};

/// A prepared error response.
#[derive(Debug, Clone)]
pub struct ErrorPage {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Debug, Clone, Default)]
pub struct ErrorPages {
    custom: BTreeMap<u16, ErrorPage>,
}

impl ErrorPages {
    pub fn new(files: &BTreeMap<u16, ErrorFile>) -> Result<Self, CompileError> {
        let mut custom = BTreeMap::new();
        for (code, file) in files {
            let page = parse_errorfile(&file.content).map_err(|reason| CompileError::ErrorFile {
                code: *code,
                path: file.path.clone(),
                reason,
            })?;
            custom.insert(*code, page);
        }
        Ok(ErrorPages { custom })
    }

    pub fn get(&self, status: StatusCode) -> Option<&ErrorPage> {
        self.custom.get(&status.as_u16())
    }
}

/// The page for `status`: the backend's errorfile, else the frontend's, else the built-in one.
pub fn error_page(status: StatusCode, layers: &[&ErrorPages]) -> ErrorPage {
    layers.iter().find_map(|l| l.get(status)).cloned().unwrap_or_else(|| default_page(status))
}

fn default_page(status: StatusCode) -> ErrorPage {
    let reason = status.canonical_reason().unwrap_or("Error");
    let detail = match status.as_u16() {
        400 => "Your browser sent an invalid request.",
        408 => "Your browser didn't send a complete request in time.",
        413 => "The request entity is too large.",
        431 => "The request header fields are too large.",
        500 => "An internal server error occurred.",
        502 => "The server returned an invalid or incomplete response.",
        503 => "No server is available to handle this request.",
        504 => "The server didn't respond in time.",
        _ => "",
    };
    let body = format!("<html><body><h1>{} {}</h1>\n{}\n</body></html>\n", status.as_u16(), reason, detail);
    let mut headers = HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    ErrorPage { status, headers, body: Bytes::from(body) }
}

/// An errorfile is a raw HTTP response (status line, headers, blank line, body).
fn parse_errorfile(raw: &[u8]) -> Result<ErrorPage, ErrorFileError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let body_start = match response.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(ErrorFileError::Incomplete),
        Err(e) => return Err(ErrorFileError::NotHttp(e)),
    };
    let status = response.code.and_then(|c| StatusCode::from_u16(c).ok()).ok_or(ErrorFileError::NoStatus)?;
    let mut map = HeaderMap::new();
    for h in response.headers.iter() {
        // Framing is ours to set: the body is sent with its real length.
        if h.name.eq_ignore_ascii_case("content-length") || h.name.eq_ignore_ascii_case("connection") {
            continue;
        }
        let bad = || ErrorFileError::Header(h.name.to_string());
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| bad())?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| bad())?;
        map.append(name, value);
    }
    let body = Bytes::copy_from_slice(raw.get(body_start..).unwrap_or_default());
    Ok(ErrorPage { status, headers: map, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_haproxy_errorfile() {
        let raw = b"HTTP/1.0 503 Service Unavailable\r\nCache-Control: no-cache\r\nConnection: close\r\nContent-Type: text/html\r\n\r\n<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n";
        let page = parse_errorfile(raw).expect("valid errorfile");
        assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(page.headers.get("connection").is_none());
        assert!(page.body.starts_with(b"<html>"));
        assert!(parse_errorfile(b"garbage").is_err());
        assert!(parse_errorfile(b"HTTP/1.0 503 x\r\n").is_err());
    }
}
