//! A pool of `std::thread` workers that **stops cleanly**.
//!
//! ```
//! use drainpool::ThreadPool;
//! use std::time::Duration;
//!
//! let pool = ThreadPool::new(4)?;
//! let answer = pool.submit(|| 6 * 7)?;
//! pool.execute(|| println!("hello from a worker"))?;
//! assert_eq!(answer.join()?, 42);
//!
//! pool.shutdown(); // no new work; everything accepted still runs
//! assert!(pool.await_termination(Duration::from_secs(10)));
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```
//!
//! Every pool can start work; drainpool is about how it ends. Each task
//! reaches exactly one end state (completed, panicked, cancelled before it
//! started, or rejected and handed back), and the pool's lifecycle only moves
//! forward:
//!
//! | state          | entered by                 | intake   | queued tasks                       | running tasks          |
//! |----------------|----------------------------|----------|------------------------------------|------------------------|
//! | `Running`      | `build`                    | accepted | run                                | run                    |
//! | `ShuttingDown` | [`ThreadPool::shutdown`]   | rejected | still run (the drain)              | run to the end         |
//! | `Stopping`     | [`ThreadPool::shutdown_now`] | rejected | handed back as [`PendingTask`]s  | see their [`StopToken`] raised |
//! | `Terminated`   | the last worker exiting    | rejected | none                               | none                   |
//!
//! - [`ThreadPool::shutdown`] stops intake and drains;
//!   [`ThreadPool::await_termination`] waits for the end (with a timeout).
//! - [`ThreadPool::shutdown_now`] also returns every task that never started,
//!   in submission order. A dropped [`PendingTask`] resolves its
//!   [`TaskHandle`] as [`TaskError::Cancelled`]: no handle waits forever.
//! - A running task is asked, never killed: [`StopToken::current`] fires on
//!   `shutdown_now` and on [`TaskHandle::cancel`], and the token's waits
//!   ([`StopToken::sleep`], [`StopToken::recv`], [`StopToken::wait`],
//!   [`StopToken::lock`], ...) wake at once when it does. Locks come back as
//!   ordinary RAII guards, released when the task returns or unwinds.
//! - [`ThreadPool::shutdown_gracefully`] escalates: drain, then interrupt,
//!   then name every stuck task in a [`ShutdownReport`] and the log.
//! - [`signal::on_signals`] turns SIGINT/SIGTERM into an ordered shutdown of
//!   pools and resources (a database closes only after the pools that use
//!   it); [`ShutdownHandle`] starts one pool's shutdown from a signal
//!   handler of your own, async-signal-safely.
//! - A refused task comes back inside [`Rejected`]; nothing is dropped behind
//!   the caller's back.
//! - Every error is `std::error::Error + Send + Sync + 'static`, so `?` takes
//!   it into a `Box<dyn Error + Send + Sync>` (or an `anyhow::Error`), and
//!   still gives back what it holds: [`Rejected::into_inner`] the task,
//!   [`TaskError::into_panic`] the panic payload,
//!   [`IntoJobError::into_pending`] the [`PendingTask`].
//! - Dropping a pool drains and joins it, like the end of a
//!   [`std::thread::scope`].
//! - A panicking task never kills its worker; the panic goes to its handle or
//!   to the [`Builder::panic_handler`].
//!
//! Lifecycle transitions are logged at `debug` level with the [`log`] crate;
//! the library never prints.
//!
//! A task must be `Send + 'static`; the compiler refuses anything else:
//!
//! ```compile_fail
//! let pool = drainpool::ThreadPool::new(1).unwrap();
//! let not_send = std::rc::Rc::new(5);
//! pool.execute(move || drop(not_send)).unwrap();
//! ```

// Three measured needs for `unsafe`, each kept to its module with a SAFETY
// comment on every block: an interruptible condvar wait must lend the
// caller's condvar and mutex to a stop callback for the length of the wait
// (wait.rs); a small closure is stored in its queue entry instead of a box
// (inline.rs: the malloc/free pair was the largest cost of a task capturing
// an `Arc`); and a signal handler that counts each arrival and wakes a
// thread on every platform is registered with signal-hook's one `unsafe`
// function (signal/handlers.rs). Nothing else may use it.
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bell;
mod builder;
mod error;
mod graceful;
mod group;
mod handle;
mod inline;
#[cfg(loom)]
#[doc(hidden)]
pub mod model;
mod pool;
mod runtime;
pub mod signal;
mod state;
mod stop;
mod sync;
mod task;
mod task_builder;
mod unwind;
mod wait;

/// The `parking_lot` this crate's interruptible waits take
/// ([`StopToken::wait`], [`StopToken::lock`]): use it to build the mutex and
/// condvar you pass, and your versions never have to match by hand.
pub use parking_lot;

/// The `crossbeam-channel` whose receivers [`StopToken::recv`] takes: use it
/// to make the channel, and your versions never have to match by hand.
pub use crossbeam_channel;

pub use builder::Builder;
pub use error::{
    BuildError, Interrupted, IntoJobError, PanicPayload, RejectReason, Rejected, TaskError,
    WaitError,
};
pub use graceful::{ShutdownPolicy, ShutdownReport, StuckTask};
pub use group::TaskGroup;
pub use handle::TaskHandle;
pub use pool::ThreadPool;
pub use runtime::PendingTask;
pub use runtime::queue::Priority;
pub use runtime::{GroupProgress, PoolStats};
pub use signal::ShutdownHandle;
#[cfg(feature = "signal")]
pub use signal::{OrderedShutdown, SignalGuard, StepContext, StepOutcome, StepReport};
pub use state::PoolState;
pub use stop::{StopCallback, StopSource, StopToken};
pub use task::{Job, RunningTask, TaskId, TaskPanic};
pub use task_builder::TaskBuilder;

#[cfg(test)]
mod auto_traits {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}

    #[test]
    fn public_types_cross_threads() {
        send_sync::<crate::ThreadPool>();
        send_sync::<crate::TaskHandle<u32>>();
        send_sync::<crate::StopToken>();
        send_sync::<crate::StopSource>();
        send_sync::<crate::StopCallback>();
        send_sync::<crate::PoolStats>();
        send::<crate::PendingTask>();
    }

    /// Every error goes through `?` into `Box<dyn Error + Send + Sync>`:
    /// it is `Send + Sync` whatever it holds, when what it holds is `Send`.
    #[test]
    fn errors_cross_threads() {
        use std::cell::Cell;
        use std::error::Error;

        fn error<E: Error + Send + Sync + 'static>() {}

        error::<crate::BuildError>();
        error::<crate::Interrupted>();
        error::<crate::IntoJobError>();
        error::<crate::TaskError>();
        error::<crate::TaskPanic>();
        error::<crate::WaitError>();
        // A closure that is `Send` but not `Sync` (it owns a `Cell`).
        error::<crate::Rejected<Box<dyn FnOnce() + Send>>>();
        error::<crate::Rejected<Cell<u32>>>();
        error::<crate::Rejected<Vec<Box<dyn FnOnce() + Send>>>>();
        send_sync::<crate::PanicPayload>();
        send_sync::<crate::RejectReason>();
    }
}
