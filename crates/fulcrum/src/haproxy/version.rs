//! `haproxy -v` and `-vv`: HAProxy's layout, naming fulcrum and the HAProxy version whose
//! configuration language it reads. The feature list holds only what fulcrum has, so scripts
//! that read it (HAProxy's test runner among them) decide correctly.
use fulcrum_config::haproxy_conditions::{FEATURES, HAPROXY_VERSION};

/// `2.6.0-fulcrum-0.1.0`: HAProxy's version first, as scripts cut it at the first dash.
pub fn version() -> String {
    format!("{HAPROXY_VERSION}-fulcrum-{}", env!("CARGO_PKG_VERSION"))
}

fn kernel() -> String {
    let read = |name: &str| {
        std::fs::read_to_string(format!("/proc/sys/kernel/{name}")).map(|s| s.trim().to_string()).unwrap_or_default()
    };
    format!("{} {} {} {}", read("ostype"), read("osrelease"), read("version"), std::env::consts::ARCH)
}

pub fn short() -> String {
    format!(
        "HAProxy version {} - https://www.haproxy.org/ (this is fulcrum {}, reading HAProxy {}'s configuration language)\n\
         Status: fulcrum, a drop-in for HAProxy, keepalived and ipvsadm; what differs: docs/haproxy-compat.md\n\
         Known bugs: see fulcrum's issue tracker\n\
         Running on: {}\n",
        version(),
        env!("CARGO_PKG_VERSION"),
        HAPROXY_VERSION,
        kernel()
    )
}

/// HAProxy's whole list of build features, each marked `+` when fulcrum has it.
const ALL_FEATURES: &[&str] = &[
    "51DEGREES",
    "ACCEPT4",
    "BACKTRACE",
    "CLOSEFROM",
    "CPU_AFFINITY",
    "CRYPT_H",
    "DEVICEATLAS",
    "DL",
    "ENGINE",
    "EPOLL",
    "EVPORTS",
    "GETADDRINFO",
    "KQUEUE",
    "LIBCRYPT",
    "LINUX_SPLICE",
    "LINUX_TPROXY",
    "LUA",
    "MEMORY_PROFILING",
    "NETFILTER",
    "NS",
    "OBSOLETE_LINKER",
    "OPENSSL",
    "OT",
    "PCRE",
    "PCRE2",
    "PCRE2_JIT",
    "PCRE_JIT",
    "POLL",
    "PRCTL",
    "PROCCTL",
    "PROMEX",
    "QUIC",
    "RT",
    "SLZ",
    "STATIC_PCRE",
    "STATIC_PCRE2",
    "SYSTEMD",
    "TFO",
    "THREAD",
    "THREAD_DUMP",
    "TPROXY",
    "WURFL",
    "ZLIB",
];

pub fn long() -> String {
    let features: Vec<String> =
        ALL_FEATURES.iter().map(|f| format!("{}{f}", if FEATURES.contains(f) { '+' } else { '-' })).collect();
    let options: Vec<String> = FEATURES.iter().map(|f| format!("USE_{f}=1")).collect();
    format!(
        "{}Build options :\n  TARGET  = linux-glibc\n  CPU     = generic\n  CC      = rustc\n  CFLAGS  = \n  \
         OPTIONS = {}\n  DEBUG   = \n\n\
         Feature list : {}\n\n\
         Default settings :\n  bufsize = 16384, maxrewrite = 1024, maxpollevents = 200\n\n\
         Built with multi-threading support (MAX_THREADS=64, default={}).\n\
         Built without OpenSSL support (USE_OPENSSL not set)\n\
         Built without PCRE or PCRE2 support (regular expressions are Rust's regex crate)\n\
         Built without compression support\n\n\
         Available polling systems :\n      epoll : pref=300,  test result OK\nTotal: 1 (1 usable), will use epoll.\n\n\
         Available multiplexer protocols :\n\
         (protocols marked as <default> cannot be specified using 'proto' keyword)\n  \
         <default> : mode=HTTP  side=FE|BE  mux=H1    flags=HTX\n\n\
         Available services : none\n\n\
         Available filters : none\n",
        short(),
        options.join(" "),
        features.join(" "),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    )
}
