//! External programs: `notify*` scripts (fire and forget) and `vrrp_script` checks (periodic,
//! with timeout and rise/fall), as keepalived runs them.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use fulcrum_model::VrrpScript;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Runs `script` through `sh -c` with `args` appended as positional parameters (so a script
/// line with its own arguments works, as in keepalived), without waiting for it.
pub fn notify(script: &str, args: &[&str]) {
    let mut command = tokio::process::Command::new("/bin/sh");
    command.arg("-c").arg(format!("{script} \"$@\"")).arg("sh").args(args);
    command.stdin(Stdio::null()).kill_on_drop(false);
    match command.spawn() {
        Ok(mut child) => {
            let script = script.to_string();
            tokio::spawn(async move {
                match child.wait().await {
                    Ok(status) if !status.success() => tracing::warn!("notify script {script:?} exited with {status}"),
                    Err(e) => tracing::warn!("notify script {script:?}: {e}"),
                    Ok(_) => {}
                }
            });
        }
        Err(e) => tracing::warn!("cannot run notify script {script:?}: {e}"),
    }
}

/// The `vrrp_script` checks, by name: each runs in its own task and publishes up/down.
#[derive(Debug, Default)]
pub struct ScriptChecks {
    running: Mutex<HashMap<String, RunningCheck>>,
}

/// A running check: its definition, its up/down state, its task.
type RunningCheck = (VrrpScript, watch::Receiver<bool>, JoinHandle<()>);

impl ScriptChecks {
    /// Starts checks for `scripts`, keeping those whose definition did not change, stopping
    /// those gone.
    pub fn sync(&self, scripts: &[VrrpScript]) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|name, (def, _, task)| {
            let keep = scripts.iter().any(|s| s.name == *name && s == def);
            if !keep {
                task.abort();
            }
            keep
        });
        for s in scripts {
            if !running.contains_key(&s.name) {
                // keepalived starts a script as failed... unless rise is reached; start down
                // so an instance does not claim MASTER on a check that never ran.
                let (tx, rx) = watch::channel(false);
                let task = tokio::spawn(check_loop(s.clone(), tx));
                running.insert(s.name.clone(), (s.clone(), rx, task));
            }
        }
    }

    /// (up, the script's own weight) of a check; an unknown check counts as down.
    pub fn status(&self, name: &str) -> (bool, Option<i32>) {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        match running.get(name) {
            Some((def, rx, _)) => (*rx.borrow(), (def.weight != 0).then_some(def.weight)),
            None => (false, None),
        }
    }

    /// Stops every check.
    pub fn stop(&self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for (_, (_, _, task)) in running.drain() {
            task.abort();
        }
    }
}

async fn run_once(script: &str, timeout: Duration) -> bool {
    let mut command = tokio::process::Command::new("/bin/sh");
    command.arg("-c").arg(script).stdin(Stdio::null()).stdout(Stdio::null()).kill_on_drop(true);
    let Ok(mut child) = command.spawn() else { return false };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status.success(),
        _ => false,
    }
}

async fn check_loop(s: VrrpScript, up: watch::Sender<bool>) {
    let interval = s.interval.max(Duration::from_millis(10));
    let timeout = s.timeout.unwrap_or(interval);
    let (rise, fall) = (s.rise.max(1), s.fall.max(1));
    let (mut ok_run, mut ko_run) = (0u32, 0u32);
    loop {
        let ok = run_once(&s.script, timeout).await;
        if ok {
            ok_run += 1;
            ko_run = 0;
        } else {
            ko_run += 1;
            ok_run = 0;
        }
        let was = *up.borrow();
        if !was && ok_run >= rise {
            tracing::info!("VRRP_Script({}) succeeded", s.name);
            up.send_replace(true);
        } else if was && ko_run >= fall {
            tracing::warn!("VRRP_Script({}) failed", s.name);
            up.send_replace(false);
        }
        tokio::time::sleep(interval).await;
    }
}
