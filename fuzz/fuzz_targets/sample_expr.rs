//! Sample expressions and log-format strings (`http-request set-header X %[req.hdr(host),lower]`):
//! any text parses into a format or an error with a message, never a panic; a format that
//! parses compiles (its regexes are valid) and renders for a request without panicking,
//! whatever its converters do to the values (fields, byte ranges, masks, arithmetic).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let response = first & 1 == 1;
    // A value alone, or a whole log-format string.
    if first & 2 == 2 {
        if let Err(e) = fulcrum_config::haproxy_samples::sample(&text, response) {
            assert!(!e.is_empty());
        }
        return;
    }
    match fulcrum_config::haproxy_samples::log_format(&text, response) {
        Err(e) => assert!(!e.is_empty()),
        Ok(format) => {
            let req = http::Request::get("/a/b//c?x=1&y=%20")
                .header("host", "Example.COM:8080")
                .header("cookie", "a=1; b=2")
                .header("x-list", "1, 2,,3")
                .body(())
                .expect("request")
                .into_parts()
                .0;
            let client = "192.0.2.7:4567".parse().expect("addr");
            let bind = "[2001:db8::1]:443".parse().expect("addr");
            let rendered = fulcrum_proxy::render_request(&format, &req, client, bind);
            assert!(rendered.is_ok(), "a parsed format compiles: {:?}", rendered.err());
        }
    }
});
