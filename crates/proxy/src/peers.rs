//! Peers: the stick tables of a `peers` section kept in step with the other nodes over
//! HAProxy's peers protocol (`fulcrum_peers` makes and reads the bytes). Every node listens on
//! its own peer address and connects to the others; after the hello, one connection per pair
//! carries both ways the entries each side changes (a sticky client's server, its counters).
//! A process that starts asks one peer for everything (a full resync) and answers others'
//! requests likewise, so that after a failover the new master knows every sticky client.
//! Entries learned from a peer are not passed on to others (each node talks to all), as in
//! HAProxy; expiry is each node's own.
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fulcrum_balance::counters::Counters;
use fulcrum_balance::counters::FreqCtr;
use fulcrum_model::{Peers, TableData};
use fulcrum_peers::{data, Control, HelloRead, KeyType, Message, Reader, TableDef, Update, Value, Writer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::live::{clock_ms, lock, LiveTable, TableKey};
use crate::setup_error::StartError;

/// A silent peer is left after this long (HAProxy's peers speak at least every 3 s).
const SILENCE: Duration = Duration::from_secs(10);
/// How often a quiet connection says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(3);
/// How long a starting process waits to be taught before it counts itself up to date.
const RESYNC_WAIT: Duration = Duration::from_secs(5);
/// Between connection attempts to a peer.
const RECONNECT: Duration = Duration::from_secs(5);
/// Updates sent in one round before looking at what came in.
const BATCH: usize = 200;
/// Bytes waiting to be sent above which no more updates are made.
const OUT_LIMIT: usize = 256 * 1024;

/// The running `peers` sections of a proxy.
#[derive(Default)]
pub(crate) struct PeersRt {
    sections: HashMap<String, Running>,
}

struct Running {
    cfg: Peers,
    local: String,
    section: Arc<Section>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.section.closed.store(true, Ordering::Relaxed);
        for t in &self.tasks {
            t.abort();
        }
        for (_, (_, session)) in lock(&self.section.sessions).drain() {
            session.abort();
        }
    }
}

/// What a section's tasks share.
struct Section {
    name: String,
    local: String,
    /// The tables shared with the section (replaced on each reload).
    tables: Mutex<Vec<Arc<LiveTable>>>,
    /// Woken when a table of the section changes here.
    changed: Arc<tokio::sync::Notify>,
    /// The connected peers: session number and task.
    sessions: Mutex<HashMap<String, (u64, tokio::task::AbortHandle)>>,
    next_session: AtomicU64,
    /// This process has what the others had when it started (taught, or none to teach it).
    resynced: AtomicBool,
    /// The session this process asked to teach it.
    teacher: Mutex<Option<u64>>,
    /// The section stopped (a reload removed or changed it): no session starts.
    closed: AtomicBool,
}

impl Section {
    fn tables(&self) -> Vec<Arc<LiveTable>> {
        lock(&self.tables).clone()
    }
}

/// The name of this process among its peers: `localpeer` or `-L`, else the host name.
pub(crate) fn local_name(model: &fulcrum_model::Model) -> String {
    model.global.local_peer.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
    })
}

impl PeersRt {
    /// Runs the sections of `snapshot`'s model: a section whose peers are unchanged keeps its
    /// connections and takes the new tables; others start over; removed ones stop. Must run
    /// inside a Tokio runtime.
    pub(crate) fn apply(&mut self, snapshot: &crate::Snapshot, live: &crate::LiveRegistry) -> Result<(), StartError> {
        let model = &snapshot.model;
        let local = local_name(model);
        let mut keep = HashMap::new();
        // A section that cannot listen is reported; the others run anyway.
        let mut failed = None;
        for cfg in &model.peers {
            if cfg.disabled {
                continue;
            }
            let Some(listen) = cfg.listen_addr(&local) else {
                tracing::warn!(
                    "peers section '{}' has no peer named '{local}' (this node): its tables are not shared",
                    cfg.name
                );
                continue;
            };
            let tables: Vec<Arc<LiveTable>> = snapshot
                .tables
                .iter()
                .flat_map(|t| t.values())
                .filter(|t| t.cfg.peers.as_deref() == Some(cfg.name.as_str()))
                .cloned()
                .collect();
            match self.sections.remove(&cfg.name) {
                Some(running) if same_peers(&running.cfg, cfg) && running.local == local => {
                    *lock(&running.section.tables) = tables;
                    running.section.changed.notify_waiters();
                    keep.insert(cfg.name.clone(), running);
                }
                old => {
                    // The section changed: the old one stops first (its listener shares the
                    // address with the new one meanwhile: SO_REUSEPORT).
                    drop(old);
                    let section = Arc::new(Section {
                        name: cfg.name.clone(),
                        local: local.clone(),
                        tables: Mutex::new(tables),
                        changed: live.peers_notify(&cfg.name),
                        sessions: Mutex::new(HashMap::new()),
                        next_session: AtomicU64::new(1),
                        resynced: AtomicBool::new(false),
                        teacher: Mutex::new(None),
                        closed: AtomicBool::new(false),
                    });
                    let listener = match bind(listen) {
                        Ok(l) => l,
                        Err(source) => {
                            failed.get_or_insert(StartError::Bind { addr: listen, source });
                            continue;
                        }
                    };
                    let mut tasks = vec![tokio::spawn(accept_loop(listener, section.clone(), cfg.clone()))];
                    for peer in cfg.peers.iter().filter(|p| p.name != local) {
                        if let Some(addr) = peer.addr {
                            tasks.push(tokio::spawn(connect_loop(section.clone(), peer.name.clone(), addr)));
                        }
                    }
                    let waiting = section.clone();
                    tasks.push(tokio::spawn(async move {
                        tokio::time::sleep(RESYNC_WAIT).await;
                        waiting.resynced.store(true, Ordering::Relaxed);
                    }));
                    keep.insert(cfg.name.clone(), Running { cfg: cfg.clone(), local: local.clone(), section, tasks });
                }
            }
        }
        self.sections = keep;
        failed.map_or(Ok(()), Err)
    }
}

/// Whether two declarations of a section run alike (where they were written aside).
fn same_peers(a: &Peers, b: &Peers) -> bool {
    let peers = |p: &Peers| p.peers.iter().map(|x| (x.name.clone(), x.addr)).collect::<Vec<_>>();
    a.name == b.name && peers(a) == peers(b) && a.bind == b.bind && a.disabled == b.disabled
}

fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(64)?;
    tokio::net::TcpListener::from_std(socket.into())
}

async fn accept_loop(listener: tokio::net::TcpListener, section: Arc<Section>, cfg: Peers) {
    loop {
        let Ok((stream, from)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let (section, cfg) = (section.clone(), cfg.clone());
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            match tokio::time::timeout(RECONNECT, answer_hello(stream, &section, &cfg)).await {
                Ok(Ok((stream, peer, early, timed))) => {
                    start_session(&section, stream, peer, early, timed);
                }
                Ok(Err(why)) => tracing::info!(peers = %section.name, %from, "peer refused: {why}"),
                Err(_) => tracing::info!(peers = %section.name, %from, "no hello in time"),
            }
        });
    }
}

/// What an accepted hello leaves: the connection, the caller's name, the bytes that came
/// after the hello, and whether the caller takes timed updates.
type Accepted = (TcpStream, String, Vec<u8>, bool);

/// Reads a caller's hello and answers it.
async fn answer_hello(mut stream: TcpStream, section: &Section, cfg: &Peers) -> Result<Accepted, String> {
    let mut buf = Vec::new();
    let hello = loop {
        let mut chunk = [0u8; 512];
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before its hello".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        match fulcrum_peers::read_hello(&buf) {
            HelloRead::Incomplete => continue,
            HelloRead::Refused(code) => {
                let _ = stream.write_all(&fulcrum_peers::status_line(code)).await;
                return Err(format!("hello refused with {code}"));
            }
            HelloRead::Done(hello, used) => {
                buf.drain(..used);
                break hello;
            }
        }
    };
    let code = if hello.called != section.local {
        fulcrum_peers::status::WRONG_NAME
    } else if !cfg.peers.iter().any(|p| p.name == hello.caller) {
        fulcrum_peers::status::UNKNOWN_PEER
    } else if hello.caller == section.local {
        // An old process of this node handing over: fulcrum keeps its tables across reloads.
        fulcrum_peers::status::TRY_AGAIN
    } else {
        fulcrum_peers::status::OK
    };
    stream.write_all(&fulcrum_peers::status_line(code)).await.map_err(|e| e.to_string())?;
    if code != fulcrum_peers::status::OK {
        return Err(format!("'{}' called '{}': answered {code}", hello.caller, hello.called));
    }
    let timed = hello.minor >= 1;
    Ok((stream, hello.caller, buf, timed))
}

/// Connects to a peer whenever no connection with it is open.
async fn connect_loop(section: Arc<Section>, peer: String, addr: SocketAddr) {
    loop {
        let open = lock(&section.sessions).contains_key(&peer);
        if !open {
            match tokio::time::timeout(RECONNECT, call(&section, &peer, addr)).await {
                Ok(Ok((stream, early))) => {
                    let _ = start_session(&section, stream, peer.clone(), early, true).await;
                    // A new connection a little later, as HAProxy (at a moment of its own, so
                    // that two nodes do not keep crossing).
                    let jitter = u64::from(std::process::id() % 16) * 100;
                    tokio::time::sleep(Duration::from_millis(50 + jitter)).await;
                    continue;
                }
                Ok(Err(why)) => tracing::debug!(peers = %section.name, %peer, "{why}"),
                Err(_) => tracing::debug!(peers = %section.name, %peer, "no answer in time"),
            }
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

/// Calls a peer: the hello, then its status; the connection and the bytes that came after
/// the status (a peer may send its first messages at once).
async fn call(section: &Section, peer: &str, addr: SocketAddr) -> Result<(TcpStream, Vec<u8>), String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    stream
        .write_all(&fulcrum_peers::hello(peer, &section.local, std::process::id()))
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 64];
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before its status".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some((code, used)) = fulcrum_peers::read_status(&buf) {
            if code != fulcrum_peers::status::OK {
                return Err(format!("{peer} answered {code}"));
            }
            buf.drain(..used);
            return Ok((stream, buf));
        }
        if buf.len() > 64 {
            return Err("no status line".into());
        }
    }
}

/// Runs a session with `peer` on its own task; a session already open with it ends (the
/// newest connection wins, as in HAProxy). Nothing starts on a stopped section.
fn start_session(
    section: &Arc<Section>,
    stream: TcpStream,
    peer: String,
    early: Vec<u8>,
    timed: bool,
) -> JoinHandle<()> {
    let id = section.next_session.fetch_add(1, Ordering::Relaxed);
    let mut sessions = lock(&section.sessions);
    if section.closed.load(Ordering::Relaxed) {
        return tokio::spawn(async {});
    }
    let s = section.clone();
    let name = peer.clone();
    let task = tokio::spawn(async move {
        // However the session ends (aborted too), its place and its teaching role are freed.
        let _ended = Ended { section: &s, peer: &name, id };
        let mut session = Session::new(&s, &name, id);
        session.timed = timed;
        if let Err(why) = session.run(stream, early).await {
            tracing::info!(peers = %s.name, peer = %name, "session ended: {why}");
        }
    });
    if let Some((_, old)) = sessions.insert(peer, (id, task.abort_handle())) {
        old.abort();
    }
    task
}

/// Frees a session's place when it ends.
struct Ended<'a> {
    section: &'a Section,
    peer: &'a str,
    id: u64,
}

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        let mut sessions = lock(&self.section.sessions);
        if sessions.get(self.peer).is_some_and(|(n, _)| *n == self.id) {
            sessions.remove(self.peer);
        }
        drop(sessions);
        let mut teacher = lock(&self.section.teacher);
        if *teacher == Some(self.id) {
            *teacher = None;
        }
    }
}

/// What a session knows of one of our tables: our number for it, what it pushed.
struct Ours {
    table: Arc<LiveTable>,
    id: u64,
    pushed: u64,
}

/// What a session knows of one of the peer's tables.
struct Theirs {
    table: Arc<LiveTable>,
    last_get: u32,
    acked: u32,
}

struct Session<'a> {
    section: &'a Section,
    peer: &'a str,
    id: u64,
    reader: Reader,
    writer: Writer,
    ours: Vec<Ours>,
    theirs: HashMap<u64, Theirs>,
    /// The peer's table its updates are for now (None: one this node does not share).
    current: Option<u64>,
    /// Our table whose definition was sent last.
    sent_def: Option<u64>,
    /// The last number given to one of our tables.
    next_id: u64,
    /// The peer takes timed updates (it speaks 2.1).
    timed: bool,
    /// A full resync sent, not confirmed yet: what each table's log held then.
    teaching: Option<Vec<(u64, u64)>>,
    /// A full resync being sent.
    lesson: Option<Lesson>,
    out: Vec<u8>,
}

impl<'a> Session<'a> {
    fn new(section: &'a Section, peer: &'a str, id: u64) -> Session<'a> {
        Session {
            section,
            peer,
            id,
            reader: Reader::default(),
            writer: Writer::default(),
            ours: Vec::new(),
            theirs: HashMap::new(),
            current: None,
            sent_def: None,
            next_id: 0,
            timed: true,
            teaching: None,
            lesson: None,
            out: Vec::new(),
        }
    }

    /// The session until it ends: reads and writes go on together (a peer that does not read
    /// cannot stop this side reading), pushes wait while much is unsent, and a peer silent
    /// for too long, or not reading for as long, is left.
    async fn run(mut self, stream: TcpStream, early: Vec<u8>) -> Result<(), String> {
        tracing::info!(peers = %self.section.name, peer = %self.peer, "connected");
        let (mut rx, mut tx) = stream.into_split();
        self.writer.control(&mut self.out, Control::Heartbeat);
        if !self.section.resynced.load(Ordering::Relaxed) {
            let mut teacher = lock(&self.section.teacher);
            if teacher.is_none() {
                *teacher = Some(self.id);
                self.writer.control(&mut self.out, Control::ResyncRequest);
            }
        }
        let mut inbuf: Vec<u8> = Vec::new();
        if !early.is_empty() {
            inbuf = early;
            let used = self.receive(&inbuf)?;
            inbuf.drain(..used);
            self.acks();
        }
        let mut heard = Instant::now();
        let mut said = Instant::now();
        let mut sent = 0;
        let changed = self.section.changed.clone();
        let mut chunk = vec![0u8; 16384];
        loop {
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let mut more = false;
            if self.out.len() - sent < OUT_LIMIT {
                if self.lesson.is_some() {
                    more = self.teach_some();
                } else if self.teaching.is_none() {
                    more = self.push();
                }
            }
            let pending = self.out.len() > sent;
            let writable = self.out.len() - sent < OUT_LIMIT;
            tokio::select! {
                read = rx.read(&mut chunk), if inbuf.len() < fulcrum_peers::MAX_BODY * 2 => {
                    let n = read.map_err(|e| format!("read: {e}"))?;
                    if n == 0 {
                        return Err("closed by the peer".into());
                    }
                    heard = Instant::now();
                    inbuf.extend_from_slice(&chunk[..n]);
                    let used = self.receive(&inbuf)?;
                    inbuf.drain(..used);
                    self.acks();
                }
                wrote = tx.write(&self.out[sent..]), if pending => {
                    let n = wrote.map_err(|e| format!("write: {e}"))?;
                    sent += n;
                    said = Instant::now();
                    if sent == self.out.len() {
                        self.out.clear();
                        sent = 0;
                    }
                }
                () = &mut notified, if writable => {}
                () = tokio::task::yield_now(), if more && writable => {}
                () = tokio::time::sleep_until((said + HEARTBEAT).into()), if !pending => {
                    self.writer.control(&mut self.out, Control::Heartbeat);
                }
                () = tokio::time::sleep_until((said + SILENCE).into()), if pending => {
                    return Err("not reading for too long".into());
                }
                () = tokio::time::sleep_until((heard + SILENCE).into()) => {
                    return Err("silent for too long".into());
                }
            }
        }
    }

    /// Handles every whole message at the start of `buf`; the bytes used.
    fn receive(&mut self, buf: &[u8]) -> Result<usize, String> {
        let mut at = 0;
        loop {
            let read = match self.reader.read(&buf[at..]) {
                Ok(Some(read)) => read,
                Ok(None) => return Ok(at),
                Err(e) => {
                    self.writer.error(&mut self.out, &e);
                    return Err(e.to_string());
                }
            };
            let (message, used) = read;
            at += used;
            match message {
                // One full resync at a time (a flood of requests costs one).
                Message::Control(Control::ResyncRequest) if self.teaching.is_none() && self.lesson.is_none() => {
                    self.teach()
                }
                Message::Control(Control::ResyncRequest) => {}
                Message::Error(code) => return Err(format!("the peer reports error {code}")),
                Message::Control(c @ (Control::ResyncFinished | Control::ResyncPartial)) => {
                    self.writer.control(&mut self.out, Control::ResyncConfirm);
                    let mut teacher = lock(&self.section.teacher);
                    if *teacher == Some(self.id) {
                        *teacher = None;
                        if c == Control::ResyncFinished {
                            self.section.resynced.store(true, Ordering::Relaxed);
                        }
                    }
                }
                Message::Control(Control::ResyncConfirm) => {
                    for (id, mark) in self.teaching.take().unwrap_or_default() {
                        if let Some(o) = self.ours.iter_mut().find(|o| o.id == id) {
                            o.pushed = o.pushed.max(mark);
                        }
                    }
                }
                Message::Control(Control::Heartbeat) | Message::Unknown | Message::Ack { .. } => {}
                Message::Define(def) => self.define(&def),
                Message::Switch(id) => self.current = self.theirs.contains_key(&id).then_some(id),
                Message::Update(Some(update)) => {
                    if let Some(theirs) = self.current.and_then(|id| self.theirs.get_mut(&id)) {
                        theirs.last_get = update.id.unwrap_or(theirs.last_get.wrapping_add(1));
                        learn(&theirs.table, &update);
                    }
                }
                Message::Update(None) => {}
            }
        }
    }

    /// A peer's table definition: ours if one of the section's tables has its name, key type
    /// and key length; else its updates are skipped.
    fn define(&mut self, def: &TableDef) {
        let table = self.section.tables().into_iter().find(|t| {
            let (key_type, key_len) = wire_key(&t.cfg.key);
            t.wire_name == def.name && key_type == def.key_type && key_len == def.key_len
        });
        match table {
            Some(table) => {
                let theirs =
                    self.theirs.entry(def.id).or_insert(Theirs { table: table.clone(), last_get: 0, acked: 0 });
                theirs.table = table;
                self.current = Some(def.id);
            }
            None => {
                tracing::debug!(peers = %self.section.name, table = %def.name, "a table not shared here");
                self.reader.refuse_current();
                self.current = None;
            }
        }
    }

    fn acks(&mut self) {
        for (id, theirs) in &mut self.theirs {
            if theirs.last_get != theirs.acked {
                theirs.acked = theirs.last_get;
                self.writer.ack(&mut self.out, *id, theirs.last_get);
            }
        }
    }

    /// Our number for a table on this session (given on first use, never given again).
    fn ours(&mut self, table: &Arc<LiveTable>) -> usize {
        if let Some(i) = self.ours.iter().position(|o| Arc::ptr_eq(&o.table, table)) {
            return i;
        }
        self.next_id += 1;
        self.ours.push(Ours { table: table.clone(), id: self.next_id, pushed: 0 });
        self.ours.len() - 1
    }

    /// Forgets tables a reload replaced.
    fn prune(&mut self, tables: &[Arc<LiveTable>]) {
        self.ours.retain(|o| tables.iter().any(|t| Arc::ptr_eq(t, &o.table)));
        self.theirs.retain(|_, t| tables.iter().any(|x| Arc::ptr_eq(x, &t.table)));
    }

    /// Sends the definition of our table `i` unless it is the current one.
    fn define_ours(&mut self, i: usize) -> TableDef {
        let def = definition(&self.ours[i].table, self.ours[i].id);
        if self.sent_def != Some(def.id) {
            self.writer.define(&mut self.out, &def);
            self.sent_def = Some(def.id);
        }
        def
    }

    /// Pushes local changes not sent yet (at most a batch); whether more are waiting.
    fn push(&mut self) -> bool {
        let mut budget = BATCH;
        let tables = self.section.tables();
        self.prune(&tables);
        for table in tables {
            let i = self.ours(&table);
            let pushed = self.ours[i].pushed;
            let now = Instant::now();
            // What changed since, and the last number taken, in one look at the table.
            let (changes, last) = {
                let entries = lock(&table.entries);
                let taken: Vec<(&u64, &TableKey)> = entries.log.range(pushed + 1..).take(budget).collect();
                let last = taken.last().map(|(id, _)| **id);
                let changes: Vec<(u64, TableKey, Counters)> = taken
                    .into_iter()
                    .filter_map(|(id, key)| Some((*id, key.clone(), entries.map.peek(key, now)?)))
                    .collect();
                (changes, last)
            };
            let Some(last) = last else { continue };
            let def = self.define_ours(i);
            let names = lock(&table.names).clone();
            let ms = clock_ms();
            let mut previous: Option<u32> = None;
            for (id, key, counters) in changes {
                let Some(key) = key_to_wire(&table.cfg.key, &key) else { continue };
                let number = id as u32;
                let explicit = previous.is_none_or(|p| p.wrapping_add(1) != number);
                let update = Update {
                    id: explicit.then_some(number),
                    expire_ms: None,
                    key,
                    values: values(&def, &table, &counters, &names, ms),
                };
                self.writer.update(&mut self.out, &def, &update);
                previous = Some(number);
                budget = budget.saturating_sub(1);
            }
            self.ours[i].pushed = last;
            if budget == 0 {
                return true;
            }
        }
        false
    }

    /// A full resync asked for: the shared tables as they are now, taught a batch at a time
    /// ([`Session::teach_some`]); what each table's log holds now, for after the peer confirms.
    fn teach(&mut self) {
        let tables = self.section.tables();
        let marks = tables
            .iter()
            .map(|t| {
                let i = self.ours(t);
                (self.ours[i].id, lock(&t.entries).last)
            })
            .collect();
        self.lesson = Some(Lesson { tables, table: 0, slot: Some(0), marks });
    }

    /// The next batch of a full resync: every live entry with the time it has left; at the
    /// end, whether this node is up to date itself. Whether more is to come.
    fn teach_some(&mut self) -> bool {
        let Some(mut lesson) = self.lesson.take() else { return false };
        let ms = clock_ms();
        let mut budget = BATCH;
        while budget > 0 {
            let (Some(table), Some(slot)) = (lesson.tables.get(lesson.table).cloned(), lesson.slot) else { break };
            let i = self.ours(&table);
            if slot == 0 {
                // A table's lesson starts with its definition.
                self.sent_def = None;
            }
            let def = self.define_ours(i);
            let now = Instant::now();
            let (entries, next) = lock(&table.entries).map.walk(slot, budget, now);
            let names = lock(&table.names).clone();
            for (n, (key, counters, at)) in entries.into_iter().enumerate() {
                budget = budget.saturating_sub(1);
                let Some(key) = key_to_wire(&table.cfg.key, &key) else { continue };
                let left =
                    |at: Instant| u32::try_from(at.saturating_duration_since(now).as_millis()).unwrap_or(u32::MAX);
                let update = Update {
                    id: Some(counters.update.max((slot + n) as u64 + 1) as u32),
                    expire_ms: at.filter(|_| self.timed).map(left),
                    key,
                    values: values(&def, &table, &counters, &names, ms),
                };
                self.writer.update(&mut self.out, &def, &update);
            }
            match next {
                Some(at) => lesson.slot = Some(at),
                None => {
                    lesson.table += 1;
                    lesson.slot = Some(0);
                }
            }
            if lesson.table >= lesson.tables.len() {
                lesson.slot = None;
            }
        }
        if lesson.slot.is_some() {
            self.lesson = Some(lesson);
            return true;
        }
        let done = if self.section.resynced.load(Ordering::Relaxed) {
            Control::ResyncFinished
        } else {
            Control::ResyncPartial
        };
        self.writer.control(&mut self.out, done);
        self.teaching = Some(lesson.marks);
        false
    }
}

/// A full resync being taught: the tables, which one and where in it.
struct Lesson {
    tables: Vec<Arc<LiveTable>>,
    table: usize,
    /// The storage place to go on from (None: all taught).
    slot: Option<usize>,
    marks: Vec<(u64, u64)>,
}

/// A table's key type and length on the wire.
fn wire_key(key: &fulcrum_model::TableKey) -> (KeyType, u64) {
    use fulcrum_model::TableKey as K;
    match key {
        K::Ip => (KeyType::Ipv4, 4),
        K::Ipv6 => (KeyType::Ipv6, 16),
        K::Integer => (KeyType::Integer, 4),
        K::String { len } => (KeyType::String, *len as u64 + 1),
    }
}

fn key_to_wire(kind: &fulcrum_model::TableKey, key: &TableKey) -> Option<Vec<u8>> {
    use fulcrum_model::TableKey as K;
    Some(match (kind, key) {
        (K::Ip, TableKey::Ip(IpAddr::V4(v4))) => v4.octets().to_vec(),
        (K::Ip, TableKey::Ip(IpAddr::V6(v6))) => v6.to_ipv4_mapped()?.octets().to_vec(),
        (K::Ipv6, TableKey::Ip(IpAddr::V6(v6))) => v6.octets().to_vec(),
        (K::Ipv6, TableKey::Ip(IpAddr::V4(v4))) => v4.to_ipv6_mapped().octets().to_vec(),
        (K::Integer, TableKey::Int(n)) => (*n as u32).to_be_bytes().to_vec(),
        (K::String { .. }, TableKey::Str(s)) => s.to_vec(),
        _ => return None,
    })
}

fn key_from_wire(kind: &fulcrum_model::TableKey, bytes: &[u8]) -> Option<TableKey> {
    use fulcrum_model::TableKey as K;
    Some(match kind {
        K::Ip => TableKey::Ip(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        K::Ipv6 => {
            let v6 = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?);
            TableKey::Ip(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
        }
        K::Integer => TableKey::Int(i64::from(u32::from_be_bytes(<[u8; 4]>::try_from(bytes).ok()?))),
        K::String { len } => TableKey::Str(bytes[..bytes.len().min(*len)].to_vec().into_boxed_slice()),
    })
}

/// The wire's bit for a stored data type.
fn bit(d: TableData) -> u8 {
    match d {
        TableData::Gpt0 => data::GPT0,
        TableData::Gpc0 => data::GPC0,
        TableData::Gpc0Rate => data::GPC0_RATE,
        TableData::ConnCnt => data::CONN_CNT,
        TableData::ConnRate => data::CONN_RATE,
        TableData::ConnCur => data::CONN_CUR,
        TableData::SessCnt => data::SESS_CNT,
        TableData::SessRate => data::SESS_RATE,
        TableData::HttpReqCnt => data::HTTP_REQ_CNT,
        TableData::HttpReqRate => data::HTTP_REQ_RATE,
        TableData::HttpErrCnt => data::HTTP_ERR_CNT,
        TableData::HttpErrRate => data::HTTP_ERR_RATE,
        TableData::Gpc1 => data::GPC1,
        TableData::Gpc1Rate => data::GPC1_RATE,
    }
}

fn data_of(bit: u8) -> Option<TableData> {
    TableData::ALL.into_iter().find(|d| self::bit(*d) == bit)
}

/// Our definition of a table: a server (number and name) and what it stores.
fn definition(table: &LiveTable, id: u64) -> TableDef {
    let (key_type, key_len) = wire_key(&table.cfg.key);
    let mut mask = (1u64 << data::SERVER_ID) | (1u64 << data::SERVER_KEY);
    let mut params = Vec::new();
    for s in &table.cfg.store {
        mask |= 1 << bit(s.data);
        if s.data.is_rate() {
            params.push((bit(s.data), table.layout.period(s.data), 0));
        }
    }
    let expire_ms = if table.cfg.expire == Duration::MAX { 0 } else { crate::live::ms(table.cfg.expire) };
    TableDef { id, name: table.wire_name.clone(), key_type, key_len, data: mask, expire_ms, params }
}

/// An entry's values in the definition's order.
fn values(def: &TableDef, table: &LiveTable, c: &Counters, names: &[(u32, Arc<str>)], now: u64) -> Vec<(u8, Value)> {
    let layout = &table.layout;
    def.types()
        .map(|bit| {
            let v = match (bit, data_of(bit)) {
                (data::SERVER_ID, _) => Value::Sint(i64::from(c.server_id)),
                (data::SERVER_KEY, _) => Value::Dict(
                    names.iter().find(|(id, _)| *id == c.server_id && c.server_id != 0).map(|(_, n)| n.to_string()),
                ),
                (_, Some(d)) if d.is_rate() => {
                    let (elapsed, curr, prev) = c.freq(layout, d).unwrap_or_default().to_wire(now);
                    Value::Freq { elapsed, curr, prev }
                }
                (_, Some(d)) => Value::Uint(c.get(layout, d, now)),
                (_, None) => Value::Uint(0),
            };
            (bit, v)
        })
        .collect()
}

/// An entry a peer sent, stored as it is there (without telling our other peers).
fn learn(table: &LiveTable, update: &Update) {
    let Some(key) = key_from_wire(&table.cfg.key, &update.key) else { return };
    let now = Instant::now();
    let ms = clock_ms();
    let names = lock(&table.names).clone();
    let layout = &table.layout;
    let mut entries = lock(&table.entries);
    let Some(c) = entries.map.entry(key.clone(), now, || layout.blank()) else { return };
    for (bit, value) in &update.values {
        match (*bit, data_of(*bit), value) {
            (data::SERVER_ID, _, Value::Sint(id)) => c.server_id = u32::try_from(*id).unwrap_or(0),
            // A name this node knows wins over the number, as in HAProxy.
            (data::SERVER_KEY, _, Value::Dict(Some(name))) => {
                if let Some((id, _)) = names.iter().find(|(_, n)| **n == **name) {
                    c.server_id = *id;
                }
            }
            // Each node counts its own current connections.
            (_, Some(TableData::ConnCur), _) => {}
            (_, Some(d), Value::Uint(n)) => {
                c.set(layout, d, *n);
            }
            (_, Some(d), Value::Freq { elapsed, curr, prev }) => {
                c.set_freq(layout, d, FreqCtr::from_wire(ms, *elapsed, *curr, *prev));
            }
            _ => {}
        }
    }
    if let Some(left) = update.expire_ms {
        entries.map.set_expiry(&key, now.checked_add(Duration::from_millis(u64::from(left))));
    }
}
