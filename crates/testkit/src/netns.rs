//! Network-namespace labs for VRRP tests and benchmarks.
//!
//! A [`Lab`] is a "switch" namespace holding a bridge, plus node namespaces each joined to it by
//! a veth pair whose node side is named `vr0` (a name that does not exist on the host). Every
//! interface is created *inside* the switch namespace and its peer moved straight into a node
//! namespace, so nothing is ever created on, or attached to, the host's interfaces; addresses
//! are private (10.213.X.0/24, and fd00:213:X::/64 after [`Lab::enable_ipv6`]) and exist only
//! inside the namespaces. Dropping the lab (also while a test panics) kills every process left
//! in its namespaces and deletes them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// What went wrong in a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A program or file operation failed.
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    /// A command ran and failed.
    #[error("{command}: {stderr}")]
    Command { command: String, stderr: String },
    /// Something the test waited for did not happen in time.
    #[error("{0}")]
    NotInTime(String),
    #[error("too many nodes")]
    TooManyNodes,
}

fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> LabError {
    let what = what.to_string();
    move |source| LabError::Io { what, source }
}

fn ip(args: &[&str]) -> Result<Output, LabError> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output().map_err(io("ip"))?;
    if out.status.success() {
        Ok(out)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(LabError::Command { command: format!("ip {}", args.join(" ")), stderr })
    }
}

/// One network namespace, deleted on drop (after killing what still runs in it).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `name` with `lo` up.
    pub fn create(name: &str) -> Result<Netns, LabError> {
        ip(&["netns", "add", name])?;
        let ns = Netns { name: name.to_string() };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<Output, LabError> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// A command that runs `program` inside the namespace (`ip netns exec`, which execs it, so
    /// the child's pid is the program's).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// The addresses on `dev` (`ip -o addr show`), e.g. `10.213.1.100/24`.
    pub fn addresses(&self, dev: &str) -> Vec<String> {
        let Ok(out) = self.ip(&["-o", "addr", "show", "dev", dev]) else { return Vec::new() };
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                words.find(|w| *w == "inet" || *w == "inet6")?;
                words.next().map(str::to_string)
            })
            .collect()
    }

    /// Whether `addr` (without prefix) is configured on `dev`.
    pub fn has_address(&self, dev: &str, addr: &str) -> bool {
        self.addresses(dev).iter().any(|a| a.split('/').next() == Some(addr))
    }

    /// `GET url` with curl from inside the namespace: the body of the answer (whatever its
    /// status), or None (no answer within 1 s, connection refused).
    pub fn http_get(&self, url: &str) -> Option<String> {
        let out = self
            .command("curl")
            .args(["-s", "--max-time", "1", url])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Pids of the processes in the namespace.
    pub fn pids(&self) -> Vec<u32> {
        let Ok(out) = ip(&["netns", "pids", &self.name]) else { return Vec::new() };
        String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|p| p.parse().ok()).collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for pid in self.pids() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Whether this machine lets us create namespaces (root and iproute2). When it does not, the
/// test is skipped with a loud line naming it, or fails under `FULCRUM_REQUIRE_NETNS=1`.
pub fn netns_available(test: &str) -> bool {
    let probe = format!("fvr-probe-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
    match Netns::create(&probe) {
        Ok(_ns) => true,
        Err(e) => crate::skip(test, &format!("root and ip netns ({e})")),
    }
}

/// A switch namespace with a bridge, node namespaces on it, and one client namespace.
#[derive(Debug)]
pub struct Lab {
    /// Node namespaces, in order; node `i` has address `10.213.SUBNET.(i+1)/24` on `vr0`.
    pub nodes: Vec<Netns>,
    /// A client namespace on the same segment, address `10.213.SUBNET.200/24` on `vr0`.
    pub client: Netns,
    /// Third octet of the lab's subnet.
    pub subnet: u8,
    /// A scratch directory for configs, logs and pid files, removed on drop.
    pub dir: PathBuf,
    /// The switch namespace (bridge `br0`). Declared last: dropped after the nodes.
    pub switch: Netns,
}

impl Lab {
    /// Builds a lab with `nodes` node namespaces on subnet 10.213.`subnet`.0/24. Namespace
    /// names carry the test process id and a sequence number, so parallel tests never collide.
    pub fn new(tag: &str, subnet: u8, nodes: usize) -> Result<Lab, LabError> {
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let base = format!("fvr{}-{seq}", std::process::id());
        let switch = Netns::create(&format!("{base}-sw"))?;
        switch.ip(&["link", "add", "br0", "type", "bridge"])?;
        switch.ip(&["link", "set", "br0", "up"])?;
        let dir = std::env::temp_dir().join(format!("fulcrum-{tag}-{base}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(io(dir.display()))?;
        let attach = |ns_name: &str, port: &str, host: u8| -> Result<Netns, LabError> {
            let ns = Netns::create(ns_name)?;
            // Created in the switch namespace, the peer moved into the node: never on the host.
            switch.ip(&["link", "add", port, "type", "veth", "peer", "name", "vr0", "netns", ns.name()])?;
            switch.ip(&["link", "set", port, "master", "br0", "up"])?;
            ns.ip(&["addr", "add", &format!("10.213.{subnet}.{host}/24"), "dev", "vr0"])?;
            ns.ip(&["link", "set", "vr0", "up"])?;
            Ok(ns)
        };
        let mut list = Vec::new();
        for i in 0..nodes {
            let host = u8::try_from(i + 1).map_err(|_| LabError::TooManyNodes)?;
            list.push(attach(&format!("{base}-n{i}"), &format!("p{i}"), host)?);
        }
        let client = attach(&format!("{base}-c"), "pc", 200)?;
        Ok(Lab { nodes: list, client, subnet, dir, switch })
    }

    /// `10.213.SUBNET.HOST`.
    pub fn addr(&self, host: u8) -> String {
        format!("10.213.{}.{host}", self.subnet)
    }

    /// `fd00:213:SUBNET::HOST` (the digits read as hexadecimal groups), the IPv6 twin of
    /// [`Lab::addr`] (a unique local address: it exists only inside the lab).
    pub fn addr6(&self, host: u8) -> String {
        format!("fd00:213:{}::{host}", self.subnet)
    }

    /// Gives every node `fd00:213:SUBNET::(i+1)/64` and the client `fd00:213:SUBNET::200/64` on
    /// `vr0`, then waits (bounded) until no address of the lab is tentative (IPv6 duplicate
    /// address detection, link-local ones included), so that VRRPv3 can use its link-local
    /// source and the client can reach an IPv6 VIP.
    pub fn enable_ipv6(&self) -> Result<(), LabError> {
        for (i, ns) in self.nodes.iter().enumerate() {
            let host = u8::try_from(i + 1).map_err(|_| LabError::TooManyNodes)?;
            ns.ip(&["-6", "addr", "add", &format!("{}/64", self.addr6(host)), "dev", "vr0"])?;
        }
        self.client.ip(&["-6", "addr", "add", &format!("{}/64", self.addr6(200)), "dev", "vr0"])?;
        let start = Instant::now();
        // Bounded: at most 10 s / 50 ms iterations.
        while start.elapsed() < Duration::from_secs(10) {
            let tentative = self.nodes.iter().chain([&self.client]).any(|n| {
                n.ip(&["-6", "-o", "addr", "show", "dev", "vr0", "tentative"]).map_or(true, |o| !o.stdout.is_empty())
            });
            if !tentative {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(LabError::NotInTime("IPv6 addresses still tentative after 10 s".into()))
    }

    /// A file path in the lab's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Which nodes hold `addr` on `vr0`.
    pub fn holders(&self, addr: &str) -> Vec<usize> {
        self.holders_on("vr0", addr)
    }

    /// Which nodes hold `addr` on interface `dev` (e.g. a VMAC, `vrrp.51`).
    pub fn holders_on(&self, dev: &str, addr: &str) -> Vec<usize> {
        (0..self.nodes.len()).filter(|i| self.nodes[*i].has_address(dev, addr)).collect()
    }

    /// Polls until `holders(addr) == want`, up to `limit`; returns the time it took.
    pub fn wait_holders(&self, addr: &str, want: &[usize], limit: Duration) -> Result<Duration, LabError> {
        self.wait_holders_on("vr0", addr, want, limit)
    }

    /// Polls until `holders_on(dev, addr) == want`, up to `limit`; returns the time it took.
    pub fn wait_holders_on(
        &self,
        dev: &str,
        addr: &str,
        want: &[usize],
        limit: Duration,
    ) -> Result<Duration, LabError> {
        let start = Instant::now();
        // Bounded: at most limit / 10 ms iterations.
        while start.elapsed() < limit {
            if self.holders_on(dev, addr) == want {
                return Ok(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(LabError::NotInTime(format!(
            "after {limit:?}, {addr} is on {dev} of nodes {:?}, expected {want:?}",
            self.holders_on(dev, addr)
        )))
    }

    /// Starts a small HTTP service on port `port` of node `i` answering `GET /` with `body`
    /// (python3's http.server on a directory holding index.html), on IPv4 and IPv6 (it binds
    /// `::` dual-stack).
    pub fn serve(&self, i: usize, port: u16, body: &str) -> Result<Daemon, LabError> {
        let dir = self.path(&format!("www{i}"));
        std::fs::create_dir_all(&dir).map_err(io(dir.display()))?;
        std::fs::write(dir.join("index.html"), body).map_err(io("index.html"))?;
        let mut command = self.nodes[i].command("python3");
        command.args(["-m", "http.server", &port.to_string(), "--bind", "::", "--directory"]).arg(&dir);
        Daemon::spawn(command, &self.path(&format!("www{i}.log")), Vec::new())
    }

    /// `GET http://ADDR:PORT/` from the client namespace (an IPv6 `addr` is bracketed); the
    /// body, or None (1 s timeout).
    pub fn client_get(&self, addr: &str, port: u16) -> Option<String> {
        let host = if addr.contains(':') { format!("[{addr}]") } else { addr.to_string() };
        self.client.http_get(&format!("http://{host}:{port}/")).map(|body| body.trim().to_string())
    }

    /// Polls [`Lab::client_get`] until it returns `want`, up to `limit`.
    pub fn wait_client_get(&self, addr: &str, port: u16, want: &str, limit: Duration) -> Result<(), LabError> {
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < limit {
            last = self.client_get(addr, port);
            if last.as_deref() == Some(want) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(LabError::NotInTime(format!("after {limit:?}, http://{addr}:{port}/ answered {last:?}, expected {want:?}")))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A daemon (fulcrum or keepalived) started in a namespace, with its log file; killed on drop.
#[derive(Debug)]
pub struct Daemon {
    /// The process (`ip netns exec` execs the program, so this is the program's pid).
    pub child: Child,
    /// Its standard error.
    pub log: PathBuf,
    /// Extra pids to kill with it (keepalived's VRRP child), read from these pid files.
    pub pid_files: Vec<PathBuf>,
}

impl Daemon {
    /// Spawns `command` with stderr (and stdout) to `log`.
    pub fn spawn(mut command: Command, log: &Path, pid_files: Vec<PathBuf>) -> Result<Daemon, LabError> {
        let file = std::fs::File::create(log).map_err(io(log.display()))?;
        let out = file.try_clone().map_err(io(log.display()))?;
        let child = command.stdin(Stdio::null()).stdout(out).stderr(file).spawn().map_err(io("spawn"))?;
        Ok(Daemon { child, log: log.to_path_buf(), pid_files })
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -SIG` the main process.
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status();
    }

    /// SIGKILL the main process and every pid in the pid files (keepalived's children).
    pub fn kill9_all(&mut self) {
        let extra: Vec<String> = self
            .pid_files
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .map(|s| s.trim().to_string())
            .collect();
        let mut args = vec!["-9".to_string(), self.child.id().to_string()];
        args.extend(extra.into_iter().filter(|p| !p.is_empty()));
        let _ = Command::new("kill").args(&args).stderr(Stdio::null()).status();
        let _ = self.child.wait();
    }

    /// Waits for the log to contain `needle`, up to `limit`.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> Result<Duration, LabError> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.log().contains(needle) {
                return Ok(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(LabError::NotInTime(format!("log never showed {needle:?} within {limit:?}:\n{}", self.log())))
    }

    /// Waits for the process to exit, up to `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill9_all();
        }
    }
}

/// A keepalived.conf with one `vrrp_instance VI_1` on `vr0` (used for fulcrum and keepalived
/// nodes alike). `extra` lines go inside the instance block.
pub fn keepalived_conf(
    router_id: &str,
    vrid: u8,
    priority: u8,
    version: u8,
    advert_int: &str,
    vip: &str,
    extra: &str,
) -> String {
    let auth = if version == 2 {
        "    authentication {\n        auth_type PASS\n        auth_pass s3cret\n    }\n"
    } else {
        ""
    };
    format!(
        "global_defs {{\n    router_id {router_id}\n}}\n\nvrrp_instance VI_1 {{\n    state BACKUP\n    interface vr0\n    \
         virtual_router_id {vrid}\n    priority {priority}\n    advert_int {advert_int}\n    version {version}\n{auth}    \
         virtual_ipaddress {{\n        {vip}/24\n    }}\n{extra}}}\n"
    )
}
