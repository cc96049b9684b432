//! The check loop of one server: run the check, give the result to the server's
//! [`HealthMachine`], act on the transition it reports, sleep for the interval it asks for.
//! What the server's state is and what a transition changes belong to the caller
//! ([`CheckSink`]); the loop only moves bytes and time.
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use crate::{run_check, CheckOutcome, CheckSpec, HealthMachine, Intervals, Transition};

/// Where a check loop reports.
pub trait CheckSink: Send + Sync + 'static {
    /// The server's rise/fall machine (shared with passive observation).
    fn machine(&self) -> &Mutex<HealthMachine>;
    /// Every check's outcome (for the stats page's "last check").
    fn checked(&self, outcome: &CheckOutcome);
    /// A change of state, with HAProxy's wording of why.
    fn transition(&self, transition: Transition, reason: &str);
}

/// What one server's checks are.
#[derive(Debug, Clone)]
pub struct CheckPlan {
    /// Where checks go (`addr`/`port` of the server line, else its address).
    pub target: SocketAddr,
    pub spec: CheckSpec,
    /// `timeout check`, else `inter`.
    pub timeout: Duration,
    pub intervals: Intervals,
    /// Delay of the first check, spreading a backend's checks over one interval.
    pub first: Duration,
}

/// Runs `plan` until the task is dropped.
pub async fn check_loop(plan: CheckPlan, sink: impl CheckSink) {
    tokio::time::sleep(plan.first).await;
    loop {
        let outcome = run_check(plan.target, &plan.spec, plan.timeout).await;
        sink.checked(&outcome);
        let (transition, next) = {
            let mut machine = sink.machine().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let t = machine.record(outcome.ok);
            (t, machine.next_interval(&plan.intervals))
        };
        if let Some(t) = transition {
            let reason = format!("{}, check duration: {}ms", outcome.reason, outcome.duration.as_millis());
            sink.transition(t, &reason);
        }
        tokio::time::sleep(next).await;
    }
}
