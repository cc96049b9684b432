//! `option tcp-check` and HAProxy's protocol checks, run as HAProxy 2.6 runs them: a list of
//! steps (connect, send, expect) over one connection. An expect looks at what arrived since the
//! last send or connect, unanchored, and waits for more while it cannot decide: fewer bytes than
//! its pattern or its `min-recv`, or no match yet without a `min-recv` (until the server closes,
//! 16 KiB arrive, or the check times out). The protocol checks are fixed step lists:
//! `redis-check` (a RESP PING, `+PONG`), `smtpchk` (a 2xx banner, HELO/EHLO, 2xx),
//! `pgsql-check` (a StartupMessage, an authentication request that is not an error),
//! `mysql-check` (the login and QUIT packets sent at once, no error packet back), `ldap-check`
//! (an anonymous simple bind, result code 0), `ssl-hello-chk` (an SSLv3 ClientHello, a
//! handshake or alert record back).
use std::net::SocketAddr;

use fulcrum_model::{TcpCheck, TcpCheckRule, TcpExpect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What HAProxy's check buffer holds (`tune.bufsize`): a full buffer is as good as the end.
const BUFFER: usize = 16_384;

#[derive(Debug, Clone)]
enum Match {
    Bytes(Vec<u8>),
    Regex(regex::bytes::Regex),
    /// A regex over the upper-case hex dump.
    HexRegex(regex::Regex),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Custom {
    /// MySQL: the server's first packet is not an error packet.
    MysqlGreeting,
    /// MySQL: the answer to the login, after the greeting, is not an error packet.
    MysqlLogin,
    /// LDAP: a BindResponse with result code 0.
    LdapBind,
}

#[derive(Debug, Clone)]
enum Step {
    Connect {
        port: Option<u16>,
        addr: Option<std::net::IpAddr>,
        send_proxy: bool,
        ssl: bool,
        sni: Option<rustls::pki_types::ServerName<'static>>,
    },
    Send(Vec<u8>),
    Expect {
        negate: bool,
        what: Match,
        text: String,
        min_recv: Option<usize>,
        on_error: Option<&'static str>,
    },
    Custom(Custom),
}

/// A tcp-check compiled once: regexes built, the protocol's steps laid out.
#[derive(Debug, Clone)]
pub struct CompiledTcpCheck {
    steps: Vec<Step>,
    /// What a pass says (`Redis server is ok`, ...); empty for plain tcp-check.
    success: &'static str,
    /// Pure `tcp-check` rules (their messages say "TCPCHK ... at step N").
    rules: bool,
    /// `ssl-hello-chk`: a layer-6 check.
    layer6: bool,
    /// A PROXY protocol header for connects that ask for it.
    proxy_header: Option<Vec<u8>>,
    /// The implicit connect sends it too (a `send-proxy` server checked on its own address).
    implicit_proxy: bool,
    /// The server's TLS, for `tcp-check connect ssl`.
    tls: Option<crate::check_tls::CheckTls>,
}

impl CompiledTcpCheck {
    /// Whether a connect step asks for TLS (`tcp-check connect ssl`).
    pub fn wants_tls(&self) -> bool {
        self.steps.iter().any(|s| matches!(s, Step::Connect { ssl: true, .. }))
    }

    /// The TLS `tcp-check connect ssl` speaks: the server's configuration and name.
    pub fn with_tls(mut self, tls: crate::check_tls::CheckTls) -> Self {
        self.tls = Some(tls);
        self
    }
}

/// A check's connection: plain, or TLS after a `connect ssl`.
enum CheckStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl tokio::io::AsyncRead for CheckStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            CheckStream::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            CheckStream::Tls(s) => std::pin::Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for CheckStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            CheckStream::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            CheckStream::Tls(s) => std::pin::Pin::new(&mut **s).poll_write(cx, buf),
        }
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            CheckStream::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            CheckStream::Tls(s) => std::pin::Pin::new(&mut **s).poll_flush(cx),
        }
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            CheckStream::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            CheckStream::Tls(s) => std::pin::Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

fn expect(negate: bool, what: Match, text: impl Into<String>, min_recv: Option<usize>) -> Step {
    Step::Expect { negate, what, text: text.into(), min_recv, on_error: None }
}

fn regex(re: &str) -> Result<Match, regex::Error> {
    Ok(Match::Regex(regex::bytes::Regex::new(re)?))
}

impl CompiledTcpCheck {
    pub fn new(check: &TcpCheck) -> Result<Self, regex::Error> {
        let mut c = CompiledTcpCheck {
            steps: Vec::new(),
            success: "",
            rules: false,
            layer6: false,
            proxy_header: None,
            implicit_proxy: false,
            tls: None,
        };
        match check {
            TcpCheck::Rules(rules) => {
                c.rules = true;
                for rule in rules {
                    c.steps.push(match rule {
                        TcpCheckRule::Connect { port, addr, send_proxy, ssl, sni, .. } => Step::Connect {
                            port: *port,
                            addr: *addr,
                            send_proxy: *send_proxy,
                            ssl: *ssl,
                            sni: sni.as_ref().and_then(|n| rustls::pki_types::ServerName::try_from(n.clone()).ok()),
                        },
                        TcpCheckRule::Send { data, .. } => Step::Send(data.clone()),
                        TcpCheckRule::Expect { negate, pattern, min_recv, .. } => {
                            let (what, text) = match pattern {
                                TcpExpect::String(s) => {
                                    (Match::Bytes(s.clone()), format!("'{}'", String::from_utf8_lossy(s)))
                                }
                                TcpExpect::Binary(b) => (Match::Bytes(b.clone()), "(binary)".into()),
                                TcpExpect::Rstring(re) => (regex(re)?, "(regex)".into()),
                                TcpExpect::Rbinary(re) => {
                                    (Match::HexRegex(regex::Regex::new(re)?), "(binary regex)".into())
                                }
                            };
                            expect(*negate, what, text, *min_recv)
                        }
                    });
                }
            }
            TcpCheck::Redis => {
                c.success = "Redis server is ok";
                c.steps.push(Step::Send(b"*1\r\n$4\r\nPING\r\n".to_vec()));
                c.steps.push(expect(false, Match::Bytes(b"+PONG\r\n".to_vec()), "", None));
            }
            TcpCheck::Smtp { command } => {
                c.steps.push(expect(false, regex(r"^[0-9]{3}[ \r]")?, "", Some(4)));
                c.steps.push(expect(false, regex(r"^2[0-9]{2}[ \r]")?, "", Some(4)));
                c.steps.push(Step::Send(format!("{command}\r\n").into_bytes()));
                c.steps.push(expect(false, regex(r"^2[0-9]{2}[- \r]")?, "", Some(4)));
            }
            TcpCheck::Pgsql { user } => {
                c.success = "PostgreSQL server is ok";
                let mut startup = Vec::new();
                let len = u32::try_from(15 + user.len()).unwrap_or(u32::MAX);
                startup.extend_from_slice(&len.to_be_bytes());
                startup.extend_from_slice(&[0, 3, 0, 0]);
                startup.extend_from_slice(b"user\0");
                startup.extend_from_slice(user.as_bytes());
                startup.extend_from_slice(&[0, 0]);
                c.steps.push(Step::Send(startup));
                c.steps.push(expect(true, regex("^E")?, "", Some(5)));
                let auth = Match::HexRegex(regex::Regex::new("^52000000(08|0A|0C)000000(00|02|03|04|05|06)")?);
                c.steps.push(Step::Expect {
                    negate: false,
                    what: auth,
                    text: String::new(),
                    min_recv: Some(9),
                    on_error: Some("PostgreSQL unknown error"),
                });
            }
            TcpCheck::Mysql { user, post41 } => {
                if let Some(user) = user {
                    c.steps.push(Step::Send(mysql_login(user, *post41)));
                }
                c.steps.push(Step::Custom(Custom::MysqlGreeting));
                if user.is_some() {
                    c.steps.push(Step::Custom(Custom::MysqlLogin));
                }
            }
            TcpCheck::Ldap => {
                c.steps.push(Step::Send(vec![
                    0x30, 0x0c, 0x02, 0x01, 0x01, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x80, 0x00,
                ]));
                c.steps.push(Step::Expect {
                    negate: false,
                    what: Match::HexRegex(regex::Regex::new("^30")?),
                    text: String::new(),
                    min_recv: Some(14),
                    on_error: Some("Not LDAPv3 protocol"),
                });
                c.steps.push(Step::Custom(Custom::LdapBind));
            }
            TcpCheck::SslHello => {
                c.layer6 = true;
                c.steps.push(Step::Send(Vec::new()));
                c.steps.push(expect(false, Match::HexRegex(regex::Regex::new("^1[56]")?), "", Some(5)));
            }
        }
        Ok(c)
    }

    /// Connects that ask for it (`tcp-check connect send-proxy`) send this header first; with
    /// `implicit`, the implicit connect too (HAProxy's checks of a `send-proxy` server).
    pub fn with_proxy_header(mut self, header: Vec<u8>, implicit: bool) -> Self {
        self.proxy_header = Some(header);
        self.implicit_proxy = implicit;
        self
    }
}

/// MySQL's client authentication packet for `user` with an empty password, then COM_QUIT.
fn mysql_login(user: &str, post41: bool) -> Vec<u8> {
    let mut payload = Vec::new();
    if post41 {
        payload.extend_from_slice(&[0x00, 0x82, 0x00, 0x00]);
        payload.extend_from_slice(&[0x00, 0x80, 0x00, 0x01]);
        payload.push(0x21);
        payload.extend_from_slice(&[0u8; 23]);
    } else {
        payload.extend_from_slice(&[0x00, 0x80]);
        payload.extend_from_slice(&[0x00, 0x00, 0x01]);
    }
    payload.extend_from_slice(user.as_bytes());
    payload.push(0);
    payload.push(0);
    let len = u32::try_from(payload.len()).unwrap_or(0).to_le_bytes();
    let mut packet = vec![len[0], len[1], len[2], 1];
    packet.extend_from_slice(&payload);
    packet.extend_from_slice(&[0x01, 0x00, 0x00, 0x00, 0x01]);
    packet
}

/// The SSLv3 ClientHello of `ssl-hello-chk`, with the current time in it.
fn ssl_hello() -> Vec<u8> {
    let mut h = vec![0x16, 0x03, 0x00, 0x00, 0x79, 0x01, 0x00, 0x00, 0x75, 0x03, 0x00];
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    h.extend_from_slice(&u32::try_from(now & 0xffff_ffff).unwrap_or(0).to_be_bytes());
    h.extend_from_slice(b"HAPROXYSSLCHK\nHAPROXYSSLCHK\n");
    h.push(0x00);
    h.extend_from_slice(&[0x00, 0x4e]);
    for suite in (0x0001u16..=0x001b).chain(0x002f..=0x003a) {
        h.extend_from_slice(&suite.to_be_bytes());
    }
    h.extend_from_slice(&[0x01, 0x00]);
    h
}

/// How a check ended: pass or fail, HAProxy's reason, and its info text.
pub(crate) struct TcpOutcome {
    pub ok: bool,
    pub reason: String,
}

fn fail(reason: &str, info: String) -> TcpOutcome {
    let reason = if info.is_empty() { reason.to_string() } else { format!("{reason}, info: \"{info}\"") };
    TcpOutcome { ok: false, reason }
}

/// Runs the check against `target` (the server's check address).
pub(crate) async fn run(check: &CompiledTcpCheck, target: SocketAddr) -> TcpOutcome {
    let mut stream: Option<CheckStream> = None;
    let mut buf: Vec<u8> = Vec::new();
    let mut closed = false;
    // An implicit connect first, unless the rules start with one.
    let starts_with_connect = matches!(check.steps.first(), Some(Step::Connect { .. }));
    if !starts_with_connect {
        match TcpStream::connect(target).await {
            Ok(mut s) => {
                if let (true, Some(header)) = (check.implicit_proxy, &check.proxy_header) {
                    if let Err(e) = s.write_all(header).await {
                        return fail("Layer4 connection problem", e.to_string());
                    }
                }
                stream = Some(CheckStream::Plain(s));
            }
            Err(e) => {
                let info =
                    if check.rules { format!("{e} at initial connection step of tcp-check") } else { e.to_string() };
                return fail("Layer4 connection problem", info);
            }
        }
    }
    let mut last_info = String::new();
    for (index, step) in check.steps.iter().enumerate() {
        let number = index + 1;
        match step {
            Step::Connect { port, addr, send_proxy, ssl, sni } => {
                let to = SocketAddr::new(addr.unwrap_or(target.ip()), port.unwrap_or(target.port()));
                match TcpStream::connect(to).await {
                    Ok(mut s) => {
                        if let (true, Some(header)) = (*send_proxy, &check.proxy_header) {
                            if let Err(e) = s.write_all(header).await {
                                return fail(
                                    "Layer4 connection problem",
                                    format!("{e} at step {number} of tcp-check (connect)"),
                                );
                            }
                        }
                        let s = match (*ssl, &check.tls) {
                            (false, _) => CheckStream::Plain(s),
                            (true, None) => {
                                return fail(
                                    "Layer6 invalid response",
                                    format!("no TLS settings at step {number} of tcp-check (connect ssl)"),
                                )
                            }
                            (true, Some(tls)) => match tls.connect(s, sni.as_ref()).await {
                                Ok(t) => CheckStream::Tls(Box::new(t)),
                                Err(e) => {
                                    return fail(
                                        "Layer6 invalid response",
                                        format!(
                                            "SSL handshake failure ({e}) at step {number} of tcp-check (connect ssl)"
                                        ),
                                    )
                                }
                            },
                        };
                        stream = Some(s);
                        buf.clear();
                        closed = false;
                    }
                    Err(e) => {
                        let port_text = port.map(|p| format!(" port {p}")).unwrap_or_default();
                        return fail(
                            "Layer4 connection problem",
                            format!("{e} at step {number} of tcp-check (connect{port_text})"),
                        );
                    }
                }
            }
            Step::Send(data) => {
                let Some(s) = stream.as_mut() else { return fail("Socket error", String::new()) };
                let data = if check.layer6 { ssl_hello() } else { data.clone() };
                if let Err(e) = s.write_all(&data).await {
                    return fail("Socket error", format!("{e} at step {number} of tcp-check (send)"));
                }
                buf.clear();
                closed = false;
            }
            Step::Expect { negate, what, text, min_recv, on_error } => {
                let Some(s) = stream.as_mut() else { return fail("Socket error", String::new()) };
                loop {
                    let need = match what {
                        Match::Bytes(p) => p.len(),
                        _ => 0,
                    };
                    let last_read = closed || buf.len() >= BUFFER;
                    let short = buf.len() < need || min_recv.is_some_and(|m| buf.len() < m);
                    let matched = !short && matches(what, &buf);
                    let wait = !last_read && (short || (!matched && min_recv.is_none()));
                    if wait {
                        if !read_more(s, &mut buf, &mut closed).await {
                            closed = true;
                        }
                        continue;
                    }
                    if buf.is_empty() && closed {
                        return fail(layer7(check, false), format!("TCPCHK got an empty response at step {number}"));
                    }
                    if matched == *negate {
                        let info = if let Some(e) = on_error {
                            (*e).to_string()
                        } else if check.rules {
                            let verb = if *negate { "matched unwanted content" } else { "did not match content" };
                            format!("TCPCHK {verb} {text} at step {number}")
                        } else {
                            first_line(&buf)
                        };
                        let reason = if check.layer6 {
                            "Layer6 invalid response"
                        } else if check.rules || on_error.is_some() {
                            "Layer7 invalid response"
                        } else {
                            "Layer7 wrong status"
                        };
                        return fail(reason, info);
                    }
                    last_info = first_line(&buf);
                    break;
                }
            }
            Step::Custom(custom) => {
                let Some(s) = stream.as_mut() else { return fail("Socket error", String::new()) };
                match custom_step(*custom, s, &mut buf, &mut closed).await {
                    Ok(info) => last_info = info,
                    Err((reason, info)) => return fail(reason, info),
                }
            }
        }
    }
    let _ = last_info;
    let reason = if check.layer6 {
        "Layer6 check passed".to_string()
    } else if check.steps.is_empty() {
        "Layer4 check passed".to_string()
    } else if check.success.is_empty() {
        format!("Layer7 check passed{}", if check.rules { ", info: \"(tcp-check)\"" } else { "" })
    } else {
        format!("Layer7 check passed, info: \"{}\"", check.success)
    };
    TcpOutcome { ok: true, reason }
}

fn layer7(check: &CompiledTcpCheck, _ok: bool) -> &'static str {
    if check.layer6 {
        "Layer6 invalid response"
    } else {
        "Layer7 invalid response"
    }
}

fn matches(what: &Match, buf: &[u8]) -> bool {
    match what {
        Match::Bytes(p) => p.is_empty() || buf.windows(p.len()).any(|w| w == p.as_slice()),
        Match::Regex(re) => re.is_match(buf),
        Match::HexRegex(re) => {
            let hex: String = buf.iter().map(|b| format!("{b:02X}")).collect();
            re.is_match(&hex)
        }
    }
}

/// The first line of what arrived, for messages.
fn first_line(buf: &[u8]) -> String {
    let line = buf.split(|b| *b == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(line).trim_end_matches('\r').chars().take(127).collect()
}

/// Reads more into `buf`; false at the end of the stream or on an error.
async fn read_more(s: &mut CheckStream, buf: &mut Vec<u8>, closed: &mut bool) -> bool {
    let mut chunk = [0u8; 4096];
    match s.read(&mut chunk).await {
        Ok(0) | Err(_) => {
            *closed = true;
            false
        }
        Ok(n) => {
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            true
        }
    }
}

/// Reads until `buf` holds `want` bytes; false if the stream ends first.
async fn fill(s: &mut CheckStream, buf: &mut Vec<u8>, closed: &mut bool, want: usize) -> bool {
    while buf.len() < want {
        if *closed || !read_more(s, buf, closed).await {
            return false;
        }
    }
    true
}

/// A MySQL packet at `off`: its payload's length and where the payload starts.
fn mysql_packet(buf: &[u8], off: usize) -> Option<(usize, usize)> {
    let h = buf.get(off..off + 4)?;
    let len = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
    Some((len, off + 4))
}

/// What a protocol reply says so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Undecided until the buffer holds this many bytes.
    Need(usize),
    /// Passed, with the text HAProxy reports.
    Pass(String),
    /// Failed: HAProxy's reason and info.
    Fail(&'static str, String),
}

/// Judges a MySQL server's bytes: the greeting (`login` false) or the answer to the login after
/// it. Pure: the check reads more while it says [`Reply::Need`]. Any bytes give a verdict.
pub fn mysql_reply(buf: &[u8], login: bool) -> Reply {
    let invalid = || Reply::Fail("Layer7 invalid response", String::new());
    let mut off = 0;
    if login {
        // The login's answer follows the greeting.
        match mysql_packet(buf, 0) {
            Some((len, start)) => off = start + len,
            None => return Reply::Need(4),
        }
    }
    let Some((len, start)) = mysql_packet(buf, off) else { return Reply::Need(off + 4) };
    // HAProxy reads into its 16 KiB check buffer: a longer packet is not read.
    if start + len > BUFFER {
        return invalid();
    }
    if buf.len() < start + len {
        return Reply::Need(start + len);
    }
    let payload = buf.get(start..start + len).unwrap_or_default();
    if payload.first() == Some(&0xff) {
        let code = u16::from_le_bytes([payload.get(1).copied().unwrap_or(0), payload.get(2).copied().unwrap_or(0)]);
        let text = String::from_utf8_lossy(buf.get(off + 7..start + len).unwrap_or_default()).into_owned();
        return Reply::Fail("Layer7 wrong status", format!("code: {code}, {text}"));
    }
    // The server's version: the greeting's NUL-terminated string after the protocol byte.
    let version = buf.get(5..).unwrap_or_default().split(|b| *b == 0).next().unwrap_or_default();
    Reply::Pass(String::from_utf8_lossy(version).into_owned())
}

/// Judges an LDAP BindResponse as HAProxy's ldap-check does. Pure, any bytes.
pub fn ldap_reply(buf: &[u8]) -> Reply {
    let bad = || Reply::Fail("Layer7 invalid response", "Not LDAPv3 protocol".to_string());
    let Some(&first) = buf.get(1) else { return Reply::Need(2) };
    let (len, n) = if first & 0x80 != 0 {
        let n = usize::from(first & 0x7f);
        if n != 2 && n != 4 {
            return bad();
        }
        let Some(bytes) = buf.get(2..2 + n) else { return Reply::Need(2 + n) };
        (bytes.iter().fold(0usize, |acc, b| acc << 8 | usize::from(*b)), n)
    } else {
        (usize::from(first), 0)
    };
    if 2 + n + len > BUFFER {
        return bad();
    }
    if buf.len() < 2 + n + len {
        return Reply::Need(2 + n + len);
    }
    let mut at = 2 + n;
    if buf.get(at..at + 4) != Some(&[0x02, 0x01, 0x01, 0x61][..]) {
        return bad();
    }
    at += 4;
    let Some(&l) = buf.get(at) else { return bad() };
    at += 1 + if l & 0x80 != 0 { usize::from(l & 0x7f) } else { 0 };
    if buf.get(at..at + 2) != Some(&[0x0a, 0x01][..]) {
        return bad();
    }
    match buf.get(at + 2) {
        Some(0) => Reply::Pass("Success".into()),
        Some(code) => Reply::Fail(
            "Layer7 wrong status",
            format!("code: {code}, See RFC: http://tools.ietf.org/html/rfc4511#section-4.1.9"),
        ),
        None => bad(),
    }
}

/// Runs a protocol step: reads until its judge decides (or the server closes).
async fn custom_step(
    custom: Custom,
    s: &mut CheckStream,
    buf: &mut Vec<u8>,
    closed: &mut bool,
) -> Result<String, (&'static str, String)> {
    loop {
        let reply = match custom {
            Custom::MysqlGreeting => mysql_reply(buf, false),
            Custom::MysqlLogin => mysql_reply(buf, true),
            Custom::LdapBind => ldap_reply(buf),
        };
        match reply {
            Reply::Pass(info) => return Ok(info),
            Reply::Fail(reason, info) => return Err((reason, info)),
            Reply::Need(want) => {
                if !fill(s, buf, closed, want.max(buf.len() + 1)).await {
                    return Err(("Layer7 invalid response", String::new()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_bytes_are_haproxys() {
        let pg = CompiledTcpCheck::new(&TcpCheck::Pgsql { user: "haproxy".into() }).expect("compiles");
        match &pg.steps[0] {
            Step::Send(b) => assert_eq!(
                b.as_slice(),
                [
                    0x00, 0x00, 0x00, 0x16, 0x00, 0x03, 0x00, 0x00, b'u', b's', b'e', b'r', 0, b'h', b'a', b'p', b'r',
                    b'o', b'x', b'y', 0, 0
                ]
            ),
            other => panic!("{other:?}"),
        }
        let login = mysql_login("haproxy", true);
        assert_eq!(&login[..4], &[0x29, 0x00, 0x00, 0x01]);
        assert_eq!(&login[login.len() - 5..], &[0x01, 0x00, 0x00, 0x00, 0x01]);
        let hello = ssl_hello();
        assert_eq!(hello.len(), 126);
        assert_eq!(&hello[..5], &[0x16, 0x03, 0x00, 0x00, 0x79]);
        assert!(matches(&Match::HexRegex(regex::Regex::new("^1[56]").expect("re")), &[0x16, 3, 1, 0, 5]));
        assert!(!matches(&Match::HexRegex(regex::Regex::new("^1[56]").expect("re")), &[0x17]));
        assert!(matches(
            &Match::HexRegex(regex::Regex::new("^52000000(08|0A|0C)000000(00|02|03|04|05|06)").expect("re")),
            &[b'R', 0, 0, 0, 8, 0, 0, 0, 0]
        ));
    }

    #[test]
    fn protocol_replies_are_judged_on_any_bytes() {
        // A greeting (protocol 10, version "8.0"), then an OK to the login.
        let greeting = [5, 0, 0, 0, 0x0a, b'8', b'.', b'0', 0];
        assert_eq!(mysql_reply(&greeting, false), Reply::Pass("8.0".into()));
        assert_eq!(mysql_reply(&greeting[..3], false), Reply::Need(4));
        assert_eq!(mysql_reply(&greeting, true), Reply::Need(13));
        let mut both = greeting.to_vec();
        both.extend_from_slice(&[3, 0, 0, 2, 0xff, 0x15, 0x04]);
        assert_eq!(mysql_reply(&both, true), Reply::Fail("Layer7 wrong status", "code: 1045, ".into()));
        // A 16 MiB packet is refused, not awaited.
        assert_eq!(mysql_reply(&[0xff, 0xff, 0xff, 0], false), Reply::Fail("Layer7 invalid response", String::new()));
        let ok = [0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00];
        assert_eq!(ldap_reply(&ok), Reply::Pass("Success".into()));
        assert_eq!(ldap_reply(&ok[..5]), Reply::Need(14));
        assert!(matches!(ldap_reply(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), Reply::Fail(..)));
        for n in 0..64u8 {
            let garbage: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37) ^ n).collect();
            let _ = (mysql_reply(&garbage, false), mysql_reply(&garbage, true), ldap_reply(&garbage));
        }
    }
}
