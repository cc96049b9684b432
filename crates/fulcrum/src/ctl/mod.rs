//! The control socket: `fulcrum ctl [--socket PATH] ARGS` (and the binary linked as `ipvsadm`,
//! `ipvsadm-save`, `ipvsadm-restore`) sends ipvsadm's command line to a running fulcrum, which
//! applies it to its running table (`server`) and answers with ipvsadm's text (`format`).
//!
//! On the wire (a Unix socket): the request is one line, `@ipvsadm` then each argument after a
//! NUL byte, then `\n`, then the command's standard input (for `-R`) until the client closes
//! its side. The answer: the exit status on a line, the length of standard output on a line,
//! standard output, then standard error to the end.
mod format;
pub(crate) mod server;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where the socket is when no configuration says.
pub const DEFAULT_SOCKET: &str = "/run/fulcrum/fulcrum.sock";

/// What a request asks.
pub(crate) struct Request {
    pub args: Vec<String>,
    pub stdin: Vec<u8>,
}

/// What the command printed and its status.
#[derive(Debug, Default)]
pub(crate) struct Response {
    pub code: u8,
    pub stdout: String,
    pub stderr: String,
}

impl Response {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = format!("{}\n{}\n", self.code, self.stdout.len()).into_bytes();
        out.extend_from_slice(self.stdout.as_bytes());
        out.extend_from_slice(self.stderr.as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Response> {
        let text = String::from_utf8_lossy(bytes);
        let (code, rest) = text.split_once('\n')?;
        let (len, rest) = rest.split_once('\n')?;
        let len: usize = len.parse().ok()?;
        let stdout = rest.get(..len)?.to_string();
        let stderr = rest.get(len..)?.to_string();
        Some(Response { code: code.parse().ok()?, stdout, stderr })
    }
}

/// Reads a request: `@ipvsadm\0ARG\0ARG\n` then standard input.
pub(crate) fn parse_request(bytes: &[u8]) -> Option<Request> {
    let end = bytes.iter().position(|b| *b == b'\n')?;
    let head = std::str::from_utf8(bytes.get(..end)?).ok()?;
    let mut parts = head.split('\0');
    if parts.next()? != "@ipvsadm" {
        return None;
    }
    let args = parts.map(str::to_string).collect();
    Some(Request { args, stdin: bytes.get(end + 1..).unwrap_or_default().to_vec() })
}

fn encode_request(args: &[String], stdin: &[u8]) -> Vec<u8> {
    let mut out = b"@ipvsadm".to_vec();
    for a in args {
        out.push(0);
        out.extend_from_slice(a.as_bytes());
    }
    out.push(b'\n');
    out.extend_from_slice(stdin);
    out
}

/// Sends one command and prints its answer as ipvsadm would; the exit status is ipvsadm's.
fn send(socket: &Path, args: &[String], stdin: &[u8]) -> ExitCode {
    let mut stream = match std::os::unix::net::UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Can't initialize ipvs: cannot reach fulcrum's control socket {}: {e}", socket.display());
            eprintln!("Is fulcrum running? (its socket: `stats socket PATH` in haproxy.cfg, `control_socket` in TOML, or {DEFAULT_SOCKET})");
            return ExitCode::from(2);
        }
    };
    let request = encode_request(args, stdin);
    let mut answer = Vec::new();
    let exchanged = stream
        .write_all(&request)
        .and_then(|()| stream.shutdown(std::net::Shutdown::Write))
        .and_then(|()| stream.read_to_end(&mut answer));
    if let Err(e) = exchanged {
        eprintln!("fulcrum ctl: {e}");
        return ExitCode::from(2);
    }
    let Some(response) = Response::decode(&answer) else {
        eprintln!("fulcrum ctl: an answer fulcrum ctl cannot read");
        return ExitCode::from(2);
    };
    print!("{}", response.stdout);
    eprint!("{}", response.stderr);
    let _ = std::io::stdout().flush();
    ExitCode::from(response.code)
}

/// Standard input, for `-R`.
fn read_stdin() -> Vec<u8> {
    let mut input = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut input);
    input
}

fn wants_stdin(args: &[String]) -> bool {
    args.first().is_some_and(|a| a == "-R" || a == "--restore")
}

/// `fulcrum ctl [--socket PATH] ARGS...`.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let mut args: Vec<String> = args.into_iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let mut socket = PathBuf::from(DEFAULT_SOCKET);
    if let Some(at) = args.iter().position(|a| a == "--socket" || a.starts_with("--socket=")) {
        let value = match args[at].split_once('=') {
            Some((_, v)) => Some(v.to_string()),
            None => args.get(at + 1).cloned(),
        };
        let Some(value) = value else {
            eprintln!("fulcrum ctl: --socket needs a path");
            return ExitCode::from(2);
        };
        let drop_to = if args[at].contains('=') { at + 1 } else { at + 2 };
        args.drain(at..drop_to.min(args.len()));
        socket = PathBuf::from(value);
    }
    if args.first().is_some_and(|a| a == "--") {
        args.remove(0);
    }
    let stdin = if wants_stdin(&args) { read_stdin() } else { Vec::new() };
    send(&socket, &args, &stdin)
}

/// The binary linked as `ipvsadm`, `ipvsadm-save` or `ipvsadm-restore`: the socket comes
/// from `FULCRUM_SOCKET`, else the default.
pub fn personality(name: &str, args: Vec<OsString>) -> ExitCode {
    let socket = std::env::var_os("FULCRUM_SOCKET").map_or_else(|| PathBuf::from(DEFAULT_SOCKET), PathBuf::from);
    let args: Vec<String> = args.into_iter().map(|a| a.to_string_lossy().into_owned()).collect();
    match name {
        "ipvsadm-save" => {
            if args.iter().any(|a| a != "-n") {
                eprintln!("ipvsadm-save: Script to save the IPVS table to stdout.");
                eprintln!("   With the -n option, prints out the table in numeric format.");
                return ExitCode::from(1);
            }
            let mut cmd = vec!["-S".to_string()];
            cmd.extend(args);
            send(&socket, &cmd, &[])
        }
        "ipvsadm-restore" => {
            // As the wrapper script: comments dropped, the table cleared, then the rules.
            let input = read_stdin();
            let kept: Vec<&str> =
                std::str::from_utf8(&input).unwrap_or_default().lines().filter(|l| !l.starts_with('#')).collect();
            let mut rules = b"-C\n".to_vec();
            for line in kept {
                rules.extend_from_slice(line.as_bytes());
                rules.push(b'\n');
            }
            send(&socket, &["-R".to_string()], &rules)
        }
        _ => {
            let stdin = if wants_stdin(&args) { read_stdin() } else { Vec::new() };
            send(&socket, &args, &stdin)
        }
    }
}
