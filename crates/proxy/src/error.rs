//! The data path's one error type: what failed, on which side, at which stage of the exchange.
//! It is mapped here, once, to the status the client gets and to HAProxy's two-letter
//! termination state in the access log (`cR`, `SC`, `sH`, `SD`...); [`crate::retry`] decides
//! from it whether to try again.
use http::StatusCode;

use crate::h1::{ChunkError, HeadError};

/// Who ended the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Client,
    Server,
    Proxy,
}

/// How far the exchange had got (HAProxy's second letter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for or reading the request (`R`).
    Request,
    /// Waiting in the backend's queue (`Q`).
    Queue,
    /// Connecting to the server (`C`).
    Connect,
    /// Waiting for the response head (`H`).
    Headers,
    /// Moving a body (`D`).
    Data,
}

impl Stage {
    fn letter(self) -> u8 {
        match self {
            Stage::Request => b'R',
            Stage::Queue => b'Q',
            Stage::Connect => b'C',
            Stage::Headers => b'H',
            Stage::Data => b'D',
        }
    }
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("invalid request: {0}")]
    BadRequest(HeadError),
    #[error("invalid request body: {0}")]
    BadRequestBody(ChunkError),
    #[error("request body over the frontend's limit")]
    RequestTooLarge,
    #[error("request head not complete within timeout http-request")]
    RequestTimeout,
    #[error("client closed the connection")]
    ClientClosed,
    #[error("client sent or took nothing for timeout client")]
    ClientTimeout,
    #[error("no server available")]
    NoServer,
    #[error("no connection slot within timeout queue, or the queue is full")]
    QueueTimeout,
    #[error("connect timeout")]
    ConnectTimeout,
    #[error("connection refused or failed ({0:?})")]
    ConnectFailed(std::io::ErrorKind),
    #[error("server closed the connection")]
    ServerClosed,
    #[error("server sent nothing for timeout server")]
    ServerTimeout,
    #[error("invalid response: {0}")]
    BadResponse(HeadError),
    #[error("invalid response body: {0}")]
    BadResponseBody(ChunkError),
}

/// A failure at a stage of the exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{failure}")]
pub struct ProxyError {
    pub failure: Failure,
    pub stage: Stage,
}

impl ProxyError {
    pub fn new(failure: Failure, stage: Stage) -> Self {
        ProxyError { failure, stage }
    }

    /// Who ended the exchange.
    pub fn party(&self) -> Party {
        match self.failure {
            Failure::BadRequest(_)
            | Failure::BadRequestBody(_)
            | Failure::RequestTimeout
            | Failure::ClientClosed
            | Failure::ClientTimeout => Party::Client,
            Failure::ConnectTimeout
            | Failure::ConnectFailed(_)
            | Failure::ServerClosed
            | Failure::ServerTimeout
            | Failure::BadResponseBody(_) => Party::Server,
            Failure::RequestTooLarge | Failure::NoServer | Failure::QueueTimeout | Failure::BadResponse(_) => {
                Party::Proxy
            }
        }
    }

    /// The status the client is answered with, when an answer can still be sent (None: the
    /// client is gone, or a response is already under way).
    pub fn status(&self) -> Option<StatusCode> {
        if self.stage == Stage::Data && self.failure != Failure::ClientTimeout {
            return None;
        }
        Some(match self.failure {
            Failure::BadRequest(HeadError::UnsupportedTransferCoding) => StatusCode::UNPROCESSABLE_ENTITY,
            Failure::BadRequest(_) | Failure::BadRequestBody(_) => StatusCode::BAD_REQUEST,
            Failure::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            // A request body that stops coming: 408, as HAProxy answers.
            Failure::ClientTimeout if self.stage == Stage::Request => StatusCode::REQUEST_TIMEOUT,
            Failure::ClientTimeout | Failure::ClientClosed => return None,
            Failure::NoServer | Failure::QueueTimeout | Failure::ConnectTimeout | Failure::ConnectFailed(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Failure::ServerClosed | Failure::BadResponse(_) | Failure::BadResponseBody(_) => StatusCode::BAD_GATEWAY,
            Failure::ServerTimeout => StatusCode::GATEWAY_TIMEOUT,
        })
    }

    /// HAProxy's termination state: who ended it (`C`/`c` client abort/timeout, `S`/`s`
    /// server, `P` the proxy) and the stage.
    pub fn termination(&self) -> [u8; 2] {
        let who = match self.failure {
            Failure::RequestTimeout | Failure::ClientTimeout => b'c',
            Failure::ConnectTimeout | Failure::ServerTimeout | Failure::QueueTimeout => b's',
            Failure::BadRequest(_)
            | Failure::BadRequestBody(_)
            | Failure::RequestTooLarge
            | Failure::BadResponse(_) => b'P',
            // HAProxy logs a backend without a usable server as a connection refused (`SC`).
            Failure::NoServer => b'S',
            _ => match self.party() {
                Party::Client => b'C',
                Party::Server => b'S',
                Party::Proxy => b'P',
            },
        };
        [who, self.stage.letter()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_termination_state_of_each_failure() {
        let table: &[(Failure, Stage, Option<u16>, &str)] = &[
            (Failure::BadRequest(HeadError::MissingHost), Stage::Request, Some(400), "PR"),
            (Failure::RequestTimeout, Stage::Request, Some(408), "cR"),
            (Failure::ClientTimeout, Stage::Request, Some(408), "cR"),
            (Failure::ClientTimeout, Stage::Data, None, "cD"),
            (Failure::ClientClosed, Stage::Data, None, "CD"),
            (Failure::ClientClosed, Stage::Request, None, "CR"),
            (Failure::RequestTooLarge, Stage::Request, Some(413), "PR"),
            (Failure::NoServer, Stage::Connect, Some(503), "SC"),
            (Failure::QueueTimeout, Stage::Queue, Some(503), "sQ"),
            (Failure::ConnectTimeout, Stage::Connect, Some(503), "sC"),
            (Failure::ConnectFailed(std::io::ErrorKind::ConnectionRefused), Stage::Connect, Some(503), "SC"),
            (Failure::ServerClosed, Stage::Headers, Some(502), "SH"),
            (Failure::ServerTimeout, Stage::Headers, Some(504), "sH"),
            (Failure::BadResponse(HeadError::InvalidStatus), Stage::Headers, Some(502), "PH"),
            (Failure::ServerClosed, Stage::Data, None, "SD"),
            (Failure::ServerTimeout, Stage::Data, None, "sD"),
        ];
        for (failure, stage, status, term) in table {
            let e = ProxyError::new(failure.clone(), *stage);
            assert_eq!(e.status().map(|s| s.as_u16()), *status, "{e:?}");
            assert_eq!(std::str::from_utf8(&e.termination()).ok(), Some(*term), "{e:?}");
        }
    }
}
