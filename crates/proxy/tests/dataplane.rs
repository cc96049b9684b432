//! The data plane driven directly with a Model built in code (no config parsing involved).
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use fulcrum_model::{Backend, ForwardFor, Frontend, Model, Server};
use fulcrum_proxy::Proxy;
use fulcrum_testkit::{free_addr, Origin};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    let req = http::Request::get(path).header("host", "t").body(Full::new(Bytes::new())).expect("req");
    let resp = tx.send_request(req).await.expect("send");
    let status = resp.status().as_u16();
    let by = resp.headers().get("x-served-by").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, by, String::from_utf8_lossy(&body).into_owned())
}

fn model(bind: SocketAddr, servers: &[(&str, SocketAddr)]) -> Model {
    let mut fe = Frontend::new("fe");
    fe.binds.push(bind);
    fe.default_backend = Some("be".into());
    let mut be = Backend::new("be");
    be.forwardfor = Some(ForwardFor::default());
    be.redispatch = true;
    be.timeout_connect = Duration::from_millis(300);
    for (name, addr) in servers {
        be.servers.push(Server::new(*name, *addr));
    }
    Model { frontends: vec![fe], backends: vec![be], ..Model::default() }
}

#[test]
fn round_robin_retry_and_reload() {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let a = Origin::spawn("a", any).expect("origin");
    let b = Origin::spawn("b", any).expect("origin");
    let dead = free_addr();
    let bind = free_addr();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    rt.block_on(async {
        let mut proxy =
            Proxy::start(model(bind, &[("a", a.addr), ("b", b.addr), ("dead", dead)]), 2, None).expect("start");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut seen = std::collections::BTreeMap::new();
        for _ in 0..30 {
            let (status, by, _) = get(bind, "/").await;
            assert_eq!(status, 200);
            *seen.entry(by).or_insert(0) += 1;
        }
        // The dead server's turns are retried on the live ones: nothing fails.
        assert_eq!(seen.values().sum::<usize>(), 30);
        assert_eq!(seen.len(), 2, "{seen:?}");
        let (_, _, headers) = get(bind, "/headers").await;
        assert!(headers.contains("x-forwarded-for: 127.0.0.1"), "{headers}");

        proxy.reload(model(bind, &[("b", b.addr)])).expect("reload");
        for _ in 0..5 {
            assert_eq!(get(bind, "/").await.1, "b");
        }
        proxy.shutdown(Duration::from_secs(1)).await;
    });
}
