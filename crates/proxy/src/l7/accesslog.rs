//! One access-log line per request, in the shape of HAProxy's `option httplog`:
//! `client:port [date] frontend backend/server Tq/Tw/Tc/Tr/Tt status bytes ... "request line"`.
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::live::lock;

/// Where access-log lines go.
#[derive(Debug)]
pub enum AccessLog {
    Stderr,
    File(Mutex<std::fs::File>),
}

impl AccessLog {
    pub fn open(path: Option<&Path>) -> std::io::Result<AccessLog> {
        match path {
            None => Ok(AccessLog::Stderr),
            Some(p) => {
                let f = std::fs::OpenOptions::new().create(true).append(true).open(p)?;
                Ok(AccessLog::File(Mutex::new(f)))
            }
        }
    }

    pub fn write(&self, line: &str) {
        let _ = match self {
            AccessLog::Stderr => std::io::stderr().lock().write_all(line.as_bytes()),
            AccessLog::File(f) => lock(f).write_all(line.as_bytes()),
        };
    }
}

/// What one request did, filled in as it goes.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub client: SocketAddr,
    pub accepted: SystemTime,
    pub start: Instant,
    pub frontend: String,
    pub backend: String,
    pub server: String,
    /// Milliseconds from the request's first byte to its last header (HAProxy's TR).
    pub tq: i64,
    /// Milliseconds: waiting in queue, connecting, until response headers; -1 when not reached.
    pub tw: i64,
    pub tc: i64,
    pub tr: i64,
    pub status: u16,
    pub retries: u32,
    /// HAProxy's termination state (`--` for a normal end, `SC`, `cD`...).
    pub termination: [u8; 2],
    pub request_line: String,
}

impl LogEntry {
    pub fn format(&self, bytes: u64) -> String {
        let tt = self.start.elapsed().as_millis();
        let mut line = String::with_capacity(160);
        let _ = writeln!(
            line,
            "{} [{}] {} {}/{} {}/{}/{}/{}/{} {} {} - - {}{}-- {} \"{}\"",
            self.client,
            http_date(self.accepted),
            self.frontend,
            self.backend,
            self.server,
            self.tq,
            self.tw,
            self.tc,
            self.tr,
            tt,
            self.status,
            bytes,
            char::from(self.termination[0]),
            char::from(self.termination[1]),
            self.retries,
            self.request_line.escape_debug()
        );
        line
    }

    /// A `mode tcp` connection's line, in the shape of HAProxy's tcplog: client, accept date,
    /// frontend, backend/server, Tw/Tc/Tt, bytes from the server, termination state, retries.
    pub fn format_tcp(&self, bytes: u64) -> String {
        let tt = self.start.elapsed().as_millis();
        let mut line = String::with_capacity(120);
        let _ = writeln!(
            line,
            "{} [{}] {} {}/{} {}/{}/{} {} {}{} {}",
            self.client,
            http_date(self.accepted),
            self.frontend,
            self.backend,
            self.server,
            self.tw,
            self.tc,
            tt,
            bytes,
            char::from(self.termination[0]),
            char::from(self.termination[1]),
            self.retries,
        );
        line
    }
}

/// `22/Nov/2026:07:30:00.123`, UTC, as HAProxy prints accept dates.
fn http_date(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.get((m as usize).saturating_sub(1)).copied().unwrap_or("???");
    format!("{day:02}/{month}/{y}:{:02}:{:02}:{:02}.{:03}", rem / 3600, (rem / 60) % 60, rem % 60, d.subsec_millis())
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_414), (2025, 11, 22));
        let t = UNIX_EPOCH + Duration::from_millis(1_763_796_600_123);
        assert_eq!(http_date(t), "22/Nov/2025:07:30:00.123");
    }
}
