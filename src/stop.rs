//! Cooperative stop requests: [`StopSource`] raises, [`StopToken`] observes.
//!
//! A running task cannot be killed; it can only be asked to stop. The pool
//! asks through the task's token, which [`StopToken::current`] returns inside
//! a task: it fires on [`ThreadPool::shutdown_now`] and on
//! [`TaskHandle::cancel`] of that task. Outside a pool task,
//! `StopToken::current()` is a token that never fires, so the same code runs
//! unchanged on any thread.
//!
//! ```
//! use drainpool::{StopSource, StopToken, ThreadPool};
//!
//! let pool = ThreadPool::new(1).unwrap();
//! let handle = pool
//!     .submit(|| {
//!         let token = StopToken::current();
//!         let mut rounds = 0u64;
//!         while !token.is_stop_requested() && rounds < 1_000_000 {
//!             rounds += 1; // one unit of interruptible work
//!         }
//!         rounds
//!     })
//!     .unwrap();
//! assert!(handle.join().unwrap() > 0);
//!
//! let source = StopSource::new();
//! let token = source.token();
//! assert!(source.request_stop());
//! assert!(token.check().is_err());
//! ```
//!
//! [`ThreadPool::shutdown_now`]: crate::ThreadPool::shutdown_now
//! [`TaskHandle::cancel`]: crate::TaskHandle::cancel

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::sync::{Arc, OnceLock};

use crossbeam_channel::{Receiver, Sender};

use crate::error::Interrupted;
use crate::sync::{AtomicBool, Condvar, Mutex, Ordering, ThreadId, current_thread};
use crate::unwind::call_logged;

type Callback = Box<dyn FnOnce() + Send + 'static>;

/// Where [`StopToken::current`] finds the stop sources of the task running
/// on the calling thread. The runtime knows (its workers' thread-locals),
/// but sits above this module: it hands its function in when a pool is
/// built, so that this module never names it. Until then no thread runs a
/// pool task, and `current` is a token that never fires.
static CURRENT_SOURCES: OnceLock<fn() -> Vec<Arc<StopState>>> = OnceLock::new();

/// Sets where [`StopToken::current`] looks (see [`CURRENT_SOURCES`]); the
/// first call wins, and every pool passes the same function.
pub(crate) fn find_current_sources_with(current: fn() -> Vec<Arc<StopState>>) {
    let _ = CURRENT_SOURCES.set(current);
}

std::thread_local! {
    /// How many stop callbacks this thread is running now (they nest: a
    /// callback may request another stop).
    static IN_CALLBACK: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// True while the calling thread runs a stop callback: a wait there may
/// wait for a thread that is waiting for the callback (a task dropping its
/// `StopCallback`), so the pool does not wait there (see `ThreadPool`'s
/// `Drop`).
pub(crate) fn in_stop_callback() -> bool {
    IN_CALLBACK.with(|depth| depth.get() > 0)
}

/// Runs a stop callback, marked as such for `in_stop_callback`; a panic in
/// it is caught and logged.
fn run_callback(callback: Callback) {
    struct Marked;
    impl Drop for Marked {
        fn drop(&mut self) {
            IN_CALLBACK.with(|depth| depth.set(depth.get() - 1));
        }
    }
    IN_CALLBACK.with(|depth| depth.set(depth.get() + 1));
    let _marked = Marked;
    call_logged("a stop callback", callback);
}

/// The shared state of one stop source: a flag, its callbacks, and a
/// channel that disconnects when the stop is requested.
pub(crate) struct StopState {
    requested: AtomicBool,
    registry: Mutex<Registry>,
    finished: Condvar,
    /// Dropped by `request`: `closed` then reports disconnection forever,
    /// which is what the interruptible waits select on. A state change, not
    /// a notification, so a waiter that arrives late cannot miss it.
    closer: Mutex<Option<Sender<Infallible>>>,
    closed: Receiver<Infallible>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    /// By id, so in registration order: `request` takes the first and
    /// `unregister` any one in logarithmic time (a vector made both
    /// quadratic over many callbacks).
    callbacks: BTreeMap<u64, Callback>,
    /// The callback `request_stop` is running now, and on which thread.
    running: Option<(u64, ThreadId)>,
}

impl StopState {
    pub(crate) fn new() -> Arc<StopState> {
        let (closer, closed) = crossbeam_channel::bounded(0);
        Arc::new(StopState {
            requested: AtomicBool::new(false),
            registry: Mutex::new(Registry::default()),
            finished: Condvar::new(),
            closer: Mutex::new(Some(closer)),
            closed,
        })
    }

    /// Disconnects once a stop is requested; for `Select`.
    pub(crate) fn closed(&self) -> &Receiver<Infallible> {
        &self.closed
    }

    pub(crate) fn is_requested(&self) -> bool {
        // ORDERING: Acquire pairs with the SeqCst swap in `request`, so what
        // the requester wrote before asking is visible to a task that sees it.
        self.requested.load(Ordering::Acquire)
    }

    /// Raises the flag and runs every registered callback, each once, on the
    /// calling thread and outside the registry lock. Returns true for the
    /// call that raised it.
    pub(crate) fn request(&self) -> bool {
        if self.requested.swap(true, Ordering::SeqCst) {
            return false;
        }
        drop(self.closer.lock().take());
        let me = current_thread().id();
        loop {
            let (id, callback) = {
                let mut reg = self.registry.lock();
                let Some((id, callback)) = reg.callbacks.pop_first() else {
                    break;
                };
                reg.running = Some((id, me));
                (id, callback)
            };
            run_callback(callback);
            let mut reg = self.registry.lock();
            debug_assert_eq!(reg.running.map(|r| r.0), Some(id));
            reg.running = None;
            self.finished.notify_all();
        }
        true
    }

    /// Registers `f`, or runs it at once if the stop was already requested.
    /// Returns the registration id, or `None` if it ran already.
    fn register(&self, f: Callback) -> Option<u64> {
        let mut reg = self.registry.lock();
        // No lost callback: `request` raises the flag before it takes the
        // lock to drain the list. If we read false under the lock, the
        // drain's lock comes after ours and finds our entry; if we read true,
        // we run it here ourselves. Either way it runs exactly once.
        if self.is_requested() {
            drop(reg);
            run_callback(f);
            return None;
        }
        let id = reg.next_id;
        reg.next_id += 1;
        reg.callbacks.insert(id, f);
        Some(id)
    }

    /// Unregisters `id`. If `request_stop` is running it on another thread,
    /// waits for it to finish, so that after this returns it is neither
    /// running nor going to run.
    fn unregister(&self, id: u64) {
        let me = current_thread().id();
        let mut reg = self.registry.lock();
        if let Some(callback) = reg.callbacks.remove(&id) {
            drop(reg);
            drop(callback); // user code (captures) runs outside our lock
            return;
        }
        // Waiting under the lock cannot miss the end: `request` clears
        // `running` and notifies while holding the same lock.
        while matches!(reg.running, Some((i, t)) if i == id && t != me) {
            self.finished.wait(&mut reg);
        }
    }
}

/// Raises stop requests; hands out [`StopToken`]s that observe them.
///
/// Cloning a source gives another handle on the same request. Dropping a
/// source does not request a stop.
///
/// # Examples
///
/// ```
/// use drainpool::StopSource;
///
/// let source = StopSource::new();
/// let token = source.token();
/// assert!(!token.is_stop_requested());
/// assert!(source.request_stop()); // true: this call raised it
/// assert!(!source.request_stop()); // already raised
/// assert!(token.is_stop_requested());
/// ```
#[derive(Clone)]
pub struct StopSource {
    state: Arc<StopState>,
}

impl StopSource {
    /// A new source whose stop has not been requested.
    pub fn new() -> StopSource {
        StopSource {
            state: StopState::new(),
        }
    }

    /// A token observing this source.
    pub fn token(&self) -> StopToken {
        StopToken {
            parts: Parts::One(self.state.clone()),
        }
    }

    /// Requests a stop: raises the flag, then runs every callback registered
    /// with [`StopToken::on_stop`] on this thread. Returns true for the call
    /// that raised the flag, false if it was already raised.
    pub fn request_stop(&self) -> bool {
        self.state.request()
    }

    /// True once a stop was requested.
    pub fn is_stop_requested(&self) -> bool {
        self.state.is_requested()
    }
}

impl Default for StopSource {
    fn default() -> Self {
        StopSource::new()
    }
}

impl fmt::Debug for StopSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopSource")
            .field("stop_requested", &self.is_stop_requested())
            .finish()
    }
}

/// Observes stop requests; cheap to clone, `Send + Sync`.
///
/// A token may observe several sources at once (inside a pool task: the
/// pool's and the task's own); it reports a stop as soon as any of them is
/// raised.
#[derive(Clone)]
pub struct StopToken {
    parts: Parts,
}

#[derive(Clone)]
enum Parts {
    Never,
    One(Arc<StopState>),
    Many(Arc<[Arc<StopState>]>),
}

impl StopToken {
    /// A token that never fires: for code that takes a token and a caller
    /// that has none to give.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::StopToken;
    /// use drainpool::parking_lot::Mutex;
    ///
    /// let data = Mutex::new(1);
    /// *StopToken::never().lock(&data).unwrap() += 1; // a plain lock, then
    /// assert_eq!(*data.lock(), 2);
    /// ```
    pub fn never() -> StopToken {
        StopToken {
            parts: Parts::Never,
        }
    }

    /// Inside a pool task, that task's token: it fires on
    /// [`ThreadPool::shutdown_now`](crate::ThreadPool::shutdown_now), on
    /// [`TaskHandle::cancel`](crate::TaskHandle::cancel) of the running task,
    /// and on [`TaskGroup::cancel`](crate::TaskGroup::cancel) of its group.
    /// Anywhere else, a token that never fires.
    ///
    /// It builds the token (a small allocation): take it once at the start
    /// of a task and keep it, rather than calling this in a hot loop.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::{StopToken, ThreadPool};
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// let (ready_tx, ready) = drainpool::crossbeam_channel::bounded(0);
    /// let import = pool
    ///     .submit(move || {
    ///         let stop = StopToken::current(); // once, at the start
    ///         ready_tx.send(()).unwrap();
    ///         let mut batches = 0;
    ///         while !stop.is_stop_requested() {
    ///             batches += 1; // ... one batch; never half of one ...
    ///             std::thread::yield_now();
    ///         }
    ///         batches
    ///     })
    ///     .unwrap();
    /// ready.recv().unwrap();
    /// assert!(!import.cancel()); // running: cancel raises its token instead
    /// assert!(import.join().unwrap() > 0);
    /// assert!(!StopToken::current().is_stop_requested()); // outside a task: never fires
    /// ```
    pub fn current() -> StopToken {
        let sources = CURRENT_SOURCES
            .get()
            .map_or_else(Vec::new, |current| current());
        StopToken::from_states(sources)
    }

    pub(crate) fn from_states(mut states: Vec<Arc<StopState>>) -> StopToken {
        let parts = match states.len() {
            0 => Parts::Never,
            1 => Parts::One(states.pop().expect("one state")),
            _ => Parts::Many(states.into()),
        };
        StopToken { parts }
    }

    pub(crate) fn states(&self) -> &[Arc<StopState>] {
        match &self.parts {
            Parts::Never => &[],
            Parts::One(s) => std::slice::from_ref(s),
            Parts::Many(s) => s,
        }
    }

    /// True once a stop was requested of any source this token observes.
    pub fn is_stop_requested(&self) -> bool {
        self.states().iter().any(|s| s.is_requested())
    }

    /// `Err(Interrupted)` once a stop was requested, for use with `?`.
    ///
    /// # Errors
    ///
    /// [`Interrupted`] if a stop was requested.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::{Interrupted, StopSource, StopToken};
    ///
    /// fn copy_rows(rows: &[u32], out: &mut Vec<u32>, stop: &StopToken) -> Result<(), Interrupted> {
    ///     for row in rows {
    ///         stop.check()?; // between two rows, never inside one
    ///         out.push(*row);
    ///     }
    ///     Ok(())
    /// }
    ///
    /// let source = StopSource::new();
    /// let mut out = Vec::new();
    /// assert!(copy_rows(&[1, 2], &mut out, &source.token()).is_ok());
    /// source.request_stop();
    /// assert_eq!(copy_rows(&[3], &mut out, &source.token()), Err(Interrupted));
    /// assert_eq!(out, [1, 2]);
    /// ```
    pub fn check(&self) -> Result<(), Interrupted> {
        if self.is_stop_requested() {
            Err(Interrupted)
        } else {
            Ok(())
        }
    }

    /// Runs `f` once when a stop is requested, on the requesting thread; at
    /// once, on this thread, if it already was.
    ///
    /// Dropping the returned [`StopCallback`] unregisters `f`; once the drop
    /// returns, `f` is neither running nor going to run (if it is running on
    /// another thread, the drop waits for it). A panic in `f` is caught and
    /// logged, and the other callbacks still run.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::StopSource;
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    ///
    /// let source = StopSource::new();
    /// let closed = Arc::new(AtomicBool::new(false));
    /// // Wake something the token cannot: close a connection, say.
    /// let callback = source.token().on_stop({
    ///     let closed = closed.clone();
    ///     move || closed.store(true, Ordering::SeqCst)
    /// });
    /// source.request_stop(); // runs the callback, on this thread
    /// assert!(closed.load(Ordering::SeqCst));
    /// drop(callback); // after the stop: nothing left to unregister
    /// ```
    pub fn on_stop<F>(&self, f: F) -> StopCallback
    where
        F: FnOnce() + Send + 'static,
    {
        let states = self.states();
        if states.is_empty() {
            drop(f);
            return StopCallback {
                registrations: Vec::new(),
            };
        }
        // Several sources share one slot, so `f` runs at most once whichever
        // fires first.
        let slot = Arc::new(Mutex::new(Some(f)));
        let mut registrations = Vec::with_capacity(states.len());
        for state in states {
            let shared_slot = slot.clone();
            let callback: Callback = Box::new(move || {
                let f = shared_slot.lock().take();
                if let Some(f) = f {
                    f();
                }
            });
            if let Some(id) = state.register(callback) {
                registrations.push((state.clone(), id));
            }
            if slot.lock().is_none() {
                break; // it ran already; no need to register on the rest
            }
        }
        StopCallback { registrations }
    }
}

impl Default for StopToken {
    /// [`StopToken::never`].
    fn default() -> Self {
        StopToken::never()
    }
}

impl fmt::Debug for StopToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopToken")
            .field("sources", &self.states().len())
            .field("stop_requested", &self.is_stop_requested())
            .finish()
    }
}

/// A callback registered with [`StopToken::on_stop`]; dropping it
/// unregisters the callback.
#[must_use = "dropping a StopCallback unregisters its callback at once"]
pub struct StopCallback {
    registrations: Vec<(Arc<StopState>, u64)>,
}

impl Drop for StopCallback {
    fn drop(&mut self) {
        for (state, id) in self.registrations.drain(..) {
            state.unregister(id);
        }
    }
}

impl fmt::Debug for StopCallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopCallback")
            .field("registrations", &self.registrations.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn callback_runs_once_and_late_registration_runs_at_once() {
        let source = StopSource::new();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let _cb = source.token().on_stop(move || {
            h.fetch_add(1, Ordering::SeqCst);
        });
        assert!(source.request_stop());
        assert!(!source.request_stop());
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let h = hits.clone();
        let _late = source.token().on_stop(move || {
            h.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn dropped_callback_never_runs_and_panics_are_contained() {
        let source = StopSource::new();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        drop(source.token().on_stop(move || {
            h.fetch_add(1, Ordering::SeqCst);
        }));
        let _bad = source.token().on_stop(|| panic!("callback panic"));
        let h = hits.clone();
        let _good = source.token().on_stop(move || {
            h.fetch_add(10, Ordering::SeqCst);
        });
        source.request_stop();
        assert_eq!(hits.load(Ordering::SeqCst), 10);
    }

    #[test]
    fn composite_token_fires_once() {
        let a = StopSource::new();
        let b = StopSource::new();
        let token = StopToken::from_states(vec![a.state.clone(), b.state.clone()]);
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let _cb = token.on_stop(move || {
            h.fetch_add(1, Ordering::SeqCst);
        });
        b.request_stop();
        a.request_stop();
        assert!(token.is_stop_requested());
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn never_never_fires() {
        assert!(StopToken::never().check().is_ok());
        assert!(StopToken::current().check().is_ok());
    }
}
