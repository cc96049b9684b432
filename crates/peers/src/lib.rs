//! HAProxy's peers protocol, version 2.1 as HAProxy 2.6 speaks it, without I/O: the hello
//! and its status line, the messages (control, error, stick-table definitions, updates and
//! acknowledgements) and their variable-length integers. [`Reader`] turns received bytes into
//! [`Message`]s (it keeps what a connection's decoding depends on: the current table's
//! definition and the server-name dictionary); [`Writer`] makes the bytes to send.
//!
//! Layouts follow HAProxy's source and captures of HAProxy 2.6 on the wire (facts of the
//! format only). Every malformed input is an [`Error`], never a panic.

mod varint;

pub use varint::{decode_varint, encode_varint};

/// The protocol line a connecting peer sends first.
pub const PROTOCOL: &str = "HAProxyS";
/// The version fulcrum speaks.
pub const VERSION: (u32, u32) = (2, 1);
/// The largest message body accepted (HAProxy's default buffer size).
pub const MAX_BODY: usize = 16384;
/// Server names a connection's dictionary holds (ids 1 to 128).
pub const DICT_SIZE: usize = 128;

/// What went wrong with received bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A message that does not follow the protocol: answered with `01 00`, then the close.
    Protocol(&'static str),
    /// A message longer than [`MAX_BODY`]: answered with `01 01`, then the close.
    TooLarge(usize),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Protocol(why) => write!(f, "peers protocol error: {why}"),
            Error::TooLarge(n) => write!(f, "peers message of {n} bytes is over the limit of {MAX_BODY}"),
        }
    }
}

impl std::error::Error for Error {}

// ---------------------------------------------------------------------------------------
// Hello and status

/// Status codes of the hello's answer.
pub mod status {
    /// The hello is accepted: messages follow.
    pub const OK: u16 = 200;
    /// Try again later (an old process of this peer is already connected).
    pub const TRY_AGAIN: u16 = 300;
    /// Not this protocol, or a malformed hello.
    pub const PROTOCOL: u16 = 501;
    /// A version this peer does not speak.
    pub const VERSION: u16 = 502;
    /// The hello called another peer by name than the one answering.
    pub const WRONG_NAME: u16 = 503;
    /// The caller's name is not a peer of this section.
    pub const UNKNOWN_PEER: u16 = 504;
}

/// The hello a connecting peer sends: `HAProxyS 2.1`, the name of the peer it calls, its own
/// name with its process id.
pub fn hello(remote: &str, local: &str, pid: u32) -> Vec<u8> {
    format!("{PROTOCOL} {}.{}\n{remote}\n{local} {pid} 1\n", VERSION.0, VERSION.1).into_bytes()
}

/// A received hello, its syntax checked (the names are for the caller to check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The minor version (0: the caller does not take timed updates).
    pub minor: u32,
    /// The peer the caller asked for (ours, if it called the right host).
    pub called: String,
    /// The caller's own name.
    pub caller: String,
}

/// Reading a hello: not complete yet, complete (with the bytes it took), or refused with the
/// status to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelloRead {
    Incomplete,
    Done(Hello, usize),
    Refused(u16),
}

/// The longest hello line accepted.
const MAX_LINE: usize = 256;

/// Reads the three lines of a hello from the start of `buf` (LF or CRLF line ends).
pub fn read_hello(buf: &[u8]) -> HelloRead {
    let mut lines = Vec::with_capacity(3);
    let mut at = 0;
    while lines.len() < 3 {
        let Some(end) = buf[at..].iter().position(|b| *b == b'\n') else {
            return if buf.len() - at > MAX_LINE {
                HelloRead::Refused(status::PROTOCOL)
            } else {
                HelloRead::Incomplete
            };
        };
        let line = &buf[at..at + end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Ok(text) = std::str::from_utf8(line) else { return HelloRead::Refused(status::PROTOCOL) };
        lines.push(text);
        at += end + 1;
        if lines.len() == 1 {
            let Some(version) = text.strip_prefix(PROTOCOL).and_then(|r| r.strip_prefix(' ')) else {
                return HelloRead::Refused(status::PROTOCOL);
            };
            let parsed = version.split_once('.').and_then(|(a, b)| {
                let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                (all_digits(a) && all_digits(b)).then(|| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))?
            });
            match parsed {
                Some((2, minor)) if minor <= VERSION.1 => {}
                _ => return HelloRead::Refused(status::VERSION),
            }
        }
    }
    let minor = lines[0].rsplit('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
    let Some((caller, _pid)) = lines[2].split_once(' ') else { return HelloRead::Refused(status::PROTOCOL) };
    HelloRead::Done(Hello { minor, called: lines[1].to_string(), caller: caller.to_string() }, at)
}

/// The status line answering a hello.
pub fn status_line(code: u16) -> Vec<u8> {
    format!("{code}\n").into_bytes()
}

/// Reads the status line at the start of `buf`: None until it is complete; the code (0 when
/// it is not a number) and the bytes it took.
pub fn read_status(buf: &[u8]) -> Option<(u16, usize)> {
    let end = buf.iter().position(|b| *b == b'\n')?;
    let line = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
    let code = std::str::from_utf8(line).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    Some((code, end + 1))
}

// ---------------------------------------------------------------------------------------
// Messages

/// Control messages (class 0), two bytes each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// "Send me everything you have."
    ResyncRequest,
    /// The end of a full resync; the teacher is up to date.
    ResyncFinished,
    /// The end of a full resync; the teacher is not up to date itself.
    ResyncPartial,
    /// A `ResyncFinished` or `ResyncPartial` received.
    ResyncConfirm,
    Heartbeat,
}

impl Control {
    fn code(self) -> u8 {
        match self {
            Control::ResyncRequest => 0,
            Control::ResyncFinished => 1,
            Control::ResyncPartial => 2,
            Control::ResyncConfirm => 3,
            Control::Heartbeat => 4,
        }
    }
}

/// A stick table's key type as the protocol numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Integer,
    Ipv4,
    Ipv6,
    String,
    Binary,
}

impl KeyType {
    fn code(self) -> u64 {
        match self {
            KeyType::Integer => 2,
            KeyType::Ipv4 => 4,
            KeyType::Ipv6 => 5,
            KeyType::String => 6,
            KeyType::Binary => 7,
        }
    }

    fn from_code(code: u64) -> Option<KeyType> {
        Some(match code {
            2 => KeyType::Integer,
            4 => KeyType::Ipv4,
            5 => KeyType::Ipv6,
            6 => KeyType::String,
            7 => KeyType::Binary,
            _ => return None,
        })
    }
}

/// The data types a stick table stores, by their bit in a definition's mask.
pub mod data {
    pub const SERVER_ID: u8 = 0;
    pub const GPT0: u8 = 1;
    pub const GPC0: u8 = 2;
    pub const GPC0_RATE: u8 = 3;
    pub const CONN_CNT: u8 = 4;
    pub const CONN_RATE: u8 = 5;
    pub const CONN_CUR: u8 = 6;
    pub const SESS_CNT: u8 = 7;
    pub const SESS_RATE: u8 = 8;
    pub const HTTP_REQ_CNT: u8 = 9;
    pub const HTTP_REQ_RATE: u8 = 10;
    pub const HTTP_ERR_CNT: u8 = 11;
    pub const HTTP_ERR_RATE: u8 = 12;
    pub const BYTES_IN_CNT: u8 = 13;
    pub const BYTES_IN_RATE: u8 = 14;
    pub const BYTES_OUT_CNT: u8 = 15;
    pub const BYTES_OUT_RATE: u8 = 16;
    pub const GPC1: u8 = 17;
    pub const GPC1_RATE: u8 = 18;
    pub const SERVER_KEY: u8 = 19;
    pub const HTTP_FAIL_CNT: u8 = 20;
    pub const HTTP_FAIL_RATE: u8 = 21;
    pub const GPT: u8 = 22;
    pub const GPC: u8 = 23;
    pub const GPC_RATE: u8 = 24;
    /// Types past this one (newer versions') are not decoded: their bytes are left unread,
    /// the message's length frames them.
    pub const LAST: u8 = GPC_RATE;
}

/// How a data type's value is stored and sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Storage {
    Sint,
    Uint,
    Ull,
    Freq,
    Dict,
    /// An array of (unsigned, or frequency) values, its length from the definition.
    Array {
        freq: bool,
    },
}

fn storage(bit: u8) -> Option<Storage> {
    use data::*;
    Some(match bit {
        SERVER_ID => Storage::Sint,
        GPC0_RATE | CONN_RATE | SESS_RATE | HTTP_REQ_RATE | HTTP_ERR_RATE | BYTES_IN_RATE | BYTES_OUT_RATE
        | GPC1_RATE | HTTP_FAIL_RATE => Storage::Freq,
        BYTES_IN_CNT | BYTES_OUT_CNT => Storage::Ull,
        SERVER_KEY => Storage::Dict,
        GPT | GPC => Storage::Array { freq: false },
        GPC_RATE => Storage::Array { freq: true },
        b if b <= LAST => Storage::Uint,
        _ => return None,
    })
}

/// A table's definition: what its updates carry and how its keys are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDef {
    /// The sender's own number for the table (acknowledgements name it).
    pub id: u64,
    /// The table's name on the wire: its proxy's, or `/NAME` for a peers section's table.
    pub name: String,
    pub key_type: KeyType,
    /// Key length: 4 (ip, integer), 16 (ipv6), a string's `len` + 1, a binary's `len`.
    pub key_len: u64,
    /// The data types its updates carry, one bit each ([`data`]).
    pub data: u64,
    /// The sender's expiry, ms (0: none).
    pub expire_ms: u64,
    /// Per data type: a rate's period (ms), an array's length (and an array of rates' period).
    pub params: Vec<(u8, u64, u64)>,
}

impl TableDef {
    /// A type's parameters: (period or array length, array of rates' period).
    fn param(&self, bit: u8) -> (u64, u64) {
        self.params.iter().find(|(b, _, _)| *b == bit).map_or((0, 0), |(_, a, b)| (*a, *b))
    }

    /// The data types of the definition in the order values are sent.
    pub fn types(&self) -> impl Iterator<Item = u8> + '_ {
        (0..=data::LAST).filter(|b| self.data & (1 << b) != 0)
    }
}

/// A data value of an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `server_id`.
    Sint(i64),
    /// Counters and tags.
    Uint(u64),
    /// A rate: ms since its current period began (on the sender's clock), the current
    /// period's events, the previous one's.
    Freq {
        elapsed: u32,
        curr: u32,
        prev: u32,
    },
    /// `server_key`: a server name (None: not set).
    Dict(Option<String>),
    Array(Vec<Value>),
}

/// An entry pushed by a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The update's number; None: the previous one's plus one.
    pub id: Option<u32>,
    /// Remaining lifetime (timed updates); None: the receiver's own expiry.
    pub expire_ms: Option<u32>,
    /// The key as its type makes it: 4 bytes (ipv4, integer big-endian), 16 (ipv6), the
    /// string's bytes, the binary's `key_len` bytes.
    pub key: Vec<u8>,
    /// Values in the definition's order (types past [`data::LAST`] are not decoded).
    pub values: Vec<(u8, Value)>,
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Control(Control),
    /// An error message (class 1): its code.
    Error(u8),
    /// A table definition; it makes the table current for the updates that follow.
    Define(TableDef),
    /// An update of the current table (None when the current table is unknown, or a
    /// definition failed: it is skipped).
    Update(Option<Update>),
    /// The sender's table `table_id` has received updates up to `update`.
    Ack {
        table_id: u64,
        update: u32,
    },
    /// The table a switch names (by the sender's number).
    Switch(u64),
    /// A message of a class or type this version does not know: skipped.
    Unknown,
}

const CLASS_CONTROL: u8 = 0;
const CLASS_ERROR: u8 = 1;
const CLASS_TABLE: u8 = 10;
const CLASS_RESERVED: u8 = 255;
const T_UPDATE: u8 = 0x80;
const T_INCREMENTAL: u8 = 0x81;
const T_DEFINE: u8 = 0x82;
const T_SWITCH: u8 = 0x83;
const T_ACK: u8 = 0x84;
const T_TIMED: u8 = 0x85;
const T_INCREMENTAL_TIMED: u8 = 0x86;

/// A message body being read.
struct Body<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Body<'a> {
    fn varint(&mut self) -> Result<u64, Error> {
        match decode_varint(&self.bytes[self.at..]) {
            Ok(Some((v, n))) => {
                self.at += n;
                Ok(v)
            }
            Ok(None) => Err(Error::Protocol("a number runs past the end of its message")),
            Err(e) => Err(e),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len());
        let end = end.ok_or(Error::Protocol("a field runs past the end of its message"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn len(&mut self) -> Result<usize, Error> {
        usize::try_from(self.varint()?).map_err(|_| Error::Protocol("a length is too large"))
    }

    fn rest(&self) -> usize {
        self.bytes.len() - self.at
    }
}

/// Decodes a connection's incoming messages.
#[derive(Debug)]
pub struct Reader {
    /// The definition updates refer to (None: unknown, or refused by the caller).
    current: Option<TableDef>,
    dict: Vec<Option<String>>,
}

impl Default for Reader {
    fn default() -> Self {
        Reader { current: None, dict: vec![None; DICT_SIZE] }
    }
}

impl Reader {
    /// The next message at the start of `buf`, with the bytes it took; None until a whole
    /// message is there.
    pub fn read(&mut self, buf: &[u8]) -> Result<Option<(Message, usize)>, Error> {
        let [class, kind, rest @ ..] = buf else { return Ok(None) };
        let (class, kind) = (*class, *kind);
        if class == CLASS_RESERVED {
            return Err(Error::Protocol("a message of the reserved class"));
        }
        if kind & 0x80 == 0 {
            let message = match (class, kind) {
                (CLASS_CONTROL, 0) => Message::Control(Control::ResyncRequest),
                (CLASS_CONTROL, 1) => Message::Control(Control::ResyncFinished),
                (CLASS_CONTROL, 2) => Message::Control(Control::ResyncPartial),
                (CLASS_CONTROL, 3) => Message::Control(Control::ResyncConfirm),
                (CLASS_CONTROL, 4) => Message::Control(Control::Heartbeat),
                (CLASS_ERROR, code) => Message::Error(code),
                _ => Message::Unknown,
            };
            return Ok(Some((message, 2)));
        }
        let Some((len, n)) = decode_varint(rest)? else {
            return if rest.len() > 10 { Err(Error::Protocol("a length that does not end")) } else { Ok(None) };
        };
        if n > 5 {
            return Err(Error::Protocol("a message length longer than 5 bytes"));
        }
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > MAX_BODY {
            return Err(Error::TooLarge(len));
        }
        let total = 2 + n + len;
        if buf.len() < total {
            return Ok(None);
        }
        let body = Body { bytes: &buf[2 + n..total], at: 0 };
        let message = match (class, kind) {
            (CLASS_TABLE, T_DEFINE) => {
                let def = define(body)?;
                self.current = Some(def.clone());
                Message::Define(def)
            }
            (CLASS_TABLE, T_SWITCH) => {
                let mut body = body;
                let id = body.varint()?;
                if self.current.as_ref().is_none_or(|d| d.id != id) {
                    self.current = None;
                }
                Message::Switch(id)
            }
            (CLASS_TABLE, T_ACK) => {
                let mut body = body;
                let table_id = body.varint()?;
                Message::Ack { table_id, update: body.u32()? }
            }
            (CLASS_TABLE, T_UPDATE | T_INCREMENTAL | T_TIMED | T_INCREMENTAL_TIMED) => {
                let explicit = matches!(kind, T_UPDATE | T_TIMED);
                let timed = matches!(kind, T_TIMED | T_INCREMENTAL_TIMED);
                match self.current.take() {
                    Some(def) => {
                        let update = self.update(&def, body, explicit, timed);
                        self.current = Some(def);
                        Message::Update(Some(update?))
                    }
                    None => Message::Update(None),
                }
            }
            _ => Message::Unknown,
        };
        Ok(Some((message, total)))
    }

    /// Forgets the current table (its definition was refused: its updates are skipped).
    pub fn refuse_current(&mut self) {
        self.current = None;
    }

    fn update(&mut self, def: &TableDef, mut body: Body<'_>, explicit: bool, timed: bool) -> Result<Update, Error> {
        let id = if explicit { Some(body.u32()?) } else { None };
        let expire_ms = if timed { Some(body.u32()?) } else { None };
        let key = match def.key_type {
            KeyType::Ipv4 | KeyType::Integer => body.take(4)?.to_vec(),
            KeyType::Ipv6 => body.take(16)?.to_vec(),
            KeyType::String => {
                let n = body.len()?;
                body.take(n)?.to_vec()
            }
            KeyType::Binary => {
                let n = usize::try_from(def.key_len).map_err(|_| Error::Protocol("a key length is too large"))?;
                body.take(n)?.to_vec()
            }
        };
        let mut values = Vec::new();
        for bit in def.types() {
            let Some(kind) = storage(bit) else { break };
            let (param, _) = def.param(bit);
            let value = match kind {
                Storage::Array { freq } => {
                    let n = usize::try_from(param).unwrap_or(usize::MAX);
                    if n > 100 {
                        return Err(Error::Protocol("an array of more than 100 values"));
                    }
                    let one = if freq { Storage::Freq } else { Storage::Uint };
                    Value::Array((0..n).map(|_| self.value(one, &mut body)).collect::<Result<_, _>>()?)
                }
                _ => self.value(kind, &mut body)?,
            };
            values.push((bit, value));
        }
        Ok(Update { id, expire_ms, key, values })
    }

    fn value(&mut self, kind: Storage, body: &mut Body<'_>) -> Result<Value, Error> {
        Ok(match kind {
            Storage::Sint => Value::Sint(body.varint()? as i64),
            Storage::Uint | Storage::Ull => Value::Uint(body.varint()?),
            Storage::Freq => {
                Value::Freq { elapsed: body.varint()? as u32, curr: body.varint()? as u32, prev: body.varint()? as u32 }
            }
            Storage::Dict => {
                let len = body.len()?;
                if len == 0 {
                    return Ok(Value::Dict(None));
                }
                let mut inner = Body { bytes: body.take(len)?, at: 0 };
                let id = inner.varint()?;
                let slot = usize::try_from(id).ok().filter(|i| (1..=DICT_SIZE).contains(i)).map(|i| i - 1);
                let slot = slot.ok_or(Error::Protocol("a server-name id out of 1..128"))?;
                if inner.rest() > 0 {
                    let n = inner.len()?;
                    let name = String::from_utf8_lossy(inner.take(n)?).into_owned();
                    self.dict[slot] = Some(name);
                }
                Value::Dict(self.dict[slot].clone())
            }
            Storage::Array { .. } => return Err(Error::Protocol("an array inside an array")),
        })
    }
}

fn define(mut body: Body<'_>) -> Result<TableDef, Error> {
    let id = body.varint()?;
    let name_len = body.len()?;
    if name_len == 0 {
        return Err(Error::Protocol("a table definition without a name"));
    }
    let name = String::from_utf8_lossy(body.take(name_len)?).into_owned();
    let key_type = KeyType::from_code(body.varint()?).ok_or(Error::Protocol("an unknown key type"))?;
    let key_len = body.varint()?;
    if key_len > 4096 {
        return Err(Error::Protocol("a key longer than 4096 bytes"));
    }
    let data = body.varint()?;
    let mut def = TableDef { id, name, key_type, key_len, data, expire_ms: 0, params: Vec::new() };
    if body.rest() == 0 {
        return Ok(def);
    }
    def.expire_ms = body.varint()?;
    while body.rest() > 0 {
        let bit = u8::try_from(body.varint()?).map_err(|_| Error::Protocol("a data type out of range"))?;
        let param = match storage(bit) {
            Some(Storage::Freq) => (bit, body.varint()?, 0),
            Some(Storage::Array { freq: false }) => (bit, body.varint()?, 0),
            Some(Storage::Array { freq: true }) => (bit, body.varint()?, body.varint()?),
            _ => return Err(Error::Protocol("a parameter for a data type that takes none")),
        };
        def.params.push(param);
    }
    Ok(def)
}

/// Makes a connection's outgoing messages; keeps the server names sent on it.
#[derive(Debug)]
pub struct Writer {
    dict: Vec<Option<String>>,
    next_slot: usize,
}

impl Default for Writer {
    fn default() -> Self {
        Writer { dict: vec![None; DICT_SIZE], next_slot: 0 }
    }
}

fn frame(out: &mut Vec<u8>, class: u8, kind: u8, body: &[u8]) {
    out.push(class);
    out.push(kind);
    encode_varint(body.len() as u64, out);
    out.extend_from_slice(body);
}

impl Writer {
    pub fn control(&self, out: &mut Vec<u8>, c: Control) {
        out.extend_from_slice(&[CLASS_CONTROL, c.code()]);
    }

    /// An error message (`Error::Protocol` → `01 00`, `Error::TooLarge` → `01 01`).
    pub fn error(&self, out: &mut Vec<u8>, e: &Error) {
        let code = match e {
            Error::Protocol(_) => 0,
            Error::TooLarge(_) => 1,
        };
        out.extend_from_slice(&[CLASS_ERROR, code]);
    }

    pub fn define(&self, out: &mut Vec<u8>, def: &TableDef) {
        let mut body = Vec::with_capacity(32 + def.name.len());
        encode_varint(def.id, &mut body);
        encode_varint(def.name.len() as u64, &mut body);
        body.extend_from_slice(def.name.as_bytes());
        encode_varint(def.key_type.code(), &mut body);
        encode_varint(def.key_len, &mut body);
        encode_varint(def.data, &mut body);
        encode_varint(def.expire_ms, &mut body);
        let mut params = def.params.clone();
        params.sort_by_key(|(bit, _, _)| *bit);
        for (bit, a, b) in params {
            encode_varint(u64::from(bit), &mut body);
            encode_varint(a, &mut body);
            if storage(bit) == Some(Storage::Array { freq: true }) {
                encode_varint(b, &mut body);
            }
        }
        frame(out, CLASS_TABLE, T_DEFINE, &body);
    }

    pub fn ack(&self, out: &mut Vec<u8>, table_id: u64, update: u32) {
        let mut body = Vec::with_capacity(9);
        encode_varint(table_id, &mut body);
        body.extend_from_slice(&update.to_be_bytes());
        frame(out, CLASS_TABLE, T_ACK, &body);
    }

    /// An update of the table `def` defines (sent just before): `update.values` in the
    /// definition's order, one per type of its mask.
    pub fn update(&mut self, out: &mut Vec<u8>, def: &TableDef, update: &Update) {
        let kind = match (update.id.is_some(), update.expire_ms.is_some()) {
            (true, false) => T_UPDATE,
            (false, false) => T_INCREMENTAL,
            (true, true) => T_TIMED,
            (false, true) => T_INCREMENTAL_TIMED,
        };
        let mut body = Vec::with_capacity(16 + update.key.len());
        if let Some(id) = update.id {
            body.extend_from_slice(&id.to_be_bytes());
        }
        if let Some(expire) = update.expire_ms {
            body.extend_from_slice(&expire.to_be_bytes());
        }
        match def.key_type {
            KeyType::String => {
                encode_varint(update.key.len() as u64, &mut body);
                body.extend_from_slice(&update.key);
            }
            KeyType::Binary => {
                let mut key = update.key.clone();
                key.resize(usize::try_from(def.key_len).unwrap_or(0), 0);
                body.extend_from_slice(&key);
            }
            _ => body.extend_from_slice(&update.key),
        }
        for (_, value) in &update.values {
            self.value(&mut body, value);
        }
        frame(out, CLASS_TABLE, kind, &body);
    }

    fn value(&mut self, body: &mut Vec<u8>, value: &Value) {
        match value {
            Value::Sint(v) => encode_varint(*v as u64, body),
            Value::Uint(v) => encode_varint(*v, body),
            Value::Freq { elapsed, curr, prev } => {
                encode_varint(u64::from(*elapsed), body);
                encode_varint(u64::from(*curr), body);
                encode_varint(u64::from(*prev), body);
            }
            Value::Dict(None) => body.push(0),
            Value::Dict(Some(name)) => {
                let mut inner = Vec::with_capacity(name.len() + 4);
                match self.dict.iter().position(|d| d.as_deref() == Some(name.as_str())) {
                    Some(slot) => encode_varint(slot as u64 + 1, &mut inner),
                    None => {
                        let slot = self.next_slot;
                        self.next_slot = (self.next_slot + 1) % DICT_SIZE;
                        self.dict[slot] = Some(name.clone());
                        encode_varint(slot as u64 + 1, &mut inner);
                        encode_varint(name.len() as u64, &mut inner);
                        inner.extend_from_slice(name.as_bytes());
                    }
                }
                encode_varint(inner.len() as u64, body);
                body.extend_from_slice(&inner);
            }
            Value::Array(values) => {
                for v in values {
                    self.value(body, v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
