//! systemd's notify protocol (`Type=notify`): datagrams such as `READY=1` sent to the socket
//! named by `NOTIFY_SOCKET` (a path, or an abstract name written with a leading `@`).
use std::os::unix::net::UnixDatagram;

pub struct Notifier {
    socket: UnixDatagram,
    addr: std::os::unix::net::SocketAddr,
}

impl Notifier {
    /// None when the process was not started by a service manager that listens.
    pub fn from_env() -> Option<Notifier> {
        Notifier::from_var("NOTIFY_SOCKET")
    }

    /// The socket named by the variable `name`, which is then removed from the environment
    /// (the processes this one starts are not to use it).
    pub fn from_var(name: &str) -> Option<Notifier> {
        let target = std::env::var_os(name)?;
        std::env::remove_var(name);
        let target = target.to_str()?;
        let addr = match target.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()?
            }
            None => std::os::unix::net::SocketAddr::from_pathname(target).ok()?,
        };
        let socket = UnixDatagram::unbound().ok()?;
        Some(Notifier { socket, addr })
    }

    /// Best effort: a service manager that went away is not the process's problem.
    pub fn send(&self, state: &str) {
        if let Err(e) = self.socket.send_to_addr(state.as_bytes(), &self.addr) {
            tracing::warn!("cannot notify the service manager ({state}): {e}");
        }
    }
}
