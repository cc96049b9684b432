//! HAProxy 2.6's command line ("Starting HAProxy" in its management guide), read as HAProxy
//! reads it: single-dash flags, some of several letters (`-db`, `-Ws`, `-sf`), values in the
//! next word, `-sf`/`-st` followed by any number of PIDs, `--` followed by files only.
use std::ffi::OsString;
use std::path::PathBuf;

/// What `haproxy ARGS` asks for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Args {
    /// `-f FILE|DIR` (repeatable) and the files after `--`, in order.
    pub files: Vec<PathBuf>,
    /// `-c`: check the configuration and exit.
    pub check: bool,
    /// `-cc EXPR`: evaluate a condition and exit (0 true, 1 false, 2 error).
    pub condition: Option<String>,
    /// `-q`: no messages (errors still set the exit code).
    pub quiet: bool,
    /// `-V`: verbose (undoes `-q` and `quiet`).
    pub verbose: bool,
    /// `-v` (1) or `-vv` (2).
    pub version: u8,
    /// `-d`: debug mode (foreground, messages on standard error).
    pub debug: bool,
    /// `-db`: stay in the foreground.
    pub foreground: bool,
    /// `-D`: go to the background.
    pub daemon: bool,
    /// `-W`, `-Ws`: master-worker mode (`-Ws` with systemd's notify protocol).
    pub master_worker: Option<MasterWorker>,
    /// `-S BIND[,OPTIONS]`: the master CLI.
    pub master_cli: Vec<String>,
    /// `-p PIDFILE`.
    pub pidfile: Option<PathBuf>,
    /// `-sf PID...` (finish: soft stop) or `-st PID...` (terminate).
    pub old_pids: Option<(OldStop, Vec<u32>)>,
    /// `-x SOCKET`: take the listening sockets of the process behind this stats socket.
    pub takeover: Option<PathBuf>,
    /// `-L NAME`: the local peer name.
    pub local_peer: Option<String>,
    /// `-n N`: process-wide maxconn.
    pub maxconn: Option<u32>,
    /// `-N N`: per-proxy default maxconn.
    pub maxpconn: Option<u32>,
    /// `-m MEGS`: memory limit.
    pub memory_mb: Option<u64>,
    /// `-C DIR`: change to DIR before loading files.
    pub chdir: Option<PathBuf>,
    /// `-dW`: any warning is fatal (`zero-warning`).
    pub zero_warning: bool,
    /// `-dr`: a server address that does not resolve is not an error.
    pub ignore_resolve_errors: bool,
    /// `-dD`: diagnostic mode.
    pub diagnostic: bool,
    /// Debug flags fulcrum takes and has nothing to do for (`-de`, `-dp`, `-dS`, `-dG`, `-dR`,
    /// `-dV`, `-dL`, `-dM...`, `-dK...`), as given.
    pub accepted_debug: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterWorker {
    Plain,
    Systemd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldStop {
    /// `-sf`: the old processes finish their connections (SIGUSR1).
    Finish,
    /// `-st`: the old processes stop now (SIGTERM).
    Terminate,
}

/// A command line HAProxy would refuse; `usage` says to print the usage text (as HAProxy does
/// for an unknown flag).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    #[error("unknown option '{0}'")]
    Unknown(String),
    #[error("option '{0}' needs a value")]
    Missing(&'static str),
    #[error("option '{0}': '{1}' is not a number")]
    Number(&'static str, String),
    #[error("argument '{0}' is not an option (configuration files go after -f or --)")]
    Stray(String),
    #[error("'{0}' is not valid UTF-8")]
    Encoding(String),
}

impl Args {
    pub fn parse(argv: impl IntoIterator<Item = OsString>) -> Result<Args, ArgError> {
        let words: Vec<String> = argv
            .into_iter()
            .map(|w| w.into_string().map_err(|w| ArgError::Encoding(w.to_string_lossy().into_owned())))
            .collect::<Result<_, _>>()?;
        let mut args = Args::default();
        let mut it = words.into_iter().peekable();
        while let Some(word) = it.next() {
            let mut value = |flag: &'static str| it.next().ok_or(ArgError::Missing(flag));
            match word.as_str() {
                "--" => {
                    args.files.extend(it.by_ref().map(PathBuf::from));
                }
                "-f" => args.files.push(value("-f")?.into()),
                "-c" => args.check = true,
                "-cc" => args.condition = Some(value("-cc")?),
                "-q" => args.quiet = true,
                "-V" => args.verbose = true,
                "-v" => args.version = args.version.max(1),
                "-vv" => args.version = 2,
                "-d" => args.debug = true,
                "-db" => args.foreground = true,
                "-D" => args.daemon = true,
                "-W" => args.master_worker = Some(MasterWorker::Plain),
                "-Ws" => args.master_worker = Some(MasterWorker::Systemd),
                "-S" => args.master_cli.push(value("-S")?),
                "-p" => args.pidfile = Some(value("-p")?.into()),
                "-x" => args.takeover = Some(value("-x")?.into()),
                "-L" => args.local_peer = Some(value("-L")?),
                "-C" => args.chdir = Some(value("-C")?.into()),
                "-n" => args.maxconn = Some(number("-n", &value("-n")?)?),
                "-N" => args.maxpconn = Some(number("-N", &value("-N")?)?),
                "-m" => args.memory_mb = Some(number("-m", &value("-m")?)?),
                "-dW" => args.zero_warning = true,
                "-dr" => args.ignore_resolve_errors = true,
                "-dD" => args.diagnostic = true,
                "-sf" | "-st" => {
                    let how = if word == "-sf" { OldStop::Finish } else { OldStop::Terminate };
                    let mut pids = Vec::new();
                    while let Some(pid) = it.peek().and_then(|w| w.parse::<u32>().ok()) {
                        pids.push(pid);
                        it.next();
                    }
                    args.old_pids = Some((how, pids));
                }
                "-de" | "-dp" | "-dS" | "-dG" | "-dR" | "-dV" | "-dL" => args.accepted_debug.push(word),
                w if w.starts_with("-dM") || w.starts_with("-dK") => args.accepted_debug.push(word),
                w if w.starts_with('-') => return Err(ArgError::Unknown(word)),
                _ => return Err(ArgError::Stray(word)),
            }
        }
        Ok(args)
    }
}

fn number<T: std::str::FromStr>(flag: &'static str, text: &str) -> Result<T, ArgError> {
    text.parse().map_err(|_| ArgError::Number(flag, text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Args, ArgError> {
        Args::parse(line.split_whitespace().map(OsString::from))
    }

    #[test]
    fn debian_unit_command_lines() {
        // ExecStartPre, ExecStart and ExecReload of Debian 12's haproxy.service.
        let pre = parse("-Ws -f /etc/haproxy/haproxy.cfg -c -q").expect("parses");
        assert!(pre.check && pre.quiet);
        assert_eq!(pre.master_worker, Some(MasterWorker::Systemd));
        let start =
            parse("-Ws -f /etc/haproxy/haproxy.cfg -p /run/haproxy.pid -S /run/haproxy-master.sock").expect("parses");
        assert_eq!(start.pidfile, Some(PathBuf::from("/run/haproxy.pid")));
        assert_eq!(start.master_cli, ["/run/haproxy-master.sock"]);
        assert!(!start.check);
    }

    #[test]
    fn files_pids_and_values() {
        let a = parse("-f a.cfg -f conf.d -sf 12 13 -x /run/s.sock -- b.cfg c.cfg").expect("parses");
        assert_eq!(a.files, [PathBuf::from("a.cfg"), "conf.d".into(), "b.cfg".into(), "c.cfg".into()]);
        assert_eq!(a.old_pids, Some((OldStop::Finish, vec![12, 13])));
        assert_eq!(a.takeover, Some(PathBuf::from("/run/s.sock")));
        let b = parse("-st -d -n 100 -N 10 -L peer1 -C /etc -dW -dr -db -vv").expect("parses");
        assert_eq!(b.old_pids, Some((OldStop::Terminate, vec![])));
        assert!(b.debug && b.zero_warning && b.ignore_resolve_errors && b.foreground);
        assert_eq!((b.maxconn, b.maxpconn, b.version), (Some(100), Some(10), 2));
        assert_eq!(b.local_peer.as_deref(), Some("peer1"));
        assert_eq!(parse("-cc defined(X)").expect("parses").condition.as_deref(), Some("defined(X)"));
        assert_eq!(parse("-dM0x55 -dS").expect("parses").accepted_debug, ["-dM0x55", "-dS"]);
    }

    #[test]
    fn refuses_what_haproxy_refuses() {
        assert_eq!(parse("-Z"), Err(ArgError::Unknown("-Z".into())));
        assert_eq!(parse("--config x"), Err(ArgError::Unknown("--config".into())));
        assert_eq!(parse("-f"), Err(ArgError::Missing("-f")));
        assert_eq!(parse("-n many"), Err(ArgError::Number("-n", "many".into())));
        assert_eq!(parse("haproxy.cfg"), Err(ArgError::Stray("haproxy.cfg".into())));
    }
}
