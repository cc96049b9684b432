//! `fulcrum run`: load, start, then serve signals: SIGHUP reloads, SIGTERM/SIGINT drain.
use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;
use std::time::Duration;

use fulcrum_admin::{Admin, VrrpRow};
use fulcrum_config::{LoadOptions, Loaded};
use fulcrum_model::{Model, Vrrp};
use fulcrum_proxy::{LocalPages, Proxy, Shared};
use fulcrum_vrrp_io::{BackendStatus, Runtime, RuntimeOptions, Staged};
use tokio::signal::unix::{signal, SignalKind};

/// An error as the command line shows it: the libraries' typed errors, turned into text here.
#[derive(Debug)]
pub struct Message(String);

impl<E: std::error::Error> From<E> for Message {
    fn from(e: E) -> Self {
        Message(e.to_string())
    }
}

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

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
        let admin = Arc::new(Admin::default());
        let threads = threads_for(&loaded.model, threads);
        let vrrp = loaded.model.vrrp.clone();
        let mut proxy = if loaded.model.frontends.is_empty() && !vrrp.instances.is_empty() {
            None
        } else {
            match Proxy::start(loaded.model, threads, Some(admin.clone() as Arc<dyn LocalPages>)) {
                Ok(p) => Some(p),
                Err(e) => {
                    eprintln!("fulcrum: {e}");
                    return ExitCode::from(1);
                }
            }
        };
        let mut vrrp_rt = None;
        if !vrrp.instances.is_empty() {
            match start_vrrp(&vrrp, proxy.as_ref(), &admin) {
                Ok(rt) => vrrp_rt = Some(rt),
                Err(e) => {
                    eprintln!("fulcrum: {e}");
                    if let Some(p) = proxy {
                        p.shutdown(Duration::ZERO).await;
                    }
                    return ExitCode::from(1);
                }
            }
        }
        tracing::info!(threads, "fulcrum {} started", env!("CARGO_PKG_VERSION"));
        let outcome = serve_signals(&mut proxy, &mut vrrp_rt, &admin, files, opts, access_log).await;
        // Give the addresses away first (priority 0: the backup takes over in Skew_Time), then
        // drain the connections that are still here.
        if let Some(rt) = vrrp_rt {
            rt.shutdown().await;
        }
        if let Some(proxy) = proxy {
            let grace = proxy.shared().snapshot.load().model.global.hard_stop_after;
            proxy.shutdown(grace).await;
        }
        tracing::info!("stopped");
        outcome
    })
}

/// `track_backend` answers from the proxy's live state.
struct ProxyBackends(Arc<Shared>);

impl BackendStatus for ProxyBackends {
    fn backend_usable(&self, name: &str) -> bool {
        self.0.backend_usable(name)
    }
}

fn start_vrrp(vrrp: &Vrrp, proxy: Option<&Proxy>, admin: &Arc<Admin>) -> Result<Runtime, Message> {
    start_staged_vrrp(Runtime::stage_new(vrrp)?, proxy, admin)
}

fn start_staged_vrrp(staged: Staged, proxy: Option<&Proxy>, admin: &Arc<Admin>) -> Result<Runtime, Message> {
    let guard_program = std::env::current_exe().map_err(|e| Message(format!("cannot find the fulcrum binary: {e}")))?;
    let backends = proxy.map(|p| Arc::new(ProxyBackends(p.shared().clone())) as Arc<dyn BackendStatus>);
    let rt = Runtime::start_staged(staged, RuntimeOptions { guard_program: Some(guard_program), backends })?;
    tokio::spawn(show_vrrp_on_stats(rt.status(), admin.clone()));
    Ok(rt)
}

/// Mirror the VRRP instances' state into the stats page, for as long as the runtime lives.
async fn show_vrrp_on_stats(
    mut status: tokio::sync::watch::Receiver<std::collections::BTreeMap<String, fulcrum_vrrp_io::InstanceStatus>>,
    admin: Arc<Admin>,
) {
    loop {
        let rows = status
            .borrow_and_update()
            .iter()
            .map(|(name, s)| VrrpRow {
                instance: name.clone(),
                state: format!("{:?}", s.state).to_uppercase(),
                priority: s.priority,
                master: s.master.map(|m| m.to_string()),
            })
            .collect();
        admin.set_vrrp_rows(rows);
        if status.changed().await.is_err() {
            return;
        }
    }
}

/// Applies a reloaded model, all or nothing as far as it can: every VRRP instance to start or
/// restart is prepared first (interface, source address, socket), then the proxy reloads (it
/// binds new listeners before swapping), and only then are VRRP instances stopped and started.
/// An error in either of the first two steps leaves everything running as it was.
async fn reload(
    proxy: &mut Option<Proxy>,
    vrrp_rt: &mut Option<Runtime>,
    admin: &Arc<Admin>,
    model: Model,
    threads: usize,
) -> Result<(), Message> {
    let vrrp = model.vrrp.clone();
    let staged = match vrrp_rt {
        Some(rt) => Some(rt.stage(&vrrp)?),
        None if !vrrp.instances.is_empty() => Some(Runtime::stage_new(&vrrp)?),
        None => None,
    };
    match proxy {
        Some(p) => p.reload(model)?,
        None if !model.frontends.is_empty() || vrrp.instances.is_empty() => {
            let started = Proxy::start(model, threads, Some(admin.clone() as Arc<dyn LocalPages>))?;
            // VRRP ran without a proxy until now: `track_backend` now has backends to watch
            // (its instances are on the stats page already: the admin side outlives proxies).
            if let Some(rt) = vrrp_rt.as_ref() {
                rt.set_backends(Arc::new(ProxyBackends(started.shared().clone())));
            }
            *proxy = Some(started);
        }
        None => {}
    }
    match (vrrp_rt.as_mut(), staged) {
        (Some(rt), Some(staged)) => rt.commit(staged).await,
        // VRRP configured for the first time: only starting the crash guard can still fail.
        (None, Some(staged)) => *vrrp_rt = Some(start_staged_vrrp(staged, proxy.as_ref(), admin)?),
        (_, None) => {}
    }
    Ok(())
}

async fn serve_signals(
    proxy: &mut Option<Proxy>,
    vrrp_rt: &mut Option<Runtime>,
    admin: &Arc<Admin>,
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
                        let threads = threads_for(&loaded.model, None);
                        match reload(proxy, vrrp_rt, admin, loaded.model, threads).await {
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
