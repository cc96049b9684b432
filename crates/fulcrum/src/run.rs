//! `fulcrum run`: load, start, then serve signals: SIGHUP reloads, SIGTERM/SIGINT drain.
use std::path::PathBuf;
use std::process::ExitCode;

use fulcrum_config::{LoadOptions, Loaded, Model};
use fulcrum_proxy::Proxy;
use tokio::signal::unix::{signal, SignalKind};

pub fn load(files: &[PathBuf], opts: &LoadOptions) -> Result<Loaded, String> {
    match fulcrum_config::load_files(files, opts) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("{w}");
            }
            Ok(loaded)
        }
        Err(errors) => Err(errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")),
    }
}

pub fn threads_for(model: &Model, cli: Option<usize>) -> usize {
    cli.or(model.global.nbthread)
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
        .max(1)
}

pub fn run(files: &[PathBuf], opts: &LoadOptions, threads: Option<usize>, access_log: Option<PathBuf>) -> ExitCode {
    let mut loaded = match load(files, opts) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    if access_log.is_some() {
        loaded.model.global.access_log = access_log.clone();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fulcrum: cannot start the control runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let threads = threads_for(&loaded.model, threads);
        let mut proxy = match Proxy::start(loaded.model, threads) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("fulcrum: {e}");
                return ExitCode::from(1);
            }
        };
        tracing::info!(threads, "fulcrum {} started", env!("CARGO_PKG_VERSION"));
        let outcome = serve_signals(&mut proxy, files, opts, access_log).await;
        let grace = proxy.shared().snapshot.load().model.global.hard_stop_after;
        proxy.shutdown(grace).await;
        tracing::info!("stopped");
        outcome
    })
}

async fn serve_signals(
    proxy: &mut Proxy,
    files: &[PathBuf],
    opts: &LoadOptions,
    access_log: Option<PathBuf>,
) -> ExitCode {
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) =
        (signal(SignalKind::hangup()), signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        eprintln!("fulcrum: cannot install signal handlers");
        return ExitCode::from(1);
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading {}", files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "));
                match load(files, opts) {
                    Ok(mut loaded) => {
                        if access_log.is_some() {
                            loaded.model.global.access_log = access_log.clone();
                        }
                        match proxy.reload(loaded.model) {
                            Ok(()) => tracing::info!("reload applied"),
                            Err(e) => tracing::error!("reload failed, keeping the running configuration: {e}"),
                        }
                    }
                    Err(e) => tracing::error!("reload failed, keeping the running configuration:\n{e}"),
                }
            }
            _ = term.recv() => { tracing::info!("SIGTERM: draining"); return ExitCode::SUCCESS; }
            _ = int.recv() => { tracing::info!("SIGINT: draining"); return ExitCode::SUCCESS; }
        }
    }
}
