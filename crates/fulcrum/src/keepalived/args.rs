//! keepalived 2.2.7's command line, read as getopt_long reads it: `-n`, bundled `-nlD`,
//! `-f FILE`, `-fFILE`, `--use-file FILE`, `--use-file=FILE`; an optional argument
//! (`-t`/`--config-test`) only attached (`-tLOG`, `--config-test=LOG`).
use std::ffi::OsString;
use std::path::PathBuf;

/// What `keepalived ARGS` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// `-f`: the configuration file (keepalived's default when not given).
    pub file: PathBuf,
    /// `-t [LOG]`: check the configuration and exit; messages to LOG or standard error.
    pub config_test: Option<Option<PathBuf>>,
    /// `-n`: stay in the foreground.
    pub dont_fork: bool,
    /// `-P`: VRRP only. `-C`: health checkers (virtual servers) only.
    pub vrrp_only: bool,
    pub check_only: bool,
    /// `-l`: log to the console. `-D`: detailed log. `-G`: no syslog. `-S FACILITY`.
    pub log_console: bool,
    pub log_detail: bool,
    pub log_facility: Option<String>,
    /// `-p`, `-r`, `-c`: PID files of the parent, the VRRP process and the checkers.
    pub pidfile: PathBuf,
    pub vrrp_pidfile: PathBuf,
    pub checkers_pidfile: PathBuf,
    /// `-d`: print the configuration as read.
    pub dump_conf: bool,
    /// `-v`, `-h`.
    pub version: bool,
    pub help: bool,
    /// `--signum=NAME`: print the signal that does NAME and exit.
    pub signum: Option<String>,
    /// `-s NAME`: a network namespace to run in.
    pub namespace: Option<String>,
    /// `-i ID`: the config id for `@ID` lines.
    pub config_id: Option<String>,
    /// Options fulcrum takes and has nothing to do for, as given.
    pub accepted: Vec<String>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            file: PathBuf::from("/etc/keepalived/keepalived.conf"),
            config_test: None,
            dont_fork: false,
            vrrp_only: false,
            check_only: false,
            log_console: false,
            log_detail: false,
            log_facility: None,
            pidfile: PathBuf::from("/run/keepalived.pid"),
            vrrp_pidfile: PathBuf::from("/run/keepalived_vrrp.pid"),
            checkers_pidfile: PathBuf::from("/run/keepalived_checkers.pid"),
            dump_conf: false,
            version: false,
            help: false,
            signum: None,
            namespace: None,
            config_id: None,
            accepted: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    #[error("Unknown option {0}")]
    Unknown(String),
    #[error("option {0} requires an argument")]
    Missing(String),
    #[error("unexpected argument '{0}'")]
    Stray(String),
    #[error("'{0}' is not valid UTF-8")]
    Encoding(String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Takes {
    Nothing,
    Value,
    Optional,
}

/// Long name, short letter, and what it takes.
const OPTIONS: &[(&str, char, Takes)] = &[
    ("use-file", 'f', Takes::Value),
    ("vrrp", 'P', Takes::Nothing),
    ("check", 'C', Takes::Nothing),
    ("no_bfd", 'B', Takes::Nothing),
    ("all", '\0', Takes::Nothing),
    ("log-console", 'l', Takes::Nothing),
    ("log-detail", 'D', Takes::Nothing),
    ("log-facility", 'S', Takes::Value),
    ("no-syslog", 'G', Takes::Nothing),
    ("umask", 'u', Takes::Value),
    ("release-vips", 'X', Takes::Nothing),
    ("dont-release-vrrp", 'V', Takes::Nothing),
    ("dont-release-ipvs", 'I', Takes::Nothing),
    ("dont-respawn", 'R', Takes::Nothing),
    ("dont-fork", 'n', Takes::Nothing),
    ("dump-conf", 'd', Takes::Nothing),
    ("pid", 'p', Takes::Value),
    ("vrrp_pid", 'r', Takes::Value),
    ("checkers_pid", 'c', Takes::Value),
    ("address-monitoring", 'a', Takes::Nothing),
    ("bfd_pid", 'b', Takes::Value),
    ("snmp", 'x', Takes::Nothing),
    ("snmp-agent-socket", 'A', Takes::Value),
    ("namespace", 's', Takes::Value),
    ("core-dump", 'm', Takes::Nothing),
    ("core-dump-pattern", 'M', Takes::Optional),
    ("all-config", 'e', Takes::Nothing),
    ("config-id", 'i', Takes::Value),
    ("signum", '\0', Takes::Value),
    ("config-test", 't', Takes::Optional),
    ("version", 'v', Takes::Nothing),
    ("help", 'h', Takes::Nothing),
];

impl Args {
    pub fn parse(argv: impl IntoIterator<Item = OsString>) -> Result<Args, ArgError> {
        let words: Vec<String> = argv
            .into_iter()
            .map(|w| w.into_string().map_err(|w| ArgError::Encoding(w.to_string_lossy().into_owned())))
            .collect::<Result<_, _>>()?;
        let mut args = Args::default();
        let mut it = words.into_iter();
        while let Some(word) = it.next() {
            if let Some(long) = word.strip_prefix("--") {
                let (name, attached) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (long, None),
                };
                let &(name, _, takes) =
                    OPTIONS.iter().find(|(n, _, _)| *n == name).ok_or_else(|| ArgError::Unknown(word.clone()))?;
                let value = match (takes, attached) {
                    (Takes::Nothing, Some(_)) => return Err(ArgError::Unknown(word)),
                    (Takes::Value, None) => Some(it.next().ok_or_else(|| ArgError::Missing(format!("--{name}")))?),
                    (_, attached) => attached,
                };
                args.apply(name, value);
            } else if let Some(shorts) = word.strip_prefix('-').filter(|s| !s.is_empty()) {
                for (at, letter) in shorts.char_indices() {
                    let &(name, _, takes) = OPTIONS
                        .iter()
                        .find(|(_, l, _)| *l == letter && letter != '\0')
                        .ok_or_else(|| ArgError::Unknown(format!("-{letter}")))?;
                    let rest = &shorts[at + letter.len_utf8()..];
                    let value = match takes {
                        Takes::Nothing => None,
                        Takes::Optional => Some(rest.to_string()).filter(|r| !r.is_empty()),
                        Takes::Value if !rest.is_empty() => Some(rest.to_string()),
                        Takes::Value => Some(it.next().ok_or_else(|| ArgError::Missing(format!("-{letter}")))?),
                    };
                    args.apply(name, value);
                    if takes != Takes::Nothing {
                        break;
                    }
                }
            } else {
                return Err(ArgError::Stray(word));
            }
        }
        Ok(args)
    }

    fn apply(&mut self, name: &str, value: Option<String>) {
        let path = |v: &Option<String>| PathBuf::from(v.clone().unwrap_or_default());
        match name {
            "use-file" => self.file = path(&value),
            "config-test" => self.config_test = Some(value.map(PathBuf::from)),
            "dont-fork" => self.dont_fork = true,
            "vrrp" => self.vrrp_only = true,
            "check" => self.check_only = true,
            "log-console" => self.log_console = true,
            "log-detail" => self.log_detail = true,
            "log-facility" => self.log_facility = value,
            "pid" => self.pidfile = path(&value),
            "vrrp_pid" => self.vrrp_pidfile = path(&value),
            "checkers_pid" => self.checkers_pidfile = path(&value),
            "dump-conf" => self.dump_conf = true,
            "version" => self.version = true,
            "help" => self.help = true,
            "signum" => self.signum = value,
            "namespace" => self.namespace = value,
            "config-id" => self.config_id = value,
            other => self.accepted.push(match value {
                Some(v) => format!("--{other}={v}"),
                None => format!("--{other}"),
            }),
        }
    }
}

/// `--signum=NAME`: the signal keepalived 2.2.7 uses for NAME on Linux.
pub fn signum(name: &str) -> Option<i32> {
    Some(match name {
        "STOP" => 15,
        "RELOAD" => 1,
        "DATA" => 10,
        "STATS" => 12,
        "STATS_CLEAR" => 63,
        "JSON" => 36,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Args, ArgError> {
        Args::parse(line.split_whitespace().map(OsString::from))
    }

    #[test]
    fn debian_and_common_command_lines() {
        let unit = parse("--dont-fork -D -S 0").expect("parses");
        assert!(unit.dont_fork && unit.log_detail);
        assert_eq!(unit.log_facility.as_deref(), Some("0"));
        assert_eq!(unit.file, PathBuf::from("/etc/keepalived/keepalived.conf"));
        let bundled = parse("-nlD -f/etc/k.conf -p /run/k.pid").expect("parses");
        assert!(bundled.dont_fork && bundled.log_console && bundled.log_detail);
        assert_eq!((bundled.file, bundled.pidfile), (PathBuf::from("/etc/k.conf"), PathBuf::from("/run/k.pid")));
        assert_eq!(parse("-t -f k.conf").expect("parses").config_test, Some(None));
        assert_eq!(parse("--config-test=/tmp/log").expect("parses").config_test, Some(Some("/tmp/log".into())));
        assert_eq!(parse("-t/tmp/log").expect("parses").config_test, Some(Some("/tmp/log".into())));
        assert_eq!(parse("--use-file=k.conf --vrrp").expect("parses").file, PathBuf::from("k.conf"));
        assert_eq!(parse("--signum=RELOAD").expect("parses").signum.as_deref(), Some("RELOAD"));
        assert_eq!(parse("-R -X --all").expect("parses").accepted, ["--dont-respawn", "--release-vips", "--all"]);
    }

    #[test]
    fn refuses_as_keepalived_does() {
        assert_eq!(parse("-Z"), Err(ArgError::Unknown("-Z".into())));
        assert_eq!(parse("--bogus"), Err(ArgError::Unknown("--bogus".into())));
        assert_eq!(parse("--dont-fork=yes"), Err(ArgError::Unknown("--dont-fork=yes".into())));
        assert_eq!(parse("-f"), Err(ArgError::Missing("-f".into())));
        assert_eq!(parse("keepalived.conf"), Err(ArgError::Stray("keepalived.conf".into())));
        assert_eq!(signum("RELOAD"), Some(1));
        assert_eq!(signum("FOO"), None);
    }
}
