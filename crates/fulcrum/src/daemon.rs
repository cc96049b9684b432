//! Going to the background (`haproxy -D`, `keepalived` without `-n`): the checked configuration is started again in a process of its own group,
//! detached from the terminal, and the command returns once that process serves (it says
//! READY over a datagram socket, systemd's protocol) or fails to (its exit code is returned).
//! The PID file names the background process. Its messages show on this process's standard
//! error until then (a start that fails says why).
use std::ffi::OsString;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// The variable that names the readiness socket to a daemon's background process.
pub const READY_VAR: &str = "FULCRUM_DAEMON_READY";

/// Whether this process is the background half of a detached start.
pub fn in_background() -> bool {
    std::env::var_os(READY_VAR).is_some()
}

/// Who hears that this process serves: the foreground process of a detached start, else
/// systemd (`NOTIFY_SOCKET`) when `systemd` asks for it.
pub fn notifier(background: bool, systemd: bool) -> Option<crate::notify::Notifier> {
    if background {
        crate::notify::Notifier::from_var(READY_VAR)
    } else if systemd {
        crate::notify::Notifier::from_env()
    } else {
        None
    }
}

/// How long the foreground waits for the background process to serve.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs in the foreground process: starts the personality `name` with `argv` (which must not
/// ask to go to the background again) in the background. `alert` prints a message the way
/// the personality prints them.
pub fn detach(name: &str, argv: Vec<OsString>, pidfile: Option<&Path>, alert: fn(&str)) -> ExitCode {
    let dir = std::env::temp_dir().join(format!("fulcrum-daemon-{}", std::process::id()));
    let result = start(name, &dir, argv, alert);
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(pid) => {
            if let Some(pidfile) = pidfile {
                if let Err(e) = std::fs::write(pidfile, format!("{pid}\n")) {
                    alert(&format!("Cannot create pidfile {} : {e}", pidfile.display()));
                    return ExitCode::from(1);
                }
            }
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn start(name: &str, dir: &Path, argv: Vec<OsString>, alert: fn(&str)) -> Result<u32, ExitCode> {
    let fail = |text: String| {
        alert(&text);
        ExitCode::from(1)
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join("ready");
    let socket = UnixDatagram::bind(&path).map_err(|e| fail(format!("cannot bind {}: {e}", path.display())))?;
    socket.set_read_timeout(Some(Duration::from_millis(100))).map_err(|e| fail(e.to_string()))?;
    let exe = std::env::current_exe().map_err(|e| fail(format!("cannot find the fulcrum binary: {e}")))?;
    let mut child = Command::new(exe)
        .arg0(name)
        .args(argv)
        .env(READY_VAR, &path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // Until it serves, what the background process says (why it cannot start) shows
        // here; once this process has returned, its later messages go nowhere.
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| fail(format!("cannot start the background process: {e}")))?;
    if let Some(mut said) = child.stderr.take() {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut said, &mut std::io::stderr());
        });
    }
    let deadline = Instant::now() + START_TIMEOUT;
    let mut buf = [0u8; 256];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            if buf.get(..n).is_some_and(|m| m.starts_with(b"READY=1")) {
                return Ok(child.id());
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            let code = status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1);
            alert(&format!("the background process exited before serving ({status})"));
            return Err(ExitCode::from(code.max(1)));
        }
    }
    let _ = child.kill();
    Err(fail(format!("the background process did not start serving within {}s", START_TIMEOUT.as_secs())))
}
