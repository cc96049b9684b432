//! A client's request head, with the body framing it declares: a request, "not yet", or a
//! reason to answer 400, never a panic; the head the proxy writes from it parses again.
#![no_main]
use bytes::BytesMut;
use fulcrum_proxy::h1::{parse_request, write_request_head, Chunked, Framing, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for limits in [Limits::HAPROXY, Limits { max_head: 256, max_headers: 4 }] {
        let mut buf = BytesMut::from(data);
        let Ok(Some(req)) = parse_request(&mut buf, &limits) else { continue };
        if req.framing == Framing::Chunked {
            let _ = Chunked::new().scan(&buf, |_| {});
        }
        let mut out = Vec::new();
        write_request_head(&mut out, &req.head.method, &req.head.uri, &req.head.headers, ([192, 0, 2, 1], 80).into());
        let mut again = BytesMut::from(&out[..]);
        let reparsed = parse_request(&mut again, &Limits { max_head: usize::MAX, max_headers: 32767 });
        assert!(matches!(reparsed, Ok(Some(_))), "{:?} from {:?}", reparsed, String::from_utf8_lossy(&out));
    }
});
