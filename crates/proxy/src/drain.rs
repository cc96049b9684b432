//! The drain of a stopping worker: its open connections, and a way to wake every one of them
//! so that each closes once its current exchange is over.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::Waker;

use tokio::sync::Notify;

use crate::live::lock;

/// Open client connections of one worker, and what it takes to drain them: each connection
/// task leaves its waker here once, so a stop wakes every one of them to close gracefully.
/// (A per-connection watch or Notify would be polled again on every wake-up of every
/// connection: a cost per request, not per connection.)
#[derive(Default)]
pub(crate) struct Drain {
    pub(crate) open: AtomicUsize,
    pub(crate) closed: Notify,
    draining: AtomicBool,
    next_id: AtomicU64,
    wakers: Mutex<HashMap<u64, Waker, crate::fasthash::FastBuild>>,
}

impl Drain {
    /// The worker is stopping: connections close once their current exchange is over.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// The flag an idle wait watches.
    pub(crate) fn flag(&self) -> &AtomicBool {
        &self.draining
    }

    pub(crate) fn drain(&self) {
        self.draining.store(true, Ordering::Release);
        let wakers: Vec<Waker> = lock(&self.wakers).drain().map(|(_, w)| w).collect();
        for w in wakers {
            w.wake();
        }
    }

    /// Registers the calling task to be woken by a drain; returns its key for [`Drain::leave`].
    pub(crate) async fn enter(&self) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        std::future::poll_fn(|cx| {
            lock(&self.wakers).insert(id, cx.waker().clone());
            std::task::Poll::Ready(())
        })
        .await;
        id
    }

    pub(crate) fn leave(&self, id: u64) {
        lock(&self.wakers).remove(&id);
    }
}
