//! Signals: `on_signals` installs handlers that run an ordered,
//! escalating shutdown of every registered pool and resource (see
//! `OrderedShutdown`; these need the default feature `signal`);
//! [`ShutdownHandle`] starts one pool's shutdown from a handler of your
//! own, on every platform and with or without the feature.
//!
//! A signal handler may only do async-signal-safe work: no allocation, no
//! lock, no condvar, nothing that could be interrupted half-way by the very
//! signal it handles. So the handle does not shut the pool down itself; it
//! leaves a note and rings a bell, and a relay thread of the pool, an
//! ordinary thread, does the work.
//!
//! ```
//! use drainpool::ThreadPool;
//! use std::time::Duration;
//!
//! let pool = ThreadPool::new(2).unwrap();
//! let handle = pool.shutdown_handle();
//! // In a real program `handle` lives in a signal handler, e.g.
//! // signal_hook::low_level::register(SIGTERM, move || handle.request_shutdown()).
//! handle.request_shutdown();
//! assert!(pool.await_termination(Duration::from_secs(10)));
//! ```
//!
//! # What runs in the handler, and why it is safe
//!
//! [`ShutdownHandle::request_shutdown`] and
//! [`ShutdownHandle::request_shutdown_now`] do exactly two things:
//!
//! 1. `fetch_or` on an `AtomicU8` already allocated when the handle was made:
//!    a single lock-free instruction, safe at any point of any thread.
//! 2. It rings the relay's bell, made when the handle was made:
//!    - **On Unix**, one non-blocking `write(2)` of one byte to a Unix
//!      socket. `write` is on POSIX's list of async-signal-safe functions;
//!      the socket is non-blocking, so a full buffer returns `EWOULDBLOCK`
//!      at once (the bell is already ringing then, so the byte is not
//!      needed), and the error is ignored without being formatted or
//!      allocated. The read end lives as long as any handle, so the write
//!      never raises `SIGPIPE`.
//!    - **On Windows**, a store to an atomic flag and an unpark of the
//!      relay thread. Windows has no asynchronous signals: a console
//!      control handler (`SetConsoleCtrlHandler`), and the C runtime's
//!      `SIGINT` and `SIGBREAK` handlers built on it, run on a thread the
//!      system starts for the event, where any thread-safe call is safe;
//!      the unpark takes no lock the relay could hold and never blocks.
//!
//! Nothing else: no `Arc` is cloned or dropped, no memory is allocated or
//! freed, no lock is taken, no log is written. `errno` is saved and restored
//! by signal-hook around handlers registered with it; a handler installed by
//! other means should do the same.
//!
//! The relay thread, woken by the byte, reads the note and calls
//! [`ThreadPool::shutdown`] or [`ThreadPool::shutdown_now`]. The tasks a
//! `shutdown_now` requested this way hands back are kept by the pool and
//! returned by the next [`ThreadPool::shutdown_now`] the program calls
//! (also the one inside [`ThreadPool::shutdown_gracefully`]), so none is
//! lost; if the program never asks, they are cancelled when the pool is
//! dropped.
//!
//! A handle outlives its pool harmlessly: requests then do nothing.

use std::fmt;
use std::sync::Arc;

#[cfg(feature = "signal")]
mod handlers;
#[cfg(feature = "signal")]
mod ordered;
#[cfg(feature = "signal")]
mod step;

#[cfg(feature = "signal")]
#[cfg_attr(docsrs, doc(cfg(feature = "signal")))]
pub use self::ordered::{OrderedShutdown, SignalGuard, on_signals};
#[cfg(feature = "signal")]
#[cfg_attr(docsrs, doc(cfg(feature = "signal")))]
pub use self::step::{StepContext, StepOutcome, StepReport};

/// The signal numbers [`on_signals`] takes, for every platform.
///
/// `SIGINT` (Ctrl-C) and `SIGTERM` exist everywhere. On Unix, `SIGHUP`,
/// `SIGQUIT`, `SIGUSR1` and `SIGUSR2` too. On Windows, `SIGBREAK`: the C
/// runtime raises it for Ctrl-Break and for the other console events (the
/// console window closing, log-off, system shutdown), after which Windows
/// ends the process within a few seconds whatever the handler does, so a
/// shutdown meant for them needs short budgets.
#[cfg(feature = "signal")]
#[cfg_attr(docsrs, doc(cfg(feature = "signal")))]
pub use signal_hook::consts::{SIGINT, SIGTERM};

#[cfg(all(feature = "signal", unix))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "signal", unix))))]
pub use signal_hook::consts::{SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

#[cfg(all(feature = "signal", windows))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "signal", windows))))]
pub use signal_hook::consts::SIGBREAK;

/// The signals that ask a program to end, on this platform: what a service
/// passes to [`on_signals`] unless it has a reason to choose. `SIGINT` and
/// `SIGTERM` on Unix; `SIGINT`, `SIGBREAK` and `SIGTERM` on Windows.
#[cfg(all(feature = "signal", unix))]
#[cfg_attr(docsrs, doc(cfg(feature = "signal")))]
pub const SHUTDOWN_SIGNALS: &[std::os::raw::c_int] = &[SIGINT, SIGTERM];

/// The signals that ask a program to end, on this platform: what a service
/// passes to [`on_signals`] unless it has a reason to choose. `SIGINT` and
/// `SIGTERM` on Unix; `SIGINT`, `SIGBREAK` and `SIGTERM` on Windows.
#[cfg(all(feature = "signal", windows))]
#[cfg_attr(docsrs, doc(cfg(feature = "signal")))]
pub const SHUTDOWN_SIGNALS: &[std::os::raw::c_int] = &[SIGINT, SIGBREAK, SIGTERM];

use crate::pool::ThreadPool;
use crate::runtime::relay::{Relay, SHUTDOWN, SHUTDOWN_NOW};

/// Starts a pool's shutdown from anywhere, including a signal handler; from
/// [`ThreadPool::shutdown_handle`].
///
/// Cheap to clone, `Send + Sync + 'static`; both requests are
/// async-signal-safe (see [what runs in the
/// handler](self#what-runs-in-the-handler-and-why-it-is-safe)) and return at
/// once: a relay thread of the pool does the shutdown. The handle outlives
/// the pool harmlessly: requests then do nothing.
///
/// # Examples
///
/// A handler of the program's own, here a plain thread standing in for one
/// (registering it with signal-hook would be
/// `signal_hook::low_level::register(SIGTERM, move || handle.request_shutdown())`):
///
/// ```
/// use drainpool::ThreadPool;
/// use std::time::Duration;
///
/// let pool = ThreadPool::new(2).unwrap();
/// let handle = pool.shutdown_handle();
/// std::thread::spawn(move || handle.request_shutdown());
/// assert!(pool.await_termination(Duration::from_secs(10)));
/// ```
#[derive(Clone)]
pub struct ShutdownHandle {
    relay: Arc<Relay>,
}

impl ShutdownHandle {
    /// Asks the pool to [`shutdown`](ThreadPool::shutdown): stop intake and
    /// drain. Async-signal-safe; returns at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::{PoolState, ThreadPool};
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(2).unwrap();
    /// let answer = pool.submit(|| 42).unwrap();
    /// pool.shutdown_handle().request_shutdown();
    /// assert!(pool.await_termination(Duration::from_secs(10)));
    /// assert_eq!(answer.join().unwrap(), 42); // accepted before: it ran
    /// assert_eq!(pool.state(), PoolState::Terminated);
    /// ```
    pub fn request_shutdown(&self) {
        self.relay.request(SHUTDOWN);
    }

    /// Asks the pool to [`shutdown_now`](ThreadPool::shutdown_now): stop
    /// intake, take back the queued tasks, raise the running tasks' stop
    /// tokens. The taken-back tasks are returned by the program's next call
    /// to `shutdown_now`. Async-signal-safe; returns at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::crossbeam_channel::bounded;
    /// use drainpool::{StopToken, ThreadPool};
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// let (started_tx, started) = bounded(1);
    /// let busy = pool
    ///     .submit(move || {
    ///         let stop = StopToken::current();
    ///         started_tx.send(()).unwrap();
    ///         stop.sleep(Duration::MAX).is_err()
    ///     })
    ///     .unwrap();
    /// started.recv().unwrap(); // the only worker is busy
    /// pool.task().name("queued").execute(|| ()).unwrap();
    ///
    /// pool.shutdown_handle().request_shutdown_now();
    /// assert!(busy.join().unwrap()); // its stop token fired
    /// let kept = pool.shutdown_now(); // the tasks the request took back
    /// assert_eq!(kept[0].name(), Some("queued"));
    /// ```
    pub fn request_shutdown_now(&self) {
        self.relay.request(SHUTDOWN_NOW);
    }
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("requested", &self.relay.pending())
            .finish()
    }
}

impl ThreadPool {
    /// A handle that can start this pool's shutdown from anywhere, including
    /// a signal handler. The first call starts the pool's relay thread
    /// (named `{prefix}-relay`).
    ///
    /// # Panics
    ///
    /// If the relay's socket pair or thread cannot be created (the process
    /// is out of file descriptors or threads), with a message saying which.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::builder().threads(2).thread_name("jobs").build().unwrap();
    /// let handle = pool.shutdown_handle(); // starts the thread "jobs-relay"
    /// let for_the_handler = handle.clone(); // one per handler: all the same pool
    /// for_the_handler.request_shutdown();
    /// assert!(pool.await_termination(Duration::from_secs(10)));
    /// handle.request_shutdown(); // again, or after the pool: does nothing
    /// ```
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            relay: self.shared_arc().relay(),
        }
    }
}
