//! Shared test helpers: launch the real `fulcrum` binary on a config file, and a small HTTP
//! client on hyper's `client::conn` (so tests control connections exactly).
#![allow(dead_code)]

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::TokioIo;

#[allow(unused_imports)]
pub use fulcrum_testkit::{free_addr, Origin};

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory for one test's files.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "fulcrum-test-{}-{}-{}",
        std::process::id(),
        tag,
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_fulcrum")
}

/// A running fulcrum process; killed on drop.
pub struct Fulcrum {
    pub child: Child,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Fulcrum {
    /// Write `config` to a file named `name` and run `fulcrum run -c` on it; wait until `wait_for` accepts.
    pub fn start(name: &str, config: &str, wait_for: SocketAddr) -> Fulcrum {
        Self::start_with(name, config, wait_for, &[])
    }

    pub fn start_with(name: &str, config: &str, wait_for: SocketAddr, extra: &[&str]) -> Fulcrum {
        let dir = temp_dir("run");
        let path = dir.join(name);
        std::fs::write(&path, config).expect("write config");
        let log = dir.join("stderr.log");
        let child = Command::new(bin())
            .args(["run", "-c"])
            .arg(&path)
            .args(extra)
            .env("FULCRUM_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn fulcrum");
        let mut f = Fulcrum { child, config: path, log };
        f.wait_listening(wait_for);
        f
    }

    pub fn wait_listening(&mut self, addr: SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("fulcrum exited early ({status}):\n{}", self.stderr());
            }
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("fulcrum did not listen on {addr}:\n{}", self.stderr());
    }

    pub fn stderr(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn signal(&self, sig: &str) {
        let status =
            Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status().expect("kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// Wait until stderr contains `needle`; returns how long it took.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> Duration {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.stderr().contains(needle) {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("log never showed {needle:?} within {limit:?}:\n{}", self.stderr());
    }

    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Fulcrum {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends raw bytes, reads until the peer closes (or 3 s), returns the text.
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// A response as the tests look at it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn served_by(&self) -> String {
        self.headers.get("x-served-by").and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
    }
}

/// One client connection, kept alive across requests.
pub struct Client {
    sender: SendRequest<Full<Bytes>>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(Client { sender })
    }

    pub async fn request(&mut self, req: Request<Full<Bytes>>) -> Result<Reply, String> {
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let resp = self.sender.send_request(req).await.map_err(|e| e.to_string())?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    pub async fn get(&mut self, path: &str) -> Result<Reply, String> {
        self.request(get_request(path, &[])).await
    }
}

/// A GET with `Host: test.local` unless `headers` give another (a request has one Host).
pub fn get_request(path: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut b = Request::get(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        b = b.header("host", "test.local");
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::new())).expect("request")
}

/// One GET on a new connection.
pub async fn get(addr: SocketAddr, path: &str) -> Result<Reply, String> {
    get_with(addr, path, &[]).await
}

pub async fn get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<Reply, String> {
    let mut c = Client::connect(addr).await.map_err(|e| e.to_string())?;
    c.request(get_request(path, headers)).await
}

/// Count `served_by` over `n` sequential GETs on one keep-alive connection.
pub async fn tally(addr: SocketAddr, path: &str, n: usize) -> std::collections::BTreeMap<String, usize> {
    let mut c = Client::connect(addr).await.expect("connect");
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..n {
        let r = c.get(path).await.expect("request");
        assert_eq!(r.status, 200, "unexpected reply {r:?}");
        *counts.entry(r.served_by()).or_insert(0) += 1;
    }
    counts
}

/// A TCP server that answers each connection with `NAME:` and everything the client sent
/// before it half-closed; at most `conns` connections, each on its own thread.
#[allow(dead_code)] // Not every test binary uses every helper.
pub fn tagged_server(name: &'static str, conns: usize) -> SocketAddr {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(conns) {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
                let mut got = Vec::new();
                if s.read_to_end(&mut got).is_ok() {
                    let _ = s.write_all(format!("{name}:").as_bytes());
                    let _ = s.write_all(&got);
                }
            });
        }
    });
    addr
}

/// A child process killed (and reaped) when dropped.
#[allow(dead_code)]
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// HAProxy (`haproxy -db`) on `config`, written to `dir/hap.cfg`, once `addr` accepts.
#[allow(dead_code)]
pub fn start_haproxy(dir: &std::path::Path, config: &str, addr: SocketAddr) -> Killed {
    std::fs::write(dir.join("hap.cfg"), config).expect("write");
    let hap = Killed(
        Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(dir.join("hap.cfg"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "haproxy does not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    hap
}

/// A self-signed EC certificate and key, `cert.pem` and `key.pem` in `dir` (by openssl).
#[allow(dead_code)]
pub fn self_signed(dir: &std::path::Path) {
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-keyout", "key.pem", "-out", "cert.pem", "-subj", "/CN=fulcrum-test", "-days", "1"])
        .current_dir(dir)
        .output()
        .expect("openssl req");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
}

/// An address where nothing listens and nothing can start listening while the returned socket
/// lives (it holds the port, bound but not listening): connections to it are refused. A port
/// from `free_addr` can be taken by a concurrent test's listener.
#[allow(dead_code)]
pub fn dead_addr() -> (socket2::Socket, SocketAddr) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).expect("bind");
    let addr = socket.local_addr().expect("addr").as_socket().expect("inet");
    (socket, addr)
}

/// Whether HAProxy is missing (the test is then skipped, or fails under
/// `FULCRUM_REQUIRE_NETNS=1`).
#[allow(dead_code)]
pub fn no_haproxy(what: &str) -> bool {
    if Command::new("haproxy").arg("-v").output().is_ok() {
        return false;
    }
    fulcrum_testkit::skip(what, "haproxy");
    true
}

/// Runs `run` against HAProxy, then against fulcrum, each on the configuration `cfg` makes
/// for its own address: (fulcrum's result, HAProxy's).
#[allow(dead_code)]
pub fn against_haproxy<T>(tag: &str, cfg: impl Fn(SocketAddr) -> String, run: impl Fn(SocketAddr) -> T) -> (T, T) {
    let dir = temp_dir(tag);
    let (hap, ful) = (free_addr(), free_addr());
    let want = {
        let _hap = start_haproxy(&dir, &cfg(hap), hap);
        run(hap)
    };
    let got = {
        let _f = Fulcrum::start(&format!("{tag}.cfg"), &cfg(ful), ful);
        run(ful)
    };
    (got, want)
}
