//! A proxy built from an in-code Model, for profiling the data plane on its own:
//! `plain_proxy BIND ORIGIN [ORIGIN...]` (one worker thread, roundrobin, forwardfor,
//! http-reuse always).
use std::net::SocketAddr;
use std::time::Duration;

use fulcrum_model::{Backend, ForwardFor, Frontend, HttpReuse, Model, Server};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<SocketAddr> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let Some((bind, origins)) = args.split_first() else {
        eprintln!("usage: plain_proxy BIND ORIGIN [ORIGIN...]");
        std::process::exit(2);
    };
    let mut fe = Frontend::new("fe");
    fe.binds.push(*bind);
    fe.default_backend = Some("be".into());
    let mut be = Backend::new("be");
    be.forwardfor = Some(ForwardFor::default());
    be.http_reuse = HttpReuse::Always;
    for (i, o) in origins.iter().enumerate() {
        be.servers.push(Server::new(format!("o{i}"), *o));
    }
    let model = Model { frontends: vec![fe], backends: vec![be], ..Model::default() };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let _proxy = fulcrum_proxy::Proxy::start(model, 1, None).expect("start");
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
}
