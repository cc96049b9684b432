//! The binary's only unsafe code: adopting the listening sockets a parent process passed on
//! (`bind fd@N`), and sending a signal to another process (`-sf`/`-st`). Each is a thin,
//! checked wrapper over one system call that std and socket2 have no safe form of.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// The listening TCP sockets this process was started with (any descriptor from 3 up that is
/// one), by descriptor, with the address each listens on. Only looked at: a parent's other
/// sockets (a test driver's own servers) must keep their flags; [`adopt`] takes the ones the
/// configuration uses.
pub fn inherited_listeners() -> Inherited {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return Inherited::new() };
    let fds: Vec<RawFd> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<RawFd>().ok())
        .filter(|fd| *fd >= 3)
        .filter(|fd| {
            std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok_and(|l| l.to_string_lossy().starts_with("socket:["))
        })
        .collect();
    let mut out = Inherited::new();
    for fd in fds {
        // SAFETY: `fd` is open (listed in /proc/self/fd just now, at start-up, before this
        // process opens or closes sockets of its own) and only borrowed for these reads.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let sock = socket2::SockRef::from(&borrowed);
        let listening = sock.is_listener().unwrap_or(false) && sock.r#type().is_ok_and(|t| t == socket2::Type::STREAM);
        if let (true, Some(addr)) = (listening, sock.local_addr().ok().and_then(|a| a.as_socket())) {
            out.insert(fd, addr);
        }
    }
    out
}

/// Take ownership of inherited listener `fd` (one that [`inherited_listeners`] found), marked
/// close-on-exec. Each descriptor is taken at most once; a second call is refused.
pub fn adopt(fd: RawFd) -> std::io::Result<TcpListener> {
    static TAKEN: std::sync::Mutex<Vec<RawFd>> = std::sync::Mutex::new(Vec::new());
    let mut taken = TAKEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if taken.contains(&fd) || !inherited_listeners().contains_key(&fd) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("fd {fd} is not an inherited listener"),
        ));
    }
    taken.push(fd);
    // SAFETY: `fd` is open and a listening socket (checked just now), was inherited rather than
    // opened by this program, and is taken once (TAKEN): nothing else owns or closes it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let socket = socket2::Socket::from(owned);
    socket.set_cloexec(true)?;
    Ok(TcpListener::from(socket))
}

/// Points standard error at /dev/null: a background process whose starter has returned (and
/// closed the pipe its messages went to) must not fail, or panic, writing a message.
pub fn silence_stderr() -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    // SAFETY: dup2(2) on two descriptors this process owns (the open file and standard
    // error); it touches no memory of this process.
    if unsafe { libc::dup2(null.as_raw_fd(), libc::STDERR_FILENO) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Send `signal` to process `pid`.
pub fn kill(pid: u32, signal: i32) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: kill(2) takes two integers and touches no memory of this process.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The inherited listeners, by descriptor number, as the configuration refers to them.
pub type Inherited = BTreeMap<RawFd, SocketAddr>;
