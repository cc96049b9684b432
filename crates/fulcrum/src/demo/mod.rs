//! `fulcrum demo`: three origins and a balancer, driven by an haproxy.cfg built on the fly.
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use fulcrum_config::LoadOptions;
use fulcrum_proxy::Proxy;

mod origin;
use origin::Origin;

const NAMES: [&str; 3] = ["web1", "web2", "web3"];

pub fn demo(port: u16, origin_port: u16) -> ExitCode {
    let mut origins: Vec<Option<Origin>> = Vec::new();
    for (i, name) in NAMES.iter().enumerate() {
        let want = if origin_port == 0 { 0 } else { origin_port.saturating_add(i as u16) };
        match Origin::spawn(name, SocketAddr::from(([127, 0, 0, 1], want))) {
            Ok(o) => origins.push(Some(o)),
            Err(e) => {
                eprintln!("demo: cannot start origin {name} on 127.0.0.1:{want}: {e} (try --origin-port 0)");
                return ExitCode::from(1);
            }
        }
    }
    let addrs: Vec<SocketAddr> = origins.iter().flatten().map(|o| o.addr).collect();
    let cfg = demo_config(port, &addrs);
    let loaded = match fulcrum_config::load_str(&cfg, Path::new("demo.cfg"), &LoadOptions::default()) {
        Ok(l) => l,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return ExitCode::from(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let pages: std::sync::Arc<dyn fulcrum_proxy::LocalPages> = std::sync::Arc::new(fulcrum_admin::Admin::default());
        let proxy = match Proxy::start(loaded.model, 1, Some(pages)) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("demo: {e} (is something else on port {port}? try --port)");
                return ExitCode::from(1);
            }
        };
        print_tour(port, &addrs, &cfg);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        // Without a terminal (stdin closed) the demo keeps serving until a signal.
        let mut stdin_open = true;
        loop {
            tokio::select! {
                line = rx.recv(), if stdin_open => match line {
                    Some(line) => command(line.trim(), &mut origins, &addrs),
                    None => stdin_open = false,
                },
                _ = tokio::signal::ctrl_c() => break,
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => break,
            }
        }
        proxy.shutdown(Duration::from_secs(2)).await;
        ExitCode::SUCCESS
    })
}

fn demo_config(port: u16, addrs: &[SocketAddr]) -> String {
    let mut cfg = format!(
        "# The demo's configuration: a plain haproxy.cfg.\n\
         global\n    maxconn 1000\n\n\
         defaults\n    mode http\n    log global\n    option httplog\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    retries 2\n    option redispatch\n\n\
         frontend demo\n    bind 127.0.0.1:{port}\n    default_backend web\n    stats enable\n    stats uri /stats\n    stats refresh 2s\n\n\
         backend web\n    balance roundrobin\n    option httpchk GET /health\n    option forwardfor\n"
    );
    for (name, addr) in NAMES.iter().zip(addrs) {
        cfg.push_str(&format!("    server {name} {addr} check inter 1s fastinter 500ms rise 2 fall 2\n"));
    }
    cfg
}

fn print_tour(port: u16, addrs: &[SocketAddr], cfg: &str) {
    println!("fulcrum demo: balancing 127.0.0.1:{port} over three origins:");
    for (name, addr) in NAMES.iter().zip(addrs) {
        println!("    {name} on {addr}");
    }
    println!("\nTry:");
    println!("    curl http://127.0.0.1:{port}/              # 'served by web1', then web2, web3, ...");
    println!("    for i in 1 2 3 4 5 6; do curl -s http://127.0.0.1:{port}/; done");
    println!("    open http://127.0.0.1:{port}/stats         # the stats page (CSV: /stats;csv)");
    println!("\nType here to break things and watch health checks react (logged below):");
    println!("    sick web2    -> web2's /health answers 503: out of rotation after 2 failed checks");
    println!("    well web2    -> healthy again: back after 2 good checks");
    println!("    kill web2    -> web2 crashes; requests keep succeeding (retry + redispatch)");
    println!("    start web2   -> web2 comes back");
    println!("\nThe configuration in use:\n");
    for line in cfg.lines() {
        println!("    {line}");
    }
    println!();
}

fn command(line: &str, origins: &mut [Option<Origin>], addrs: &[SocketAddr]) {
    let (verb, name) = line.split_once(' ').unwrap_or((line, ""));
    let Some(i) = NAMES.iter().position(|n| *n == name.trim()) else {
        if !line.is_empty() {
            println!("usage: sick|well|kill|start web1|web2|web3");
        }
        return;
    };
    match verb {
        "sick" | "down" => match &origins[i] {
            Some(o) => {
                o.set_healthy(false);
                println!("{name}: /health now answers 503");
            }
            None => println!("{name} is not running"),
        },
        "well" | "up" => match &origins[i] {
            Some(o) => {
                o.set_healthy(true);
                println!("{name}: /health now answers 200");
            }
            None => println!("{name} is not running (start it)"),
        },
        "kill" => match origins[i].take() {
            Some(o) => {
                o.kill();
                println!("{name} killed");
            }
            None => println!("{name} is not running"),
        },
        "start" => {
            if origins[i].is_some() {
                println!("{name} is already running");
                return;
            }
            match Origin::spawn(NAMES[i], addrs[i]) {
                Ok(o) => {
                    origins[i] = Some(o);
                    println!("{name} started on {}", addrs[i]);
                }
                Err(e) => println!("{name}: {e}"),
            }
        }
        _ => println!("usage: sick|well|kill|start web1|web2|web3"),
    }
}
