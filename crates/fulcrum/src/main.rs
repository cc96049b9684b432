//! `fulcrum`: the command line.
#![deny(unsafe_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use fulcrum_config::{Format, LoadOptions};

mod ctl;
mod daemon;
mod demo;
mod haproxy;
mod keepalived;
mod notify;
mod run;
mod sys;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "fulcrum",
    version,
    about = "A high-availability load balancer: haproxy.cfg and TOML, health checks, live reload"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Toml,
    Haproxy,
    Keepalived,
}

#[derive(clap::Args, Clone)]
struct ConfigArgs {
    /// Configuration file (TOML, haproxy.cfg or keepalived.conf); repeat to combine several.
    #[arg(short = 'c', long = "config", required = true)]
    files: Vec<PathBuf>,
    /// Force the format instead of detecting it from the extension and content.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Turn "unsupported directive" errors into warnings.
    #[arg(long)]
    lenient: bool,
}

impl ConfigArgs {
    fn options(&self) -> LoadOptions {
        LoadOptions {
            format: self.format.map(|f| match f {
                FormatArg::Toml => Format::Toml,
                FormatArg::Haproxy => Format::Haproxy,
                FormatArg::Keepalived => Format::Keepalived,
            }),
            lenient: self.lenient,
            inherited: inherited().clone(),
            local_peer: None,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the load balancer. SIGHUP reloads the files, SIGTERM/SIGINT drain and stop.
    Run {
        #[command(flatten)]
        config: ConfigArgs,
        /// Worker threads (default: `nbthread`, else one per CPU).
        #[arg(long)]
        threads: Option<usize>,
        /// Write access-log lines to this file instead of standard error.
        #[arg(long)]
        access_log: Option<PathBuf>,
    },
    /// Validate configuration files and report every problem as FILE:LINE: message (hint).
    Check {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Start three demo origins and a balancer in front of them.
    Demo {
        /// Balancer port on 127.0.0.1.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// First origin port (the three origins use this and the next two; 0: any free ports).
        #[arg(long, default_value_t = 9001)]
        origin_port: u16,
    },
    /// Answer as HAProxy: `fulcrum haproxy -f haproxy.cfg -c` (also when linked as `haproxy`).
    #[command(disable_help_flag = true)]
    Haproxy {
        /// HAProxy's own options (`haproxy -h` lists them).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Answer as keepalived: `fulcrum keepalived -t -f keepalived.conf` (also when linked as
    /// `keepalived`).
    #[command(disable_help_flag = true)]
    Keepalived {
        /// keepalived's own options (`keepalived -h` lists them).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Send ipvsadm's commands to a running fulcrum: `fulcrum ctl -Ln`, `fulcrum ctl -A -t
    /// 10.0.0.1:80 -s rr` (also when linked as `ipvsadm`). `--socket PATH` names its control
    /// socket (default /run/fulcrum/fulcrum.sock).
    #[command(disable_help_flag = true)]
    Ctl {
        /// `[--socket PATH]` and ipvsadm's options (`fulcrum ctl -h` lists them).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Internal: the VRRP crash guard started by `run` (releases the virtual addresses if the
    /// main process dies without a clean shutdown).
    #[command(hide = true)]
    VrrpGuard,
}

/// The listening sockets a parent process passed, by descriptor: what `bind fd@N` stands for.
/// Looked at once, at start-up; taken over only when the configuration uses them
/// (`run::adopt_inherited`).
pub fn inherited() -> &'static sys::Inherited {
    static INHERITED: std::sync::OnceLock<sys::Inherited> = std::sync::OnceLock::new();
    INHERITED.get_or_init(sys::inherited_listeners)
}

/// A multi-call binary: linked as `haproxy`, it is HAProxy's command line.
fn personality(argv0: &OsString) -> Option<&'static str> {
    match Path::new(argv0).file_name()?.to_str()? {
        "haproxy" => Some("haproxy"),
        "keepalived" => Some("keepalived"),
        "ipvsadm" => Some("ipvsadm"),
        "ipvsadm-save" => Some("ipvsadm-save"),
        "ipvsadm-restore" => Some("ipvsadm-restore"),
        _ => None,
    }
}

fn main() -> ExitCode {
    let mut argv: Vec<OsString> = std::env::args_os().collect();
    match argv.first().and_then(personality) {
        Some("haproxy") => {
            init_tracing();
            return haproxy::main(argv.split_off(1));
        }
        Some("keepalived") => {
            init_tracing();
            return keepalived::main(argv.split_off(1));
        }
        Some(name @ ("ipvsadm" | "ipvsadm-save" | "ipvsadm-restore")) => {
            return ctl::personality(name, argv.split_off(1));
        }
        _ => {}
    }
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Run { config, threads, access_log } => run::run(&config.files, &config.options(), threads, access_log),
        Command::Check { config } => check(&config),
        Command::Demo { port, origin_port } => demo::demo(port, origin_port),
        Command::Haproxy { args } => haproxy::main(args),
        Command::Keepalived { args } => keepalived::main(args),
        Command::Ctl { args } => ctl::main(args),
        Command::VrrpGuard => fulcrum_vrrp_io::guard_main(),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FULCRUM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .init();
}

fn check(config: &ConfigArgs) -> ExitCode {
    match fulcrum_config::load_files(&config.files, &config.options()) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("{w}");
            }
            let m = &loaded.model;
            println!(
                "Configuration is valid: {} frontend(s), {} backend(s), {} server(s), {} VRRP instance(s).",
                m.frontends.len(),
                m.backends.len(),
                m.backends.iter().map(|b| b.servers.len()).sum::<usize>(),
                m.vrrp.instances.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!(
                "{} error(s): configuration is not valid.",
                errors.iter().filter(|d| d.severity == fulcrum_config::Severity::Error).count()
            );
            ExitCode::from(1)
        }
    }
}
