//! `fulcrum run` (and `haproxy` in the foreground): load, start, then serve signals. fulcrum's
//! own: SIGHUP reloads, SIGTERM/SIGINT drain. HAProxy's: SIGUSR2 or SIGHUP reloads, SIGUSR1
//! drains (soft stop), SIGTERM/SIGINT stop now (hard stop).
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

/// Take over the inherited listeners (`fd@N`) the model binds, and hand them to the proxy,
/// which then serves their addresses from them instead of binding. The others stay the
/// parent's business.
pub fn adopt_inherited(model: &Model) {
    for (fd, addr) in crate::inherited() {
        if !model.frontends.iter().any(|f| f.binds.contains(addr)) {
            continue;
        }
        match crate::sys::adopt(*fd).and_then(fulcrum_proxy::offer_listener) {
            Ok(_) => tracing::debug!(fd, %addr, "serving an inherited listener"),
            // Already taken at start or by an earlier reload: the proxy has it.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {}
            Err(e) => tracing::warn!(fd, %addr, "inherited listener cannot be used: {e}"),
        }
    }
}

pub fn threads_for(model: &Model, cli: Option<usize>) -> usize {
    cli.or(model.global.nbthread)
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
        .max(1)
}

/// Which signals mean what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signals {
    Fulcrum,
    Haproxy,
    /// keepalived's: SIGHUP reloads, SIGTERM/SIGINT stop (addresses released first), SIGUSR1
    /// and SIGUSR2 ask for the data and stats dumps.
    Keepalived,
}

/// How a started process behaves, beyond its configuration.
pub struct RunOptions {
    pub threads: Option<usize>,
    pub access_log: Option<PathBuf>,
    pub signals: Signals,
    /// Told when ready, reloading and stopping (systemd's `NOTIFY_SOCKET`, or the parent
    /// of a daemon waiting for its start).
    pub notify: Option<crate::notify::Notifier>,
    /// Processes told to stop once this one serves (`-sf`: SIGUSR1, `-st`: SIGTERM).
    pub stop_old: Vec<(u32, i32)>,
    /// Started in the background (`-D`, keepalived without `-n`): once serving, standard
    /// error (the starter's pipe, closed when it returns) goes to /dev/null.
    pub background: bool,
}

pub fn run(files: &[PathBuf], opts: &LoadOptions, threads: Option<usize>, access_log: Option<PathBuf>) -> ExitCode {
    let loaded = match load(files, opts) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let run = RunOptions {
        threads,
        access_log,
        signals: Signals::Fulcrum,
        notify: None,
        stop_old: Vec::new(),
        background: false,
    };
    serve(loaded, files, opts, run)
}

/// Start from a loaded configuration; `files` and `opts` are read again on reload.
pub fn serve(mut loaded: Loaded, files: &[PathBuf], opts: &LoadOptions, run: RunOptions) -> ExitCode {
    let RunOptions { threads, access_log, signals, notify, stop_old, background } = run;
    if access_log.is_some() {
        loaded.model.global.access_log = access_log.clone();
    }
    adopt_inherited(&loaded.model);
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
        let current = loaded.model.clone();
        let (jobs_tx, jobs) = tokio::sync::mpsc::channel(16);
        let socket = current.global.control_socket.clone().unwrap_or_else(|| crate::ctl::DEFAULT_SOCKET.into());
        let configured = current.global.control_socket.is_some();
        let _control = match crate::ctl::server::listen(&socket, configured, jobs_tx) {
            Ok(c) => Some(c),
            Err(why) if current.global.control_socket.is_some() => {
                eprintln!("fulcrum: control socket: {why}");
                return ExitCode::from(1);
            }
            Err(why) => {
                tracing::debug!("control socket: {why}");
                None
            }
        };
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
        let notifier = notify;
        for (pid, sig) in stop_old {
            if let Err(e) = crate::sys::kill(pid, sig) {
                tracing::warn!(pid, "cannot signal the old process: {e}");
            }
        }
        if let Some(n) = &notifier {
            n.send(&format!("READY=1\nMAINPID={}", std::process::id()));
        }
        if background {
            if let Err(e) = crate::sys::silence_stderr() {
                tracing::warn!("cannot point standard error at /dev/null: {e}");
            }
        }
        let ctx =
            SignalContext { files, opts, access_log, signals, notifier: notifier.as_ref(), jobs, current, threads };
        let (outcome, stop) = serve_signals(&mut proxy, &mut vrrp_rt, &admin, ctx).await;
        if let Some(n) = &notifier {
            n.send("STOPPING=1");
        }
        // Give the addresses away first (priority 0: the backup takes over in Skew_Time), then
        // drain the connections that are still here.
        if let Some(rt) = vrrp_rt {
            rt.shutdown().await;
        }
        if let Some(proxy) = proxy {
            let grace = match stop {
                Stop::Soft => proxy.shared().snapshot.load().model.global.hard_stop_after,
                Stop::Hard => Duration::ZERO,
            };
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

/// How the process stops: finishing its connections (within `hard-stop-after`) or now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Soft,
    Hard,
}

struct SignalContext<'a> {
    files: &'a [PathBuf],
    opts: &'a LoadOptions,
    access_log: Option<PathBuf>,
    signals: Signals,
    notifier: Option<&'a crate::notify::Notifier>,
    /// Requests from the control socket.
    jobs: tokio::sync::mpsc::Receiver<crate::ctl::server::Job>,
    /// The running Model: the files' as last loaded, with the control socket's changes.
    current: Model,
    threads: usize,
}

async fn serve_signals(
    proxy: &mut Option<Proxy>,
    vrrp_rt: &mut Option<Runtime>,
    admin: &Arc<Admin>,
    mut ctx: SignalContext<'_>,
) -> (ExitCode, Stop) {
    let (Ok(mut hup), Ok(mut term), Ok(mut int), Ok(mut usr1), Ok(mut usr2)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::user_defined1()),
        signal(SignalKind::user_defined2()),
    ) else {
        eprintln!("fulcrum: cannot install signal handlers");
        return (ExitCode::from(1), Stop::Hard);
    };
    let haproxy = ctx.signals == Signals::Haproxy;
    let keepalived = ctx.signals == Signals::Keepalived;
    // fulcrum's own stop drains; HAProxy's SIGTERM stops at once and SIGUSR1 drains.
    let on_term = if haproxy { Stop::Hard } else { Stop::Soft };
    loop {
        let why = tokio::select! {
            _ = hup.recv() => "SIGHUP",
            _ = usr1.recv(), if haproxy || keepalived => {
                if keepalived {
                    tracing::warn!("SIGUSR1: the data dump (/tmp/keepalived.data) is not written by fulcrum yet");
                    continue;
                }
                tracing::info!("SIGUSR1: soft stop, finishing the connections in progress");
                return (ExitCode::SUCCESS, Stop::Soft);
            }
            _ = usr2.recv(), if haproxy || keepalived => {
                if keepalived {
                    tracing::warn!("SIGUSR2: the stats dump (/tmp/keepalived.stats) is not written by fulcrum yet");
                    continue;
                }
                "SIGUSR2"
            }
            Some((request, reply)) = ctx.jobs.recv() => {
                let snap = proxy.as_ref().map(|p| p.shared().snapshot.load_full());
                let outcome = crate::ctl::server::execute(&request, &ctx.current, snap.as_ref());
                let mut response = outcome.response;
                if let Some(model) = outcome.model {
                    match reload(proxy, vrrp_rt, admin, model.clone(), ctx.threads).await {
                        Ok(()) => {
                            tracing::info!("control socket: {} applied", request.args.join(" "));
                            ctx.current = model;
                        }
                        Err(e) => {
                            response.code = 255;
                            response.stderr.push_str(&format!("{e}\n"));
                        }
                    }
                }
                let _ = reply.send(response);
                continue;
            }
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); return (ExitCode::SUCCESS, on_term); }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); return (ExitCode::SUCCESS, on_term); }
        };
        let files = ctx.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ");
        tracing::info!("{why}: reloading {files}");
        if let Some(n) = ctx.notifier {
            n.send("RELOADING=1");
        }
        match load(ctx.files, ctx.opts) {
            Ok(mut loaded) => {
                if ctx.access_log.is_some() {
                    loaded.model.global.access_log = ctx.access_log.clone();
                }
                let threads = threads_for(&loaded.model, None);
                adopt_inherited(&loaded.model);
                let model = loaded.model.clone();
                match reload(proxy, vrrp_rt, admin, loaded.model, threads).await {
                    Ok(()) => {
                        ctx.current = model;
                        tracing::info!("reload applied");
                    }
                    Err(e) => tracing::error!("reload failed, keeping the running configuration: {e}"),
                }
            }
            Err(e) => tracing::error!("reload failed, keeping the running configuration:\n{e}"),
        }
        if let Some(n) = ctx.notifier {
            n.send("READY=1");
        }
    }
}
