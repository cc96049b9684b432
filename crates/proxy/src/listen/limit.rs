//! Connection limits (`global maxconn`, a frontend's `maxconn`): a counter and a wake-up for
//! whoever waits. Taking and giving back a slot is one atomic operation each when nobody waits
//! (a tokio Semaphore takes a lock on every release).
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

#[derive(Debug)]
pub struct ConnLimit {
    max: usize,
    used: AtomicUsize,
    waiting: AtomicUsize,
    freed: Notify,
}

/// A slot, given back on drop.
#[derive(Debug)]
pub struct Slot<'a> {
    limit: &'a ConnLimit,
}

impl ConnLimit {
    pub fn new(max: usize) -> ConnLimit {
        ConnLimit { max: max.max(1), used: AtomicUsize::new(0), waiting: AtomicUsize::new(0), freed: Notify::new() }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    fn try_take(&self) -> bool {
        self.used.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < self.max).then_some(n + 1)).is_ok()
    }

    /// Waits for a slot.
    pub async fn take(&self) -> Slot<'_> {
        if self.try_take() {
            return Slot { limit: self };
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        loop {
            let notified = self.freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.try_take() {
                break;
            }
            notified.await;
            if self.try_take() {
                break;
            }
        }
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        Slot { limit: self }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.limit.used.fetch_sub(1, Ordering::SeqCst);
        if self.limit.waiting.load(Ordering::SeqCst) > 0 {
            self.limit.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::ConnLimit;

    #[test]
    fn waiters_get_freed_slots_and_never_more_than_max_are_out() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let limit = Arc::new(ConnLimit::new(2));
            let out = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let mut tasks = Vec::new();
            for _ in 0..20 {
                let (limit, out, peak) = (limit.clone(), out.clone(), peak.clone());
                tasks.push(tokio::spawn(async move {
                    let _slot = limit.take().await;
                    let now = out.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    peak.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    out.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                }));
            }
            for t in tasks {
                t.await.expect("task");
            }
            assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 2);
            assert_eq!(limit.used.load(std::sync::atomic::Ordering::SeqCst), 0);
        });
    }
}
