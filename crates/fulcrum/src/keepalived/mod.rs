//! The `keepalived` personality: keepalived 2.2.7's command line, messages and exit codes over
//! fulcrum's own loader and runtime (no second implementation).
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use fulcrum_config::{Diagnostic, Format, LoadOptions, Severity};

mod args;

use args::Args;

/// keepalived's exit code for a configuration `-t` finds wrong.
const EXIT_CONFIG_TEST: u8 = 5;
/// keepalived's exit code when the configuration file is missing at start.
const EXIT_NO_CONFIG: u8 = 6;

const USAGE: &str = "\
Usage: keepalived [OPTION...]
  -f, --use-file=FILE          Use the specified configuration file
                                default '/etc/keepalived/keepalived.conf'
  -P, --vrrp                   Only run with VRRP subsystem
  -C, --check                  Only run with Health-checker subsystem
  -l, --log-console            Log messages to local console
  -D, --log-detail             Detailed log messages
  -S, --log-facility=([0-7]|local[0-7]|user|daemon)
  -n, --dont-fork              Don't fork the daemon process
  -d, --dump-conf              Dump the configuration data
  -p, --pid=FILE               Use specified pidfile for parent process
  -r, --vrrp_pid=FILE          Use specified pidfile for VRRP child process
  -c, --checkers_pid=FILE      Use specified pidfile for checkers child process
      --signum=SIGFUNC         Return signal number for STOP, RELOAD, DATA, STATS, STATS_CLEAR, JSON
  -t, --config-test[=LOG_FILE] Check the configuration for obvious errors, output to
                                stderr by default
  -v, --version                Display the version number
  -h, --help                   Display this help message
  (accepted without effect in fulcrum: -B --all -G -u -X -V -I -R -a -b -x -A -m -M -e)
";

fn version() -> String {
    format!("Keepalived v2.2.7 (fulcrum {}, reading keepalived 2.2.7's configuration)\n", env!("CARGO_PKG_VERSION"))
}

/// `keepalived ARGS...` (argv without the program name).
pub fn main(argv: Vec<OsString>) -> ExitCode {
    let args = match Args::parse(argv.clone()) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    if args.help {
        eprint!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if args.version {
        eprint!("{}", version());
        return ExitCode::SUCCESS;
    }
    if let Some(name) = &args.signum {
        return match args::signum(name) {
            Some(n) => {
                println!("{n}");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("Unknown sigfunc {name}");
                ExitCode::from(1)
            }
        };
    }
    if let Some(ns) = &args.namespace {
        eprintln!("running in network namespace '{ns}' (-s) is not supported yet by fulcrum: start it with 'ip netns exec {ns}'");
        return ExitCode::from(1);
    }
    let opts = LoadOptions {
        format: Some(Format::Keepalived),
        lenient: false,
        inherited: crate::inherited().clone(),
        local_peer: None,
    };
    if let Some(log) = &args.config_test {
        return config_test(&args.file, &opts, log.as_deref());
    }
    if !args.file.exists() {
        tracing::error!("Config files missing '{}'.", args.file.display());
        return ExitCode::from(EXIT_NO_CONFIG);
    }
    let files = vec![args.file.clone()];
    let mut loaded = match fulcrum_config::load_files(&files, &opts) {
        Ok(loaded) => loaded,
        Err(diags) => {
            for d in &diags {
                tracing::error!("{}", line(d));
            }
            return ExitCode::from(1);
        }
    };
    for d in &loaded.warnings {
        tracing::warn!("{}", line(d));
    }
    if args.dump_conf {
        tracing::info!("configuration as read: {:#?}", loaded.model.vrrp);
    }
    if args.check_only {
        // -C: the health checkers (virtual servers) only; fulcrum reads no virtual_server yet.
        loaded.model.vrrp.instances.clear();
    }
    let background = crate::daemon::in_background();
    if !args.dont_fork && !background {
        let mut child_args = argv;
        child_args.push("--dont-fork".into());
        return crate::daemon::detach("keepalived", child_args, None, |text| eprintln!("{text}"));
    }
    let pidfiles: Vec<&Path> = [args.pidfile.as_path(), args.vrrp_pidfile.as_path()].into();
    for pidfile in &pidfiles {
        if let Err(e) = std::fs::write(pidfile, format!("{}\n", std::process::id())) {
            tracing::error!("cannot write pid file {}: {e}", pidfile.display());
            return ExitCode::from(1);
        }
    }
    // keepalived.service is Type=notify: systemd is told whenever it listens.
    let notify = crate::daemon::notifier(background, true);
    tracing::info!("Starting Keepalived v2.2.7 (fulcrum {})", env!("CARGO_PKG_VERSION"));
    let run = crate::run::RunOptions {
        threads: None,
        access_log: None,
        signals: crate::run::Signals::Keepalived,
        notify,
        stop_old: Vec::new(),
        background,
    };
    let code = crate::run::serve(loaded, &files, &opts, run);
    // keepalived removes its PID files when it stops.
    for pidfile in pidfiles {
        let _ = std::fs::remove_file(pidfile);
    }
    tracing::info!("Stopped Keepalived v2.2.7");
    code
}

/// A diagnostic as keepalived words its configuration messages: `(FILE: Line N) text`.
fn line(d: &Diagnostic) -> String {
    let hint = d.hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default();
    let warning = if d.severity == Severity::Warning { "warning: " } else { "" };
    if d.line > 0 {
        format!("({}: Line {}) {warning}{}{hint}", d.file.display(), d.line, d.message)
    } else {
        format!("({}) {warning}{}{hint}", d.file.display(), d.message)
    }
}

/// `-t [LOG]`: 0 when the file is right (or missing, as keepalived 2.2.7 says and exits),
/// 5 when it is not; the messages on standard error or in LOG.
fn config_test(file: &Path, opts: &LoadOptions, log: Option<&Path>) -> ExitCode {
    let (text, code) = if !file.exists() {
        (format!("Config files missing '{}'.\n", file.display()), ExitCode::SUCCESS)
    } else {
        match fulcrum_config::load_files(&[PathBuf::from(file)], opts) {
            Ok(loaded) => (loaded.warnings.iter().map(|d| format!("{}\n", line(d))).collect(), ExitCode::SUCCESS),
            Err(diags) => (diags.iter().map(|d| format!("{}\n", line(d))).collect(), ExitCode::from(EXIT_CONFIG_TEST)),
        }
    };
    match log {
        Some(path) => {
            if let Err(e) = std::fs::write(path, text) {
                eprintln!("cannot write {}: {e}", path.display());
                return ExitCode::from(1);
            }
        }
        None => eprint!("{text}"),
    }
    code
}
