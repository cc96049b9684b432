//! Whether to try a request again after a failure, and where: a pure decision from the
//! failure, the backend's `retries` and `option redispatch`, and what has been sent. The
//! request path acts on it; the table tests below are HAProxy's behaviour written down.
//!
//! - A connection that could not be opened is retried up to `retries` times, on the same
//!   server after a turn-around pause of `min(timeout connect, 1s)` (the server may be
//!   restarting); with `option redispatch` the last retry goes to another server, at once.
//! - A reused keep-alive connection that the server closed before answering is not the
//!   server's failure: a request that can be sent again goes out on a new connection, without
//!   counting as a retry.
//! - A fresh connection closed before any answer costs a retry only for a request that is safe
//!   to send twice (no body, GET/HEAD/OPTIONS); anything else is answered 502.
//! - A server that does not answer in time, or answers nonsense, is not retried.
use std::time::Duration;

use crate::error::{Failure, ProxyError};

/// The backend's settings that retries follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub retries: u32,
    pub redispatch: bool,
    pub timeout_connect: Duration,
}

/// Where a request stands when an attempt fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// Retries already made (0 on the first attempt).
    pub retries: u32,
    /// The connection came from the idle pool.
    pub reused: bool,
    /// The request can be sent again as it is (nothing of a body has been consumed) and is
    /// safe to repeat.
    pub replayable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Try the same server again, after `pause`.
    SameServer { pause: Duration },
    /// Try another server, now.
    Redispatch,
    /// Send again on a new connection to the same server; not a retry.
    NewConnection,
    /// Give up: answer with this error.
    GiveUp(ProxyError),
}

pub fn decide(policy: &RetryPolicy, attempt: &Attempt, error: ProxyError) -> Decision {
    let retry = |policy: &RetryPolicy, error: ProxyError| {
        if attempt.retries >= policy.retries {
            return Decision::GiveUp(error);
        }
        if policy.redispatch && attempt.retries + 1 == policy.retries {
            return Decision::Redispatch;
        }
        let pause = match error.failure {
            // A timeout has waited long enough already.
            Failure::ConnectTimeout => Duration::ZERO,
            _ => policy.timeout_connect.min(Duration::from_secs(1)),
        };
        Decision::SameServer { pause }
    };
    match error.failure {
        Failure::ConnectTimeout | Failure::ConnectFailed(_) => retry(policy, error),
        Failure::ServerClosed if attempt.reused && attempt.replayable => Decision::NewConnection,
        Failure::ServerClosed if attempt.replayable => retry(policy, error),
        _ => Decision::GiveUp(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Stage;

    fn refused() -> ProxyError {
        ProxyError::new(Failure::ConnectFailed(std::io::ErrorKind::ConnectionRefused), Stage::Connect)
    }

    #[test]
    fn decisions() {
        let second = Duration::from_secs(1);
        let p = |retries, redispatch| RetryPolicy { retries, redispatch, timeout_connect: Duration::from_secs(5) };
        let a = |retries, reused, replayable| Attempt { retries, reused, replayable };
        let closed = ProxyError::new(Failure::ServerClosed, Stage::Headers);
        let timeout = ProxyError::new(Failure::ConnectTimeout, Stage::Connect);
        let table: Vec<(RetryPolicy, Attempt, ProxyError, Decision)> = vec![
            // retries 3 without redispatch: three more tries of the same server, paused.
            (p(3, false), a(0, false, false), refused(), Decision::SameServer { pause: second }),
            (p(3, false), a(2, false, false), refused(), Decision::SameServer { pause: second }),
            (p(3, false), a(3, false, false), refused(), Decision::GiveUp(refused())),
            // With redispatch, the last retry goes elsewhere, at once.
            (p(3, true), a(1, false, false), refused(), Decision::SameServer { pause: second }),
            (p(3, true), a(2, false, false), refused(), Decision::Redispatch),
            (p(1, true), a(0, false, false), refused(), Decision::Redispatch),
            (p(0, true), a(0, false, false), refused(), Decision::GiveUp(refused())),
            // A connect timeout is retried without a pause.
            (p(3, false), a(0, false, false), timeout.clone(), Decision::SameServer { pause: Duration::ZERO }),
            // The pause is never longer than timeout connect.
            (
                RetryPolicy { timeout_connect: Duration::from_millis(200), ..p(3, false) },
                a(0, false, false),
                refused(),
                Decision::SameServer { pause: Duration::from_millis(200) },
            ),
            // A stale pooled connection: sent again on a new one, not counted.
            (p(0, false), a(0, true, true), closed.clone(), Decision::NewConnection),
            (p(3, false), a(0, true, false), closed.clone(), Decision::GiveUp(closed.clone())),
            // A fresh connection closed under a safe request: a retry; under another: 502.
            (p(3, true), a(0, false, true), closed.clone(), Decision::SameServer { pause: second }),
            (p(3, true), a(0, false, false), closed.clone(), Decision::GiveUp(closed.clone())),
            // No answer in time, or a bad one: never retried.
            (
                p(3, true),
                a(0, false, true),
                ProxyError::new(Failure::ServerTimeout, Stage::Headers),
                Decision::GiveUp(ProxyError::new(Failure::ServerTimeout, Stage::Headers)),
            ),
        ];
        for (policy, attempt, error, want) in table {
            assert_eq!(decide(&policy, &attempt, error.clone()), want, "{policy:?} {attempt:?} {error:?}");
        }
    }
}
