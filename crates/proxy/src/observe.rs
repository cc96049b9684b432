//! Passive health (`observe layer4|layer7`, `error-limit`, `on-error`): real traffic errors
//! count against a server as failed checks would.
use std::sync::atomic::Ordering;
use std::sync::Arc;

use fulcrum_balance::ServerId;
use fulcrum_model::{Observe, OnError};

use crate::live::lock;
use crate::snapshot::BackendRt;

#[derive(Debug, Clone, Copy)]
pub enum Observation {
    ConnectFailed,
    ResponseFailed,
    Timeout,
    Status(u16),
}

impl Observation {
    /// Whether this counts as an error under `observe MODE`.
    fn is_error(self, mode: Observe) -> Option<bool> {
        match (self, mode) {
            (Observation::ConnectFailed, _) => Some(true),
            (Observation::ResponseFailed | Observation::Timeout, Observe::Layer7) => Some(true),
            (Observation::ResponseFailed | Observation::Timeout, Observe::Layer4) => Some(false),
            // HAProxy counts 500-504 except 501 and 505 as layer-7 errors.
            (Observation::Status(code), Observe::Layer7) => Some(matches!(code, 500 | 502 | 503 | 504)),
            (Observation::Status(_), Observe::Layer4) => Some(false),
        }
    }
}

pub fn observe_result(backend: &Arc<BackendRt>, id: ServerId, what: Observation) {
    let Some(server) = backend.servers.get(id) else { return };
    let Some(mode) = server.cfg.observe else { return };
    let Some(error) = what.is_error(mode) else { return };
    if !error {
        if server.live.consecutive_errors.load(Ordering::Relaxed) != 0 {
            server.live.consecutive_errors.store(0, Ordering::Relaxed);
        }
        return;
    }
    let count = server.live.consecutive_errors.fetch_add(1, Ordering::Relaxed) + 1;
    if count < server.cfg.error_limit.max(1) {
        return;
    }
    server.live.consecutive_errors.store(0, Ordering::Relaxed);
    let transition = {
        let mut machine = lock(&server.live.machine);
        match server.cfg.on_error {
            OnError::FastInter => {
                machine.hurry();
                None
            }
            OnError::FailCheck => machine.record(false),
            OnError::SuddenDeath => {
                machine.sudden_death();
                None
            }
            OnError::MarkDown => machine.mark_down(),
        }
    };
    let reason = format!("{count} consecutive errors observed on live traffic ({what:?})");
    if let Some(t) = transition {
        crate::checks::apply_transition(backend, id, t, &reason);
    } else {
        tracing::info!(backend = %backend.cfg.name, server = %server.cfg.name, "{reason}");
    }
}
