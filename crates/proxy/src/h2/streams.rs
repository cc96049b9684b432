//! The streams of one HTTP/2 connection, run inside the connection's own task: each stream is
//! a future in a slot, polled when its own waker says so. A stream is not a task of its own:
//! no task to spawn, schedule and free per request, and the frames the streams produce in one
//! pass go out in the connection's next write.
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::Instant;

type StreamFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

thread_local! {
    /// The time of the current pass over woken streams, read once for all of them.
    static PASS_TIME: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// Now, as a stream sees it: the time its pass started (streams polled in one pass share one
/// clock reading, as HAProxy's loop shares its `now`), or the clock outside a pass.
pub(super) fn now() -> Instant {
    PASS_TIME.get().unwrap_or_else(Instant::now)
}

/// Sets the pass time while it lives.
struct Pass;

impl Pass {
    fn start() -> Pass {
        PASS_TIME.set(Some(Instant::now()));
        Pass
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        PASS_TIME.set(None);
    }
}

/// Slots woken since the last pass, and the connection task to wake for them.
#[derive(Default)]
struct Woken {
    keys: Mutex<(Vec<usize>, Option<Waker>)>,
}

impl Woken {
    fn push(&self, key: usize) {
        let waker = {
            let mut guard = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            guard.0.push(key);
            guard.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// One slot's waker. `queued`: the slot is in the woken list already.
struct SlotWaker {
    key: usize,
    queued: AtomicBool,
    woken: Arc<Woken>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.woken.push(self.key);
        }
    }
}

struct Slot {
    future: StreamFuture,
    shared: Arc<SlotWaker>,
    /// `shared` as a `Waker`, made once.
    waker: Waker,
}

/// The streams being served.
#[derive(Default)]
pub(super) struct Streams {
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    len: usize,
    woken: Arc<Woken>,
    /// The list taken from `woken` for one pass (kept to reuse its allocation).
    pass: Vec<usize>,
}

/// Passes over the woken streams before the connection task yields to others.
const MAX_PASSES: usize = 4;

impl Streams {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a stream; it is polled in the next [`Streams::poll`].
    pub(super) fn push(&mut self, future: StreamFuture) {
        let key = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let shared = Arc::new(SlotWaker { key, queued: AtomicBool::new(true), woken: Arc::clone(&self.woken) });
        let waker = Waker::from(Arc::clone(&shared));
        self.slots[key] = Some(Slot { future, shared, waker });
        self.len += 1;
        // Polled by the caller's next `poll`, in this same pass: no wake needed.
        self.woken.keys.lock().unwrap_or_else(|e| e.into_inner()).0.push(key);
    }

    /// Polls every woken stream (and those they wake in turn, for a few passes); streams
    /// that end are removed. Returns whether any stream was polled, and whether any ended.
    /// The task is woken again when a stream is.
    pub(super) fn poll(&mut self, cx: &mut Context<'_>) -> (bool, bool) {
        let (mut polled, mut ended) = (false, false);
        for _ in 0..MAX_PASSES {
            {
                let mut guard = self.woken.keys.lock().unwrap_or_else(|e| e.into_inner());
                std::mem::swap(&mut guard.0, &mut self.pass);
                if self.pass.is_empty() {
                    // Nothing woken: the next wake comes to this task.
                    let same = guard.1.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
                    if !same {
                        guard.1 = Some(cx.waker().clone());
                    }
                    return (polled, ended);
                }
            }
            polled = true;
            let _time = Pass::start();
            let mut pass = std::mem::take(&mut self.pass);
            for key in pass.drain(..) {
                let Some(slot) = self.slots.get_mut(key).and_then(Option::as_mut) else { continue };
                // A later wake queues the slot again.
                slot.shared.queued.store(false, Ordering::Release);
                let mut scx = Context::from_waker(&slot.waker);
                if slot.future.as_mut().poll(&mut scx).is_ready() {
                    self.slots[key] = None;
                    self.free.push(key);
                    self.len -= 1;
                    ended = true;
                }
            }
            self.pass = pass;
        }
        // Still more woken after a few passes: the task runs again soon, after others.
        cx.waker().wake_by_ref();
        (polled, ended)
    }
}
