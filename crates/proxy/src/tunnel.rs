//! Two connections spliced together: bytes move both ways until each side has closed (a close
//! from one side half-closes the other), or nothing moves either way for `idle` (HAProxy's
//! `timeout tunnel` is an inactivity timeout, not a limit on the tunnel's life). The upgraded
//! HTTP connections of L7 use it, and `mode tcp`.
//!
//! Memory, as in `io`: a read lands in the worker's scratch buffer and is written to the other
//! side before the next await; only what that side will not take at once is kept, in a buffer
//! of its own, until it drains (and that direction reads nothing more meanwhile). An idle
//! tunnel holds its two sockets and nothing else.
use std::future::Future as _;
use std::io;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

/// The most one read takes. Measured (bench/tcp.sh, iperf3 through loopback): 48 KiB moves the
/// most bytes per CPU-second; 64 KiB reads make 64 KiB writes, which loopback's 64 KiB MTU
/// splits in two segments, one of them tiny, and cost 40 % more CPU per byte; 16 KiB (HAProxy's
/// buffer) costs more system calls.
const READ_CHUNK: usize = 48 * 1024;

/// One direction of a tunnel.
#[derive(Default)]
struct Direction {
    /// Bytes read but not yet written to the other side, and how far they went.
    pending: Option<(Vec<u8>, usize)>,
    /// The source has closed; once `pending` is out, the destination is shut down.
    eof: bool,
    done: bool,
    moved: u64,
}

/// Half-closes a socket's sending side.
fn shutdown_write(to: &TcpStream) {
    let _ = socket2::SockRef::from(to).shutdown(std::net::Shutdown::Write);
}

/// The next step of one direction: flush what is pending, or read and pass on. Cancel-safe:
/// it only waits for readiness, then acts without waiting. Returns the bytes that moved (read,
/// or written from what was pending): any movement keeps the tunnel alive.
/// `other_done`: the opposite direction has ended (`to` has closed its side): at this
/// direction's end the tunnel closes both sockets, and `to` needs no shutdown first.
async fn step(
    from: &TcpStream,
    to: &TcpStream,
    dir: &mut Direction,
    count: Option<(&crate::live::Traffic, bool)>,
    other_done: bool,
) -> io::Result<usize> {
    if let Some((data, offset)) = dir.pending.as_mut() {
        to.writable().await?;
        let written = match to.try_write(data.get(*offset..).unwrap_or_default()) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) => return Err(e),
        };
        *offset += written;
        if *offset >= data.len() {
            dir.pending = None;
            if dir.eof {
                if !other_done {
                    shutdown_write(to);
                }
                dir.done = true;
            }
        }
        return Ok(written);
    }
    from.readable().await?;
    crate::io::with_scratch(|scratch| {
        let take = READ_CHUNK.min(scratch.len());
        let buf = scratch.get_mut(..take).unwrap_or_default();
        read_on(from, to, dir, count, other_done, buf)
    })
}

/// One read into `buf` and its bytes passed on (see [`step`]).
fn read_on(
    from: &TcpStream,
    to: &TcpStream,
    dir: &mut Direction,
    count: Option<(&crate::live::Traffic, bool)>,
    other_done: bool,
    buf: &mut [u8],
) -> io::Result<usize> {
    match read_drained(from, buf) {
        Ok(0) => {
            // The end of the source: `to` is shut down at once (nothing pending, or
            // `pending` would have been flushed first: a direction with bytes pending reads
            // nothing) - unless the tunnel ends here and closes it anyway.
            dir.eof = true;
            if !other_done {
                shutdown_write(to);
            }
            dir.done = true;
            Ok(0)
        }
        Ok(n) => {
            let data = buf.get(..n).unwrap_or_default();
            dir.moved += n as u64;
            if let Some((traffic, inbound)) = count {
                traffic.add(inbound, n);
            }
            match to.try_write(data) {
                Ok(written) if written == n => {}
                Ok(written) => dir.pending = Some((data.get(written..).unwrap_or_default().to_vec(), 0)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => dir.pending = Some((data.to_vec(), 0)),
                Err(e) => return Err(e),
            }
            Ok(n)
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        Err(e) => Err(e),
    }
}

/// One read from `from`. A read that does not fill `buf` took everything there was: the
/// socket's readiness is cleared then, so that the next wait goes to the reactor rather than
/// to a `read` that would only say "would block" (epoll is edge-triggered: new bytes wake it).
fn read_drained(from: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    use std::io::Read as _;
    let sock = socket2::SockRef::from(from);
    let room = buf.len();
    let mut outcome: Option<io::Result<usize>> = None;
    let cleared = from.try_io(tokio::io::Interest::READABLE, || match (&*sock).read(buf) {
        Ok(n) => {
            outcome = Some(Ok(n));
            if n > 0 && n < room {
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(())
            }
        }
        Err(e) => {
            let kind = e.kind();
            outcome = Some(Err(e));
            Err(kind.into())
        }
    });
    match outcome {
        Some(result) => result,
        // Not readable after all (the reactor's readiness was stale).
        None => cleared.map(|()| 0).and(Err(io::ErrorKind::WouldBlock.into())),
    }
}

/// Splices `a` and `b` until both directions have ended or `idle` passes without a byte.
/// Returns the bytes moved from `a` to `b` and from `b` to `a`, when both ended cleanly.
/// `half_closed` is called once, when the first direction ends (one side has closed, the other
/// is finishing: what IPVS counts as an inactive connection).
/// `traffic`: where reads are counted (from `a` as inbound, from `b` as outbound). `fin`:
/// the inactivity limits once one side has closed (`timeout client-fin`, for `a` once `b` has
/// closed; `timeout server-fin`, for `b` once `a` has).
pub(crate) async fn splice(
    a: &mut TcpStream,
    b: &mut TcpStream,
    mut idle: Duration,
    (a_fin, b_fin): (Option<Duration>, Option<Duration>),
    half_closed: &(dyn Fn() + Sync),
    traffic: Option<&crate::live::Traffic>,
) -> Option<(u64, u64)> {
    let (a, b) = (&*a, &*b);
    let mut up = Direction::default();
    let mut down = Direction::default();
    let mut last = Instant::now();
    let mut halved = false;
    // One timer for the tunnel's life: it fires at the deadline it was set to, and is moved
    // on then if bytes came meanwhile (re-arming it per read would cost a timer operation
    // per chunk of a bulk transfer).
    let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(last + idle));
    tokio::pin!(sleep);
    loop {
        if up.done && down.done {
            return Some((up.moved, down.moved));
        }
        if (up.done || down.done) && !halved {
            halved = true;
            half_closed();
            // `b` closed (down done): `a` must finish within client-fin; and the other way.
            let fin = if down.done { a_fin } else { b_fin };
            if let Some(fin) = fin {
                idle = fin;
                sleep.as_mut().reset(tokio::time::Instant::from_std(last + idle));
            }
        }
        let (up_done, down_done) = (up.done, down.done);
        let moved = tokio::select! {
            r = step(a, b, &mut up, traffic.map(|t| (t, true)), down_done), if !up_done => r,
            r = step(b, a, &mut down, traffic.map(|t| (t, false)), up_done), if !down_done => r,
            () = &mut sleep => {
                if last + idle <= Instant::now() {
                    return None;
                }
                sleep.as_mut().reset(tokio::time::Instant::from_std(last + idle));
                continue;
            }
        };
        match moved {
            Ok(n) if n > 0 => last = Instant::now(),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// One direction of [`relay`].
#[derive(Default)]
struct Flow {
    done: bool,
    moved: u64,
}

/// Moves what can move now from `from` to `to` without waiting: what `to` holds goes out
/// first, then reads pass on while `to` takes them. The bytes read.
fn pump(
    from: &mut crate::io::Side,
    to: &mut crate::io::Side,
    flow: &mut Flow,
    count: Option<(&crate::live::Traffic, bool)>,
    other_done: bool,
) -> io::Result<usize> {
    let mut total = 0;
    while !flow.done && to.try_flush()? {
        let read = crate::io::with_scratch(|scratch| {
            let take = READ_CHUNK.min(scratch.len());
            let buf = scratch.get_mut(..take).unwrap_or_default();
            match from.try_read(buf) {
                Ok(0) => Ok(None),
                Ok(n) => to.send(&[buf.get(..n).unwrap_or_default()]).map(|()| Some(n)),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => Ok(Some(0)),
                Err(e) => Err(e),
            }
        })?;
        match read {
            None => {
                if !other_done {
                    // What is still pending goes first: `to` is flushed by later pumps, and
                    // the close follows once it is out (see `relay`).
                    if to.try_flush()? {
                        to.shutdown_write();
                    }
                }
                flow.done = true;
            }
            Some(0) => break,
            Some(n) => {
                flow.moved += n as u64;
                total += n;
                if let Some((traffic, inbound)) = count {
                    traffic.add(inbound, n);
                }
            }
        }
    }
    Ok(total)
}

/// [`splice`] for sides that may speak TLS (a client of an `ssl` bind): the same rules of
/// closing and idleness, through [`crate::io::Side`]'s reads and writes. Returns the bytes
/// moved each way when both directions ended cleanly.
pub(crate) async fn relay(
    a: &mut crate::io::Side,
    b: &mut crate::io::Side,
    mut idle: Duration,
    (a_fin, b_fin): (Option<Duration>, Option<Duration>),
    half_closed: &(dyn Fn() + Sync),
    traffic: Option<&crate::live::Traffic>,
) -> Option<(u64, u64)> {
    use crate::io::Interest;
    let mut up = Flow::default();
    let mut down = Flow::default();
    let mut last = Instant::now();
    let mut halved = false;
    let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(last + idle));
    tokio::pin!(sleep);
    loop {
        loop {
            let (up_done, down_done) = (up.done, down.done);
            let moved = pump(a, b, &mut up, traffic.map(|t| (t, true)), down_done)
                .and_then(|n| Ok(n + pump(b, a, &mut down, traffic.map(|t| (t, false)), up_done)?));
            match moved {
                Ok(0) => break,
                Ok(_) => last = Instant::now(),
                Err(_) => return None,
            }
        }
        // A direction that ended with bytes still pending closes once they are out.
        for (flow, to) in [(&up, &mut *b), (&down, &mut *a)] {
            if flow.done && to.has_pending() {
                match to.try_flush() {
                    Ok(true) => to.shutdown_write(),
                    Ok(false) => {}
                    // The peer is gone: nothing more can be delivered.
                    Err(_) => return None,
                }
            }
        }
        if up.done && down.done && !a.has_pending() && !b.has_pending() {
            return Some((up.moved, down.moved));
        }
        if (up.done || down.done) && !halved {
            halved = true;
            half_closed();
            let fin = if down.done { a_fin } else { b_fin };
            if let Some(fin) = fin {
                idle = fin;
            }
        }
        sleep.as_mut().reset(tokio::time::Instant::from_std(last + idle));
        // What each side waits for: to be written to while it holds bytes, to be read from
        // while its direction goes on and the other side holds nothing.
        let a_wants = (!up.done && !b.has_pending(), a.has_pending());
        let b_wants = (!down.done && !a.has_pending(), b.has_pending());
        let woke = std::future::poll_fn(|cx| {
            let mut ready = false;
            for (side, (read, write)) in [(&mut *a, a_wants), (&mut *b, b_wants)] {
                for (wanted, interest) in [(read, Interest::Read), (write, Interest::Write)] {
                    if !wanted {
                        continue;
                    }
                    match side.poll_io(cx, interest) {
                        std::task::Poll::Ready(Ok(())) => ready = true,
                        std::task::Poll::Ready(Err(e)) => return std::task::Poll::Ready(Err(e)),
                        std::task::Poll::Pending => {}
                    }
                }
            }
            if ready {
                return std::task::Poll::Ready(Ok(true));
            }
            sleep.as_mut().poll(cx).map(|()| Ok(false))
        })
        .await;
        match woke {
            // Woken by readiness or by the timer: either way the inactivity limit holds (a
            // side ready without progress must not keep the relay spinning past it).
            Ok(_) if last + idle <= Instant::now() => return None,
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (connected, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (connected.expect("connect"), accepted.expect("accept").0)
    }

    #[test]
    fn a_busy_tunnel_outlives_its_idle_timeout_and_an_idle_one_does_not() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let (mut client, mut a) = pair().await;
            let (mut b, mut server) = pair().await;
            let idle = Duration::from_millis(300);
            let tunnel = tokio::spawn(async move { splice(&mut a, &mut b, idle, (None, None), &|| (), None).await });
            // Traffic every 100 ms for a second: three idle timeouts long, never idle.
            let mut buf = [0u8; 8];
            for i in 0..10u8 {
                client.write_all(&[i]).await.expect("write");
                server.read_exact(&mut buf[..1]).await.expect("read");
                assert_eq!(buf[0], i);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(!tunnel.is_finished(), "a busy tunnel was cut");
            // Then silence: it ends after the idle timeout, and both ends see the close.
            let ended = tokio::time::timeout(Duration::from_secs(3), tunnel).await;
            assert!(matches!(ended, Ok(Ok(None))), "an idle tunnel stayed open");
            assert_eq!(client.read(&mut buf).await.expect("eof"), 0);
        });
    }
}
