//! HTTP/2 as fulcrum receives it: any bytes after the connection preface go to the h2 crate's
//! server with fulcrum's settings, and every request it accepts goes through the HTTP/1 rules
//! fulcrum applies before forwarding (`to_http1`): no panic, a bounded time, whatever comes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tokio::io::AsyncWriteExt;

fuzz_target!(|data: &[u8]| {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
    rt.block_on(async {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut input = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        input.extend_from_slice(data);
        let writer = tokio::spawn(async move {
            let _ = client.write_all(&input).await;
            let _ = client.shutdown().await;
            // Keep reading what the server writes, so that it never blocks on a full pipe.
            let mut sink = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut client, &mut sink).await;
        });
        let limits = fulcrum_proxy::h1::Limits { max_head: 15_360, max_headers: 101 };
        let serve = async {
            let mut builder = h2::server::Builder::new();
            builder.max_concurrent_streams(100).max_header_list_size(15_360).max_pending_accept_reset_streams(20);
            let Ok(mut conn) = builder.handshake::<_, bytes::Bytes>(server).await else { return };
            while let Some(Ok((req, mut respond))) = conn.accept().await {
                let (mut parts, _body) = req.into_parts();
                let status = match fulcrum_proxy::h2::to_http1(&mut parts, &limits) {
                    Ok(_) => 200,
                    Err(_) => 400,
                };
                let resp = http::Response::builder().status(status).body(()).unwrap_or_default();
                let _ = respond.send_response(resp, true);
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), serve).await;
        writer.abort();
    });
});
