//! The control socket's server side: accepting requests (any number of clients, each read on
//! its own task) and executing them one at a time against the running table. A command that
//! changes the table yields a new Model, which the caller applies as a reload does (new
//! listeners bound first, established connections kept, server state carried over).
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fulcrum_config::ipvsadm::{self, Applied, Command, IpvsError};
use fulcrum_model::Model;
use fulcrum_proxy::Snapshot;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::{parse_request, Request, Response};

/// A request waiting for its answer.
pub(crate) type Job = (Request, oneshot::Sender<Response>);

/// The most a request may carry (a rules file on standard input).
const MAX_REQUEST: u64 = 16 << 20;

/// A listening control socket; the file is removed when it is dropped.
pub(crate) struct Control {
    path: PathBuf,
    /// The socket file's inode: a newer process that took the path over keeps its file.
    inode: Option<u64>,
    task: tokio::task::JoinHandle<()>,
}

fn inode(path: &Path) -> Option<u64> {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).ok()?).into()
}

impl Drop for Control {
    fn drop(&mut self) {
        self.task.abort();
        if self.inode.is_some() && inode(&self.path) == self.inode {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Listens on `path`. A configured socket is taken over from a process still answering on it
/// (as HAProxy does on a reload: the old process keeps its open socket until it exits); the
/// default one is left alone, so that two fulcrum processes do not steal each other's.
pub(crate) fn listen(path: &Path, configured: bool, jobs: mpsc::Sender<Job>) -> Result<Control, String> {
    if !configured && std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(format!(
            "{} is answered by another process; fulcrum ctl will not reach this one there",
            path.display()
        ));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::remove_file(path);
    let listener =
        tokio::net::UnixListener::bind(path).map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    let task = tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, most likely: wait rather than spin.
                    tracing::warn!("control socket: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let jobs = jobs.clone();
            tokio::spawn(async move { serve_one(stream, jobs).await });
        }
    });
    Ok(Control { path: path.to_path_buf(), inode: inode(path), task })
}

async fn serve_one(mut stream: tokio::net::UnixStream, jobs: mpsc::Sender<Job>) {
    let mut bytes = Vec::new();
    // `fulcrum ctl`'s requests run to the end of their input; a runtime command (anything
    // else) ends at its line's end, as HAProxy reads it: clients need not close their side.
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).await?;
            bytes.extend_from_slice(&chunk[..n]);
            let ctl = bytes.starts_with(b"@ipvsadm") || b"@ipvsadm".starts_with(&bytes[..bytes.len().min(8)]);
            if n == 0 || bytes.len() as u64 > MAX_REQUEST || (!ctl && bytes.contains(&b'\n')) {
                return Ok::<(), std::io::Error>(());
            }
        }
    })
    .await;
    if !matches!(read, Ok(Ok(()))) || bytes.len() as u64 > MAX_REQUEST {
        return;
    }
    // `fulcrum ctl` frames its requests; anything else is HAProxy's runtime API in text
    // (`echo "show table web" | socat stdio /run/haproxy.sock`), answered in text.
    let (request, runtime) = match parse_request(&bytes) {
        Some(request) => (request, false),
        None => (Request { args: vec![RUNTIME.to_string()], stdin: bytes }, true),
    };
    let (tx, rx) = oneshot::channel();
    if jobs.send((request, tx)).await.is_err() {
        return;
    }
    let Ok(response) = rx.await else { return };
    let answer = if runtime { response.stdout.into_bytes() } else { response.encode() };
    let _ = stream.write_all(&answer).await;
    let _ = stream.shutdown().await;
}

/// What executing a request gives: the answer, and the Model to apply when the table changed.
pub(crate) struct Outcome {
    pub response: Response,
    pub model: Option<Model>,
}

fn error(e: &IpvsError) -> Response {
    Response { code: e.code, stdout: String::new(), stderr: format!("{}\n", e.message) }
}

/// The first argument of a request in HAProxy's runtime API (its text in `stdin`).
const RUNTIME: &str = "@runtime";

/// Executes one request against the running table (`current`, and the live `snap`).
pub(crate) fn execute(request: &Request, current: &Model, snap: Option<&Arc<Snapshot>>) -> Outcome {
    if request.args.first().map(String::as_str) == Some(RUNTIME) {
        let text = String::from_utf8_lossy(&request.stdin);
        let stdout = match snap {
            Some(snap) => fulcrum_admin::runtime::execute(snap, &text),
            None => "No proxy is running\n\n".to_string(),
        };
        return Outcome { response: Response { stdout, ..Response::default() }, model: None };
    }
    let program = "ipvsadm";
    let command = match ipvsadm::parse(program, &request.args) {
        Ok(c) => c,
        Err(e) => return Outcome { response: error(&e), model: None },
    };
    match command {
        Command::Help => {
            Outcome { response: Response { stdout: super::format::help(), ..Response::default() }, model: None }
        }
        Command::Version => Outcome {
            response: Response { stdout: format!("{}\n", ipvsadm::VERSION_LINE), ..Response::default() },
            model: None,
        },
        Command::List(opts) => {
            let response = match super::format::list(current, snap, &opts) {
                Ok(text) => Response { stdout: text, ..Response::default() },
                Err(e) => error(&e),
            };
            Outcome { response, model: None }
        }
        Command::Save { numeric } => Outcome {
            response: Response { stdout: super::format::save(current, numeric), ..Response::default() },
            model: None,
        },
        Command::Zero(service) => {
            let mut model = current.clone();
            if let Err(e) = ipvsadm::apply(&mut model, &Command::Zero(service)) {
                return Outcome { response: error(&e), model: None };
            }
            if let Some(snap) = snap {
                let name = service.map(|s| ipvsadm::service_name(&s).unwrap_or_default());
                for b in snap.backends.iter().filter(|b| b.cfg.lvs.is_some()) {
                    if name.as_ref().is_none_or(|n| *n == b.cfg.name) {
                        for s in &b.servers {
                            s.live.zero();
                        }
                    }
                }
            }
            Outcome { response: Response::default(), model: None }
        }
        Command::Restore => restore(&request.stdin, current),
        command => {
            let mut model = current.clone();
            match ipvsadm::apply(&mut model, &command) {
                Ok(Applied::Changed) => checked(model, Response::default()),
                Ok(Applied::Unchanged) => Outcome { response: Response::default(), model: None },
                Err(e) => Outcome { response: error(&e), model: None },
            }
        }
    }
}

/// A changed Model, if the whole configuration still holds.
fn checked(model: Model, response: Response) -> Outcome {
    let problems = fulcrum_config::check_model(&model);
    if problems.is_empty() {
        return Outcome { response, model: Some(model) };
    }
    let text: String = problems.iter().map(|d| format!("{}\n", d.message)).collect();
    Outcome { response: Response { code: 255, stdout: String::new(), stderr: text }, model: None }
}

/// `-R`: each line of standard input is a command; a command-line error stops there (what came
/// before stays applied), an operation error is printed and the next line runs; the status is
/// the last line's.
fn restore(input: &[u8], current: &Model) -> Outcome {
    let mut model = current.clone();
    let mut response = Response::default();
    let mut changed = false;
    for line in String::from_utf8_lossy(input).lines() {
        let words = ipvsadm::words(line);
        if words.is_empty() {
            continue;
        }
        let command = match ipvsadm::parse("ipvsadm", &words) {
            Ok(Command::Restore) => Err(ipvsadm::try_help("ipvsadm")),
            other => other,
        };
        let command = match command {
            Ok(c) => c,
            Err(e) => {
                response.stderr.push_str(&format!("{}\n", e.message));
                response.code = e.code;
                if e.code == 2 {
                    break;
                }
                continue;
            }
        };
        match ipvsadm::apply(&mut model, &command) {
            Ok(Applied::Changed) => {
                changed = true;
                response.code = 0;
            }
            Ok(Applied::Unchanged) => response.code = 0,
            Err(e) => {
                response.stderr.push_str(&format!("{}\n", e.message));
                response.code = e.code;
            }
        }
    }
    if changed {
        let code = response.code;
        let mut out = checked(model, response);
        if out.model.is_some() {
            out.response.code = code;
        }
        out
    } else {
        Outcome { response, model: None }
    }
}
