//! A server's response head: a response, "not yet", or a reason to answer 502, never a panic;
//! the head the proxy writes from it parses again.
#![no_main]
use bytes::BytesMut;
use fulcrum_proxy::h1::{parse_response, write_response_head, Limits};
use http::Method;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for method in [Method::GET, Method::HEAD] {
        let mut buf = BytesMut::from(data);
        let Ok(Some(resp)) = parse_response(&mut buf, &Limits::HAPROXY, &method) else { continue };
        let mut out = Vec::new();
        write_response_head(&mut out, resp.status, &resp.reason, &resp.headers);
        let mut again = BytesMut::from(&out[..]);
        let reparsed = parse_response(&mut again, &Limits { max_head: usize::MAX, max_headers: 32767 }, &method);
        assert!(matches!(reparsed, Ok(Some(_))), "{:?} from {:?}", reparsed, String::from_utf8_lossy(&out));
    }
});
