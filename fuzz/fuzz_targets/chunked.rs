//! A chunked body read as it streams in: whatever the split of the bytes into reads, the same
//! data, the same end, or an error, and never a panic.
#![no_main]
use fulcrum_proxy::h1::Chunked;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else { return };
    let whole = {
        let mut c = Chunked::new();
        let mut out = Vec::new();
        c.scan(body, |d| out.extend_from_slice(d)).map(|used| (used, out, c.is_done()))
    };
    let cut = usize::from(split).min(body.len());
    let pieces = {
        let mut c = Chunked::new();
        let mut out = Vec::new();
        c.scan(&body[..cut], |d| out.extend_from_slice(d)).and_then(|first| {
            let rest = if c.is_done() { 0 } else { c.scan(&body[cut..], |d| out.extend_from_slice(d))? };
            Ok((first + rest, out, c.is_done()))
        })
    };
    match (whole, pieces) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("whole {a:?} vs in two reads {b:?}"),
    }
});
