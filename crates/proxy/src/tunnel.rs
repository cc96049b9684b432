//! Two connections spliced together: bytes move both ways until each side has closed (a close
//! from one side half-closes the other), or nothing moves either way for `idle` (HAProxy's
//! `timeout tunnel` is an inactivity timeout, not a limit on the tunnel's life). The upgraded
//! HTTP connections of L7 use it; so will L4.
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// When bytes last came in, in nanoseconds from the tunnel's start (atomic only so that the
/// future stays `Send`; one task touches it).
struct Activity {
    start: Instant,
    last: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ns = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last.store(ns, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_nanos(self.last.load(Ordering::Relaxed))
    }
}

/// A read half that notes when bytes last came in, and counts them.
struct Watched<'a, R> {
    stream: R,
    activity: &'a Activity,
    /// Where reads are counted, and whether as inbound (from the client).
    count: Option<(&'a crate::live::Traffic, bool)>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Watched<'_, R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.activity.touch();
            if let Some((traffic, inbound)) = self.count {
                traffic.add(inbound, read);
            }
        }
        polled
    }
}

/// Splices `a` and `b` until both directions have ended or `idle` passes without a byte.
/// Returns the bytes moved from `a` to `b` and from `b` to `a`, when both ended cleanly.
/// `half_closed` is called once, when the first direction ends (one side has closed, the other
/// is finishing: what IPVS counts as an inactive connection).
/// `traffic`: where reads are counted (from `a` as inbound, from `b` as outbound).
pub(crate) async fn splice(
    a: &mut TcpStream,
    b: &mut TcpStream,
    idle: Duration,
    half_closed: &(dyn Fn() + Sync),
    traffic: Option<&crate::live::Traffic>,
) -> Option<(u64, u64)> {
    let activity = Activity { start: Instant::now(), last: AtomicU64::new(0) };
    let (a_read, mut a_write) = a.split();
    let (b_read, mut b_write) = b.split();
    let mut a_read = Watched { stream: a_read, activity: &activity, count: traffic.map(|t| (t, true)) };
    let mut b_read = Watched { stream: b_read, activity: &activity, count: traffic.map(|t| (t, false)) };
    let forward = async {
        let moved = tokio::io::copy(&mut a_read, &mut b_write).await?;
        b_write.shutdown().await?;
        Ok::<u64, io::Error>(moved)
    };
    let backward = async {
        let moved = tokio::io::copy(&mut b_read, &mut a_write).await?;
        a_write.shutdown().await?;
        Ok::<u64, io::Error>(moved)
    };
    tokio::pin!(forward, backward);
    let (mut up, mut down): (Option<u64>, Option<u64>) = (None, None);
    loop {
        if let (Some(up), Some(down)) = (up, down) {
            return Some((up, down));
        }
        let deadline = tokio::time::Instant::from_std(activity.last() + idle);
        tokio::select! {
            moved = &mut forward, if up.is_none() => {
                up = Some(moved.ok()?);
                if down.is_none() {
                    half_closed();
                }
            }
            moved = &mut backward, if down.is_none() => {
                down = Some(moved.ok()?);
                if up.is_none() {
                    half_closed();
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                if activity.last() + idle <= Instant::now() {
                    return None;
                }
            }
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
            let tunnel = tokio::spawn(async move { splice(&mut a, &mut b, idle, &|| (), None).await });
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
