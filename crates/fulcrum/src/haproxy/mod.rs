//! The `haproxy` personality: HAProxy 2.6's command line, messages and exit codes over
//! fulcrum's own loader and runtime (no second implementation).
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use fulcrum_config::{Format, LoadOptions, Loaded, Severity};

mod args;
mod say;
mod version;

use args::{Args, MasterWorker};
use say::{say, Level};

const USAGE: &str = "\
Usage : haproxy [-f <cfgfile|cfgdir>]* [ -vdVD ] [ -n <maxconn> ] [ -N <maxpconn> ]
        [ -p <pidfile> ] [ -m <max megs> ] [ -C <dir> ] [-- <cfgfile>*]
        -v displays version ; -vv shows known build options.
        -d enters debug mode ; -db only disables background mode.
        -V enters verbose mode (disables quiet mode)
        -D goes daemon ; -C changes to <dir> before loading files.
        -W master-worker mode.
        -Ws master-worker mode with systemd notify support.
        -q quiet mode : don't display messages
        -c check mode : only check config files and exit
        -cc check condition : evaluate a condition and exit
        -n sets the maximum total # of connections
        -N sets the default, per-proxy maximum # of connections
        -L set local peer name (default to hostname)
        -p writes pids of all children to this file
        -dW fails if any warning is emitted
        -sf/-st [pid ]* finishes/terminates old pids.
        -x <unix_socket> get listening sockets from a unix socket
        -S <bind>[,<bind options>...] new master CLI
        (accepted and without effect in fulcrum: -dr -de -dp -dS -dG -dR -dV -dL -dM -dK -dD -m)
";

/// `haproxy ARGS...` (argv without the program name).
pub fn main(argv: Vec<OsString>) -> ExitCode {
    let args = match Args::parse(argv.clone()) {
        Ok(args) => args,
        Err(e) => {
            eprint!("{}{USAGE}", version::short());
            say(Level::Alert, &format!("{e}."));
            return ExitCode::from(1);
        }
    };
    if args.version > 0 {
        print!("{}", if args.version > 1 { version::long() } else { version::short() });
        return ExitCode::SUCCESS;
    }
    if let Some(expr) = &args.condition {
        return condition(expr);
    }
    let quiet = args.quiet && !args.verbose;
    if let Some(dir) = &args.chdir {
        if let Err(e) = std::env::set_current_dir(dir) {
            say(Level::Alert, &format!("Cannot chdir to '{}' : {e}", dir.display()));
            return ExitCode::from(1);
        }
    }
    if args.files.is_empty() {
        eprint!("{}{USAGE}", version::short());
        return ExitCode::from(1);
    }
    set_haproxy_environment(&args);
    let opts = LoadOptions {
        format: Some(Format::Haproxy),
        lenient: false,
        inherited: crate::inherited().clone(),
        local_peer: args.local_peer.clone(),
    };
    let notices = |quiet: bool| {
        if !quiet {
            say(Level::Notice, &format!("haproxy version is {}", version::version()));
            let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default();
            say(Level::Notice, &format!("path to executable is {exe}"));
        }
    };
    let mut loaded = match fulcrum_config::load_files(&args.files, &opts) {
        Ok(loaded) => loaded,
        Err(diags) => {
            notices(quiet);
            if !quiet {
                for d in &diags {
                    eprintln!("{}", say::diagnostic(d));
                }
                let files: Vec<String> = diags
                    .iter()
                    .filter(|d| d.severity == Severity::Error)
                    .map(|d| d.file.display().to_string())
                    .fold(Vec::new(), |mut acc, f| {
                        if !acc.contains(&f) {
                            acc.push(f);
                        }
                        acc
                    });
                say(Level::Alert, &format!("config : Error(s) found in configuration file : {}", files.join(", ")));
                say(Level::Alert, "config : Fatal errors found in configuration.");
            }
            return ExitCode::from(1);
        }
    };
    let warnings = loaded.warnings.iter().any(|d| d.severity == Severity::Warning);
    if !quiet && !loaded.warnings.is_empty() {
        notices(false);
        for d in &loaded.warnings {
            eprintln!("{}", say::diagnostic(d));
        }
    }
    if warnings && args.zero_warning {
        if !quiet {
            say(Level::Alert, "config : Some warnings were found and 'zero-warning' is set. Aborting.");
        }
        return ExitCode::from(1);
    }
    if args.check {
        if !quiet {
            if warnings {
                println!("Warnings were found.");
            }
            println!("Configuration file is valid");
        }
        return ExitCode::SUCCESS;
    }
    let background = crate::daemon::in_background();
    if args.daemon && !background && !args.debug && !args.foreground {
        let without: Vec<OsString> = argv.into_iter().filter(|a| a != "-D").collect();
        return crate::daemon::detach("haproxy", without, args.pidfile.as_deref(), |text| say(Level::Alert, text));
    }
    apply_limits(&mut loaded, &args);
    start(loaded, &args, opts, background)
}

/// `-cc EXPR`: 0 when true, 1 when false, 2 when it cannot be read (as HAProxy exits).
fn condition(expr: &str) -> ExitCode {
    match fulcrum_config::haproxy_conditions::eval_text(expr, &|name| std::env::var_os(name).is_some()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            say(Level::Alert, &format!("config : Failed to evaluate condition: {e} in '{expr}'"));
            ExitCode::from(2)
        }
    }
}

/// The variables HAProxy sets before reading its files (`.if defined(HAPROXY_MWORKER)`).
fn set_haproxy_environment(args: &Args) {
    let files: Vec<String> = args.files.iter().map(|f| f.display().to_string()).collect();
    std::env::set_var("HAPROXY_CFGFILES", files.join(";"));
    let peer = args.local_peer.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
    });
    std::env::set_var("HAPROXY_LOCALPEER", peer);
    if args.master_worker.is_some() {
        std::env::set_var("HAPROXY_MWORKER", "1");
    }
}

/// `-n` and `-N` override the files, as in HAProxy.
fn apply_limits(loaded: &mut Loaded, args: &Args) {
    if let Some(n) = args.maxconn {
        loaded.model.global.maxconn = n;
    }
    if let Some(n) = args.maxpconn {
        for fe in &mut loaded.model.frontends {
            fe.maxconn.get_or_insert(n);
        }
    }
}

/// Serve in this process. `background`: started by `-D`, whose foreground process waits for
/// the word that it serves, and writes the PID file.
fn start(loaded: Loaded, args: &Args, opts: LoadOptions, background: bool) -> ExitCode {
    if let (Some(pidfile), false) = (&args.pidfile, background) {
        if let Err(e) = std::fs::write(pidfile, format!("{}\n", std::process::id())) {
            say(Level::Alert, &format!("Cannot create pidfile {} : {e}", pidfile.display()));
            return ExitCode::from(1);
        }
    }
    let notify = crate::daemon::notifier(background, args.master_worker == Some(MasterWorker::Systemd));
    let stop_old = match &args.old_pids {
        Some((how, pids)) => {
            let sig = match how {
                args::OldStop::Finish => libc::SIGUSR1,
                args::OldStop::Terminate => libc::SIGTERM,
            };
            pids.iter().map(|pid| (*pid, sig)).collect()
        }
        None => Vec::new(),
    };
    for (flag, what) in [
        (!args.master_cli.is_empty(), "-S (the master CLI)"),
        (
            args.takeover.is_some(),
            "-x (listening sockets taken from the old process; the new one binds its own with SO_REUSEPORT)",
        ),
    ] {
        if flag && !args.quiet {
            say(Level::Warning, &format!("{what} is not supported yet by fulcrum; ignored"));
        }
    }
    let signals = crate::run::Signals::Haproxy;
    let run = crate::run::RunOptions { threads: None, access_log: None, signals, notify, stop_old, background };
    let files: Vec<PathBuf> = args.files.clone();
    // The PID file stays, as HAProxy leaves it: a successor may have written it already.
    crate::run::serve(loaded, &files, &opts, run)
}
